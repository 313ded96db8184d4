//! Kea's perfdhcp and its statistics report.
//!
//! perfdhcp -4 acts as a relay: it binds LOCAL_IP:67, sets giaddr = LOCAL_IP and expects the
//! server to answer to giaddr:67. Exit status: 0 success, 1 general error, 2 bad arguments,
//! 3 "no general failures, but one or more exchanges were unsuccessful" (drops).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::net::Netns;
use crate::require_tool;

/// A finished perfdhcp run.
#[derive(Debug)]
pub struct Report {
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// `***Statistics for: DISCOVER-OFFER***` -> {"sent packets": "200", "drops": "0", ...};
    /// lines before the first such header go to section "".
    pub sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl Report {
    pub fn parse(code: Option<i32>, stdout: &str, stderr: &str) -> Report {
        let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut cur = String::new();
        for line in stdout.lines() {
            let t = line.trim();
            if let Some(h) = t
                .strip_prefix("***Statistics for:")
                .and_then(|h| h.strip_suffix("***"))
            {
                cur = h.trim().to_owned();
                continue;
            }
            if t.starts_with("***") {
                continue;
            }
            if let Some((k, v)) = t.split_once(':') {
                sections
                    .entry(cur.clone())
                    .or_default()
                    .entry(k.trim().to_owned())
                    .or_insert_with(|| v.trim().to_owned());
            }
        }
        Report {
            code,
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
            sections,
        }
    }

    /// The leading number of a statistic ("99.5 %" -> 99.5).
    pub fn num(&self, section: &str, key: &str) -> Option<f64> {
        let v = self.sections.get(section)?.get(key)?;
        v.split_whitespace().next()?.parse().ok()
    }

    /// Checks that both exchanges of `section`s sent `n` packets and got every answer: no drops,
    /// orphans, rejected leases, duplicate addresses or malformed packets, and exit status 0.
    pub fn assert_clean(&self, n: u64) {
        let ctx = || format!("perfdhcp report:\n{}\n{}", self.stdout, self.stderr);
        assert_eq!(
            self.code,
            Some(0),
            "perfdhcp exit status (3 = drops) {}",
            ctx()
        );
        assert_eq!(self.num("", "Malformed packets"), Some(0.0), "{}", ctx());
        for s in ["DISCOVER-OFFER", "REQUEST-ACK"] {
            let get = |k: &str| {
                self.num(s, k)
                    .unwrap_or_else(|| panic!("no {s}/{k:?} in {}", ctx()))
            };
            assert_eq!(get("sent packets"), n as f64, "{s} sent {}", ctx());
            assert_eq!(get("received packets"), n as f64, "{s} received {}", ctx());
            for k in [
                "drops",
                "orphans",
                "rejected leases",
                "non unique addresses",
            ] {
                assert_eq!(get(k), 0.0, "{s} {k} {}", ctx());
            }
        }
    }
}

/// Runs `perfdhcp ARGS...` in `ns` (killed after `timeout`).
pub fn run(ns: &Netns, args: &[&str], timeout: Duration) -> Report {
    require_tool("perfdhcp", "kea-admin");
    let out = ns
        .run("perfdhcp", args, timeout)
        .unwrap_or_else(|e| panic!("perfdhcp: {e}"));
    Report::parse(out.status.code(), &out.stdout, &out.stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_report() {
        let out = "Running: perfdhcp -4\n***Rate statistics***\nRate: 33.3 4-way exchanges/second, \
                   expected rate: 50\n\n***Malformed Packets***\nMalformed packets: 0\n\
                   ***Statistics for: DISCOVER-OFFER***\nsent packets: 2\nreceived packets: 2\n\
                   drops: 0\ndrops ratio: 0 %\norphans: 0\nrejected leases: 0\n\
                   non unique addresses: 0\nmin delay: 0.2 ms\n\
                   ***Statistics for: REQUEST-ACK***\nsent packets: 2\nreceived packets: 2\n\
                   drops: 0\ndrops ratio: 0.000 %\norphans: 0\nrejected leases: 0\n\
                   non unique addresses: 0\n";
        let r = Report::parse(Some(0), out, "");
        assert_eq!(r.num("", "Rate"), Some(33.3));
        assert_eq!(r.num("DISCOVER-OFFER", "drops ratio"), Some(0.0));
        r.assert_clean(2);
    }
}
