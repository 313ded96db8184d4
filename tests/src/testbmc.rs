//! Runs the home-made suite-17 test BMC (`test-bmc`, see `src/bin/test-bmc.rs` for why it
//! exists) for tests: its state file, its log, and ipmitool against it.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

/// A running test-bmc with its own work directory (state file and log), killed on drop.
pub struct TestBmc {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

/// What one ipmitool run gave.
pub struct Run {
    pub ok: bool,
    pub out: String,
    pub err: String,
}

pub fn ipmitool_missing() -> bool {
    let found = Command::new("ipmitool")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: ipmitool is not installed");
    }
    !found
}

/// A loopback UDP port that was free a moment ago.
pub fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port");
    s.local_addr().expect("local addr").port()
}

impl TestBmc {
    /// Starts test-bmc (the binary at `bin`: integration tests pass
    /// `env!("CARGO_BIN_EXE_test-bmc")`) offering `suites`, and waits for its `ready` line.
    pub fn start(bin: &str, test: &str, suites: &str) -> TestBmc {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "test-bmc-{}-{test}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("work dir");
        let port = free_port();
        let log = fs::File::create(dir.join("bmc.log")).expect("log file");
        let mut child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--user",
                "admin",
                "--password",
                "password",
                "--suites",
                suites,
            ])
            .arg("--state-file")
            .arg(dir.join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn test-bmc");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read test-bmc stdout");
        let bmc = TestBmc { child, port, dir };
        assert_eq!(
            line.trim(),
            "ready",
            "test-bmc did not start:\n{}",
            bmc.log()
        );
        bmc
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("bmc.log")).unwrap_or_default()
    }

    /// The state file as `key=value` lines; `key` must be present.
    pub fn state(&self, key: &str) -> String {
        let text = fs::read_to_string(self.dir.join("state")).expect("state file");
        let prefix = format!("{key}=");
        let line = text.lines().find_map(|l| l.strip_prefix(&prefix));
        line.unwrap_or_else(|| panic!("no {key} in state file:\n{text}"))
            .to_owned()
    }

    /// Runs `ipmitool -I lanplus` against `port` (this BMC, or a proxy in front of it) with the
    /// given user, password and cipher suite (`None`: let ipmitool pick), at most 20 s.
    pub fn ipmitool_at(
        port: u16,
        user: &str,
        password: &str,
        suite: Option<u8>,
        args: &str,
    ) -> Run {
        let mut cmd = Command::new("timeout");
        cmd.args([
            "20",
            "ipmitool",
            "-I",
            "lanplus",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-U", user, "-P", password, "-N", "1", "-R", "2"]);
        if let Some(s) = suite {
            cmd.args(["-C", &s.to_string()]);
        }
        let o = cmd
            .args(args.split_whitespace())
            .output()
            .expect("run ipmitool");
        let run = Run {
            ok: o.status.success(),
            out: String::from_utf8_lossy(&o.stdout).into_owned(),
            err: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        eprintln!("$ ipmitool -C {suite:?} {args}\n{}{}", run.out, run.err);
        run
    }

    pub fn ipmitool(&self, suite: u8, args: &str) -> Run {
        TestBmc::ipmitool_at(self.port, "admin", "password", Some(suite), args)
    }

    /// Runs ipmitool and expects success; returns its stdout.
    pub fn ok(&self, suite: u8, args: &str) -> String {
        let run = self.ipmitool(suite, args);
        assert!(
            run.ok,
            "ipmitool {args} failed: {}\nBMC log:\n{}",
            run.err,
            self.log()
        );
        run.out
    }
}

impl Drop for TestBmc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("kept {}; BMC log:\n{}", self.dir.display(), self.log());
        }
    }
}

/// Asserts that `text` has a line that, with runs of spaces squeezed, contains `want`.
pub fn has_line(text: &str, want: &str) {
    let squeeze = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.lines().any(|l| squeeze(l).contains(want)),
        "no line with {want:?} in:\n{text}"
    );
}
