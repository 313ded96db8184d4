//! Every message survives a frame round trip; limits hold; secrets stay out of `Debug`.
mod common;

use common::*;
use uplink::frame::{self, Error, HEADER, MAX_FRAME};
use uplink::*;

fn round_trip<T>(msg: &T) -> usize
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut buf = [0u8; HEADER + MAX_FRAME];
    let len = frame::encode(msg, &mut buf).unwrap();
    let body_len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
    assert_eq!(body_len + HEADER, len);
    let back: T = frame::decode(&buf[HEADER..len]).unwrap();
    assert_eq!(&back, msg);
    len
}

#[test]
fn every_message_round_trips() {
    for msg in to_provider() {
        round_trip(&msg);
    }
    for msg in to_appliance() {
        round_trip(&msg);
    }
}

#[test]
fn the_largest_messages_fit_a_frame() {
    let (up, down) = largest();
    // The config update carries the join config, whose cap was chosen to fill the frame;
    // every other message keeps a third of the frame to grow.
    let (config, rest): (Vec<_>, Vec<_>) = down.iter().partition(|m| {
        matches!(
            m,
            ToAppliance::Command {
                command: Command::ConfigUpdate(_),
                ..
            }
        )
    });
    let most = up
        .iter()
        .map(round_trip)
        .chain(rest.into_iter().map(round_trip))
        .max()
        .unwrap();
    println!("largest frame: {most} bytes");
    assert!(
        most <= HEADER + MAX_FRAME * 2 / 3,
        "{most}: keep room to grow"
    );
    let config = config.into_iter().map(round_trip).max().unwrap();
    println!("largest config update: {config} bytes");
    assert!(config <= HEADER + MAX_FRAME, "{config}");
}

#[test]
fn a_string_over_its_limit_is_refused() {
    // A hello whose appliance id is one byte longer than ID_MAX, written by hand:
    // variant 0, protocol 1, then the id's length and bytes.
    let mut body = vec![0, 1, (ID_MAX + 1) as u8];
    body.extend(std::iter::repeat_n(b'a', ID_MAX + 1));
    body.extend([0, 0, 8]);
    assert_eq!(frame::decode::<ToProvider>(&body), Err(Error::Malformed));
}

#[test]
fn unknown_variants_and_trailing_bytes_are_refused() {
    assert_eq!(frame::decode::<ToProvider>(&[3]), Err(Error::Malformed));
    assert_eq!(
        frame::decode::<ToAppliance>(&[99, 0]),
        Err(Error::Malformed)
    );
    assert_eq!(
        frame::decode::<ToAppliance>(&[4, 5, 0]),
        Err(Error::TrailingBytes)
    );
    assert_eq!(frame::decode::<ToAppliance>(&[]), Err(Error::Malformed));
}

#[test]
fn encoding_into_a_small_buffer_fails_cleanly() {
    let msg = ToProvider::Hello(hello());
    let mut big = [0u8; 64];
    let len = frame::encode(&msg, &mut big).unwrap();
    for short in 0..len {
        let mut buf = vec![0u8; short];
        assert_eq!(frame::encode(&msg, &mut buf), Err(Error::BufferTooSmall));
    }
}

#[test]
fn debug_hides_the_bmc_password() {
    for command in commands() {
        let text = format!("{command:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[test]
fn versions_negotiate_down_to_the_common_one() {
    let mut h = hello();
    h.protocol = PROTOCOL_VERSION + 5;
    assert_eq!(negotiate(&h), Ok(PROTOCOL_VERSION));
    h.protocol = MIN_PROTOCOL_VERSION - 1;
    assert_eq!(
        negotiate(&h),
        Err(Refusal::Version {
            min: MIN_PROTOCOL_VERSION,
            max: PROTOCOL_VERSION
        })
    );
}
