//! The provider service: the appliances of many racks tunnel into it; it keeps the state of
//! their machines and decides what each boots and whether it is powered.
//!
//! - [`model`] and [`lifecycle`]: the domain, pure.
//! - [`store`]: the state in redb.
//! - [`tunnel`]: an appliance's connection ([`tunnel::serve_connection`]).
//! - [`tls`]: the appliances' one TLS port (enrollment and tunnels); [`glue`] joins it to
//!   the store and the tunnel.
//! - [`api`] and [`client`]: the JSON HTTP API and the CLI's client for it.
//! - [`factory`]: Image Factory schematics for the agent and installs.

// The uplink's types are fixed-capacity (a URL is 256 bytes in place, see the uplink crate);
// enums that carry a boot target are large by design, and boxing them buys nothing here.
#![allow(clippy::large_enum_variant)]

pub mod api;
pub mod cli;
pub mod client;
pub mod factory;
mod glue;
pub mod hex;
pub mod lifecycle;
pub mod model;
pub mod omni;
pub mod store;
pub mod tls;
pub mod token_output;
pub mod tunnel;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use api::TunnelEndpoint;
use store::{Store, StoreConfig, StoreError};
use tls::TlsServer;
use tunnel::{TunnelOptions, Tunnels};

/// What the API and every tunnel share.
pub struct Provider {
    pub store: Arc<Store>,
    pub tunnels: Arc<Tunnels>,
}

impl Provider {
    pub fn open(
        state_dir: &Path,
        config: StoreConfig,
        options: TunnelOptions,
    ) -> Result<Arc<Provider>, StoreError> {
        Ok(Arc::new(Provider {
            store: Arc::new(Store::open(state_dir, config)?),
            tunnels: Arc::new(Tunnels::new(options)),
        }))
    }
}

/// The appliances' TLS port.
pub struct TlsOptions {
    pub listen: SocketAddr,
    /// Names or addresses appliances dial: all go into the server certificate, the first
    /// into tokens. Not empty.
    pub server_names: Vec<String>,
    /// Where the CA and the server identity live.
    pub state_dir: PathBuf,
}

/// Runs the service: the TLS front (enrollment and tunnels) and the API on `api`, until
/// either fails. Once both listen it prints `ready api=ADDR listen=ADDR ca=SHA256HEX` on
/// stdout, for whatever started it.
pub async fn serve(provider: Arc<Provider>, api: SocketAddr, tls: &TlsOptions) -> io::Result<()> {
    let front = TlsServer::bind(
        tls.listen,
        &tls.state_dir,
        &tls.server_names,
        provider.clone(),
        provider.clone(),
    )
    .await?;
    let listen = front.local_addr()?;
    let endpoint = TunnelEndpoint {
        addr: dial_address(&tls.server_names[0], listen.port())?,
        ca_sha256: front.ca_fingerprint(),
    };
    let listener = tokio::net::TcpListener::bind(api).await?;
    eprintln!("provider: appliances dial {}", endpoint.addr);
    println!(
        "ready api={} listen={listen} ca={}",
        listener.local_addr()?,
        hex::encode(&endpoint.ca_sha256)
    );
    tokio::try_join!(api::serve(listener, provider, endpoint), front.serve())?;
    Ok(())
}

/// `host:port` for tokens (an IPv6 address in brackets), refused if no token can hold it.
fn dial_address(name: &str, port: u16) -> io::Result<String> {
    let addr = match name.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{name}:{port}"),
    };
    if addr.len() > uplink::enroll::ADDR_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("server name {name}: too long for an enrollment token"),
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::dial_address;

    #[test]
    fn dial_addresses() {
        assert_eq!(dial_address("10.0.0.1", 8791).unwrap(), "10.0.0.1:8791");
        assert_eq!(dial_address("::1", 8791).unwrap(), "[::1]:8791");
        assert_eq!(dial_address("prov.example", 1).unwrap(), "prov.example:1");
        assert!(dial_address(&"a".repeat(130), 1).is_err());
    }
}
