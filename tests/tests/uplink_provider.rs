//! host-sim's uplink against the real provider: enrollment by token over the appliance's own
//! IP stack (smoltcp on the TAP), the mTLS tunnel, machines reported from DHCP, a boot target
//! set with the provider's CLI reaching `/boot.ipxe`, reconnection after a provider restart,
//! and a host-sim restart that reconnects with its stored identity instead of enrolling again.

use std::time::Duration;

use e2e::dhclient::Dhclient;
use e2e::provider::{Provider, enrolled_id};
use e2e::wait::poll_until;
use e2e::{APPLIANCE_IP, HostSim, Netns, Rack, Workdir, require_root, require_tool};

const POOL: &str = "10.77.0.100-10.77.0.149";
const BIND: Duration = Duration::from_secs(30);
/// Enrollment, a tunnel (re)connect after a backoff of up to a few seconds, a command.
const UPLINK: Duration = Duration::from_secs(30);

/// Waits for a host-sim line at index >= `from` that starts with `prefix`.
fn wait_line(hs: &mut HostSim, from: usize, prefix: &str) -> String {
    let lf = hs.log().clone();
    lf.wait_for_from(from, UPLINK, |l| l.starts_with(prefix), || hs.check_alive())
        .map(|(_, l)| l)
        .unwrap_or_else(|e| panic!("host-sim never logged `{prefix}`: {e}\n{}", lf.tail(30)))
}

/// A dhclient with `mac` in a namespace of its own, bound (dropped before its namespace).
fn lease(rack: &Rack, wd: &Workdir, role: &str, mac: &str) -> (Dhclient, Netns) {
    let ns = rack.host(role, Some(mac), &[]);
    let mut c = Dhclient::new(&ns, wd, role);
    c.start();
    c.wait_event(0, &["BOUND"], BIND);
    (c, ns)
}

fn wait_machine(provider: &Provider, appliance: &str, mac: &str) {
    poll_until(&format!("{mac} in provider machines"), UPLINK, || {
        Ok(provider.has_machine(appliance, mac).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", provider.cli(&["machines", "--json"])));
}

#[test]
fn enroll_report_steer_and_reconnect() {
    if !require_root() {
        return;
    }
    require_tool("curl", "curl");
    let wd = Workdir::new("uplink");
    let rack = Rack::new("uplink");
    let mut provider = Provider::start(&rack, &wd);
    let token = provider.token();

    let mut hs = HostSim::start(
        &rack,
        &wd,
        "host-sim",
        &["--dhcp-pool", POOL, "--enroll-token", &token],
    );
    let enrolled = wait_line(&mut hs, 0, "uplink enrolled appliance=");
    let appliance = enrolled_id(&enrolled);
    wait_line(&mut hs, 0, "uplink connected");
    let log = std::fs::read_to_string(hs.log_path()).unwrap_or_default();
    assert!(
        !log.contains(token.trim_start_matches("rack1:")),
        "the token's text is in the log"
    );

    // A machine leases an address: the provider lists it under this appliance.
    let mac1 = "52:54:00:77:02:01";
    let (_c1, ns1) = lease(&rack, &wd, "c1", mac1);
    wait_machine(&provider, &appliance, mac1);

    // The provider steers it: its iPXE script now chains the URL.
    let url = "http://10.77.0.3/custom.ipxe";
    let mark = hs.log().mark();
    provider.cli(&["boot", mac1, url]);
    let done = wait_line(&mut hs, mark, "uplink command");
    assert!(
        done.contains("SetBootTarget") && done.ends_with("Done"),
        "{done}"
    );
    let script_url = format!("http://{APPLIANCE_IP}/boot.ipxe?mac={mac1}");
    let script = ns1
        .run(
            "curl",
            &["-fsS", "--max-time", "5", &script_url],
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("curl: {e}"));
    assert!(script.success(), "curl {script_url}: {}", script.stderr);
    assert!(
        script.stdout.contains(&format!("chain {url}")),
        "script for {mac1}:\n{}",
        script.stdout
    );

    // The provider dies and comes back: host-sim reconnects by itself.
    let mark = hs.log().mark();
    provider.kill();
    let lost = wait_line(&mut hs, mark, "uplink lost:");
    eprintln!("{lost}");
    provider.restart();
    wait_line(&mut hs, mark, "uplink connected");
    let mac2 = "52:54:00:77:02:02";
    let _c2 = lease(&rack, &wd, "c2", mac2);
    wait_machine(&provider, &appliance, mac2);

    // host-sim restarts on its state dir: no second enrollment (the token is spent anyway).
    hs.stop();
    let mark = hs.log().mark();
    let mut hs = HostSim::start(
        &rack,
        &wd,
        "host-sim",
        &["--dhcp-pool", POOL, "--enroll-token", &token],
    );
    let again = wait_line(&mut hs, mark, "uplink enrolled already");
    assert_eq!(enrolled_id(&again), appliance, "{again}");
    wait_line(&mut hs, mark, "uplink connected");
    let lines = hs.log().lines();
    assert!(
        !lines[mark..]
            .iter()
            .any(|l| l.starts_with("uplink enrolled appliance=") || l.contains("refused")),
        "enrolled again:\n{}",
        lines[mark..].join("\n")
    );
    assert!(provider.has_machine(&appliance, mac2));
}
