//! `host-sim bmc`: an operator's power command for one BMC or many, run by the appliance's
//! clients and power manager.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use appliance::bmc::power::{self, PowerManager, Slot};
use appliance::bmc::{BootMode, Credentials, Operation, PowerAction, PowerState, PxeBoot};
use clap::{Args, ValueEnum};

use super::Link;
use super::ipmi::IpmiLink;
use super::probe::ProbeLink;
use super::redfish::{RedfishLink, Trust};
use super::runner::{self, Completion, Flow};

#[derive(Args)]
#[command(group = clap::ArgGroup::new("target").required(true).multiple(true).args(["bmc", "ipmi", "redfish"]))]
pub struct BmcArgs {
    /// A BMC of either kind: Redfish (https://HOST) is tried first, IPMI (HOST:623) if
    /// Redfish does not answer; repeatable.
    #[arg(long)]
    bmc: Vec<String>,
    /// Port `--bmc` tries Redfish (HTTPS) on.
    #[arg(long, default_value_t = 443)]
    redfish_port: u16,
    /// Port `--bmc` tries IPMI on.
    #[arg(long, default_value_t = 623)]
    ipmi_port: u16,
    /// IPMI v2.0 BMC, HOST[:PORT] (port 623 by default); repeatable.
    #[arg(long)]
    ipmi: Vec<String>,
    /// Redfish service root, e.g. https://10.0.0.5 or http://127.0.0.1:8000; repeatable.
    #[arg(long)]
    redfish: Vec<String>,
    #[arg(long)]
    user: String,
    /// Also read from the BMC_PASSWORD environment variable, which keeps it out of `ps`.
    #[arg(long, env = "BMC_PASSWORD", hide_env_values = true)]
    password: String,
    /// IPMI cipher suite to insist on (default: the best the BMC offers, 17 over 3).
    #[arg(long)]
    cipher_suite: Option<u8>,
    /// Redfish over TLS: trust this CA certificate (PEM).
    #[arg(long, group = "trust")]
    ca: Option<PathBuf>,
    /// Redfish over TLS: accept only the certificate with this SHA-256 fingerprint (hex).
    #[arg(long, group = "trust")]
    fingerprint: Option<String>,
    /// Redfish over TLS: accept any certificate (lab use only).
    #[arg(long, group = "trust")]
    insecure: bool,
    /// Network boot mode for pxe-once.
    #[arg(long, value_enum, default_value_t = Mode::Efi)]
    boot_mode: Mode,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Repeat a status read this many times over the same sessions (benchmarks, leak checks).
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// BMCs with an operation in flight at once.
    #[arg(long, default_value_t = 16)]
    parallel: usize,
    #[arg(value_enum)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Command {
    Status,
    On,
    Off,
    Cycle,
    PxeOnce,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Efi,
    Legacy,
}

/// Runs the command on every BMC; prints each one's power state (`on`/`off`, prefixed by
/// the BMC when there are several) and each failure, and fails if any BMC did.
pub fn run(args: &BmcArgs) -> Result<(), String> {
    let creds = credentials(args)?;
    let names: Vec<&String> = args
        .bmc
        .iter()
        .chain(&args.ipmi)
        .chain(&args.redfish)
        .collect();
    let mut links = links(args, &creds)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);

    let config = power::Config {
        max_in_flight: args.parallel.max(1),
        // Rounds are paced by the runner below, not by the periodic status read.
        status_interval_ms: u64::MAX / 2,
        ..power::Config::default()
    };
    let mut slots = vec![Slot::default(); links.len()];
    let mut pm = PowerManager::new(config, &mut slots);
    for _ in &links {
        pm.add(None, 0)
            .map_err(|_| "power table full".to_string())?;
    }
    for bmc in 0..links.len() {
        match args.command {
            Command::Status => {}
            Command::On => pm.set_desired(bmc, PowerState::On, None),
            Command::Off => pm.set_desired(bmc, PowerState::Off, None),
            Command::Cycle => pm.request(bmc, PowerAction::Cycle),
            Command::PxeOnce => pm.set_boot(bmc, pxe_once(args.boot_mode)),
        }
    }

    let mut outcome: Vec<Option<Result<PowerState, String>>> = vec![None; links.len()];
    let mut rounds = vec![0u32; links.len()];
    let wanted = wanted_op(args.command, args.boot_mode);
    // A deadline that passes leaves the unfinished BMCs without an outcome: reported below.
    let _ = runner::drive(&mut links, &mut pm, started, deadline, |pm, done| {
        let Completion {
            bmc, op, result, ..
        } = done;
        if outcome[bmc].is_some() {
            // Already decided (a later retry of a failed BMC changes nothing).
            return Flow::Continue;
        }
        let finished = match result {
            Err(error) => {
                outcome[bmc] = Some(Err(error.to_string()));
                true
            }
            Ok(state) => {
                rounds[bmc] += u32::from(op == Operation::Status);
                let reached = match wanted {
                    Some(op_wanted) => op == op_wanted || pm_settled(pm, bmc),
                    None => rounds[bmc] >= args.rounds,
                };
                if reached {
                    outcome[bmc] = Some(Ok(state));
                } else {
                    pm.refresh(bmc, 0);
                }
                reached
            }
        };
        if finished && outcome.iter().all(Option::is_some) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    });
    let unclosed = runner::close_all(&mut links, Instant::now() + Duration::from_secs(5));

    let many = names.len() > 1;
    let mut failed = 0;
    for (name, outcome) in names.iter().zip(&outcome) {
        let prefix = if many {
            format!("{name} ")
        } else {
            String::new()
        };
        match outcome {
            Some(Ok(state)) => println!("{prefix}{}", state_word(*state)),
            Some(Err(error)) => {
                eprintln!("host-sim bmc: {name}: {error}");
                failed += 1;
            }
            None => {
                eprintln!("host-sim bmc: {name}: no answer within {} s", args.timeout);
                failed += 1;
            }
        }
    }
    if unclosed > 0 {
        return Err(format!("{unclosed} session(s) did not close in time"));
    }
    if failed > 0 {
        return Err(format!("{failed} of {} BMC(s) failed", names.len()));
    }
    Ok(())
}

/// The operation that completes the command; `None` for status reads.
fn wanted_op(command: Command, mode: Mode) -> Option<Operation> {
    match command {
        Command::Status => None,
        Command::On => Some(Operation::Power(PowerAction::On)),
        Command::Off => Some(Operation::Power(PowerAction::Off)),
        Command::Cycle => Some(Operation::Power(PowerAction::Cycle)),
        Command::PxeOnce => Some(Operation::BootPxe(pxe_once(mode))),
    }
}

/// On and off are done once the observed state is the desired one, even with no operation
/// (the machine was already there).
fn pm_settled(pm: &PowerManager<'_>, bmc: usize) -> bool {
    pm.view(bmc)
        .is_some_and(|v| v.desired.is_some() && v.desired == v.observed)
}

fn pxe_once(mode: Mode) -> PxeBoot {
    PxeBoot {
        persistent: false,
        mode: match mode {
            Mode::Efi => BootMode::Efi,
            Mode::Legacy => BootMode::Legacy,
        },
    }
}

fn state_word(state: PowerState) -> &'static str {
    match state {
        PowerState::On => "on",
        PowerState::Off => "off",
    }
}

fn credentials(args: &BmcArgs) -> Result<Credentials, String> {
    Ok(Credentials {
        user: args
            .user
            .as_str()
            .try_into()
            .map_err(|_| "user name longer than 32 bytes".to_string())?,
        password: args
            .password
            .as_str()
            .try_into()
            .map_err(|_| "password longer than 64 bytes".to_string())?,
    })
}

fn links(args: &BmcArgs, creds: &Credentials) -> Result<Vec<Box<dyn Link>>, String> {
    let mut links: Vec<Box<dyn Link>> = Vec::new();
    for host in &args.bmc {
        let url = format!("https://{host}:{}", args.redfish_port);
        let redfish = RedfishLink::new(&url, creds.clone(), trust(args, &url)?)
            .map_err(|e| format!("{host}: {e}"))?;
        let addr = ipmi_addr(&format!("{host}:{}", args.ipmi_port))?;
        let ipmi = IpmiLink::new(addr, creds.clone(), args.cipher_suite)
            .map_err(|e| format!("{host}: {e}"))?;
        links.push(Box::new(ProbeLink::new(redfish, ipmi)));
    }
    for host in &args.ipmi {
        let addr = ipmi_addr(host)?;
        let link = IpmiLink::new(addr, creds.clone(), args.cipher_suite)
            .map_err(|e| format!("{host}: {e}"))?;
        links.push(Box::new(link));
    }
    for url in &args.redfish {
        let link = RedfishLink::new(url, creds.clone(), trust(args, url)?)
            .map_err(|e| format!("{url}: {e}"))?;
        links.push(Box::new(link));
    }
    Ok(links)
}

fn ipmi_addr(host: &str) -> Result<SocketAddr, String> {
    let with_port = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:623")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{host}: no IPv4 address"))
}

fn trust(args: &BmcArgs, url: &str) -> Result<Trust, String> {
    if let Some(ca) = &args.ca {
        return Ok(Trust::CaFile(ca.clone()));
    }
    if let Some(hex) = &args.fingerprint {
        return parse_fingerprint(hex).map(Trust::Fingerprint);
    }
    if args.insecure || url.starts_with("http://") {
        // Plain HTTP has no certificate to check.
        return Ok(Trust::Insecure);
    }
    Err(format!(
        "{url}: HTTPS needs --ca FILE, --fingerprint HEX or --insecure"
    ))
}

fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    let bad = || format!("fingerprint {text:?}: expected 64 hex digits (SHA-256)");
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}
