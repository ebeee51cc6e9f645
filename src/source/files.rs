//! The files on the command line: the two base snapshots as epoch 0, then one epoch per
//! update file, then (with `--follow DIR`) every complete file that appears in DIR.

use std::collections::VecDeque;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::follow::FollowedDir;
use super::identity::{this_process, Extent, Fingerprint, Seen, Stamp};
use super::{Control, EpochInfo, EpochSource};
use crate::input::{
    read_share_with, read_whole, summarize_share, BadRows, InputError, Part, Role, Share,
    ShareReport, Source,
};
use crate::model::{Change, Position, Table};

/// The files a job reads.
#[derive(Debug, Clone)]
pub struct FileSpec {
    pub codes: PathBuf,
    pub orders: PathBuf,
    pub updates: Vec<PathBuf>,
    /// After the update files, keep applying the files that appear in this directory.
    pub follow: Option<PathBuf>,
}

impl FileSpec {
    /// The files of epoch 0: the two base snapshots.
    pub fn base(&self) -> Vec<Source> {
        vec![
            Source::new(&self.codes, Role::Snapshot(Table::DiscountCodes)),
            Source::new(&self.orders, Role::Snapshot(Table::Orders)),
        ]
    }

    /// The files of each epoch given on the command line: the two snapshots, then one
    /// update file per epoch (a followed directory's files are not known yet).
    pub fn epochs(&self) -> Vec<Vec<Source>> {
        std::iter::once(self.base())
            .chain(
                self.updates
                    .iter()
                    .map(|path| vec![Source::new(path, Role::Update)]),
            )
            .collect()
    }
}

/// An epoch of files: the base snapshots, or one update file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEpoch {
    pub sources: Vec<Source>,
    /// What the leader saw of each file when it chose the epoch (`None`: it could not
    /// be read, and every worker will say why).
    pub seen: Vec<Option<Seen>>,
    /// Why the leader refuses this file (a followed directory's rule), if it does.
    pub refused: Option<String>,
}

impl FileEpoch {
    /// An epoch of `sources`, each as the leader sees it now.
    fn of(sources: Vec<Source>) -> FileEpoch {
        let seen = sources.iter().map(|source| see(source).ok()).collect();
        FileEpoch {
            sources,
            seen,
            refused: None,
        }
    }

    /// The epoch's size as the leader saw it.
    fn bytes(&self) -> u64 {
        self.seen.iter().flatten().map(|seen| seen.stamp.len).sum()
    }

    fn is_base(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s.role, Role::Snapshot(_)))
    }
}

/// From this size on, an update file's workers exchange their parts' summaries rather
/// than each scanning it whole: the round costs about what scanning a megabyte does.
const SUMMARIZED_UPDATE_BYTES: u64 = 1 << 20;

/// Up to this size, an update file is read into memory once by each worker, which makes
/// every pass over it there (its summary, fingerprint, scan and share).
const READ_ONCE_BYTES: u64 = 4 << 20;

pub struct FileSource {
    /// The epochs still to come from the command line (the leader's).
    pending: VecDeque<Vec<Source>>,
    followed: Option<FollowedDir>,
    /// The files of the epoch under way that this worker read whole to summarize them,
    /// by their index in the epoch, for its read of them.
    read_once: Vec<Option<ReadOnce>>,
}

impl FileSource {
    pub fn new(spec: &FileSpec) -> FileSource {
        FileSource {
            // Each epoch is looked at only when the leader comes to it.
            pending: spec.epochs().into(),
            followed: spec.follow.clone().map(FollowedDir::new),
            read_once: Vec::new(),
        }
    }
}

/// An update file's bytes as one worker read them, and its stamp from just before.
struct ReadOnce {
    stamp: Stamp,
    content: Vec<u8>,
}

impl ReadOnce {
    /// Reads `source` whole, if it is an update file that the leader saw and that is not
    /// large (`None` otherwise, or if it cannot be looked at: the read says why).
    fn of(source: &Source, seen: Option<Seen>) -> Result<Option<ReadOnce>, InputError> {
        let small = seen.is_some_and(|seen| seen.content.len <= READ_ONCE_BYTES);
        if !small || !matches!(source.role, Role::Update) {
            return Ok(None);
        }
        let Ok(stamp) = Stamp::of(&source.path) else {
            return Ok(None);
        };
        let content = read_whole(source, READ_ONCE_BYTES)?;
        Ok(content.map(|content| ReadOnce { stamp, content }))
    }
}

impl EpochSource for FileSource {
    type Epoch = FileEpoch;
    /// Each worker's part of each file of the epoch.
    type Summary = Vec<Option<Part>>;

    fn next_epoch(&mut self, control: &Control) -> Result<Option<FileEpoch>, String> {
        if let Some(sources) = self.pending.pop_front() {
            return Ok(Some(FileEpoch::of(sources)));
        }
        let Some(followed) = self.followed.as_mut() else {
            return Ok(None);
        };
        Ok(followed.next(control.stop)?.map(|arrival| {
            let sources = vec![Source::new(arrival.path, Role::Update)];
            match arrival.refused {
                None => FileEpoch::of(sources),
                Some(reason) => FileEpoch {
                    seen: vec![None],
                    sources,
                    refused: Some(reason),
                },
            }
        }))
    }

    /// The files on the command line are known from the start (and after the last, with
    /// no followed directory, the end); a followed directory must be waited for.
    fn next_is_ready(&self) -> bool {
        !self.pending.is_empty() || self.followed.is_none()
    }

    /// Base snapshots and large update files are summarized part by part, so that no
    /// worker scans a whole file to find its share. Small update files are scanned by
    /// every worker instead, which spares their epoch that round.
    fn exchanges_summaries(&self, epoch: &FileEpoch, peers: usize) -> bool {
        peers > 1 && (epoch.is_base() || epoch.bytes() >= SUMMARIZED_UPDATE_BYTES)
    }

    /// A file this worker could not summarize (it will fail to read it too) is scanned.
    /// A file it reads whole to summarize it is kept for its read.
    fn summarize(&mut self, epoch: &FileEpoch, share: Share) -> Option<Self::Summary> {
        self.read_once = (epoch.sources.iter().enumerate())
            .map(|(index, source)| {
                let seen = epoch.seen.get(index).copied().flatten();
                ReadOnce::of(source, seen).ok().flatten()
            })
            .collect();
        Some(
            (epoch.sources.iter().zip(&self.read_once))
                .map(|(source, once)| {
                    let content = once.as_ref().map(|once| once.content.as_slice());
                    summarize_share(source, share, content).ok()
                })
                .collect(),
        )
    }

    fn read_share(
        &mut self,
        epoch: &FileEpoch,
        share: Share,
        summaries: Option<&[Option<Self::Summary>]>,
        bad_rows: BadRows,
        sink: &mut dyn FnMut(Position, Change),
    ) -> Result<Vec<ShareReport>, (usize, InputError)> {
        if let (Some(reason), Some(source)) = (&epoch.refused, epoch.sources.first()) {
            return Err((0, InputError::file(&source.name(), reason.clone())));
        }
        // What this epoch's summaries read whole, taken for this read alone.
        let mut read_once = std::mem::take(&mut self.read_once);
        let mut reports = Vec::new();
        for (index, source) in epoch.sources.iter().enumerate() {
            let name = source.name();
            let seen = epoch.seen.get(index).copied().flatten();
            // Every worker's part of this file, in worker order, when all are known.
            let parts: Option<Vec<Part>> = summaries.and_then(|all| {
                all.iter()
                    .map(|of_worker| of_worker.as_ref()?.get(index).cloned().flatten())
                    .collect()
            });
            // A small update file is read once (when it was summarized, or now), then
            // checked, scanned and parsed from memory: the bytes parsed are the bytes
            // checked. (A file this worker cannot look at is reported by the read itself.)
            let once = match read_once.get_mut(index).and_then(Option::take) {
                Some(once) => Some(once),
                None => ReadOnce::of(source, seen).map_err(|e| (index, e))?,
            };
            let stamp = match &once {
                Some(once) => Some(once.stamp),
                None => seen.and_then(|_| Stamp::of(&source.path).ok()),
            };
            let content = once.as_ref().map(|once| once.content.as_slice());
            // Before reading: this is the file the leader chose, as it then was.
            let before = match (seen, stamp) {
                (Some(seen), Some(stamp)) => {
                    check_identity(source, &seen, stamp, content).map_err(|e| (index, e))?;
                    Some(stamp)
                }
                _ => None,
            };
            let read = read_share_with(source, share, bad_rows, parts.as_deref(), content, sink);
            // After reading (also after an error, which a change may have caused): the
            // file is still as it was, or what was read may be a mix of two versions.
            if let Some(before) = before {
                if Stamp::of(&source.path).ok() != Some(before) {
                    return Err((index, changed(&name)));
                }
            }
            reports.push(read.map_err(|error| (index, error))?);
        }
        Ok(reports)
    }

    /// A bad file ends the run unless its epoch is skipped, and a run that ends never
    /// advances past the epoch, so nothing of it is applied: only an epoch that may be
    /// skipped must hold its changes until all were read without error.
    fn send_while_reading(&self, epoch: &FileEpoch) -> bool {
        !self.skips_bad_epochs(epoch)
    }

    fn info(&self, epoch: &FileEpoch) -> EpochInfo {
        EpochInfo {
            inputs: epoch.sources.iter().map(Source::name).collect(),
            ..EpochInfo::default()
        }
    }

    /// A file of the followed directory was applied: later ones must sort after it.
    fn applied(&mut self, epoch: &FileEpoch) -> Result<(), String> {
        if let (Some(followed), false) = (self.followed.as_mut(), epoch.is_base()) {
            for source in &epoch.sources {
                followed.applied(&source.path);
            }
        }
        Ok(())
    }

    /// A followed stream goes on past a bad file, which is applied not at all.
    fn skips_bad_epochs(&self, epoch: &FileEpoch) -> bool {
        self.followed.is_some() && !epoch.is_base()
    }
}

/// How much of `source` its fingerprint covers: update files whole, base snapshots
/// (possibly gigabytes, read in shares) at both ends, with their length.
fn extent(source: &Source) -> Extent {
    match source.role {
        Role::Update => Extent::Whole,
        Role::Snapshot(_) => Extent::Ends,
    }
}

/// The leader's view of `source`.
fn see(source: &Source) -> std::io::Result<Seen> {
    let stamp = Stamp::of(&source.path)?;
    let content = Fingerprint::of(&source.path, extent(source))?;
    // A write between the two looks: the workers will find the file changed.
    Ok(Seen {
        process: this_process(),
        stamp,
        content,
    })
}

fn changed(name: &str) -> InputError {
    InputError::file(name, "changed while it was being read")
}

/// Checks this worker's copy of `source` (its `stamp` now, and its `content` when it was
/// read whole) against what the leader saw. In the leader's process the file must be the
/// very one (same metadata); elsewhere, a copy of the same length and content hash.
fn check_identity(
    source: &Source,
    seen: &Seen,
    stamp: Stamp,
    content: Option<&[u8]>,
) -> Result<(), InputError> {
    let name = source.name();
    let here = seen.process == this_process();
    if here && stamp != seen.stamp {
        return Err(changed(&name));
    }
    let content = match content {
        Some(content) => Fingerprint::of_content(content),
        None => Fingerprint::of(&source.path, extent(source))
            .map_err(|e| InputError::file(&name, format!("cannot read: {e}")))?,
    };
    if content != seen.content || stamp.len != seen.content.len {
        return Err(if here {
            changed(&name)
        } else {
            let what = if content.len != seen.content.len {
                format!(
                    "{} bytes in the leader's process, {} here",
                    seen.content.len, content.len
                )
            } else {
                "same length, different content hash".to_string()
            };
            InputError::file(
                &name,
                format!("differs between processes (length/hash): {what}"),
            )
        });
    }
    Ok(())
}
