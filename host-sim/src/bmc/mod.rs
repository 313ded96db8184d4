//! BMC power control on Linux: the appliance's sans-IO IPMI and Redfish clients over the
//! host's sockets, for `host-sim bmc` and the power-manager runner.

pub mod cli;
pub mod ipmi;
pub mod probe;
pub mod redfish;
pub mod runner;

use std::os::fd::RawFd;
use std::time::Instant;

use appliance::bmc::{Error, Operation, PowerState};

/// One BMC connection: a client of the appliance over a non-blocking host socket. A runner
/// drives many links from one thread with poll(2), as the firmware drives them from one task.
pub trait Link {
    /// Begins `op`; opens (or reuses) the session. `Error::Busy` if one is in flight.
    fn start(&mut self, op: Operation, now: Instant) -> Result<(), Error>;
    /// Moves bytes between the socket and the client (never blocks); returns the finished
    /// operation with the power state the BMC reports afterwards.
    fn poll(&mut self, now: Instant) -> Option<Result<PowerState, Error>>;
    /// When `poll` must run again even if the socket stays quiet.
    fn poll_at(&self) -> Option<Instant>;
    /// The socket to wait on, if one is open.
    fn fd(&self) -> Option<RawFd>;
    /// Begins ending the session politely (IPMI Close Session, Redfish session DELETE);
    /// `poll` drives it, bounded by the client's retry budget.
    fn close(&mut self, now: Instant);
    /// True once no session is open and nothing is in flight.
    fn is_closed(&self) -> bool;
}
