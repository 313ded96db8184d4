//! Board bring-up: clocks (400 MHz from the HSI through PLL1, HSI48 for the RNG), the RNG
//! (smoltcp's seed: ephemeral ports, TCP sequence numbers), the Ethernet MAC in RMII with the
//! board's LAN8742A PHY (found on the MDIO bus by `GenericPhy`), embassy-net with the config's
//! static address, and `board-services`' DHCP (its leases in bank 2 of the internal flash),
//! TFTP and HTTP. Logs are defmt over RTT (`probe-rs run` decodes them). Pins as on the
//! NUCLEO-H743ZI(2) schematic (UM2407): REF_CLK PA1, MDIO PA2, MDC PC1, CRS_DV PA7, RXD0 PC4,
//! RXD1 PC5, TX_EN PG11, TXD0 PG13, TXD1 PB13.

use board_services::regions;
use board_services::store::LeaseFlash;
use defmt::Display2Format;
use defmt_rtt as _;
use embassy_executor::Spawner;
use embassy_net::{Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_stm32::eth::{self, Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::flash::{Blocking, Flash};
use embassy_stm32::peripherals::{ETH, ETH_SMA, RNG};
use embassy_stm32::rng::{self, Rng};
use embassy_stm32::{Config, bind_interrupts};
use static_cell::StaticCell;

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    RNG => rng::InterruptHandler<RNG>;
});

type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

/// The lease journal: two banks of one 128 KiB sector at the end of flash bank 2 (offsets
/// from the start of flash, as the driver takes them; `memory.x` keeps the firmware out).
const LEASES_BASE: u32 = 0x1C_0000;
const LEASE_BANK: u32 = 128 * 1024;
/// The board has no wall clock: the RTC loses its time without a backup battery and nothing
/// sets it yet (the uplink will). Lease times count from boot, so after a reboot stored
/// leases run on for up to the time the board had been up, never shorter.
const UNIX_AT_BOOT: u64 = 0;
/// A marker a client can fetch byte-exact, there with or without an asset region.
const BUILT_IN: &[(&str, &[u8])] = &[("hello.txt", b"hello from nucleo-h743zi\n")];

static PACKETS: StaticCell<PacketQueue<4, 4>> = StaticCell::new();
static RESOURCES: StaticCell<StackResources<{ board_services::SOCKETS }>> = StaticCell::new();

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Device>) -> ! {
    runner.run().await
}

/// 400 MHz core, 200 MHz AHB (the Ethernet MAC's bus), 100 MHz APBs, HSI48 for the RNG.
fn clocks() -> Config {
    use embassy_stm32::rcc::{
        AHBPrescaler, APBPrescaler, HSIPrescaler, Hsi48Config, Pll, PllDiv, PllMul, PllPreDiv,
        PllSource, Sysclk, VoltageScale,
    };
    let mut config = Config::default();
    config.rcc.hsi = Some(HSIPrescaler::DIV1);
    config.rcc.csi = true;
    config.rcc.hsi48 = Some(Hsi48Config {
        sync_from_usb: false,
    });
    config.rcc.pll1 = Some(Pll {
        source: PllSource::HSI,
        prediv: PllPreDiv::DIV4,
        mul: PllMul::MUL50,
        divp: Some(PllDiv::DIV2),
        divq: None,
        divr: None,
        fracn: None,
    });
    config.rcc.sys = Sysclk::PLL1_P;
    config.rcc.ahb_pre = AHBPrescaler::DIV2;
    config.rcc.apb1_pre = APBPrescaler::DIV2;
    config.rcc.apb2_pre = APBPrescaler::DIV2;
    config.rcc.apb3_pre = APBPrescaler::DIV2;
    config.rcc.apb4_pre = APBPrescaler::DIV2;
    config.rcc.voltage_scale = VoltageScale::Scale1;
    config
}

board_services::service_tasks!();

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_stm32::init(clocks());
    let mut seed = [0u8; 8];
    Rng::new(p.RNG, Irqs).fill_bytes(&mut seed);

    let board = regions::config();
    // Boot-time init failure: regions::config() only returns configs that passed this same check.
    let dhcp = match board.dhcp_config() {
        Ok(dhcp) => dhcp,
        Err(e) => defmt::panic!("dhcp config: {}", Display2Format(&e)), // ok: boot-time init, see above
    };

    let nic = Ethernet::new(
        PACKETS.init(PacketQueue::new()),
        p.ETH,
        Irqs,
        p.PA1,
        p.PA7,
        p.PC4,
        p.PC5,
        p.PG13,
        p.PB13,
        p.PG11,
        board.mac,
        p.ETH_SMA,
        p.PA2,
        p.PC1,
    );
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(board.ip, board.prefix),
        gateway: board.gateway,
        dns_servers: Default::default(),
    });
    let resources = RESOURCES.init(StackResources::new());
    let (stack, runner) = embassy_net::new(nic, config, resources, u64::from_le_bytes(seed));
    spawner.spawn(defmt::unwrap!(net_task(runner))); // ok: boot-time init, one task instance
    spawn_services(spawner, stack, board.ip, BUILT_IN);
    defmt::info!(
        "nucleo-h743zi up ip={}/{} mac={=[u8]:02x}",
        Display2Format(&board.ip),
        board.prefix,
        board.mac
    );
    let flash: Flash<'static, Blocking> = Flash::new_blocking(p.FLASH);
    let leases = LeaseFlash {
        flash,
        base: LEASES_BASE,
        bank_len: LEASE_BANK,
    };
    board_services::dhcp::serve(stack, dhcp, UNIX_AT_BOOT, Some(leases)).await
}

/// Logs the panic and resets: an appliance left alone on a rack should come back by itself.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    defmt::error!("panic: {}", Display2Format(info));
    cortex_m::peripheral::SCB::sys_reset()
}
