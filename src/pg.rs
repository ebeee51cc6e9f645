//! Reaching a PostgreSQL server, for the source and the sink alike: the URL, the
//! password (URL, `PGPASSWORD`, `~/.pgpass`), plain connections with a bounded wait, and
//! the server's own words for an error.

use std::str::FromStr;
use std::time::Duration;

use postgres::{Client, NoTls};

/// How long connecting (and each catalog query's connection) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the database is and who connects, resolved once.
#[derive(Debug, Clone)]
pub struct Database {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
}

impl Database {
    /// Reads a libpq-style URL (`postgres://user[:password]@host[:port]/db`).
    pub fn from_url(url: &str) -> Result<Database, String> {
        let config = postgres::Config::from_str(url)
            .map_err(|e| format!("--postgres {}: not a PostgreSQL URL: {e}", redacted(url)))?;
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = match config.get_user() {
            Some(user) => user.to_string(),
            None => std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .map_err(|_| format!("--postgres {}: no user in the URL", redacted(url)))?,
        };
        let dbname = config.get_dbname().unwrap_or(&user).to_string();
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .or_else(|| std::env::var("PGPASSWORD").ok())
            .or_else(|| pgpass_password(&host, port, &dbname, &user));
        Ok(Database {
            host,
            port,
            user,
            password,
            dbname,
        })
    }

    /// What errors call the database: no password in it.
    pub fn describe(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }

    /// A plain connection, in UTC and ISO dates so that values read the same always.
    pub fn connect(&self) -> Result<Client, String> {
        let mut config = postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("discounting")
            .connect_timeout(CONNECT_TIMEOUT)
            .options("-c TimeZone=UTC -c DateStyle=ISO -c statement_timeout=0");
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
            .connect(NoTls)
            .map_err(|e| format!("cannot connect to {}: {}", self.describe(), error_text(&e)))
    }
}

/// A URL with its password, if any, hidden.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The password `~/.pgpass` (or `PGPASSFILE`) gives, as libpq reads it: the first line
/// `host:port:db:user:password` that matches, `*` matching anything, `\` escaping.
fn pgpass_password(host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".pgpass"))
        })?;
    let text = std::fs::read_to_string(path).ok()?;
    let port = port.to_string();
    let wanted = [host, port.as_str(), dbname, user];
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let fields = pgpass_fields(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, value)| field == "*" || field == value);
            matches.then(|| fields[4].clone())
        })
}

fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            ':' => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The server's own words for an error (its message, or the I/O failure).
pub fn error_text(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
    }
}

/// An SQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_are_read_as_libpq_does() {
        assert_eq!(
            pgpass_fields(r"h:5432:db:u:p\:w\\d"),
            ["h", "5432", "db", "u", r"p:w\d"]
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("postgres://me:secret@h/db"),
            "postgres://me:***@h/db"
        );
        assert_eq!(redacted("postgres://me@h/db"), "postgres://me@h/db");
    }
}
