//! What DHCP saw, as uplink events. The DHCP task stays unaware of the uplink beyond a
//! `try_send` into [`OBSERVED`]; a full queue drops the report (a machine asks again, a
//! lease is stored again at its renewal).

use appliance::dhcp::{Lease, LeaseState};
use appliance::net::{MacAddr, Uuid};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use uplink::{Event, Ipv4, Mac, Sightings};

/// A machine seen again within this long is not reported again (unless its UUID or arch
/// changed), as on the host.
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

/// Turns observations into events, a sighting once per [`RESEND_SEEN_SECS`].
pub struct Reporter {
    seen: Sightings<MACHINES>,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter {
            seen: Sightings::new(RESEND_SEEN_SECS),
        }
    }
}

impl Reporter {
    /// The event for `o` at `now` (Unix seconds), if any.
    pub fn event(&mut self, o: Observation, now: u64) -> Option<Event> {
        match o {
            Observation::Request { mac, uuid, arch } => {
                let uuid = uuid.map(|u| uplink::Uuid(u.0));
                let seen = self.seen.sighting(Mac(mac.0), uuid, arch, now)?;
                Some(Event::MachineSeen(seen))
            }
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
}
