//! Image Factory schematic ids by content (their YAML): ids are content-addressed, so one
//! created is kept for good and a restart asks the factory for none it already gave.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{Result, Store};
use crate::factory::Schematics;

/// Schematic YAML -> id.
const SCHEMATICS: TableDefinition<&str, &str> = TableDefinition::new("schematics");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(SCHEMATICS)?;
    Ok(())
}

impl Store {
    /// Loads every stored id into `into`.
    pub(super) fn load_schematics(&self, into: &Schematics) -> Result<()> {
        let tx = self.db.begin_read()?;
        for row in tx.open_table(SCHEMATICS)?.iter()? {
            let (yaml, id) = row?;
            into.insert(yaml.value().to_string(), id.value().to_string());
        }
        Ok(())
    }

    pub fn save_schematic(&self, yaml: &str, id: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(SCHEMATICS)?.insert(yaml, id)?;
        tx.commit()?;
        Ok(())
    }
}
