//! `provider serve` as shipped, end to end: a token from the CLI, enrollment over TLS with
//! it, the tunnel with the issued certificate carrying the real `uplink::Session`, the
//! machine in the CLI's listing; then revocation, the used token, and a restart on the same
//! state directory.
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use provider::tls::EnrollRefusal;
use support::service::{Service, ok};
use support::tls::{Enrolled, client_config, connect, enroll};
use support::{Appliance, mac, seen, state_dir, uuid};
use uplink::enroll::{ALPN_TUNNEL, EnrollmentToken};
use uplink::{Event, Ipv4, Lease};

const LEASE_IP: [u8; 4] = [10, 77, 0, 101];

/// Dials the tunnel with the enrolled identity and runs `appliance`'s session until it is
/// up with nothing left to send (`Ok` with the open stream), or the provider closes it.
async fn run_tunnel(
    addr: SocketAddr,
    apl: &Enrolled,
    appliance: &mut Appliance,
) -> Result<TlsStream<TcpStream>, String> {
    let identity = Some((apl.chain.clone(), apl.key.clone()));
    let mut io = connect(addr, client_config(&apl.ca, identity, ALPN_TUNNEL))
        .await
        .map_err(|e| e.to_string())?;
    appliance.connect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(appliance.session.is_up() && appliance.session.outbox().is_empty()) {
        assert!(Instant::now() < deadline, "the tunnel did not settle");
        appliance
            .step(&mut io, Duration::from_millis(50))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(io)
}

fn machines(api: &str) -> serde_json::Value {
    serde_json::from_str(&ok(api, &["machines", "--json"])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_enrolls_tunnels_revokes_and_restarts() {
    let dir = state_dir("e2e");
    let service = Service::start(&dir);
    let api = service.api.clone();

    let (png, svg) = (dir.join("token.png"), dir.join("token.svg"));
    let out = ok(
        &api,
        &[
            "token",
            "create",
            "--expires",
            "10m",
            "--png",
            png.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ],
    );
    let line = out.lines().find(|l| l.starts_with("rack1:")).expect(&out);
    let token = EnrollmentToken::parse(line).unwrap();
    assert_eq!(token.addr.as_str(), service.listen);
    assert_eq!(provider::hex::encode(&token.ca_sha256), service.ca);
    assert!(out.contains('▀') || out.contains('▄'), "terminal QR: {out}");
    assert!(png.exists() && svg.exists());

    let addr: SocketAddr = token.addr.parse().unwrap();
    let apl = enroll(addr, token.ca_sha256, &token.secret, false)
        .await
        .unwrap();
    let mut appliance = Appliance::new(&apl.id);
    appliance.report(seen(1));
    appliance.report(Event::Lease(Lease {
        mac: mac(1),
        ip: Ipv4(LEASE_IP),
        expires: 4_000_000_000,
    }));
    let mut live = run_tunnel(addr, &apl, &mut appliance).await.unwrap();

    let list = machines(&api);
    let m = &list[0];
    assert_eq!(m["key"], provider::model::fmt_uuid(uuid(1)), "{list}");
    assert_eq!(m["appliance"].to_string(), apl.id);
    assert_eq!(m["lease_ip"], serde_json::json!(LEASE_IP));
    let appliances: serde_json::Value =
        serde_json::from_str(&ok(&api, &["appliances", "--json"])).unwrap();
    assert_eq!(appliances[0]["name"], "rack 1");
    assert_eq!(appliances[0]["connected"], true);
    // The two events and the results of the commands the provider sent, each once.
    assert_eq!(appliances[0]["applied_events"], appliance.reported);

    // Revocation ends the live tunnel and refuses the next one.
    ok(&api, &["revoke", &apl.id]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while appliance
        .step(&mut live, Duration::from_millis(50))
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "the revoked tunnel stays open");
    }
    let refused = run_tunnel(addr, &apl, &mut appliance).await;
    assert!(
        refused.is_err() && !appliance.session.is_up(),
        "{refused:?}"
    );
    let reused = enroll(addr, token.ca_sha256, &token.secret, false).await;
    assert_eq!(reused.err(), Some(EnrollRefusal::TokenUsed));

    drop(service);
    let restarted = Service::start(&dir);
    assert_eq!(restarted.ca, provider::hex::encode(&token.ca_sha256));
    assert_eq!(machines(&restarted.api)[0]["key"], m["key"]);
    let _ = std::fs::remove_dir_all(dir);
}
