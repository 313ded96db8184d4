//! The adapter's work: register the provider (InfraProviderStatus with the static label),
//! beat every 30 s (InfraProviderHealthStatus), watch InfraMachine and BMCConfig and apply
//! them to the store (waking the machine's appliance), and write InfraMachineStatus back
//! only when it changed. All state but a few ids lives in Omni and the store, so a restart
//! resumes from a fresh watch; a dropped stream is watched again by the same adapter, which
//! skips the InfraMachine versions it has already taken.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use prost_types::Timestamp;

use super::client::{self, Client, Error};
use super::mapping::{self, Seen};
use super::proto::{
    BmcConfigSpec, EventType, InfraMachineSpec, InfraMachineStatusSpec,
    InfraProviderHealthStatusSpec, InfraProviderStatusSpec, Resource,
};
use super::sign::Signer;
use super::*;
use crate::Provider;

/// Omni's expectation for the health heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// Changes applied for one event at most: `next_change` converges in a handful.
const MAX_CHANGES: usize = 8;

pub struct Options {
    pub endpoint: String,
    pub provider_id: String,
    pub signer: Arc<Signer>,
    /// Added to this host's clock when signing (tests play a skewed clock with it).
    pub clock_offset_secs: i64,
    pub heartbeat: Duration,
}

pub struct Adapter {
    /// Connected on the first run and kept: the channel reconnects by itself, and the
    /// versions it remembers spare a Get before each write.
    client: Option<Client>,
    opts: Options,
    provider: Arc<Provider>,
    /// Per machine id: the InfraMachine version last taken, so a watch started again does
    /// not take the same one twice.
    versions: HashMap<String, String>,
    /// Per machine id: what Omni wants, the reboot bookkeeping, and the status last written.
    wants: HashMap<String, InfraMachineSpec>,
    seen: HashMap<String, Seen>,
    written: HashMap<String, InfraMachineStatusSpec>,
    /// BMCConfig versions applied, so an unchanged one is not re-sent.
    bmc_versions: HashMap<String, String>,
    /// Per machine id, what keeps Omni's wishes from the store (reported in the heartbeat).
    problems: BTreeMap<String, String>,
}

fn spec_of<M: Message + Default>(r: &Resource) -> Result<M, Error> {
    let bytes = r.spec.as_ref().map_or(&[][..], |s| &s.proto_spec[..]);
    M::decode(bytes).map_err(|e| Error::Malformed(format!("spec: {e}")))
}

fn now_timestamp() -> Timestamp {
    Timestamp {
        seconds: crate::store::now() as i64,
        nanos: 0,
    }
}

impl Adapter {
    /// The adapter for `provider`'s store and tunnels; nothing is dialled before [`run`](Self::run).
    pub fn new(provider: Arc<Provider>, opts: Options) -> Adapter {
        Adapter {
            client: None,
            opts,
            provider,
            versions: HashMap::new(),
            wants: HashMap::new(),
            seen: HashMap::new(),
            written: HashMap::new(),
            bmc_versions: HashMap::new(),
            problems: BTreeMap::new(),
        }
    }

    /// The client, connected on first use.
    async fn client(&mut self) -> Result<&mut Client, Error> {
        if self.client.is_none() {
            let o = &self.opts;
            let c = Client::connect(&o.endpoint, o.signer.clone(), o.clock_offset_secs).await?;
            self.client = Some(c);
        }
        self.client
            .as_mut()
            .ok_or_else(|| Error::Connect("no client".into()))
    }

    fn labels(&self) -> Vec<(String, String)> {
        vec![(LABEL_PROVIDER_ID.to_string(), self.opts.provider_id.clone())]
    }

    fn ours(&self, r: &Resource) -> bool {
        r.metadata
            .as_ref()
            .and_then(|m| m.labels.get(LABEL_PROVIDER_ID))
            .is_some_and(|id| *id == self.opts.provider_id)
    }

    /// Writes the InfraProviderStatus that makes the provider appear in Omni as static.
    pub async fn register(&mut self) -> Result<(), Error> {
        let spec = InfraProviderStatusSpec {
            name: "Rack appliances".into(),
            description: "Bare-metal machines of the racks behind rack-top appliances".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        let mut labels = self.labels();
        labels.push((LABEL_STATIC.into(), String::new()));
        let r = client::resource(
            NS_INFRA,
            PROVIDER_STATUS,
            &self.opts.provider_id,
            labels,
            &spec,
        );
        self.client().await?.put(r).await?;
        self.beat().await
    }

    /// One heartbeat, with what keeps machines from following Omni, if anything.
    pub async fn beat(&mut self) -> Result<(), Error> {
        let spec = InfraProviderHealthStatusSpec {
            last_heartbeat_timestamp: Some(now_timestamp()),
            error: self.health(),
        };
        let id = &self.opts.provider_id;
        let r = client::resource(NS_EPHEMERAL, PROVIDER_HEALTH, id, self.labels(), &spec);
        self.client().await?.put(r).await.map(drop)
    }

    /// Takes one InfraMachine into the store and writes its status back. A machine the
    /// store does not know (it never PXE-booted behind an appliance) is skipped.
    pub async fn machine(&mut self, r: &Resource) -> Result<(), Error> {
        let Some((id, version)) = r
            .metadata
            .as_ref()
            .map(|m| (m.id.clone(), m.version.clone()))
        else {
            return Err(Error::Malformed("InfraMachine without metadata".into()));
        };
        if self.versions.get(&id) == Some(&version) {
            return Ok(());
        }
        // A spec this adapter cannot read is Omni's bug or a newer Omni: said, and skipped,
        // so one bad resource does not stop the others.
        let want: InfraMachineSpec = match spec_of(r) {
            Ok(w) => w,
            Err(e) => {
                self.problem(&id, format!("InfraMachine {id}: {e}"));
                return Ok(());
            }
        };
        if !self.seen.contains_key(&id) {
            // A machine the store does not know yet starts afresh (and shows as a problem).
            let seen = match self.provider.store.machine(&id) {
                Ok(m) => {
                    let client = self.client().await?;
                    let before = client.get(NS_INFRA, INFRA_MACHINE_STATUS, &id).await?;
                    let before: InfraMachineStatusSpec = match &before {
                        Some(r) => spec_of(r)?,
                        None => Default::default(),
                    };
                    Seen::resume(&before, &m, &want)
                }
                Err(_) => Seen::default(),
            };
            self.seen.insert(id.clone(), seen);
        }
        self.wants.insert(id.clone(), want);
        self.versions.insert(id.clone(), version);
        self.settle(&id);
        self.write_status(&id).await
    }

    /// Applies what Omni wants of `id` to the store and keeps what went wrong, if anything,
    /// for the heartbeat (logged once, not at every retry).
    fn settle(&mut self, id: &str) {
        match self.apply(id) {
            Ok(()) => {
                self.problems.remove(id);
            }
            Err(e) => self.problem(id, format!("InfraMachine {id}: {e}")),
        }
    }

    fn problem(&mut self, id: &str, text: String) {
        if self.problems.get(id) != Some(&text) {
            eprintln!("provider: omni: {text}");
            self.problems.insert(id.to_string(), text);
        }
    }

    /// What the heartbeat reports: the first problem and how many machines have one.
    fn health(&self) -> String {
        let machines = match (self.problems.len(), self.problems.values().next()) {
            (0, _) | (_, None) => String::new(),
            (1, Some(p)) => p.clone(),
            (n, Some(p)) => format!("{p} (and {} more machines)", n - 1),
        };
        // Image Factory failing holds back every install (crate::factory): said first.
        match self.provider.store.config().lifecycle.schematics.problem() {
            Some(f) if machines.is_empty() => f,
            Some(f) => format!("{f}; {machines}"),
            None => machines,
        }
    }

    /// Applies what Omni wants of `id` to the store, change by change.
    fn apply(&mut self, id: &str) -> Result<(), String> {
        let (Some(want), Some(seen)) = (self.wants.get(id), self.seen.get_mut(id)) else {
            return Ok(());
        };
        let store = &self.provider.store;
        for _ in 0..MAX_CHANGES {
            let m = store.machine(id).map_err(|e| e.to_string())?;
            let Some(change) = mapping::next_change(&m, want, seen)? else {
                return Ok(());
            };
            let m = (store.change_machine(id, &change)).map_err(|e| format!("{change:?}: {e}"))?;
            mapping::applied(seen, want, &change, &m);
            self.provider.tunnels.wake(m.appliance);
        }
        Err(format!("still changing after {MAX_CHANGES} changes"))
    }

    /// Writes `id`'s InfraMachineStatus if it differs from the one last written.
    async fn write_status(&mut self, id: &str) -> Result<(), Error> {
        let (Some(want), Some(seen)) = (self.wants.get(id), self.seen.get_mut(id)) else {
            return Ok(());
        };
        let Ok(m) = self.provider.store.machine(id) else {
            return Ok(());
        };
        let status = mapping::status(&m, want, seen, crate::store::now() as i64);
        if self.written.get(id) == Some(&status) {
            return Ok(());
        }
        let r = client::resource(NS_INFRA, INFRA_MACHINE_STATUS, id, self.labels(), &status);
        self.client().await?.put(r).await?;
        self.written.insert(id.to_string(), status);
        Ok(())
    }

    /// Takes one BMCConfig into the store (once per version).
    pub async fn bmc(&mut self, r: &Resource) -> Result<(), Error> {
        let Some(md) = r.metadata.as_ref() else {
            return Err(Error::Malformed("BMCConfig without metadata".into()));
        };
        if self.bmc_versions.get(&md.id) == Some(&md.version) {
            return Ok(());
        }
        let spec = spec_of::<BmcConfigSpec>(r).map_err(|e| e.to_string());
        let result = spec.and_then(|s| mapping::bmc_change(&s)).and_then(|c| {
            (self.provider.store.change_machine(&md.id, &c)).map_err(|e| e.to_string())
        });
        match result {
            Ok(m) => {
                self.provider.tunnels.wake(m.appliance);
                self.bmc_versions.insert(md.id.clone(), md.version.clone());
            }
            Err(e) => self.problem(&md.id, format!("BMCConfig {}: {e}", md.id)),
        }
        Ok(())
    }

    /// Re-applies and writes back every machine Omni told us of (the store moves on
    /// between events: power observed, installs served). Writes only what changed.
    pub async fn sync(&mut self) -> Result<(), Error> {
        let ids: Vec<String> = self.wants.keys().cloned().collect();
        for id in ids {
            self.settle(&id);
            self.write_status(&id).await?;
        }
        Ok(())
    }

    /// Registers, then follows Omni's InfraMachines and BMCConfigs, beating and syncing
    /// every heartbeat, until a call or a stream fails.
    pub async fn run(&mut self) -> Result<(), Error> {
        self.register().await?;
        let mut machines = self.client().await?.watch(NS_INFRA, INFRA_MACHINE).await?;
        let mut bmcs = self.client().await?.watch(NS_INFRA, BMC_CONFIG).await?;
        let mut tick = tokio::time::interval(self.opts.heartbeat);
        // After a stall, one beat, not a burst of the missed ones.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                m = machines.message() => {
                    let m = m.map_err(|s| client::call_error("Watch", s))?;
                    let m = m.ok_or_else(|| Error::Malformed("InfraMachine watch ended".into()))?;
                    for event in m.event {
                        if let Some(r) = self.event(event)? {
                            self.machine(&r).await?;
                        }
                    }
                }
                b = bmcs.message() => {
                    let b = b.map_err(|s| client::call_error("Watch", s))?;
                    let b = b.ok_or_else(|| Error::Malformed("BMCConfig watch ended".into()))?;
                    for event in b.event {
                        if let Some(r) = self.event(event)? {
                            self.bmc(&r).await?;
                        }
                    }
                    self.sync().await?;
                }
                _ = tick.tick() => {
                    self.beat().await?;
                    self.sync().await?;
                }
            }
        }
    }

    /// The resource of a created or updated event, if it is this provider's.
    fn event(&mut self, e: super::proto::Event) -> Result<Option<Resource>, Error> {
        match EventType::try_from(e.event_type) {
            Ok(EventType::Created | EventType::Updated) => Ok(e.resource.filter(|r| self.ours(r))),
            Ok(EventType::Destroyed) => {
                if let Some(id) = e.resource.and_then(|r| r.metadata).map(|m| m.id) {
                    self.versions.remove(&id);
                    self.wants.remove(&id);
                    self.seen.remove(&id);
                    self.written.remove(&id);
                    self.problems.remove(&id);
                }
                Ok(None)
            }
            Ok(EventType::Errored) => Err(Error::Malformed(format!(
                "watch error: {}",
                e.error.unwrap_or_default()
            ))),
            Ok(_) => Ok(None),
            Err(_) => Err(Error::Malformed(format!("event type {}", e.event_type))),
        }
    }
}

/// Runs the adapter for good: on any failure it says why on stderr and starts again after
/// 1 s, doubling to 60 s (a run that lasted a heartbeat resets the delay).
pub async fn run_forever(provider: Arc<Provider>, opts: Options) {
    let heartbeat = opts.heartbeat;
    let mut adapter = Adapter::new(provider, opts);
    let mut delay = Duration::from_secs(1);
    loop {
        let started = tokio::time::Instant::now();
        let result = adapter.run().await;
        if started.elapsed() > heartbeat {
            delay = Duration::from_secs(1);
        }
        if let Err(e) = result {
            eprintln!("provider: omni: {e}; again in {} s", delay.as_secs());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}
