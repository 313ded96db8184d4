//! Kea's perfdhcp against host-sim. perfdhcp behaves as a relay agent (binds LOCAL_IP:67, sets
//! giaddr = LOCAL_IP), so host-sim must answer to giaddr:67.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::perfdhcp;
use e2e::{Netns, Rack, Workdir, require_root, unique_name};

fn host_in(ip: &str, net: &str, lo: u8, hi: u8) -> bool {
    ip.strip_prefix(net)
        .and_then(|h| h.parse::<u8>().ok())
        .is_some_and(|h| (lo..=hi).contains(&h))
}

/// 200 DORA exchanges at 50/s from 200 simulated clients on the appliance's own subnet.
#[test]
fn perfdhcp_200_exchanges_without_drops() {
    if !require_root() {
        return;
    }
    let wd = Workdir::new("perf-local");
    let rack = Rack::new("perf-local");
    let mut hs = e2e::HostSim::start(
        &rack,
        &wd,
        "host-sim",
        &[
            "--dhcp-pool",
            "10.77.0.10-10.77.0.250",
            "--lease-time",
            "600",
        ],
    );
    let ns = rack.host("perf", None, &["10.77.0.2/24"]);
    let args = [
        "-4",
        "-l",
        "eth0",
        "-r",
        "50",
        "-n",
        "200",
        "-R",
        "200",
        "-W",
        "2000000",
        "10.77.0.1",
    ];
    let report = perfdhcp::run(&ns, &args, Duration::from_secs(60));
    std::fs::write(wd.file("perfdhcp.txt"), &report.stdout).ok();
    report.assert_clean(200);

    let acks: Vec<_> = hs
        .dhcp_lines()
        .into_iter()
        .filter(|d| d.verdict == "ACK")
        .collect();
    assert!(acks.len() >= 200, "host-sim logged {} ACKs", acks.len());
    let mut by_mac = std::collections::BTreeMap::new();
    for d in &acks {
        assert_eq!(
            d.get("relay"),
            Some("10.77.0.2"),
            "relayed by perfdhcp: {}",
            d.raw
        );
        let ip = d
            .ip()
            .unwrap_or_else(|| panic!("ACK without ip: {}", d.raw));
        assert!(
            host_in(ip, "10.77.0.", 10, 250),
            "outside the pool: {}",
            d.raw
        );
        by_mac.insert(d.mac().unwrap_or_default().to_owned(), ip.to_owned());
    }
    let distinct: BTreeSet<_> = by_mac.values().collect();
    assert_eq!(
        distinct.len(),
        by_mac.len(),
        "two clients share an address: {by_mac:?}"
    );
    let leases = hs.stop();
    assert_eq!(leases, by_mac.len(), "leases held at stop vs clients acked");
}

/// perfdhcp on another subnet behind a router: host-sim picks the pool of the relay's subnet
/// (giaddr 10.78.0.2) and sends its replies back through its gateway.
///
/// ```text
/// perf ns: eth0 10.78.0.2/24, default via 10.78.0.1
///   router ns: eth1 10.78.0.1/24, eth0 10.77.0.254/24 (in the rack bridge), forwarding on
///     host-sim: 10.77.0.1/24, --gateway 10.77.0.254
/// ```
#[test]
fn perfdhcp_relayed_subnet_uses_relay_pool() {
    if !require_root() {
        return;
    }
    let wd = Workdir::new("perf-relay");
    let rack = Rack::new("perf-relay");
    let router = rack.host("rtr", None, &["10.77.0.254/24"]);
    let perf = Netns::new(&unique_name("perf-relay", "perf"));
    router.veth_to("eth1", &perf, "eth0", None);
    router.ip(&["addr", "add", "10.78.0.1/24", "dev", "eth1"]);
    router.must("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    perf.ip(&["addr", "add", "10.78.0.2/24", "dev", "eth0"]);
    perf.ip(&["route", "add", "default", "via", "10.78.0.1"]);

    let mut hs = e2e::HostSim::start(
        &rack,
        &wd,
        "host-sim",
        &[
            "--dhcp-pool",
            "10.77.0.100-10.77.0.149",
            "--gateway",
            "10.77.0.254",
            "--relay-pool",
            "10.78.0.0/24=10.78.0.10-10.78.0.200,10.78.0.1",
            "--lease-time",
            "600",
        ],
    );
    // 100 clients: the relay pool has 191 addresses.
    let args = [
        "-4",
        "-l",
        "eth0",
        "-r",
        "25",
        "-n",
        "100",
        "-R",
        "100",
        "-W",
        "2000000",
        "10.77.0.1",
    ];
    let report = perfdhcp::run(&perf, &args, Duration::from_secs(60));
    std::fs::write(wd.file("perfdhcp.txt"), &report.stdout).ok();
    report.assert_clean(100);

    let lines = hs.dhcp_lines();
    let acks: Vec<_> = lines.iter().filter(|d| d.verdict == "ACK").collect();
    assert!(acks.len() >= 100, "host-sim logged {} ACKs", acks.len());
    for d in lines
        .iter()
        .filter(|d| d.verdict == "OFFER" || d.verdict == "ACK")
    {
        assert_eq!(d.get("relay"), Some("10.78.0.2"), "{}", d.raw);
        let ip = d.ip().unwrap_or_else(|| panic!("no ip: {}", d.raw));
        assert!(
            host_in(ip, "10.78.0.", 10, 200),
            "not from the relay pool 10.78.0.10-200: {}",
            d.raw
        );
    }
    let macs: BTreeSet<_> = acks.iter().filter_map(|d| d.mac()).collect();
    let leases = hs.stop();
    assert_eq!(leases, macs.len(), "leases held at stop vs clients acked");
}
