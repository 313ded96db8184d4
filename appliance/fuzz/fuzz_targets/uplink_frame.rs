//! The uplink frame decoder and message decoding on arbitrary bytes: no input may panic,
//! cutting the stream into chunks must not change the frames it yields, every message that
//! decodes must re-encode to the same bytes' meaning, and an established appliance session
//! must take any provider message without panicking.
//!
//! The first input byte seeds the chunk sizes (1..=64 bytes, from a small LCG); the rest is
//! the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uplink::frame::{self, Error, FrameDecoder, HEADER, MAX_FRAME};
use uplink::{
    Action, Capabilities, CommandFilter, Hello, Outcome, Session, ToAppliance, ToProvider, Welcome,
};

/// The frames (and the first error) a decoder yields for `stream` cut into `chunks`.
fn frames(stream: &[u8], chunks: impl Iterator<Item = usize>) -> (Vec<Vec<u8>>, Option<Error>) {
    let mut decoder = FrameDecoder::new();
    let mut out = Vec::new();
    let mut rest = stream;
    let mut error = None;
    for size in chunks {
        if rest.is_empty() {
            break;
        }
        let (mut chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        while let Some(frame) = decoder.decode(&mut chunk) {
            match frame {
                Ok(body) => {
                    assert!(!body.is_empty() && body.len() <= MAX_FRAME);
                    out.push(body.to_vec());
                }
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        assert!(chunk.is_empty(), "decoder left input unconsumed");
    }
    match error {
        Some(e) => assert_eq!(decoder.finish(), Err(e)),
        None => assert!(matches!(decoder.finish(), Ok(()) | Err(Error::Truncated))),
    }
    (out, error)
}

fn round_trip<T>(body: &[u8]) -> Option<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let msg: T = frame::decode(body).ok()?;
    let mut buf = [0u8; HEADER + MAX_FRAME];
    let len = frame::encode(&msg, &mut buf).expect("a decoded message re-encodes"); // ok: the fuzzer's report of a broken round trip
    let back: T = frame::decode(&buf[HEADER..len]).expect("a re-encoded message decodes"); // ok: the fuzzer's report of a broken round trip
    assert_eq!(back, msg);
    Some(msg)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut state = u32::from(seed) | 1;
    let sizes = std::iter::from_fn(|| {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        Some(1 + (state >> 16) as usize % 64)
    });
    let (chunked, chunked_error) = frames(stream, sizes);
    let (whole, whole_error) = frames(stream, std::iter::once(stream.len().max(1)));
    assert_eq!(chunked, whole);
    assert_eq!(chunked_error, whole_error);

    let mut session = Session::<16>::new(
        Hello {
            protocol: 0,
            appliance_id: heapless::String::new(),
            firmware_version: heapless::String::new(),
            capabilities: Capabilities(0),
            command_window: 0,
            boot_id: 1,
        },
        CommandFilter::new(),
    );
    let mut out = [0u8; HEADER + MAX_FRAME];
    session.connect();
    let _ = session.poll_transmit(&mut out);
    let welcome = ToAppliance::Welcome(Welcome {
        protocol: 1,
        last_acked_seq: 0,
        time: 0,
    });
    assert!(session.handle(welcome).is_ok());
    for body in &chunked {
        let _ = round_trip::<ToProvider>(body);
        if let Some(msg) = round_trip::<ToAppliance>(body) {
            if let Ok(Action::Execute { id, .. }) = session.handle(msg) {
                assert!(session.complete(id, Outcome::Done).is_ok());
            }
            while let Ok(Some(len)) = session.poll_transmit(&mut out) {
                assert!(frame::decode::<ToProvider>(&out[HEADER..len]).is_ok());
            }
        }
    }
});
