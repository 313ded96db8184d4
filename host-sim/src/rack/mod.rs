//! `host-sim rack`: an in-process simulated rack. The appliance's runtime (the same one
//! `serve` runs on a TAP device) sits on a simulated Ethernet segment (delay, jitter and
//! loss injectable) with the rack's machines, each with its own smoltcp stack and a PXE
//! client, their BMCs, and a gateway to the provider.
//!
//! - The main job ([`lifecycle`]): the provider runs in-process, the appliance enrolls and
//!   tunnels to it, and every machine goes through Omni's static-provider lifecycle, driven
//!   by the provider through the appliance's IPMI client and the machines' BMCs. Real time.
//! - `--boot-only` ([`storm`]): every machine PXE-boots once, checked byte for byte, in
//!   virtual time (a boot storm of a thousand machines takes seconds).

mod bmc_host;
mod bridge;
mod dhcp_client;
mod gateway;
mod http_client;
mod lifecycle;
mod machine;
mod omni;
mod provider;
mod scenario;
mod segment;
mod storm;
mod tftp_client;

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::rc::Rc;

use appliance::assets::StaticAssets;
use appliance::dhcp::{Config, Mode, Subnet};
use appliance::http::ScriptConfig;
use appliance::net::{Ipv4Net, MacAddr, Uuid};
use clap::Args;
use smoltcp::time::Instant;

use crate::runtime::{Runtime, Settings};
use bmc_host::BmcHost;
use dhcp_client::Firmware;
use gateway::Gateway;
use machine::Machine;
use segment::{Impairment, Nic, Segment};

#[derive(Args)]
pub struct RackArgs {
    /// How many machines the rack holds (at most 64 with the lifecycle: the appliance's BMC
    /// table).
    #[arg(long, default_value_t = 48)]
    machines: usize,
    /// Seed for the machines' firmware, power-on times, addresses and the segment's losses.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One-way delay on the segment, in milliseconds.
    #[arg(long, default_value_t = 1)]
    delay_ms: u64,
    /// Random extra delay up to this many milliseconds (frames to one host stay in order).
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Fraction of frames lost, e.g. 0.01.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Size of the kernel the machines fetch, in KiB (the iPXE binaries and the initrd
    /// scale with it).
    #[arg(long, default_value_t = 1024)]
    kernel_kib: usize,
    /// Only PXE-boot every machine once, in virtual time, without the provider.
    #[arg(long)]
    boot_only: bool,
    /// Cut the uplink tunnel this many times, at random moments of the lifecycle (with
    /// `--omni`, the stand-in Omni drops the adapter's watches at the same moments).
    #[arg(long, default_value_t = 0)]
    cuts: u32,
    /// Restart the appliance this many times (its memory lost, its state dir kept), at
    /// random moments when no machine is in the middle of a boot.
    #[arg(long, default_value_t = 0)]
    restarts: u32,
    /// Bridge the segment to this TAP device (which must exist), for real machines.
    #[arg(long, value_name = "IFACE")]
    tap: Option<String>,
    /// A real machine beyond the TAP (e.g. a QEMU VM behind ipmi_sim), taken through the
    /// lifecycle with the simulated ones: `MAC@BMC_IP`. Its BMC account is `admin` with
    /// `--bmc-password`. Needs `--tap`.
    #[arg(long, value_name = "MAC@BMC_IP")]
    external: Vec<String>,
    /// The BMC password of external machines.
    #[arg(long, default_value = "password", env = "BMC_PASSWORD")]
    bmc_password: String,
    /// Serve the files of this directory (iPXE binaries, vmlinuz, initrd.img) where it has
    /// them instead of generated ones, for real machines.
    #[arg(long, value_name = "DIR")]
    boot_dir: Option<PathBuf>,
    /// Print the appliance's log (every DHCP decision, transfer, uplink event) on stderr.
    #[arg(long)]
    verbose: bool,
    /// Least time between a power-on and the next power-off the appliance keeps (Omni's is
    /// 15 min), so no boot is cut short; default: 10 s plus 1 s per 4 MiB of kernel per ms
    /// of delay (a boot of 16 MiB at 30 ms takes about 70 s in a debug build).
    #[arg(long)]
    min_on_secs: Option<u32>,
    /// Drive the lifecycle from a stand-in Omni on loopback, which the provider follows
    /// through its Omni adapter, as Omni's user would; prints the Omni figures.
    #[arg(long)]
    omni: bool,
}

impl RackArgs {
    /// `--min-on-secs`, or one that suits the rack's pace.
    fn min_on_secs(&self) -> u32 {
        let scaled = self.kernel_kib as u64 * self.delay_ms.max(1) / 4096;
        (self.min_on_secs).unwrap_or_else(|| 10 + u32::try_from(scaled).unwrap_or(u32::MAX / 2))
    }
}

pub fn run(args: &RackArgs) -> Result<(), String> {
    if args.boot_only {
        storm::run(args)
    } else {
        lifecycle::run(args)
    }
}

const APPLIANCE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const APPLIANCE_MAC: MacAddr = MacAddr([0x02, 0x00, 10, 77, 0, 1]);
/// Machines power on within this window.
const POWER_ON_SPREAD_MS: u64 = 5_000;

/// The boot files the appliance serves.
type Files = &'static [(&'static str, &'static [u8])];

/// What the appliance is started (and restarted) with.
struct Appliance {
    files: Files,
    state_dir: PathBuf,
    max_leases: usize,
    quiet: bool,
}

impl Appliance {
    /// The runtime on `nic`, its leases and uplink identity read from the state dir.
    fn start(&self, nic: &mut Nic, now_ms: u64) -> Result<Runtime<StaticAssets<'static>>, String> {
        let settings = Settings {
            ip: Ipv4Net::new(APPLIANCE, 16).ok_or("bad subnet")?,
            mac: APPLIANCE_MAC,
            gateway: None,
            state_dir: self.state_dir.clone(),
            max_leases: self.max_leases,
            tftp_transfers: 128,
            http_port: 80,
            http_connections: 64,
            script: ScriptConfig::new(APPLIANCE),
            machine_boot: Vec::new(),
            quiet: self.quiet,
        };
        let store = StaticAssets::new(self.files);
        let now = Instant::from_millis(now_ms as i64);
        Runtime::new(settings, dhcp_config()?, store, nic, now).map_err(|e| e.to_string())
    }
}

/// Who sits behind a segment port.
#[derive(Clone, Copy)]
enum Host {
    Machine(usize),
    /// The BMC of machine `i`.
    Bmc(usize),
    Gateway,
}

/// Everyone on the segment, stepped together; the caller owns the clock.
pub struct Rack {
    segment: Rc<RefCell<Segment>>,
    nic: Nic,
    runtime: Runtime<StaticAssets<'static>>,
    machines: Vec<Machine>,
    /// `bmcs[i]` powers `machines[i]` (none without the lifecycle).
    bmcs: Vec<BmcHost>,
    gateway: Option<Gateway>,
    /// The segment's way to real machines (`--tap`).
    bridge: Option<bridge::Bridge>,
    hosts: HashMap<usize, Host>,
    wake: Vec<u64>,
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    appliance_wake: u64,
    gateway_wake: u64,
    reached: Vec<usize>,
    due: Vec<usize>,
    /// Machines whose boot ended (or failed) in the last step.
    settled: Vec<usize>,
    state_dir: PathBuf,
    appliance: Appliance,
    /// The appliance's log: stderr with `--verbose`, else nowhere.
    log: Box<dyn io::Write>,
}

impl Rack {
    /// The segment, the appliance and `args.machines` machines powering on within
    /// [`POWER_ON_SPREAD_MS`] of `start_ms`.
    fn new(args: &RackArgs, rng: &mut Rng, files: Files, start_ms: u64) -> Result<Rack, String> {
        let impairment = Impairment {
            delay_ms: args.delay_ms,
            jitter_ms: args.jitter_ms,
            loss_ppm: (args.loss.clamp(0.0, 1.0) * 1e6) as u32,
        };
        let segment = Segment::new(impairment, rng.next());
        let state_dir = std::env::temp_dir().join(format!("host-sim-rack-{}", std::process::id()));
        let mut nic = Segment::attach(&segment, APPLIANCE_MAC, true);
        let appliance = Appliance {
            files,
            state_dir: state_dir.join("appliance"),
            max_leases: 2 * args.machines.max(1),
            quiet: !args.verbose,
        };
        let runtime = appliance.start(&mut nic, start_ms)?;
        let machines: Vec<Machine> = (0..args.machines)
            .map(|i| {
                let firmware = Firmware::ALL[(rng.next() % 3) as usize];
                let mut uuid = [0u8; 16];
                uuid[..8].copy_from_slice(&rng.next().to_be_bytes());
                uuid[8..].copy_from_slice(&(i as u64).to_be_bytes());
                let n = (i as u32).to_be_bytes();
                let mac = MacAddr([0x52, 0x54, n[0], n[1], n[2], n[3]]);
                let powered_on = start_ms + rng.next() % POWER_ON_SPREAD_MS;
                let nic = Segment::attach(&segment, mac, false);
                Machine::new(mac, Uuid(uuid), firmware, rng.next(), nic, powered_on)
            })
            .collect();
        let hosts = (machines.iter().enumerate())
            .map(|(i, m)| (m.port(), Host::Machine(i)))
            .collect();
        let wake: Vec<u64> = machines.iter().map(|m| m.powered_on).collect();
        let timers = (wake.iter().enumerate())
            .map(|(i, &at)| Reverse((at, i)))
            .collect();
        Ok(Rack {
            segment,
            nic,
            runtime,
            machines,
            bmcs: Vec::new(),
            gateway: None,
            bridge: None,
            hosts,
            wake,
            timers,
            appliance_wake: start_ms,
            gateway_wake: u64::MAX,
            reached: Vec::new(),
            due: Vec::new(),
            settled: Vec::new(),
            state_dir,
            appliance,
            log: match args.verbose {
                true => Box::new(io::stderr()),
                false => Box::new(io::sink()),
            },
        })
    }

    /// A new host's NIC on the segment.
    fn attach(&mut self, mac: MacAddr, host: Host) -> Nic {
        let nic = Segment::attach(&self.segment, mac, false);
        self.hosts.insert(nic.port(), host);
        nic
    }

    /// When anything on the segment next needs to run.
    fn next_wake(&self) -> u64 {
        let timer = self.timers.peek().map_or(u64::MAX, |Reverse((at, _))| *at);
        let frame = self.segment.borrow().next_delivery().unwrap_or(u64::MAX);
        timer
            .min(frame)
            .min(self.appliance_wake)
            .min(self.gateway_wake)
    }

    /// Runs everything due at `now`: frames land, then the appliance, BMCs, the gateway
    /// and machines run.
    fn step(&mut self, now: u64) -> Result<(), String> {
        self.reached.clear();
        self.segment.borrow_mut().deliver(now, &mut self.reached);
        self.due.clear();
        while let Some(&Reverse((at, i))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.wake[i] == at {
                self.due.push(i);
            }
        }
        if self.appliance_wake <= now || self.reached.contains(&self.nic.port()) {
            let delay = (self.runtime)
                .poll(
                    Instant::from_millis(now as i64),
                    &mut self.nic,
                    &mut self.log,
                )
                .map_err(|e| e.to_string())?;
            self.appliance_wake = now + (delay.as_millis() as u64).max(1);
        }
        let mut gateway_due = self.gateway_wake <= now;
        for port in &self.reached {
            match self.hosts.get(port) {
                Some(&Host::Machine(i)) => self.due.push(i),
                Some(&Host::Bmc(i)) => {
                    for event in self.bmcs[i].poll(now) {
                        let m = &mut self.machines[i];
                        match event {
                            sim_bmc::ChassisEvent::PowerOff => m.power_off(),
                            _ => m.power_on(now),
                        }
                        self.due.push(i);
                    }
                }
                Some(Host::Gateway) => gateway_due = true,
                None => {}
            }
        }
        if let Some(bridge) = self.bridge.as_mut() {
            bridge.pump(now);
        }
        if let Some(gateway) = self.gateway.as_mut().filter(|g| gateway_due || g.busy()) {
            self.gateway_wake = gateway.poll(now);
        }
        self.due.sort_unstable();
        self.due.dedup();
        self.settled.clear();
        for &i in &self.due {
            let m = &mut self.machines[i];
            let was = m.settled();
            let at = m.poll(now, APPLIANCE);
            if m.settled() && !was {
                self.settled.push(i);
            }
            if at != u64::MAX {
                self.wake[i] = at;
                self.timers.push(Reverse((at, i)));
            }
        }
        Ok(())
    }
}

impl Drop for Rack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn dhcp_config() -> Result<Config, String> {
    let mut config = Config::new(Mode::Full, APPLIANCE);
    let pool = Subnet {
        net: Ipv4Net::new(APPLIANCE, 16).ok_or("bad subnet")?,
        pool_first: Ipv4Addr::new(10, 77, 1, 0),
        pool_last: Ipv4Addr::new(10, 77, 255, 254),
        router: None,
    };
    config.subnets.push(pool).map_err(|_| "subnets")?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// The boot dir of the simulation: iPXE binaries, kernel and initrd, read from `dir` where
/// it has them, else generated (`kernel` bytes of kernel, the others scaled to it).
fn boot_files(kernel: usize, dir: Option<&std::path::Path>) -> Result<Files, String> {
    let file = |name: &'static str, len: usize| -> Result<(&'static str, &'static [u8]), String> {
        let data = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
            Some(path) => std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?,
            None => {
                let seed = Digest::of(name.as_bytes()).0;
                (0..len)
                    .map(|i| (seed.wrapping_add(i as u64).wrapping_mul(0x9E37_79B9) >> 24) as u8)
                    .collect()
            }
        };
        Ok((name, Box::leak(data.into_boxed_slice())))
    };
    let files = vec![
        file("undionly.kpxe", kernel / 16)?,
        file("ipxe.efi", kernel / 4)?,
        file("ipxe-arm64.efi", kernel / 4)?,
        file("vmlinuz", kernel)?,
        file("initrd.img", kernel / 2)?,
    ];
    Ok(Box::leak(files.into_boxed_slice()))
}

/// FNV-1a over a byte stream: enough to tell a file arrived intact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Self {
        Digest(0xcbf2_9ce4_8422_2325)
    }
}

impl Digest {
    fn of(data: &[u8]) -> Digest {
        let mut d = Digest::default();
        d.update(data);
        d
    }

    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// xorshift64*: small, deterministic, good enough for a simulation.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }
}
