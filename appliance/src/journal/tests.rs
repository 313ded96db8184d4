use super::*;

#[derive(Debug, PartialEq)]
struct Pair(u8, u8);

impl Record for Pair {
    const LEN: usize = 2;
    fn encode(&self, out: &mut [u8]) {
        out.copy_from_slice(&[self.0, self.1]);
    }
    fn decode(b: &[u8]) -> Option<Pair> {
        Some(Pair(b[0], b[1]))
    }
}

#[test]
fn crc_matches_the_standard_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn replays_appends_compacts_and_stops_at_a_torn_record() {
    let (mut j, replay) = Journal::open(RamStorage::<256>::default(), |_: Pair| {}).unwrap();
    assert_eq!(replay, Replay::default());
    for i in 0..5 {
        j.append(&Pair(i, i)).unwrap();
    }
    j.compact([Pair(9, 9), Pair(8, 8)].iter()).unwrap();
    j.append(&Pair(7, 7)).unwrap();
    let mut storage = j.storage;
    storage.truncate(storage.len() - 1);
    let mut seen = heapless::Vec::<Pair, 8>::new();
    let (j, replay) = Journal::open(storage, |p| seen.push(p).unwrap()).unwrap();
    assert_eq!(seen.as_slice(), &[Pair(9, 9), Pair(8, 8)]);
    assert_eq!(
        replay,
        Replay {
            records: 2,
            torn_bytes: 5
        }
    );
    assert_eq!(j.records(), 2);
}
