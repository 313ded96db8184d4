//! curl and raw TCP clients against the boot server's HTTP at 10.77.0.1:80 (host-sim, or the
//! stand-in until host-sim serves files: see `e2e::boot`), from a client namespace at 10.77.0.10:
//! - GET byte-exact (1 MiB and 16 MiB random files), HEAD's Content-Length, single byte ranges
//!   (206 with the right bytes, 416 past the end), 404, no way out of the boot directory.
//! - `/boot.ipxe?mac=..&uuid=..`: the default script (kernel with `initrd=`, initrd, boot).
//! - Keep-alive: curl fetching two URLs in one invocation connects once.
//! - Slow clients (request heads trickled a byte at a time) are cut off by the server's header
//!   deadline, and a 10,000-line header gets 431 or a closed connection; meanwhile and afterwards
//!   curl is served as usual.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use e2e::boot::{self, ClientBench, DEFAULT_SCRIPT, Override, ServerKind};
use e2e::net::in_named_netns;
use e2e::{APPLIANCE_IP, require_root, require_tool};

const SMALL: usize = 1 << 20;
const BIG: usize = 16 << 20;
/// How long the server may let a trickled request head live (host-sim: 10 s).
const CUT_OFF_WITHIN: Duration = Duration::from_secs(30);
/// Slow clients at once.
const SLOW_CLIENTS: usize = 8;

fn bench(test: &str, overrides: &[Override]) -> ClientBench {
    require_tool("curl", "curl");
    ClientBench::new(
        test,
        &[("small.bin", SMALL, 11), ("big.bin", BIG, 12)],
        overrides,
    )
}

fn url(path: &str) -> String {
    format!("http://{APPLIANCE_IP}/{path}")
}

/// Runs curl in the client namespace; returns (exit ok, stdout, stderr).
fn curl(b: &ClientBench, args: &[&str]) -> (bool, String, String) {
    let out = b
        .cli
        .run("curl", args, boot::CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("curl {args:?}: {e}"));
    (out.success(), out.stdout, out.stderr)
}

/// `curl -w '%{http_code}' -o FILE [args] URL`: the status code.
fn status(b: &ClientBench, args: &[&str], out: &str, u: &str) -> String {
    let mut a = vec!["-sS", "-o", out, "-w", "%{http_code}"];
    a.extend_from_slice(args);
    a.push(u);
    let (_, stdout, stderr) = curl(b, &a);
    assert!(!stdout.is_empty(), "curl {a:?}: no status: {stderr}");
    stdout
}

#[test]
fn get_head_and_ranges_are_byte_exact() {
    if !require_root() {
        return;
    }
    let mut b = bench("http-get", &[]);
    for name in ["small.bin", "big.bin"] {
        let got = b.wd.file(&format!("got-{name}"));
        let g = got.to_str().expect("utf-8").to_owned();
        b.fetch(
            &format!("curl GET /{name}"),
            "curl",
            &["-sS", "--fail", "-o", &g, &url(name)],
            &got,
            name,
        );
    }

    // HEAD: the length, no body.
    let (ok, head, err) = curl(&b, &["-sS", "--fail", "-I", &url("big.bin")]);
    assert!(ok, "HEAD failed: {err}");
    let first = head.lines().next().unwrap_or("");
    assert!(first.contains(" 200"), "HEAD: {head}");
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or_else(|| panic!("HEAD without Content-Length: {head}"));
    assert_eq!(len, BIG, "HEAD Content-Length");
    eprintln!("HEAD /big.bin: {first}, Content-Length {len}");

    // Ranges.
    let data = std::fs::read(b.served("small.bin")).expect("small.bin");
    let n = data.len();
    let part = b.wd.file("part");
    let p = part.to_str().expect("utf-8").to_owned();
    for (range, want) in [
        ("0-0", &data[..1]),
        ("1000-1999", &data[1000..2000]),
        ("-500", &data[n - 500..]),
        ("1048000-", &data[1_048_000..]),
        ("1048000-99999999", &data[1_048_000..]),
    ] {
        let code = status(&b, &["-r", range], &p, &url("small.bin"));
        let got = std::fs::read(&part).expect("part");
        eprintln!("Range bytes={range}: {code}, {} bytes", got.len());
        assert_eq!(code, "206", "Range bytes={range}");
        assert!(
            got == want,
            "Range bytes={range}: wrong bytes ({} bytes)",
            got.len()
        );
    }
    let code = status(&b, &["-r", "2000000-2000100"], &p, &url("small.bin"));
    eprintln!("Range bytes=2000000-2000100 of a 1 MiB file: {code}");
    assert_eq!(code, "416", "a range past the end");

    // Nothing but the boot directory.
    let code = status(&b, &[], &p, &url("missing.bin"));
    assert_eq!(code, "404", "a missing file");
    let host_passwd = std::fs::read("/etc/passwd").unwrap_or_default();
    for path in [
        "../../etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "/etc/passwd",
        "boot/../../../etc/passwd",
    ] {
        let code = status(&b, &["--path-as-is"], &p, &url(path));
        let got = std::fs::read(&part).unwrap_or_default();
        eprintln!("GET /{path}: {code}");
        assert!(
            host_passwd.is_empty() || !got.starts_with(&host_passwd[..host_passwd.len().min(32)]),
            "GET /{path} served the host's /etc/passwd"
        );
        assert_ne!(code, "200", "GET /{path}");
    }
    b.srv.check_alive().unwrap_or_else(|e| panic!("{e}"));
    b.srv.stop();
}

#[test]
fn boot_ipxe_is_the_machines_script() {
    if !require_root() {
        return;
    }
    let other = "52:54:00:12:34:57";
    let target = "http://10.77.0.9/other.ipxe";
    let mut b = bench(
        "http-script",
        &[Override::Script {
            mac: other.into(),
            url: target.into(),
        }],
    );
    let script = |q: &str| -> Vec<String> {
        let (ok, body, err) = curl(&b, &["-sS", "--fail", &format!("{}{q}", url("boot.ipxe"))]);
        assert!(ok, "GET /boot.ipxe{q}: {err}");
        eprintln!("GET /boot.ipxe{q}:\n{}", body.trim_end());
        body.lines()
            .map(|l| l.trim_end().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let q = "?mac=52:54:00:12:34:56&uuid=12345678-9abc-4def-8123-000000b00701";
    assert_eq!(script(q), DEFAULT_SCRIPT, "the default script");
    assert_eq!(script(""), DEFAULT_SCRIPT, "no query: the default script");
    if b.srv.kind == ServerKind::HostSim {
        // A machine whose target is another script chains it.
        let s = script(&format!("?mac={other}"));
        assert_eq!(s.first().map(String::as_str), Some("#!ipxe"));
        assert!(
            s.iter()
                .any(|l| l.starts_with("chain") && l.contains(target)),
            "{s:?}"
        );
    }
    b.srv.stop();
}

#[test]
fn keep_alive_reuses_the_connection() {
    if !require_root() {
        return;
    }
    let mut b = bench("http-keepalive", &[]);
    let (a, c) = (b.wd.file("a.bin"), b.wd.file("b.bin"));
    let (sa, sc) = (
        a.to_str().expect("utf-8").to_owned(),
        c.to_str().expect("utf-8").to_owned(),
    );
    let (ok, out, err) = curl(
        &b,
        &[
            "-sS",
            "-v",
            "--fail",
            "-w",
            "%{http_code} connects=%{num_connects}\n",
            "-o",
            &sa,
            &url("small.bin"),
            "-o",
            &sc,
            &url("big.bin"),
        ],
    );
    assert!(ok, "curl with two URLs: {err}");
    boot::assert_same_file(&a, &b.served("small.bin"));
    boot::assert_same_file(&c, &b.served("big.bin"));
    let lines: Vec<&str> = out.lines().collect();
    eprintln!("two URLs in one curl: {lines:?}");
    assert_eq!(lines, ["200 connects=1", "200 connects=0"], "{err}");
    assert!(
        err.contains("Re-using existing connection"),
        "curl did not reuse the connection:\n{err}"
    );
    b.srv.check_alive().unwrap_or_else(|e| panic!("{e}"));
    b.srv.stop();
}

/// Trickles a request head one byte every 100 ms (it never ends: the last header grows) until
/// the server answers or closes; returns the seconds until then and what came back.
fn trickle(to: SocketAddr, limit: Duration) -> Result<(f64, String), String> {
    let mut s =
        TcpStream::connect_timeout(&to, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| e.to_string())?;
    let head = b"GET /small.bin HTTP/1.1\r\nHost: 10.77.0.1\r\nX-Slow: ";
    let start = Instant::now();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded by `limit` (about 8 rounds a second).
    for i in 0.. {
        if start.elapsed() > limit {
            return Err(format!("still open after {limit:?}"));
        }
        let byte = head.get(i).copied().unwrap_or(b'a');
        if let Err(e) = s.write_all(&[byte]) {
            return Ok((start.elapsed().as_secs_f64(), format!("write failed: {e}")));
        }
        match s.read(&mut buf) {
            Ok(0) => {
                let what = if reply.is_empty() {
                    "closed".to_owned()
                } else {
                    first_line(&reply)
                };
                return Ok((start.elapsed().as_secs_f64(), what));
            }
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Ok((start.elapsed().as_secs_f64(), format!("{e}"))),
        }
        thread::sleep(Duration::from_millis(80));
    }
    unreachable!()
}

fn first_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn slow_clients_are_cut_off_and_others_are_served() {
    if !require_root() {
        return;
    }
    let mut b = bench("http-slow", &[]);
    let to: SocketAddr = format!("{APPLIANCE_IP}:80").parse().expect("addr");
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| {
            let ns = b.cli.name().to_owned();
            thread::spawn(move || in_named_netns(&ns, move || trickle(to, CUT_OFF_WITHIN)))
        })
        .collect();
    // Meanwhile curl is served as usual.
    thread::sleep(Duration::from_secs(1));
    for i in 0..5 {
        let got = b.wd.file(&format!("got-{i}.bin"));
        let g = got.to_str().expect("utf-8").to_owned();
        let secs = b.fetch(
            &format!("curl GET /small.bin beside {SLOW_CLIENTS} slow clients"),
            "curl",
            &["-sS", "--fail", "-o", &g, &url("small.bin")],
            &got,
            "small.bin",
        );
        assert!(secs < 5.0, "a normal client waited {secs:.1} s");
        thread::sleep(Duration::from_millis(500));
    }
    for t in slow {
        let (secs, what) = t
            .join()
            .expect("slow client thread")
            .unwrap_or_else(|e| panic!("slow client: {e}"));
        eprintln!("slow client cut off after {secs:.1} s: {what}");
        assert!(
            !what.contains(" 200"),
            "a trickled request head was answered 200: {what}"
        );
    }
    b.srv.check_alive().unwrap_or_else(|e| panic!("{e}"));
    b.srv.stop();
}

/// What a header flood got: the status line (or how the connection ended), the seconds to the
/// first byte of the answer and to the end of the connection.
struct Flood {
    what: String,
    first_byte: Option<f64>,
    closed: f64,
}

/// Sends a request with 10,000 header lines (from a second thread, so the answer is timed while
/// the request is still being sent).
fn header_flood(to: SocketAddr) -> Result<Flood, String> {
    let mut s =
        TcpStream::connect_timeout(&to, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    w.set_write_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut req = b"GET /small.bin HTTP/1.1\r\nHost: 10.77.0.1\r\n".to_vec();
    for i in 0..10_000 {
        req.extend_from_slice(format!("X-Flood-{i}: {i}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let start = Instant::now();
    let writer = thread::spawn(move || w.write_all(&req));
    let mut reply = Vec::new();
    let mut first_byte = None;
    let mut buf = [0u8; 4096];
    let ended = loop {
        match s.read(&mut buf) {
            Ok(0) => break "closed".to_owned(),
            Ok(n) => {
                first_byte.get_or_insert(start.elapsed().as_secs_f64());
                reply.extend_from_slice(&buf[..n]);
            }
            Err(e) => break format!("closed ({e})"),
        }
    };
    let closed = start.elapsed().as_secs_f64();
    let _ = s.shutdown(std::net::Shutdown::Both);
    let wrote = writer.join().map_err(|_| "writer panicked")?;
    let what = if reply.is_empty() {
        match wrote {
            Err(e) => format!("{ended} while sending ({e})"),
            Ok(()) => ended,
        }
    } else {
        first_line(&reply)
    };
    Ok(Flood {
        what,
        first_byte,
        closed,
    })
}

#[test]
fn header_flood_gets_431_or_close() {
    if !require_root() {
        return;
    }
    let mut b = bench("http-flood", &[]);
    let to: SocketAddr = format!("{APPLIANCE_IP}:80").parse().expect("addr");
    let ns = b.cli.name().to_owned();
    let flood = thread::spawn(move || in_named_netns(&ns, move || header_flood(to)));
    let got = b.wd.file("got.bin");
    let g = got.to_str().expect("utf-8").to_owned();
    b.fetch(
        "curl GET /big.bin beside the header flood",
        "curl",
        &["-sS", "--fail", "-o", &g, &url("big.bin")],
        &got,
        "big.bin",
    );
    let f = flood
        .join()
        .expect("flood thread")
        .unwrap_or_else(|e| panic!("header flood: {e}"));
    eprintln!(
        "10,000 header lines: {} (first byte after {}, connection closed after {:.2} s)",
        f.what,
        f.first_byte.map_or("-".to_owned(), |t| format!("{t:.2} s")),
        f.closed
    );
    assert!(
        f.what.contains(" 431") || f.what.starts_with("closed"),
        "10,000 header lines: {}",
        f.what
    );
    b.fetch(
        "curl GET /small.bin afterwards",
        "curl",
        &["-sS", "--fail", "-o", &g, &url("small.bin")],
        &got,
        "small.bin",
    );
    b.srv.stop();
}
