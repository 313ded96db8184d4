//! The provider service, in-process: its store in the rack's state dir, its TLS front on
//! loopback and its JSON API beside it, on a tokio runtime of their own. The rack plays the
//! operator through the store, as the API does, or (`--omni`) Omni's user through the
//! stand-in Omni on loopback that the provider's Omni adapter follows; the appliance
//! reaches the front through the rack's [`super::gateway::Gateway`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use omni_standin::{Omni, ServiceAccount};
use provider::api::{self, TunnelEndpoint};
use provider::model::{Change, Machine};
use provider::omni::adapter::{Options, run_forever};
use provider::omni::sign::Signer;
use provider::store::{StoreConfig, now};
use provider::tls::TlsServer;
use provider::tls::token::enrollment_token;
use provider::tunnel::TunnelOptions;
use provider::{Provider, hex};
use tokio::runtime::Runtime;
use uplink::enroll::EnrollmentToken;

pub struct InProcess {
    pub provider: Arc<Provider>,
    /// Where the TLS front listens (loopback).
    pub listen: SocketAddr,
    pub api: SocketAddr,
    /// A single-use token naming `dial_name` and the front's port.
    pub token: EnrollmentToken,
    /// With `--omni`: the stand-in Omni the provider's adapter follows, and the runtime it
    /// runs on (its own, as Omni is another service: its signature checks do not hold up
    /// the provider's tasks).
    pub omni: Option<Omni>,
    _omni_runtime: Option<Runtime>,
    /// Runs the front and the API; dropping it stops them.
    _runtime: Runtime,
}

impl InProcess {
    /// Starts the provider with its state in `dir`; appliances are to dial `dial_name` at
    /// the front's port (the name goes into the server certificate). With `omni`, the
    /// stand-in Omni too, and the provider's adapter on it, beating every `omni` interval.
    /// The appliance keeps machines on at least `min_on_secs` before a power-off.
    pub fn start(
        dir: &Path,
        dial_name: &str,
        omni: Option<Duration>,
        min_on_secs: u32,
    ) -> Result<InProcess, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("tokio: {e}"))?;
        let mut config = StoreConfig::default();
        config.appliance.min_on_before_off_secs = min_on_secs;
        if omni.is_some() {
            let (yaml, id) = super::omni::schematic();
            config.lifecycle.schematics.insert(yaml, id);
        }
        let provider = Provider::open(dir, config, TunnelOptions::default())
            .map_err(|e| format!("provider store: {e}"))?;
        let names = [dial_name.to_owned()];
        let (front, api) = runtime
            .block_on(async {
                let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
                let front =
                    TlsServer::bind(loopback, dir, &names, provider.clone(), provider.clone())
                        .await?;
                let api = tokio::net::TcpListener::bind(loopback).await?;
                std::io::Result::Ok((front, api))
            })
            .map_err(|e| format!("provider: {e}"))?;
        let listen = front.local_addr().map_err(|e| e.to_string())?;
        let api_addr = api.local_addr().map_err(|e| e.to_string())?;
        let endpoint = TunnelEndpoint {
            addr: format!("{dial_name}:{}", listen.port()),
            ca_sha256: front.ca_fingerprint(),
        };
        let (_, secret) = provider
            .store
            .create_token(now() + 3600)
            .map_err(|e| format!("token: {e}"))?;
        let secret = hex::decode(&secret).ok_or("token: bad secret")?;
        let token = enrollment_token(&endpoint.addr, endpoint.ca_sha256, &secret)
            .map_err(|e| format!("token: {e}"))?;
        runtime.spawn(front.serve());
        runtime.spawn(api::serve(api, provider.clone(), endpoint));
        let (omni, omni_runtime) = match omni {
            Some(heartbeat) => {
                let (omni, rt) = start_omni(&runtime, &provider, heartbeat)?;
                (Some(omni), Some(rt))
            }
            None => (None, None),
        };
        Ok(InProcess {
            provider,
            listen,
            api: api_addr,
            token,
            omni,
            _omni_runtime: omni_runtime,
            _runtime: runtime,
        })
    }

    pub fn machine(&self, key: &str) -> Option<Machine> {
        self.provider.store.machine(key).ok()
    }

    /// An operator's change, as the API applies it: stored, then the appliance is woken.
    pub fn change(&self, key: &str, change: &Change) -> Result<Machine, String> {
        let m = (self.provider.store)
            .change_machine(key, change)
            .map_err(|e| format!("{key}: {e}"))?;
        self.provider.tunnels.wake(m.appliance);
        Ok(m)
    }
}

/// The provider id the rack registers with the stand-in as.
const PROVIDER_ID: &str = "rack";

/// The stand-in Omni on loopback, on a runtime of its own, with a fresh service account;
/// the provider's adapter on the provider's `runtime`, signing with that account's key.
fn start_omni(
    runtime: &Runtime,
    provider: &Arc<Provider>,
    heartbeat: Duration,
) -> Result<(Omni, Runtime), String> {
    let omni_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    let account = ServiceAccount::generate(PROVIDER_ID);
    let (omni, addr) = omni_runtime.block_on(Omni::start(account.public(), PROVIDER_ID));
    let signer = Signer::from_service_account_key(&account.key_file).map_err(|e| e.to_string())?;
    let options = Options {
        endpoint: format!("http://{addr}"),
        provider_id: PROVIDER_ID.into(),
        signer: Arc::new(signer),
        clock_offset_secs: 0,
        heartbeat,
    };
    runtime.spawn(run_forever(provider.clone(), options));
    Ok((omni, omni_runtime))
}
