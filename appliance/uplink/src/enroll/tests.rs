use super::*;

fn token(addr: &str, secret_len: usize) -> EnrollmentToken {
    EnrollmentToken {
        addr: String::try_from(addr).unwrap(),
        ca_sha256: [7; 32],
        secret: Vec::from_slice(&[0xa5; SECRET_MAX][..secret_len]).unwrap(),
    }
}

#[test]
fn token_round_trips_at_the_limits() {
    let short = token("p:1", 16);
    let long = token(core::str::from_utf8(&[b'h'; ADDR_MAX]).unwrap(), SECRET_MAX);
    for t in [short, long] {
        let text = t.encode().unwrap();
        assert!(text.starts_with(TOKEN_PREFIX));
        assert_eq!(EnrollmentToken::parse(&text), Ok(t));
    }
}

#[test]
fn damaged_tokens_are_refused() {
    let text = token("provider.example:7443", 32).encode().unwrap();
    assert_eq!(EnrollmentToken::parse(&text[1..]), Err(TokenError::Prefix));
    assert_eq!(
        EnrollmentToken::parse(&text[..text.len() - 3]),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        EnrollmentToken::parse("rack1:!!!!"),
        Err(TokenError::Malformed)
    );
}

#[test]
fn frames_refuse_oversize_and_trailing_bytes() {
    assert_eq!(frame_len([0x08, 0x01]), Err(FrameError::TooLarge));
    assert_eq!(frame_len([0, 0]), Err(FrameError::Malformed));
    let mut buf = [0u8; 64];
    let n = write_frame(
        &Challenge {
            nonce: [1; NONCE_LEN],
        },
        &mut buf,
    )
    .unwrap();
    let body = &buf[2..n];
    assert_eq!(frame_len([buf[0], buf[1]]), Ok(body.len()));
    assert!(read_body::<Challenge>(body).is_ok());
    let mut longer = [0u8; 64];
    longer[..body.len()].copy_from_slice(body);
    assert_eq!(
        read_body::<Challenge>(&longer[..body.len() + 1]),
        Err(FrameError::Malformed)
    );
}
