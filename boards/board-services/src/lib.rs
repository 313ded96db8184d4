//! The appliance's services as embassy-net tasks, the same on every board: DHCP with its
//! leases in a NOR-flash journal, TFTP and HTTP from an asset store. A board brings up its
//! clock, NIC and stack, then runs these from its own tasks (embassy tasks cannot be
//! generic, so each board names its types in a few lines of task wrappers).
//!
//! What differs per board is a parameter: the flash holding the leases (any
//! `embedded_storage` `NorFlash`, with its geometry in [`store::LeaseFlash`]), the wall-clock
//! time at boot (`unix_at_boot`: an RTC, or the host's in QEMU; the monotonic time is
//! embassy-time, whose driver the board provides), and the boot files (any
//! `appliance::assets::AssetStore`; [`assets::Layered`] puts a region over built-in files).
//!
//! Bare-metal only: on the host (`cargo test/clippy --workspace`) the crate is empty.
#![no_std]

#[cfg(target_os = "none")]
pub mod assets;
#[cfg(target_os = "none")]
pub mod dhcp;
#[cfg(target_os = "none")]
pub mod http;
#[cfg(target_os = "none")]
pub mod store;
#[cfg(target_os = "none")]
pub mod tftp;

/// embassy-net sockets the services use: DHCP's, TFTP's listener and one per transfer, one
/// per HTTP connection. A board adds its own and sizes `StackResources` with this.
#[cfg(target_os = "none")]
pub const SOCKETS: usize = 1 + 1 + tftp::TRANSFERS + http::CONNECTIONS;
