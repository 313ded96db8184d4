//! Power loss while the QEMU board writes leases: QEMU is SIGKILLed at random moments while
//! DHCP REQUESTs keep the board writing its lease journal (and compacting it), then booted
//! again on the same flash file, round after round. Every boot must find the store intact
//! (no `store: CORRUPT` line) and every machine's lease must be the last one the board
//! acknowledged, or the one requested when the power went (old or new, never anything else).
//! At the end a dhclient machine that got its lease before the first cut gets the same
//! address again from a fresh DISCOVER, which only a restored lease explains.
//!
//! The writes come from a REQUEST loop of the test's own (16 machines, each moving between
//! two addresses), not from dhclient: one REQUEST in flight at a time, so the board writes
//! almost all the time and the kills land inside writes and compactions (the next boot's
//! torn tails and cut-short compactions are counted and must occur).

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::dhclient::Dhclient;
use e2e::firmware::{self, Board};
use e2e::net::in_named_netns;
use e2e::{Rack, Workdir};

const BOOT: Duration = Duration::from_secs(20);
const BIND: Duration = Duration::from_secs(30);
/// Rounds of boot, write, kill; the whole loop also stops after `BUDGET`.
const ROUNDS: usize = 30;
const BUDGET: Duration = Duration::from_secs(300);
const MACHINES: u8 = 16;
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The test's machine `m` moves between these two addresses (the pool is .100-.199).
fn address(m: u8, phase: bool) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, if phase { 140 } else { 100 } + m)
}
fn mac(m: u8) -> [u8; 6] {
    [0x02, 0, 0, 0xfe, 0, m]
}
fn mac_str(mac: &[u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// xorshift64*: the kill moments, from a seed printed (and settable with POWER_LOSS_SEED).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// What the test knows of a machine's lease on the board.
#[derive(Clone, Copy, Debug, Default)]
struct Known {
    /// The address of the last ACK received.
    acked: Option<Ipv4Addr>,
    /// A REQUEST sent and not answered: the board may have stored it or not.
    pending: Option<Ipv4Addr>,
    /// Which address the next REQUEST asks for.
    phase: bool,
}

type Shared = Arc<Mutex<Vec<Known>>>;

/// A DHCPREQUEST (SELECTING: server id and requested address) with the broadcast flag.
fn request(mac: &[u8; 6], xid: u32, ip: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[..4].copy_from_slice(&[1, 1, 6, 0]);
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[10] = 0x80;
    p[28..34].copy_from_slice(mac);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(&[53, 1, 3, 50, 4]);
    p.extend_from_slice(&ip.octets());
    p.extend_from_slice(&[54, 4]);
    p.extend_from_slice(&SERVER.octets());
    p.push(255);
    p.resize(300, 0);
    p
}

/// A reply's xid, yiaddr and message type (5 ACK, 6 NAK).
fn reply(b: &[u8]) -> Option<(u32, Ipv4Addr, u8)> {
    if b.len() < 240 || b[0] != 2 || b[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let xid = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let yiaddr = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    let mut i = 240;
    while i + 1 < b.len() {
        match b[i] {
            0 => i += 1,
            255 => break,
            53 if b[i + 1] == 1 && i + 2 < b.len() => return Some((xid, yiaddr, b[i + 2])),
            _ => i += 2 + usize::from(b[i + 1]),
        }
    }
    None
}

/// REQUESTs round-robin over the machines, one in flight, until `stop` or `limit` sent;
/// returns ACKs seen.
fn flood(
    ns: String,
    known: Shared,
    stop: Arc<AtomicBool>,
    xid0: u32,
    limit: usize,
) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        in_named_netns(&ns, move || {
            let sock = UdpSocket::bind("0.0.0.0:68").map_err(|e| format!("bind :68: {e}"))?;
            sock.set_broadcast(true).map_err(|e| e.to_string())?;
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .map_err(|e| e.to_string())?;
            let (mut acks, mut xid, mut buf) = (0, xid0, [0u8; 1500]);
            // Bounded: `stop` ends it, and so does a minute.
            let deadline = Instant::now() + Duration::from_secs(60);
            'machines: for m in (0..MACHINES).cycle().take(limit) {
                let ip = {
                    let mut k = known.lock().unwrap();
                    let ip = address(m, k[m as usize].phase);
                    k[m as usize].pending = Some(ip);
                    ip
                };
                xid = xid.wrapping_add(1);
                let _ = sock.send_to(&request(&mac(m), xid, ip), (SERVER, 67));
                let waited = Instant::now();
                while waited.elapsed() < Duration::from_millis(200) {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break 'machines;
                    }
                    let Ok(n) = sock.recv(&mut buf) else { continue };
                    match reply(&buf[..n]) {
                        Some((x, yiaddr, 5)) if x == xid && yiaddr == ip => {
                            let mut k = known.lock().unwrap();
                            let k = &mut k[m as usize];
                            (k.acked, k.pending, k.phase) = (Some(ip), None, !k.phase);
                            acks += 1;
                            break;
                        }
                        Some((x, _, 6)) if x == xid => {
                            return Err(format!("NAK for {} at {ip}", mac_str(&mac(m))));
                        }
                        _ => {}
                    }
                }
            }
            Ok(acks)
        })
        .unwrap_or_else(|e| panic!("flood: {e}"))
    })
}

/// The board's restored leases (`store: lease` lines of this boot): MAC -> (address, state).
fn restored(lines: &[String]) -> HashMap<String, (Ipv4Addr, String)> {
    let mut map = HashMap::new();
    for l in lines.iter().filter(|l| l.contains("store: lease ")) {
        let field = |k: &str| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {l}"))
                .to_owned()
        };
        let ip = field("ip=").parse().unwrap_or_else(|e| panic!("{l}: {e}"));
        map.insert(field("mac="), (ip, field("state=")));
    }
    map
}

/// Checks one boot's store lines against what the test knows, and takes the board's state
/// as the truth from here on. Returns the mount line.
fn check_boot(board: &mut Board, known: &Shared, client: Option<(&str, Ipv4Addr)>) -> String {
    let mount = board
        .wait_line("the store's mount line", BOOT, |l| {
            l.contains("store: mounted")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // Logged after the restored leases.
    board
        .wait_line("DHCP listening", BOOT, |l| l.contains("dhcp listening"))
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = board.lines();
    for l in &lines {
        assert!(
            !l.contains("CORRUPT") && !l.contains("panic") && !l.contains("formatted"),
            "{l}\n--- firmware log:\n{}",
            lines.join("\n")
        );
    }
    let leases = restored(&lines);
    let mut k = known.lock().unwrap();
    for m in 0..MACHINES {
        let key = mac_str(&mac(m));
        let got = leases.get(&key).map(|(ip, _)| *ip);
        let known = &mut k[m as usize];
        // Old (the last ACK) or new (the REQUEST in flight); never lost, never another.
        let old_or_new = got == known.acked || (known.pending.is_some() && got == known.pending);
        assert!(
            old_or_new,
            "{key}: restored {got:?}, acknowledged {:?}, in flight {:?}\n{mount}",
            known.acked, known.pending
        );
        if let Some(ip) = got {
            known.phase = ip == address(m, false);
        }
        (known.acked, known.pending) = (got, None);
    }
    if let Some((mac, ip)) = client {
        let got = leases.get(mac);
        assert!(
            got.is_some_and(|(i, s)| *i == ip && s == "Bound"),
            "dhclient's lease {mac} {ip}: restored {got:?}"
        );
    }
    mount
}

#[test]
fn leases_survive_qemu_killed_mid_write() {
    let Some(elf) = firmware::elf_for_test() else {
        return;
    };
    let seed = std::env::var("POWER_LOSS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("seed {seed} (POWER_LOSS_SEED={seed} repeats the kill moments)");
    let mut rng = Rng(seed);
    let wd = Workdir::new("fw-power");
    let rack = Rack::new("fw-power");
    let tap = "fwp0";
    let known: Shared = Arc::new(Mutex::new(vec![Known::default(); MACHINES as usize]));
    let flood_ns = rack.host("flood", Some("52:54:00:77:03:01"), &["10.77.0.250/24"]);

    // Boot 0: a blank flash file; the test's machines take their first addresses (.100-.115),
    // then dhclient gets the next free one.
    let mut board = Board::boot(&rack, &wd, &elf, tap);
    board
        .wait_line("the store formatted", BOOT, |l| {
            l.contains("store: blank, formatted")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    board
        .wait_line("the start line", BOOT, |l| l.contains("qemu-mps2-an386 up"))
        .unwrap_or_else(|e| panic!("{e}"));
    let stop = Arc::new(AtomicBool::new(false));
    let first = flood(
        flood_ns.name().into(),
        known.clone(),
        stop.clone(),
        0,
        MACHINES.into(),
    );
    let acked = first.join().expect("flood thread");
    assert_eq!(acked, usize::from(MACHINES), "the machines' first leases");
    let client_mac = "52:54:00:77:04:01";
    let ns = rack.host("c1", Some(client_mac), &[]);
    let mut client = Dhclient::new(&ns, &wd, "c1");
    client.start();
    let client_ip: Ipv4Addr = client
        .wait_event(0, &["BOUND"], BIND)
        .ip
        .parse()
        .expect("ip");
    client.stop();
    assert!(
        (0..MACHINES).all(|m| client_ip != address(m, false) && client_ip != address(m, true)),
        "dhclient got one of the test machines' addresses: {client_ip}"
    );
    eprintln!("dhclient bound {client_ip}; cutting the power now");

    let started = Instant::now();
    let (mut rounds, mut acks, mut boot_kills) = (0, 0, 0);
    let (mut torn, mut cut_compactions, mut boot_compactions) = (0, 0, 0);
    let mut mid_flood = Vec::new();
    let mut board = Some(board);
    while rounds < ROUNDS && started.elapsed() < BUDGET {
        rounds += 1;
        // Round 1 cuts the boot that served dhclient; the others boot anew.
        let (mut b, fresh) = match board.take() {
            Some(b) => (b, false),
            None => (
                Board::boot_again(&rack, &wd, &elf, tap, &format!("boot{rounds}")),
                true,
            ),
        };
        // Every fourth round the power goes during boot (mount, replay, compaction of a
        // torn tail); the next boot checks what that left.
        if rounds % 4 == 0 {
            thread::sleep(Duration::from_millis(rng.below(400)));
            b.child.kill();
            boot_kills += 1;
            continue;
        }
        if fresh {
            let mount = check_boot(&mut b, &known, Some((client_mac, client_ip)));
            let lines = b.lines();
            torn += usize::from(!mount.contains("torn_bytes=0 "));
            boot_compactions += usize::from(mount.contains("compacted=true"));
            cut_compactions += lines
                .iter()
                .filter(|l| l.contains("cut-short compaction"))
                .count();
            eprintln!("boot {rounds}: {mount}");
        }
        stop.store(false, Ordering::Relaxed);
        let writer = flood(
            flood_ns.name().into(),
            known.clone(),
            stop.clone(),
            rounds as u32 * 1_000_000,
            usize::MAX,
        );
        let delay = 20 + rng.below(700);
        thread::sleep(Duration::from_millis(delay));
        b.child.kill();
        stop.store(true, Ordering::Relaxed);
        let n = writer.join().expect("flood thread");
        let compactions = b
            .lines()
            .iter()
            .filter(|l| l.contains("store: compacted"))
            .count();
        eprintln!("  killed after {delay} ms: {n} ACKs, {compactions} compactions logged");
        acks += n;
        mid_flood.push(delay);
    }

    // The last boot: intact, and dhclient's machine gets its address back from DISCOVER.
    let mut b = Board::boot_again(&rack, &wd, &elf, tap, "final");
    let mount = check_boot(&mut b, &known, Some((client_mac, client_ip)));
    eprintln!("final boot: {mount}");
    let mut again = Dhclient::new(&ns, &wd, "c1-again");
    again.start();
    let ip: Ipv4Addr = again
        .wait_event(0, &["BOUND"], BIND)
        .ip
        .parse()
        .expect("ip");
    again.stop();
    assert_eq!(
        ip, client_ip,
        "dhclient's machine got another address after the reboots"
    );
    eprintln!(
        "{rounds} rounds in {:.0?}: {} kills while writing ({acks} ACKs, each stored before it was sent), \
         {boot_kills} kills during boot; boots found {torn} torn tails, {cut_compactions} cut-short \
         compactions, compacted at boot {boot_compactions} times; never corrupt",
        started.elapsed(),
        mid_flood.len()
    );
    assert!(rounds >= 10, "only {rounds} rounds in the time budget");
    assert!(
        torn + cut_compactions > 0,
        "no kill landed inside a write: the test proved nothing"
    );
}
