//! The Omni adapter against the stand-in COSI server (tests/omni_standin): registration,
//! the InfraMachine watch mapped into the store, InfraMachineStatus written back, and the
//! refusals a real Omni makes (bad signature, clock skew) reported as such.

mod omni_standin;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use pgp::composed::{
    ArmorOptions, KeyType, SecretKeyParamsBuilder, SignedPublicKey, SignedSecretKey,
};
use provider::model::Acceptance;
use provider::omni::adapter::{Adapter, Options};
use provider::omni::client::{self, Client, Error};
use provider::omni::proto::{
    BmcConfig, BmcConfigSpec, InfraMachineSpec, InfraMachineStatusSpec,
    InfraProviderHealthStatusSpec, Ipmi, Resource,
};
use provider::omni::sign::Signer;
use provider::omni::*;
use provider::store::{Store, StoreConfig};
use uplink::{Event, Mac, MachineSeen, Sequenced, Uuid};

use omni_standin::Omni;

const PROVIDER: &str = "rack";
const UUID: &str = "07070707-0707-0707-0707-070707070707";

fn key(uid: &str) -> SignedSecretKey {
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(uid.into());
    params
        .build()
        .unwrap()
        .generate(rand::thread_rng())
        .unwrap()
}

/// The key file as `omnictl` hands it out: base64 of `{name, pgp_key}`.
fn service_account_key(key: &SignedSecretKey) -> String {
    let armored = key.to_armored_string(ArmorOptions::default()).unwrap();
    let json = serde_json::json!({ "name": PROVIDER, "pgp_key": armored });
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

/// A store of its own for test `name`, with one machine, as an appliance reported it.
fn store(name: &str) -> Arc<Store> {
    let dir = std::env::temp_dir().join(format!("provider-omni-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, StoreConfig::default()).unwrap();
    let a = store.register_appliance("fp", "rack-a").unwrap();
    let seen = MachineSeen {
        mac: Mac([2, 0, 0, 0, 0, 7]),
        uuid: Some(Uuid([7; 16])),
        arch: Some(7),
        first_seen: 1,
        last_seen: 1,
    };
    let event = Sequenced {
        seq: 1,
        event: Event::MachineSeen(seen),
    };
    store.apply_events(a, &[event], 1).unwrap();
    Arc::new(store)
}

fn infra_machine(spec: InfraMachineSpec) -> Resource {
    let labels = [(LABEL_PROVIDER_ID.to_string(), PROVIDER.to_string())];
    client::resource(NS_INFRA, INFRA_MACHINE, UUID, labels, &spec)
}

fn spec<M: prost::Message + Default>(r: &Resource) -> M {
    M::decode(&r.spec.as_ref().unwrap().proto_spec[..]).unwrap()
}

/// Polls `f` every 20 ms for at most 10 s.
async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn adapter_against_the_stand_in() {
    let secret = key("rack <rack@infra-provider.serviceaccount.omni.sidero.dev>");
    let (omni, addr) = Omni::start(SignedPublicKey::from(secret.clone()), PROVIDER).await;
    let signer = Arc::new(Signer::from_service_account_key(&service_account_key(&secret)).unwrap());
    assert_eq!(
        signer.identity(),
        "rack@infra-provider.serviceaccount.omni.sidero.dev"
    );
    let store = store("adapter");
    omni.put(infra_machine(InfraMachineSpec::default()));

    let opts = Options {
        endpoint: format!("http://{addr}"),
        provider_id: PROVIDER.into(),
        signer: signer.clone(),
        clock_offset_secs: 0,
        heartbeat: Duration::from_millis(200),
    };
    let mut adapter = Adapter::connect(store.clone(), &opts).await.unwrap();
    let running = tokio::spawn(async move { adapter.run().await });

    // Registered as a static provider, beating, and the pending machine reported.
    let status = until("InfraProviderStatus", || {
        omni.get(NS_INFRA, PROVIDER_STATUS, PROVIDER)
    })
    .await;
    assert!(status.metadata.unwrap().labels.contains_key(LABEL_STATIC));
    let health = until("heartbeat", || {
        omni.get(NS_EPHEMERAL, PROVIDER_HEALTH, PROVIDER)
    })
    .await;
    assert!(
        spec::<InfraProviderHealthStatusSpec>(&health)
            .last_heartbeat_timestamp
            .is_some()
    );
    let first = until("status", || omni.get(NS_INFRA, INFRA_MACHINE_STATUS, UUID)).await;
    assert!(!spec::<InfraMachineStatusSpec>(&first).ready_to_use);

    // Omni accepts, then allocates: both reach the store.
    omni.put(infra_machine(InfraMachineSpec {
        acceptance_status: 1,
        ..Default::default()
    }));
    until("accept", || {
        (store.machine(UUID).unwrap().acceptance == Acceptance::Accepted).then_some(())
    })
    .await;
    let allocated = InfraMachineSpec {
        acceptance_status: 1,
        preferred_power_state: 1,
        cluster_talos_version: "v1.9.0".into(),
        extra_kernel_args: "console=ttyS0".into(),
        ..Default::default()
    };
    omni.put(infra_machine(allocated));
    let m = until("allocate", || {
        store
            .machine(UUID)
            .unwrap()
            .allocation
            .is_some()
            .then(|| store.machine(UUID).unwrap())
    })
    .await;
    let a = m.allocation.clone().unwrap();
    assert_eq!(
        (a.talos_version.as_str(), a.kernel_args.as_str()),
        ("v1.9.0", "console=ttyS0")
    );
    assert!(m.wipe_due(), "accepted machines are wiped first");

    // The store moves on (the appliance reports the machine on): the status follows within
    // a heartbeat, with no event from Omni.
    let power = uplink::PowerState {
        machine: uplink::MachineId::Uuid(Uuid([7; 16])),
        state: uplink::Power::On,
        at: 2,
    };
    let event = Sequenced {
        seq: 2,
        event: Event::PowerState(power),
    };
    store.apply_events(m.appliance, &[event], 2).unwrap();
    let s = until("status with power on", || {
        let r = omni.get(NS_INFRA, INFRA_MACHINE_STATUS, UUID)?;
        Some(spec::<InfraMachineStatusSpec>(&r)).filter(|s| s.power_state == 2)
    })
    .await;
    assert!(!s.installed);

    // Omni rewrites the status behind the adapter's back (a new version): the adapter's
    // next write, at the version it remembers, is refused as stale and redone from a Get.
    let current = omni.get(NS_INFRA, INFRA_MACHINE_STATUS, UUID).unwrap();
    omni.put(current);
    let power = uplink::PowerState {
        machine: uplink::MachineId::Uuid(Uuid([7; 16])),
        state: uplink::Power::Off,
        at: 3,
    };
    let event = Sequenced {
        seq: 3,
        event: Event::PowerState(power),
    };
    store.apply_events(m.appliance, &[event], 3).unwrap();
    until("status with power off", || {
        let r = omni.get(NS_INFRA, INFRA_MACHINE_STATUS, UUID)?;
        Some(spec::<InfraMachineStatusSpec>(&r)).filter(|s| s.power_state == 1)
    })
    .await;

    // Idle: nothing changes, so no InfraMachine call at all; the heartbeat alone (one Update
    // each 30 s in production, here each 200 ms) whatever the number of machines.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = omni.calls();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = omni.calls();
    let per_type = |typ: &str| -> u64 {
        let n = |c: &std::collections::BTreeMap<(String, String), u64>| {
            c.iter()
                .filter(|((_, t), _)| t == typ)
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        n(&after) - n(&before)
    };
    assert_eq!(per_type(INFRA_MACHINE_STATUS), 0, "{after:?}");
    assert_eq!(per_type(INFRA_MACHINE), 0, "{after:?}");
    let beats = per_type(PROVIDER_HEALTH);
    assert!(
        (1..=6).contains(&beats),
        "about 5 heartbeats, 1 call each: {beats} {after:?}"
    );
    assert!(omni.refused().is_empty(), "{:?}", omni.refused());
    running.abort();

    // A key Omni does not know, and a clock 6 minutes ahead: refused, and said so.
    let stranger = key("rack <rack@infra-provider.serviceaccount.omni.sidero.dev>");
    let stranger =
        Arc::new(Signer::from_service_account_key(&service_account_key(&stranger)).unwrap());
    let url = format!("http://{addr}");
    let mut c = Client::connect(&url, stranger, 0).await.unwrap();
    let e = c.get(NS_INFRA, INFRA_MACHINE, UUID).await.unwrap_err();
    assert!(
        matches!(&e, Error::Refused(m) if m.contains("fingerprint")),
        "{e}"
    );
    assert!(e.to_string().contains("signature"), "{e}");
    let mut c = Client::connect(&url, signer.clone(), 360).await.unwrap();
    let e = c.get(NS_INFRA, INFRA_MACHINE, UUID).await.unwrap_err();
    assert!(matches!(&e, Error::Refused(m) if m.contains("skew")), "{e}");
    assert!(e.to_string().contains("clock"), "{e}");

    // Outside the provider's namespaces, or without its label: denied.
    let mut c = Client::connect(&url, signer, 0).await.unwrap();
    let e = c.get("default", INFRA_MACHINE, UUID).await.unwrap_err();
    assert!(matches!(e, Error::Denied(_)), "{e}");
    let unlabeled = client::resource(
        NS_INFRA,
        INFRA_MACHINE_STATUS,
        "x",
        [],
        &InfraMachineStatusSpec::default(),
    );
    let e = c.put(unlabeled).await.unwrap_err();
    assert!(matches!(e, Error::Denied(_)), "{e}");
    assert_eq!(omni.refused().len(), 4, "{:?}", omni.refused());
}

/// Kills the service however the test ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &std::path::Path, omni: &str, key: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_provider"));
    cmd.args(["serve", "--state-dir"])
        .arg(dir)
        .args(["--api", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
        .args(["--omni-endpoint", omni, "--provider-id", PROVIDER])
        .env("OMNI_SERVICE_ACCOUNT_KEY", key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd
}

#[tokio::test]
async fn serve_registers_with_omni() {
    let secret = key("rack <rack@infra-provider.serviceaccount.omni.sidero.dev>");
    let (omni, addr) = Omni::start(SignedPublicKey::from(secret.clone()), PROVIDER).await;
    let dir = std::env::temp_dir().join(format!("provider-omni-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    // A key that is not one: refused at start, before anything listens.
    let out = serve(&dir, &format!("http://{addr}"), "%%%")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("service account key: not base64"),
        "{stderr}"
    );

    let child = serve(
        &dir,
        &format!("http://{addr}"),
        &service_account_key(&secret),
    )
    .spawn()
    .unwrap();
    let _service = Killed(child);
    until("InfraProviderStatus from serve", || {
        omni.get(NS_INFRA, PROVIDER_STATUS, PROVIDER)
    })
    .await;
    until("heartbeat from serve", || {
        omni.get(NS_EPHEMERAL, PROVIDER_HEALTH, PROVIDER)
    })
    .await;
    assert!(omni.refused().is_empty(), "{:?}", omni.refused());
}

#[tokio::test]
async fn dropped_watches_resume_and_bad_specs_are_skipped() {
    let secret = key("rack <rack@infra-provider.serviceaccount.omni.sidero.dev>");
    let (omni, addr) = Omni::start(SignedPublicKey::from(secret.clone()), PROVIDER).await;
    let signer = Arc::new(Signer::from_service_account_key(&service_account_key(&secret)).unwrap());
    let store = store("resume");
    // A resource whose spec is not an InfraMachine's: skipped, the others still served.
    let mut bad = infra_machine(InfraMachineSpec::default());
    bad.metadata.as_mut().unwrap().id = "bad".into();
    bad.spec.as_mut().unwrap().proto_spec = vec![0xff; 4];
    omni.put(bad);
    let accepted = InfraMachineSpec {
        acceptance_status: 1,
        ..Default::default()
    };
    omni.put(infra_machine(accepted.clone()));

    let opts = Options {
        endpoint: format!("http://{addr}"),
        provider_id: PROVIDER.into(),
        signer,
        clock_offset_secs: 0,
        heartbeat: Duration::from_millis(200),
    };
    let running = tokio::spawn(provider::omni::adapter::run_forever(store.clone(), opts));
    until("accept", || {
        (store.machine(UUID).unwrap().acceptance == Acceptance::Accepted).then_some(())
    })
    .await;

    // Omni's BMC configuration reaches the store.
    let bmc = BmcConfigSpec {
        config: Some(BmcConfig {
            ipmi: Some(Ipmi {
                address: "10.0.0.9".into(),
                port: 623,
                username: "admin".into(),
                password: "secret".into(),
            }),
            api: None,
        }),
    };
    let labels = [(LABEL_PROVIDER_ID.to_string(), PROVIDER.to_string())];
    omni.put(client::resource(NS_INFRA, BMC_CONFIG, UUID, labels, &bmc));
    until("BMC", || store.machine(UUID).unwrap().bmc_revision).await;
    // The unreadable one shows in the heartbeat, for Omni's admin.
    until("the problem in the heartbeat", || {
        let r = omni.get(NS_EPHEMERAL, PROVIDER_HEALTH, PROVIDER)?;
        let error = spec::<InfraProviderHealthStatusSpec>(&r).error;
        error.contains("InfraMachine bad: malformed").then_some(())
    })
    .await;

    // The streams drop; what Omni changes meanwhile arrives once the adapter is back.
    omni.cut_watches();
    let allocated = InfraMachineSpec {
        preferred_power_state: 1,
        cluster_talos_version: "v1.9.0".into(),
        ..accepted
    };
    omni.put(infra_machine(allocated));
    until("allocation after the cut", || {
        store.machine(UUID).unwrap().allocation.map(|_| ())
    })
    .await;
    running.abort();
    assert!(omni.refused().is_empty(), "{:?}", omni.refused());
}
