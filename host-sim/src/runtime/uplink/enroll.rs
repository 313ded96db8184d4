//! The appliance's side of the enrollment exchange ([`uplink::enroll`]) over a TLS stream
//! that trusts the CA the token pins: challenge in, request with the proof out, certificate
//! or refusal in. Bytes in and out only; the port moves them.

use uplink::enroll::{
    Challenge, ENROLL_FRAME_MAX, EnrollRequest, EnrollResponse, EnrollmentToken, frame_len,
    proof_message, read_body, write_frame,
};
use uplink_tls::KeyPair;

/// What a complete frame led to.
pub enum Step {
    /// Send these bytes (the request) and wait for the response.
    Send(Vec<u8>),
    Enrolled {
        appliance_id: String,
        certificate: Vec<u8>,
    },
    Refused(String),
}

/// Received plaintext until a whole frame is in.
#[derive(Default)]
pub struct Exchange {
    buf: Vec<u8>,
    challenged: bool,
}

impl Exchange {
    /// Takes plaintext; `Ok(None)` until a frame is complete.
    pub fn receive(
        &mut self,
        data: &[u8],
        token: &EnrollmentToken,
        key: &KeyPair,
        name: &str,
    ) -> Result<Option<Step>, String> {
        self.buf.extend_from_slice(data);
        let [a, b, ..] = self.buf[..] else {
            return Ok(None);
        };
        let len = frame_len([a, b]).map_err(|e| format!("enrollment: {e}"))?;
        let Some(body) = self.buf.get(2..2 + len) else {
            return Ok(None);
        };
        let malformed = |e| format!("enrollment: {e}");
        if self.challenged {
            return Ok(Some(match read_body(body).map_err(malformed)? {
                EnrollResponse::Enrolled {
                    appliance_id,
                    certificate,
                    ..
                } => Step::Enrolled {
                    appliance_id: appliance_id.as_str().to_owned(),
                    certificate: certificate.to_vec(),
                },
                EnrollResponse::Refused(why) => Step::Refused(why.to_string()),
            }));
        }
        let challenge: Challenge = read_body(body).map_err(malformed)?;
        self.buf.drain(..2 + len);
        self.challenged = true;
        let request = EnrollRequest {
            secret: token.secret.clone(),
            public_key: heapless::Vec::from_slice(&key.public_point()).unwrap_or_default(),
            name: name.try_into().map_err(|_| "enrollment: name too long")?,
            proof: heapless::Vec::from_slice(&key.sign_fixed(&proof_message(&challenge.nonce)))
                .unwrap_or_default(),
        };
        let mut frame = vec![0u8; 2 + ENROLL_FRAME_MAX];
        let n = write_frame(&request, &mut frame).map_err(malformed)?;
        frame.truncate(n);
        Ok(Some(Step::Send(frame)))
    }
}
