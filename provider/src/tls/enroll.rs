//! The provider side of enrollment (protocol in [`uplink::enroll`]): challenge, request,
//! certificate or refusal. Checks run cheapest first and the token is redeemed only once the
//! request and its proof are good, so a malformed or forged request does not burn a token.

use std::time::{SystemTime, UNIX_EPOCH};

use heapless::String as HString;
use rcgen::PublicKeyData;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uplink::ID_MAX;
use uplink::enroll::{
    Challenge, ENROLL_FRAME_MAX, EnrollRefusal, EnrollRequest, EnrollResponse, NONCE_LEN,
    PUBLIC_KEY_LEN, frame_len, proof_message, read_body, write_frame,
};

use super::BoxError;
use super::EnrollmentStore;
use super::ca::{P256PublicKey, key_fingerprint};
use super::server::Shared;

/// Runs the exchange on an established enrollment connection and closes it.
pub(super) async fn exchange<S: EnrollmentStore, T, IO>(
    shared: &Shared<S, T>,
    stream: &mut IO,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| "no randomness for the enrollment nonce")?;
    send(stream, &Challenge { nonce }).await?;

    let mut body = [0u8; ENROLL_FRAME_MAX];
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).await?;
    let len = frame_len(header)?;
    stream.read_exact(&mut body[..len]).await?;
    let result = match read_body::<EnrollRequest>(&body[..len]) {
        Ok(request) => enroll(shared, &request, &nonce),
        Err(_) => Err(EnrollRefusal::BadRequest),
    };
    match &result {
        Ok((id, cert)) => {
            let response = EnrollResponse::Enrolled {
                appliance_id: id.clone(),
                certificate: cert,
                ca_certificate: shared.ca.certificate(),
            };
            send(stream, &response).await?;
        }
        Err(refusal) => send(stream, &EnrollResponse::Refused(*refusal)).await?,
    }
    let _ = stream.shutdown().await;
    match result {
        Ok((id, _)) => {
            eprintln!("enroll: appliance {id} enrolled");
            Ok(())
        }
        Err(refusal) => Err(format!("enroll refused: {refusal}").into()),
    }
}

/// Checks the request and, if it holds, redeems the token, registers the appliance and
/// issues its certificate.
fn enroll<S: EnrollmentStore, T>(
    shared: &Shared<S, T>,
    request: &EnrollRequest,
    nonce: &[u8; NONCE_LEN],
) -> Result<(HString<ID_MAX>, Vec<u8>), EnrollRefusal> {
    let name = request.name.as_str();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(EnrollRefusal::BadRequest);
    }
    let key = request.public_key.as_slice();
    if key.len() != PUBLIC_KEY_LEN || key[0] != 0x04 {
        return Err(EnrollRefusal::BadRequest);
    }
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key)
        .verify(&proof_message(nonce), &request.proof)
        .map_err(|_| EnrollRefusal::BadProof)?;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    shared.store.redeem_token(&request.secret, now)?;
    let fingerprint = key_fingerprint(&P256PublicKey(key).subject_public_key_info());
    let internal = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("enroll: {what}: {e}");
        EnrollRefusal::Internal
    };
    let id = shared
        .store
        .register_appliance(fingerprint, name)
        .map_err(|e| internal("registering the appliance", &e))?
        .to_string();
    let id = HString::try_from(id.as_str())
        .map_err(|_| internal("appliance id", &"longer than ID_MAX"))?;
    let cert = shared
        .ca
        .issue_client(key, &id)
        .map_err(|e| internal("issuing the certificate", &e))?;
    Ok((id, cert.to_vec()))
}

async fn send<IO: AsyncWrite + Unpin>(
    stream: &mut IO,
    msg: &impl serde::Serialize,
) -> Result<(), BoxError> {
    let mut frame = [0u8; 2 + ENROLL_FRAME_MAX];
    let n = write_frame(msg, &mut frame)?;
    stream.write_all(&frame[..n]).await?;
    stream.flush().await?;
    Ok(())
}
