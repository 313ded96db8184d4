//! The built `provider` binary: `serve` on free loopback ports, and the CLI against it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_provider");

/// A running `provider serve`, from its ready line; killed when dropped, however the test
/// ends.
pub struct Service {
    child: Child,
    /// Kept open: the service's stdout stays writable.
    _stdout: BufReader<ChildStdout>,
    pub api: String,
    /// The TLS front's address.
    pub listen: String,
    /// The CA fingerprint, hex.
    pub ca: String,
}

impl Service {
    /// Starts the service on `dir` and waits until it is ready.
    pub fn start(dir: &Path) -> Service {
        let mut child = Command::new(BIN)
            .args(["serve", "--state-dir"])
            .arg(dir)
            .args(["--api", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {name} in the ready line {line:?}"))
                .to_string()
        };
        assert!(line.starts_with("ready "), "{line:?}");
        Service {
            api: field("api"),
            listen: field("listen"),
            ca: field("ca"),
            child,
            _stdout: stdout,
        }
    }
}

impl Service {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn cli(api: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--api")
        .arg(api)
        .args(args)
        .output()
        .unwrap()
}

/// Runs a command that must succeed; its stdout.
pub fn ok(api: &str, args: &[&str]) -> String {
    let out = cli(api, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail cleanly; its stderr.
pub fn fails(api: &str, args: &[&str]) -> String {
    let out = cli(api, args);
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}
