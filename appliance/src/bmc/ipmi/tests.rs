//! The client against a scripted BMC: the managed system's side of §13 written out here
//! (its HMACs computed from the spec's formulas, not through the client's code paths).
extern crate std;

use core::convert::Infallible;
use std::vec;
use std::vec::Vec;

use super::cipher::{Suite, hmac};
use super::rakp::{Handshake, Keys};
use super::session::Session;
use super::wire::{self, Packet, Reader, checksum, payload};
use super::{Client, Config, Stats};
use crate::bmc::{BootMode, Credentials, Error, Operation, PowerAction, PowerState, PxeBoot};

/// Deterministic RNG for tests (xorshift); the board supplies a real one.
pub struct TestRng(pub u64);

impl rand_core::TryRng for TestRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for b in dst {
            *b = self.try_next_u64()? as u8;
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for TestRng {}

const GUID: [u8; 16] = [
    0xA1, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 1, 2, 3, 4, 5, 6, 7, 8,
];
const BMC_ID: u32 = 0x0000_0082;

fn creds(password: &str) -> Credentials {
    Credentials {
        user: "admin".try_into().unwrap(),
        password: password.try_into().unwrap(),
    }
}

/// A BMC as the spec describes it, with one chassis and a log of the commands it ran.
struct Bmc {
    suites: Vec<u8>,
    password: &'static str,
    /// Suites it refuses at Open Session despite listing them (status 11h).
    refuse: Vec<u8>,
    power: bool,
    hs: Option<Handshake>,
    session: Option<Session>,
    commands: Vec<(u8, u8, Vec<u8>)>,
    rakp3_refusals: usize,
    rng: TestRng,
}

impl Bmc {
    fn new(suites: &[u8]) -> Bmc {
        Bmc {
            suites: suites.to_vec(),
            password: "password",
            refuse: Vec::new(),
            power: false,
            hs: None,
            session: None,
            commands: Vec::new(),
            rakp3_refusals: 0,
            rng: TestRng(99),
        }
    }

    /// The answer to one datagram, if any.
    fn answer(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let mut out = [0u8; 256];
        let n = match wire::parse(datagram).ok()? {
            Packet::V15 { payload, .. } => {
                let reply = self.ipmi(payload)?;
                wire::encode_v15_plain(&mut out, &reply).ok()?
            }
            Packet::V2 {
                header, payload, ..
            } if header.session_id == 0 => {
                let (kind, reply) = match header.payload_type {
                    payload::IPMI => (payload::IPMI, self.ipmi(payload)?),
                    payload::OPEN_SESSION_REQUEST => {
                        (payload::OPEN_SESSION_RESPONSE, self.open_session(payload)?)
                    }
                    payload::RAKP1 => (payload::RAKP2, self.rakp1(payload)?),
                    payload::RAKP3 => (payload::RAKP4, self.rakp3(payload)?),
                    _ => return None,
                };
                wire::encode_v2_plain(&mut out, kind, &reply).ok()?
            }
            Packet::V2 { .. } => {
                let mut scratch = [0u8; 128];
                let session = self.session.as_mut()?;
                let msg = session.open(datagram, &mut scratch).ok()?.to_vec();
                let reply = self.ipmi(&msg)?;
                let session = self.session.as_mut()?;
                let n = session
                    .seal(&mut out, &mut self.rng, |w| w.put(&reply))
                    .ok()?;
                if msg.get(5) == Some(&0x3C) {
                    self.session = None;
                }
                n
            }
        };
        Some(out[..n].to_vec())
    }

    /// Runs an IPMI request; returns the framed response.
    fn ipmi(&mut self, req: &[u8]) -> Option<Vec<u8>> {
        assert_eq!(checksum(&req[..3]), 0);
        assert_eq!(checksum(&req[3..]), 0);
        let (netfn, seq, cmd, data) = (req[1] >> 2, req[4] >> 2, req[5], &req[6..req.len() - 1]);
        self.commands.push((netfn, cmd, data.to_vec()));
        let (cc, body): (u8, Vec<u8>) = match (netfn, cmd) {
            (6, 0x38) => (0, vec![1, 0x97, 0x04, 0x03, 0, 0, 0, 0]),
            (6, 0x54) => {
                let list: Vec<u8> = self
                    .suites
                    .iter()
                    .flat_map(|&id| {
                        let [a, i, c] = Suite::from_id(id)
                            .map(|s| s.algorithms())
                            .unwrap_or([2, 2, 2]);
                        [0xC0, id, a, 0x40 | i, 0x80 | c]
                    })
                    .collect();
                let start = usize::from(data[2] & 0x3F) * 16;
                let mut body = vec![1];
                body.extend(list.iter().skip(start).take(16));
                (0, body)
            }
            (6, 0x3B) => (0, vec![data[0]]),
            (6, 0x01) => (
                0,
                vec![
                    0x23, 0x09, 0x08, 0x9f, 0x02, 0x00, 0x91, 0x12, 0x00, 0x02, 0x0f,
                ],
            ),
            (6, 0x37) => (0, GUID.to_vec()),
            (6, 0x3C) => (0, vec![]),
            (0, 0x01) => (0, vec![u8::from(self.power), 0, 0, 0]),
            (0, 0x02) => {
                self.power = matches!(data[0], 1..=3);
                (0, vec![])
            }
            (0, 0x08) if data[0] == 0 => (0x80, vec![]), // no set-in-progress lock here
            (0, 0x08) => (0, vec![]),
            _ => (0xC1, vec![]),
        };
        let head = [wire::CONSOLE_ADDR, (netfn + 1) << 2];
        let mut out = vec![
            head[0],
            head[1],
            checksum(&head),
            wire::BMC_ADDR,
            seq << 2,
            cmd,
            cc,
        ];
        out.extend(&body);
        out.push(checksum(&out[3..]));
        Some(out)
    }

    fn open_session(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        let console_id = u32::from_le_bytes(p[4..8].try_into().unwrap());
        let algs = [p[12], p[20], p[28]];
        let suite = self
            .suites
            .iter()
            .filter_map(|&id| Suite::from_id(id))
            .find(|s| s.algorithms() == algs);
        let mut out = vec![p[0], 0, 4, 0];
        out.extend(console_id.to_le_bytes());
        match suite {
            Some(s) if !self.refuse.contains(&s.id) => {
                out.extend(BMC_ID.to_le_bytes());
                out.extend(&p[8..32]);
                self.hs = Some(
                    Handshake::new(s, console_id, [0; 16], 4, "admin", self.password).unwrap(),
                );
            }
            _ => out[1] = 0x11,
        }
        Some(out)
    }

    fn rakp1(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        let hs = self.hs.as_mut()?;
        let mut r = Reader::new(p);
        let tag = r.u8().ok()?;
        r.take(7).ok()?;
        hs.rm = r.array().ok()?;
        hs.role = r.u8().ok()?;
        hs.bmc_id = BMC_ID;
        hs.rc = [0x5A; 16];
        hs.guid = GUID;
        let ulen = p[27];
        let user = &p[28..28 + usize::from(ulen)];
        let key = kuid(self.password);
        let code = hmac(
            hs.suite.auth,
            &key,
            &[
                &hs.console_id.to_le_bytes(),
                &BMC_ID.to_le_bytes(),
                &hs.rm,
                &hs.rc,
                &GUID,
                &[hs.role],
                &[ulen],
                user,
            ],
        )
        .unwrap();
        let mut out = vec![tag, 0, 0, 0];
        out.extend(hs.console_id.to_le_bytes());
        out.extend(hs.rc);
        out.extend(GUID);
        out.extend(code.as_slice());
        Some(out)
    }

    fn rakp3(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        let hs = self.hs.take()?;
        if p[1] != 0 {
            // The console refused RAKP2: the half-open session is dropped, no answer.
            self.rakp3_refusals += 1;
            return None;
        }
        let key = kuid(self.password);
        let expect = hmac(
            hs.suite.auth,
            &key,
            &[
                &hs.rc,
                &hs.console_id.to_le_bytes(),
                &[hs.role],
                &[5],
                b"admin",
            ],
        )
        .unwrap();
        assert_eq!(&p[8..], expect.as_slice(), "RAKP3 proves the password");
        let sik = hmac(
            hs.suite.auth,
            &key,
            &[&hs.rm, &hs.rc, &[hs.role], &[5], b"admin"],
        )
        .unwrap();
        let icv = hmac(
            hs.suite.auth,
            sik.as_slice(),
            &[&hs.rm, &BMC_ID.to_le_bytes(), &GUID],
        )
        .unwrap();
        let mut out = vec![p[0], 0, 0, 0];
        out.extend(hs.console_id.to_le_bytes());
        out.extend(icv.truncated(hs.suite.rakp4_icv_len()));
        let keys = Keys::derive(hs.suite.auth, &sik).unwrap();
        self.session = Some(Session::new(hs.suite, BMC_ID, hs.console_id, keys));
        Some(out)
    }
}

fn kuid(password: &str) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..password.len()].copy_from_slice(password.as_bytes());
    k
}

/// Runs the client against `bmc` until the operation finishes; returns its result and the
/// time it took. `tamper` may change or drop each answer (by index).
fn drive(
    client: &mut Client,
    bmc: &mut Bmc,
    now: &mut u64,
    mut tamper: impl FnMut(usize, &mut Client, Vec<u8>) -> Option<Vec<u8>>,
) -> Option<Result<PowerState, Error>> {
    let mut rng = TestRng(7);
    let mut answers = 0;
    for _ in 0..200 {
        let mut buf = [0u8; 256];
        while let Some(n) = client.poll_transmit(*now, &mut rng, &mut buf) {
            if let Some(reply) = bmc.answer(&buf[..n]) {
                if let Some(reply) = tamper(answers, client, reply) {
                    client.receive(*now, &reply);
                }
                answers += 1;
            }
        }
        if let Some(r) = client.poll_result() {
            return Some(r);
        }
        match client.poll_at() {
            Some(at) => *now = (*now).max(at),
            None => return None,
        }
    }
    panic!("client did not finish");
}

fn run(
    client: &mut Client,
    bmc: &mut Bmc,
    now: &mut u64,
    op: Operation,
) -> Result<PowerState, Error> {
    client.start(op, *now).unwrap();
    drive(client, bmc, now, |_, _, r| Some(r)).unwrap()
}

fn close(client: &mut Client, bmc: &mut Bmc, now: &mut u64) {
    client.close(*now);
    assert_eq!(drive(client, bmc, now, |_, _, r| Some(r)), None);
    assert!(client.is_closed());
}

#[test]
fn full_handshake_operations_reuse_and_close() {
    let mut bmc = Bmc::new(&[0, 1, 2, 3, 17]);
    let mut client = Client::new(Config::default(), creds("password"));
    let mut now = 0;
    assert_eq!(
        run(&mut client, &mut bmc, &mut now, Operation::Status),
        Ok(PowerState::Off)
    );
    assert_eq!(client.cipher_suite(), Some(17));
    assert_eq!(client.system_guid(), Some(GUID));
    assert_eq!(client.device_id().unwrap().manufacturer, 0x1291);
    assert_eq!(
        run(
            &mut client,
            &mut bmc,
            &mut now,
            Operation::Power(PowerAction::On)
        ),
        Ok(PowerState::On)
    );
    let pxe = PxeBoot {
        persistent: false,
        mode: BootMode::Efi,
    };
    assert_eq!(
        run(&mut client, &mut bmc, &mut now, Operation::BootPxe(pxe)),
        Ok(PowerState::On)
    );
    assert_eq!(
        client.stats().sessions_opened,
        1,
        "one session for all three"
    );
    assert!(!client.is_closed());
    close(&mut client, &mut bmc, &mut now);
    assert!(bmc.session.is_none(), "the BMC saw Close Session");
    let cmds: Vec<(u8, u8)> = bmc.commands.iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(
        cmds,
        [
            (6, 0x38),
            (6, 0x54),
            (6, 0x54),
            (6, 0x3B),
            (6, 0x01),
            (6, 0x37),
            (0, 0x01),
            (0, 0x02),
            (0, 0x01),
            (0, 0x08),
            (0, 0x08),
            (0, 0x01),
            (6, 0x3C)
        ]
    );
    assert_eq!(
        bmc.commands[10].2,
        [5, 0xA0, 0x04, 0, 0, 0],
        "boot flags: valid, once, EFI, PXE"
    );
    assert_eq!(
        client.stats(),
        Stats {
            sessions_opened: 1,
            sessions_closed: 1,
            ..Stats::default()
        }
    );
}

#[test]
fn suite_choice() {
    let cases: [(&[u8], Config, Result<u8, Error>); 6] = [
        (&[0, 1, 2, 3], Config::default(), Ok(3)),
        (&[0, 1, 2], Config::default(), Err(Error::NoCommonCipher)),
        (
            &[0, 1, 2],
            Config {
                allow_weak: true,
                ..Config::default()
            },
            Ok(2),
        ),
        (
            &[3, 17],
            Config {
                cipher_suite: Some(3),
                ..Config::default()
            },
            Ok(3),
        ),
        (
            &[0, 3],
            Config {
                cipher_suite: Some(0),
                ..Config::default()
            },
            Err(Error::NoCommonCipher),
        ),
        (
            &[0, 3],
            Config {
                cipher_suite: Some(0),
                allow_weak: true,
                ..Config::default()
            },
            Ok(0),
        ),
    ];
    for (offered, config, want) in cases {
        let mut bmc = Bmc::new(offered);
        let mut client = Client::new(config, creds("password"));
        let mut now = 0;
        let got = run(&mut client, &mut bmc, &mut now, Operation::Status)
            .map(|_| client.cipher_suite().unwrap());
        assert_eq!(got, want, "offered {offered:?}");
        close(&mut client, &mut bmc, &mut now);
    }
    // Listed but refused at Open Session: the next suite is proposed.
    let mut bmc = Bmc::new(&[3, 17]);
    bmc.refuse.push(17);
    let mut client = Client::new(Config::default(), creds("password"));
    let mut now = 0;
    assert_eq!(
        run(&mut client, &mut bmc, &mut now, Operation::Status),
        Ok(PowerState::Off)
    );
    assert_eq!(client.cipher_suite(), Some(3));
}

#[test]
fn wrong_password_is_auth() {
    let mut bmc = Bmc::new(&[3]);
    bmc.password = "other";
    let mut client = Client::new(Config::default(), creds("password"));
    let mut now = 0;
    assert_eq!(
        run(&mut client, &mut bmc, &mut now, Operation::Status),
        Err(Error::Auth)
    );
    assert!(client.is_closed());
    assert_eq!(bmc.rakp3_refusals, 1, "the BMC was told");
    assert!(bmc.hs.is_none());
    let mut client = Client::new(Config::default(), creds("a-password-of-21-bytes"));
    assert_eq!(
        run(&mut client, &mut bmc, &mut now, Operation::Status),
        Err(Error::Auth)
    );
}

#[test]
fn forged_replayed_and_truncated_answers_are_dropped() {
    for suite in [3u8, 17] {
        let mut bmc = Bmc::new(&[suite]);
        let mut client = Client::new(Config::default(), creds("password"));
        let mut now = 0;
        client
            .start(Operation::Power(PowerAction::On), now)
            .unwrap();
        let mut previous: Option<Vec<u8>> = None;
        let result = drive(&mut client, &mut bmc, &mut now, |_, client, reply| {
            // Every truncation and a flipped bit in each field: all dropped, no state lost.
            for cut in 0..reply.len() {
                client.receive(0, &reply[..cut]);
            }
            // A wrong RAKP2 HMAC or RAKP4 ICV is a failed login (`Error::Auth`) and the end of
            // an Open Session response is reserved: forge the tag of those instead, and the
            // AuthCode (or checksum) of the rest.
            let mut forged = reply.clone();
            let rakp = matches!(wire::parse(&reply), Ok(Packet::V2 { header, .. }) if header.payload_type & 1 == 1 && header.payload_type >= 0x11);
            let at = if rakp {
                wire::V2_PAYLOAD_OFFSET
            } else {
                forged.len() - 1
            };
            forged[at] ^= 0x01;
            client.receive(0, &forged);
            // The answer before this one, again: a replay (or the wrong answer).
            if let Some(p) = previous.replace(reply.clone()) {
                client.receive(0, &p);
            }
            Some(reply)
        });
        assert_eq!(result, Some(Ok(PowerState::On)));
        let s = client.stats();
        assert!(
            s.malformed > 100 && s.integrity >= 4 && s.replayed + s.malformed >= 8,
            "{s:?}"
        );
        assert_eq!((s.sessions_opened, s.retransmits, s.unexpected), (1, 0, 0));
    }
}

#[test]
fn replayed_in_session_answer_is_counted_as_replay() {
    let mut bmc = Bmc::new(&[3]);
    let mut client = Client::new(Config::default(), creds("password"));
    let mut now = 0;
    run(&mut client, &mut bmc, &mut now, Operation::Status).unwrap();
    client.start(Operation::Status, now).unwrap();
    let mut rng = TestRng(3);
    let mut buf = [0u8; 256];
    let n = client.poll_transmit(now, &mut rng, &mut buf).unwrap();
    let reply = bmc.answer(&buf[..n]).unwrap();
    client.receive(now, &reply);
    assert_eq!(client.poll_result(), Some(Ok(PowerState::Off)));
    client.start(Operation::Status, now).unwrap();
    let n = client.poll_transmit(now, &mut rng, &mut buf).unwrap();
    client.receive(now, &reply);
    assert_eq!(client.stats().replayed, 1);
    assert_eq!(client.poll_result(), None);
    let fresh = bmc.answer(&buf[..n]).unwrap();
    client.receive(now, &fresh);
    assert_eq!(client.poll_result(), Some(Ok(PowerState::Off)));
}

#[test]
fn retries_then_timeout() {
    let mut client = Client::new(Config::default(), creds("password"));
    let mut rng = TestRng(5);
    let mut buf = [0u8; 256];
    client.start(Operation::Status, 0).unwrap();
    assert_eq!(client.start(Operation::Status, 0), Err(Error::Busy));
    let mut sent = Vec::new();
    let mut now = 0;
    loop {
        if let Some(n) = client.poll_transmit(now, &mut rng, &mut buf) {
            sent.push((now, buf[..n].to_vec()));
        }
        if let Some(r) = client.poll_result() {
            assert_eq!(r, Err(Error::Timeout));
            break;
        }
        now = client.poll_at().unwrap();
    }
    assert_eq!(
        sent.iter().map(|s| s.0).collect::<Vec<_>>(),
        [0, 1000, 2000]
    );
    assert!(
        sent.windows(2).all(|w| w[0].1 == w[1].1),
        "same rqSeq outside a session"
    );
    assert_eq!(now, 3000);
    assert!(client.is_closed());
    assert_eq!(client.stats().retransmits, 2);
}

#[test]
fn retransmission_in_session_takes_a_new_sequence_number() {
    let mut bmc = Bmc::new(&[17]);
    let mut client = Client::new(Config::default(), creds("password"));
    let mut now = 0;
    run(&mut client, &mut bmc, &mut now, Operation::Status).unwrap();
    client.start(Operation::Status, now).unwrap();
    let mut rng = TestRng(11);
    let mut buf = [0u8; 256];
    let n = client.poll_transmit(now, &mut rng, &mut buf).unwrap();
    let first = buf[..n].to_vec();
    assert_eq!(client.poll_transmit(now + 999, &mut rng, &mut buf), None);
    let n = client
        .poll_transmit(now + 1000, &mut rng, &mut buf)
        .unwrap();
    let second = buf[..n].to_vec();
    let seq = |d: &[u8]| match wire::parse(d).unwrap() {
        Packet::V2 { header, .. } => header.seq,
        Packet::V15 { .. } => 0,
    };
    assert_eq!(seq(&second), seq(&first) + 1);
    // The BMC answers the first one late: still the awaited command, accepted.
    let late = bmc.answer(&first).unwrap();
    client.receive(now + 1001, &late);
    assert_eq!(client.poll_result(), Some(Ok(PowerState::Off)));
    let dup = bmc.answer(&second).unwrap();
    client.receive(now + 1002, &dup);
    assert_eq!(client.stats().unexpected, 1);
}

#[test]
fn idle_session_is_not_reused_and_small_buffers_are_busy() {
    let mut bmc = Bmc::new(&[3]);
    let mut client = Client::new(Config::default(), creds("password"));
    let mut now = 0;
    run(&mut client, &mut bmc, &mut now, Operation::Status).unwrap();
    now += 60_000;
    run(&mut client, &mut bmc, &mut now, Operation::Status).unwrap();
    assert_eq!(client.stats().sessions_opened, 2);
    client.start(Operation::Status, now).unwrap();
    let mut small = [0u8; 20];
    assert_eq!(client.poll_transmit(now, &mut TestRng(1), &mut small), None);
    assert_eq!(client.poll_result(), Some(Err(Error::Busy)));
}

/// Arbitrary bytes at every step of a handshake never panic (the fuzz target goes further).
#[test]
fn garbage_in_every_state() {
    let mut bmc = Bmc::new(&[3, 17]);
    let mut client = Client::new(Config::default(), creds("password"));
    let mut now = 0;
    client.start(Operation::Status, now).unwrap();
    let mut rng = TestRng(42);
    let r = drive(&mut client, &mut bmc, &mut now, |i, client, reply| {
        for len in [0usize, 1, 4, 5, 16, 17, 32, 60, 100] {
            let mut junk = vec![0u8; len];
            rand_core::Rng::fill_bytes(&mut rng, &mut junk);
            if let Some(head) = junk.get_mut(..4) {
                head.copy_from_slice(&wire::RMCP_HEADER);
            }
            if let Some(b) = junk.get_mut(4) {
                *b = if i % 2 == 0 { 6 } else { 0 };
            }
            client.receive(0, &junk);
        }
        Some(reply)
    });
    assert_eq!(r, Some(Ok(PowerState::Off)));
}
