//! Bounded waiting: every wait has a deadline and every loop a maximum count.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Interval between two looks at a file or a process.
pub const POLL: Duration = Duration::from_millis(50);

/// Calls `f` every [`POLL`] until it returns `Ok(Some(_))` (done), `Err(_)` (give up at once) or
/// `timeout` has passed. The number of calls is bounded by `timeout / POLL + 2`.
pub fn poll_until<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<Option<T>, String>,
) -> Result<T, String> {
    let start = Instant::now();
    let max_polls = timeout.as_millis() / POLL.as_millis() + 2;
    for _ in 0..max_polls {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            break;
        }
        sleep(POLL);
    }
    Err(format!("timed out after {timeout:?} waiting for {what}"))
}

/// A log file written by another process (or a pipe drained into a file), read line by line.
#[derive(Clone, Debug)]
pub struct LogFile {
    path: PathBuf,
}

impl LogFile {
    pub fn new(path: impl Into<PathBuf>) -> LogFile {
        LogFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The complete lines written so far (a last line without its newline is left out).
    pub fn lines(&self) -> Vec<String> {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let complete = match text.rfind('\n') {
            Some(i) => &text[..i],
            None => return Vec::new(),
        };
        complete.split('\n').map(str::to_owned).collect()
    }

    /// Number of complete lines so far: a mark to wait for lines after it.
    pub fn mark(&self) -> usize {
        self.lines().len()
    }

    /// The last `n` lines, for failure messages (the incomplete last line included).
    pub fn tail(&self, n: usize) -> String {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits until a complete line with index >= `from` satisfies `pred`; returns its index and
    /// text. `alive` is consulted on every poll: an `Err` from it (say, "process exited") ends the
    /// wait at once.
    pub fn wait_for_from(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
        mut alive: impl FnMut() -> Result<(), String>,
    ) -> Result<(usize, String), String> {
        let what = format!("a matching line in {}", self.path.display());
        poll_until(&what, timeout, || {
            let found = self
                .lines()
                .into_iter()
                .enumerate()
                .skip(from)
                .find(|(_, l)| pred(l));
            match found {
                Some(f) => Ok(Some(f)),
                None => alive().map(|()| None),
            }
        })
    }

    /// Waits until any complete line satisfies `pred`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        self.wait_for_from(0, timeout, pred, || Ok(()))
            .map(|(_, l)| l)
    }
}

/// Waits (bounded by `timeout`) until a complete line of the file at `path` satisfies `pred`;
/// returns that line. A pipe is read by draining it into a file first (see [`crate::proc::Child`]).
pub fn wait_for_line(
    path: &Path,
    pred: impl Fn(&str) -> bool,
    timeout: Duration,
) -> Result<String, String> {
    LogFile::new(path).wait_for(timeout, pred)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn waits_for_complete_lines_only() {
        let dir = std::env::temp_dir().join(format!("e2e-wait-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.log");
        let mut f = std::fs::File::create(&p).unwrap();
        write!(f, "one\ntwo\nthr").unwrap();
        let log = LogFile::new(&p);
        assert_eq!(log.lines(), vec!["one", "two"]);
        assert_eq!(log.mark(), 2);
        let t = Duration::from_millis(120);
        assert!(wait_for_line(&p, |l| l == "thr", t).is_err());
        writeln!(f, "ee").unwrap();
        assert_eq!(
            wait_for_line(&p, |l| l.starts_with("thr"), t).unwrap(),
            "three"
        );
        assert_eq!(
            log.wait_for_from(1, t, |l| l.starts_with('t'), || Ok(()))
                .unwrap(),
            (1, "two".to_string())
        );
        assert!(
            log.wait_for_from(0, t, |_| false, || Err("dead".into()))
                .unwrap_err()
                .contains("dead")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
