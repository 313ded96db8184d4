//! What DHCP saw, as uplink events. The DHCP task stays unaware of the uplink beyond a
//! `try_send` into [`OBSERVED`]; a full queue drops the report (a machine asks again, a
//! lease is stored again at its renewal).

use appliance::dhcp::{Lease, LeaseState};
use appliance::net::{MacAddr, Uuid};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use uplink::{Event, Ipv4, Mac, MachineSeen};

/// A machine seen again within this long is not reported again (unless its UUID or arch
/// changed): a PXE chain makes several DHCP requests in seconds.
const RESEND_SEEN_SECS: u64 = 600;
/// Machines remembered for that; the least recently reported is forgotten first.
const MACHINES: usize = 16;

/// One thing DHCP did that the provider wants to know.
#[derive(Clone, Copy)]
pub enum Observation {
    /// A well-formed DHCP request.
    Request {
        mac: MacAddr,
        uuid: Option<Uuid>,
        arch: Option<u16>,
    },
    /// A lease change the server stored.
    Lease(Lease),
}

/// From the DHCP task to the uplink.
pub static OBSERVED: Channel<CriticalSectionRawMutex, Observation, 8> = Channel::new();

#[derive(Clone, Copy)]
struct Seen {
    mac: MacAddr,
    uuid: Option<Uuid>,
    arch: Option<u16>,
    first: u64,
    reported: u64,
}

/// Turns observations into events, a sighting once per [`RESEND_SEEN_SECS`].
#[derive(Default)]
pub struct Reporter {
    seen: heapless::Vec<Seen, MACHINES>,
}

impl Reporter {
    /// The event for `o` at `now` (Unix seconds), if any.
    pub fn event(&mut self, o: Observation, now: u64) -> Option<Event> {
        match o {
            Observation::Request { mac, uuid, arch } => self.sighting(mac, uuid, arch, now),
            Observation::Lease(l) => Some(Event::Lease(uplink::Lease {
                mac: Mac(l.mac.0),
                ip: Ipv4(l.ip.octets()),
                // Ended now when released or declined; an offer is never stored.
                expires: if l.state == LeaseState::Bound {
                    l.expires
                } else {
                    now
                },
            })),
        }
    }

    fn sighting(
        &mut self,
        mac: MacAddr,
        uuid: Option<Uuid>,
        arch: Option<u16>,
        now: u64,
    ) -> Option<Event> {
        let first = match self.seen.iter_mut().find(|s| s.mac == mac) {
            Some(s) => {
                let same = s.uuid == uuid && s.arch == arch;
                if same && now < s.reported + RESEND_SEEN_SECS {
                    return None;
                }
                (s.uuid, s.arch, s.reported) = (uuid, arch, now);
                s.first
            }
            None => {
                if self.seen.is_full()
                    && let Some(i) = (0..self.seen.len()).min_by_key(|&i| self.seen[i].reported)
                {
                    self.seen.swap_remove(i);
                }
                let seen = Seen {
                    mac,
                    uuid,
                    arch,
                    first: now,
                    reported: now,
                };
                let _ = self.seen.push(seen);
                now
            }
        };
        Some(Event::MachineSeen(MachineSeen {
            mac: Mac(mac.0),
            uuid: uuid.map(|u| uplink::Uuid(u.0)),
            arch,
            first_seen: first,
            last_seen: now,
        }))
    }
}
