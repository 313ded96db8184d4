//! The provider uplink on this board (feature `uplink`): the heap rustls runs on, the
//! QEMU/TEST-ONLY entropy, and the tasks running `board_services::uplink` and the power
//! port it hands commands to (`board_services::power`) when the config region holds an
//! enrollment token.

use alloc::vec::Vec;
use core::mem::MaybeUninit;

use board_services::blob::{BlobJournal, BlobStore};
use board_services::heap::TrackedHeap;
use board_services::uplink::{IdentityStore, Settings, run};
use defmt::Display2Format;
use embassy_executor::Spawner;
use embassy_net::Stack;
use static_cell::StaticCell;
use uplink::enroll::EnrollmentToken;
use uplink_tls::Random;

use semihosting::fs::{self, File};
use semihosting::io::Read;

use super::host_random::HostRandom;
use super::{Flash, host_flash};

/// QEMU/TEST-ONLY: the identity is a host file beside the lease flash (semihosting); a
/// real board keeps it in a flash region of its own.
const IDENTITY: &core::ffi::CStr = c"qemu-uplink-id.bin";
const IDENTITY_TMP: &core::ffi::CStr = c"qemu-uplink-id.tmp";

/// rustls' heap (handshake state, records, certificates); the rest of the firmware does not
/// allocate. The log reports its high-water mark.
#[global_allocator]
static HEAP: TrackedHeap = TrackedHeap::empty();
/// The high-water mark through enrollment and the tunnel's handshake was 13,356 bytes (with
/// 64 TFTP transfers too). The provider sends records of at most
/// [`uplink_tls::MAX_FRAGMENT`] (4 KiB) plaintext, so TLS holds at most two of them
/// (8.5 KiB) however the provider's data arrives: 24 KiB leaves room for that on top of the
/// handshake's own allocations (was 32 KiB while records could be 16 KiB).
const HEAP_SIZE: usize = 24 * 1024;
/// QEMU/TEST-ONLY entropy source, see `host_random.rs`.
static RANDOM: Random<HostRandom> = Random(HostRandom);

/// Hands the heap its memory; before anything allocates.
pub fn init_heap() {
    static MEMORY: StaticCell<[MaybeUninit<u8>; HEAP_SIZE]> = StaticCell::new();
    HEAP.init(MEMORY.init([MaybeUninit::uninit(); HEAP_SIZE]));
}

/// The task's future is `run`'s own: an `async fn` awaiting it built the unresumed `run`
/// future on the stack at the first poll and moved it in (19 KiB in the poll's frame).
#[embassy_executor::task]
fn uplink_task(stack: Stack<'static>, settings: Settings) -> impl Future<Output = ()> {
    run(stack, settings)
}

#[embassy_executor::task]
async fn power_task(stack: Stack<'static>) -> ! {
    board_services::power::serve(stack, &RANDOM).await
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
        stack_high_water: Some(stack_high_water),
        name: "qemu-mps2-an386",
        store: Some(IdentityStore {
            load: load_identity,
            save: save_identity,
        }),
        outbox: outbox_store(),
    };
    spawner.spawn(defmt::unwrap!(uplink_task(stack, settings))); // ok: boot-time init, one task instance
    spawner.spawn(defmt::unwrap!(power_task(stack))); // ok: boot-time init, one task instance
}

/// The outbox's flash (QEMU/TEST-ONLY: a host file under NOR rules, as the leases').
fn outbox_store() -> Option<&'static mut dyn BlobStore> {
    static STORE: StaticCell<BlobJournal<Flash>> = StaticCell::new();
    let region = host_flash(host_flash::OUTBOX, "uplink outbox")?;
    let store = BlobJournal::mount(region, "uplink outbox")?;
    Some(STORE.init(store))
}

fn load_identity() -> Option<Vec<u8>> {
    let mut file = File::open(IDENTITY).ok()?;
    let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
    let mut bytes = alloc::vec![0u8; len];
    file.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// Written whole to a temporary file and renamed over the old one, so a cut leaves either.
fn save_identity(bytes: &[u8]) -> bool {
    fs::write(IDENTITY_TMP, bytes).is_ok() && fs::rename(IDENTITY_TMP, IDENTITY).is_ok()
}

unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// The most stack ever used: cortex-m-rt painted it with this word at reset (feature
/// `paint-stack`), so the lowest word that differs marks the deepest point reached.
fn stack_high_water() -> usize {
    const PAINT: u32 = 0xCCCC_CCCC;
    let (bottom, top) = (&raw const _stack_end, &raw const _stack_start);
    let mut p = bottom;
    // SAFETY: [_stack_end, _stack_start) is the stack region cortex-m-rt reserves in RAM;
    // reading below the stack pointer reads plain memory, word-aligned (linker asserts).
    while p < top && unsafe { p.read_volatile() } == PAINT {
        p = p.wrapping_add(1);
    }
    top as usize - p as usize
}
