//! The LAN9118's system control and status registers (datasheet section 5, "Register
//! Description") and the bit fields the driver uses. All registers are 32 bits wide.

/// Offsets from the device's base address, named as in the datasheet's register map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Reg {
    /// RX Data FIFO port: frame data, little-endian words, the last one padded.
    RxDataFifo = 0x00,
    /// TX Data FIFO port: command A, command B, then the frame words.
    TxDataFifo = 0x20,
    /// RX Status FIFO port: one status word per received frame (popped on read).
    RxStatusFifo = 0x40,
    /// Byte order test register: reads [`BYTE_TEST_VALUE`] on a correctly wired device.
    ByteTest = 0x64,
    TxCfg = 0x70,
    HwCfg = 0x74,
    RxFifoInf = 0x7C,
    TxFifoInf = 0x80,
    /// Indirect access to the MAC's own registers ([`MacReg`]).
    MacCsrCmd = 0xA4,
    MacCsrData = 0xA8,
}

/// Indices of the MAC control and status registers, reached through MAC_CSR_CMD/DATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MacReg {
    MacCr = 1,
    /// Bytes 4 and 5 of the station address.
    AddrH = 2,
    /// Bytes 0 to 3 of the station address, byte 0 in the low bits.
    AddrL = 3,
}

pub const BYTE_TEST_VALUE: u32 = 0x8765_4321;

/// HW_CFG SRST: soft reset, cleared by the device when done.
pub const HW_CFG_SRST: u32 = 1 << 0;
/// TX_CFG TX_ON: the transmitter runs.
pub const TX_CFG_TX_ON: u32 = 1 << 1;
/// TX_CFG TXSAO: the TX status FIFO may overrun. The driver never reads TX statuses, so
/// without this a full status FIFO would stop the transmitter.
pub const TX_CFG_TXSAO: u32 = 1 << 2;
/// MAC_CSR_CMD CSRBusy: set to start an access, cleared by the device when done.
pub const MAC_CSR_BUSY: u32 = 1 << 31;
/// MAC_CSR_CMD R/nW: the access is a read.
pub const MAC_CSR_READ: u32 = 1 << 30;
/// MAC_CR RXEN and TXEN.
pub const MAC_CR_RXEN: u32 = 1 << 2;
pub const MAC_CR_TXEN: u32 = 1 << 3;

/// RX status: the Error Status bit (CRC, length, collision, ...): the frame is dropped.
const RX_STATUS_ES: u32 = 1 << 15;

/// Frames waiting in the RX status FIFO (RX_FIFO_INF RXSUSED, bits 23:16).
pub fn rx_frames_waiting(rx_fifo_inf: u32) -> u32 {
    (rx_fifo_inf >> 16) & 0xFF
}

/// Free bytes in the TX data FIFO (TX_FIFO_INF TDFREE, bits 15:0).
pub fn tx_bytes_free(tx_fifo_inf: u32) -> usize {
    (tx_fifo_inf & 0xFFFF) as usize
}

/// A received frame as its status word describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxStatus {
    /// Bytes in the data FIFO, including the 4-byte FCS (bits 29:16).
    pub len_with_fcs: usize,
    pub error: bool,
}

impl RxStatus {
    pub fn parse(word: u32) -> RxStatus {
        RxStatus {
            len_with_fcs: ((word >> 16) & 0x3FFF) as usize,
            error: word & RX_STATUS_ES != 0,
        }
    }

    /// Words to read from the RX data FIFO (the device pads to a word boundary).
    pub fn words(&self) -> usize {
        self.len_with_fcs.div_ceil(4)
    }

    /// The frame without its FCS, if it is one to hand up.
    pub fn frame_len(&self) -> Option<usize> {
        (!self.error && self.len_with_fcs > 4).then(|| self.len_with_fcs - 4)
    }
}

/// TX command A and B for a frame sent as one buffer: command A says first and last
/// segment and the buffer size, command B tags the packet and gives its length.
pub fn tx_commands(len: usize, tag: u16) -> (u32, u32) {
    const FIRST_SEGMENT: u32 = 1 << 13;
    const LAST_SEGMENT: u32 = 1 << 12;
    let len = (len & 0x7FF) as u32;
    (
        FIRST_SEGMENT | LAST_SEGMENT | len,
        (u32::from(tag) << 16) | len,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_status_fields() {
        // A 64-byte frame (60 + FCS), no error.
        let s = RxStatus::parse(64 << 16);
        assert_eq!(s.frame_len(), Some(60));
        assert_eq!(s.words(), 16);
        // 343 bytes with FCS: 86 words, the last padded.
        assert_eq!(RxStatus::parse(343 << 16).words(), 86);
        let bad = RxStatus::parse((64 << 16) | RX_STATUS_ES);
        assert_eq!(bad.frame_len(), None);
        assert_eq!(bad.words(), 16, "a bad frame's words are still drained");
    }

    #[test]
    fn fifo_levels() {
        assert_eq!(rx_frames_waiting(0x0003_0040), 3);
        assert_eq!(tx_bytes_free(0x0001_1200), 0x1200);
    }

    #[test]
    fn commands() {
        let (a, b) = tx_commands(342, 7);
        assert_eq!(a, (1 << 13) | (1 << 12) | 342);
        assert_eq!(b, (7 << 16) | 342);
    }
}
