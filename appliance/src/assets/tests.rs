use super::*;

#[test]
fn names_are_normalised_and_traversal_refused() {
    let ok = |raw: &[u8]| {
        normalize(raw).map(|n| heapless::String::<MAX_NAME>::try_from(n.as_str()).unwrap())
    };
    assert_eq!(ok(b"/ipxe.efi").unwrap(), "ipxe.efi");
    assert_eq!(
        ok(b"pxelinux.cfg\\default").unwrap(),
        "pxelinux.cfg/default"
    );
    assert_eq!(ok(b"//a/./b//c").unwrap(), "a/b/c");
    assert_eq!(normalize(b"../etc/passwd"), Err(NameError::Traversal));
    assert_eq!(normalize(b"a/../../b"), Err(NameError::Traversal));
    assert_eq!(normalize(b"a\\..\\b"), Err(NameError::Traversal));
    assert_eq!(normalize(b"a\0b"), Err(NameError::BadCharacter));
    assert_eq!(normalize(b"\xff"), Err(NameError::BadCharacter));
    assert_eq!(normalize(b"/"), Err(NameError::Empty));
    assert_eq!(normalize(&[b'a'; 200]), Err(NameError::TooLong));
}

#[test]
fn static_store_reads_in_blocks() {
    let mut store = StaticAssets::new(&[("a", b"hello world")]);
    let a = store.open(&normalize(b"a").unwrap()).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(store.read(a, 8, &mut buf), Ok(3));
    assert_eq!(&buf[..3], b"rld");
    assert_eq!(store.read(a, 99, &mut buf), Ok(0));
    assert_eq!(
        store.open(&normalize(b"b").unwrap()),
        Err(AssetError::NotFound)
    );
}
