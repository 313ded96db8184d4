//! A stand-in for Omni, because no Omni runs here: its COSI state service as a static
//! infrastructure provider sees it ([`service`]: every request's signature checked, the
//! provider's namespaces and label enforced, Omni's resources read-only to it), and Omni's
//! side of the machine lifecycle played through the [`Omni`] handle: a machine joins
//! pending, is accepted and given its BMC, allocated to a cluster, counted installed,
//! rebooted, powered off, released with a new wipe id, cordoned.

mod service;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use pgp::composed::{
    ArmorOptions, KeyType, SecretKeyParamsBuilder, SignedPublicKey, SignedSecretKey,
};
use provider::omni::proto::state_server::StateServer;
use provider::omni::proto::*;
use provider::omni::{
    BMC_CONFIG, INFRA_MACHINE, INFRA_MACHINE_STATUS, LABEL_PROVIDER_ID, NS_INFRA,
};
use tokio::sync::broadcast;

use service::Service;

type Key = (String, String, String);

#[derive(Default)]
struct World {
    resources: BTreeMap<Key, Resource>,
    version: u64,
    /// Why each refused request was refused.
    refused: Vec<String>,
    /// Calls served, by method and resource type.
    calls: BTreeMap<(String, String), u64>,
}

/// Omni's side of the state, shared with the service.
#[derive(Clone)]
pub struct Omni {
    world: Arc<Mutex<World>>,
    events: broadcast::Sender<Event>,
    /// Ends every open watch with an error, as a dropped connection does.
    cuts: broadcast::Sender<()>,
    provider_id: String,
}

/// A provider's service account: its key, and the key file `omnictl infraprovider create`
/// prints (base64 of `{name, pgp_key}`).
pub struct ServiceAccount {
    pub secret: SignedSecretKey,
    pub key_file: String,
}

impl ServiceAccount {
    /// A fresh Ed25519 key for provider `provider_id`, named as Omni names its accounts.
    pub fn generate(provider_id: &str) -> ServiceAccount {
        let uid =
            format!("{provider_id} <{provider_id}@infra-provider.serviceaccount.omni.sidero.dev>");
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(uid);
        let secret = params
            .build()
            .expect("key parameters")
            .generate(rand::thread_rng())
            .expect("key generation");
        let armored = secret
            .to_armored_string(ArmorOptions::default())
            .expect("armoring a fresh key");
        let json = serde_json::json!({ "name": provider_id, "pgp_key": armored });
        let key_file = base64::engine::general_purpose::STANDARD.encode(json.to_string());
        ServiceAccount { secret, key_file }
    }

    pub fn public(&self) -> SignedPublicKey {
        SignedPublicKey::from(self.secret.clone())
    }
}

fn key_of(r: &Resource) -> Key {
    let m = r.metadata.clone().unwrap_or_default();
    (m.namespace, m.r#type, m.id)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A new request id, random as Omni's (a UUID's 32 hex digits).
fn fresh_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn spec_of<M: prost::Message + Default>(r: &Resource) -> Option<M> {
    M::decode(&r.spec.as_ref()?.proto_spec[..]).ok()
}

impl Omni {
    /// Starts the stand-in on a loopback port for the provider `provider_id`, whose service
    /// account key is `key`. The server runs on the current tokio runtime.
    pub async fn start(key: SignedPublicKey, provider_id: &str) -> (Omni, SocketAddr) {
        let omni = Omni {
            world: Arc::default(),
            events: broadcast::channel(1024).0,
            cuts: broadcast::channel(4).0,
            provider_id: provider_id.to_string(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let service = Service {
            omni: omni.clone(),
            key,
            provider_id: provider_id.to_string(),
        };
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(StateServer::new(service))
                .serve_with_incoming(incoming),
        );
        (omni, addr)
    }

    /// Writes a resource as Omni (no rules): a new version, and an event to watchers.
    pub fn put(&self, mut r: Resource) -> Resource {
        let mut w = self.world.lock().unwrap();
        w.version += 1;
        let version = w.version.to_string();
        r.metadata.get_or_insert_default().version = version;
        let old = w.resources.insert(key_of(&r), r.clone());
        let event_type = if old.is_some() {
            EventType::Updated
        } else {
            EventType::Created
        };
        let _ = self.events.send(Event {
            resource: Some(r.clone()),
            event_type: event_type as i32,
            old,
            error: None,
        });
        r
    }

    pub fn get(&self, ns: &str, typ: &str, id: &str) -> Option<Resource> {
        let w = self.world.lock().unwrap();
        w.resources
            .get(&(ns.into(), typ.into(), id.into()))
            .cloned()
    }

    /// Calls served so far, by (method, resource type).
    pub fn calls(&self) -> BTreeMap<(String, String), u64> {
        self.world.lock().unwrap().calls.clone()
    }

    /// Calls served so far, all methods and types.
    pub fn total_calls(&self) -> u64 {
        self.world.lock().unwrap().calls.values().sum()
    }

    /// Cuts every open watch stream.
    pub fn cut_watches(&self) {
        let _ = self.cuts.send(());
    }

    pub fn refused(&self) -> Vec<String> {
        self.world.lock().unwrap().refused.clone()
    }

    fn labels(&self) -> [(String, String); 1] {
        [(LABEL_PROVIDER_ID.to_string(), self.provider_id.clone())]
    }

    /// Omni's wishes for machine `id`.
    pub fn machine(&self, id: &str) -> Option<InfraMachineSpec> {
        spec_of(&self.get(NS_INFRA, INFRA_MACHINE, id)?)
    }

    /// What the provider reported of machine `id`.
    pub fn status(&self, id: &str) -> Option<InfraMachineStatusSpec> {
        spec_of(&self.get(NS_INFRA, INFRA_MACHINE_STATUS, id)?)
    }

    /// Changes machine `id`'s InfraMachine as Omni does (one write, one event); a machine
    /// Omni does not have yet starts from the defaults (pending, off).
    pub fn edit(&self, id: &str, f: impl FnOnce(&mut InfraMachineSpec)) -> InfraMachineSpec {
        let mut spec = self.machine(id).unwrap_or_default();
        f(&mut spec);
        let r = provider::omni::client::resource(NS_INFRA, INFRA_MACHINE, id, self.labels(), &spec);
        self.put(r);
        spec
    }

    /// The machine joined Omni (its agent over SideroLink) with its node token: pending.
    pub fn join(&self, id: &str, node_unique_token: &str) {
        self.edit(id, |m| m.node_unique_token = node_unique_token.into());
    }

    pub fn accept(&self, id: &str) {
        self.edit(id, |m| m.acceptance_status = 1);
    }

    /// The machine's BMC, as Omni's admin (or the agent) gives it.
    pub fn set_bmc(&self, id: &str, address: &str, port: u32, username: &str, password: &str) {
        let ipmi = Ipmi {
            address: address.into(),
            port,
            username: username.into(),
            password: password.into(),
        };
        let spec = BmcConfigSpec {
            config: Some(BmcConfig {
                ipmi: Some(ipmi),
                api: None,
            }),
        };
        let r = provider::omni::client::resource(NS_INFRA, BMC_CONFIG, id, self.labels(), &spec);
        self.put(r);
    }

    /// A cluster takes the machine: its Talos version, extensions and kernel arguments.
    pub fn allocate(&self, id: &str, talos: &str, extensions: &[&str], kernel_args: &str) {
        self.edit(id, |m| {
            m.cluster_talos_version = talos.into();
            m.extensions = extensions.iter().map(|e| e.to_string()).collect();
            m.extra_kernel_args = kernel_args.into();
            m.preferred_power_state = 1;
        });
    }

    /// Omni saw Talos installed on the machine, which now has a node token of its own.
    pub fn install_event(&self, id: &str, node_unique_token: &str) {
        self.edit(id, |m| {
            m.install_event_id += 1;
            m.node_unique_token = node_unique_token.into();
        });
    }

    /// Released from its cluster: powered off, to be wiped under a new id (returned).
    pub fn deallocate(&self, id: &str) -> String {
        let wipe = fresh_id();
        self.edit(id, |m| {
            m.cluster_talos_version.clear();
            m.extensions.clear();
            m.extra_kernel_args.clear();
            m.preferred_power_state = 0;
            m.wipe_id = wipe.clone();
        });
        wipe
    }

    /// A reboot request; returns its id.
    pub fn reboot(&self, id: &str) -> String {
        let request = fresh_id();
        self.edit(id, |m| m.requested_reboot_id = request.clone());
        request
    }

    /// A power-off request (Omni's "power off" of a static provider's machine); returns its id.
    pub fn power_off(&self, id: &str) -> String {
        let request = fresh_id();
        self.edit(id, |m| m.power_off_request_id = request.clone());
        request
    }

    /// Omni's "power on": the power-off request withdrawn.
    pub fn power_on(&self, id: &str) {
        self.edit(id, |m| m.power_off_request_id.clear());
    }

    pub fn cordon(&self, id: &str, cordoned: bool) {
        self.edit(id, |m| m.cordoned = cordoned);
    }
}
