//! What a file is, so that every worker can tell that it reads the file the leader
//! chose: its metadata (`Stamp`: length, modification and change times, device and
//! inode), which tells a change on this host, and its content (`Fingerprint`: length
//! and a hash), which other hosts compare their copies with.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::input::block::with_block;

/// A file's metadata; any write or replacement changes some of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub len: u64,
    modified_ns: i128,
    changed_ns: i128,
    device: u64,
    inode: u64,
}

impl Stamp {
    pub fn of(path: &Path) -> io::Result<Stamp> {
        Ok(Stamp::from(&std::fs::metadata(path)?))
    }
}

impl From<&std::fs::Metadata> for Stamp {
    #[cfg(unix)]
    fn from(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            len: meta.len(),
            modified_ns: ns(meta.mtime(), meta.mtime_nsec()),
            changed_ns: ns(meta.ctime(), meta.ctime_nsec()),
            device: meta.dev(),
            inode: meta.ino(),
        }
    }

    #[cfg(not(unix))]
    fn from(meta: &std::fs::Metadata) -> Stamp {
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        Stamp {
            len: meta.len(),
            modified_ns,
            changed_ns: 0,
            device: 0,
            inode: 0,
        }
    }
}

/// How much of a file its fingerprint hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Extent {
    /// All of it: update files, which every worker reads whole anyway.
    Whole,
    /// The first and last `ENDS` bytes: base snapshots, which can be many gigabytes.
    Ends,
}

/// Bytes hashed at each end of a base snapshot.
pub const ENDS: u64 = 64 * 1024;

/// A file's content as far as processes compare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u64,
    pub hash: u64,
}

impl Fingerprint {
    pub fn of(path: &Path, extent: Extent) -> io::Result<Fingerprint> {
        // Opening a FIFO would wait for a writer: only a regular file is opened here (the
        // reader refuses anything else with its own message).
        if !std::fs::metadata(path)?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut hasher = Xxh3::new();
        with_block(|buffer| match extent {
            Extent::Whole => hash_from(&mut file, u64::MAX, buffer, &mut hasher),
            Extent::Ends => {
                hash_from(&mut file, ENDS, buffer, &mut hasher)?;
                let tail = len.saturating_sub(ENDS).max(ENDS.min(len));
                file.seek(SeekFrom::Start(tail))?;
                hash_from(&mut file, ENDS, buffer, &mut hasher)
            }
        })?;
        Ok(Fingerprint {
            len,
            hash: hasher.digest(),
        })
    }

    /// The fingerprint of a whole file (`Extent::Whole`) whose bytes are `content`.
    pub fn of_content(content: &[u8]) -> Fingerprint {
        let mut hasher = Xxh3::new();
        hasher.update(content);
        Fingerprint {
            len: content.len() as u64,
            hash: hasher.digest(),
        }
    }
}

fn hash_from(file: &mut File, limit: u64, buffer: &mut [u8], hasher: &mut Xxh3) -> io::Result<()> {
    let mut reader = file.take(limit);
    loop {
        match reader.read(buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What the leader saw of one file when it chose the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The process it was seen from (`this_process`): only there do stamps compare.
    pub process: u64,
    pub stamp: Stamp,
    pub content: Fingerprint,
}

/// A token of this process, to tell the leader's process from the others (a stamp's
/// device and inode mean something only on the host that took it).
pub fn this_process() -> u64 {
    static TOKEN: OnceLock<u64> = OnceLock::new();
    *TOKEN.get_or_init(rand::random)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's fingerprint read from disk block by block and of its bytes in memory are
    /// the same, whatever its length against the 256 KiB block.
    #[test]
    fn the_fingerprint_of_a_file_is_that_of_its_bytes() {
        let dir = std::env::temp_dir().join(format!("discounting-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("u.csv");
        let block = 256 * 1024;
        for len in [0, 1, block - 1, block, block + 1, 2 * block + 12_345] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(
                Fingerprint::of(&path, Extent::Whole).unwrap(),
                Fingerprint::of_content(&bytes),
                "{len} bytes"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
