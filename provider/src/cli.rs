//! `provider`: the service (`serve`) and the operator's commands, which talk to the running
//! service's API so they work while it runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::api::{ApplianceView, MachineView};
use crate::client::Client;
use crate::model::{Allocation, BmcConfig, BootOverride, Change, NewToken, PreferredPower};
use crate::store::StoreConfig;
use crate::tls::token::EnrollmentToken;
use crate::tunnel::TunnelOptions;
use crate::{Provider, TlsOptions, hex, omni, tls, token_output};

mod factory_args;
mod listing;
mod omni_args;
mod power_args;
use factory_args::FactoryArgs;
use listing::{appliance_rows, machine_rows, output};
use omni_args::OmniArgs;
use power_args::PowerArgs;

const DEFAULT_API: &str = "127.0.0.1:8790";
const DEFAULT_LISTEN: &str = "0.0.0.0:8791";

#[derive(Parser)]
#[command(
    version,
    about = "The provider service the rack appliances tunnel into, and its CLI."
)]
struct Cli {
    /// The running service's API.
    #[arg(long, global = true, default_value = DEFAULT_API)]
    api: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the service: the appliances' TLS port (enrollment and tunnels) and the API.
    Serve {
        #[arg(long)]
        state_dir: PathBuf,
        /// The appliances' TLS port.
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// A name or address appliances dial (repeatable): all go into the server
        /// certificate, the first into tokens. Default: the --listen address if it is a
        /// specific one, else this host's name.
        #[arg(long = "server-name")]
        server_names: Vec<String>,
        #[command(flatten)]
        boot: FactoryArgs,
        #[command(flatten)]
        power: PowerArgs,
        #[command(flatten)]
        omni: OmniArgs,
    },
    /// Lists the appliances.
    Appliances {
        #[arg(long)]
        json: bool,
    },
    /// Lists the machines.
    Machines {
        #[arg(long)]
        json: bool,
    },
    /// Sets a machine's preferred power state.
    Power {
        machine: String,
        state: PreferredPower,
    },
    /// Overrides what a machine boots: agent, install, disk, an http(s) URL, or auto.
    Boot {
        machine: String,
        target: String,
    },
    Accept {
        machine: String,
    },
    Reject {
        machine: String,
    },
    /// Allocates a machine: it installs this Talos and then boots from disk.
    Allocate {
        machine: String,
        #[arg(long)]
        talos_version: String,
        /// Image Factory schematic id, used as it is (default: the provider creates one
        /// from --kernel-args and --extension).
        #[arg(long)]
        schematic: Option<String>,
        #[arg(long, default_value = "")]
        kernel_args: String,
        /// An official system extension, e.g. siderolabs/iscsi-tools (repeatable).
        #[arg(long = "extension")]
        extensions: Vec<String>,
    },
    /// Deallocates a machine: it is wiped and powered off.
    Deallocate {
        machine: String,
    },
    /// Reboots a machine once.
    Reboot {
        machine: String,
    },
    Cordon {
        machine: String,
    },
    Uncordon {
        machine: String,
    },
    /// Sets a machine's BMC (password from --password or BMC_PASSWORD).
    Bmc {
        machine: String,
        /// IPMI BMC, IP[:PORT].
        #[arg(long, conflicts_with = "redfish", required_unless_present = "redfish")]
        ipmi: Option<String>,
        /// Redfish service URL.
        #[arg(long)]
        redfish: Option<String>,
        #[arg(long)]
        user: String,
        #[arg(long, env = "BMC_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Revokes an appliance (by id or name): its tunnel is refused from then on.
    Revoke {
        appliance: String,
    },
    /// Enrollment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCmd,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Creates a single-use enrollment token.
    Create {
        /// Validity, e.g. 30m, 24h, 7d (default 24h).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        expires: u64,
        /// Also write the QR code as a PNG image.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Also write the QR code as an SVG image.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

/// Parses `N`, `Ns`, `Nm`, `Nh` or `Nd` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("duration `{s}`: expected e.g. 30m, 24h, 7d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("duration `{s}`: unit must be s, m, h or d")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("duration `{s}` too long"))
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("provider: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(cli: Cli) -> Result<(), String> {
    if let Cmd::Serve {
        state_dir,
        listen,
        server_names,
        boot,
        power,
        omni,
    } = cli.command
    {
        let api: SocketAddr = cli
            .api
            .parse()
            .map_err(|e| format!("--api {}: {e}", cli.api))?;
        let server_names = match server_names {
            names if !names.is_empty() => names,
            _ => vec![default_server_name(listen)?],
        };
        let tls = TlsOptions {
            listen,
            server_names,
            state_dir,
        };
        return serve(tls, api, boot, power, omni.options()?);
    }
    let client = Client::new(&cli.api)?;
    let change = |machine: &str, change: Change| -> Result<(), String> {
        let m: MachineView = client.post(&format!("/api/machines/{machine}"), &change)?;
        println!("{}: ok", m.machine.key);
        Ok(())
    };
    match cli.command {
        Cmd::Serve { .. } => Ok(()),
        Cmd::Appliances { json } => {
            let list: Vec<ApplianceView> = client.get("/api/appliances")?;
            output(json, &list, appliance_rows)
        }
        Cmd::Machines { json } => {
            let list: Vec<MachineView> = client.get("/api/machines")?;
            output(json, &list, machine_rows)
        }
        Cmd::Power { machine, state } => change(&machine, Change::Power { state }),
        Cmd::Boot { machine, target } => {
            let target = match target.as_str() {
                "auto" => None,
                t => Some(t.parse::<BootOverride>()?),
            };
            change(&machine, Change::Boot { target })
        }
        Cmd::Accept { machine } => change(&machine, Change::Accept),
        Cmd::Reject { machine } => change(&machine, Change::Reject),
        Cmd::Allocate {
            machine,
            talos_version,
            schematic,
            kernel_args,
            extensions,
        } => {
            let allocation = Allocation {
                talos_version,
                schematic,
                kernel_args,
                extensions,
            };
            change(&machine, Change::Allocate(allocation))
        }
        Cmd::Deallocate { machine } => change(&machine, Change::Deallocate),
        Cmd::Reboot { machine } => change(&machine, Change::Reboot),
        Cmd::Cordon { machine } => change(&machine, Change::Cordon),
        Cmd::Uncordon { machine } => change(&machine, Change::Uncordon),
        Cmd::Bmc {
            machine,
            ipmi,
            redfish,
            user,
            password,
        } => {
            let endpoint = bmc_endpoint(ipmi, redfish)?;
            change(
                &machine,
                Change::Bmc(BmcConfig {
                    endpoint,
                    user,
                    password,
                }),
            )
        }
        Cmd::Revoke { appliance } => {
            let a: crate::model::Appliance =
                client.post(&format!("/api/appliances/{appliance}/revoke"), &())?;
            println!("appliance {} ({}): revoked", a.id, a.name);
            Ok(())
        }
        Cmd::Token {
            command: TokenCmd::Create { expires, png, svg },
        } => {
            let created = client.create_token(expires)?;
            token_output::print_enrollment_token(
                &mut std::io::stdout().lock(),
                &enrollment_token(&created)?,
                created.expires_at,
                png.as_deref(),
                svg.as_deref(),
            )
            .map_err(|e| format!("token {}: {e}", created.id))
        }
    }
}

fn bmc_endpoint(
    ipmi: Option<String>,
    redfish: Option<String>,
) -> Result<uplink::BmcEndpoint, String> {
    if let Some(url) = redfish {
        let url = url
            .as_str()
            .try_into()
            .map_err(|_| format!("--redfish {url}: too long"))?;
        return Ok(uplink::BmcEndpoint::Redfish {
            url,
            cert_sha256: None,
        });
    }
    let addr = ipmi.unwrap_or_default();
    let (ip, port) = match addr.split_once(':') {
        Some((ip, port)) => (
            ip,
            port.parse()
                .map_err(|_| format!("--ipmi {addr}: bad port"))?,
        ),
        None => (addr.as_str(), 623),
    };
    let ip: std::net::Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("--ipmi {addr}: expected IPv4[:PORT]"))?;
    Ok(uplink::BmcEndpoint::Ipmi {
        ip: uplink::Ipv4(ip.octets()),
        port,
    })
}

/// The enrollment token for one the API created.
fn enrollment_token(created: &NewToken) -> Result<EnrollmentToken, String> {
    let bad = || "malformed token from the API".to_string();
    let ca_sha256 = hex::decode(&created.ca_sha256)
        .and_then(|ca| ca.try_into().ok())
        .ok_or_else(bad)?;
    let secret = hex::decode(&created.secret).ok_or_else(bad)?;
    tls::token::enrollment_token(&created.addr, ca_sha256, &secret).map_err(|e| e.to_string())
}

/// The listen address if appliances can dial it as it is, else this host's name.
fn default_server_name(listen: SocketAddr) -> Result<String, String> {
    if !listen.ip().is_unspecified() {
        return Ok(listen.ip().to_string());
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| "no host name: give --server-name".to_string())
}

fn serve(
    tls: TlsOptions,
    api: SocketAddr,
    boot: FactoryArgs,
    power: PowerArgs,
    omni: Option<omni::adapter::Options>,
) -> Result<(), String> {
    let mut config = StoreConfig::default();
    let factory = boot.apply(&mut config)?;
    power.apply(&mut config)?;
    let provider = Provider::open(&tls.state_dir, config, TunnelOptions::default())
        .map_err(|e| format!("{}: {e}", tls.state_dir.display()))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime
        .block_on(async {
            tokio::spawn(crate::factory::run(provider.clone(), factory));
            if let Some(options) = omni {
                eprintln!(
                    "provider: omni: {} as {}",
                    options.endpoint, options.provider_id
                );
                tokio::spawn(omni::adapter::run_forever(provider.clone(), options));
            }
            crate::serve(provider, api, &tls).await
        })
        .map_err(|e| format!("serve: {e}"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("24h"), Ok(86400));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
