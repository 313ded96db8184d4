//! Real TFTP clients against the boot server at 10.77.0.1 (host-sim, or the stand-in until host-sim
//! serves files: see `e2e::boot`), from a client namespace at 10.77.0.10:
//! - tftp-hpa (RFC 1350 only: 512-byte lockstep), atftp (blksize 1468, windowsize 8) and curl
//!   (blksize 1468) fetch a 1 MiB and a 32.3 MiB random file byte-exact; the latter has 66,136
//!   blocks at 512 bytes, so tftp-hpa's transfer crosses the 16-bit block number rollover.
//! - Hostile datagrams from a raw UDP socket (traversal, absolute names, NUL in names, oversized and
//!   truncated packets, unknown opcodes, option floods, absurd option values, WRQ, a stranger
//!   poking a running transfer's port) while curl fetches the big file: each is refused or
//!   dropped, nothing outside the boot directory is served, nothing is written, the big transfer
//!   is byte-exact and the server still serves afterwards.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::boot::{self, CLIENT_IP, ClientBench, ServerKind};
use e2e::net::in_netns;
use e2e::proc::Child;
use e2e::{APPLIANCE_IP, require_root, require_tool};

const SMALL: usize = 1 << 20;
/// 66,136 blocks of 512 bytes (block numbers wrap after 65,535) plus a partial one.
const BIG: usize = (32 << 20) + 300 * 1024 + 100;
/// Upper bound for one client run (the 512-byte lockstep transfer of BIG is the slowest).
const CLIENT_TIMEOUT: Duration = boot::CLIENT_TIMEOUT;

fn bench(test: &str) -> ClientBench {
    ClientBench::new(test, &[("small.bin", SMALL, 1), ("big.bin", BIG, 2)], &[])
}

#[test]
fn tftp_hpa_fetches_byte_exact_across_block_rollover() {
    if !require_root() {
        return;
    }
    require_tool("tftp", "tftp-hpa");
    let mut b = bench("tftp-hpa");
    for name in ["small.bin", "big.bin"] {
        let got = b.wd.file(&format!("got-{name}"));
        let g = got.to_str().expect("utf-8");
        b.fetch(
            &format!("tftp-hpa get {name} (512-byte blocks)"),
            "tftp",
            &["-m", "binary", APPLIANCE_IP, "-c", "get", name, g],
            &got,
            name,
        );
    }
    b.srv.stop();
}

#[test]
fn atftp_fetches_byte_exact_with_blksize_and_windowsize() {
    if !require_root() {
        return;
    }
    require_tool("atftp", "atftp");
    let mut b = bench("tftp-atftp");
    for name in ["small.bin", "big.bin"] {
        let got = b.wd.file(&format!("got-{name}"));
        let g = got.to_str().expect("utf-8");
        let trace = b.wd.file(&format!("atftp-{name}.txt"));
        let what = format!("atftp get {name} (blksize 1468, windowsize 8)");
        let start = Instant::now();
        let out = b
            .cli
            .run(
                "atftp",
                &[
                    "--option",
                    "blksize 1468",
                    "--option",
                    "windowsize 8",
                    "--trace",
                    "-g",
                    "-r",
                    name,
                    "-l",
                    g,
                    APPLIANCE_IP,
                ],
                CLIENT_TIMEOUT,
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let secs = start.elapsed().as_secs_f64();
        // The trace (one line per packet) is long: keep only its start in the work directory.
        let text = format!("{}{}", out.stdout, out.stderr);
        let head: Vec<&str> = text.lines().take(40).collect();
        std::fs::write(&trace, head.join("\n")).expect("write trace");
        assert!(
            out.success(),
            "{what} failed ({}):\n{}",
            out.status,
            head.join("\n")
        );
        boot::assert_same_file(&got, &b.served(name));
        let oack = text
            .lines()
            .find(|l| l.contains("OACK"))
            .unwrap_or("(no OACK)")
            .trim()
            .to_owned();
        let data = text.lines().filter(|l| l.contains("DATA <block")).count();
        let acks = text.lines().filter(|l| l.contains("sent ACK")).count();
        eprintln!(
            "{what}: byte-exact in {secs:.2} s; {oack}; {data} DATA received, {acks} ACKs sent"
        );
        if b.srv.kind == ServerKind::HostSim {
            // host-sim does RFC 7440: with a window of 8 there is about one ACK per 8 blocks.
            assert!(
                oack.contains("windowsize"),
                "host-sim did not accept windowsize: {oack}"
            );
            assert!(
                acks * 4 < data.max(1),
                "{acks} ACKs for {data} DATA: no windowing"
            );
        }
        b.srv.check_alive().unwrap_or_else(|e| panic!("{e}"));
    }
    b.srv.stop();
}

#[test]
fn curl_fetches_byte_exact_with_blksize() {
    if !require_root() {
        return;
    }
    require_tool("curl", "curl");
    let mut b = bench("tftp-curl");
    for name in ["small.bin", "big.bin"] {
        let got = b.wd.file(&format!("got-{name}"));
        let g = got.to_str().expect("utf-8");
        let url = format!("tftp://{APPLIANCE_IP}/{name}");
        b.fetch(
            &format!("curl tftp get {name} (blksize 1468)"),
            "curl",
            &["-sS", "--tftp-blksize", "1468", "-o", g, &url],
            &got,
            name,
        );
    }
    b.srv.stop();
}

// ----- hostile input

const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

fn packet(op: u16, fields: &[&[u8]]) -> Vec<u8> {
    let mut p = op.to_be_bytes().to_vec();
    for f in fields {
        p.extend_from_slice(f);
        p.push(0);
    }
    p
}

fn rrq(name: &[u8], opts: &[(&str, &str)]) -> Vec<u8> {
    let mut fields: Vec<&[u8]> = vec![name, b"octet"];
    for (k, v) in opts {
        fields.push(k.as_bytes());
        fields.push(v.as_bytes());
    }
    packet(RRQ, &fields)
}

/// What came back for one hostile datagram (within the listening time).
#[derive(Debug, Default)]
struct Answer {
    /// (opcode, source port, payload after the opcode)
    replies: Vec<(u16, u16, Vec<u8>)>,
}

impl Answer {
    fn summary(&self) -> String {
        if self.replies.is_empty() {
            return "dropped (no reply)".into();
        }
        self.replies
            .iter()
            .map(|(op, _, rest)| match *op {
                ERROR if rest.len() >= 2 => format!(
                    "ERROR {} {:?}",
                    u16::from_be_bytes([rest[0], rest[1]]),
                    String::from_utf8_lossy(&rest[2..]).trim_end_matches('\0')
                ),
                OACK => format!(
                    "OACK {:?}",
                    String::from_utf8_lossy(rest).replace('\0', " ").trim()
                ),
                DATA => format!("DATA ({} bytes)", rest.len().saturating_sub(2)),
                op => format!("opcode {op} ({} bytes)", rest.len()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn first_data(&self) -> Option<&[u8]> {
        self.replies
            .iter()
            .find(|(op, _, rest)| *op == DATA && rest.len() >= 2)
            .map(|(_, _, rest)| &rest[2..])
    }

    fn has(&self, op: u16) -> bool {
        self.replies.iter().any(|(o, _, _)| *o == op)
    }
}

/// Sends `pkt` from `sock` to `to` and collects replies for `listen`; a transfer the server
/// starts (DATA or OACK) is aborted at once with an ERROR, so it does not linger.
fn probe(sock: &UdpSocket, to: SocketAddr, pkt: &[u8], listen: Duration) -> Answer {
    let mut a = Answer::default();
    if let Err(e) = sock.send_to(pkt, to) {
        // EMSGSIZE for the oversized datagrams, say: nothing left the host.
        a.replies.clear();
        eprintln!("  (send failed: {e})");
        return a;
    }
    let start = Instant::now();
    let mut buf = vec![0u8; 65536];
    // Bounded: every recv returns within 100 ms (read timeout).
    for _ in 0..200 {
        if start.elapsed() >= listen {
            break;
        }
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if n < 2 {
            continue;
        }
        let op = u16::from_be_bytes([buf[0], buf[1]]);
        if op == DATA || op == OACK {
            let abort = packet(ERROR, &[b"\x00\x00e2e abort"]);
            let _ = sock.send_to(&abort, from);
        }
        a.replies.push((op, from.port(), buf[2..n].to_vec()));
    }
    a
}

/// Every hostile case: (name, datagram, what is acceptable).
enum Rule {
    /// No DATA, no OACK, no ACK: an ERROR or nothing.
    Refused,
    /// Refused, or served with exactly the boot directory's file of that name.
    RefusedOrServes(&'static str),
    /// Anything but a write (ACK), as long as any DATA is the start of `small.bin` and no option
    /// the OACK grants is out of its RFC range.
    NoHarm,
}

fn cases() -> Vec<(String, Vec<u8>, Rule)> {
    let mut v: Vec<(String, Vec<u8>, Rule)> = Vec::new();
    let mut add = |n: &str, p: Vec<u8>, r: Rule| v.push((n.to_owned(), p, r));
    // Names that point outside the boot directory.
    for name in [
        "../../etc/passwd",
        "../../../../../../../../etc/passwd",
        "sub/../../etc/passwd",
        "./../etc/passwd",
        "..\\..\\etc\\passwd",
        "....//....//etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "/etc/hostname",
        "//etc/hostname",
        "/proc/self/environ",
    ] {
        add(
            &format!("RRQ {name:?}"),
            rrq(name.as_bytes(), &[]),
            Rule::Refused,
        );
    }
    // Absolute name of a host file that also exists in the boot directory (a decoy).
    add(
        "RRQ \"/etc/passwd\" (a decoy etc/passwd in the boot dir)",
        rrq(b"/etc/passwd", &[]),
        Rule::RefusedOrServes("etc/passwd"),
    );
    // NUL inside names.
    add(
        "RRQ \"small.bin\\0../../etc/passwd\"",
        packet(RRQ, &[b"small.bin", b"../../etc/passwd", b"octet"]),
        Rule::NoHarm,
    );
    add(
        "RRQ \"../../etc/passwd\\0small.bin\"",
        packet(RRQ, &[b"../../etc/passwd", b"small.bin", b"octet"]),
        Rule::Refused,
    );
    add(
        "RRQ \"sma\\0ll.bin\"",
        packet(RRQ, &[b"sma", b"ll.bin", b"octet"]),
        Rule::Refused,
    );
    add(
        "RRQ empty name",
        packet(RRQ, &[b"", b"octet"]),
        Rule::Refused,
    );
    add(
        "RRQ mode netascii of a missing file",
        packet(RRQ, &[b"missing.bin", b"netascii"]),
        Rule::Refused,
    );
    add(
        "RRQ mode mail",
        packet(RRQ, &[b"small.bin", b"mail"]),
        Rule::NoHarm,
    );
    // Oversized: a 1,472-byte datagram (the most one frame carries) and fragmented ones.
    let long = vec![b'a'; 1400];
    add("RRQ 1400-byte name", rrq(&long, &[]), Rule::Refused);
    let huge = vec![b'b'; 8000];
    add(
        "RRQ 8000-byte name (fragmented)",
        rrq(&huge, &[]),
        Rule::Refused,
    );
    let mut jumbo = rrq(b"small.bin", &[]);
    jumbo.resize(65000, b'x');
    add("65,000-byte datagram (fragmented)", jumbo, Rule::NoHarm);
    // Truncated.
    add("empty datagram", vec![], Rule::Refused);
    add("1 byte", vec![0], Rule::Refused);
    add("opcode only (RRQ)", vec![0, 1], Rule::Refused);
    add(
        "RRQ name without NUL",
        b"\x00\x01small.bin".to_vec(),
        Rule::Refused,
    );
    add(
        "RRQ without mode",
        b"\x00\x01small.bin\x00".to_vec(),
        Rule::NoHarm,
    );
    add(
        "RRQ mode without NUL",
        b"\x00\x01small.bin\x00octet".to_vec(),
        Rule::NoHarm,
    );
    add(
        "RRQ option without value",
        b"\x00\x01small.bin\x00octet\x00blksize\x00".to_vec(),
        Rule::NoHarm,
    );
    add("ACK to port 69", vec![0, 4, 0, 1], Rule::Refused);
    add("DATA to port 69", vec![0, 3, 0, 1, 1, 2, 3], Rule::Refused);
    add("ERROR to port 69", vec![0, 5, 0, 0, 0], Rule::Refused);
    add(
        "OACK to port 69",
        packet(OACK, &[b"blksize", b"512"]),
        Rule::Refused,
    );
    // Unknown opcodes.
    for op in [0u16, 7, 8, 255, 0xffff] {
        add(
            &format!("opcode {op}"),
            packet(op, &[b"small.bin", b"octet"]),
            Rule::Refused,
        );
    }
    // Option floods and absurd values.
    let mut flood = rrq(b"small.bin", &[]);
    for i in 0..100 {
        flood.extend_from_slice(format!("x-opt-{i}\0{i}\0").as_bytes());
    }
    add("RRQ with 100 unknown options", flood, Rule::NoHarm);
    let mut same = rrq(b"small.bin", &[]);
    for _ in 0..100 {
        same.extend_from_slice(b"blksize\x001468\x00");
    }
    add("RRQ with blksize 100 times", same, Rule::NoHarm);
    let mut big_flood = rrq(b"small.bin", &[]);
    for i in 0..1000 {
        big_flood.extend_from_slice(format!("windowsize\0{i}\0").as_bytes());
    }
    add(
        "RRQ with 1000 options (fragmented)",
        big_flood,
        Rule::NoHarm,
    );
    for (k, val) in [
        ("blksize", "0"),
        ("blksize", "7"),
        ("blksize", "65465"),
        ("blksize", "99999999999999999999999"),
        ("blksize", "-1"),
        ("blksize", "abc"),
        ("windowsize", "0"),
        ("windowsize", "65536"),
        ("timeout", "0"),
        ("timeout", "256"),
        ("tsize", "-1"),
        ("tsize", "18446744073709551616"),
    ] {
        add(
            &format!("RRQ {k} {val}"),
            rrq(b"small.bin", &[(k, val)]),
            Rule::NoHarm,
        );
    }
    // Writes.
    add(
        "WRQ upload.bin",
        packet(WRQ, &[b"upload.bin", b"octet"]),
        Rule::Refused,
    );
    add(
        "WRQ small.bin (overwrite)",
        packet(WRQ, &[b"small.bin", b"octet"]),
        Rule::Refused,
    );
    add(
        "WRQ ../../tmp/e2e-tftp-wrq",
        packet(WRQ, &[b"../../tmp/e2e-tftp-wrq", b"octet"]),
        Rule::Refused,
    );
    v
}

/// Lockstep reads `name` (512-byte blocks) from its own socket while a stranger socket sends
/// ACK, DATA and ERROR to the transfer's port; the stranger gets nothing but ERROR (or
/// nothing), the transfer goes on to the end. Returns the bytes read and what the stranger got.
fn transfer_with_stranger(to: SocketAddr, name: &str) -> Result<(Vec<u8>, String), String> {
    let s = UdpSocket::bind((CLIENT_IP, 0)).map_err(|e| e.to_string())?;
    let stranger = UdpSocket::bind((CLIENT_IP, 0)).map_err(|e| e.to_string())?;
    for sock in [&s, &stranger] {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
    }
    let req = rrq(name.as_bytes(), &[]);
    s.send_to(&req, to).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut expect: u16 = 1;
    let mut tid: Option<SocketAddr> = None;
    let mut stranger_got = String::from("nothing");
    let mut buf = [0u8; 1024];
    let start = Instant::now();
    // Bounded by blocks (2,049 for 1 MiB) and by time.
    for _ in 0..100_000 {
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("transfer stalled at block {expect}"));
        }
        let (n, from) = match s.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => {
                // Timeout: ask again (re-ACK the last block, or resend the request).
                match tid {
                    Some(t) => {
                        let _ = s.send_to(
                            &[
                                0,
                                4,
                                (expect - 1).to_be_bytes()[0],
                                (expect - 1).to_be_bytes()[1],
                            ],
                            t,
                        );
                    }
                    None => {
                        let _ = s.send_to(&req, to);
                    }
                }
                continue;
            }
        };
        if n < 4 {
            continue;
        }
        let op = u16::from_be_bytes([buf[0], buf[1]]);
        if op != DATA {
            return Err(format!(
                "opcode {op} during the transfer: {:?}",
                String::from_utf8_lossy(&buf[2..n])
            ));
        }
        let t = *tid.get_or_insert(from);
        if from != t {
            continue;
        }
        let block = u16::from_be_bytes([buf[2], buf[3]]);
        if block == expect {
            out.extend_from_slice(&buf[4..n]);
            if expect == 100 {
                // The stranger pokes the transfer's port.
                for p in [
                    vec![0, 4, 0, 101],
                    vec![0, 3, 0, 101, 9, 9, 9],
                    packet(ERROR, &[b"\x00\x00stranger"]),
                    rrq(b"small.bin", &[]),
                ] {
                    let _ = stranger.send_to(&p, t);
                }
                std::thread::sleep(Duration::from_millis(200));
                let mut got = Vec::new();
                let mut b2 = [0u8; 1024];
                while let Ok((m, _)) = stranger.recv_from(&mut b2) {
                    let a = Answer {
                        replies: vec![(u16::from_be_bytes([b2[0], b2[1]]), 0, b2[2..m].to_vec())],
                    };
                    got.push(a.summary());
                }
                if !got.is_empty() {
                    stranger_got = got.join(", ");
                }
            }
            s.send_to(&[0, 4, buf[2], buf[3]], t)
                .map_err(|e| e.to_string())?;
            if n - 4 < 512 {
                return Ok((out, stranger_got));
            }
            expect = expect.wrapping_add(1);
        } else {
            // A duplicate: ACK it again.
            let _ = s.send_to(&[0, 4, buf[2], buf[3]], t);
        }
    }
    Err("too many packets".into())
}

#[test]
fn hostile_datagrams_are_refused_while_a_transfer_runs() {
    if !require_root() {
        return;
    }
    require_tool("curl", "curl");
    let mut b = bench("tftp-hostile");
    let decoy = b"decoy passwd of the boot directory\n";
    std::fs::create_dir_all(b.served("etc")).expect("mkdir etc");
    std::fs::write(b.served("etc/passwd"), decoy).expect("write decoy");
    let boot_files_before = list(b.srv.boot_dir());

    // The good transfer: curl fetches the big file meanwhile.
    let got = b.wd.file("got-big.bin");
    let mut curl_cmd = b.cli.command("curl");
    curl_cmd
        .args([
            "-sS",
            "-w",
            "time_total=%{time_total}\n",
            "--tftp-blksize",
            "1468",
            "-o",
        ])
        .arg(&got)
        .arg(format!("tftp://{APPLIANCE_IP}/big.bin"));
    let started = Instant::now();
    let mut curl = Child::spawn("curl", &mut curl_cmd, &b.wd.file("curl.log"));

    let host_passwd = std::fs::read("/etc/passwd").unwrap_or_default();
    let small = std::fs::read(b.served("small.bin")).expect("small.bin");
    let to: SocketAddr = format!("{APPLIANCE_IP}:69").parse().expect("addr");
    let results = in_netns(&b.cli, move || {
        let sock = UdpSocket::bind((CLIENT_IP, 0)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let mut results = Vec::new();
        for (name, pkt, rule) in cases() {
            let a = probe(&sock, to, &pkt, Duration::from_millis(400));
            results.push((name, rule, a));
        }
        let stranger = transfer_with_stranger(to, "small.bin");
        Ok((results, stranger))
    })
    .unwrap_or_else(|e| panic!("raw sender: {e}"));
    let (results, stranger) = results;

    let mut bad = Vec::new();
    for (name, rule, a) in &results {
        eprintln!("{name}: {}", a.summary());
        if let Some(d) = a.first_data()
            && !host_passwd.is_empty()
            && host_passwd.starts_with(&d[..d.len().min(64)])
        {
            bad.push(format!("{name}: served the HOST's /etc/passwd"));
        }
        if a.has(ACK) {
            bad.push(format!(
                "{name}: a write was accepted (ACK): {}",
                a.summary()
            ));
        }
        match rule {
            Rule::Refused => {
                if a.has(DATA) || a.has(OACK) {
                    bad.push(format!("{name}: not refused: {}", a.summary()));
                }
            }
            Rule::RefusedOrServes(file) => {
                if let Some(d) = a.first_data() {
                    let want = std::fs::read(b.served(file)).unwrap_or_default();
                    if !want.starts_with(d) {
                        bad.push(format!("{name}: served something else than boot/{file}"));
                    }
                }
            }
            Rule::NoHarm => {
                if let Some(d) = a.first_data()
                    && !small.starts_with(d)
                {
                    bad.push(format!("{name}: served bytes that are not small.bin"));
                }
                for (op, _, rest) in &a.replies {
                    if *op == OACK
                        && let Some(e) = oack_out_of_range(rest)
                    {
                        bad.push(format!("{name}: OACK {e}"));
                    }
                }
            }
        }
    }
    match &stranger {
        Ok((data, got)) => {
            eprintln!("stranger poking a running transfer got: {got}");
            if data[..] != small[..] {
                bad.push(format!(
                    "the lockstep transfer beside the stranger was not byte-exact ({} of {} bytes)",
                    data.len(),
                    small.len()
                ));
            }
            if got.contains("DATA") || got.contains("OACK") {
                bad.push(format!("the stranger was answered with data: {got}"));
            }
        }
        Err(e) => bad.push(format!(
            "the lockstep transfer beside the stranger failed: {e}"
        )),
    }

    // The good transfer finished intact, the server lives and serves, nothing was written.
    let status = curl.wait_exit(CLIENT_TIMEOUT);
    let secs = curl
        .log()
        .lines()
        .iter()
        .find_map(|l| l.strip_prefix("time_total=")?.parse::<f64>().ok())
        .unwrap_or_else(|| started.elapsed().as_secs_f64());
    assert!(
        status.is_some_and(|s| s.success()),
        "curl beside the hostile sender: {status:?}\n{}",
        curl.log().tail(10)
    );
    boot::assert_same_file(&got, &b.served("big.bin"));
    eprintln!("curl big.bin beside the hostile sender: byte-exact in {secs:.1} s");
    b.srv.check_alive().unwrap_or_else(|e| panic!("{e}"));
    let again = b.wd.file("got-small.bin");
    let g = again.to_str().expect("utf-8").to_owned();
    b.fetch(
        "curl tftp get small.bin afterwards",
        "curl",
        &["-sS", "-o", &g, &format!("tftp://{APPLIANCE_IP}/small.bin")],
        &again,
        "small.bin",
    );
    assert_eq!(
        list(b.srv.boot_dir()),
        boot_files_before,
        "the boot directory changed"
    );
    assert!(
        !Path::new("/tmp/e2e-tftp-wrq").exists(),
        "a WRQ wrote /tmp/e2e-tftp-wrq"
    );
    assert!(
        bad.is_empty(),
        "hostile input mishandled:\n{}",
        bad.join("\n")
    );
    b.srv.stop();
}

/// An option an OACK grants outside its RFC range (blksize 8..=65464, windowsize 1..=65535,
/// timeout 1..=255).
fn oack_out_of_range(body: &[u8]) -> Option<String> {
    let parts: Vec<String> = body
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).to_ascii_lowercase())
        .collect();
    for kv in parts.chunks(2) {
        let [k, v] = kv else { continue };
        let n: Option<u64> = v.parse().ok();
        let ok = match k.as_str() {
            "blksize" => n.is_some_and(|n| (8..=65464).contains(&n)),
            "windowsize" => n.is_some_and(|n| (1..=65535).contains(&n)),
            "timeout" => n.is_some_and(|n| (1..=255).contains(&n)),
            "tsize" => n.is_some(),
            "" => true,
            _ => false, // an option the client never sent back in an OACK? Report it.
        };
        if !ok {
            return Some(format!("{k}={v}"));
        }
    }
    None
}

/// Every file under `dir` with its size, sorted.
fn list(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    // Bounded by the (small) number of entries in the boot directory.
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(p),
                Ok(m) => out.push((p, m.len())),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}
