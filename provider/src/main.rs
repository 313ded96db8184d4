//! `provider`: the service (`serve`) and the operator's CLI on its API.

use clap::Parser;

#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    Cli::parse();
}
