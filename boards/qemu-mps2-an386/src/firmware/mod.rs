//! Board bring-up: SysTick time, the LAN9118 under embassy-net with a static address,
//! and the appliance's services as tasks (DHCP in `main`, TFTP in its own). Logs are defmt frames over semihosting.

mod dhcp;
mod tftp;
mod time;

use core::net::Ipv4Addr;

use appliance::net::Ipv4Net;
use defmt::Display2Format;
use defmt_semihosting as _;
use embassy_executor::Spawner;
use embassy_net::{Ipv4Cidr, Runner, Stack, StackResources, StaticConfigV4};
use lan9118::Lan9118;
use static_cell::StaticCell;

/// The LAN9118's register block in the mps2-an386 memory map.
const LAN9118_BASE: usize = 0x4020_0000;
/// A locally administered address; QEMU's `-nic ...,mac=` should match it.
const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x77, 0x00, 0x01];
/// The board's address. Fixed for now; the config region (loaded with `-device loader`
/// in QEMU) is later work.
const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PREFIX: u8 = 24;
/// Test-only: QEMU has no RNG, so smoltcp's seed (ephemeral ports, TCP sequence numbers)
/// is fixed. A real board seeds from its RNG.
const SEED: u64 = 0x0a4d_0001_5eed_0001;
/// embassy-net sockets: DHCP's, TFTP's listener and one per transfer.
const SOCKETS: usize = 2 + tftp::TRANSFERS;

static RESOURCES: StaticCell<StackResources<SOCKETS>> = StaticCell::new();

#[embassy_executor::task]
async fn tftp_task(stack: Stack<'static>) -> ! {
    tftp::serve(stack).await
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Lan9118>) -> ! {
    runner.run().await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let core = defmt::unwrap!(cortex_m::Peripherals::take(), "core peripherals");
    time::start(core.SYST);

    // SAFETY: LAN9118_BASE is the NIC's register block on this board, and this is the
    // only driver instance (main runs once).
    let nic = match unsafe { Lan9118::new(LAN9118_BASE, MAC) } {
        Ok(nic) => nic,
        Err(e) => defmt::panic!("lan9118: {}", e),
    };
    let net = Ipv4Net {
        addr: ADDRESS,
        prefix: PREFIX,
    };
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(ADDRESS, PREFIX),
        gateway: None,
        dns_servers: Default::default(),
    });
    let resources = RESOURCES.init(StackResources::new());
    let (stack, runner) = embassy_net::new(nic, config, resources, SEED);
    spawner.spawn(defmt::unwrap!(net_task(runner)));
    spawner.spawn(defmt::unwrap!(tftp_task(stack)));
    defmt::info!(
        "qemu-mps2-an386 up ip={} mac={=[u8]:02x}",
        Display2Format(&net),
        MAC
    );
    dhcp::serve(stack, net).await
}

/// Logs the panic and ends the QEMU run with a failure status.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    defmt::error!("panic: {}", Display2Format(info));
    semihosting::process::exit(101)
}
