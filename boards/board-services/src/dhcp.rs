//! The appliance's DHCP server on UDP port 67 of the embassy-net stack, its leases
//! restored from and written to the store (`store.rs`).
//!
//! A client without an address that did not ask for a broadcast (`Destination::Link`)
//! gets its reply broadcast to 255.255.255.255:68: host-sim addresses that frame to the
//! client's MAC itself, which embassy-net offers no way to do, and RFC 2131 section 4.1
//! allows the broadcast ("If unicasting is not possible, the message MAY be sent as an IP
//! broadcast using an IP broadcast address ... and the link-layer broadcast address").

use core::cell::RefCell;
use core::net::{Ipv4Addr, SocketAddrV4};

use appliance::dhcp::wire::{CLIENT_PORT, SERVER_PORT};
use appliance::dhcp::{Config, Datagram, Destination, LeaseTable, Server, Slot};
use appliance::inventory::Inventory;
use defmt::Display2Format;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{IpAddress, IpEndpoint, Stack};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::Instant;
use embedded_storage::nor_flash::NorFlash;
use static_cell::StaticCell;

use crate::store::{self, LeaseFlash};

/// Leases the board keeps (the table takes two slots per lease).
pub const LEASES: usize = 64;
/// Machines the inventory remembers.
pub const MACHINES: usize = 32;
/// The machine table: DHCP's boot decisions read it, the provider's boot targets
/// (`power.rs`) write it.
pub static INVENTORY: Mutex<CriticalSectionRawMutex, RefCell<Inventory<MACHINES>>> =
    Mutex::new(RefCell::new(Inventory::new()));
static SLOTS: StaticCell<[Slot; 2 * LEASES]> = StaticCell::new();

/// Serves DHCP on `stack` for ever with `config` (from the board's config, validated), the
/// leases in `flash` (RAM only when `None`). Lease times are Unix seconds, `unix_at_boot`
/// plus the time since boot, so stored leases mean the same after a reboot. It never returns
/// (`()` so that a board's task can be this future itself, not one awaiting it: that moved
/// the whole unresumed future through the stack at the first poll).
pub async fn serve<F>(
    stack: Stack<'static>,
    config: Config,
    unix_at_boot: u64,
    flash: Option<LeaseFlash<F>>,
) where
    F: NorFlash,
    F::Error: defmt::Format,
{
    let slots = SLOTS.init([Slot::EMPTY; 2 * LEASES]);
    let mut table = LeaseTable::new(slots);
    let mut log = store::open(flash, &mut table);
    let mut server = Server::new(config, table);
    let now_secs = || unix_at_boot + Instant::now().as_secs();

    let mut rx_meta = [PacketMetadata::EMPTY; 8];
    let mut rx_buf = [0u8; 4096];
    let mut tx_meta = [PacketMetadata::EMPTY; 4];
    let mut tx_buf = [0u8; 2048];
    let mut socket = UdpSocket::new(stack, &mut rx_meta, &mut rx_buf, &mut tx_meta, &mut tx_buf);
    defmt::unwrap!(socket.bind(SERVER_PORT), "dhcp: bind port 67"); // ok: boot-time init, the port is free
    defmt::info!("dhcp listening port={}", SERVER_PORT);

    let mut reply = [0u8; 1500];
    loop {
        let outcome = socket
            .recv_from_with(|payload, meta| {
                let IpAddress::Ipv4(ip) = meta.endpoint.addr;
                let dg = Datagram {
                    src: SocketAddrV4::new(ip, meta.endpoint.port),
                    port: SERVER_PORT,
                    payload,
                };
                let now = now_secs();
                INVENTORY.lock(|i| server.handle(now, &dg, &mut i.borrow_mut(), &mut reply))
            })
            .await;
        // Stored before the reply goes out: a client never holds a lease the board forgets.
        if let (Some(lease), Some(log)) = (&outcome.change, log.as_mut()) {
            store::record(log, lease, server.leases());
        }
        // For the uplink (when the board runs one); a full queue drops the report.
        #[cfg(feature = "uplink")]
        observe(&outcome);
        let broadcast = IpEndpoint::new(Ipv4Addr::BROADCAST.into(), CLIENT_PORT);
        let (reply_to, via) = match outcome.reply {
            Some((Destination::Broadcast, len)) => (Some((broadcast, len)), ""),
            Some((Destination::Link { .. }, len)) => (Some((broadcast, len)), " via=broadcast"),
            Some((Destination::Unicast(addr), len)) => {
                let to = IpEndpoint::new((*addr.ip()).into(), addr.port());
                (Some((to, len)), "")
            }
            None => (None, ""),
        };
        defmt::info!("{}{}", Display2Format(&outcome.decision), via);
        let Some((endpoint, len)) = reply_to else {
            continue;
        };
        if let Err(e) = socket.send_to(&reply[..len], endpoint).await {
            defmt::warn!("dhcp send to={}: {}", endpoint, e);
        }
    }
}

/// Tells the uplink about the request and the lease change (a full queue drops them).
#[cfg(feature = "uplink")]
fn observe(outcome: &appliance::dhcp::Outcome) {
    use crate::uplink::{OBSERVED, Observation};
    let d = &outcome.decision;
    if d.received.is_ok() {
        let (mac, uuid, arch) = (d.mac, d.uuid, d.arch);
        let _ = OBSERVED.try_send(Observation::Request { mac, uuid, arch });
    }
    if let Some(lease) = outcome.change {
        let _ = OBSERVED.try_send(Observation::Lease(lease));
    }
}
