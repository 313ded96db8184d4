//! What the services observed, turned into uplink events. The services stay sans-IO and
//! unaware of the uplink: they push an [`Observation`] where they log a line, and the
//! uplink port reports it (or only remembers the machine, while not enrolled).

use std::net::Ipv4Addr;

use appliance::dhcp::{Lease, LeaseState};
use appliance::http::Requester;
use appliance::net::{MacAddr, Uuid};
use uplink::{BootServed, Event, Ipv4, Lease as LeaseEvent, Mac, Served, Sightings};

use crate::runtime::MACHINES;

/// A machine seen again within this long is not reported again (unless its UUID or arch
/// changed): a PXE chain makes several DHCP requests in seconds.
const RESEND_SEEN_SECS: u64 = 600;

/// One thing a service did that the provider wants to know.
#[derive(Clone, Debug)]
pub enum Observation {
    /// A well-formed DHCP request from this client.
    Dhcp {
        mac: MacAddr,
        uuid: Option<Uuid>,
        arch: Option<u16>,
    },
    /// A lease change the DHCP server journaled.
    Lease(Lease),
    /// iPXE was handed a URL to chain in a DHCPACK (the appliance's own script is reported
    /// when it is fetched; any other URL, an installer's say, is served elsewhere).
    Chain { mac: MacAddr, url: String },
    /// A TFTP transfer acknowledged to the last block.
    Tftp { peer: Ipv4Addr, name: String },
    /// An HTTP GET answered with its whole body (`target` as requested, query included).
    Http { peer: Ipv4Addr, target: String },
}

/// Turns observations into events; remembers machines so a sighting is reported once per
/// [`RESEND_SEEN_SECS`] and machines seen before enrollment are reported after it.
pub struct Reporter {
    seen: Box<Sightings<MACHINES>>,
    /// `http://ip[:port]`, the base of served URLs.
    http_base: String,
    script_path: &'static str,
}

impl Reporter {
    pub fn new(ip: Ipv4Addr, http_port: u16, script_path: &'static str) -> Reporter {
        let http_base = match http_port {
            80 => format!("http://{ip}"),
            port => format!("http://{ip}:{port}"),
        };
        Reporter {
            seen: Box::new(Sightings::new(RESEND_SEEN_SECS)),
            http_base,
            script_path,
        }
    }

    /// The event for `o`, if any; `mac_of` finds a machine by its leased address.
    pub fn event(
        &mut self,
        o: Observation,
        now: u64,
        mac_of: &dyn Fn(Ipv4Addr) -> Option<MacAddr>,
    ) -> Option<Event> {
        match o {
            Observation::Dhcp { mac, uuid, arch } => {
                let uuid = uuid.map(|u| uplink::Uuid(u.0));
                let seen = self.seen.sighting(Mac(mac.0), uuid, arch, now)?;
                Some(Event::MachineSeen(seen))
            }
            Observation::Lease(l) => {
                let expires = match l.state {
                    LeaseState::Bound => l.expires,
                    // Ended now; an offer is never journaled.
                    LeaseState::Released | LeaseState::Declined | LeaseState::Offered => now,
                };
                Some(Event::Lease(LeaseEvent {
                    mac: Mac(l.mac.0),
                    ip: Ipv4(l.ip.octets()),
                    expires,
                }))
            }
            Observation::Chain { mac, url } => {
                let own = url.starts_with(&format!("{}/{}", self.http_base, self.script_path));
                let what = Served::Script(url.as_str().try_into().ok()?);
                (!own).then(|| served(mac, what, now)).flatten()
            }
            Observation::Tftp { peer, name } => {
                let what = Served::TftpFile(name.as_str().try_into().ok()?);
                served(mac_of(peer)?, what, now)
            }
            Observation::Http { peer, target } => {
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                let mac = Requester::from_query(query).mac.or_else(|| mac_of(peer))?;
                let url = format!("{}{target}", self.http_base)
                    .as_str()
                    .try_into()
                    .ok()?;
                let what = if path.trim_start_matches('/') == self.script_path {
                    Served::Script(url)
                } else {
                    Served::KernelUrl(url)
                };
                served(mac, what, now)
            }
        }
    }

    /// Every machine seen so far, for a session that starts after they were (enrollment).
    pub fn all_seen(&self, now: u64) -> Vec<Event> {
        self.seen.all(now).map(Event::MachineSeen).collect()
    }
}

fn served(mac: MacAddr, what: Served, at: u64) -> Option<Event> {
    Some(Event::BootServed(BootServed {
        mac: Mac(mac.0),
        what,
        at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(r: &mut Reporter, url: &str) -> Option<Event> {
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        r.event(
            Observation::Chain {
                mac,
                url: url.into(),
            },
            100,
            &|_| None,
        )
    }

    #[test]
    fn a_chain_elsewhere_is_a_boot_served_and_our_script_is_not() {
        let mut r = Reporter::new(Ipv4Addr::new(10, 77, 0, 1), 80, "boot.ipxe");
        let url = "https://pxe.factory.talos.dev/pxe/abc/v1.11.5/metal-amd64";
        match chain(&mut r, url) {
            Some(Event::BootServed(b)) => {
                assert_eq!(b.what, Served::Script(url.try_into().unwrap()))
            }
            other => panic!("expected BootServed, got {other:?}"),
        }
        assert!(
            chain(&mut r, "http://10.77.0.1/boot.ipxe?mac=52:54:00:00:00:01").is_none(),
            "the script is reported when it is fetched"
        );
    }
}
