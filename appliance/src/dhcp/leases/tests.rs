extern crate std;
use super::*;
use std::vec;

fn lease(n: u32, state: LeaseState, expires: u64) -> Lease {
    let m = n.to_be_bytes();
    Lease {
        ip: Ipv4Addr::from(0x0a4d_0000 + n),
        mac: MacAddr([2, 0, m[0], m[1], m[2], m[3]]),
        state,
        expires,
    }
}

#[test]
fn binds_finds_and_rebinds() {
    let mut slots = vec![Slot::EMPTY; 64];
    let mut t = LeaseTable::new(&mut slots);
    for n in 0..32 {
        t.bind(lease(n, LeaseState::Bound, 100), 0).unwrap();
    }
    assert_eq!(t.len(), 32);
    for n in 0..32 {
        let l = lease(n, LeaseState::Bound, 100);
        assert_eq!(t.by_mac(l.mac), Some(&l));
        assert_eq!(t.by_ip(l.ip), Some(&l));
    }
    // Full of active leases: a newcomer is refused.
    assert_eq!(t.bind(lease(99, LeaseState::Offered, 100), 0), Err(Full));
    // Once they expire, the oldest inactive slot is reused and re-indexed.
    t.bind(lease(5, LeaseState::Bound, 50), 0).unwrap();
    t.bind(lease(99, LeaseState::Offered, 200), 60).unwrap();
    assert!(t.by_mac(lease(5, LeaseState::Bound, 0).mac).is_none());
    assert!(t.by_ip(lease(5, LeaseState::Bound, 0).ip).is_none());
    assert_eq!(
        t.by_ip(lease(99, LeaseState::Bound, 0).ip).unwrap().expires,
        200
    );
    for n in (0..32).filter(|n| *n != 5) {
        assert!(
            t.by_mac(lease(n, LeaseState::Bound, 0).mac).is_some(),
            "{n}"
        );
    }
}

#[test]
fn an_address_moves_between_clients() {
    let mut slots = vec![Slot::EMPTY; 16];
    let mut t = LeaseTable::new(&mut slots);
    let a = lease(1, LeaseState::Released, 10);
    let mut b = lease(2, LeaseState::Bound, 10);
    t.bind(a, 0).unwrap();
    t.bind(b, 0).unwrap();
    // b takes a's released address: a's record goes, b's old address is freed.
    b.ip = a.ip;
    t.bind(b, 20).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t.by_ip(a.ip).unwrap().mac, b.mac);
    assert!(t.by_mac(a.mac).is_none());
    assert!(t.by_ip(lease(2, LeaseState::Bound, 0).ip).is_none());
}

#[test]
fn index_survives_churn() {
    // Many insert/reassign cycles in a small table exercise backward-shift deletion.
    let mut slots = vec![Slot::EMPTY; 32];
    let mut t = LeaseTable::new(&mut slots);
    for round in 0..2000u32 {
        let n = round.wrapping_mul(2_654_435_761) % 997;
        t.bind(
            lease(n, LeaseState::Released, u64::from(round)),
            u64::from(round) + 1,
        )
        .unwrap();
        let l = lease(n, LeaseState::Released, 0);
        assert_eq!(t.by_mac(l.mac).unwrap().ip, l.ip);
        for kept in t.iter() {
            assert_eq!(t.by_ip(kept.ip), Some(kept));
            assert_eq!(t.by_mac(kept.mac), Some(kept));
        }
    }
}
