//! The provider's state in one redb file: appliances, machines, each appliance's uplink
//! bookkeeping (last applied event, outstanding commands and results) and enrollment
//! tokens. Records are JSON so fields can be added with a default. Every change that must
//! be atomic (an event's effect and the inbox number; a token's use) is one transaction.

mod schematics;
mod tokens;
mod uplink_state;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::lifecycle::{self, Settings};
use crate::model::{Appliance, ApplianceId, BmcConfig, Change, Machine, MachineKey, parse_mac};

pub use tokens::TokenError;
pub use uplink_state::{Applied, CommandRecord, Link};

const APPLIANCES: TableDefinition<u64, &[u8]> = TableDefinition::new("appliances");
/// Certificate fingerprint -> appliance id.
const FINGERPRINTS: TableDefinition<&str, u64> = TableDefinition::new("fingerprints");
const MACHINES: TableDefinition<&str, &[u8]> = TableDefinition::new("machines");
/// MAC -> machine key, to find a machine keyed by UUID from a MAC-only event.
const MACS: TableDefinition<&str, &str> = TableDefinition::new("macs");
/// (appliance, machine key): the machines of each rack.
const RACKS: TableDefinition<(u64, &str), ()> = TableDefinition::new("racks");
/// Machine key -> BMC configuration, kept apart so no listing can show it.
const BMCS: TableDefinition<&str, &[u8]> = TableDefinition::new("bmcs");
/// Counters: the next appliance id, the next request id.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The file in the state directory.
pub const FILE: &str = "provider.redb";

#[derive(Debug)]
pub enum StoreError {
    Db(String),
    /// Corrupt or incompatible record.
    Decode(String),
    NotFound(String),
    /// The operation does not apply (e.g. allocate a pending machine).
    Invalid(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Db(e) => write!(f, "database: {e}"),
            StoreError::Decode(e) => write!(f, "corrupt record: {e}"),
            StoreError::NotFound(what) => write!(f, "{what}: not found"),
            StoreError::Invalid(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for StoreError {}

macro_rules! db_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}
db_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    std::io::Error
);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Decode(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Decode(e.to_string()))
}

/// What the store configures on the appliances and the lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    pub lifecycle: Settings,
    pub appliance: uplink::Config,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            lifecycle: Settings::default(),
            appliance: uplink::Config {
                agent_url: uplink::Url::new(),
                power_poll_secs: 30,
                min_on_before_off_secs: 15 * 60,
                join_config: Default::default(),
            },
        }
    }
}

impl StoreConfig {
    /// The configuration appliances get now: the agent on Image Factory once its schematic
    /// exists (asking for it until then), else the configured agent URL.
    pub fn appliance_config(&self) -> uplink::Config {
        let mut config = self.appliance.clone();
        if let Some(url) = lifecycle::agent_url(&self.lifecycle) {
            config.agent_url = url;
        }
        config
    }
}

pub struct Store {
    db: Database,
    config: StoreConfig,
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Opens (or creates) the store in `state_dir`.
    pub fn open(state_dir: &Path, config: StoreConfig) -> Result<Store> {
        std::fs::create_dir_all(state_dir)?;
        let db = Database::create(state_dir.join(FILE))?;
        let tx = db.begin_write()?;
        // Create every table, so read transactions never meet a missing one.
        tx.open_table(APPLIANCES)?;
        tx.open_table(FINGERPRINTS)?;
        tx.open_table(MACHINES)?;
        tx.open_table(MACS)?;
        tx.open_table(RACKS)?;
        tx.open_table(BMCS)?;
        tx.open_table(META)?;
        tokens::create_tables(&tx)?;
        schematics::create_tables(&tx)?;
        uplink_state::create_tables(&tx)?;
        tx.commit()?;
        let store = Store { db, config };
        store.load_schematics(&store.config.lifecycle.schematics)?;
        Ok(store)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Registers a newly enrolled appliance under its client certificate's fingerprint.
    pub fn register_appliance(&self, cert_fingerprint: &str, name: &str) -> Result<ApplianceId> {
        let tx = self.db.begin_write()?;
        if tx
            .open_table(FINGERPRINTS)?
            .get(cert_fingerprint)?
            .is_some()
        {
            return Err(StoreError::Invalid(format!(
                "certificate {cert_fingerprint} is already enrolled"
            )));
        }
        let id = ApplianceId(next_counter(&tx, "appliance")?);
        let appliance = Appliance {
            id,
            name: name.to_string(),
            firmware: None,
            enrolled_at: now(),
            revoked: false,
            last_seen: None,
            cert_fingerprint: cert_fingerprint.to_string(),
        };
        put_appliance(&tx, &appliance)?;
        tx.open_table(FINGERPRINTS)?
            .insert(cert_fingerprint, id.0)?;
        tx.commit()?;
        Ok(id)
    }

    /// Revokes an appliance: its tunnel is refused from then on.
    pub fn revoke_appliance(&self, id: ApplianceId) -> Result<()> {
        self.update_appliance(id, |a| a.revoked = true)
    }

    pub fn appliance_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Appliance>> {
        let tx = self.db.begin_read()?;
        let Some(id) = tx
            .open_table(FINGERPRINTS)?
            .get(fingerprint)?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        self.appliance(ApplianceId(id)).map(Some)
    }

    pub fn appliance(&self, id: ApplianceId) -> Result<Appliance> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(APPLIANCES)?;
        let row = table.get(id.0)?;
        row.map(|v| decode(v.value()))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("appliance {id}")))
    }

    /// Finds an appliance by id or name.
    pub fn find_appliance(&self, name: &str) -> Result<Appliance> {
        if let Ok(id) = name.parse::<u64>() {
            return self.appliance(ApplianceId(id));
        }
        self.appliances()?
            .into_iter()
            .map(|(a, _)| a)
            .find(|a| a.name == name)
            .ok_or_else(|| StoreError::NotFound(format!("appliance {name}")))
    }

    /// Every appliance with its uplink bookkeeping.
    pub fn appliances(&self) -> Result<Vec<(Appliance, Link)>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(APPLIANCES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let appliance: Appliance = decode(row?.1.value())?;
            let link = uplink_state::link_ro(&tx, appliance.id)?;
            out.push((appliance, link));
        }
        Ok(out)
    }

    fn update_appliance(&self, id: ApplianceId, f: impl FnOnce(&mut Appliance)) -> Result<()> {
        let tx = self.db.begin_write()?;
        let mut appliance = get_appliance(&tx, id)?;
        f(&mut appliance);
        put_appliance(&tx, &appliance)?;
        tx.commit()?;
        Ok(())
    }

    pub fn machines(&self) -> Result<Vec<Machine>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(MACHINES)?;
        table.iter()?.map(|row| decode(row?.1.value())).collect()
    }

    /// Finds a machine by its key (UUID or MAC) or by any MAC it was seen with.
    pub fn machine(&self, name: &str) -> Result<Machine> {
        let tx = self.db.begin_read()?;
        let name = name.to_ascii_lowercase();
        let key = match parse_mac(&name) {
            Some(mac) => tx
                .open_table(MACS)?
                .get(crate::model::fmt_mac(mac).as_str())?
                .map(|k| k.value().to_string()),
            None => None,
        }
        .unwrap_or(name);
        let table = tx.open_table(MACHINES)?;
        let row = table.get(key.as_str())?;
        row.map(|v| decode(v.value()))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("machine {key}")))
    }

    /// Applies an operator's change to a machine; returns it as it is now.
    pub fn change_machine(&self, name: &str, change: &Change) -> Result<Machine> {
        let key = self.machine(name)?.key;
        let tx = self.db.begin_write()?;
        let mut m = get_machine(&tx, &key)?
            .ok_or_else(|| StoreError::NotFound(format!("machine {key}")))?;
        let fresh = format!("r{}", next_counter(&tx, "request")?);
        lifecycle::apply_change(&mut m, change, &fresh, &self.config.lifecycle)
            .map_err(StoreError::Invalid)?;
        if let Change::Bmc(cfg) = change {
            tx.open_table(BMCS)?
                .insert(key.0.as_str(), encode(cfg)?.as_slice())?;
        }
        put_machine(&tx, &m)?;
        tx.commit()?;
        Ok(m)
    }
}

/// Increments and returns a counter (the first value is 1).
fn next_counter(tx: &WriteTransaction, name: &str) -> Result<u64> {
    let mut table = tx.open_table(META)?;
    let next = table.get(name)?.map_or(1, |v| v.value() + 1);
    table.insert(name, next)?;
    Ok(next)
}

fn get_appliance(tx: &WriteTransaction, id: ApplianceId) -> Result<Appliance> {
    let table = tx.open_table(APPLIANCES)?;
    let row = table.get(id.0)?;
    row.map(|v| decode(v.value()))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("appliance {id}")))
}

fn put_appliance(tx: &WriteTransaction, a: &Appliance) -> Result<()> {
    tx.open_table(APPLIANCES)?
        .insert(a.id.0, encode(a)?.as_slice())?;
    Ok(())
}

fn get_machine(tx: &WriteTransaction, key: &MachineKey) -> Result<Option<Machine>> {
    let table = tx.open_table(MACHINES)?;
    let row = table.get(key.0.as_str())?;
    row.map(|v| decode(v.value())).transpose()
}

/// Writes a machine and its indices.
fn put_machine(tx: &WriteTransaction, m: &Machine) -> Result<()> {
    let key = m.key.0.as_str();
    tx.open_table(MACHINES)?
        .insert(key, encode(m)?.as_slice())?;
    tx.open_table(MACS)?
        .insert(crate::model::fmt_mac(m.mac).as_str(), key)?;
    tx.open_table(RACKS)?.insert((m.appliance.0, key), ())?;
    Ok(())
}

/// Moves a machine stored under its MAC to its UUID, Omni's key (with its BMC
/// configuration, if the operator set one meanwhile).
fn rekey_machine(tx: &WriteTransaction, m: &mut Machine, uuid: uplink::Uuid) -> Result<()> {
    let old = m.key.0.clone();
    tx.open_table(MACHINES)?.remove(old.as_str())?;
    tx.open_table(RACKS)?
        .remove((m.appliance.0, old.as_str()))?;
    let bmc = tx
        .open_table(BMCS)?
        .remove(old.as_str())?
        .map(|v| v.value().to_vec());
    m.uuid = Some(uuid);
    m.key = MachineKey::of(m.mac, m.uuid);
    if let Some(bmc) = bmc {
        tx.open_table(BMCS)?
            .insert(m.key.0.as_str(), bmc.as_slice())?;
    }
    Ok(())
}

fn get_bmc(tx: &WriteTransaction, key: &MachineKey) -> Result<Option<BmcConfig>> {
    let table = tx.open_table(BMCS)?;
    let row = table.get(key.0.as_str())?;
    row.map(|v| decode(v.value())).transpose()
}
