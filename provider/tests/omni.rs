//! The Omni adapter against the stand-in Omni (tests/omni-standin): registration, the
//! InfraMachine watch mapped into the store, InfraMachineStatus written back, Omni's
//! request ids (wipe, install event, power off), and the faults: a bad signature, a clock
//! skew over 5 minutes, a stream dropped mid-watch.

use std::sync::Arc;
use std::time::Duration;

use omni_standin::{Omni, ServiceAccount};
use provider::Provider;
use provider::model::Acceptance;
use provider::omni::adapter::{Adapter, Options, run_forever};
use provider::omni::client::{self, Client, Error};
use provider::omni::proto::state_client::StateClient;
use provider::omni::proto::{
    GetRequest, InfraMachineSpec, InfraMachineStatusSpec, InfraProviderHealthStatusSpec, Resource,
};
use provider::omni::sign::Signer;
use provider::omni::*;
use provider::store::{Store, StoreConfig};
use provider::tunnel::TunnelOptions;
use uplink::{Event, Mac, MachineSeen, Sequenced, Uuid};

const PROVIDER: &str = "rack";
const UUID: &str = "07070707-0707-0707-0707-070707070707";

/// The stand-in with a fresh service account, and the adapter's options for it.
async fn omni() -> (Omni, Options) {
    let account = ServiceAccount::generate(PROVIDER);
    let (omni, addr) = Omni::start(account.public(), PROVIDER).await;
    let signer = Arc::new(Signer::from_service_account_key(&account.key_file).unwrap());
    let opts = Options {
        endpoint: format!("http://{addr}"),
        provider_id: PROVIDER.into(),
        signer,
        clock_offset_secs: 0,
        heartbeat: Duration::from_millis(200),
    };
    (omni, opts)
}

fn options_like(o: &Options) -> Options {
    Options {
        endpoint: o.endpoint.clone(),
        provider_id: o.provider_id.clone(),
        signer: o.signer.clone(),
        clock_offset_secs: o.clock_offset_secs,
        heartbeat: o.heartbeat,
    }
}

/// A provider of its own for test `name`, with one machine, as an appliance reported it.
fn provider(name: &str) -> Arc<Provider> {
    let dir = std::env::temp_dir().join(format!("provider-omni-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let p = Provider::open(&dir, StoreConfig::default(), TunnelOptions::default()).unwrap();
    let store: &Store = &p.store;
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
    p
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
    let (omni, opts) = omni().await;
    assert_eq!(
        opts.signer.identity(),
        "rack@infra-provider.serviceaccount.omni.sidero.dev"
    );
    let url = opts.endpoint.clone();
    let signer = opts.signer.clone();
    let provider = provider("adapter");
    let store = provider.store.clone();
    omni.put(infra_machine(InfraMachineSpec::default()));

    let mut adapter = Adapter::new(provider, opts);
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

    // Outside the provider's namespaces, without its label, or Omni's own resources: denied.
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
    let e = c.put(infra_machine(InfraMachineSpec::default())).await;
    assert!(matches!(e, Err(Error::Denied(_))), "{e:?}");
    assert_eq!(omni.refused().len(), 3, "{:?}", omni.refused());
}

/// Omni refuses a key it does not know, a signature that is not the payload's, a payload
/// signed for another method, and a clock more than 5 minutes off; the adapter says so and
/// keeps trying (1 s, doubling), its service undisturbed.
#[tokio::test]
async fn bad_signatures_and_clock_skew_are_refused_and_retried() {
    let (omni, opts) = omni().await;
    let url = opts.endpoint.clone();

    let stranger = ServiceAccount::generate(PROVIDER);
    let stranger = Arc::new(Signer::from_service_account_key(&stranger.key_file).unwrap());
    let mut c = Client::connect(&url, stranger, 0).await.unwrap();
    let e = c.get(NS_INFRA, INFRA_MACHINE, UUID).await.unwrap_err();
    assert!(
        matches!(&e, Error::Refused(m) if m.contains("fingerprint")),
        "{e}"
    );
    assert!(e.to_string().contains("signature"), "{e}");

    // The right key, but a signature of something else, or of another method.
    const GET: &str = "/cosi.resource.State/Get";
    let now = provider::store::now() as i64;
    let [ts, payload, signature] = opts.signer.sign(GET, now).unwrap();
    let [_, _, other] = opts.signer.sign(GET, now + 1).unwrap();
    let [_, list_payload, list_signature] =
        opts.signer.sign("/cosi.resource.State/List", now).unwrap();
    let channel = tonic::transport::Endpoint::from_shared(url.clone()).unwrap();
    let mut raw = StateClient::new(channel.connect().await.unwrap());
    for (headers, why) in [
        ([&ts, &payload, &other], "invalid signature"),
        ([&ts, &list_payload, &list_signature], "method"),
        ([&ts, &payload, &signature], ""),
    ] {
        let mut req = tonic::Request::new(GetRequest {
            namespace: NS_INFRA.into(),
            r#type: INFRA_MACHINE.into(),
            id: UUID.into(),
        });
        for (k, v) in headers {
            req.metadata_mut().insert(*k, v.parse().unwrap());
        }
        let status = raw.get(req).await.unwrap_err();
        if why.is_empty() {
            assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
        } else {
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
            assert!(status.message().contains(why), "{status:?}");
        }
    }

    let mut c = Client::connect(&url, opts.signer.clone(), 360)
        .await
        .unwrap();
    let e = c.get(NS_INFRA, INFRA_MACHINE, UUID).await.unwrap_err();
    assert!(matches!(&e, Error::Refused(m) if m.contains("skew")), "{e}");
    assert!(e.to_string().contains("clock"), "{e}");

    // The adapter on a clock 6 minutes ahead: refused, and again after its back-off.
    let refused = omni.refused().len();
    let skewed = Options {
        clock_offset_secs: 360,
        ..options_like(&opts)
    };
    let running = tokio::spawn(run_forever(provider("skew"), skewed));
    until("two refusals of the skewed adapter", || {
        (omni.refused().len() >= refused + 2).then_some(())
    })
    .await;
    running.abort();
    assert!(omni.get(NS_INFRA, PROVIDER_STATUS, PROVIDER).is_none());
    assert!(
        omni.refused()
            .iter()
            .skip(refused)
            .all(|r| r.contains("skew"))
    );
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
    let account = ServiceAccount::generate(PROVIDER);
    let (omni, addr) = Omni::start(account.public(), PROVIDER).await;
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

    let child = serve(&dir, &format!("http://{addr}"), &account.key_file)
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

/// The calls served so far for resource type `typ`, by method.
fn calls_for(omni: &Omni, typ: &str) -> std::collections::BTreeMap<String, u64> {
    (omni.calls().into_iter())
        .filter(|((_, t), _)| t == typ)
        .map(|((m, _), n)| (m, n))
        .collect()
}

#[tokio::test]
async fn dropped_watches_resume_and_bad_specs_are_skipped() {
    let (omni, opts) = omni().await;
    let provider = provider("resume");
    let store = provider.store.clone();
    // A resource whose spec is not an InfraMachine's: skipped, the others still served.
    let mut bad = infra_machine(InfraMachineSpec::default());
    bad.metadata.as_mut().unwrap().id = "bad".into();
    bad.spec.as_mut().unwrap().proto_spec = vec![0xff; 4];
    omni.put(bad);
    omni.join(UUID, "token-1");
    omni.accept(UUID);

    let running = tokio::spawn(run_forever(provider, opts));
    until("accept", || {
        (store.machine(UUID).unwrap().acceptance == Acceptance::Accepted).then_some(())
    })
    .await;

    // Omni's BMC configuration reaches the store.
    omni.set_bmc(UUID, "10.0.0.9", 623, "admin", "secret");
    until("BMC", || store.machine(UUID).unwrap().bmc_revision).await;
    // The unreadable one shows in the heartbeat, for Omni's admin.
    until("the problem in the heartbeat", || {
        let r = omni.get(NS_EPHEMERAL, PROVIDER_HEALTH, PROVIDER)?;
        let error = spec::<InfraProviderHealthStatusSpec>(&r).error;
        error.contains("InfraMachine bad: malformed").then_some(())
    })
    .await;

    // A reboot asked for before the drop is asked of the machine once.
    omni.reboot(UUID);
    let requested = until("the reboot in the store", || {
        store.machine(UUID).unwrap().requested_reboot_id
    })
    .await;
    until("the status written", || omni.status(UUID).map(drop)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let watches = calls_for(&omni, INFRA_MACHINE)["/cosi.resource.State/Watch"];
    let statuses = calls_for(&omni, INFRA_MACHINE_STATUS);

    // The streams drop; the adapter watches again and what Omni changes meanwhile arrives,
    // while what it had already taken is not taken again.
    omni.cut_watches();
    omni.allocate(UUID, "v1.9.0", &[], "");
    until("allocation after the cut", || {
        store.machine(UUID).unwrap().allocation.map(|_| ())
    })
    .await;
    let m = store.machine(UUID).unwrap();
    assert_eq!(m.requested_reboot_id, Some(requested), "not asked again");
    let watched = calls_for(&omni, INFRA_MACHINE)["/cosi.resource.State/Watch"];
    assert_eq!(watched, watches + 1, "watched again once");
    let after = calls_for(&omni, INFRA_MACHINE_STATUS);
    assert_eq!(
        after.get("/cosi.resource.State/Get"),
        statuses.get("/cosi.resource.State/Get")
    );
    running.abort();
    assert!(omni.refused().is_empty(), "{:?}", omni.refused());
}

/// Omni's ids reach the model: a new wipe id is the machine's wipe, Omni's install count
/// makes it installed, a power-off request holds it off and is reported done.
#[tokio::test]
async fn omni_request_ids_reach_the_machine() {
    let (omni, opts) = omni().await;
    let provider = provider("ids");
    let store = provider.store.clone();
    omni.join(UUID, "token-1");
    omni.accept(UUID);
    omni.set_bmc(UUID, "10.0.0.9", 623, "admin", "secret");
    let running = tokio::spawn(run_forever(provider, opts));
    until("accept", || {
        (store.machine(UUID).unwrap().acceptance == Acceptance::Accepted).then_some(())
    })
    .await;
    omni.allocate(UUID, "v1.9.0", &["siderolabs/iscsi-tools"], "console=ttyS0");
    until("allocation", || store.machine(UUID).unwrap().allocation).await;
    omni.install_event(UUID, "token-2");
    until("installed", || omni.status(UUID).filter(|s| s.installed)).await;

    let off = omni.power_off(UUID);
    let m = until("power-off request", || {
        Some(store.machine(UUID).unwrap()).filter(|m| m.power_off_request_id.is_some())
    })
    .await;
    assert_eq!(m.power_off_request_id.as_ref(), Some(&off));
    assert_eq!(m.preferred_power, provider::model::PreferredPower::Off);
    omni.power_on(UUID);
    until("power-off request withdrawn", || {
        let m = store.machine(UUID).unwrap();
        (m.power_off_request_id.is_none()
            && m.preferred_power == provider::model::PreferredPower::On)
            .then_some(())
    })
    .await;

    let wipe = omni.deallocate(UUID);
    let m = until("the wipe under Omni's id", || {
        Some(store.machine(UUID).unwrap()).filter(|m| m.wipe_id.as_ref() == Some(&wipe))
    })
    .await;
    assert!(m.allocation.is_none() && m.wipe_due());
    let s = until("status after release", || {
        omni.status(UUID).filter(|s| !s.ready_to_use)
    })
    .await;
    assert!(s.installed, "installed until wiped");
    running.abort();
    assert!(omni.refused().is_empty(), "{:?}", omni.refused());
}
