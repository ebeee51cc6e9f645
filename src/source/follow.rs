//! A directory to follow: every complete update file that appears in it is the next
//! epoch, in name order, until the run is asked to stop.
//!
//! A file is complete when its name is final: writers create it under a name that starts
//! with `.` or has another extension (`.tmp`, `.part`) and rename it when done. Only
//! `.csv`, `.jsonl`, `.json` and `.ndjson` files whose names do not start with `.` count.
//!
//! The kernel's notification (inotify, through `notify`) wakes the leader, which then
//! lists the whole directory again. A listing alone is not enough: one taken while
//! files are renamed in may miss a file and return one renamed in after it. Events come
//! in the order the renames happened, so a listed file is taken only once its own event
//! has come (every file renamed in before it has then been announced too), or after
//! `SETTLE` without one (a file system that does not notify, a lost event).
//!
//! The order is fixed by one rule, so that a restarted run applies what a live run did:
//! a file named before the last applied one is refused and reported, not applied.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::input::{Role, Source};

/// The next file of a followed directory, or one that is reported instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub path: PathBuf,
    /// Why it is not applied (a directory, a dangling link, named too early).
    pub refused: Option<String>,
}

pub struct FollowedDir {
    dir: PathBuf,
    /// Started by the leader when it first looks (the other workers never do).
    watch: Option<Watch>,
    /// Names seen and not yet taken, in name order.
    pending: BTreeMap<OsString, Pending>,
    /// Names taken or reported: each is dealt with once.
    done: HashSet<OsString>,
    /// The last file applied: a file named before it is refused.
    last_applied: Option<OsString>,
    listed: Instant,
}

struct Watch {
    _watcher: RecommendedWatcher,
    events: Receiver<notify::Result<notify::Event>>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Its creation or rename was notified (or it was there before the run).
    announced: bool,
    since: Instant,
}

impl FollowedDir {
    /// How long a listed file waits for its own event before it is taken anyway.
    const SETTLE: Duration = Duration::from_secs(1);
    /// How often the directory is listed while no event comes (it may be gone).
    const RELIST: Duration = Duration::from_millis(500);
    /// How often `stop` is looked at while waiting.
    const TICK: Duration = Duration::from_millis(100);

    pub fn new(dir: PathBuf) -> FollowedDir {
        FollowedDir {
            dir,
            watch: None,
            pending: BTreeMap::new(),
            done: HashSet::new(),
            last_applied: None,
            listed: Instant::now(),
        }
    }

    /// The next complete file, waiting for one; `None` once `stop` is set. An error
    /// when the directory is gone or cannot be read.
    pub fn next(&mut self, stop: &AtomicBool) -> Result<Option<Arrival>, String> {
        if self.watch.is_none() {
            self.start()?;
        }
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            self.drain_events();
            if self.listed.elapsed() >= Self::RELIST {
                self.list(None)?;
            }
            if let Some(arrival) = self.take() {
                return Ok(Some(arrival));
            }
            let event = match &self.watch {
                Some(watch) => watch.events.recv_timeout(Self::TICK),
                None => Err(RecvTimeoutError::Timeout),
            };
            if let Ok(event) = event {
                self.note(event);
            }
        }
    }

    /// The leader's epoch of `path` is complete: later files must sort after it.
    pub fn applied(&mut self, path: &Path) {
        if path.parent() == Some(self.dir.as_path()) {
            self.last_applied = path.file_name().map(OsString::from);
        }
    }

    /// Watches first, then lists, so that nothing arrives unseen in between.
    fn start(&mut self) -> Result<(), String> {
        let (send, events) = channel();
        let watcher = notify::recommended_watcher(send).and_then(|mut watcher| {
            watcher.watch(&self.dir, RecursiveMode::NonRecursive)?;
            Ok(watcher)
        });
        let started = SystemTime::now();
        match watcher {
            Ok(watcher) => {
                self.watch = Some(Watch {
                    _watcher: watcher,
                    events,
                })
            }
            Err(e) => {
                // A directory that is gone is that error; otherwise (an exhausted
                // inotify limit, say) listings remain.
                self.list(Some(started))?;
                eprintln_note(&format!(
                    "cannot watch {} ({e}); new files are found by listing it",
                    self.dir.display()
                ));
            }
        }
        // Files older than the watch were there before the run: no event will come.
        self.list(Some(started))
    }

    /// Takes every event that has come. A created or renamed file is noted from its event
    /// alone, without listing the directory: the job's own reading of each file it
    /// applies makes events too, and listing a directory of many files on each of them
    /// made every epoch cost a pass over the directory.
    fn drain_events(&mut self) {
        let mut events = Vec::new();
        if let Some(watch) = &self.watch {
            events.extend(watch.events.try_iter());
        }
        for event in events {
            self.note(event);
        }
    }

    fn note(&mut self, event: notify::Result<notify::Event>) {
        let Ok(event) = event else {
            return;
        };
        if event.need_rescan() {
            // Events were lost: the listing is all there is, and comes next.
            for pending in self.pending.values_mut() {
                pending.announced = true;
            }
            self.listed = Instant::now() - Self::RELIST;
            return;
        }
        if !matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(notify::event::ModifyKind::Name(_))
        ) {
            return;
        }
        for path in &event.paths {
            if let Some(name) = self.candidate_name(path) {
                if !self.done.contains(&name) {
                    let entry = self.pending.entry(name).or_insert(Pending {
                        announced: true,
                        since: Instant::now(),
                    });
                    entry.announced = true;
                }
            }
        }
    }

    /// Lists the whole directory; with `before`, files changed before it count as
    /// announced (they were there before the watch).
    fn list(&mut self, before: Option<SystemTime>) -> Result<(), String> {
        let unreadable = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("the followed directory {} was removed", self.dir.display())
            } else {
                format!(
                    "cannot read the followed directory {}: {e}",
                    self.dir.display()
                )
            }
        };
        let entries = std::fs::read_dir(&self.dir).map_err(unreadable)?;
        let now = Instant::now();
        let mut present = HashSet::new();
        for entry in entries {
            let path = entry.map_err(unreadable)?.path();
            let Some(name) = self.candidate_name(&path) else {
                continue;
            };
            if self.done.contains(&name) {
                present.insert(name);
                continue;
            }
            if self.pending.contains_key(&name) {
                continue;
            }
            let old = before.is_some_and(|start| changed_before(&path, start));
            self.pending.insert(
                name,
                Pending {
                    announced: old,
                    since: now,
                },
            );
        }
        // A name dealt with is remembered only while its file is there, so that memory
        // follows the directory, not the number of files a long run has seen. (A file
        // made again under a name already applied is then refused, as any late name.)
        self.done.retain(|name| present.contains(name));
        self.listed = now;
        Ok(())
    }

    /// The name of `path` (an entry of the directory: the watch is not recursive) if it
    /// is named as a complete data file.
    fn candidate_name(&self, path: &Path) -> Option<OsString> {
        let name = path.file_name()?;
        let visible = name.to_str().is_some_and(|n| !n.starts_with('.'));
        (visible && Source::new(path, Role::Update).format().is_ok()).then(|| name.to_owned())
    }

    /// The first pending file in name order, once it may be taken.
    fn take(&mut self) -> Option<Arrival> {
        while let Some((name, pending)) = self.pending.first_key_value() {
            if !pending.announced && pending.since.elapsed() < Self::SETTLE {
                // An earlier name may still be on its way: wait for its event.
                return None;
            }
            let name = name.clone();
            self.pending.remove(&name);
            let path = self.dir.join(&name);
            let Ok(link) = std::fs::symlink_metadata(&path) else {
                continue; // gone again before it was taken
            };
            self.done.insert(name.clone());
            let refused = match std::fs::metadata(&path) {
                Err(_) if link.file_type().is_symlink() => {
                    Some("a symbolic link to nothing (dangling); it is not read".to_string())
                }
                Err(e) => Some(format!("cannot read: {e}")),
                Ok(meta) if meta.is_dir() => {
                    Some("a directory named as a data file; it is not read".to_string())
                }
                Ok(meta) if !meta.is_file() => {
                    Some("not a regular file; it is not read".to_string())
                }
                Ok(_) => match &self.last_applied {
                    Some(last) if name < *last => Some(format!(
                        "named before {}, which was already applied; rename it to sort after",
                        self.dir.join(last).display()
                    )),
                    Some(last) if name == *last => Some(
                        "made again under the name of the file applied last; rename it to sort after"
                            .to_string(),
                    ),
                    _ => None,
                },
            };
            return Some(Arrival { path, refused });
        }
        None
    }
}

/// Whether `path`'s inode last changed (a rename changes it) before `start`, with a
/// margin for the file system's coarse clock.
fn changed_before(path: &Path, start: SystemTime) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return false;
        };
        let changed = std::time::UNIX_EPOCH
            + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec().max(0) as u32);
        changed + Duration::from_secs(1) < start
    }
    #[cfg(not(unix))]
    {
        let _ = (path, start);
        true
    }
}

/// A note on stderr that can never end the run.
fn eprintln_note(note: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "discounting: note: {note}");
}
