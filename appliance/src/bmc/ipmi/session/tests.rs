use super::*;
use crate::bmc::ipmi::cipher::Hash;

#[test]
fn window_accepts_once_and_rejects_old() {
    let mut w = ReplayWindow::default();
    assert!(!w.check(0));
    for seq in [5, 7, 6, 20, 19, 8] {
        assert!(w.check(seq), "{seq}");
        w.accept(seq);
        assert!(!w.check(seq), "replay of {seq}");
    }
    assert!(!w.check(4), "more than 15 behind 20");
    assert!(!w.check(37), "more than 16 ahead");
    assert!(w.check(36));
    assert!(w.check(21) && w.check(9));
    w.accept(36);
    assert!(!w.check(20) && w.check(21));
    // Wraps around u32 like any counter.
    let mut w = ReplayWindow::default();
    w.accept(u32::MAX);
    assert!(w.check(3));
}

pub fn test_keys() -> Keys {
    let sik = hmac(Some(Hash::Sha1), b"k", &[b"sik"]).unwrap();
    Keys::derive(Some(Hash::Sha1), &sik).unwrap()
}

#[test]
fn keys_are_not_printed() {
    let text: heapless::String<64> = heapless::format!(64; "{:?}", test_keys()).unwrap();
    assert_eq!(text, "Keys { k1: Mac(20 bytes), k2: Mac(20 bytes) }");
}

/// The BMC's end of a session: the same keys with the ids swapped.
fn pair(id: u8) -> (Session, Session) {
    let suite = Suite::from_id(id).unwrap();
    (
        Session::new(suite, 0x11, 0x22, test_keys()),
        Session::new(suite, 0x22, 0x11, test_keys()),
    )
}

#[test]
fn seal_open_round_trip_tamper_replay_truncation() {
    for id in [0, 1, 2, 3, 16, 17] {
        let (mut client, mut bmc) = pair(id);
        let mut rng = crate::bmc::ipmi::tests::TestRng(1);
        let mut buf = [0u8; 128];
        let n = bmc
            .seal(&mut buf, &mut rng, |w| w.put(b"hello ipmi"))
            .unwrap();
        let mut scratch = [0u8; 128];
        // Without integrity (suites 0, 1) a flipped bit goes unnoticed, by design.
        let integrity = Suite::from_id(id).unwrap().integrity.is_some();
        for i in 0..n {
            let mut bad = buf;
            bad[i] ^= 0x01;
            if integrity {
                assert!(
                    client.open(&bad[..n], &mut scratch).is_err(),
                    "suite {id}: flip at {i}"
                );
            }
            assert!(
                client.open(&buf[..i], &mut scratch).is_err(),
                "suite {id}: cut at {i}"
            );
        }
        let mut scratch = [0u8; 128];
        assert_eq!(client.open(&buf[..n], &mut scratch).unwrap(), b"hello ipmi");
        assert_eq!(client.open(&buf[..n], &mut scratch), Err(Drop::Replay));
        // The client's own packets are addressed to the BMC's id, not accepted back.
        let n = client.seal(&mut buf, &mut rng, |w| w.put(b"x")).unwrap();
        assert_eq!(client.open(&buf[..n], &mut scratch), Err(Drop::Malformed));
        assert_eq!(bmc.open(&buf[..n], &mut scratch).unwrap(), b"x");
    }
}
