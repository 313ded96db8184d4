//! The appliance on Linux: `serve` runs it on a TAP device through its own IP stack;
//! `rack` runs an in-process simulated rack of PXE-booting machines.

mod assets_dir;
mod bmc;
mod config;
mod journal_file;
mod rack;
mod runtime;
mod serve;
mod tap;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use appliance::dhcp::pxe::BootTarget;
use appliance::http::ScriptConfig;
use appliance::inventory::MachineKey;
use appliance::net::{Ipv4Net, MacAddr};
use clap::{Args, Parser, Subcommand};
use uplink::enroll::EnrollmentToken;

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DHCP on a TAP device through the appliance's own IP stack.
    Serve(Box<ServeArgs>),
    /// Boot a simulated rack of machines against the appliance, in process.
    Rack(rack::RackArgs),
    /// Power control through BMCs (IPMI v2.0 or Redfish): prints each one's power state.
    Bmc(Box<bmc::cli::BmcArgs>),
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["dhcp_pool", "proxy_dhcp"]))]
struct ServeArgs {
    /// TAP device to attach to; created if missing.
    #[arg(long)]
    interface: String,
    /// The appliance's address and prefix, e.g. 10.77.0.1/24.
    #[arg(long, value_parser = parse_net)]
    ip: Ipv4Net,
    /// The appliance's MAC (default: 02:00 followed by its IPv4 address).
    #[arg(long, value_parser = parse_mac)]
    mac: Option<MacAddr>,
    /// Default route of the appliance, and the router (option 3) of its own subnet.
    #[arg(long)]
    gateway: Option<Ipv4Addr>,
    /// Full DHCP server with this address pool, e.g. 10.77.0.100-10.77.0.199.
    #[arg(long)]
    dhcp_pool: Option<String>,
    /// proxyDHCP beside the site's DHCP server: boot files only, no addresses.
    #[arg(long)]
    proxy_dhcp: bool,
    /// Directory of boot files, served over TFTP and HTTP.
    #[arg(long)]
    boot_dir: PathBuf,
    /// Directory for the lease journal.
    #[arg(long)]
    state_dir: PathBuf,
    #[arg(long, default_value_t = 3600)]
    lease_time: u32,
    /// DNS server (option 6); repeatable.
    #[arg(long)]
    dns: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    #[arg(long)]
    domain: Option<String>,
    /// Static reservation by MAC: MAC=IP; repeatable.
    #[arg(long)]
    reserve: Vec<String>,
    /// Static reservation by SMBIOS UUID (option 97): UUID=IP; repeatable.
    #[arg(long)]
    reserve_uuid: Vec<String>,
    /// A subnet behind a DHCP relay: CIDR=FIRST-LAST[,ROUTER]; repeatable.
    #[arg(long)]
    relay_pool: Vec<String>,
    /// An extra DHCP option sent verbatim: CODE=HEX, e.g. 42=0a4d007b; repeatable.
    #[arg(long = "option")]
    options: Vec<String>,
    /// A machine's boot target: MAC|UUID=local|script:URL|file:NAME; repeatable.
    #[arg(long = "machine-boot", value_parser = config::parse_boot_override)]
    machine_boot: Vec<(MachineKey, BootTarget)>,
    /// Concurrent TFTP transfers.
    #[arg(long, default_value_t = 128)]
    tftp_transfers: usize,
    /// Lease table capacity.
    #[arg(long, default_value_t = 4096)]
    max_leases: usize,
    /// Port of the HTTP server (and of the script URL DHCP hands to iPXE).
    #[arg(long, default_value_t = 80)]
    http_port: u16,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    http_connections: usize,
    /// Template of /boot.ipxe, with {{server}} {{mac}} {{uuid}} {{arch}} {{kernel}}
    /// {{initrd}} {{cmdline}} {{target}} (default: boot each machine's target).
    #[arg(long)]
    ipxe_script: Option<PathBuf>,
    /// Boot-dir name of the kernel the default target boots.
    #[arg(long, default_value = "vmlinuz")]
    kernel: String,
    /// Boot-dir name of the initrd the default target boots.
    #[arg(long, default_value = "initrd.img")]
    initrd: String,
    /// Kernel command line of the default target.
    #[arg(long, default_value = "console=ttyS0")]
    cmdline: String,
    /// Do not log each DHCP decision.
    #[arg(long)]
    quiet: bool,
    /// Enrollment token (`rack1:...` from `provider token create`): enrolls with the
    /// provider unless the state dir holds an identity, then keeps the uplink up.
    /// Parsed after clap, whose errors would print the secret.
    #[arg(long, env = "ENROLL_TOKEN", hide_env_values = true)]
    enroll_token: Option<String>,
}

fn parse_net(s: &str) -> Result<Ipv4Net, String> {
    Ipv4Net::parse(s).ok_or_else(|| format!("{s}: expected ADDRESS/PREFIX, e.g. 10.77.0.1/24"))
}

fn parse_mac(s: &str) -> Result<MacAddr, String> {
    MacAddr::parse(s).ok_or_else(|| format!("{s}: expected a MAC like 02:00:0a:4d:00:01"))
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(a) => serve(*a),
        Command::Rack(a) => rack::run(&a),
        Command::Bmc(a) => bmc::cli::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("host-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(a: ServeArgs) -> Result<(), String> {
    if !a.boot_dir.is_dir() {
        return Err(format!(
            "--boot-dir {}: not a directory",
            a.boot_dir.display()
        ));
    }
    let config = config::dhcp_config(&config::DhcpArgs {
        ip: a.ip,
        gateway: a.gateway,
        pool: a.dhcp_pool.as_deref(),
        lease_time: a.lease_time,
        dns: &a.dns,
        domain: a.domain.as_deref(),
        reserve: &a.reserve,
        reserve_uuid: &a.reserve_uuid,
        relay_pools: &a.relay_pool,
        options: &a.options,
        http_port: a.http_port,
    })?;
    let template = match &a.ipxe_script {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--ipxe-script {}: {e}", path.display()))?,
        None => appliance::http::DEFAULT_TEMPLATE.to_owned(),
    };
    appliance::http::script::check_template(&template)
        .map_err(|e| format!("--ipxe-script: {e:?}"))?;
    // Read once at start-up and kept for the life of the process.
    let keep = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let script = ScriptConfig {
        port: a.http_port,
        kernel: keep(a.kernel),
        initrd: keep(a.initrd),
        cmdline: keep(a.cmdline),
        template: keep(template),
        ..ScriptConfig::new(a.ip.addr)
    };
    let o = a.ip.addr.octets();
    let settings = runtime::Settings {
        ip: a.ip,
        mac: a
            .mac
            .unwrap_or(MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]])),
        gateway: a.gateway,
        state_dir: a.state_dir,
        max_leases: a.max_leases,
        tftp_transfers: a.tftp_transfers.clamp(1, 4096),
        http_port: a.http_port,
        http_connections: a.http_connections.clamp(1, 4096),
        script,
        machine_boot: a.machine_boot,
        quiet: a.quiet,
    };
    let store = assets_dir::DirStore::new(a.boot_dir);
    let token = (a.enroll_token.as_deref())
        .map(EnrollmentToken::parse)
        .transpose()
        .map_err(|e| format!("--enroll-token: {e}"))?;
    serve::run(&a.interface, settings, config, store, token).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Clap checks its own definitions only when a command is parsed; this checks them all.
    #[test]
    fn command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
