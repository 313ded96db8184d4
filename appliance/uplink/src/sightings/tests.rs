use super::*;

const A: Mac = Mac([2, 0, 0, 0, 0, 1]);

#[test]
fn once_per_interval_unless_something_changed() {
    let mut s = Sightings::<2>::new(600);
    let first = s.sighting(A, None, Some(7), 100).unwrap();
    assert_eq!((first.first_seen, first.last_seen), (100, 100));
    assert!(
        s.sighting(A, None, Some(7), 200).is_none(),
        "within the interval"
    );
    let uuid = Some(Uuid([9; 16]));
    let changed = s.sighting(A, uuid, None, 300).unwrap();
    assert_eq!(
        (changed.uuid, changed.arch, changed.first_seen),
        (uuid, Some(7), 100)
    );
    assert!(
        s.sighting(A, None, None, 400).is_none(),
        "a bare request keeps the UUID"
    );
    assert!(
        s.sighting(A, None, None, 900).is_some(),
        "the interval is over"
    );
}

#[test]
fn a_full_table_forgets_the_oldest_report() {
    let mut s = Sightings::<2>::new(600);
    for (i, now) in [(1u8, 10), (2, 20), (3, 30)] {
        assert!(
            s.sighting(Mac([2, 0, 0, 0, 0, i]), None, None, now)
                .is_some()
        );
    }
    let macs: heapless::Vec<Mac, 2> = s.all(40).map(|m| m.mac).collect();
    assert!(!macs.contains(&Mac([2, 0, 0, 0, 0, 1])), "{macs:?}");
    assert_eq!(macs.len(), 2);
}
