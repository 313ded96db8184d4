//! BMC power control: an IPMI v2.0 (RMCP+) client, a Redfish client and the power manager
//! that drives a rack of them.
//!
//! Both clients are sans-IO, like the servers: the adapter moves datagrams (IPMI) or stream
//! bytes (Redfish) and the time in, and takes bytes to send and finished operations out. They
//! share the vocabulary below, so the power manager and `host-sim bmc` need not care which
//! protocol a BMC speaks.

pub mod ipmi;
pub mod power;
pub mod redfish;

use core::fmt;

/// A machine's power as its BMC reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
}

/// A change to a machine's power.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    /// Power up.
    On,
    /// Immediate power down.
    Off,
    /// Ask the OS to shut down (ACPI soft-off).
    SoftOff,
    /// Power down, wait, power up.
    Cycle,
    /// Reset without cycling power.
    HardReset,
}

/// Firmware interface the next network boot should use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootMode {
    Efi,
    Legacy,
}

/// Boot from the network next time (or every time, if `persistent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PxeBoot {
    pub persistent: bool,
    pub mode: BootMode,
}

/// One thing asked of a BMC. Every operation ends by reading the power state back, so the
/// caller always learns what the BMC now reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Status,
    Power(PowerAction),
    BootPxe(PxeBoot),
}

/// Why an operation failed. Carries no credentials, so it is safe to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No (valid) answer within the retry budget.
    Timeout,
    /// The BMC refused the user name or password, or an integrity check failed.
    Auth,
    /// No cipher suite or authentication method both sides accept.
    NoCommonCipher,
    /// The BMC does not offer this operation (e.g. a reset type outside AllowableValues).
    Unsupported,
    /// The BMC answered with an error completion code or HTTP status.
    Refused(u16),
    /// The BMC's answer could not be understood.
    Malformed,
    /// The client is busy with another operation or its buffers are too small.
    Busy,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("BMC did not answer in time"),
            Error::Auth => {
                f.write_str("BMC refused the credentials or a message's integrity check")
            }
            Error::NoCommonCipher => f.write_str("no cipher suite acceptable to both sides"),
            Error::Unsupported => f.write_str("BMC does not support this operation"),
            Error::Refused(code) => write!(f, "BMC refused the request (code {code:#x})"),
            Error::Malformed => f.write_str("BMC sent a malformed answer"),
            Error::Busy => f.write_str("client busy or out of buffer space"),
        }
    }
}

/// The BMC's user name and password. Never printed: `Debug` hides them.
#[derive(Clone)]
pub struct Credentials {
    pub user: heapless::String<32>,
    pub password: heapless::String<64>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(..)")
    }
}
