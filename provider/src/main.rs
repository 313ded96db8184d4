//! `provider`: the service (`serve`) and the operator's CLI on its API.

fn main() -> std::process::ExitCode {
    provider::cli::run()
}
