//! Which DHCP sightings become [`MachineSeen`] events: a PXE chain makes several requests
//! in seconds, so a machine is reported once per `resend_secs` unless its UUID or arch
//! changed. A fixed table: when full, the machine reported longest ago is forgotten (it is
//! reported again when next seen). Shared by every appliance build (host and boards).

use crate::{Mac, MachineSeen, Uuid};

#[derive(Clone, Copy, Debug)]
struct Seen {
    mac: Mac,
    uuid: Option<Uuid>,
    arch: Option<u16>,
    first: u64,
    /// `None` while only remembered (seen before there was a session to report to).
    reported: Option<u64>,
}

impl Seen {
    fn event(&self, now: u64) -> MachineSeen {
        MachineSeen {
            mac: self.mac,
            uuid: self.uuid,
            arch: self.arch,
            first_seen: self.first,
            last_seen: now,
        }
    }
}

pub struct Sightings<const N: usize> {
    seen: heapless::Vec<Seen, N>,
    resend_secs: u64,
}

impl<const N: usize> Sightings<N> {
    pub fn new(resend_secs: u64) -> Self {
        Sightings {
            seen: heapless::Vec::new(),
            resend_secs,
        }
    }

    /// A request from `mac` at `now` (Unix seconds): the event to send, if one is due. A
    /// request without a UUID or arch keeps the ones already known.
    pub fn sighting(
        &mut self,
        mac: Mac,
        uuid: Option<Uuid>,
        arch: Option<u16>,
        now: u64,
    ) -> Option<MachineSeen> {
        let i = match self.seen.iter().position(|s| s.mac == mac) {
            Some(i) => i,
            None => {
                if self.seen.is_full()
                    && let Some(old) = (0..self.seen.len()).min_by_key(|&i| self.seen[i].reported)
                {
                    self.seen.swap_remove(old);
                }
                let new = Seen {
                    mac,
                    uuid: None,
                    arch: None,
                    first: now,
                    reported: None,
                };
                // ok to ignore: a slot was freed above whenever the table was full.
                let _ = self.seen.push(new);
                self.seen.len() - 1
            }
        };
        let resend = self.resend_secs;
        let s = &mut self.seen[i];
        let changed = (uuid.is_some() && uuid != s.uuid) || (arch.is_some() && arch != s.arch);
        s.uuid = uuid.or(s.uuid);
        s.arch = arch.or(s.arch);
        let due = s.reported.is_none_or(|at| now >= at + resend || changed);
        due.then(|| {
            s.reported = Some(now);
            s.event(now)
        })
    }

    /// Every machine remembered, for a session that starts after they were seen.
    pub fn all(&self, now: u64) -> impl Iterator<Item = MachineSeen> + '_ {
        self.seen.iter().map(move |s| s.event(now))
    }
}

#[cfg(test)]
mod tests;
