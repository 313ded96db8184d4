//! The join config's URL as a real iPXE expands it. Every Image Factory boot carries
//! `talos.config=http://${66:string}/config?u=${uuid}` (provider `factory::join_kernel_args`)
//! and iPXE fills the settings in when it runs the factory script's `kernel` line. Here a
//! QEMU VM (SeaBIOS + iPXE ROM) chains a script shaped like the factory's, from host-sim, that
//! fetches that URL: host-sim must see `GET /config?u=<the VM's SMBIOS UUID>`, in full-DHCP
//! mode and as a proxyDHCP server beside dnsmasq (where option 66 must still be the
//! appliance's, not the site's server: `${next-server}` failed that test, dnsmasq sets it).

use std::sync::Mutex;
use std::time::Duration;

use e2e::dnsmasq::Dnsmasq;
use e2e::qemu::{Firmware, Vm};
use e2e::{APPLIANCE_IP, HostSim, Rack, Workdir, require_root};

static QEMU: Mutex<()> = Mutex::new(());

/// Power-on to the join config request, under TCG.
const VM_TIMEOUT: Duration = Duration::from_secs(240);
/// The join argument's URL, as the provider writes it for port 80.
const JOIN_URL: &str = "http://${66:string}/config?u=${uuid}";

fn fetch_join_url(test: &str, proxy: bool, mac: &str, uuid: &str) {
    if !require_root() {
        return;
    }
    let _serial = QEMU.lock().unwrap_or_else(|p| p.into_inner());
    let wd = Workdir::new(test);
    let rack = Rack::new(test);
    // The factory's script runs `kernel <image> ... talos.config=<JOIN_URL>`; `imgfetch`
    // expands the same settings and fetches the URL, so the appliance sees what Talos would.
    let script = format!("#!ipxe\nimgfetch {JOIN_URL} ||\nexit\n");
    std::fs::write(wd.dir("boot").join("factory.ipxe"), script).unwrap();
    let target = format!("{mac}=script:http://{APPLIANCE_IP}/factory.ipxe");
    let _site;
    let mut hs = if proxy {
        let ns = rack.host("dnsmasq", None, &["10.77.0.2/24"]);
        let range = "dhcp-range=10.77.0.150,10.77.0.199,255.255.255.0,10m";
        _site = Some((Dnsmasq::start(&ns, &wd, "dnsmasq", &[range]), ns));
        HostSim::start(
            &rack,
            &wd,
            "host-sim",
            &["--proxy-dhcp", "--machine-boot", &target],
        )
    } else {
        _site = None;
        let pool = "10.77.0.100-10.77.0.149";
        HostSim::start(
            &rack,
            &wd,
            "host-sim",
            &["--dhcp-pool", pool, "--machine-boot", &target],
        )
    };
    let mut vm = Vm::start_with(&rack, &wd, "vm", "vm0", Firmware::BiosIpxe, mac, uuid, &[]);
    let want = format!("http GET /config?u={uuid} ");
    let lf = hs.log().clone();
    let found = lf.wait_for_from(
        0,
        VM_TIMEOUT,
        |l| {
            l.to_ascii_lowercase()
                .starts_with(&want.to_ascii_lowercase())
        },
        || hs.check_alive(),
    );
    vm.child.kill();
    let (_, line) = found.unwrap_or_else(|e| panic!("{test}: no {want:?}: {e}\n{}", lf.tail(40)));
    eprintln!("{test}: {line}");
    let lines = lf.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("http GET /factory.ipxe ")),
        "the script was not fetched from the appliance"
    );
    hs.stop();
}

#[test]
fn full_dhcp_option_66_is_the_appliance() {
    fetch_join_url(
        "joinurl-full",
        false,
        "52:54:00:77:05:01",
        "6a1f4c2e-3b5d-4e7f-8a9b-0c1d2e3f4a01",
    );
}

#[test]
fn proxy_dhcp_option_66_is_the_appliance() {
    fetch_join_url(
        "joinurl-proxy",
        true,
        "52:54:00:77:05:02",
        "6a1f4c2e-3b5d-4e7f-8a9b-0c1d2e3f4a02",
    );
}
