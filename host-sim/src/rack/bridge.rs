//! The segment bridged to a TAP device, so real hosts (QEMU VMs and their BMCs on a Linux
//! bridge) share it with the simulated ones: frames from the TAP enter the segment, and the
//! segment's broadcasts and frames for MACs it does not hold leave through the TAP.

use std::io;

use appliance::net::MacAddr;
use smoltcp::phy::{Device, RxToken, TxToken};
use smoltcp::time::Instant;

use super::segment::Nic;
use crate::tap::Tap;

pub struct Bridge {
    tap: Tap,
    nic: Nic,
    /// Frames moved each way, for the summary.
    pub frames: (u64, u64),
}

impl Bridge {
    pub fn open(interface: &str, nic: Nic) -> io::Result<Bridge> {
        // The TAP's own MAC only matters to host-sim serve's burst path, unused here.
        let tap = Tap::open(interface, MacAddr([0x02, 0, 0, 0, 0, 0xfe]))?;
        Ok(Bridge {
            tap,
            nic,
            frames: (0, 0),
        })
    }

    /// Moves what is waiting each way.
    pub fn pump(&mut self, now_ms: u64) {
        let now = Instant::from_millis(now_ms as i64);
        while let Some((rx, _)) = self.tap.receive(now) {
            let frame = rx.consume(|f| f.to_vec());
            self.nic.send_frame(now, frame);
            self.frames.0 += 1;
        }
        while let Some(frame) = self.nic.take() {
            if let Some(tx) = self.tap.transmit(now) {
                tx.consume(frame.len(), |dst| dst.copy_from_slice(&frame));
                self.frames.1 += 1;
            }
        }
    }
}
