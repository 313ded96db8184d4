//! A home-made BMC (IPMI v2.0 over LAN, RMCP+, cipher suites 3 and 17), because no BMC we can
//! run implements suite 17 (HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128); it is proven against
//! ipmitool by `tests/tests/test_bmc_ipmitool.rs`. Used by the `test-bmc` binary (tests/) and by
//! host-sim's simulated rack, one per machine.
//!
//! Sans-IO: [`Bmc::handle`] takes a datagram and returns the reply; the caller owns the socket
//! and calls [`Bmc::expire`] now and then. A simulation drains [`Chassis::take_events`] after
//! each datagram to power its machine, and tells the chassis when the machine turned itself
//! off ([`Chassis::set_power_off_by_host`]).

mod bmc;
mod chassis;
mod crypto;
mod session;
mod wire;

pub use bmc::Bmc;
pub use chassis::{BootDevice, Chassis, ChassisEvent};
pub use crypto::Suite;
pub use session::User;
