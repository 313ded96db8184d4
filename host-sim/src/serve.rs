//! `host-sim serve`: the appliance on a TAP device, through smoltcp (its own IP stack), in
//! real time until SIGINT or SIGTERM.

use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use appliance::dhcp::{Config, Mode};
use smoltcp::phy;
use smoltcp::time::Instant;
use uplink::Capabilities;
use uplink::enroll::EnrollmentToken;

use crate::assets_dir::DirStore;
use crate::runtime::{Runtime, Settings, UplinkSettings};
use crate::tap;

/// `token` enrolls the appliance with the provider unless the state dir holds an identity.
pub fn run(
    interface: &str,
    settings: Settings,
    config: Config,
    store: DirStore,
    token: Option<EnrollmentToken>,
) -> io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let mut device = tap::Tap::open(interface, settings.mac)?;
    let (ip, mac) = (settings.ip, settings.mac);
    let fd = device.as_raw_fd();
    let mode = if config.mode == Mode::Full {
        "full"
    } else {
        "proxy"
    };
    let uplink = UplinkSettings {
        token,
        capabilities: capabilities(&config),
        state_dir: settings.state_dir.clone(),
        ip: ip.addr,
        http_port: settings.http_port,
        script_path: settings.script.path,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let mut runtime = Runtime::new(settings, config, store, &mut device, Instant::now())?;
    runtime.open_uplink(uplink, &mut out)?;
    writeln!(
        out,
        "ready interface={interface} ip={ip} mac={mac} mode={mode} leases={}",
        runtime.dhcp().leases().len()
    )?;
    out.flush()?;
    while !stop.load(Ordering::Relaxed) {
        let wait = runtime.poll(Instant::now(), &mut device, &mut out)?;
        out.flush()?;
        match phy::wait(fd, Some(wait.into())) {
            // A stop signal interrupts the wait; the loop condition sees it.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => other?,
        }
    }
    runtime.shutdown(&mut out)?;
    out.flush()
}

/// What this appliance serves, for its hello (BMCs over IPMI only: no Redfish in `serve` yet).
pub fn capabilities(config: &Config) -> Capabilities {
    let dhcp = match config.mode {
        Mode::Full => Capabilities::DHCP_SERVER,
        Mode::Proxy => Capabilities::PROXY_DHCP,
    };
    Capabilities(dhcp | Capabilities::TFTP | Capabilities::HTTP_BOOT | Capabilities::IPMI)
}
