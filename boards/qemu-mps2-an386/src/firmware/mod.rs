//! Board bring-up: SysTick time, the config (region or compiled-in), the boot files (asset
//! region and built-in), the LAN9118 under embassy-net with the config's static address,
//! and the appliance's services from `board-services` as tasks (DHCP in `main`, its leases
//! in the flash store; TFTP and the HTTP connections in their own). Logs are defmt frames
//! over semihosting.

mod host_flash;
#[cfg(feature = "uplink")]
mod host_random;
mod time;
#[cfg(feature = "uplink")]
mod uplink;

use board_services::regions;
use board_services::store::LeaseFlash;
use defmt::Display2Format;
use defmt_semihosting as _;
use embassy_executor::Spawner;
use embassy_net::{Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use flash_store::emulated::EmulatedNor;
use lan9118::Lan9118;
use static_cell::StaticCell;

use host_flash::HostFile;

/// The LAN9118's register block in the mps2-an386 memory map.
const LAN9118_BASE: usize = 0x4020_0000;
/// Test-only: QEMU has no RNG, so smoltcp's seed (ephemeral ports, TCP sequence numbers)
/// is fixed. A real board seeds from its RNG.
const SEED: u64 = 0x0a4d_0001_5eed_0001;
/// A marker the e2e test fetches byte-exact, there with or without an asset region.
const BUILT_IN: &[(&str, &[u8])] = &[("hello.txt", b"hello from qemu-mps2-an386\n")];

/// QEMU/TEST-ONLY flash geometry (a real board takes its part's): 4-byte program units,
/// 1 KiB pages, two banks of two pages. A bank holds 84 lease frames, more than the 64
/// leases a compaction writes.
type Flash = EmulatedNor<HostFile, 4, 1024>;

/// The uplink's TCP socket and the power task's UDP socket, when built with the uplink.
const UPLINK_SOCKETS: usize = if cfg!(feature = "uplink") { 2 } else { 0 };
/// The services' sockets and the uplink's.
static RESOURCES: StaticCell<StackResources<{ board_services::SOCKETS + UPLINK_SOCKETS }>> =
    StaticCell::new();

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Lan9118>) -> ! {
    runner.run().await
}

/// Lease times in Unix seconds, so stored leases mean the same after a reboot.
/// QEMU/TEST-ONLY: the board has no RTC, so the time at boot is the host's (semihosting
/// SYS_TIME), read once; a real board reads its RTC.
fn unix_at_boot() -> u64 {
    semihosting::sys::arm_compat::sys_time().map_or(0, |t| t as u64)
}

/// QEMU/TEST-ONLY: a flash region is a host file under NOR rules (`host_flash.rs`), two
/// banks of half the file each; `what` names it in the log when the file cannot be used.
fn host_flash(file: (&core::ffi::CStr, usize), what: &str) -> Option<LeaseFlash<Flash>> {
    let medium = HostFile::open(file)
        .map_err(|e| defmt::warn!("{}: no flash ({}), RAM only", what, e))
        .ok()?;
    Some(LeaseFlash {
        flash: Flash::new(medium),
        base: 0,
        bank_len: (file.1 / 2) as u32,
    })
}

board_services::service_tasks!();

/// DHCP, in a task of its own whose future is `serve`'s (see [`start`]).
#[embassy_executor::task]
fn dhcp_task(
    stack: embassy_net::Stack<'static>,
    config: appliance::dhcp::Config,
    unix_at_boot: u64,
    flash: Option<LeaseFlash<Flash>>,
) -> impl Future<Output = ()> {
    board_services::dhcp::serve(stack, config, unix_at_boot, flash)
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let (stack, board, unix) = start(spawner);
    // After `start` has returned: the uplink's future is built on the stack (19 KiB) when
    // spawned, so not on top of `start`'s frame.
    #[cfg(feature = "uplink")]
    uplink::start(spawner, stack, board.token.as_deref(), unix);
    #[cfg(not(feature = "uplink"))]
    let _ = (stack, board, unix);
}

/// Brings the board up and spawns the services, then `main` ends (after the uplink). Not
/// inlined, and DHCP not awaited in `main`: the config, the init and the DHCP future (built
/// on the stack, then moved) stay out of the executor's frames after boot (main's poll
/// frame was 30 KiB). Returns the stack, the config and the Unix time at boot.
#[inline(never)]
fn start(spawner: Spawner) -> (embassy_net::Stack<'static>, board_config::BoardConfig, u64) {
    let core = defmt::unwrap!(cortex_m::Peripherals::take(), "core peripherals"); // ok: boot-time init, taken once
    time::start(core.SYST);
    #[cfg(feature = "uplink")]
    uplink::init_heap();

    let board = regions::config();
    // Boot-time init failure: regions::config() only returns configs that passed this same check.
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
    spawn_services(spawner, stack, board.ip, BUILT_IN);
    defmt::info!(
        "qemu-mps2-an386 up ip={}/{} mac={=[u8]:02x}",
        Display2Format(&board.ip),
        board.prefix,
        board.mac
    );
    let unix = unix_at_boot();
    let leases = host_flash(host_flash::LEASES, "store");
    spawner.spawn(defmt::unwrap!(dhcp_task(stack, dhcp, unix, leases))); // ok: boot-time init, one task instance
    (stack, board, unix)
}

/// Logs the panic and ends the QEMU run with a failure status.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    defmt::error!("panic: {}", Display2Format(info));
    semihosting::process::exit(101)
}
