//! Steps of the tests in which the provider powers a machine through an appliance (host-sim
//! or the QEMU board) and an ipmi_sim BMC: the provider learns of the machine, gets its BMC,
//! and lists the power the appliance observed.

use std::time::Duration;

use crate::Workdir;
use crate::dhclient::Dhclient;
use crate::ipmi_sim::{PASSWORD, USER};
use crate::net::Rack;
use crate::provider::Provider;
use crate::wait::poll_until;

/// The provider learns of `mac` from a lease taken with it by a host `seen` (then let go, so
/// a VM can be the only one with it).
pub fn make_known(rack: &Rack, wd: &Workdir, provider: &Provider, appliance: &str, mac: &str) {
    let ns = rack.host("seen", Some(mac), &[]);
    let mut c = Dhclient::new(&ns, wd, "seen");
    c.start();
    c.wait_event(0, &["BOUND"], Duration::from_secs(30));
    poll_until(
        "the machine in the provider",
        Duration::from_secs(60),
        || Ok(provider.has_machine(appliance, mac).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Gives `mac` the ipmi_sim BMC at `ip` (its administrator) through the provider's CLI.
pub fn set_bmc(provider: &Provider, mac: &str, ip: &str) {
    let args = [
        "bmc",
        mac,
        "--ipmi",
        ip,
        "--user",
        USER,
        "--password",
        PASSWORD,
    ];
    provider.cli(&args);
}

/// Waits up to `timeout` until the provider lists `mac` with this observed power (from the
/// appliance's `PowerState` events).
pub fn wait_observed(provider: &Provider, mac: &str, power: &str, timeout: Duration) {
    let want = format!("\"observed_power\":\"{power}\"");
    poll_until(&format!("{mac} observed {power}"), timeout, || {
        Ok(provider.machine_json(mac).filter(|m| m.contains(&want)))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", provider.cli(&["machines", "--json"])));
}
