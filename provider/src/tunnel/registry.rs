//! The live tunnels: at most one per appliance (a new one stops the old), and a way for
//! the API to wake an appliance's tunnel after an operator's change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::TunnelOptions;
use crate::model::ApplianceId;

struct Entry {
    generation: u64,
    wake: Arc<Notify>,
    stop: Arc<Notify>,
}

/// Shared by every tunnel and the API.
pub struct Tunnels {
    options: TunnelOptions,
    live: Mutex<(u64, HashMap<ApplianceId, Entry>)>,
}

/// A tunnel's registration; dropping it unregisters (unless a newer tunnel replaced it).
pub(super) struct Live<'a> {
    tunnels: &'a Tunnels,
    appliance: ApplianceId,
    generation: u64,
    pub wake: Arc<Notify>,
    pub stop: Arc<Notify>,
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        let mut live = self.tunnels.lock();
        if live
            .1
            .get(&self.appliance)
            .is_some_and(|e| e.generation == self.generation)
        {
            live.1.remove(&self.appliance);
        }
    }
}

impl Tunnels {
    pub fn new(options: TunnelOptions) -> Self {
        Tunnels {
            options,
            live: Mutex::new((0, HashMap::new())),
        }
    }

    pub fn options(&self) -> &TunnelOptions {
        &self.options
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<ApplianceId, Entry>)> {
        // The map stays consistent under a panic elsewhere: every update is one insert or
        // remove.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers appliance `id`'s new tunnel, stopping the one it had.
    pub(super) fn register(&self, id: ApplianceId) -> Live<'_> {
        let mut live = self.lock();
        live.0 += 1;
        let entry = Entry {
            generation: live.0,
            wake: Arc::new(Notify::new()),
            stop: Arc::new(Notify::new()),
        };
        let out = Live {
            tunnels: self,
            appliance: id,
            generation: entry.generation,
            wake: entry.wake.clone(),
            stop: entry.stop.clone(),
        };
        if let Some(old) = live.1.insert(id, entry) {
            old.stop.notify_one();
        }
        out
    }

    /// Makes appliance `id`'s tunnel (if any) issue and send what its machines now need.
    pub fn wake(&self, id: ApplianceId) {
        if let Some(e) = self.lock().1.get(&id) {
            e.wake.notify_one();
        }
    }

    /// Ends appliance `id`'s tunnel (after a revocation).
    pub fn disconnect(&self, id: ApplianceId) {
        if let Some(e) = self.lock().1.remove(&id) {
            e.stop.notify_one();
        }
    }

    pub fn is_connected(&self, id: ApplianceId) -> bool {
        self.lock().1.contains_key(&id)
    }
}
