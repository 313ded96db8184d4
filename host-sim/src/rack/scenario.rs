//! The lifecycle every machine goes through, played on the provider as an operator would
//! (or, with `--omni`, as Omni's user through the stand-in Omni: [`super::omni`]): accept
//! it with its BMC once it has shown up, allocate it to a cluster once it is wiped and off,
//! reboot it once installed, release it; it must then be wiped again and powered off. Each
//! step waits for both sides: the provider's record and what the simulated machine actually
//! booted, so a command run twice shows as an extra boot.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use appliance::net::MacAddr;

use provider::model::{
    Acceptance, Allocation, BmcConfig, Change, Machine as Record, ObservedPower,
};
use uplink::{BmcEndpoint, BootTarget, Ipv4};

use super::bmc_host::IPMI_PORT;
use super::machine::{Booted, Machine};
use super::provider::InProcess;

pub const BMC_USER: &str = "admin";
pub const BMC_PASSWORD: &str = "rack-password";
pub const TALOS: &str = "v1.11.5";
/// Longest a machine may spend in one stage before it counts as failed.
const STAGE_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Powered on by hand: boots the agent as a pending machine.
    Discovered,
    /// Accepted with its BMC: wiped (the agent with a wipe order), then powered off.
    Accepted,
    /// Allocated: powered on into the Talos installer, then set to boot from disk.
    Allocated,
    /// (Omni) Omni counted the install: reported installed.
    Installed,
    /// A reboot request: power-cycled, boots from disk.
    Rebooting,
    /// (Omni) A power-off request: powered off, reported done.
    PoweredOff,
    /// Deallocated: wiped again, then powered off.
    Released,
    /// (Omni) Cordoned: refused network boots.
    Cordoned,
    Done,
    Failed(String),
}

impl Stage {
    pub const NAMES: [&str; 9] = [
        "discovered",
        "accepted",
        "allocated",
        "installed",
        "rebooting",
        "powered-off",
        "released",
        "cordoned",
        "done",
    ];

    pub fn index(&self) -> Option<usize> {
        Some(match self {
            Stage::Discovered => 0,
            Stage::Accepted => 1,
            Stage::Allocated => 2,
            Stage::Installed => 3,
            Stage::Rebooting => 4,
            Stage::PoweredOff => 5,
            Stage::Released => 6,
            Stage::Cordoned => 7,
            Stage::Done => 8,
            Stage::Failed(_) => return None,
        })
    }
}

/// One machine's way through the scenario.
pub struct Track {
    pub stage: Stage,
    since: Instant,
    /// How long each finished stage took, by [`Stage::index`].
    pub took: [Option<Duration>; Stage::NAMES.len()],
    /// (Omni) When the stand-in wrote the allocation (Unix ms), and the request ids it made.
    pub omni: super::omni::Requests,
}

impl Track {
    pub fn new() -> Track {
        Track {
            stage: Stage::Discovered,
            since: Instant::now(),
            took: [None; Stage::NAMES.len()],
            omni: Default::default(),
        }
    }

    pub fn finished(&self) -> bool {
        matches!(self.stage, Stage::Done | Stage::Failed(_))
    }

    /// Moves on if the machine and its record have reached the end of the current stage.
    /// `m` is the simulated machine, `None` for a real one (then only its record is seen).
    pub fn advance(
        &mut self,
        mac: MacAddr,
        m: Option<&Machine>,
        bmc: &BmcConfig,
        provider: &InProcess,
    ) {
        if self.finished() {
            return;
        }
        if let Some(why) = m.and_then(Machine::failure) {
            return self.fail(format!("boot failed: {why}"));
        }
        let key = provider::model::fmt_mac(uplink::Mac(mac.0));
        let Some(r) = provider.machine(&key) else {
            return self.timeout(m, None);
        };
        let next = match &provider.omni {
            Some(omni) => super::omni::next(self, m, &r, bmc, omni),
            None => self.as_operator(m, &r, bmc, &key, provider),
        };
        match next {
            Ok(Some(stage)) => {
                if let Some(i) = self.stage.index() {
                    self.took[i] = Some(self.since.elapsed());
                }
                self.since = Instant::now();
                self.stage = stage;
                if self.stage == Stage::Done
                    && let Some(Err(why)) = m.map(check_history)
                {
                    self.fail(why);
                }
            }
            Ok(None) => self.timeout(m, Some(&r)),
            Err(why) => self.fail(why),
        }
    }

    /// The operator's next step, if the current stage is over: the changes made, the stage
    /// it leads to.
    fn as_operator(
        &self,
        m: Option<&Machine>,
        r: &Record,
        bmc: &BmcConfig,
        key: &str,
        provider: &InProcess,
    ) -> Result<Option<Stage>, String> {
        let booted = |n: usize| booted(m, n);
        let wiped_and_off = |n| wiped_and_off(m, r, n);
        let next = match self.stage {
            Stage::Discovered if booted(1) && r.last_boot.is_some() => Some((
                Stage::Accepted,
                vec![Change::Bmc(bmc.clone()), Change::Accept],
            )),
            Stage::Accepted if wiped_and_off(2) => {
                let allocation = Allocation {
                    talos_version: TALOS.into(),
                    schematic: None,
                    kernel_args: String::new(),
                    extensions: Vec::new(),
                };
                Some((Stage::Allocated, vec![Change::Allocate(allocation)]))
            }
            Stage::Allocated
                if booted(3) && r.installed && r.delivered.boot == Some(BootTarget::Disk) =>
            {
                Some((Stage::Rebooting, vec![Change::Reboot]))
            }
            Stage::Rebooting
                if booted(4) && is_on(m, r) && r.last_reboot_id == r.requested_reboot_id =>
            {
                Some((Stage::Released, vec![Change::Deallocate]))
            }
            Stage::Released if wiped_and_off(5) => Some((Stage::Done, vec![])),
            _ => None,
        };
        let Some((stage, changes)) = next else {
            return Ok(None);
        };
        for change in &changes {
            provider.change(key, change)?;
        }
        Ok(Some(stage))
    }

    fn timeout(&mut self, m: Option<&Machine>, r: Option<&Record>) {
        if self.since.elapsed() < STAGE_TIMEOUT {
            return;
        }
        let record = r.map_or("not known to the provider".into(), |r| {
            format!(
                "acceptance {:?}, power {:?}, wiped {}, installed {}, last error {:?}",
                r.acceptance,
                r.observed_power,
                wiped(r),
                r.installed,
                r.last_error
            )
        });
        let machine = m.map_or(String::new(), |m| {
            let boots: Vec<_> = m.boots.iter().map(|(_, b)| b).collect();
            format!("; booted {boots:?}, on {}", m.is_on())
        });
        self.fail(format!(
            "stuck in {:?} for {:?}: {record}{machine}",
            self.stage, STAGE_TIMEOUT
        ));
    }

    fn fail(&mut self, why: String) {
        self.stage = Stage::Failed(why);
    }
}

fn wiped(r: &Record) -> bool {
    r.acceptance == Acceptance::Accepted && r.wipe_id.is_some() && r.wipe_id == r.wiped
}

/// The machine has booted `n` times and is not in the middle of a boot (a real machine:
/// only its record is seen, so the other checks stand for this).
pub fn booted(m: Option<&Machine>, n: usize) -> bool {
    m.is_none_or(|m| m.settled() && m.boots.len() == n)
}

/// The machine is on (a real machine: as its BMC last said).
pub fn is_on(m: Option<&Machine>, r: &Record) -> bool {
    m.map_or(r.observed_power == ObservedPower::On, Machine::is_on)
}

/// After `n` boots, the last the agent's wipe: the record says wiped, and it is off.
pub fn wiped_and_off(m: Option<&Machine>, r: &Record, n: usize) -> bool {
    booted(m, n) && !is_on(m, r) && wiped(r) && r.observed_power == ObservedPower::Off
}

/// The BMC the scenario hands over for a machine: IPMI at `ip`, user `admin`.
pub fn ipmi_bmc(ip: Ipv4Addr, password: &str) -> BmcConfig {
    BmcConfig {
        endpoint: BmcEndpoint::Ipmi {
            ip: Ipv4(ip.octets()),
            port: IPMI_PORT,
        },
        user: BMC_USER.into(),
        password: password.into(),
    }
}

/// The boots the scenario makes, in order: agent (pending), agent (wipe), the installer,
/// disk (reboot), agent (wipe). One more or one less means a command ran twice or not at
/// all.
fn check_history(m: &Machine) -> Result<(), String> {
    let kinds: Vec<&str> = m
        .boots
        .iter()
        .map(|(_, b)| match b {
            Booted::Kernel => "agent",
            Booted::Chain(url) if url.contains(&format!("/{TALOS}/metal-")) => "installer",
            Booted::Chain(_) => "other chain",
            Booted::Disk => "disk",
        })
        .collect();
    let want = ["agent", "agent", "installer", "disk", "agent"];
    if kinds == want {
        Ok(())
    } else {
        Err(format!("booted {kinds:?}, expected {want:?}"))
    }
}
