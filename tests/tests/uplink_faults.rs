//! The uplink under faults, through the real binaries: host-sim's tunnel to `provider serve`
//! is cut 100 times at seeded random moments while dhclient machines come and go (leases ->
//! events), atftp fetches run (every byte checked: TFTP serves on while the uplink is down)
//! and the operator changes boot targets with the provider's CLI (-> commands); the
//! provider is SIGKILLed and restarted once, host-sim SIGKILLed and restarted once (its
//! persisted outbox). At the end every event host-sim queued was applied exactly once and
//! every command ran exactly once and is resolved.
//!
//! The cuts come from [`Relay`], a fault injector of this test (not a peer): a plain TCP
//! relay in a namespace of its own at the address the provider's tokens name, forwarding
//! each connection to the provider; it never reads what it forwards.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use e2e::dhclient::Dhclient;
use e2e::hostsim::field;
use e2e::net::in_named_netns;
use e2e::provider::{PROVIDER_IP, PROVIDER_PORT, Provider};
use e2e::wait::poll_until;
use e2e::{APPLIANCE_IP, HostSim, Netns, Rack, Workdir, require_root, require_tool};

const POOL: &str = "10.77.0.100-10.77.0.149";
const RELAY_IP: &str = "10.77.0.4";
const CUTS: usize = 100;
const CLIENTS: usize = 3;
/// A cut comes this long (at most) after the tunnel's connection was accepted: during the
/// handshake, the hello, a resend or a quiet moment.
const CUT_WITHIN_MS: u64 = 1_200;
/// Backoff doubles to 60 s after failed dials; a redial always comes within this.
const REDIAL: Duration = Duration::from_secs(90);
const BIND: Duration = Duration::from_secs(30);
const FETCH: Duration = Duration::from_secs(30);
/// The file every fetch reads.
const FILE: &str = "fault.bin";

/// xorshift64*, seeded (`E2E_SEED`), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The fault injector: accepts at `RELAY_IP:PROVIDER_PORT`, dials the provider for each
/// connection and copies bytes both ways until [`Relay::cut`] shuts both legs.
struct Relay {
    _ns: Netns,
    shared: Arc<Shared>,
}

/// What the test and the relay's accept thread share.
#[derive(Default)]
struct Shared {
    live: Mutex<Vec<TcpStream>>,
    accepted: AtomicUsize,
    /// Close new connections at once, as if the provider were unreachable.
    hold: AtomicBool,
    stop: AtomicBool,
}

impl Relay {
    fn start(rack: &Rack) -> Relay {
        let ns = rack.host("relay", None, &[&format!("{RELAY_IP}/24")]);
        let shared = Arc::new(Shared::default());
        let (name, sh) = (ns.name().to_owned(), shared.clone());
        let (ready, listening) = std::sync::mpsc::channel();
        thread::spawn(move || {
            in_named_netns(&name, move || {
                let listener = TcpListener::bind((RELAY_IP, PROVIDER_PORT))
                    .and_then(|l| l.set_nonblocking(true).map(|()| l));
                let ok = listener.is_ok();
                let _ = ready.send(listener.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                if ok && let Ok(listener) = listener {
                    accept_loop(&listener, &sh);
                }
                Ok(())
            })
        });
        let bound = listening.recv_timeout(Duration::from_secs(10));
        bound
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .unwrap_or_else(|e| panic!("relay listen: {e}"));
        Relay { _ns: ns, shared }
    }

    fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    fn hold(&self, on: bool) {
        self.shared.hold.store(on, Ordering::SeqCst);
    }

    /// Shuts both legs of every relayed connection; how many sockets it shut.
    fn cut(&self) -> usize {
        let mut live = self.shared.live.lock().unwrap_or_else(|e| e.into_inner());
        for s in live.iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        live.drain(..).count()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Shared) {
    let provider: SocketAddr = format!("{PROVIDER_IP}:{PROVIDER_PORT}")
        .parse()
        .expect("provider address");
    while !shared.stop.load(Ordering::SeqCst) {
        let down = match listener.accept() {
            Ok((down, _)) => down,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => return,
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.hold.load(Ordering::SeqCst) {
            continue;
        }
        // The provider down: the appliance's connection closes at once, as a refused dial.
        let Ok(up) = TcpStream::connect_timeout(&provider, Duration::from_secs(2)) else {
            continue;
        };
        let _ = down.set_nonblocking(false);
        for (from, to) in [(&down, &up), (&up, &down)] {
            let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                // One side ended: the other learns it, as through a real middlebox.
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
            });
        }
        let mut live = shared.live.lock().unwrap_or_else(|e| e.into_inner());
        live.extend([down, up]);
    }
}

/// What the machines' side did while the uplink was being cut.
#[derive(Default, Debug)]
struct Traffic {
    leases: usize,
    fetches: usize,
    bytes: usize,
}

/// One machine per namespace; each round takes the next, leases (start, BOUND or REBOOT),
/// fetches the file over TFTP and compares it, then releases. `gate` is held per round, so
/// host-sim can be restarted between rounds.
fn machines(
    clients: &mut [(Dhclient, Netns)],
    wd: &Workdir,
    want: &[u8],
    gate: &Mutex<()>,
    stop: &AtomicBool,
) -> Traffic {
    let mut t = Traffic::default();
    for round in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let _held = gate.lock().unwrap_or_else(|e| e.into_inner());
        let (c, ns) = &mut clients[round % CLIENTS];
        let from = c.events().mark();
        c.start();
        c.wait_event(from, &["BOUND", "REBOOT"], BIND);
        t.leases += 1;
        let got = wd.file(&format!("got-{round}.bin"));
        let path = got.to_str().expect("utf-8");
        let args = ["--option", "blksize 1468", "-g", "-r", FILE, "-l", path];
        let out = ns
            .run("atftp", &[&args[..], &[APPLIANCE_IP]].concat(), FETCH)
            .unwrap_or_else(|e| panic!("atftp round {round}: {e}"));
        assert!(out.success(), "atftp round {round}: {}", out.stderr);
        let bytes = std::fs::read(&got).unwrap_or_default();
        assert!(bytes == want, "round {round}: fetched file differs");
        let _ = std::fs::remove_file(&got);
        t.fetches += 1;
        t.bytes += bytes.len();
        c.release();
        drop(_held);
        // Room for a restart of host-sim between rounds (the lock is not fair).
        thread::sleep(Duration::from_millis(50));
    }
    t
}

fn start_host_sim(rack: &Rack, wd: &Workdir, token: &str) -> HostSim {
    HostSim::start(
        rack,
        wd,
        "host-sim",
        &["--dhcp-pool", POOL, "--enroll-token", token],
    )
}

fn wait_connected(hs: &mut HostSim, from: usize) {
    let lf = hs.log().clone();
    lf.wait_for_from(
        from,
        REDIAL,
        |l| l == "uplink connected",
        || hs.check_alive(),
    )
    .unwrap_or_else(|e| panic!("host-sim did not reconnect: {e}"));
}

/// The distinct numbers of `prefix` lines (`uplink event seq=`, `uplink command id=`) in
/// host-sim's log, and whether any came twice.
fn numbers(lines: &[String], prefix: &str, key: &str) -> (BTreeSet<u64>, Vec<u64>) {
    let mut seen = BTreeSet::new();
    let mut twice = Vec::new();
    for l in lines.iter().filter(|l| l.starts_with(prefix)) {
        let n = field(l, key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key}= in {l:?}"));
        if !seen.insert(n) {
            twice.push(n);
        }
    }
    (seen, twice)
}

#[test]
fn cuts_and_restarts_lose_and_repeat_nothing() {
    if !require_root() {
        return;
    }
    require_tool("atftp", "atftp");
    let seed = std::env::var("E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let wd = Workdir::new("uplink-faults");
    let rack = Rack::new("uplink-faults");
    let want: Vec<u8> = (0..300 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    std::fs::write(wd.dir("boot").join(FILE), &want).expect("write boot file");
    let relay = Relay::start(&rack);
    let mut provider = Provider::start_dialed_at(&rack, &wd, RELAY_IP);
    let token = provider.token();
    let mut hs = start_host_sim(&rack, &wd, &token);
    wait_connected(&mut hs, 0);

    let mut clients: Vec<(Dhclient, Netns)> = (0..CLIENTS)
        .map(|i| {
            let ns = rack.host(
                &format!("c{i}"),
                Some(&format!("52:54:00:77:05:{i:02x}")),
                &[],
            );
            (Dhclient::new(&ns, &wd, &format!("c{i}")), ns)
        })
        .collect();
    let macs: Vec<String> = (0..CLIENTS)
        .map(|i| format!("52:54:00:77:05:{i:02x}"))
        .collect();
    let gate = Mutex::new(());
    let stop = AtomicBool::new(false);
    let (mut cuts, mut changes) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(900);
    let (traffic, hs) = thread::scope(|s| {
        let worker = s.spawn(|| machines(&mut clients, &wd, &want, &gate, &stop));
        // The operator steers a machine only once the provider knows it.
        poll_until("every machine at the provider", REDIAL, || {
            let json = provider.cli(&["machines", "--json"]);
            Ok(macs.iter().all(|m| json.contains(m.as_str())).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        // Each cut waits for a connection accepted since the last one.
        let mut accepted = 0;
        let (mut provider_killed, mut host_sim_killed) = (false, false);
        for i in 0.. {
            if cuts == CUTS || Instant::now() > deadline {
                break;
            }
            poll_until("the tunnel redialed", REDIAL, || {
                Ok((relay.accepted() > accepted || worker.is_finished()).then_some(()))
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", hs.log().tail(20)));
            if worker.is_finished() {
                break;
            }
            thread::sleep(Duration::from_millis(rng.below(CUT_WITHIN_MS)));
            accepted = relay.accepted();
            cuts += usize::from(relay.cut() > 0);
            if rng.below(2) == 0 {
                let mac = &macs[rng.below(CLIENTS as u64) as usize];
                let target = match rng.below(3) {
                    0 => "disk".to_owned(),
                    1 => "agent".to_owned(),
                    _ => format!("http://{PROVIDER_IP}/m{i}.ipxe"),
                };
                provider.cli(&["boot", mac, &target]);
                changes += 1;
            }
            if cuts >= CUTS / 3 && !provider_killed {
                provider_killed = true;
                provider.kill();
                thread::sleep(Duration::from_millis(rng.below(2_000)));
                provider.restart();
            }
            if cuts >= 2 * CUTS / 3 && !host_sim_killed {
                host_sim_killed = true;
                // Events queued while the provider is out of reach are only in the outbox
                // (and its file) when host-sim dies.
                relay.hold(true);
                relay.cut();
                let lf = hs.log().clone();
                let queued = |l: &str| l.starts_with("uplink event");
                lf.wait_for_from(lf.mark(), BIND, queued, || hs.check_alive())
                    .unwrap_or_else(|e| panic!("no event while cut off: {e}"));
                let _between_rounds = gate.lock().unwrap_or_else(|e| e.into_inner());
                let mark = lf.mark();
                drop(hs); // SIGKILL
                hs = start_host_sim(&rack, &wd, &token);
                relay.hold(false);
                wait_connected(&mut hs, mark);
            }
        }
        stop.store(true, Ordering::SeqCst);
        let traffic = worker
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (traffic, hs)
    });
    assert_eq!(cuts, CUTS, "cuts that found a live connection");

    // The tunnel settles: every event up to host-sim's last is applied, no command waits.
    let lines = || hs.log().lines();
    let (events, _) = numbers(&lines(), "uplink event seq=", "seq");
    let last = events.last().copied().unwrap_or(0);
    poll_until("the provider caught up", REDIAL, || {
        let done = provider.appliance_count("last_applied_seq") >= last
            && provider.appliance_count("outstanding_commands") == 0;
        Ok(done.then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", provider.cli(&["appliances", "--json"])));
    let (events, twice) = numbers(&lines(), "uplink event seq=", "seq");
    let (ran, ran_twice) = numbers(&lines(), "uplink command id=", "id");
    let replaced = lines().iter().filter(|l| l.ends_with("replaced=1")).count();
    let applied = provider.appliance_count("applied_events");
    let last_applied = provider.appliance_count("last_applied_seq");
    let issued = provider.appliance_count("issued_commands");
    let restored: u64 = lines()
        .iter()
        .find_map(|l| {
            field(l.strip_prefix("uplink outbox restored")?, "events")?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    eprintln!(
        "uplink faults: seed={seed} cuts={cuts} relayed={} provider_kills=1 host_sim_kills=1 \
         events={} applied={applied} last_seq={last_applied} replaced={replaced} \
         restored_after_kill={restored} boot_changes={changes} commands_issued={issued} commands_ran={} leases={} \
         tftp_fetches={} tftp_bytes={} secs={}",
        relay.accepted(),
        events.len(),
        ran.len(),
        traffic.leases,
        traffic.fetches,
        traffic.bytes,
        started.elapsed().as_secs()
    );
    assert!(twice.is_empty(), "event numbers queued twice: {twice:?}");
    assert!(ran_twice.is_empty(), "commands run twice: {ran_twice:?}");
    assert_eq!(last_applied, events.last().copied().unwrap_or(0));
    if replaced == 0 {
        // Numbers 1..=last, each applied once: nothing lost, nothing repeated.
        assert_eq!(
            events,
            (1..=last_applied).collect(),
            "gaps in the numbering"
        );
        assert_eq!(applied, last_applied, "applied count differs from events");
    }
    assert_eq!(
        ran,
        (1..=issued).collect(),
        "commands issued but not run once"
    );
    assert!(
        traffic.fetches >= CUTS / 4,
        "too little traffic: {traffic:?}"
    );
    assert!(
        restored > 0,
        "host-sim restarted without unacked events to restore"
    );
}
