//! Opening an output so that it never destroys anything: never over an input, in place
//! for a device or a pipe, and for a regular file an atomic replace of the file a symlink
//! points to, keeping its mode and owner.
//!
//! Every output of the program (changelog, report, enriched orders, rejects) goes
//! through here.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Refuses, before anything is read, an output that is the same file as an input (same
/// device and inode, whatever path, hard link or symlink leads to it): writing it would
/// replace the input. Paths that do not exist yet are no input.
pub fn refuse_outputs_that_are_inputs(outputs: &[&Path], inputs: &[&Path]) -> anyhow::Result<()> {
    let identity = |path: &Path| fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    for output in outputs {
        let Some(written) = identity(output) else {
            continue;
        };
        if let Some(input) = inputs.iter().find(|input| identity(input) == Some(written)) {
            bail!(
                "cannot write {}: it is the input {} (refused, so that the input is kept)",
                output.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// Writes an output whole: a regular file only appears, replaced at once, when `write`
/// has succeeded; a device or pipe is streamed as it is written.
pub fn write_whole(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> anyhow::Result<()> {
    let mut output = Output::open(path)?;
    let mut out = BufWriter::new(&mut output.file);
    write(&mut out)
        .and_then(|()| out.flush())
        .with_context(|| cannot_write(path))?;
    drop(out);
    output.finish()
}

/// An output being written: a temporary file beside the target that `finish` renames
/// over it, or a device or pipe written in place.
pub struct Output {
    file: File,
    /// The path as the user gave it, for messages.
    shown: PathBuf,
    /// For a regular file: the temporary file and the target it replaces.
    replace: Option<(PathBuf, PathBuf)>,
    regular: bool,
}

impl Output {
    /// Opens `path` for writing; nothing of what is there changes until `finish`.
    pub fn open(path: &Path) -> anyhow::Result<Output> {
        Output::open_resolved(path).with_context(|| cannot_write(path))
    }

    fn open_resolved(path: &Path) -> io::Result<Output> {
        let shown = path.to_path_buf();
        // /dev/stdout, /dev/fd/1 and the like share stdout's offset, so what the program
        // prints after them follows them instead of overwriting them.
        if let Some(fd) = standard_stream(path) {
            let file = match fd {
                1 => io::stdout().as_fd().try_clone_to_owned()?,
                _ => io::stderr().as_fd().try_clone_to_owned()?,
            };
            return Ok(Output {
                file: File::from(file),
                shown,
                replace: None,
                regular: false,
            });
        }
        // A /dev/fd/N or /proc path is the kernel's link to an open file, often a pipe
        // that has no path: opened as it is.
        let target = if is_kernel_path(path) {
            path.to_path_buf()
        } else {
            follow_symlinks(path)?
        };
        let existing = match fs::metadata(&target) {
            Ok(metadata) => Some(metadata),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match existing {
            Some(metadata) if metadata.is_dir() => Err(io::Error::other("it is a directory")),
            // A device, a FIFO, a socket, or a file the kernel provides under /proc or
            // /dev: there is nothing to replace, only something to write to.
            Some(metadata) if !metadata.is_file() || is_kernel_path(&target) => Ok(Output {
                file: OpenOptions::new().write(true).open(&target)?,
                shown,
                replace: None,
                regular: metadata.is_file(),
            }),
            _ => {
                let temporary = temporary_beside(&target);
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&temporary)?;
                let output = Output {
                    file,
                    shown,
                    replace: Some((temporary, target)),
                    regular: true,
                };
                if let Some(metadata) = existing {
                    output.keep_owner_and_mode(&metadata)?;
                }
                Ok(output)
            }
        }
    }

    /// Gives the temporary file the replaced file's owner (as far as this user may) and
    /// mode, so that the replace changes only the contents.
    fn keep_owner_and_mode(&self, metadata: &fs::Metadata) -> io::Result<()> {
        // The owner first: a change of owner clears the set-id bits of the mode.
        let chown =
            std::os::unix::fs::fchown(&self.file, Some(metadata.uid()), Some(metadata.gid()))
                .or_else(|_| std::os::unix::fs::fchown(&self.file, None, Some(metadata.gid())));
        match chown {
            Err(e) if e.kind() != io::ErrorKind::PermissionDenied => return Err(e),
            _ => {}
        }
        let mode = metadata.permissions().mode() & 0o7777;
        self.file.set_permissions(fs::Permissions::from_mode(mode))
    }

    /// Appends `bytes` and, for a regular file, makes them durable before returning.
    pub fn write_durably(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.file
            .write_all(bytes)
            .and_then(|()| self.sync())
            .with_context(|| cannot_write(&self.shown))
    }

    fn sync(&self) -> io::Result<()> {
        // A pipe or a device has nothing to sync (a FIFO refuses fsync).
        if self.regular {
            self.file.sync_data()
        } else {
            Ok(())
        }
    }

    /// Puts the written file in place of the target; a device or pipe is written already.
    /// The file stays open for more appends (follow mode's changelog).
    pub fn finish(&mut self) -> anyhow::Result<()> {
        let Some((temporary, target)) = self.replace.take() else {
            return Ok(());
        };
        let renamed = self
            .file
            .sync_all()
            .and_then(|()| fs::rename(&temporary, &target));
        if renamed.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        renamed.with_context(|| cannot_write(&self.shown))
    }
}

impl Drop for Output {
    /// An output that was never finished leaves no temporary file behind.
    fn drop(&mut self) {
        if let Some((temporary, _)) = self.replace.take() {
            let _ = fs::remove_file(temporary);
        }
    }
}

fn cannot_write(path: &Path) -> String {
    format!("cannot write {}", path.display())
}

/// The file descriptor a path names when it is the process's stdout or stderr.
fn standard_stream(path: &Path) -> Option<u8> {
    match path.to_str()? {
        "/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1" => Some(1),
        "/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2" => Some(2),
        _ => None,
    }
}

/// Under /dev and /proc a path is the kernel's: written in place, never replaced.
fn is_kernel_path(path: &Path) -> bool {
    path.starts_with("/dev") || path.starts_with("/proc")
}

/// The path a chain of symlinks ends at, existing or not (a dangling link is written
/// through too, as `>` in a shell does).
fn follow_symlinks(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    // As many links as Linux follows before it says ELOOP.
    for _ in 0..40 {
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let link = fs::read_link(&path)?;
                path = match path.parent() {
                    Some(parent) => parent.join(link),
                    None => link,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// `TARGET.tmp-PID`: in the target's directory, so that the rename stays on one file
/// system and is atomic.
fn temporary_beside(target: &Path) -> PathBuf {
    let mut temporary = target.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    PathBuf::from(temporary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_streams_are_recognized_by_name() {
        assert_eq!(standard_stream(Path::new("/dev/stdout")), Some(1));
        assert_eq!(standard_stream(Path::new("/dev/fd/2")), Some(2));
        assert_eq!(standard_stream(Path::new("/dev/null")), None);
        assert!(is_kernel_path(Path::new("/proc/self/fd/5")));
        assert!(!is_kernel_path(Path::new("/devices/x.csv")));
    }
}
