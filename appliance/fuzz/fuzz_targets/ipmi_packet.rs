//! The IPMI decoders, and the client in every state of a session, on arbitrary bytes: no
//! input may panic, a finished operation always reports, and the client never sends a
//! datagram its own decoder cannot split.
//!
//! After the decoders see the whole input, it is read as a script `[op, len, payload[len]]`
//! against a small honest BMC (suite 3 or 17, picked by the first byte): `op % 4`: 0 = the
//! payload as a datagram from the BMC, 1 = the BMC's genuine answer to the last request,
//! 2 = that answer with the byte at `payload[0]` flipped, 3 = advance the clock by
//! `len * 100` ms. Higher bits of `op` start a new operation or close the session.
#![no_main]

use appliance::bmc::ipmi::cipher::{Suite, aes_decrypt, hmac};
use appliance::bmc::ipmi::command::{self, DeviceId};
use appliance::bmc::ipmi::rakp::{Handshake, Keys};
use appliance::bmc::ipmi::session::Session;
use appliance::bmc::ipmi::wire::{self, Packet, Reader, Response, checksum, payload};
use appliance::bmc::ipmi::{Client, Config};
use appliance::bmc::{BootMode, Credentials, Operation, PowerAction, PxeBoot};
use libfuzzer_sys::fuzz_target;

/// Fixed "randomness": the fuzzer explores inputs, not nonces.
struct Counter(u64);

impl rand_core::TryRng for Counter {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
        Ok(self.0 >> 11)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.iter_mut().for_each(|b| *b = self.0 as u8);
        self.0 = self.0.wrapping_add(1);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Counter {}

const BMC_ID: u32 = 0x1234;
const PASSWORD: &str = "password";

/// A BMC that answers every request correctly (suite `suite` only).
struct Bmc {
    suite: u8,
    hs: Option<Handshake>,
    session: Option<Session>,
    rng: Counter,
}

impl Bmc {
    fn answer(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let mut out = [0u8; 256];
        let n = match wire::parse(datagram).ok()? {
            Packet::V15 { payload, .. } => {
                wire::encode_v15_plain(&mut out, &self.ipmi(payload)?).ok()?
            }
            Packet::V2 {
                header, payload, ..
            } if header.session_id == 0 => {
                let (kind, reply) = match header.payload_type {
                    payload::IPMI => (payload::IPMI, self.ipmi(payload)?),
                    payload::OPEN_SESSION_REQUEST => {
                        (payload::OPEN_SESSION_RESPONSE, self.open(payload)?)
                    }
                    payload::RAKP1 => (payload::RAKP2, self.rakp2(payload)?),
                    payload::RAKP3 => (payload::RAKP4, self.rakp4(payload)?),
                    _ => return None,
                };
                wire::encode_v2_plain(&mut out, kind, &reply).ok()?
            }
            Packet::V2 { .. } => {
                let mut scratch = [0u8; 128];
                let msg = self
                    .session
                    .as_mut()?
                    .open(datagram, &mut scratch)
                    .ok()?
                    .to_vec();
                let reply = self.ipmi(&msg)?;
                self.session
                    .as_mut()?
                    .seal(&mut out, &mut self.rng, |w| w.put(&reply))
                    .ok()?
            }
        };
        Some(out[..n].to_vec())
    }

    fn ipmi(&mut self, req: &[u8]) -> Option<Vec<u8>> {
        let (netfn, seq, cmd) = (req.get(1)? >> 2, req.get(4)? >> 2, *req.get(5)?);
        let data: Vec<u8> = match (netfn, cmd) {
            (6, 0x38) => vec![1, 0x97, 0x04, 0x03, 0, 0, 0, 0],
            (6, 0x54) => {
                let [a, i, c] = Suite::from_id(self.suite)?.algorithms();
                vec![1, 0xC0, self.suite, a, 0x40 | i, 0x80 | c]
            }
            (6, 0x01) => vec![
                0x23, 0x09, 0x08, 0x9f, 0x02, 0x00, 0x91, 0x12, 0x00, 0x02, 0x0f,
            ],
            (6, 0x37) => vec![7; 16],
            (0, 0x01) => vec![seq & 1, 0, 0, 0],
            _ => vec![],
        };
        let head = [wire::CONSOLE_ADDR, (netfn + 1) << 2];
        let mut out = vec![
            head[0],
            head[1],
            checksum(&head),
            wire::BMC_ADDR,
            seq << 2,
            cmd,
            0,
        ];
        out.extend(data);
        out.push(checksum(&out[3..]));
        Some(out)
    }

    fn open(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        let console_id = u32::from_le_bytes(p.get(4..8)?.try_into().ok()?);
        let suite = Suite::from_id(self.suite)?;
        self.hs = Some(Handshake::new(
            suite, console_id, [0; 16], 4, "admin", PASSWORD,
        )?);
        let mut out = vec![*p.first()?, 0, 4, 0];
        out.extend(console_id.to_le_bytes());
        out.extend(BMC_ID.to_le_bytes());
        out.extend(p.get(8..32)?);
        Some(out)
    }

    fn rakp2(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        let hs = self.hs.as_mut()?;
        let mut r = Reader::new(p);
        let tag = r.u8().ok()?;
        r.take(7).ok()?;
        hs.rm = r.array().ok()?;
        hs.role = r.u8().ok()?;
        hs.bmc_id = BMC_ID;
        hs.rc = [9; 16];
        hs.guid = [7; 16];
        let code = hmac(
            hs.suite.auth,
            &kuid(),
            &[
                &hs.console_id.to_le_bytes(),
                &BMC_ID.to_le_bytes(),
                &hs.rm,
                &hs.rc,
                &hs.guid,
                &[hs.role],
                &[5],
                b"admin",
            ],
        )
        .ok()?;
        let mut out = vec![tag, 0, 0, 0];
        out.extend(hs.console_id.to_le_bytes());
        out.extend(hs.rc);
        out.extend(hs.guid);
        out.extend(code.as_slice());
        Some(out)
    }

    fn rakp4(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        let hs = self.hs.take()?;
        let sik = hs.sik().ok()?;
        let icv = hmac(
            hs.suite.auth,
            sik.as_slice(),
            &[&hs.rm, &BMC_ID.to_le_bytes(), &hs.guid],
        )
        .ok()?;
        let mut out = vec![*p.first()?, 0, 0, 0];
        out.extend(hs.console_id.to_le_bytes());
        out.extend(icv.truncated(hs.suite.rakp4_icv_len()));
        let keys = Keys::derive(hs.suite.auth, &sik).ok()?;
        self.session = Some(Session::new(hs.suite, BMC_ID, hs.console_id, keys));
        Some(out)
    }
}

fn kuid() -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..PASSWORD.len()].copy_from_slice(PASSWORD.as_bytes());
    k
}

const OPS: [Operation; 4] = [
    Operation::Status,
    Operation::Power(PowerAction::Cycle),
    Operation::BootPxe(PxeBoot {
        persistent: true,
        mode: BootMode::Legacy,
    }),
    Operation::Power(PowerAction::SoftOff),
];

fuzz_target!(|data: &[u8]| {
    if let Ok(Packet::V2 { trailer, .. }) = wire::parse(data) {
        let _ = wire::split_trailer(data, trailer, 12);
    }
    let _ = Response::parse(data);
    let _ = command::cipher_suite_ids(data).count();
    let _ = DeviceId::parse(data);
    let _ = command::supports_v2(data);
    let mut out = [0u8; 256];
    let _ = aes_decrypt(&[1; 16], data, &mut out);

    let Some((&selector, mut script)) = data.split_first() else {
        return;
    };
    let suite = if selector & 1 == 0 { 3 } else { 17 };
    let creds = Credentials {
        user: "admin".try_into().unwrap(), // ok: constants within the capacity
        password: PASSWORD.try_into().unwrap(), // ok: constants within the capacity
    };
    let mut client = Client::new(Config::default(), creds);
    let mut bmc = Bmc {
        suite,
        hs: None,
        session: None,
        rng: Counter(5),
    };
    let mut rng = Counter(1);
    let mut now = 0u64;
    let mut last: Option<Vec<u8>> = None;
    let _ = client.start(Operation::Status, now);
    while let [op, len, rest @ ..] = script {
        let len = usize::from(*len).min(rest.len());
        let (payload, tail) = rest.split_at(len);
        script = tail;
        match op >> 2 & 7 {
            1 => {
                let _ = client.start(OPS[usize::from(op >> 5) % 4], now);
            }
            2 => client.close(now),
            _ => {}
        }
        while let Some(n) = client.poll_transmit(now, &mut rng, &mut out) {
            assert!(
                matches!(wire::parse(&out[..n]), Ok(_)),
                "client sent an unsplittable datagram"
            );
            last = Some(out[..n].to_vec());
        }
        let answer = last.as_deref().and_then(|req| bmc.answer(req));
        match op % 4 {
            0 => client.receive(now, payload),
            1 => answer.iter().for_each(|a| client.receive(now, a)),
            2 => {
                if let (Some(mut a), Some(&at)) = (answer, payload.first()) {
                    let i = usize::from(at) % a.len();
                    a[i] ^= 1 << (at % 8);
                    client.receive(now, &a);
                }
            }
            _ => now += len as u64 * 100,
        }
        if let Some(at) = client.poll_at() {
            assert!(
                at <= now.saturating_add(1000),
                "deadline beyond the retry timeout"
            );
        }
        let _ = client.poll_result();
    }
    // Nothing answers any more: everything in flight ends within the retry budget.
    for _ in 0..20 {
        let Some(at) = client.poll_at() else { break };
        now = now.max(at);
        while client.poll_transmit(now, &mut rng, &mut out).is_some() {}
        let _ = client.poll_result();
    }
    assert_eq!(client.poll_at(), None, "still busy after the retry budget");
    let _ = client.stats();
});
