//! Redfish client: sans-IO over a byte stream the adapter owns (TCP, or TLS on the host).
//!
//! - [`http`]: the HTTP/1.1 client codec (request encoding, incremental response parsing).
//! - [`json`]: the resources read (ServiceRoot, Systems, ComputerSystem) and bodies sent.
//! - [`reset`]: which ComputerSystem.Reset type a [`crate::bmc::PowerAction`] becomes.
//! - [`client`]: the state machine: discovery, sessions or Basic auth, Reset with power
//!   polling, the boot override PATCH.
//!
//! Decisions:
//! - Discovery (service root, Systems, the ComputerSystem) runs once and is cached; a 404
//!   on the cached system clears it, so the next operation discovers again.
//! - Sessions when the service root links a Sessions collection (`Links.Sessions`, else
//!   `SessionService` + `/Sessions`), Basic auth otherwise or when the login answers 404,
//!   405 or 501. The service root itself is read with Basic auth: some BMCs (sushy with an
//!   htpasswd) protect it.
//! - A reset type outside `ResetType@Redfish.AllowableValues` is never sent (Cycle falls
//!   back from PowerCycle to ForceRestart, HardReset the other way round); a BMC without
//!   AllowableValues gets the preferred type. `@Redfish.ActionInfo` is not read.
//! - PATCH is sent without `If-Match`; BMCs that require an ETag refuse it (`Refused`).

pub mod client;
pub mod http;
pub mod json;
pub mod reset;

pub use client::{Client, Config};
