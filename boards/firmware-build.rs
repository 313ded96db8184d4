//! The build script of every firmware crate (`build = "../firmware-build.rs"`): puts the
//! board's `memory.x` on the linker's path and links with cortex-m-rt's and defmt's scripts,
//! for the bare-metal target only (the host build is a stub binary), and sets the log level.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=DEFMT_LOG");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let board = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy(board.join("memory.x"), out.join("memory.x")).expect("copy the board's memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    // defmt keeps only errors unless DEFMT_LOG says otherwise: the board's own log lines
    // (one per DHCP decision) are info. Its proc macros read the variable from rustc's
    // environment, which this sets for this crate only.
    if env::var_os("DEFMT_LOG").is_none() {
        println!("cargo:rustc-env=DEFMT_LOG=info");
    }
    for arg in ["--nmagic", "-Tlink.x", "-Tdefmt.x"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
