//! The provider against an Image Factory stand-in over HTTPS (`factory_standin`): schematics
//! are created once per distinct content (and not again after a restart), the install URL
//! carries the schematic, the kernel arguments and extensions land in it, the agent is the
//! metal-agent schematic, an outage is retried with the reason kept, and the factory's CA
//! is refused unless it is given.

mod factory_standin;
mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use factory_standin::Factory;
use provider::Provider;
use provider::factory::client::Factory as Client;
use provider::factory::{self, Schematic};
use provider::lifecycle::{self, Settings};
use provider::model::{Allocation, ApplianceId, Machine};
use provider::store::StoreConfig;
use provider::tunnel::TunnelOptions;
use uplink::BootTarget;

/// A provider on `dir` whose schematics come from `f`, with the factory task running.
fn provider(dir: &std::path::Path, f: &Factory) -> (Arc<Provider>, tokio::task::JoinHandle<()>) {
    let mut config = StoreConfig::default();
    config.lifecycle.factory_url = f.pxe_url();
    config.lifecycle.join_args = factory::join_kernel_args(8080);
    config.lifecycle.agent_talos_version = Some("v1.10.0".into());
    let p = Provider::open(dir, config, TunnelOptions::default()).unwrap();
    let client = Client::new(&f.url(), Some(f.ca_pem.as_bytes())).unwrap();
    let task = tokio::spawn(factory::run(p.clone(), client));
    (p, task)
}

fn machine(n: u8, extensions: &[&str], kernel_args: &str) -> Machine {
    let mut m = Machine::new(ApplianceId(1), support::mac(n), Some(support::uuid(n)), 1);
    m.arch = Some(7);
    m.allocation = Some(Allocation {
        talos_version: "v1.10.0".into(),
        schematic: None,
        kernel_args: kernel_args.into(),
        extensions: extensions.iter().map(|e| e.to_string()).collect(),
    });
    m
}

/// The machine's install URL, once its schematic exists (10 s).
async fn install_url(m: &Machine, s: &Settings) -> String {
    for _ in 0..200 {
        if let Some(BootTarget::Install { url, kernel_args }) = lifecycle::install_target(m, s) {
            assert!(
                kernel_args.is_empty(),
                "kernel args travel in the schematic"
            );
            return url.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no install target: {:?}", s.schematics.problem());
}

#[tokio::test]
async fn schematics_once_per_content_and_installs_chain_them() {
    let f = Factory::start().await;
    let dir = support::state_dir("factory-once");
    let (p, task) = provider(&dir, &f);
    let s = &p.store.config().lifecycle;

    let a = machine(
        1,
        &["siderolabs/iscsi-tools"],
        "console=ttyS0 net.ifnames=0",
    );
    let url = install_url(&a, s).await;
    let id = url
        .strip_prefix(&format!("{}/", f.pxe_url()))
        .and_then(|r| r.strip_suffix("/v1.10.0/metal-amd64"))
        .unwrap_or_else(|| panic!("{url}"));
    let (args, exts) = f.seen.lock().unwrap().schematics[id].clone();
    assert_eq!(
        args,
        [
            "talos.config=http://${66:string}:8080/config?u=${uuid}",
            "console=ttyS0",
            "net.ifnames=0"
        ]
    );
    assert_eq!(exts, ["siderolabs/iscsi-tools"]);
    // What iPXE then chains: the factory's script with those arguments on its kernel line.
    let (status, script) = f.get(&url).await;
    assert_eq!(status, 200);
    assert!(
        script.contains("talos.config=http://${66:string}:8080/config?u=${uuid} console=ttyS0"),
        "{script}"
    );

    // The same content on another machine: no second creation; other content: one more.
    let b = machine(
        2,
        &["siderolabs/iscsi-tools"],
        "console=ttyS0  net.ifnames=0",
    );
    assert_eq!(install_url(&b, s).await, url);
    let c = machine(3, &["siderolabs/iscsi-tools", "siderolabs/amd-ucode"], "");
    let other = install_url(&c, s).await;
    assert_ne!(other, url);
    // The agent: the metal-agent extension and the join argument, for the agent's Talos.
    let agent = {
        let mut found = None;
        for _ in 0..200 {
            found = lifecycle::agent_url(s);
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        found.expect("agent URL").to_string()
    };
    assert!(agent.ends_with("/v1.10.0/metal-amd64"), "{agent}");
    let agent_id = agent.split('/').rev().nth(2).unwrap().to_string();
    let (args, exts) = f.seen.lock().unwrap().schematics[&agent_id].clone();
    assert_eq!(exts, ["siderolabs/metal-agent"]);
    assert_eq!(args, factory::join_kernel_args(8080));
    assert_eq!(
        p.store.config().appliance_config().agent_url.as_str(),
        agent
    );
    let posts = f.seen.lock().unwrap().posts;
    assert_eq!(posts, 3, "one per distinct content");
    assert!(f.seen.lock().unwrap().refused.is_empty());

    // A restart on the same store creates none again.
    task.abort();
    let _ = task.await;
    drop(p);
    let (p, task) = provider(&dir, &f);
    let s = &p.store.config().lifecycle;
    assert_eq!(lifecycle::install_target(&a, s).map(|_| ()), Some(()));
    assert_eq!(install_url(&c, s).await, other);
    assert!(lifecycle::agent_url(s).is_some());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(f.seen.lock().unwrap().posts, posts);
    task.abort();
}

#[tokio::test]
async fn an_outage_is_retried_and_its_reason_kept() {
    let f = Factory::start().await;
    f.fail_next.store(2, Ordering::SeqCst);
    let dir = support::state_dir("factory-outage");
    let (p, task) = provider(&dir, &f);
    let s = &p.store.config().lifecycle;
    let m = machine(1, &[], "console=ttyS0");
    assert!(lifecycle::install_target(&m, s).is_none());
    // Meanwhile the machine boots the agent.
    let mut problem = None;
    for _ in 0..100 {
        problem = s.schematics.problem();
        if problem.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let problem = problem.expect("the outage is reported");
    assert!(problem.contains("503"), "{problem}");
    // 1 s, then 2 s of backoff: the third try succeeds and the reason is gone.
    install_url(&m, s).await;
    assert_eq!(s.schematics.problem(), None);
    task.abort();
}

#[tokio::test]
async fn the_factory_ca_is_needed() {
    let f = Factory::start().await;
    let yaml = Schematic::new(vec!["console=ttyS0".into()], &[]).yaml();
    let untrusting = Client::new(&f.url(), None).unwrap();
    let e = untrusting.create(&yaml).await.unwrap_err();
    assert!(e.contains("TLS") && e.contains("certificate"), "{e}");
    let trusting = Client::new(&f.url(), Some(f.ca_pem.as_bytes())).unwrap();
    let id = trusting.create(&yaml).await.unwrap();
    assert_eq!(id.len(), 64);
    assert!(Client::new(&f.url(), Some(b"not a certificate")).is_err());
}

/// `provider serve` with the boot flags: a bad CA file or an oversized join config stops it
/// with the reason; good ones make it create the agent's schematic on the factory at start.
#[tokio::test]
async fn serve_takes_the_boot_flags() {
    let f = Factory::start().await;
    let dir = support::state_dir("factory-serve");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let serve = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(support::service::BIN);
        cmd.args(["serve", "--state-dir"])
            .arg(dir.join("state"))
            .args(["--api", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let big = file(
        "big.yaml",
        &"x".repeat(uplink::message::JOIN_CONFIG_MAX + 1),
    );
    let no_pem = file("empty.pem", "no certificate here\n");
    for (flags, why) in [
        (vec!["--join-config", big.as_str()], "more than the 736"),
        (
            vec!["--image-factory-ca", "/nonexistent.pem"],
            "--image-factory-ca",
        ),
        (
            vec!["--image-factory-ca", no_pem.as_str()],
            "no PEM certificate",
        ),
    ] {
        let out = serve(&flags).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(why),
            "{flags:?}: {err}"
        );
    }
    let join = file(
        "join.yaml",
        "apiVersion: v1alpha1\nkind: SideroLinkConfig\n",
    );
    let ca = file("ca.pem", &f.ca_pem);
    let url = f.url();
    let mut child = serve(&[
        "--join-config",
        &join,
        "--image-factory-url",
        &url,
        "--image-factory-ca",
        &ca,
        "--agent-talos-version",
        "v1.10.0",
        "--appliance-http-port",
        "8080",
    ])
    .spawn()
    .unwrap();
    let mut agent = None;
    for _ in 0..200 {
        agent = (f.seen.lock().unwrap().schematics.values())
            .find(|(_, exts)| exts.iter().any(|e| e == factory::METAL_AGENT))
            .cloned();
        if agent.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let (args, _) = agent.expect("serve created the agent schematic");
    assert_eq!(args, factory::join_kernel_args(8080));
}
