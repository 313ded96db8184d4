//! `/config?u=UUID`: the provider's join config, served from what the adapter holds; 400 for
//! a missing or malformed UUID, 404 until a config has arrived, 431 for a head (query) past
//! the buffer. Responses are read back as a client would, from the bytes `send` wrote.

use std::cell::Cell;
use std::net::Ipv4Addr;

use appliance::assets::StaticAssets;
use appliance::dhcp::pxe::BootTarget;
use appliance::http::request::MAX_HEAD;
use appliance::http::{BootTargets, Connection, ScriptConfig, Site};
use appliance::net::{MacAddr, Uuid};

const UUID: &str = "4c4c4544-004d-3110-804b-b5c04f513432";
const CONFIG: &str =
    "apiVersion: v1alpha1\nkind: SideroLinkConfig\napiUrl: https://omni.example:8090?jointoken=t\n";
/// The same with a line more, as a newer push would be.
const LONGER: &str = "apiVersion: v1alpha1\nkind: SideroLinkConfig\napiUrl: https://omni.example:8090?jointoken=t\n# 2\n";

/// What the adapter holds: the config the provider pushed, if any (changeable mid-test).
struct Pushed(Cell<Option<&'static str>>);

impl BootTargets for Pushed {
    fn boot_target(&self, _: Option<MacAddr>, _: Option<Uuid>) -> BootTarget {
        BootTarget::Local
    }

    fn join_config(&self) -> Option<&str> {
        self.0.get()
    }
}

/// Sends `request` and returns everything the connection wrote, `room` bytes per send.
fn exchange(targets: &Pushed, request: &[u8], room: usize) -> (Vec<u8>, bool) {
    let mut conn = Connection::new(0);
    let files: [(&str, &[u8]); 1] = [("config.bin", b"x")];
    let mut store = StaticAssets::new(&files);
    let script = ScriptConfig::new(Ipv4Addr::new(10, 77, 0, 1));
    let mut rx = request;
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let took = conn.receive(0, rx);
        rx = &rx[took..];
        let mut buf = vec![0u8; room];
        let mut site = Site {
            store: &mut store,
            script: &script,
            targets,
        };
        let n = conn.send(0, &mut buf, &mut site);
        out.extend_from_slice(&buf[..n]);
        if took == 0 && n == 0 {
            break;
        }
    }
    (out, conn.should_close())
}

/// Status code and body of the one response in `out`.
fn response(out: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8(out.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: 10.77.0.1\r\n\r\n").into_bytes()
}

#[test]
fn the_join_config_once_pushed_in_any_send_size() {
    let targets = Pushed(Cell::new(None));
    let (out, _) = exchange(&targets, &get(&format!("/config?u={UUID}")), 1460);
    assert_eq!(response(&out).0, 404, "before the provider pushed one");
    targets.0.set(Some(CONFIG));
    for room in [1, 7, 1460] {
        let (out, closed) = exchange(&targets, &get(&format!("/config?u={UUID}")), room);
        let (status, head, body) = response(&out);
        assert_eq!((status, body.as_str()), (200, CONFIG), "room {room}");
        assert!(head.contains("Content-Type: application/yaml"), "{head}");
        assert!(head.contains("Cache-Control: no-store"), "{head}");
        assert!(!closed, "keep-alive");
    }
    // Dashes optional, upper case, other parameters around it.
    let (out, _) = exchange(
        &targets,
        &get("/config?x=1&u=4C4C4544004D3110804BB5C04F513432&y"),
        1460,
    );
    assert_eq!(response(&out).0, 200);
    let (out, _) = exchange(
        &targets,
        format!("HEAD /config?u={UUID} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        1460,
    );
    let (status, head, body) = response(&out);
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(head.contains(&format!("Content-Length: {}", CONFIG.len())));
    // An empty config is none.
    targets.0.set(Some(""));
    let (out, _) = exchange(&targets, &get(&format!("/config?u={UUID}")), 1460);
    assert_eq!(response(&out).0, 404);
}

#[test]
fn malformed_queries_are_400() {
    let targets = Pushed(Cell::new(Some(CONFIG)));
    for target in [
        "/config",
        "/config?",
        "/config?uuid=4c4c4544-004d-3110-804b-b5c04f513432",
        "/config?u=",
        "/config?u=4c4c4544-004d-3110-804b-b5c04f51343",
        "/config?u=4c4c4544-004d-3110-804b-b5c04f5134321",
        "/config?u=zc4c4544-004d-3110-804b-b5c04f513432",
        "/config?u=00000000-0000-0000-0000-000000000000",
        "/config?u=%ZZ",
        "/config?u=4c4c4544%0A004d-3110-804b-b5c04f513432",
    ] {
        let (out, _) = exchange(&targets, &get(target), 1460);
        let (status, _, body) = response(&out);
        assert_eq!(status, 400, "{target}: {body}");
        assert!(!body.contains("SideroLink"), "{target}");
    }
    // A value longer than any UUID is not read past the parameter buffer.
    let long = format!("/config?u={}", "a".repeat(1000));
    let (out, _) = exchange(&targets, &get(&long), 1460);
    assert_eq!(response(&out).0, 400);
}

#[test]
fn a_huge_query_is_431_and_closes() {
    let targets = Pushed(Cell::new(Some(CONFIG)));
    let huge = format!("/config?u={UUID}&pad={}", "p".repeat(MAX_HEAD));
    let (out, closed) = exchange(&targets, &get(&huge), 1460);
    assert_eq!(response(&out).0, 431);
    assert!(closed);
}

#[test]
fn a_config_replaced_mid_response_cuts_the_body() {
    // The adapter swaps the config while a slow client is mid-body: the response stops
    // short rather than mixing two documents under one Content-Length.
    let targets = Pushed(Cell::new(Some(CONFIG)));
    let mut conn = Connection::new(0);
    let files: [(&str, &[u8]); 0] = [];
    let mut store = StaticAssets::new(&files);
    let script = ScriptConfig::new(Ipv4Addr::new(10, 77, 0, 1));
    let request = get(&format!("/config?u={UUID}"));
    assert_eq!(conn.receive(0, &request), request.len());
    let mut out = Vec::new();
    for i in 0..10_000 {
        if i == 3 {
            targets.0.set(Some(LONGER));
        }
        let mut buf = [0u8; 40];
        let mut site = Site {
            store: &mut store,
            script: &script,
            targets: &targets,
        };
        let n = conn.send(0, &mut buf, &mut site);
        out.extend_from_slice(&buf[..n]);
        if n == 0 {
            break;
        }
    }
    let (status, _, body) = response(&out);
    assert_eq!(status, 200);
    assert!(body.len() < CONFIG.len(), "{body}");
    assert!(conn.should_close());
    let event = conn.poll_event().unwrap();
    assert!(!event.complete);
}
