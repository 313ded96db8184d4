//! The provider service: the appliances of many racks tunnel into it; it keeps the state of
//! their machines and decides what each boots and whether it is powered.
//!
//! - [`model`] and [`lifecycle`]: the domain, pure.
//! - [`store`]: the state in redb.
//! - [`tunnel`]: an appliance's connection ([`tunnel::serve_connection`]).
//! - [`api`] and [`client`]: the JSON HTTP API and the CLI's client for it.

// The uplink's types are fixed-capacity (a URL is 256 bytes in place, see the uplink crate);
// enums that carry a boot target are large by design, and boxing them buys nothing here.
#![allow(clippy::large_enum_variant)]

pub mod api;
pub mod cli;
pub mod client;
pub mod lifecycle;
pub mod model;
pub mod store;
pub mod tls;
pub mod token_output;
pub mod tunnel;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use store::{Store, StoreConfig, StoreError};
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

/// Runs the service: the API on `api` and the tunnel listener `tunnels` (the TLS layer's,
/// which calls [`tunnel::serve_connection`] per authenticated connection) until either fails.
pub async fn serve(
    provider: Arc<Provider>,
    api: SocketAddr,
    tunnels: impl Future<Output = io::Result<()>>,
) -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind(api).await?;
    eprintln!("provider: API on http://{}", listener.local_addr()?);
    tokio::try_join!(api::serve(listener, provider), tunnels)?;
    Ok(())
}
