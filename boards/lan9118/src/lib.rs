//! A driver for the SMSC (Microchip) LAN9118 Ethernet controller as an `embassy-net`
//! device, over its memory-mapped registers (names as in the datasheet, see [`regs`]).
//!
//! Polled, not interrupt-driven: when no frame is waiting the driver arms an
//! `embassy-time` timer that wakes the network stack after [`POLL_INTERVAL`], so the stack
//! sleeps between polls instead of spinning. The PHY is not managed: the link is reported
//! up (QEMU's model has no link changes; a real board would read the PHY over MII).
#![no_std]

pub mod regs;

use core::future::Future;
use core::pin::Pin;
use core::ptr;
use core::task::Context;

use embassy_net_driver::{Capabilities, HardwareAddress, LinkState};
use embassy_time::{Duration, Timer};

use regs::{MacReg, Reg, RxStatus};

/// How often the RX FIFO is looked at while idle.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// The largest frame without FCS: 1500 bytes of payload and the Ethernet header.
pub const MAX_FRAME: usize = 1514;
/// Register polls before a self-clearing bit counts as stuck.
const SPIN_LIMIT: u32 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// BYTE_TEST did not read 0x87654321: no LAN9118 at this address (the value read).
    NotFound(u32),
    /// A soft reset or MAC CSR access did not complete.
    Timeout,
}

/// The register block at one base address.
struct Mmio {
    base: usize,
}

impl Mmio {
    fn read(&self, reg: Reg) -> u32 {
        // SAFETY: `Lan9118::new`'s caller guarantees `base` is the LAN9118's register
        // block, which is mapped and 4-byte aligned; every `Reg` offset is within it.
        unsafe { ptr::read_volatile((self.base + reg as usize) as *const u32) }
    }

    fn write(&self, reg: Reg, value: u32) {
        // SAFETY: as in `read`; writes to these registers only affect the device.
        unsafe { ptr::write_volatile((self.base + reg as usize) as *mut u32, value) }
    }

    /// Waits for `bit` of `reg` to clear.
    fn wait_clear(&self, reg: Reg, bit: u32) -> Result<(), Error> {
        for _ in 0..SPIN_LIMIT {
            if self.read(reg) & bit == 0 {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    fn mac_write(&self, reg: MacReg, value: u32) -> Result<(), Error> {
        self.write(Reg::MacCsrData, value);
        self.write(Reg::MacCsrCmd, regs::MAC_CSR_BUSY | reg as u32);
        self.wait_clear(Reg::MacCsrCmd, regs::MAC_CSR_BUSY)
    }

    fn mac_read(&self, reg: MacReg) -> Result<u32, Error> {
        self.write(
            Reg::MacCsrCmd,
            regs::MAC_CSR_BUSY | regs::MAC_CSR_READ | reg as u32,
        );
        self.wait_clear(Reg::MacCsrCmd, regs::MAC_CSR_BUSY)?;
        Ok(self.read(Reg::MacCsrData))
    }
}

pub struct Lan9118 {
    mmio: Mmio,
    mac: [u8; 6],
    rx: [u8; MAX_FRAME],
    tx: [u8; MAX_FRAME],
    /// Tags each frame in TX command B (only for the TX status FIFO, which is not read).
    tag: u16,
    /// Wakes the stack to poll again when the FIFOs had nothing for it.
    poll: Timer,
}

impl Lan9118 {
    /// Resets the device and starts it with station address `mac`: soft reset, ADDRL and
    /// ADDRH (unicast frames are dropped until they hold the address), MAC_CR TXEN and
    /// RXEN, TX_CFG TX_ON.
    ///
    /// # Safety
    /// `base` must be the address of a LAN9118's register block, mapped as device memory,
    /// and nothing else may access that block while the driver lives.
    pub unsafe fn new(base: usize, mac: [u8; 6]) -> Result<Lan9118, Error> {
        let mmio = Mmio { base };
        let id = mmio.read(Reg::ByteTest);
        if id != regs::BYTE_TEST_VALUE {
            return Err(Error::NotFound(id));
        }
        mmio.write(Reg::HwCfg, regs::HW_CFG_SRST);
        mmio.wait_clear(Reg::HwCfg, regs::HW_CFG_SRST)?;
        mmio.mac_write(
            MacReg::AddrL,
            u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]),
        )?;
        mmio.mac_write(MacReg::AddrH, u32::from_le_bytes([mac[4], mac[5], 0, 0]))?;
        let cr = mmio.mac_read(MacReg::MacCr)?;
        mmio.mac_write(MacReg::MacCr, cr | regs::MAC_CR_TXEN | regs::MAC_CR_RXEN)?;
        mmio.write(Reg::TxCfg, regs::TX_CFG_TX_ON | regs::TX_CFG_TXSAO);
        Ok(Lan9118 {
            mmio,
            mac,
            rx: [0; MAX_FRAME],
            tx: [0; MAX_FRAME],
            tag: 0,
            poll: Timer::after(POLL_INTERVAL),
        })
    }

    /// Arms the poll timer (if it has fired) and registers `cx`'s waker with it.
    fn wake_later(&mut self, cx: &mut Context<'_>) {
        if Pin::new(&mut self.poll).poll(cx).is_ready() {
            self.poll = Timer::after(POLL_INTERVAL);
            // Pending for POLL_INTERVAL: this registers the waker.
            let _ = Pin::new(&mut self.poll).poll(cx);
        }
    }

    fn tx_ready(&self) -> bool {
        // Both commands and the padded frame must fit.
        regs::tx_bytes_free(self.mmio.read(Reg::TxFifoInf)) >= MAX_FRAME + 8 + 3
    }

    /// Pops frames until one is good; returns its length in `self.rx`.
    fn pop_frame(&mut self) -> Option<usize> {
        while regs::rx_frames_waiting(self.mmio.read(Reg::RxFifoInf)) > 0 {
            let status = RxStatus::parse(self.mmio.read(Reg::RxStatusFifo));
            let keep = status.frame_len().filter(|&n| n <= MAX_FRAME);
            for i in 0..status.words() {
                let word = self.mmio.read(Reg::RxDataFifo).to_le_bytes();
                // The FCS lands past the frame: copy only what fits.
                let at = i * 4;
                if keep.is_some() && at < MAX_FRAME {
                    let n = (MAX_FRAME - at).min(4);
                    self.rx[at..at + n].copy_from_slice(&word[..n]);
                }
            }
            if keep.is_some() {
                return keep;
            }
        }
        None
    }
}

impl embassy_net_driver::Driver for Lan9118 {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if !self.tx_ready() {
            self.wake_later(cx);
            return None;
        }
        let Some(len) = self.pop_frame() else {
            self.wake_later(cx);
            return None;
        };
        self.tag = self.tag.wrapping_add(1);
        Some((
            RxToken {
                frame: &mut self.rx[..len],
            },
            TxToken {
                mmio: &self.mmio,
                buf: &mut self.tx,
                tag: self.tag,
            },
        ))
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<TxToken<'_>> {
        if !self.tx_ready() {
            self.wake_later(cx);
            return None;
        }
        self.tag = self.tag.wrapping_add(1);
        Some(TxToken {
            mmio: &self.mmio,
            buf: &mut self.tx,
            tag: self.tag,
        })
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}

pub struct RxToken<'a> {
    frame: &'a mut [u8],
}

impl embassy_net_driver::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

pub struct TxToken<'a> {
    mmio: &'a Mmio,
    buf: &'a mut [u8; MAX_FRAME],
    tag: u16,
}

impl embassy_net_driver::TxToken for TxToken<'_> {
    /// Builds the frame in the driver's buffer, then writes command A, command B and the
    /// frame words to TX_DATA_FIFO; the MAC pads short frames and appends the FCS.
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(MAX_FRAME);
        let r = f(&mut self.buf[..len]);
        let (a, b) = regs::tx_commands(len, self.tag);
        self.mmio.write(Reg::TxDataFifo, a);
        self.mmio.write(Reg::TxDataFifo, b);
        for chunk in self.buf[..len].chunks(4) {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mmio.write(Reg::TxDataFifo, u32::from_le_bytes(word));
        }
        r
    }
}
