//! The files on the command line: the two base snapshots as epoch 0, then one epoch per
//! update file, then (with `--follow DIR`) every complete file that appears in DIR.

use std::collections::VecDeque;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::follow::FollowedDir;
use super::{Control, EpochInfo, EpochSource};
use crate::input::{
    read_share_with, summarize_share, BadRows, InputError, Part, Role, Share, ShareReport, Source,
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
}

impl FileEpoch {
    fn is_base(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s.role, Role::Snapshot(_)))
    }
}

pub struct FileSource {
    /// The epochs still to come from the command line (the leader's).
    queued: VecDeque<FileEpoch>,
    followed: Option<FollowedDir>,
}

impl FileSource {
    pub fn new(spec: &FileSpec) -> FileSource {
        FileSource {
            queued: spec
                .epochs()
                .into_iter()
                .map(|sources| FileEpoch { sources })
                .collect(),
            followed: spec.follow.clone().map(FollowedDir::new),
        }
    }
}

impl EpochSource for FileSource {
    type Epoch = FileEpoch;
    /// Each worker's part of each file of the epoch.
    type Summary = Vec<Option<Part>>;

    fn next_epoch(&mut self, control: &Control) -> Result<Option<FileEpoch>, String> {
        if let Some(epoch) = self.queued.pop_front() {
            return Ok(Some(epoch));
        }
        let Some(followed) = self.followed.as_mut() else {
            return Ok(None);
        };
        Ok(followed.next(control.stop).map(|path| FileEpoch {
            sources: vec![Source::new(path, Role::Update)],
        }))
    }

    /// Base snapshots are summarized part by part, so that no worker scans a whole
    /// snapshot to find its share. Update files, mostly small, are scanned by every
    /// worker instead, which spares each epoch that round.
    fn exchanges_summaries(&self, epoch: &FileEpoch, peers: usize) -> bool {
        peers > 1 && epoch.is_base()
    }

    /// A file this worker could not summarize (it will fail to read it too) is scanned.
    fn summarize(&mut self, epoch: &FileEpoch, share: Share) -> Option<Self::Summary> {
        Some(
            epoch
                .sources
                .iter()
                .map(|source| summarize_share(source, share).ok())
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
        let mut reports = Vec::new();
        for (index, source) in epoch.sources.iter().enumerate() {
            // Every worker's part of this file, in worker order, when all are known.
            let parts: Option<Vec<Part>> = summaries.and_then(|all| {
                all.iter()
                    .map(|of_worker| of_worker.as_ref()?.get(index).cloned().flatten())
                    .collect()
            });
            let report = read_share_with(source, share, bad_rows, parts.as_deref(), sink)
                .map_err(|error| (index, error))?;
            reports.push(report);
        }
        Ok(reports)
    }

    fn send_while_reading(&self, epoch: &FileEpoch) -> bool {
        epoch.is_base()
    }

    fn info(&self, epoch: &FileEpoch) -> EpochInfo {
        EpochInfo {
            inputs: epoch.sources.iter().map(Source::name).collect(),
            ..EpochInfo::default()
        }
    }

    /// A followed stream goes on past a bad file, which is applied not at all.
    fn skips_bad_epochs(&self, epoch: &FileEpoch) -> bool {
        self.followed.is_some() && !epoch.is_base()
    }
}
