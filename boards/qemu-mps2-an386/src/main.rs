//! The appliance as firmware for QEMU's mps2-an386 board. Bare-metal only: built for
//! `thumbv7em-none-eabihf`; on the host (`cargo test/clippy --workspace`) it is a stub.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// The uplink's TLS allocates (on its own heap, `firmware/uplink.rs`).
#[cfg(all(target_os = "none", feature = "uplink"))]
extern crate alloc;

#[cfg(target_os = "none")]
mod firmware;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("qemu-mps2-an386 is firmware: build it with --target thumbv7em-none-eabihf");
    std::process::exit(2);
}
