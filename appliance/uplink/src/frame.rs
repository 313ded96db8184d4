//! Frames: a 2-byte big-endian body length, then the postcard body. The length is checked
//! against [`MAX_FRAME`] before a single body byte is buffered.

use core::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest frame body. The largest message (an install target with a full URL and full
/// kernel arguments) takes 546 bytes; the rest is headroom for growth.
pub const MAX_FRAME: usize = 1024;
/// Bytes of length prefix.
pub const HEADER: usize = 2;

/// Why a frame or message was refused. Any of these ends the connection: the stream cannot
/// be trusted to be in step any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A length prefix above [`MAX_FRAME`].
    TooLarge { len: usize },
    /// A zero length prefix: no message is empty.
    Empty,
    /// The stream ended inside a frame.
    Truncated,
    /// The caller's output buffer cannot hold the frame.
    BufferTooSmall,
    /// The body is not a message of the expected type.
    Malformed,
    /// The body holds more than one message.
    TrailingBytes,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooLarge { len } => write!(f, "frame of {len} bytes exceeds {MAX_FRAME}"),
            Error::Empty => f.write_str("empty frame"),
            Error::Truncated => f.write_str("stream ended inside a frame"),
            Error::BufferTooSmall => f.write_str("output buffer too small for the frame"),
            Error::Malformed => f.write_str("malformed message"),
            Error::TrailingBytes => f.write_str("bytes after the message in a frame"),
        }
    }
}

/// Writes `msg` as one frame at the start of `out`; returns the frame's length.
pub fn encode<T: Serialize>(msg: &T, out: &mut [u8]) -> Result<usize, Error> {
    let (header, rest) = out
        .split_at_mut_checked(HEADER)
        .ok_or(Error::BufferTooSmall)?;
    let room = rest.len().min(MAX_FRAME);
    let body = rest.get_mut(..room).ok_or(Error::BufferTooSmall)?;
    let len = match postcard::to_slice(msg, body) {
        Ok(b) => b.len(),
        Err(postcard::Error::SerializeBufferFull) if room == MAX_FRAME => {
            return Err(Error::TooLarge { len: MAX_FRAME + 1 });
        }
        Err(postcard::Error::SerializeBufferFull) => return Err(Error::BufferTooSmall),
        Err(_) => return Err(Error::Malformed),
    };
    let prefix = u16::try_from(len).map_err(|_| Error::TooLarge { len })?;
    header.copy_from_slice(&prefix.to_be_bytes());
    Ok(HEADER + len)
}

/// Reads one message from a frame body; the whole body must be that message.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    match postcard::take_from_bytes(body) {
        Ok((msg, [])) => Ok(msg),
        Ok(_) => Err(Error::TrailingBytes),
        Err(_) => Err(Error::Malformed),
    }
}

/// Cuts a byte stream into frame bodies, whatever the chunk boundaries. Sans-IO: feed it what
/// the transport read; it copies at most one frame body ([`MAX_FRAME`] bytes).
///
/// ```
/// # use uplink::frame::{self, FrameDecoder};
/// # let chunk: &[u8] = &[0, 2, 2, 7]; // a Pong(7) frame
/// let mut decoder = FrameDecoder::new();
/// let mut input = chunk;
/// while let Some(frame) = decoder.decode(&mut input) {
///     let Ok(body) = frame else { break }; // an error: close the connection
///     let msg = frame::decode::<uplink::ToProvider>(body);
///     assert_eq!(msg, Ok(uplink::ToProvider::Pong(7)));
/// }
/// ```
pub struct FrameDecoder {
    header: [u8; HEADER],
    header_have: usize,
    /// The body length announced by the header, once it is complete.
    len: usize,
    have: usize,
    body: [u8; MAX_FRAME],
    /// The last call returned a complete frame; start the next one on the next call.
    done: bool,
    failed: Option<Error>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    pub const fn new() -> Self {
        FrameDecoder {
            header: [0; HEADER],
            header_have: 0,
            len: 0,
            have: 0,
            body: [0; MAX_FRAME],
            done: false,
            failed: None,
        }
    }

    /// Consumes bytes from the front of `input` until a frame is complete (returns its body)
    /// or `input` is empty (returns `None`). After an error the decoder stays failed: it
    /// swallows further input and reports the error again, once per non-empty chunk.
    pub fn decode(&mut self, input: &mut &[u8]) -> Option<Result<&[u8], Error>> {
        if let Some(e) = self.failed {
            if input.is_empty() {
                return None;
            }
            *input = &[];
            return Some(Err(e));
        }
        if self.done {
            self.done = false;
            self.header_have = 0;
            self.have = 0;
        }
        while self.header_have < HEADER {
            let (&byte, rest) = input.split_first()?;
            *input = rest;
            if let Some(slot) = self.header.get_mut(self.header_have) {
                *slot = byte;
            }
            self.header_have += 1;
            if self.header_have == HEADER {
                self.len = usize::from(u16::from_be_bytes(self.header));
                let error = match self.len {
                    0 => Some(Error::Empty),
                    len if len > MAX_FRAME => Some(Error::TooLarge { len }),
                    _ => None,
                };
                if let Some(e) = error {
                    self.failed = Some(e);
                    *input = &[];
                    return Some(Err(e));
                }
            }
        }
        let take = (self.len - self.have).min(input.len());
        let (chunk, rest) = input.split_at_checked(take)?;
        *input = rest;
        if let Some(dst) = self.body.get_mut(self.have..self.have + take) {
            dst.copy_from_slice(chunk);
        }
        self.have += take;
        if self.have < self.len {
            return None;
        }
        self.done = true;
        self.body.get(..self.len).map(Ok)
    }

    /// Call at the end of the stream: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), Error> {
        match self.failed {
            Some(e) => Err(e),
            None if self.done || self.header_have == 0 => Ok(()),
            None => Err(Error::Truncated),
        }
    }
}
