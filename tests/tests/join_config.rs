//! The join config end to end: `provider serve --join-config FILE` pushes it down the uplink
//! to `host-sim serve` on a TAP, and curl (a real HTTP client, in a namespace on the rack
//! segment) fetches it at `/config?u=UUID` as Talos would; a request without a UUID is 400.

use std::time::Duration;

use e2e::curl;
use e2e::provider::{PROVIDER_IP, Provider};
use e2e::{APPLIANCE_IP, HostSim, Rack, Workdir, require_root, require_tool};

const UPLINK: Duration = Duration::from_secs(30);
/// Omni's three join documents with a signed join token, as an admin downloads them.
const JOIN_CONFIG: &str = include_str!("../../appliance/uplink/examples/join-config.yaml");

#[test]
fn curl_fetches_the_join_config_the_provider_pushed() {
    if !require_root() {
        return;
    }
    require_tool("curl", "curl");
    let wd = Workdir::new("joincfg");
    let rack = Rack::new("joincfg");
    let file = wd.file("join-config.yaml");
    std::fs::write(&file, JOIN_CONFIG).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let provider = Provider::start_with(&rack, &wd, PROVIDER_IP, &["--join-config", &file]);
    let token = provider.token();
    let mut hs = HostSim::start(
        &rack,
        &wd,
        "host-sim",
        &[
            "--dhcp-pool",
            "10.77.0.100-10.77.0.149",
            "--enroll-token",
            &token,
        ],
    );
    let lf = hs.log().clone();
    lf.wait_for_from(
        0,
        UPLINK,
        |l| l.starts_with("uplink command") && l.contains("ConfigUpdate") && l.ends_with("Done"),
        || hs.check_alive(),
    )
    .unwrap_or_else(|e| panic!("no ConfigUpdate reached host-sim: {e}\n{}", lf.tail(30)));

    let client = rack.host("talos", None, &["10.77.0.60/24"]);
    curl::check_join_config(&client, APPLIANCE_IP, JOIN_CONFIG);
    let log = std::fs::read_to_string(hs.log_path()).unwrap_or_default();
    assert!(
        log.contains(&format!("GET /config?u={}", curl::UUID)),
        "{log}"
    );
}
