//! The rack-top appliance's product logic.
//!
//! Everything here is sans-IO: services take received bytes and the current time and return
//! replies and state changes, so the same code runs on a board, in the host simulator and in
//! unit tests. Every table has a fixed capacity chosen by the adapter and a documented
//! behaviour when full. No allocator is used.
#![no_std]
#![forbid(unsafe_code)]

pub mod assets;
pub mod bmc;
pub mod dhcp;
pub mod frame;
pub mod http;
pub mod inventory;
pub mod journal;
pub mod net;
pub mod provider;
pub mod tftp;
