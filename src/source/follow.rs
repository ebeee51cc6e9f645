//! A directory to follow: every complete update file that appears in it is the next
//! epoch, in name order, until the run is asked to stop.
//!
//! A file is complete when its name is final: writers create it under a name that starts
//! with `.` or has another extension (`.tmp`, `.part`) and rename it when done. Only
//! `.csv`, `.jsonl`, `.json` and `.ndjson` files whose names do not start with `.` count.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::input::{Role, Source};

pub struct FollowedDir {
    dir: PathBuf,
    /// Files already taken: a file is applied once, by name.
    taken: BTreeSet<PathBuf>,
    queued: VecDeque<PathBuf>,
}

impl FollowedDir {
    /// How often the directory is looked at while nothing is new.
    const POLL: Duration = Duration::from_millis(100);

    pub fn new(dir: PathBuf) -> FollowedDir {
        FollowedDir {
            dir,
            taken: BTreeSet::new(),
            queued: VecDeque::new(),
        }
    }

    /// The next complete file, waiting for one; `None` once `stop` is set.
    pub fn next(&mut self, stop: &AtomicBool) -> Option<PathBuf> {
        loop {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(path) = self.queued.pop_front() {
                return Some(path);
            }
            for path in self.complete_files() {
                if self.taken.insert(path.clone()) {
                    self.queued.push_back(path);
                }
            }
            if self.queued.is_empty() {
                std::thread::sleep(Self::POLL);
            }
        }
    }

    /// The complete update files in the directory now, in name order.
    fn complete_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| {
                let visible = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'));
                visible && path.is_file() && Source::new(path, Role::Update).format().is_ok()
            })
            .collect();
        files.sort();
        files
    }
}
