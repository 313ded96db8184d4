//! DHCP for the rack segment: a full server with pools, reservations and relay support, or
//! a proxyDHCP beside the site's server, both with the PXE boot decision.

pub mod config;
pub mod decision;
pub mod leases;
pub mod pxe;
pub mod record;
pub mod server;
pub mod wire;

pub use config::{Config, Mode, Reservation, Subnet};
pub use decision::{Decision, Destination};
pub use leases::{Lease, LeaseState, LeaseTable, Slot};
pub use server::{Datagram, Outcome, Server, Stats};
