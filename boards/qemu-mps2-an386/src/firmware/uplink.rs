//! The provider uplink on this board (feature `uplink`): the heap rustls runs on, the
//! QEMU/TEST-ONLY entropy, and the task running `board_services::uplink` when the config
//! region holds an enrollment token.

use core::mem::MaybeUninit;

use board_services::heap::TrackedHeap;
use board_services::uplink::{Settings, run};
use defmt::Display2Format;
use embassy_executor::Spawner;
use embassy_net::Stack;
use static_cell::StaticCell;
use uplink::enroll::EnrollmentToken;
use uplink_tls::Random;

use super::host_random::HostRandom;

/// rustls' heap (handshake state, records, certificates); the rest of the firmware does not
/// allocate. The log reports its high-water mark.
#[global_allocator]
static HEAP: TrackedHeap = TrackedHeap::empty();
/// The high-water mark through enrollment and the tunnel's handshake was 13,356 bytes.
const HEAP_SIZE: usize = 32 * 1024;
/// QEMU/TEST-ONLY entropy source, see `host_random.rs`.
static RANDOM: Random<HostRandom> = Random(HostRandom);

/// Hands the heap its memory; before anything allocates.
pub fn init_heap() {
    static MEMORY: StaticCell<[MaybeUninit<u8>; HEAP_SIZE]> = StaticCell::new();
    HEAP.init(MEMORY.init([MaybeUninit::uninit(); HEAP_SIZE]));
}

#[embassy_executor::task]
async fn uplink_task(stack: Stack<'static>, settings: Settings) -> ! {
    run(stack, settings).await
}

/// Starts the uplink when the config holds a token that parses (logged either way).
pub fn start(spawner: Spawner, stack: Stack<'static>, token: Option<&str>, unix_at_boot: u64) {
    let Some(text) = token else {
        defmt::info!("uplink: no token in the config, no uplink");
        return;
    };
    let token = match EnrollmentToken::parse(text) {
        Ok(token) => token,
        Err(e) => {
            defmt::warn!("uplink: token unusable ({}), no uplink", Display2Format(&e));
            return;
        }
    };
    let settings = Settings {
        token,
        random: &RANDOM,
        unix_at_boot,
        heap: &HEAP,
        name: "qemu-mps2-an386",
    };
    spawner.spawn(defmt::unwrap!(uplink_task(stack, settings))); // ok: boot-time init, one task instance
}
