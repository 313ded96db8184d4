//! Each appliance's uplink bookkeeping: the last applied event (the `uplink::Inbox` number,
//! written in the same transaction as the events' effects), the commands issued and not
//! yet resolved (resent after every reconnect), and the resolved ones with their results.

use std::collections::{BTreeSet, HashSet};

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use uplink::{BootTarget, Command, Event, Inbox, MachineId, Outcome, Sequenced, Url, Verdict};

use super::{
    MACS, RACKS, Result, Store, StoreError, decode, encode, get_appliance, get_bmc, get_machine,
    put_appliance, put_machine, rekey_machine,
};
use crate::lifecycle::{self, Issue, Kind, Purpose};
use crate::model::{ApplianceId, Machine, MachineKey, ObservedPower, fmt_mac, fmt_uuid};

const LINKS: TableDefinition<u64, &[u8]> = TableDefinition::new("links");
/// (appliance, command id) -> record, while unresolved.
const OUTSTANDING: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("outstanding");
/// (appliance, command id) -> record with its outcome.
const RESOLVED: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("resolved");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(LINKS)?;
    tx.open_table(OUTSTANDING)?;
    tx.open_table(RESOLVED)?;
    Ok(())
}

/// Appliance `id` restarted: what its machines were sent is gone from its memory (the
/// power cycles they were sent into are not: those happened). The boot target stays known,
/// marked stale: events from before the restart, replayed from the appliance's outbox after
/// this hello, are read against it.
fn forget_delivered(tx: &WriteTransaction, id: ApplianceId) -> Result<()> {
    for key in rack_machines(tx, id)? {
        if let Some(mut m) = get_machine(tx, &key)? {
            m.delivered.stale = true;
            m.delivered.bmc_revision = 0;
            m.delivered.power_attempt = None;
            put_machine(tx, &m)?;
        }
    }
    Ok(())
}

/// The keys of appliance `id`'s machines.
fn rack_machines(tx: &WriteTransaction, id: ApplianceId) -> Result<Vec<MachineKey>> {
    let table = tx.open_table(RACKS)?;
    let rows = table.range((id.0, "")..(id.0 + 1, ""))?;
    rows.map(|r| Ok(MachineKey(r?.0.value().1.to_string())))
        .collect()
}

/// One appliance's uplink state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The `uplink::Inbox` number: every event up to it is applied.
    pub last_applied_seq: u64,
    /// Events applied in all (duplicates not counted).
    #[serde(default)]
    pub applied_events: u64,
    /// The last command id issued (ids start at 1).
    pub last_command_id: u64,
    /// Events refused because they spoke for another rack's machine.
    pub refused_events: u64,
    /// The appliance configuration it has confirmed.
    pub config_delivered: Option<uplink::Config>,
    /// The appliance's [`uplink::Hello::boot_id`] at its last hello.
    #[serde(default)]
    pub boot_id: Option<u64>,
}

/// A command issued to an appliance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub id: u64,
    pub machine: Option<MachineKey>,
    pub issue: Issue,
    pub issued_at: u64,
    pub outcome: Option<Outcome>,
}

/// What [`Store::apply_events`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The inbox number after the batch: ack up to it.
    pub last_applied: u64,
    pub applied: usize,
    pub duplicates: usize,
    /// Events refused in this batch (another rack's machine).
    pub refused: usize,
    /// Machines whose state changed.
    pub touched: BTreeSet<MachineKey>,
}

pub(super) fn link_ro(tx: &ReadTransaction, id: ApplianceId) -> Result<Link> {
    let table = tx.open_table(LINKS)?;
    let row = table.get(id.0)?;
    Ok(row
        .map(|v| decode(v.value()))
        .transpose()?
        .unwrap_or_default())
}

fn get_link(tx: &WriteTransaction, id: ApplianceId) -> Result<Link> {
    let table = tx.open_table(LINKS)?;
    let row = table.get(id.0)?;
    Ok(row
        .map(|v| decode(v.value()))
        .transpose()?
        .unwrap_or_default())
}

fn put_link(tx: &WriteTransaction, id: ApplianceId, link: &Link) -> Result<()> {
    tx.open_table(LINKS)?
        .insert(id.0, encode(link)?.as_slice())?;
    Ok(())
}

/// Finds the machine an event names.
fn lookup(tx: &WriteTransaction, id: MachineId) -> Result<Option<Machine>> {
    let key = match id {
        MachineId::Uuid(u) => fmt_uuid(u),
        MachineId::Mac(mac) => {
            let table = tx.open_table(MACS)?;
            let key = table.get(fmt_mac(mac).as_str())?;
            match key {
                Some(k) => k.value().to_string(),
                None => return Ok(None),
            }
        }
    };
    get_machine(tx, &MachineKey(key))
}

impl Store {
    /// A tunnel's hello: records the firmware and returns the last applied event number
    /// (the welcome's), or an error if the appliance is unknown or revoked. After the
    /// appliance restarted (a new `boot_id`), nothing held in its memory counts as delivered
    /// any more, so the next reconcile sends boot targets, BMC credentials and the
    /// configuration again.
    pub fn hello(&self, id: ApplianceId, hello: &uplink::Hello, now: u64) -> Result<u64> {
        let tx = self.db.begin_write()?;
        let mut appliance = get_appliance(&tx, id)?;
        if appliance.revoked {
            return Err(StoreError::Invalid(format!("appliance {id} is revoked")));
        }
        appliance.firmware = Some(hello.firmware_version.to_string());
        appliance.last_seen = Some(now);
        put_appliance(&tx, &appliance)?;
        let mut link = get_link(&tx, id)?;
        if link.boot_id != Some(hello.boot_id) {
            if link.boot_id.is_some() {
                forget_delivered(&tx, id)?;
                link.config_delivered = None;
            }
            link.boot_id = Some(hello.boot_id);
            put_link(&tx, id, &link)?;
        }
        tx.commit()?;
        Ok(link.last_applied_seq)
    }

    /// Applies a batch of events from appliance `id` in one transaction, each at most once
    /// (the inbox number is committed with the effects).
    pub fn apply_events(&self, id: ApplianceId, events: &[Sequenced], now: u64) -> Result<Applied> {
        let tx = self.db.begin_write()?;
        let mut link = get_link(&tx, id)?;
        let mut inbox = Inbox::new(link.last_applied_seq);
        let mut out = Applied::default();
        for e in events {
            if inbox.accept(e.seq) == Verdict::Duplicate {
                out.duplicates += 1;
                continue;
            }
            out.applied += 1;
            link.applied_events += 1;
            // The agent URL the appliance boots by: the one it confirmed, else the current.
            let agent_url = match &link.config_delivered {
                Some(c) => c.agent_url.clone(),
                None => self.config.appliance_config().agent_url,
            };
            match apply_event(&tx, id, &mut link, &e.event, &agent_url, now)? {
                Effect::Touched(key) => {
                    out.touched.insert(key);
                }
                Effect::Refused => {
                    out.refused += 1;
                    link.refused_events += 1;
                }
                Effect::None => {}
            }
        }
        link.last_applied_seq = inbox.last_applied();
        out.last_applied = link.last_applied_seq;
        put_link(&tx, id, &link)?;
        let mut appliance = get_appliance(&tx, id)?;
        appliance.last_seen = Some(now);
        put_appliance(&tx, &appliance)?;
        tx.commit()?;
        Ok(out)
    }

    /// Issues the commands the lifecycle wants for appliance `id`'s machines (all, or only
    /// `only`), plus a configuration update if it has not confirmed the current one.
    pub fn reconcile(
        &self,
        id: ApplianceId,
        only: Option<&BTreeSet<MachineKey>>,
        now: u64,
    ) -> Result<usize> {
        let tx = self.db.begin_write()?;
        let mut link = get_link(&tx, id)?;
        let (busy, config_busy) = busy_kinds(&tx, id)?;
        let keys: Vec<MachineKey> = match only {
            Some(keys) => keys.iter().cloned().collect(),
            None => rack_machines(&tx, id)?,
        };
        let mut issued = 0;
        for key in keys {
            let Some(m) = get_machine(&tx, &key)? else {
                continue;
            };
            let plan = lifecycle::plan(&m, &self.config.lifecycle);
            let bmc = get_bmc(&tx, &key)?;
            let is_busy = |k| busy.contains(&(key.clone(), k));
            for issue in lifecycle::next_commands(&m, &plan, bmc.as_ref(), is_busy, now) {
                issue_command(&tx, id, &mut link, Some(key.clone()), issue, now)?;
                issued += 1;
            }
        }
        let config = &self.config.appliance_config();
        if link.config_delivered.as_ref() != Some(config) && !config_busy {
            let issue = Issue {
                purpose: Purpose::Config,
                into: None,
                command: Command::ConfigUpdate(config.clone()),
            };
            issue_command(&tx, id, &mut link, None, issue, now)?;
            issued += 1;
        }
        put_link(&tx, id, &link)?;
        tx.commit()?;
        Ok(issued)
    }

    /// The unresolved commands of appliance `id`, in id order: what to (re)send.
    pub fn outstanding(&self, id: ApplianceId) -> Result<Vec<(u64, Command)>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(OUTSTANDING)?;
        table
            .range((id.0, 0)..=(id.0, u64::MAX))?
            .map(|r| {
                let rec: CommandRecord = decode(r?.1.value())?;
                Ok((rec.id, rec.issue.command))
            })
            .collect()
    }

    /// Every command issued to appliance `id` with its outcome once resolved, in id order.
    pub fn commands(&self, id: ApplianceId) -> Result<Vec<CommandRecord>> {
        let tx = self.db.begin_read()?;
        let mut out = Vec::new();
        for table in [RESOLVED, OUTSTANDING] {
            let table = tx.open_table(table)?;
            for r in table.range((id.0, 0)..=(id.0, u64::MAX))? {
                out.push(decode::<CommandRecord>(r?.1.value())?);
            }
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }
}

/// The (machine, kind) pairs with a command in flight, and whether a config update is.
fn busy_kinds(
    tx: &WriteTransaction,
    id: ApplianceId,
) -> Result<(HashSet<(MachineKey, Kind)>, bool)> {
    let table = tx.open_table(OUTSTANDING)?;
    let mut busy = HashSet::new();
    let mut config = false;
    for r in table.range((id.0, 0)..=(id.0, u64::MAX))? {
        let rec: CommandRecord = decode(r?.1.value())?;
        match rec.machine {
            Some(key) => busy.insert((key, rec.issue.purpose.kind())),
            None => {
                config = true;
                true
            }
        };
    }
    Ok((busy, config))
}

fn issue_command(
    tx: &WriteTransaction,
    id: ApplianceId,
    link: &mut Link,
    machine: Option<MachineKey>,
    issue: Issue,
    now: u64,
) -> Result<()> {
    link.last_command_id += 1;
    let rec = CommandRecord {
        id: link.last_command_id,
        machine,
        issue,
        issued_at: now,
        outcome: None,
    };
    tx.open_table(OUTSTANDING)?
        .insert((id.0, rec.id), encode(&rec)?.as_slice())?;
    Ok(())
}

enum Effect {
    None,
    Touched(MachineKey),
    Refused,
}

/// Applies one event inside the batch's transaction. An event about a machine of another
/// rack is refused (and logged); one about an unknown machine changes nothing.
fn apply_event(
    tx: &WriteTransaction,
    id: ApplianceId,
    link: &mut Link,
    event: &Event,
    agent_url: &Url,
    now: u64,
) -> Result<Effect> {
    let found = match event {
        Event::MachineSeen(s) => {
            let by_uuid = match s.uuid {
                Some(u) => lookup(tx, MachineId::Uuid(u))?,
                None => None,
            };
            let found = match by_uuid {
                Some(m) => Some(m),
                None => lookup(tx, MachineId::Mac(s.mac))?,
            };
            Some(found.unwrap_or_else(|| Machine::new(id, s.mac, s.uuid, s.first_seen)))
        }
        Event::Lease(l) => lookup(tx, MachineId::Mac(l.mac))?,
        Event::BootServed(b) => lookup(tx, MachineId::Mac(b.mac))?,
        Event::PowerState(p) => lookup(tx, p.machine)?,
        Event::CommandResult(r) => {
            return apply_result(tx, id, link, r.command_id, &r.outcome, now);
        }
    };
    let Some(mut m) = found else {
        return Ok(Effect::None);
    };
    if m.appliance != id {
        eprintln!(
            "uplink: appliance {id} spoke for machine {} of appliance {}: refused",
            m.key, m.appliance
        );
        return Ok(Effect::Refused);
    }
    match event {
        Event::MachineSeen(s) => {
            if let (None, Some(u)) = (m.uuid, s.uuid) {
                rekey_machine(tx, &mut m, u)?;
            }
            m.arch = s.arch.or(m.arch);
            m.first_seen = m.first_seen.min(s.first_seen);
            m.last_seen = m.last_seen.max(s.last_seen);
        }
        Event::Lease(l) => {
            m.lease_ip = Some(l.ip.0);
            m.lease_expires = Some(l.expires);
        }
        Event::BootServed(b) => lifecycle::boot_served(&mut m, &b.what, agent_url),
        Event::PowerState(p) => {
            let state = ObservedPower::from(p.state);
            if m.observed_power != state {
                m.observed_power = state;
                m.delivered.power_attempt = None;
            }
        }
        Event::CommandResult(_) => {}
    }
    put_machine(tx, &m)?;
    Ok(Effect::Touched(m.key))
}

/// A command's result: resolves it once (a result for a resolved command is ignored) and
/// takes its effect into the machine or the link.
fn apply_result(
    tx: &WriteTransaction,
    id: ApplianceId,
    link: &mut Link,
    command_id: u64,
    outcome: &Outcome,
    now: u64,
) -> Result<Effect> {
    let row = tx
        .open_table(OUTSTANDING)?
        .remove((id.0, command_id))?
        .map(|v| v.value().to_vec());
    let Some(row) = row else {
        return Ok(Effect::None);
    };
    let mut rec: CommandRecord = decode(&row)?;
    rec.outcome = Some(outcome.clone());
    tx.open_table(RESOLVED)?
        .insert((id.0, command_id), encode(&rec)?.as_slice())?;
    match (&rec.machine, &rec.issue.command) {
        (None, Command::ConfigUpdate(c)) if *outcome == Outcome::Done => {
            link.config_delivered = Some(c.clone());
            Ok(Effect::None)
        }
        (Some(key), _) => {
            let Some(mut m) = get_machine(tx, key)? else {
                return Ok(Effect::None);
            };
            let into: Option<BootTarget> = rec.issue.into.clone();
            lifecycle::resolve(&mut m, &rec.issue.purpose, into, outcome, now);
            put_machine(tx, &m)?;
            Ok(Effect::Touched(m.key))
        }
        _ => Ok(Effect::None),
    }
}
