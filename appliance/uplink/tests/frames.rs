//! The frame decoder on streams cut anywhere, and on hostile input.
mod common;

use common::*;
use uplink::frame::{self, Error, HEADER, MAX_FRAME};
use uplink::*;

/// Several frames back to back, and the bodies they carry.
fn stream() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut bytes = Vec::new();
    let mut bodies = Vec::new();
    let (up, _) = largest();
    for msg in to_provider().iter().chain(&up) {
        let mut buf = [0u8; HEADER + MAX_FRAME];
        let len = frame::encode(msg, &mut buf).unwrap();
        bytes.extend_from_slice(&buf[..len]);
        bodies.push(buf[HEADER..len].to_vec());
    }
    (bytes, bodies)
}

fn feed(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, Error>> {
    let mut out = Vec::new();
    for chunk in chunks {
        let mut input = *chunk;
        while let Some(frame) = decoder.decode(&mut input) {
            out.push(frame.map(<[u8]>::to_vec));
        }
        assert!(input.is_empty());
    }
    out
}

#[test]
fn frames_split_at_every_byte_boundary() {
    let (bytes, bodies) = stream();
    let expected: Vec<_> = bodies.into_iter().map(Ok).collect();
    for cut in 0..=bytes.len() {
        let mut decoder = FrameDecoder::new();
        let (a, b) = bytes.split_at(cut);
        assert_eq!(feed(&mut decoder, &[a, b]), expected, "cut at {cut}");
        assert_eq!(decoder.finish(), Ok(()));
    }
    // And a byte at a time, and in three pieces around every frame header.
    let mut decoder = FrameDecoder::new();
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(feed(&mut decoder, &singles), expected);
    for cut in 0..bytes.len() - 3 {
        let mut decoder = FrameDecoder::new();
        let pieces = [&bytes[..cut], &bytes[cut..cut + 3], &bytes[cut + 3..]];
        assert_eq!(feed(&mut decoder, &pieces), expected);
    }
}

#[test]
fn decoded_frames_parse_as_messages() {
    let (bytes, _) = stream();
    let mut decoder = FrameDecoder::new();
    let mut input = &bytes[..];
    let mut n = 0;
    while let Some(body) = decoder.decode(&mut input) {
        frame::decode::<ToProvider>(body.unwrap()).unwrap();
        n += 1;
    }
    assert_eq!(n, to_provider().len() + largest().0.len());
}

#[test]
fn an_oversize_length_is_refused_at_the_header() {
    for len in [MAX_FRAME + 1, 4096, usize::from(u16::MAX)] {
        let mut decoder = FrameDecoder::new();
        let header = (len as u16).to_be_bytes();
        // The error comes with the second header byte, before any body byte.
        assert_eq!(feed(&mut decoder, &[&header[..1]]), vec![]);
        assert_eq!(
            feed(&mut decoder, &[&header[1..]]),
            vec![Err(Error::TooLarge { len })]
        );
        // It stays failed, once per chunk, swallowing the rest.
        assert_eq!(
            feed(&mut decoder, &[&[0; 10], &[], &[1]]),
            vec![Err(Error::TooLarge { len }), Err(Error::TooLarge { len })]
        );
        assert_eq!(decoder.finish(), Err(Error::TooLarge { len }));
    }
    // The largest allowed length is accepted.
    let mut decoder = FrameDecoder::new();
    let mut bytes = (MAX_FRAME as u16).to_be_bytes().to_vec();
    bytes.extend(vec![7; MAX_FRAME]);
    assert_eq!(feed(&mut decoder, &[&bytes]), vec![Ok(vec![7; MAX_FRAME])]);
}

#[test]
fn empty_and_truncated_frames_are_errors() {
    let mut decoder = FrameDecoder::new();
    assert_eq!(feed(&mut decoder, &[&[0, 0, 5]]), vec![Err(Error::Empty)]);

    let (bytes, _) = stream();
    for end in 1..bytes.len() {
        let mut decoder = FrameDecoder::new();
        feed(&mut decoder, &[&bytes[..end]]);
        // Only a cut exactly between frames is a clean end.
        let between = decoder.finish().is_ok();
        let mut check = FrameDecoder::new();
        let mut input = &bytes[..end];
        let mut consumed_whole = false;
        while let Some(f) = check.decode(&mut input) {
            f.unwrap();
            consumed_whole = input.is_empty();
        }
        assert_eq!(between, consumed_whole, "cut at {end}");
    }
}

#[test]
fn garbage_never_panics() {
    // A deterministic stream of junk, fed in odd-sized chunks; every complete frame is
    // offered to both message decoders.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let len = (next() % 300) as usize;
        // Small lengths in the header now and then, so some frames complete.
        let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len > 2 && next() % 2 == 0 {
            junk[0] = 0;
            junk[1] = (next() % 40) as u8;
        }
        let mut decoder = FrameDecoder::new();
        let mut rest = &junk[..];
        while !rest.is_empty() {
            let take = 1 + (next() % 17) as usize;
            let (mut chunk, tail) = rest.split_at(take.min(rest.len()));
            rest = tail;
            while let Some(frame) = decoder.decode(&mut chunk) {
                if let Ok(body) = frame {
                    let _ = frame::decode::<ToProvider>(body);
                    let _ = frame::decode::<ToAppliance>(body);
                }
            }
        }
        let _ = decoder.finish();
    }
}
