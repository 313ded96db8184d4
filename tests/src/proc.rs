//! Processes: a guard that kills its process on drop, and commands run with a time limit.

use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use crate::wait::{LogFile, poll_until};

/// A spawned process whose stdout and stderr go (appended, so lines stay whole) to one log file.
/// Dropping it kills the process (SIGKILL) and reaps it.
pub struct Child {
    name: String,
    inner: std::process::Child,
    log: LogFile,
    status: Option<ExitStatus>,
}

impl Child {
    /// Spawns `cmd` with stdin from /dev/null and stdout+stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Child {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = out.try_clone().expect("dup log fd");
        let inner = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        Child {
            name: name.to_owned(),
            inner,
            log: LogFile::new(log),
            status: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    pub fn log(&self) -> &LogFile {
        &self.log
    }

    pub fn log_path(&self) -> PathBuf {
        self.log.path().to_path_buf()
    }

    /// The exit status, if the process has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.inner.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.exited().is_none()
    }

    /// `Err` with the end of the log once the process has exited: for the `alive` check of
    /// [`LogFile::wait_for_from`].
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.exited() {
            None => Ok(()),
            Some(st) => Err(format!(
                "{} exited ({st}); its log {} ends with:\n{}",
                self.name,
                self.log.path().display(),
                self.log.tail(30)
            )),
        }
    }

    /// Sends a signal (if the process still runs).
    pub fn signal(&mut self, sig: i32) {
        if self.is_running() {
            // SAFETY: kill(2) on the pid of our own unreaped child: the pid cannot have been reused.
            unsafe {
                libc::kill(self.inner.id() as libc::pid_t, sig);
            }
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let what = format!("{} to exit", self.name);
        poll_until(&what, timeout, || Ok(self.exited())).ok()
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`. Returns the exit status.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        if let Some(st) = self.wait_exit(grace) {
            return Some(st);
        }
        self.kill()
    }

    /// SIGKILL and reap (bounded).
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.is_running() {
            let _ = self.inner.kill();
        }
        self.wait_exit(Duration::from_secs(5))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Runs `cmd` to completion, killing it after `timeout`. Errors when it cannot be spawned or did not
/// finish in time.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {desc}: {e}"))?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let waited = poll_until(&desc, timeout, || {
        child.try_wait().map_err(|e| format!("wait {desc}: {e}"))
    });
    let status = match waited {
        Ok(st) => st,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Runs a short administrative command (10 s limit) and panics with its output unless it succeeds.
pub fn must(prog: &str, args: &[&str]) -> String {
    let out = run_timeout(Command::new(prog).args(args), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.success(),
        "`{prog} {}` failed ({}): {}{}",
        args.join(" "),
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}
