use super::*;
use crate::assets::{StaticAssets, normalize};

fn convert(text: &[u8], blksize: usize) -> ([[u8; 8]; 8], [usize; 8]) {
    let files = [("t", text)];
    let mut store = StaticAssets::new(&files);
    let asset = store.open(&normalize(b"t").unwrap()).unwrap();
    let mut blocks = [[0u8; 8]; 8];
    let mut lens = [0; 8];
    let mut at = Cursor::START;
    for (b, len) in blocks.iter_mut().zip(lens.iter_mut()) {
        (at, *len) = netascii_block(&mut store, asset, at, &mut b[..blksize]).unwrap();
    }
    (blocks, lens)
}

#[test]
fn netascii_carries_pairs_across_blocks() {
    // The CR of "\r\n" lands on the last byte of block 1; the LF moves to block 2.
    let (b, lens) = convert(b"abc\ndef\rg", 4);
    assert_eq!(&b[0][..4], b"abc\r");
    assert_eq!(&b[1][..4], b"\ndef");
    assert_eq!(&b[2][..3], b"\r\0g");
    assert_eq!(lens[..4], [4, 4, 3, 0]);
}

#[test]
fn netascii_exact_multiple_ends_with_an_empty_block() {
    let (b, lens) = convert(b"ab\ncd", 3);
    assert_eq!(&b[0][..3], b"ab\r");
    assert_eq!(&b[1][..3], b"\ncd");
    assert_eq!(lens[..3], [3, 3, 0]);
}
