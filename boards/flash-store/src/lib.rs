//! Persistent storage on NOR flash for the boards (`no_std`).
//!
//! - [`journal::NorJournal`]: the appliance's lease journal ([`appliance::journal::Storage`])
//!   on any `embedded_storage` [`NorFlash`](embedded_storage::nor_flash::NorFlash): a real
//!   board's internal flash, or the emulator below.
//! - [`emulated::EmulatedNor`]: NOR flash rules (erase sets pages to 0xFF, programming only
//!   clears bits, aligned writes) enforced over a plain byte [`emulated::Medium`], for boards
//!   that have no flash (QEMU: a host file over semihosting) and for host tests (RAM, with
//!   power cuts injected).
//! - [`leases::LeaseLog`]: the DHCP lease table kept in such a journal.
//!
//! The blocking `embedded_storage` traits, not the async ones: the journal's `Storage` is
//! synchronous (a lease is stored between two datagrams, before the reply), and a real
//! board's flash driver (embassy-stm32's `Flash` in blocking mode) implements them.
#![no_std]

pub mod emulated;
pub mod journal;
pub mod leases;

#[cfg(test)]
mod tests;
