//! The Redfish client's HTTP response parser, JSON models and state machine on arbitrary
//! bytes: no input may panic or overflow the stack, the parser never takes more than it is
//! offered nor writes past the body buffer, and the client always ends the operation.
#![no_main]

use appliance::bmc::redfish::http::Response;
use appliance::bmc::redfish::{Client, Config, json};
use appliance::bmc::{Credentials, Operation, PowerAction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte sets the piece size and whether the connection closes at the end.
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let chunk = 1 + usize::from(ctl & 0x3f);

    let mut body = [0u8; 4096];
    let mut response = Response::new();
    let mut rest = input;
    while !rest.is_empty() && !response.is_done() {
        let piece = &rest[..rest.len().min(chunk)];
        match response.feed(piece, &mut body) {
            Ok(n) => {
                assert!(n <= piece.len());
                rest = &rest[n..];
            }
            Err(_) => break,
        }
    }
    if ctl & 0x40 != 0 {
        let _ = response.eof();
    }
    assert!(response.body_len() <= body.len());
    models(input);
    models(&body[..response.body_len()]);

    // The whole client: the input answers every request of a power-off.
    let creds = Credentials {
        user: "admin".try_into().unwrap(), // ok: constants within the capacity
        password: "pw".try_into().unwrap(), // ok: constants within the capacity
    };
    let mut client = Client::new(Config::new("bmc").unwrap(), creds); // ok: a valid constant host
    client.start(Operation::Power(PowerAction::Off), 0).unwrap(); // ok: a fresh client is idle
    let mut now = 0;
    let mut out = [0u8; 512];
    for _ in 0..200 {
        if client.needs_connection() {
            client.connected(now);
        }
        while client.poll_transmit(&mut out).is_some() {}
        for piece in input.chunks(chunk) {
            client.receive(now, piece);
        }
        if ctl & 0x40 != 0 {
            client.peer_closed(now);
        }
        if client.poll_result().is_some() {
            return;
        }
        now = client.poll_at().expect("a running operation has a deadline").max(now); // ok: a harness invariant; a panic is how the fuzzer reports a broken one
        client.tick(now);
    }
    panic!("the operation never ended"); // ok: the fuzzer's report of a client that never finishes
});

fn models(bytes: &[u8]) {
    if let Ok(root) = json::parse::<json::ServiceRoot>(bytes) {
        let _ = root.systems.map(|s| s.id.len());
    }
    if let Ok(c) = json::parse::<json::Collection>(bytes) {
        let _ = c.members.map(|m| (m.find(None), m.find(Some("1"))));
    }
    if let Ok(s) = json::parse::<json::ComputerSystem>(bytes) {
        let _ = (s.power(), s.reset().map(|r| r.allowed));
    }
}
