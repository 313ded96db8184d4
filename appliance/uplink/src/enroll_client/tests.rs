use super::*;

fn frame<T: serde::Serialize>(msg: &T) -> ([u8; FRAME_MAX], usize) {
    let mut out = [0u8; FRAME_MAX];
    let n = write_frame(msg, &mut out).unwrap();
    (out, n)
}

#[test]
fn challenge_then_certificate_in_pieces() {
    let sign = |m: &[u8]| {
        assert!(m.ends_with(&[9; 32]), "the proof covers the nonce");
        [7; SIGNATURE_LEN]
    };
    let who = Credentials {
        secret: b"secret",
        public_key: &[4; PUBLIC_KEY_LEN],
        sign: &sign,
        name: "rack-1",
    };
    let mut ex = Exchange::default();
    let mut out = [0u8; FRAME_MAX];
    let (challenge, n) = frame(&Challenge { nonce: [9; 32] });
    assert_eq!(ex.receive(&challenge[..1], &who, &mut out), Ok(None));
    let Ok(Some(Step::Send(len))) = ex.receive(&challenge[1..n], &who, &mut out) else {
        panic!("no request");
    };
    let request: EnrollRequest = read_body(&out[2..len]).unwrap();
    assert_eq!(request.proof[..], [7; SIGNATURE_LEN]);
    assert_eq!(request.name.as_str(), "rack-1");

    let (response, n) = frame(&EnrollResponse::Enrolled {
        appliance_id: "12".try_into().unwrap(),
        certificate: b"cert",
        ca_certificate: b"ca",
    });
    assert_eq!(ex.receive(&response[..n - 1], &who, &mut out), Ok(None));
    assert_eq!(
        ex.receive(&response[n - 1..n], &who, &mut out),
        Ok(Some(Step::Enrolled {
            appliance_id: "12".try_into().unwrap(),
            certificate: b"cert",
            ca_certificate: b"ca",
        }))
    );
}

#[test]
fn refusal_and_oversize() {
    let sign = |_: &[u8]| [0; SIGNATURE_LEN];
    let who = Credentials {
        secret: b"s",
        public_key: &[4; PUBLIC_KEY_LEN],
        sign: &sign,
        name: "n",
    };
    let mut ex = Exchange::default();
    let mut out = [0u8; FRAME_MAX];
    let (challenge, n) = frame(&Challenge { nonce: [1; 32] });
    assert!(matches!(
        ex.receive(&challenge[..n], &who, &mut out),
        Ok(Some(Step::Send(_)))
    ));
    let (refusal, n) = frame(&EnrollResponse::Refused(EnrollRefusal::TokenUsed));
    assert_eq!(
        ex.receive(&refusal[..n], &who, &mut out),
        Ok(Some(Step::Refused(EnrollRefusal::TokenUsed)))
    );
    let mut ex = Exchange::default();
    assert_eq!(
        ex.receive(&[0xff, 0xff], &who, &mut out),
        Err(ExchangeError::Frame(FrameError::TooLarge))
    );
}
