//! Private PostgreSQL clusters on free ports, so a test can stop and restart its database.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::tools::free_port;

/// A PostgreSQL cluster of a test's own (trust authentication, user `postgres`), stopped
/// when dropped. As root it runs as the `postgres` user: PostgreSQL refuses to run as root.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    running: bool,
    durable: bool,
}

fn bindir() -> PathBuf {
    if let Some(p) = std::env::var_os("MQTTCAL_PG_BINDIR").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.join("initdb").exists(),
            "MQTTCAL_PG_BINDIR={} has no initdb: run `scripts/test.sh`, which installs the PostgreSQL server",
            p.display()
        );
        return p;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL server binaries not found: run the tests with `scripts/test.sh`, which installs them and sets MQTTCAL_PG_BINDIR")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

impl Postgres {
    /// Creates a cluster in a temporary directory and starts it on a free port, with
    /// `fsync` off (tests want speed, not crash safety).
    pub fn start() -> Self {
        Self::create(false)
    }

    /// Like [`Postgres::start`] with the server's durable defaults (`fsync` on), for
    /// benchmarks that must show what a production server does.
    pub fn start_durable() -> Self {
        Self::create(true)
    }

    fn create(durable: bool) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let pg = Self {
            bindir: bindir(),
            port: free_port(),
            dir,
            running: false,
            durable,
        };
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot give the cluster directory to the postgres user");
        }
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let mut pg = pg;
        pg.start_server();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs a server binary (as `postgres` when we are root).
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let bin = self.bindir.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.args(args).current_dir(self.dir.path());
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn start_server(&mut self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync={}",
            self.port,
            self.dir.path().display(),
            if self.durable { "on" } else { "off" }
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
        self.running = true;
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ],
        );
        self.url(name)
    }

    /// Dumps database `db` with `pg_dump` (plain SQL), the documented backup, into a file
    /// in the server's own directory (where the server's user may write); its path.
    pub fn dump(&self, db: &str) -> std::path::PathBuf {
        let file = self.dir.path().join(format!("{db}.sql"));
        let port = self.port.to_string();
        let f = file.display().to_string();
        let args = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-f",
            &f,
            db,
        ];
        self.run("pg_dump", &args);
        file
    }

    /// Restores a `pg_dump` file (from [`Postgres::dump`]) into database `db` (which must
    /// exist, empty) with psql, stopping at the first error.
    pub fn restore(&self, db: &str, file: &std::path::Path) {
        let port = self.port.to_string();
        let f = file.display().to_string();
        self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-f",
                &f,
            ],
        );
    }

    /// Runs SQL with psql and returns what it printed (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-At",
                "-c",
                sql,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Stops the server (fast shutdown) and waits for it.
    pub fn stop(&mut self) {
        if self.running {
            self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
            self.running = false;
        }
    }

    /// Starts a stopped server again on the same port.
    pub fn start_again(&mut self) {
        if !self.running {
            self.start_server();
        }
    }

    /// Stops and starts the server on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.start_server();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let bin = self.bindir.join("pg_ctl");
            let data = self.data();
            let mut cmd = if is_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin);
                c
            } else {
                Command::new(bin)
            };
            let _ = cmd
                .args(["-D", &data, "-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}
