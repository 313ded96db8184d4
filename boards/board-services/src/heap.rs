//! The one heap on a board, for what rustls allocates (handshake state, record buffers,
//! certificates): the rest of the firmware stays allocation-free. A fixed region the board
//! hands over at boot, with its high-water mark kept so the footprint can be measured.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// A linked-list heap that remembers the most it ever had allocated.
pub struct TrackedHeap {
    heap: LlffHeap,
    high_water: AtomicUsize,
}

impl TrackedHeap {
    pub const fn empty() -> Self {
        Self {
            heap: LlffHeap::empty(),
            high_water: AtomicUsize::new(0),
        }
    }

    /// Hands `region` to the heap; call once, before the first allocation.
    pub fn init(&self, region: &'static mut [MaybeUninit<u8>]) {
        // SAFETY: the region is 'static and exclusively ours (taken by `&'static mut`), and
        // callers init once before any allocation.
        unsafe { self.heap.init(region.as_mut_ptr() as usize, region.len()) }
    }

    /// Bytes allocated now.
    pub fn used(&self) -> usize {
        self.heap.used()
    }

    /// The most bytes ever allocated at once.
    pub fn high_water(&self) -> usize {
        self.high_water.load(Ordering::Relaxed)
    }
}

impl Default for TrackedHeap {
    fn default() -> Self {
        Self::empty()
    }
}

// SAFETY: every call is forwarded unchanged to `LlffHeap`, which is a correct allocator;
// only a counter is read after allocations.
unsafe impl GlobalAlloc for TrackedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's contract.
        let p = unsafe { self.heap.alloc(layout) };
        self.high_water
            .fetch_max(self.heap.used(), Ordering::Relaxed);
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's contract.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}
