//! A scratch directory per test and a way to run the binary in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory beside the test binary, removed again when the test passes.
pub struct Workdir {
    pub dir: PathBuf,
}

impl Workdir {
    pub fn new(name: &str) -> Workdir {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let root = std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .join("workdirs");
        let dir = root.join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Workdir { dir }
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn create(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Generates a base of `orders` orders (100 codes) and `updates` update files of 100
    /// changes each, as `discounting generate` does: big enough that the debug build takes
    /// about a second to load 400,000 orders, which the tests that kill a run rely on.
    pub fn generate(&self, orders: u64, updates: u64) {
        let spec = discounting::generate::Spec {
            orders,
            codes: 100,
            updates,
            update_size: 100,
            seed: 5,
            shape: Default::default(),
        };
        discounting::generate::Generator::new(spec)
            .write_all(&self.dir)
            .unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_else(|e| panic!("cannot read {name}: {e}"))
    }

    /// The binary, run in this directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_discounting"));
        command.current_dir(&self.dir).args(args);
        command
    }

    /// Runs the binary and returns its stdout, failing the test if it did not succeed.
    pub fn stdout(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        check(&output, true, args);
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs the binary, expects it to fail with exit code 1, and returns its stderr.
    pub fn stderr_of_failure(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        check(&output, false, args);
        assert_eq!(output.status.code(), Some(1), "exit code of {args:?}");
        assert!(output.stdout.is_empty(), "a failed run prints no result");
        String::from_utf8(output.stderr).unwrap()
    }
}

fn check(output: &Output, success: bool, args: &[&str]) {
    if output.status.success() != success {
        panic!(
            "discounting {args:?}: expected {}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            if success { "success" } else { "failure" },
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The crate's own directory, where `inputs/` is.
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compares two texts and shows both whole when they differ.
#[macro_export]
macro_rules! eqnice {
    ($expected:expr, $got:expr) => {{
        let (expected, got) = (&$expected, &$got);
        if expected != got {
            panic!("\n--- expected\n{}\n--- got\n{}\n", expected, got);
        }
    }};
}
