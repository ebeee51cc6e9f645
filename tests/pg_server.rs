//! A throwaway PostgreSQL server for one test: initdb in a temporary directory,
//! `wal_level=logical`, a free port on 127.0.0.1, run as the `postgres` OS user when the
//! tests run as root; stopped (and its directory removed) when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "secret";

pub struct PgServer {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    /// The server's settings, for a restart.
    options: String,
}

fn bindir() -> PathBuf {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config (Debian's postgresql package) must be installed");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// A command run as the server's owner.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn check(output: Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PgServer {
    /// A new server with `wal_level` as given (`logical` for the source).
    pub fn start_with(wal_level: &str) -> PgServer {
        let bin = bindir();
        let dir = std::env::temp_dir().join(format!(
            "discounting-pg-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if is_root() {
            check(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&dir)
                    .output()
                    .unwrap(),
                "chown",
            );
        }
        let data = dir.join("data");
        check(
            as_owner(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ])
                .arg(format!("--pwfile={}", pwfile.display()))
                .output()
                .unwrap(),
            "initdb",
        );
        let port = free_port();
        let options = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c wal_level={wal_level} -c max_replication_slots=20 -c max_wal_senders=20 \
             -c fsync=off -c full_page_writes=off",
            dir.display()
        );
        let server = PgServer {
            dir,
            port,
            bin,
            options,
        };
        server.start_again();
        server
    }

    /// Starts the server (again, after `kill`), on the same port and data.
    pub fn start_again(&self) {
        check(
            as_owner(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-o", &self.options, "-l"])
                .arg(self.dir.join("log"))
                .args(["-w", "-t", "30", "start"])
                .output()
                .unwrap(),
            "pg_ctl start",
        );
    }

    pub fn start() -> PgServer {
        PgServer::start_with("logical")
    }

    /// The URL of database `db` as the superuser `postgres`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// Runs SQL through psql (over the socket, as the superuser); panics on an error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.client().psql(db, sql)
    }

    /// What runs psql against this server, for another thread.
    pub fn client(&self) -> PgClient {
        PgClient {
            psql: self.bin.join("psql"),
            dir: self.dir.clone(),
            port: self.port,
        }
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn kill(&self) {
        let _ = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .output();
    }

    /// Waits until `condition` holds, at most `limit`.
    pub fn wait_for(&self, limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if condition() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// psql against a running server.
#[derive(Clone)]
pub struct PgClient {
    psql: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PgClient {
    /// Runs SQL (over the socket, as the superuser); panics on an error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let output = Command::new(&self.psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        check(output.clone(), &format!("psql {sql}"));
        String::from_utf8_lossy(&output.stdout).to_string()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
