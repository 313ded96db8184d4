//! The embassy time driver on the Cortex-M SysTick: one interrupt per millisecond counts
//! a 64-bit tick and wakes the timers that are due. SysTick rather than the board's CMSDK
//! timers because every Cortex-M has it and QEMU models it exactly; a tickless timer is
//! not worth it at 1 kHz.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use critical_section::{CriticalSection, Mutex};
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// The core clock of QEMU's mps2 boards (SYSCLK), which SysTick counts.
const CORE_HZ: u32 = 25_000_000;
const TICK_HZ: u32 = embassy_time_driver::TICK_HZ as u32;

struct SysTickDriver {
    ticks: Mutex<Cell<u64>>,
    /// The earliest tick a timer waits for (`u64::MAX`: none).
    alarm: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    alarm: Mutex::new(Cell::new(u64::MAX)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

/// Starts the tick; call once, before the executor runs.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / TICK_HZ - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

impl SysTickDriver {
    /// Wakes what is due at `now` and remembers the next deadline.
    fn expire(&self, cs: CriticalSection<'_>, now: u64) {
        let next = self.queue.borrow(cs).borrow_mut().next_expiration(now);
        self.alarm.borrow(cs).set(next);
    }
}

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            if self.queue.borrow(cs).borrow_mut().schedule_wake(at, waker) {
                self.expire(cs, self.ticks.borrow(cs).get());
            }
        });
    }
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let ticks = DRIVER.ticks.borrow(cs);
        let now = ticks.get() + 1;
        ticks.set(now);
        if now >= DRIVER.alarm.borrow(cs).get() {
            DRIVER.expire(cs, now);
        }
    });
}
