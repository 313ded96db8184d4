//! The NOR rules, and the power-cut proof on the host: a run of lease changes (enough for
//! several compactions) is cut after every single medium write in turn; each time the
//! remounted journal holds exactly the state before or after the change in flight.

extern crate std;

use std::vec::Vec;

use appliance::dhcp::{Lease, LeaseState, LeaseTable, Slot};
use appliance::journal::Record;
use appliance::net::MacAddr;
use core::net::Ipv4Addr;
use embedded_storage::nor_flash::{NorFlash, NorFlashErrorKind, ReadNorFlash};

use crate::emulated::{EmulatedNor, Error as NorError, RamMedium};
use crate::journal::{Formatted, Mount, NorJournal};
use crate::leases::LeaseLog;

type Medium = RamMedium<4096>;
type Flash = EmulatedNor<Medium, 4, 1024>;
const BANK: u32 = 2048;
const FRAME: usize = <Lease as Record>::LEN + 4;
const MACS: u8 = 8;

fn mount(medium: Medium) -> (NorJournal<Flash>, Mount) {
    NorJournal::mount(Flash::new(medium), 0, BANK, FRAME).unwrap()
}

/// Change `k`: machine `k % 8` moves between its two addresses, every fifth change a release.
fn op(k: usize) -> Lease {
    let m = (k % MACS as usize) as u8;
    let state = if k % 5 == 4 {
        LeaseState::Released
    } else {
        LeaseState::Bound
    };
    Lease {
        ip: Ipv4Addr::new(10, 0, 0, 2 * m + 1 + (k / MACS as usize % 2) as u8),
        mac: MacAddr([2, 0, 0, 0, 0, m]),
        state,
        expires: 1000 + k as u64,
    }
}

fn snapshot(table: &LeaseTable<'_>) -> Vec<Lease> {
    let mut v: Vec<Lease> = table.iter().copied().collect();
    v.sort_by_key(|l| l.mac.0);
    v
}

/// Runs changes `from..to` against the journal on `medium`; returns the medium and how many
/// changes were persisted (acknowledged) before a write failed.
fn run(medium: Medium, from: usize, to: usize) -> (Medium, usize) {
    let (store, mount) = mount(medium);
    assert_eq!(mount.stray_bytes, 0);
    let mut slots = [Slot::EMPTY; 32];
    let mut table = LeaseTable::new(&mut slots);
    let (mut log, _) = LeaseLog::open(store, &mut table).unwrap();
    let mut acked = 0;
    for k in from..to {
        let lease = op(k);
        table.bind(lease, 0).unwrap();
        if log.record(&lease, &table).is_err() {
            break;
        }
        acked += 1;
    }
    (log.into_storage().into_flash().into_medium(), acked)
}

/// What a boot found besides the state: a torn tail, a cut-short rewrite.
#[derive(Default)]
struct Traces {
    torn: usize,
    rewrites: usize,
}

/// The state a fresh boot restores from `medium`, checked for corruption.
fn restore(medium: Medium) -> (Vec<Lease>, Medium) {
    restore_traced(medium, &mut Traces::default())
}

fn restore_traced(medium: Medium, traces: &mut Traces) -> (Vec<Lease>, Medium) {
    let (store, mount) = mount(medium);
    assert_eq!(mount.formatted, None, "{mount:?}");
    assert_eq!(mount.stray_bytes, 0, "{mount:?}");
    let mut slots = [Slot::EMPTY; 32];
    let mut table = LeaseTable::new(&mut slots);
    let (log, restored) = LeaseLog::open(store, &mut table).unwrap();
    assert!(restored.replay.torn_bytes <= FRAME, "{restored:?}");
    traces.torn += usize::from(restored.replay.torn_bytes > 0);
    traces.rewrites += usize::from(mount.interrupted_rewrite);
    (
        snapshot(&table),
        log.into_storage().into_flash().into_medium(),
    )
}

fn expected(n: usize) -> Vec<Lease> {
    let mut slots = [Slot::EMPTY; 32];
    let mut table = LeaseTable::new(&mut slots);
    for k in 0..n {
        table.bind(op(k), 0).unwrap();
    }
    snapshot(&table)
}

fn formatted() -> Medium {
    mount(Medium::new()).0.into_flash().into_medium()
}

#[test]
fn nor_rules_are_enforced() {
    let mut f = Flash::new(Medium::new());
    // A fresh part is not erased: programming 1s fails.
    assert!(matches!(
        f.write(0, &[0xFF; 4]),
        Err(NorError::Overwrite(0))
    ));
    f.erase(0, 1024).unwrap();
    let mut b = [0u8; 8];
    f.read(0, &mut b).unwrap();
    assert_eq!(b, [0xFF; 8]);
    f.write(0, &[0xF0; 4]).unwrap();
    // Clearing more bits is allowed, setting one back is not, and nothing is half-written.
    f.write(0, &[0x70; 4]).unwrap();
    assert!(matches!(
        f.write(0, &[0x70, 0x70, 0x70, 0xF0, 0, 0, 0, 0]),
        Err(NorError::Overwrite(0))
    ));
    f.read(0, &mut b).unwrap();
    assert_eq!(b, [0x70, 0x70, 0x70, 0x70, 0xFF, 0xFF, 0xFF, 0xFF]);
    let kind = |e: NorError<_>| embedded_storage::nor_flash::NorFlashError::kind(&e);
    assert_eq!(
        kind(f.write(2, &[0; 4]).unwrap_err()),
        NorFlashErrorKind::NotAligned
    );
    assert_eq!(
        kind(f.erase(0, 100).unwrap_err()),
        NorFlashErrorKind::NotAligned
    );
    assert_eq!(
        kind(f.write(4096, &[0; 4]).unwrap_err()),
        NorFlashErrorKind::OutOfBounds
    );
    assert_eq!(f.capacity(), 4096);
}

#[test]
fn formats_a_blank_region_and_reports_garbage() {
    let mut blank = Medium::new();
    blank.bytes.fill(0xFF);
    assert_eq!(mount(blank).1.formatted, Some(Formatted::Blank));
    assert_eq!(
        mount(Medium::new()).1.formatted,
        Some(Formatted::Unreadable)
    );
    let (m, _) = run(formatted(), 0, 3);
    let (state, _) = restore(m);
    assert_eq!(state, expected(3));
}

#[test]
fn works_with_wide_program_units() {
    // An STM32H7 programs 32 bytes at a time: frames and the header take a 32-byte slot each.
    type Wide = EmulatedNor<RamMedium<8192>, 32, 2048>;
    let mount_wide = |m| NorJournal::mount(Wide::new(m), 0, 2048, FRAME).unwrap();
    let (store, m) = mount_wide(RamMedium::new());
    assert_eq!(
        (m.formatted, store.capacity()),
        (Some(Formatted::Unreadable), 63)
    );
    let mut slots = [Slot::EMPTY; 32];
    let mut table = LeaseTable::new(&mut slots);
    let (mut log, _) = LeaseLog::open(store, &mut table).unwrap();
    for k in 0..200 {
        table.bind(op(k), 0).unwrap();
        log.record(&op(k), &table).unwrap();
    }
    let (store, m) = mount_wide(log.into_storage().into_flash().into_medium());
    // Three compactions (bank capacity 63, eight live leases).
    assert!(m.seq == 4 && m.stray_bytes == 0, "{m:?}");
    let mut slots = [Slot::EMPTY; 32];
    let mut table = LeaseTable::new(&mut slots);
    LeaseLog::open(store, &mut table).unwrap();
    assert_eq!(snapshot(&table), expected(200));
}

#[test]
fn refuses_a_region_that_does_not_fit() {
    let f = Flash::new(Medium::new());
    assert!(NorJournal::mount(f, 0, 1000, FRAME).is_err());
    let f = Flash::new(Medium::new());
    assert!(NorJournal::mount(f, 1024, 2048, FRAME).is_err());
}

#[test]
fn a_cut_after_any_write_leaves_the_old_or_the_new_state() {
    const CHANGES: usize = 300;
    let base = formatted();
    // The uncut run: how many medium writes it takes, and that it compacts several times.
    let mut counted = base.clone();
    counted.cut_after(Some(usize::MAX));
    let (after, acked) = run(counted, 0, CHANGES);
    assert_eq!(acked, CHANGES);
    let writes = usize::MAX - after.budget().unwrap();
    let (_, m) = mount(after.clone());
    assert!(m.seq >= 4, "too few compactions to prove them: {m:?}");
    assert_eq!(restore(after).0, expected(CHANGES));
    let states: Vec<Vec<Lease>> = (0..=CHANGES).map(expected).collect();
    let mut traces = Traces::default();
    for cut in 0..writes {
        let mut medium = base.clone();
        medium.cut_after(Some(cut));
        let (mut medium, acked) = run(medium, 0, CHANGES);
        medium.cut_after(None);
        let (state, medium) = restore_traced(medium, &mut traces);
        let in_flight = states.get(acked + 1);
        assert!(
            state == states[acked] || Some(&state) == in_flight,
            "cut after write {cut}: {acked} changes acknowledged, restored {state:?}"
        );
        // The journal goes on from there, and the next boot sees the change.
        let done = acked + usize::from(state != states[acked]);
        let (medium, n) = run(medium, done, done + 1);
        assert_eq!(n, 1);
        let (state, _) = restore(medium);
        let mut table_slots = [Slot::EMPTY; 32];
        let mut table = LeaseTable::new(&mut table_slots);
        for k in (0..done).chain(done..done + 1) {
            table.bind(op(k), 0).unwrap();
        }
        assert_eq!(state, snapshot(&table), "after cut {cut}");
    }
    std::eprintln!(
        "{writes} cut points: {} torn tails, {} cut-short compactions",
        traces.torn,
        traces.rewrites
    );
    // The cuts did land inside appends and inside compactions.
    assert!(
        traces.torn > 100 && traces.rewrites > 10,
        "{} {}",
        traces.torn,
        traces.rewrites
    );
}
