//! IPMI v2.0 over LAN (RMCP+) client, sans-IO.
//!
//! [`Client`] runs one [`Operation`](crate::bmc::Operation) at a time against one BMC:
//! Get Channel Authentication Capabilities, Get Channel Cipher Suites (the best suite both
//! sides accept: 17 over 3; weaker ones only with [`Config::allow_weak`]), Open Session and
//! RAKP 1-4, Set Session Privilege Level, Get Device ID and Get System GUID once per
//! session, then the operation's commands and Get Chassis Status. The session stays open
//! for the next operation until [`Client::close`] sends Close Session.
//!
//! Modules: `wire` (RMCP, session headers, IPMI message), `cipher` (suites, HMAC, AES-CBC),
//! `rakp` (handshake and keys), `session` (sequence numbers, replay window, sealing),
//! `command` (requests and responses), `client` (the state machine).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod cipher;
mod client;
pub mod command;
pub mod rakp;
pub mod session;
pub mod wire;

pub use client::{Client, Config, Privilege, Stats};

#[cfg(test)]
mod tests;
