//! ISC dhclient against host-sim: lease, renewal, release, two clients, a reservation, and leases
//! that survive a restart of host-sim.

use std::time::Duration;

use e2e::dhclient::Dhclient;
use e2e::net::ping;
use e2e::{APPLIANCE_IP, HostSim, Rack, Workdir, require_root};

const POOL: &str = "10.77.0.100-10.77.0.149";
const BIND: Duration = Duration::from_secs(30);
const LOG: Duration = Duration::from_secs(5);

fn in_pool(ip: &str) -> bool {
    ip.strip_prefix("10.77.0.")
        .and_then(|h| h.parse::<u8>().ok())
        .is_some_and(|h| (100..=149).contains(&h))
}

/// Waits for host-sim's `REQUEST -> ACK ip=<ip>` for `mac` at log line >= `from`.
fn wait_ack(hs: &mut HostSim, from: usize, mac: &str, ip: &str) -> e2e::DhcpLine {
    hs.wait_dhcp_from(from, LOG, &format!("REQUEST {mac} -> ACK {ip}"), |d| {
        d.req == "REQUEST" && d.verdict == "ACK" && d.is_mac(mac) && d.ip() == Some(ip)
    })
}

#[test]
fn lease_renew_release() {
    if !require_root() {
        return;
    }
    let wd = Workdir::new("dhc-renew");
    let rack = Rack::new("dhc-renew");
    let mut hs = HostSim::start(
        &rack,
        &wd,
        "host-sim",
        &["--dhcp-pool", POOL, "--lease-time", "8"],
    );
    assert_eq!(hs.restored, 0, "fresh state dir: {}", hs.ready);
    let mac = "52:54:00:77:01:01";
    let ns = rack.host("c1", Some(mac), &[]);
    let mut c = Dhclient::new(&ns, &wd, "c1");
    c.start();

    let bound = c.wait_event(0, &["BOUND"], BIND);
    assert!(
        in_pool(&bound.ip),
        "address {} outside the pool {POOL}",
        bound.ip
    );
    let offer = hs.wait_dhcp(LOG, "DISCOVER -> OFFER", |d| {
        d.req == "DISCOVER" && d.verdict == "OFFER" && d.is_mac(mac)
    });
    assert_eq!(offer.ip(), Some(bound.ip.as_str()), "{}", offer.raw);
    assert_eq!(
        offer.get("kind"),
        Some("plain"),
        "dhclient is a plain client: {}",
        offer.raw
    );
    wait_ack(&mut hs, 0, mac, &bound.ip);
    assert!(ns.ipv4_addrs("eth0").contains(&bound.ip));
    // The lease works on the wire: the appliance answers ARP and ping from the new address.
    ping(&ns, APPLIANCE_IP, 5).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ping(&ns, "10.77.0.3", 1).is_err(),
        "ping check is not trivial: nobody is .3"
    );

    // Lease time 8 s: T1 = 4 s, dhclient renews (unicast REQUEST to the server) at 3..4 s.
    let mark = hs.log().mark();
    let renew = c.wait_event(0, &["RENEW"], Duration::from_secs(20));
    assert_eq!(renew.ip, bound.ip, "the renewal kept the address");
    wait_ack(&mut hs, mark, mac, &bound.ip);
    // And again: the lease keeps being extended (the second renewal comes 3..4 s later).
    let n = c.events().mark();
    c.wait_event(n, &["RENEW"], Duration::from_secs(20));

    let mark = hs.log().mark();
    c.release();
    let rel = hs.wait_dhcp_from(mark, LOG, "RELEASE", |d| {
        d.req == "RELEASE" && d.is_mac(mac)
    });
    if let Some(ip) = rel.ip() {
        assert_eq!(ip, bound.ip, "{}", rel.raw);
    }
    assert!(
        !ns.ipv4_addrs("eth0").contains(&bound.ip),
        "script removed the address"
    );
    hs.stop();
}

#[test]
fn two_clients_get_distinct_addresses() {
    if !require_root() {
        return;
    }
    let wd = Workdir::new("dhc-two");
    let rack = Rack::new("dhc-two");
    let mut hs = HostSim::start(&rack, &wd, "host-sim", &["--dhcp-pool", POOL]);
    let macs = ["52:54:00:77:02:01", "52:54:00:77:02:02"];
    let nss: Vec<_> = macs
        .iter()
        .enumerate()
        .map(|(i, m)| rack.host(&format!("c{i}"), Some(m), &[]))
        .collect();
    let mut cs: Vec<_> = nss
        .iter()
        .enumerate()
        .map(|(i, ns)| Dhclient::new(ns, &wd, &format!("c{i}")))
        .collect();
    for c in &mut cs {
        c.start();
    }
    let ips: Vec<String> = cs
        .iter_mut()
        .map(|c| c.wait_event(0, &["BOUND"], BIND).ip)
        .collect();
    assert_ne!(ips[0], ips[1], "two clients got the same address");
    for (mac, ip) in macs.iter().zip(&ips) {
        assert!(in_pool(ip), "{ip} outside {POOL}");
        wait_ack(&mut hs, 0, mac, ip);
    }
    for (ns, ip) in nss.iter().zip(&ips) {
        ping(ns, APPLIANCE_IP, 5).unwrap_or_else(|e| panic!("from {ip}: {e}"));
    }
    hs.stop();
}

#[test]
fn reservation_is_honoured() {
    if !require_root() {
        return;
    }
    let wd = Workdir::new("dhc-resv");
    let rack = Rack::new("dhc-resv");
    let reserved_mac = "52:54:00:77:03:42";
    let reserved_ip = "10.77.0.42"; // outside the dynamic pool
    let reservation = format!("{reserved_mac}={reserved_ip}");
    let mut hs = HostSim::start(
        &rack,
        &wd,
        "host-sim",
        &["--dhcp-pool", POOL, "--reserve", &reservation],
    );
    let other_mac = "52:54:00:77:03:01";
    let ns_r = rack.host("resv", Some(reserved_mac), &[]);
    let ns_o = rack.host("other", Some(other_mac), &[]);
    let mut other = Dhclient::new(&ns_o, &wd, "other");
    let mut resv = Dhclient::new(&ns_r, &wd, "resv");
    // The unreserved client asks first, so a pool that ignored the reservation would be noticed.
    other.start();
    let o = other.wait_event(0, &["BOUND"], BIND);
    resv.start();
    let r = resv.wait_event(0, &["BOUND"], BIND);
    assert_eq!(r.ip, reserved_ip, "the reserved MAC got another address");
    assert!(
        in_pool(&o.ip) && o.ip != reserved_ip,
        "unreserved client got {}",
        o.ip
    );
    wait_ack(&mut hs, 0, reserved_mac, reserved_ip);
    ping(&ns_r, APPLIANCE_IP, 5).unwrap_or_else(|e| panic!("{e}"));
    hs.stop();
}

#[test]
fn leases_survive_restart() {
    if !require_root() {
        return;
    }
    let wd = Workdir::new("dhc-restart");
    let rack = Rack::new("dhc-restart");
    // A lease long enough that dhclient still holds it when it comes back (INIT-REBOOT).
    let args = ["--dhcp-pool", POOL, "--lease-time", "600"];
    let mut hs = HostSim::start(&rack, &wd, "host-sim", &args);
    let mac_a = "52:54:00:77:04:01";
    let mac_b = "52:54:00:77:04:02";
    let ns_a = rack.host("a", Some(mac_a), &[]);
    let ns_b = rack.host("b", Some(mac_b), &[]);
    let mut a = Dhclient::new(&ns_a, &wd, "a");
    a.start();
    let first = a.wait_event(0, &["BOUND"], BIND).ip;
    wait_ack(&mut hs, 0, mac_a, &first);
    // Client A goes away without releasing; its lease stays in its lease file.
    a.stop();

    let saved = hs.stop();
    assert!(saved >= 1, "host-sim stopped with {saved} leases");
    let mark = hs.log().mark();
    drop(hs);
    let mut hs = HostSim::start(&rack, &wd, "host-sim", &args);
    assert!(
        hs.restored >= 1,
        "leases not restored from the state dir: {}",
        hs.ready
    );

    // A new client must not get A's address (it is still leased)...
    let mut b = Dhclient::new(&ns_b, &wd, "b");
    b.start();
    let second = b.wait_event(0, &["BOUND"], BIND).ip;
    assert!(in_pool(&second), "{second} outside {POOL}");
    assert_ne!(
        second, first,
        "a new client got the address leased to A before the restart"
    );
    // ... and A, coming back with its lease file (INIT-REBOOT), keeps it.
    let n = a.events().mark();
    a.start();
    let again = a.wait_event(n, &["REBOOT", "BOUND"], BIND);
    assert_eq!(again.ip, first, "A lost its address over the restart");
    wait_ack(&mut hs, mark, mac_a, &first);
    hs.stop();
}
