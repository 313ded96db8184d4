//! Benchmarks of the uplink against the built `provider serve`, run by `bench/uplink.sh`
//! (ignored by `cargo test`: they measure, they do not judge):
//! - `tunnels`: TUNNELS appliances enroll, then all hold a tunnel at once; the provider's
//!   resident memory before and after gives the memory per tunnel.
//! - `resync`: one appliance reports MACHINES machines; while its tunnel is down the operator
//!   changes every machine's boot target and the appliance queues a power state for each;
//!   after the reconnect, the time until both sides are in step again (every queued event
//!   acknowledged, every command executed).
//!
//! Each prints one `result key=value ...` line for the script.

mod support;

use std::time::{Duration, Instant};

use provider::client::Client;
use provider::hex;
use provider::model::{BootOverride, Change};
use support::service::Service;
use support::tls::{self, Enrolled};
use support::{Appliance, state_dir};
use tokio::io::{AsyncRead, AsyncWrite};
use uplink::enroll::ALPN_TUNNEL;
use uplink::{Event, Mac, MachineId, MachineSeen, Power, PowerState};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The provider process's resident set, KiB.
fn rss_kib(service: &Service) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", service.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

async fn enroll(service: &Service) -> Enrolled {
    let api = Client::new(&service.api).unwrap();
    let token = api.create_token(600).unwrap();
    let ca: [u8; 32] = hex::decode(&token.ca_sha256).unwrap().try_into().unwrap();
    let secret = hex::decode(&token.secret).unwrap();
    let addr = service.listen.parse().unwrap();
    tls::enroll(addr, ca, &secret, false)
        .await
        .unwrap_or_else(|e| panic!("enrollment refused: {e:?}"))
}

async fn tunnel(service: &Service, who: &Enrolled) -> impl AsyncRead + AsyncWrite + Unpin + use<> {
    let config = tls::client_config(
        &who.ca,
        Some((who.chain.clone(), who.key.clone())),
        ALPN_TUNNEL,
    );
    tls::connect(service.listen.parse().unwrap(), config)
        .await
        .unwrap()
}

/// Steps the appliance until `done` holds, at most `limit`.
async fn until(
    appliance: &mut Appliance,
    io: &mut (impl AsyncRead + AsyncWrite + Unpin),
    limit: Duration,
    done: impl Fn(&Appliance) -> bool,
) {
    let start = Instant::now();
    while !done(appliance) {
        assert!(start.elapsed() < limit, "not in step after {limit:?}");
        appliance
            .step(io, Duration::from_millis(20))
            .await
            .unwrap_or_else(|e| panic!("tunnel: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bench/uplink.sh"]
async fn tunnels() {
    let n = env_or("TUNNELS", 1000);
    let service = Service::start(&state_dir("load-tunnels"));
    let mut enrolled = Vec::with_capacity(n);
    for _ in 0..n {
        enrolled.push(enroll(&service).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(&service);
    let start = Instant::now();
    let mut open = Vec::with_capacity(n);
    for who in &enrolled {
        let mut io = tunnel(&service, who).await;
        let mut appliance = Appliance::new(&who.id);
        appliance.connect();
        until(&mut appliance, &mut io, Duration::from_secs(30), |a| {
            a.session.is_up()
        })
        .await;
        open.push((appliance, io));
    }
    let connect_ms = start.elapsed().as_millis();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(&service);
    println!(
        "result bench=tunnels tunnels={n} rss_before_kib={before} rss_after_kib={after} \
         per_tunnel_kib={:.1} connect_all_ms={connect_ms}",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    drop(open);
}

fn machine_mac(i: usize) -> Mac {
    let [_, _, _, _, _, _, hi, lo] = (i as u64).to_be_bytes();
    Mac([2, 0, 0, 0, hi, lo])
}

fn mac_text(mac: Mac) -> String {
    mac.0.map(|b| format!("{b:02x}")).join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bench/uplink.sh"]
async fn resync() {
    let m = env_or("MACHINES", 1000);
    let service = Service::start(&state_dir("load-resync"));
    let who = enroll(&service).await;
    let mut appliance = Appliance::new(&who.id);

    // The rack as the provider first learns it.
    let mut io = tunnel(&service, &who).await;
    appliance.connect();
    for i in 0..m {
        appliance.report(Event::MachineSeen(MachineSeen {
            mac: machine_mac(i),
            uuid: None,
            arch: Some(7),
            first_seen: 1,
            last_seen: 1,
        }));
        if appliance.session.outbox().len() > 256 {
            until(&mut appliance, &mut io, Duration::from_secs(60), |a| {
                a.session.outbox().len() < 64
            })
            .await;
        }
    }
    until(&mut appliance, &mut io, Duration::from_secs(120), |a| {
        a.session.outbox().is_empty() && a.executed.len() > m
    })
    .await;
    drop(io);
    appliance.session.disconnect();

    // While the tunnel is down: every machine gets a new boot target at the provider, and
    // the appliance queues a power state per machine (its outbox holds what fits).
    let api = Client::new(&service.api).unwrap();
    let url = "http://10.0.0.9/rescue.ipxe".to_string();
    for i in 0..m {
        let change = Change::Boot {
            target: Some(BootOverride::Url(url.clone())),
        };
        let _: serde_json::Value = api
            .post(
                &format!("/api/machines/{}", mac_text(machine_mac(i))),
                &change,
            )
            .unwrap();
    }
    let queued = m.min(support::OUTBOX - 16);
    for i in 0..queued {
        appliance.report(Event::PowerState(PowerState {
            machine: MachineId::Mac(machine_mac(i)),
            state: Power::Off,
            at: 2,
        }));
    }
    let executed_before = appliance.executed.len();

    let start = Instant::now();
    let mut io = tunnel(&service, &who).await;
    appliance.connect();
    until(&mut appliance, &mut io, Duration::from_secs(120), |a| {
        a.session.outbox().is_empty() && a.executed.len() >= executed_before + m
    })
    .await;
    let ms = start.elapsed().as_millis();
    let twice = appliance.executed.values().filter(|&&n| n > 1).count();
    assert_eq!(twice, 0, "a command ran twice");
    println!(
        "result bench=resync machines={m} commands={} events={queued} resync_ms={ms}",
        appliance.executed.len() - executed_before
    );
}
