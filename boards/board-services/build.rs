//! defmt keeps only errors unless DEFMT_LOG says otherwise, and its macros read the
//! variable per crate: the services' log lines (one per DHCP decision, TFTP transfer, HTTP
//! request) are info, as in the boards (which set the same for themselves).

use std::env;

fn main() {
    println!("cargo:rerun-if-env-changed=DEFMT_LOG");
    if env::var_os("DEFMT_LOG").is_none() {
        println!("cargo:rustc-env=DEFMT_LOG=info");
    }
}
