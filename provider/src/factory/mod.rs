//! Image Factory schematics: what each Talos boot carries beyond vanilla Talos (kernel
//! arguments, system extensions), created on the factory the way Omni's bare-metal provider
//! does, so every machine chains a plain factory PXE URL and the appliance never has to
//! splice kernel arguments into a script.
//!
//! - [`Schematic`]: the content, written as the YAML body `POST /schematics` takes.
//! - [`Schematics`]: the ids known so far, shared by the lifecycle (pure lookups; a miss is
//!   remembered as wanted) and [`run`], the task that creates the wanted ones with backoff.
//!   Ids are content-addressed, so the store keeps them across restarts and one is never
//!   asked for twice.
//! - [`client`]: the HTTP(S) client, with an extra trust root for an air-gapped factory.
//!
//! The join config reaches Talos through a kernel argument ([`join_kernel_args`]).

pub mod client;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::Provider;

/// Image Factory's id of the schematic without customization.
pub const VANILLA: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
/// The extension that makes Talos Omni's bare-metal agent.
pub const METAL_AGENT: &str = "siderolabs/metal-agent";
/// Where the appliance serves the join config (`appliance::http`), for the kernel argument.
pub const JOIN_CONFIG_PATH: &str = "/config";

/// The kernel arguments that make Talos fetch its join config from the appliance that
/// booted it: `talos.config=http://${66:string}[:port]/config?u=${uuid}`.
///
/// Why `${66:string}`: one schematic must serve every rack, and only the boot knows which
/// appliance it came from. iPXE expands `${...}` settings in every command it runs, the
/// factory script's `kernel` line included, and DHCP option 66 (TFTP server name) is the
/// appliance's address in every boot reply it sends iPXE, which asks for it. As a proxyDHCP
/// server the appliance's option still wins: the site's reply normally has no 66, so iPXE's
/// lookup falls through to the proxy offer. `${next-server}` does not: the site's server
/// sets `siaddr` (dnsmasq to itself), which iPXE prefers (both seen with a real iPXE in
/// e2e `ipxe_join_url`). The appliance hands Image Factory URLs to iPXE directly in its DHCP
/// reply, so no script of its own runs first that could set a variable. `${uuid}` is iPXE's
/// SMBIOS UUID. The port is the appliances' HTTP port, the same on every rack.
pub fn join_kernel_args(appliance_http_port: u16) -> Vec<String> {
    let port = match appliance_http_port {
        80 => String::new(),
        p => format!(":{p}"),
    };
    vec![format!(
        "talos.config=http://${{66:string}}{port}{JOIN_CONFIG_PATH}?u=${{uuid}}"
    )]
}

/// An Image Factory customization: extra kernel arguments (in order) and official system
/// extensions (sorted, once each, as the factory treats them as a set).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Schematic {
    pub kernel_args: Vec<String>,
    pub extensions: Vec<String>,
}

impl Schematic {
    pub fn new(kernel_args: Vec<String>, extensions: &[String]) -> Schematic {
        let extensions: BTreeSet<String> = extensions.iter().cloned().collect();
        Schematic {
            kernel_args,
            extensions: extensions.into_iter().collect(),
        }
    }

    /// The agent: the join config's kernel arguments and the metal-agent extension.
    pub fn agent(join_args: &[String]) -> Schematic {
        Schematic::new(join_args.to_vec(), &[METAL_AGENT.to_string()])
    }

    pub fn is_vanilla(&self) -> bool {
        self.kernel_args.is_empty() && self.extensions.is_empty()
    }

    /// The body of `POST /schematics`. Strings are written as JSON strings, which YAML reads
    /// as double-quoted scalars, so no argument can break the document.
    pub fn yaml(&self) -> String {
        let list = |items: &[String], indent: &str| -> String {
            items
                .iter()
                .map(|i| format!("{indent}- {}\n", serde_json::Value::from(i.as_str())))
                .collect()
        };
        let mut out = String::from("customization:\n");
        if !self.kernel_args.is_empty() {
            out += "  extraKernelArgs:\n";
            out += &list(&self.kernel_args, "    ");
        }
        if !self.extensions.is_empty() {
            out += "  systemExtensions:\n    officialExtensions:\n";
            out += &list(&self.extensions, "      ");
        }
        out
    }
}

/// The schematic ids known (by their YAML), the ones the lifecycle asked for and did not
/// find, and why the last creation failed. Cheap to clone: all clones share one table.
#[derive(Clone, Default)]
pub struct Schematics(Arc<Inner>);

#[derive(Default)]
struct Inner {
    known: RwLock<BTreeMap<String, String>>,
    wanted: Mutex<BTreeSet<Schematic>>,
    wake: Notify,
    problem: Mutex<Option<String>>,
}

impl Schematics {
    /// The id of `s`, or `None` while it is not created yet (it is then wanted, and [`run`]
    /// wakes to create it). The vanilla schematic needs no creating.
    pub fn id(&self, s: &Schematic) -> Option<String> {
        if s.is_vanilla() {
            return Some(VANILLA.into());
        }
        let known = self.0.known.read().ok()?.get(&s.yaml()).cloned();
        if known.is_none() && self.0.wanted.lock().ok()?.insert(s.clone()) {
            self.0.wake.notify_one();
        }
        known
    }

    /// Records an id (created, or loaded from the store).
    pub fn insert(&self, yaml: String, id: String) {
        if let Ok(mut known) = self.0.known.write() {
            known.insert(yaml, id);
        }
    }

    /// Why schematics cannot be created now, if they cannot (for the Omni heartbeat).
    pub fn problem(&self) -> Option<String> {
        self.0.problem.lock().ok()?.clone()
    }

    fn set_problem(&self, problem: Option<String>) {
        if let Ok(mut p) = self.0.problem.lock() {
            *p = problem;
        }
    }

    /// The wanted schematics still unknown (the rest are dropped from the wanted set).
    fn missing(&self) -> Vec<Schematic> {
        let Ok(mut wanted) = self.0.wanted.lock() else {
            return Vec::new();
        };
        let Ok(known) = self.0.known.read() else {
            return Vec::new();
        };
        wanted.retain(|s| !known.contains_key(&s.yaml()));
        wanted.iter().cloned().collect()
    }
}

/// Handles compare by identity: two settings are the same when they share the table.
impl PartialEq for Schematics {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Schematics {}

impl fmt::Debug for Schematics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known = self.0.known.read().map_or(0, |k| k.len());
        write!(f, "Schematics({known} known)")
    }
}

/// First wait after a failed creation; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Creates every wanted schematic, keeps its id in the store, and wakes the tunnels so their
/// machines get the boot that waited for it. On failure the reason is logged once (until it
/// changes) and kept for the Omni heartbeat; the machines keep booting the agent meanwhile.
pub async fn run(provider: Arc<Provider>, factory: client::Factory) {
    let schematics = provider.store.config().lifecycle.schematics.clone();
    // The agent's schematic first, before any appliance asks for its configuration.
    let _ = crate::lifecycle::agent_url(&provider.store.config().lifecycle);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut failed = None;
        let mut created = false;
        for s in schematics.missing() {
            let yaml = s.yaml();
            let result = match factory.create(&yaml).await {
                Ok(id) => provider
                    .store
                    .save_schematic(&yaml, &id)
                    .map(|()| id)
                    .map_err(|e| format!("store: {e}")),
                Err(e) => Err(e),
            };
            match result {
                Ok(id) => {
                    eprintln!("provider: image factory: schematic {id} created");
                    schematics.insert(yaml, id);
                    created = true;
                }
                Err(e) => {
                    failed = Some(format!("image factory: creating a schematic: {e}"));
                    break;
                }
            }
        }
        if created && let Ok(list) = provider.store.appliances() {
            list.iter().for_each(|(a, _)| provider.tunnels.wake(a.id));
        }
        if failed.is_some() && failed != schematics.problem() {
            eprintln!("provider: {}", failed.as_deref().unwrap_or_default());
        }
        let wait = match &failed {
            Some(_) => {
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
            None => {
                backoff = FIRST_BACKOFF;
                MAX_BACKOFF
            }
        };
        let retrying = failed.is_some();
        schematics.set_problem(failed);
        // After a failure, the backoff; else until the lifecycle wants one (or a minute).
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = schematics.0.wake.notified(), if !retrying => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_is_the_factory_shape_and_quotes_every_string() {
        let s = Schematic::new(
            vec!["console=ttyS0".into(), "a=\"b: c\"".into()],
            &[
                "siderolabs/iscsi-tools".into(),
                "siderolabs/amd-ucode".into(),
            ],
        );
        assert_eq!(
            s.yaml(),
            "customization:\n  extraKernelArgs:\n    - \"console=ttyS0\"\n    - \"a=\\\"b: c\\\"\"\n  \
             systemExtensions:\n    officialExtensions:\n      - \"siderolabs/amd-ucode\"\n      \
             - \"siderolabs/iscsi-tools\"\n"
        );
        assert_eq!(Schematic::default().yaml(), "customization:\n");
    }

    #[test]
    fn a_miss_is_wanted_once_and_vanilla_is_known() {
        let table = Schematics::default();
        assert_eq!(table.id(&Schematic::default()).as_deref(), Some(VANILLA));
        let agent = Schematic::agent(&join_kernel_args(8080));
        assert_eq!(
            agent.kernel_args,
            ["talos.config=http://${66:string}:8080/config?u=${uuid}"]
        );
        assert_eq!(table.id(&agent), None);
        assert_eq!(table.id(&agent), None);
        assert_eq!(table.missing(), std::slice::from_ref(&agent));
        table.insert(agent.yaml(), "abc".into());
        assert_eq!(table.id(&agent).as_deref(), Some("abc"));
        assert!(table.missing().is_empty());
        assert_eq!(
            join_kernel_args(80),
            ["talos.config=http://${66:string}/config?u=${uuid}"]
        );
    }
}
