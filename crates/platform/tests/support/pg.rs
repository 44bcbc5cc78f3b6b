//! A throw-away PostgreSQL server for tests: `initdb` into a temporary directory, started on
//! a free port on 127.0.0.1 (its Unix socket in the same directory), stopped and deleted on
//! drop.
//!
//! ```ignore
//! mod support;
//! use support::pg::PgServer;
//!
//! let Some(server) = PgServer::start_or_skip("my test") else { return };
//! let url = server.create_database("my_test"); // postgres://postgres@127.0.0.1:PORT/my_test
//! let store = PgStore::connect(&url).await?;
//! ```
//!
//! - Binaries: `$BMSLINK_PG_BIN` if set, else `/usr/lib/postgresql/15/bin` (Debian's
//!   `postgresql-15`), else the newest `/usr/lib/postgresql/*/bin`. Without them the test
//!   prints `SKIPPED: PostgreSQL 15 binaries not found` and returns, except under `CI=true`,
//!   where it fails.
//! - PostgreSQL refuses to run as root: when the tests run as root (here and in CI), `initdb`
//!   and `pg_ctl` run as `nobody` (through `runuser`, or `setpriv` without it), and the
//!   temporary directory is handed to `nobody`.
//! - The server trades durability for speed (`fsync=off`, `synchronous_commit=off`,
//!   `full_page_writes=off`): fine for tests and benchmarks of the client side, not a figure
//!   of a production server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Who runs the server when the tests run as root.
const UNPRIVILEGED_USER: &str = "nobody";

/// A running server; stopped (and its files deleted) on drop.
pub struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    run_as: Option<&'static str>,
}

impl PgServer {
    /// Starts a server; `None` (after saying so loudly) when the binaries are missing and
    /// `CI` is not `true`. Panics when the server cannot start.
    pub fn start_or_skip(test: &str) -> Option<PgServer> {
        let Some(bin) = find_binaries() else {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{test}: PostgreSQL 15 binaries not found (apt-get install postgresql-15)");
            }
            eprintln!(
                "SKIPPED: PostgreSQL 15 binaries not found ({test}); install postgresql-15 or \
                 set BMSLINK_PG_BIN to its bin directory"
            );
            return None;
        };
        match PgServer::start(bin) {
            Ok(server) => Some(server),
            Err(why) => panic!("{test}: cannot start PostgreSQL: {why}"),
        }
    }

    /// Starts a server with the binaries in `bin`.
    pub fn start(bin: PathBuf) -> Result<PgServer, String> {
        let dir = tempfile::Builder::new()
            .prefix("bmslink-pg-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let run_as = running_as_root().then_some(UNPRIVILEGED_USER);
        if let Some(user) = run_as {
            run(Command::new("chown").arg(user).arg(dir.path()))?;
        }
        let mut server = PgServer {
            bin,
            dir,
            port: 0,
            run_as,
        };
        server.initdb()?;
        let mut last_error = String::new();
        // A free port found now may be taken by the time the server binds it: try a few.
        for _ in 0..3 {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(why) => last_error = why,
            }
        }
        Err(last_error)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` (superuser `postgres`, no password).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` and returns its URL. Panics on failure.
    pub fn create_database(&self, name: &str) -> String {
        let mut command = Command::new(self.bin.join("createdb"));
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            name,
        ]);
        if let Err(why) = run(&mut command) {
            panic!("createdb {name}: {why}");
        }
        self.url(name)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A command for a server binary, as the unprivileged user when needed.
    fn server_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = match self.run_as {
            None => Command::new(program),
            Some(user) if which("runuser") => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            Some(user) => {
                let mut command = Command::new("setpriv");
                command
                    .args([
                        &format!("--reuid={user}"),
                        "--regid=nogroup",
                        "--clear-groups",
                    ])
                    .arg(program);
                command
            }
        };
        // The unprivileged user cannot enter root's home directory.
        command.current_dir(self.dir.path());
        command
    }

    fn initdb(&self) -> Result<(), String> {
        let mut command = self.server_command("initdb");
        command.arg("-D").arg(self.data()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(&mut command).map(|_| ())
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let mut command = self.server_command("pg_ctl");
        command
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        run(&mut command).map(|_| ()).map_err(|why| {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            format!("{why}\nserver log:\n{log}")
        })
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut command = self.server_command("pg_ctl");
        command
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]);
        if let Err(why) = run(&mut command) {
            eprintln!("stopping the test PostgreSQL: {why}");
        }
    }
}

/// The PostgreSQL binaries, if installed.
pub fn find_binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BMSLINK_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|dir| dir.join("initdb").exists());
    }
    let preferred = PathBuf::from("/usr/lib/postgresql/15/bin");
    if preferred.join("initdb").exists() {
        return Some(preferred);
    }
    let mut others: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    others.sort();
    others.pop()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

fn run(command: &mut Command) -> Result<Output, String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
