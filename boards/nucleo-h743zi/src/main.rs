//! The appliance as firmware for ST's NUCLEO-H743ZI. Bare-metal only: built for
//! `thumbv7em-none-eabihf`; on the host (`cargo test/clippy --workspace`) it is a stub.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod firmware;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("nucleo-h743zi is firmware: build it with --target thumbv7em-none-eabihf");
    std::process::exit(2);
}
