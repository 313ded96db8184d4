//! The main job: the provider in-process, the appliance enrolled with it through the rack's
//! gateway, a BMC per machine, and every machine played through [`super::scenario`] in real
//! time (the provider's clocks are real). Prints a progress line every few seconds and a
//! summary; fails if any machine did not get through, an event was refused or a command
//! was left without a result.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use appliance::net::MacAddr;
use provider::model::BmcConfig;
use sim_bmc::{Bmc, Chassis, Suite, User};
use uplink::enroll::EnrollmentToken;

use super::bmc_host::BmcHost;
use super::bridge::Bridge;
use super::gateway::Gateway;
use super::machine::Booted;
use super::provider::InProcess;
use super::scenario::{BMC_PASSWORD, BMC_USER, Stage, Track, ipmi_bmc};
use super::segment::Segment;
use super::storm::{boot_intact, digests};
use super::{Host, Rack, RackArgs, Rng, boot_files};

/// The gateway's address on the segment: the provider's name in the token.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 254);
/// The whole run's bound.
const DEADLINE: Duration = Duration::from_secs(900);
const PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// How often the scenario reads the provider's records.
const ADVANCE_EVERY: Duration = Duration::from_millis(100);
/// The appliance's BMC table.
const MAX_MACHINES: usize = crate::runtime::BMCS;
/// The Omni adapter's heartbeat in the rack (Omni's is 30 s): statuses are written back on
/// it, so the scenario's steps wait for it.
const OMNI_HEARTBEAT: Duration = Duration::from_secs(1);
/// How long the Omni calls are counted once every machine is through.
const OMNI_IDLE: Duration = Duration::from_secs(10);

pub fn run(args: &RackArgs) -> Result<(), String> {
    let externals = externals(args)?;
    let total = args.machines + externals.len();
    if total == 0 || total > MAX_MACHINES {
        return Err(format!(
            "{total} machines: the lifecycle drives 1 to {MAX_MACHINES} (the appliance's BMC table); --boot-only takes more"
        ));
    }
    let started = Instant::now();
    let mut rng = Rng(args.seed.max(1));
    let files = boot_files(args.kernel_kib * 1024, args.boot_dir.as_deref())?;
    let expected = digests(files);
    let mut rack = Rack::new(args, &mut rng, files, unix_ms())?;
    let omni_heartbeat = args.omni.then_some(OMNI_HEARTBEAT);
    let dir = rack.state_dir.join("provider");
    let provider = InProcess::start(
        &dir,
        &GATEWAY.to_string(),
        omni_heartbeat,
        args.min_on_secs(),
    )?;
    println!(
        "rack: provider API at http://{} (try `cargo run -p provider -- machines --api {}`)",
        provider.api, provider.api
    );
    rack.add_gateway(provider.listen, unix_ms());
    rack.add_bmcs(unix_ms());
    if let Some(tap) = &args.tap {
        rack.add_bridge(tap)?;
    }
    rack.open_uplink(Some(provider.token.clone()))?;

    // Every machine: the simulated ones first, then the real ones beyond the TAP.
    let (macs, bmcs): (Vec<MacAddr>, Vec<BmcConfig>) = (rack.machines.iter())
        .zip(&rack.bmcs)
        .map(|(m, b)| (m.mac, ipmi_bmc(b.ip, BMC_PASSWORD)))
        .chain((externals.iter()).map(|&(mac, ip)| (mac, ipmi_bmc(ip, &args.bmc_password))))
        .unzip();
    let mut tracks: Vec<Track> = macs.iter().map(|_| Track::new()).collect();
    let cuts = schedule(&mut rng, args.cuts);
    let mut next_cut = 0;
    let restarts = schedule(&mut rng, args.restarts);
    let mut next_restart = 0;
    let mut agent_boots = (0, 0);
    let mut last_progress = Instant::now();
    let mut last_advance = Instant::now();
    while started.elapsed() < DEADLINE && !tracks.iter().all(Track::finished) {
        let now = unix_ms();
        rack.step(now)?;
        for &i in &rack.settled {
            let m = &rack.machines[i];
            if m.boots.last().is_some_and(|(_, b)| *b == Booted::Kernel) {
                agent_boots.0 += 1;
                agent_boots.1 += usize::from(boot_intact(m, &expected));
            }
        }
        if last_advance.elapsed() >= ADVANCE_EVERY {
            last_advance = Instant::now();
            for (i, t) in tracks.iter_mut().enumerate() {
                t.advance(macs[i], rack.machines.get(i), &bmcs[i], &provider);
            }
        }
        if cuts
            .get(next_cut)
            .is_some_and(|at| started.elapsed() >= *at)
        {
            next_cut += 1;
            rack.cut_uplink();
            if let Some(omni) = &provider.omni {
                omni.cut_watches();
            }
        }
        if restarts
            .get(next_restart)
            .is_some_and(|at| started.elapsed() >= *at)
            && rack.machines.iter().all(|m| m.settled())
        {
            next_restart += 1;
            rack.restart_appliance(now)?;
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            eprintln!("{}", progress(&tracks, &rack, started));
        }
        // A bridge is polled often: frames from real machines wake nothing else.
        let busy = rack.bridge.is_some() || rack.gateway.as_ref().is_some_and(Gateway::busy);
        let poll_at = now + if busy { 2 } else { 20 };
        let wait = rack.next_wake().min(poll_at).saturating_sub(unix_ms());
        std::thread::sleep(Duration::from_millis(wait));
    }
    println!(
        "faults: tunnel cut {} times, appliance restarted {next_restart} times",
        rack.gateway.as_ref().map_or(0, |g| g.cuts)
    );
    let result = summary(&tracks, &macs, &rack, &provider, started, agent_boots);
    if let Some(omni) = &provider.omni {
        super::omni::report_install(&tracks, &rack.machines);
        super::omni::report_idle(omni, tracks.len(), OMNI_HEARTBEAT, OMNI_IDLE);
        if !omni.refused().is_empty() {
            return Err(format!("the stand-in Omni refused: {:?}", omni.refused()));
        }
    }
    result
}

/// The real machines: `MAC@BMC_IP`, behind `--tap`.
fn externals(args: &RackArgs) -> Result<Vec<(MacAddr, Ipv4Addr)>, String> {
    if !args.external.is_empty() && args.tap.is_none() {
        return Err("--external needs --tap: real machines are reached through it".into());
    }
    (args.external.iter())
        .map(|e| {
            let bad = || format!("--external {e}: expected MAC@BMC_IP");
            let (mac, ip) = e.split_once('@').ok_or_else(bad)?;
            let mac = provider::model::parse_mac(mac).ok_or_else(bad)?;
            Ok((MacAddr(mac.0), ip.parse().map_err(|_| bad())?))
        })
        .collect()
}

/// When to inject `n` faults: within the first 45 s, when commands are flowing in racks of
/// any size.
fn schedule(rng: &mut Rng, n: u32) -> Vec<Duration> {
    let mut at: Vec<Duration> = (0..n)
        .map(|_| Duration::from_millis(3_000 + rng.below(42_000)))
        .collect();
    at.sort();
    at
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One line: how many machines are in each stage.
fn progress(tracks: &[Track], rack: &Rack, started: Instant) -> String {
    let mut counts = [0usize; Stage::NAMES.len()];
    let mut failed = 0;
    for t in tracks {
        match t.stage.index() {
            Some(i) => counts[i] += 1,
            None => failed += 1,
        }
    }
    let stages: Vec<String> = (Stage::NAMES.iter().zip(counts))
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    let on = rack.machines.iter().filter(|m| m.is_on()).count();
    format!(
        "rack {:>5.1}s  {}  failed {failed}  | powered on {on}/{}",
        started.elapsed().as_secs_f64(),
        stages.join("  "),
        rack.machines.len()
    )
}

fn summary(
    tracks: &[Track],
    macs: &[MacAddr],
    rack: &Rack,
    provider: &InProcess,
    started: Instant,
    (agent_boots, intact): (usize, usize),
) -> Result<(), String> {
    let mut failures = 0;
    for (i, (t, mac)) in tracks.iter().zip(macs).enumerate() {
        let what = rack.machines.get(i).map_or("real", |m| m.firmware.name());
        match &t.stage {
            Stage::Done => {}
            Stage::Failed(why) => {
                failures += 1;
                eprintln!("rack: machine {mac} ({what}) failed: {why}");
            }
            stage => {
                failures += 1;
                eprintln!("rack: machine {mac} ({what}) did not finish: still {stage:?}");
            }
        }
    }
    println!(
        "rack: {}/{} machines through the lifecycle in {:.1} s",
        tracks.len() - failures,
        tracks.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{:<11} {:>10} {:>10}", "stage", "median s", "max s");
    for (i, name) in Stage::NAMES.iter().take(Stage::NAMES.len() - 1).enumerate() {
        let mut took: Vec<f64> = tracks
            .iter()
            .filter_map(|t| t.took.get(i).copied().flatten())
            .map(|d| d.as_secs_f64())
            .collect();
        took.sort_by(f64::total_cmp);
        if let (Some(mid), Some(max)) = (took.get(took.len() / 2), took.last()) {
            println!("{name:<11} {mid:>10.1} {max:>10.1}");
        }
    }
    let boots: usize = rack.machines.iter().map(|m| m.boots.len()).sum();
    println!("boots: {boots}; agent boots {agent_boots}, byte-exact {intact}");
    let appliances = (provider.provider.store.appliances()).map_err(|e| e.to_string())?;
    let mut lost = 0;
    for (a, link) in &appliances {
        let outstanding = (provider.provider.store.outstanding(a.id))
            .map_err(|e| e.to_string())?
            .len();
        println!(
            "provider: appliance {} ({}): events applied {}, refused {}; commands issued {}, without result {outstanding}",
            a.id, a.name, link.applied_events, link.refused_events, link.last_command_id,
        );
        lost += outstanding as u64 + link.refused_events;
    }
    let (sent, dropped) = {
        let s = rack.segment.borrow();
        (s.sent, s.lost)
    };
    println!("segment: {sent} frames sent, {dropped} lost");
    match (failures, lost) {
        _ if intact < agent_boots => Err(format!(
            "{} agent boots fetched files that differ from the appliance's",
            agent_boots - intact
        )),
        (0, 0) => Ok(()),
        (0, n) => Err(format!("{n} events refused or commands without result")),
        (n, _) => Err(format!("{n} machines did not get through the lifecycle")),
    }
}

impl Rack {
    fn add_gateway(&mut self, provider: SocketAddr, now: u64) {
        let mac = MacAddr([0x02, 0x00, 10, 77, 0, 254]);
        let nic = self.attach(mac, Host::Gateway);
        self.gateway = Some(Gateway::new(nic, mac, GATEWAY, provider, now));
        self.gateway_wake = now;
    }

    /// A BMC per machine at 10.77.0.10 on, outside the DHCP pool; a machine already on
    /// (powered by hand) shows as on.
    fn add_bmcs(&mut self, now: u64) {
        for i in 0..self.machines.len() {
            let n = i as u8;
            let mac = MacAddr([0x02, 0x00, 0x62, 0x6d, 0x63, n]);
            let ip = Ipv4Addr::new(10, 77, 0, 10 + n);
            let nic = self.attach(mac, Host::Bmc(i));
            let mut guid = self.machines[i].uuid.0;
            guid.reverse();
            let user = User {
                name: BMC_USER.into(),
                password: BMC_PASSWORD.into(),
            };
            let suites = [3, 17].into_iter().filter_map(Suite::by_id).collect();
            let mut bmc = Bmc::new(user, suites, guid, Chassis::new(None));
            bmc.quiet = true;
            // Switched on by hand: the machine's own power-on time starts it, not this event.
            bmc.chassis.control(&[0x01]);
            bmc.chassis.take_events();
            self.bmcs.push(BmcHost::new(nic, mac, ip, bmc, now));
        }
    }

    /// Starts the uplink: enrolls with `token`, or (after a restart) connects with the
    /// identity in the state dir.
    fn open_uplink(&mut self, token: Option<EnrollmentToken>) -> Result<(), String> {
        let settings = crate::runtime::UplinkSettings {
            token,
            capabilities: crate::serve::capabilities(&super::dhcp_config()?),
            state_dir: self.state_dir.join("appliance"),
            ip: super::APPLIANCE,
            http_port: 80,
            script_path: appliance::http::ScriptConfig::new(super::APPLIANCE).path,
        };
        self.runtime
            .open_uplink(settings, &mut self.log)
            .map_err(|e| format!("uplink: {e}"))
    }

    /// The appliance reboots: its memory is gone (tables, sessions, connections), its state
    /// dir (leases, uplink identity, command filter, unacknowledged events) is read again.
    fn restart_appliance(&mut self, now: u64) -> Result<(), String> {
        (self.runtime.shutdown(&mut self.log)).map_err(|e| e.to_string())?;
        self.runtime = self.appliance.start(&mut self.nic, now)?;
        self.appliance_wake = now;
        self.open_uplink(None)
    }

    fn add_bridge(&mut self, tap: &str) -> Result<(), String> {
        let nic = Segment::attach_bridge(&self.segment);
        self.bridge = Some(Bridge::open(tap, nic).map_err(|e| format!("--tap {tap}: {e}"))?);
        Ok(())
    }

    fn cut_uplink(&mut self) {
        if let Some(g) = self.gateway.as_mut() {
            g.cut();
        }
    }
}
