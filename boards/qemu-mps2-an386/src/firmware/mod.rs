//! Board bring-up: SysTick time, the config (region or compiled-in), the LAN9118 under
//! embassy-net with the config's static address, and the appliance's services as tasks
//! (DHCP in `main`, its leases in the flash store; TFTP in its own). Logs are defmt frames
//! over semihosting.

mod config;
mod dhcp;
mod host_flash;
mod store;
mod tftp;
mod time;

use defmt::Display2Format;
use defmt_semihosting as _;
use embassy_executor::Spawner;
use embassy_net::{Ipv4Cidr, Runner, Stack, StackResources, StaticConfigV4};
use lan9118::Lan9118;
use static_cell::StaticCell;

/// The LAN9118's register block in the mps2-an386 memory map.
const LAN9118_BASE: usize = 0x4020_0000;
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
    let core = defmt::unwrap!(cortex_m::Peripherals::take(), "core peripherals"); // ok: boot-time init, taken once
    time::start(core.SYST);

    let board = config::load();
    // Boot-time init failure: load() only returns configs that passed this same check.
    let dhcp = match board.dhcp_config() {
        Ok(dhcp) => dhcp,
        Err(e) => defmt::panic!("dhcp config: {}", Display2Format(&e)), // ok: boot-time init, see above
    };

    // SAFETY: LAN9118_BASE is the NIC's register block on this board, and this is the
    // only driver instance (main runs once). QEMU's `-nic ...,mac=` should match the MAC.
    let nic = match unsafe { Lan9118::new(LAN9118_BASE, board.mac) } {
        Ok(nic) => nic,
        Err(e) => defmt::panic!("lan9118: {}", e), // ok: boot-time init, the NIC is on the board
    };
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(board.ip, board.prefix),
        gateway: board.gateway,
        dns_servers: Default::default(),
    });
    let resources = RESOURCES.init(StackResources::new());
    let (stack, runner) = embassy_net::new(nic, config, resources, SEED);
    spawner.spawn(defmt::unwrap!(net_task(runner))); // ok: boot-time init, one task instance
    spawner.spawn(defmt::unwrap!(tftp_task(stack))); // ok: boot-time init, one task instance
    defmt::info!(
        "qemu-mps2-an386 up ip={}/{} mac={=[u8]:02x}",
        Display2Format(&board.ip),
        board.prefix,
        board.mac
    );
    dhcp::serve(stack, dhcp).await
}

/// Logs the panic and ends the QEMU run with a failure status.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    defmt::error!("panic: {}", Display2Format(info));
    semihosting::process::exit(101)
}
