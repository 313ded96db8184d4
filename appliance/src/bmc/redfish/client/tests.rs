//! The client against scripted BMC answers.
extern crate std;

use std::collections::VecDeque;
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use super::*;
use crate::bmc::redfish::json::tests::SUSHY_SYSTEM;
use crate::bmc::{BootMode, PowerAction, PxeBoot};

const SYS: &str = "/redfish/v1/Systems/27946b59-9e44-4fa7-8e91-f3527a1ef094";

fn creds() -> Credentials {
    Credentials {
        user: "admin".try_into().unwrap(),
        password: "pw".try_into().unwrap(),
    }
}

fn client() -> Client {
    Client::new(Config::new("bmc:8000").unwrap(), creds())
}

fn answer(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn ok(body: &str) -> String {
    answer("200 OK", "", body)
}

fn system_json(power: &str) -> String {
    SUSHY_SYSTEM.replace(
        "\"PowerState\": \"Off\"",
        &format!("\"PowerState\": \"{power}\""),
    )
}

fn system(power: &str) -> String {
    ok(&system_json(power))
}

const ROOT_BASIC: &str = r#"{"Systems":{"@odata.id":"/redfish/v1/Systems"}}"#;
const ROOT_SESSIONS: &str = r#"{"Systems":{"@odata.id":"/redfish/v1/Systems"},
    "SessionService":{"@odata.id":"/redfish/v1/SessionService"}}"#;

fn systems() -> String {
    ok(&format!(r#"{{"Members":[{{"@odata.id":"{SYS}"}}]}}"#))
}

/// What the scripted BMC does with one request.
enum Reply {
    Bytes(String),
    /// Closes the connection without answering.
    Close,
}

/// Runs `op` to its end against `script`: each entry is the start of the request expected
/// and the reply. Returns the result, the requests seen and the virtual time taken.
struct Run {
    requests: Vec<String>,
    now: u64,
}

impl Run {
    fn new() -> Run {
        Run {
            requests: Vec::new(),
            now: 0,
        }
    }

    fn drive(
        &mut self,
        c: &mut Client,
        mut script: VecDeque<(&str, Reply)>,
    ) -> Option<Result<PowerState, Error>> {
        let mut out = [0u8; 37]; // Small, so requests go out in pieces.
        let mut request = Vec::new();
        for _ in 0..10_000 {
            if c.needs_connection() {
                c.connected(self.now);
            }
            if let Some(n) = c.poll_transmit(&mut out) {
                request.extend_from_slice(&out[..n]);
                continue;
            }
            if !request.is_empty() {
                let text = String::from_utf8(core::mem::take(&mut request)).unwrap();
                let (want, reply) = script.pop_front().expect("a scripted reply");
                assert!(text.starts_with(want), "expected {want:?}, got {text:?}");
                self.requests.push(text);
                match reply {
                    Reply::Bytes(b) => {
                        // In two pieces, the cut inside the head.
                        let (a, b) = b.as_bytes().split_at(b.len().min(20));
                        c.receive(self.now, a);
                        c.receive(self.now, b);
                    }
                    Reply::Close => c.peer_closed(self.now),
                }
                continue;
            }
            if let Some(r) = c.poll_result() {
                assert!(script.is_empty(), "unused replies: {}", script.len());
                return Some(r);
            }
            match c.poll_at() {
                Some(t) => {
                    self.now = t.max(self.now);
                    c.tick(self.now);
                }
                None => {
                    assert!(script.is_empty(), "unused replies");
                    return None;
                }
            }
        }
        panic!("no end");
    }

    fn run(
        &mut self,
        c: &mut Client,
        op: Operation,
        script: VecDeque<(&str, Reply)>,
    ) -> Result<PowerState, Error> {
        c.start(op, self.now).unwrap();
        self.drive(c, script).expect("a result")
    }
}

fn b(s: String) -> Reply {
    Reply::Bytes(s)
}

/// Discovery on a BMC with Basic auth only, then `rest`.
fn basic_discovery(rest: Vec<(&str, Reply)>) -> VecDeque<(&str, Reply)> {
    let mut s = VecDeque::from([
        ("GET /redfish/v1/ ", b(ok(ROOT_BASIC))),
        ("GET /redfish/v1/Systems ", b(systems())),
    ]);
    s.extend(rest);
    s
}

#[test]
fn status_with_basic_auth_when_there_is_no_session_service() {
    let mut c = client();
    let mut r = Run::new();
    let script = basic_discovery(vec![("GET /redfish/v1/Systems/2794", b(system("On")))]);
    assert_eq!(r.run(&mut c, Operation::Status, script), Ok(PowerState::On));
    for req in &r.requests {
        assert!(
            req.contains("\r\nAuthorization: Basic YWRtaW46cHc=\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nHost: bmc:8000\r\n"));
    }
    // Cached: the next operation reads the system only.
    let script = VecDeque::from([("GET /redfish/v1/Systems/2794", b(system("Off")))]);
    assert_eq!(
        r.run(&mut c, Operation::Status, script),
        Ok(PowerState::Off)
    );
    // Nothing to log out of.
    c.close(r.now);
    assert!(c.is_closed());
}

fn session_login<'a>(token: &str) -> (&'a str, Reply) {
    (
        "POST /redfish/v1/SessionService/Sessions ",
        b(answer(
            "201 Created",
            &format!(
                "X-Auth-Token: {token}\r\nLocation: http://bmc:8000/redfish/v1/SessionService/Sessions/7\r\n"
            ),
            r#"{"@odata.id":"/redfish/v1/SessionService/Sessions/7"}"#,
        )),
    )
}

#[test]
fn session_login_relogin_on_401_and_logout() {
    let mut c = client();
    let mut r = Run::new();
    let script = VecDeque::from([
        ("GET /redfish/v1/ ", b(ok(ROOT_SESSIONS))),
        session_login("tok1"),
        ("GET /redfish/v1/Systems ", b(systems())),
        ("GET /redfish/v1/Systems/2794", b(system("Off"))),
    ]);
    assert_eq!(
        r.run(&mut c, Operation::Status, script),
        Ok(PowerState::Off)
    );
    let login = &r.requests[1];
    assert!(!login.contains("Authorization"), "{login}");
    assert!(login.ends_with(r#"{"UserName":"admin","Password":"pw"}"#));
    assert!(r.requests[2].contains("\r\nX-Auth-Token: tok1\r\n"));
    assert!(!r.requests[2].contains("Authorization"));

    // The session expired: one login again, and the step is repeated with the new token.
    let script = VecDeque::from([
        (
            "GET /redfish/v1/Systems/2794",
            b(answer("401 Unauthorized", "", "")),
        ),
        session_login("tok2"),
        ("GET /redfish/v1/Systems/2794", b(system("On"))),
    ]);
    assert_eq!(r.run(&mut c, Operation::Status, script), Ok(PowerState::On));
    assert!(
        r.requests
            .last()
            .unwrap()
            .contains("X-Auth-Token: tok2\r\n")
    );

    // Only once per operation.
    let script = VecDeque::from([
        (
            "GET /redfish/v1/Systems/2794",
            b(answer("401 Unauthorized", "", "")),
        ),
        session_login("tok3"),
        (
            "GET /redfish/v1/Systems/2794",
            b(answer("401 Unauthorized", "", "")),
        ),
    ]);
    assert_eq!(r.run(&mut c, Operation::Status, script), Err(Error::Auth));

    let script = VecDeque::from([
        session_login("tok4"),
        ("GET /redfish/v1/Systems/2794", b(system("On"))),
    ]);
    assert_eq!(r.run(&mut c, Operation::Status, script), Ok(PowerState::On));
    c.close(r.now);
    assert!(!c.is_closed());
    let script = VecDeque::from([(
        "DELETE /redfish/v1/SessionService/Sessions/7 ",
        b(answer("204 No Content", "", "")),
    )]);
    assert_eq!(r.drive(&mut c, script), None);
    assert!(
        r.requests
            .last()
            .unwrap()
            .contains("X-Auth-Token: tok4\r\n")
    );
    assert!(c.is_closed());
}

#[test]
fn login_refused_or_missing() {
    let mut c = client();
    let mut r = Run::new();
    let script = VecDeque::from([
        ("GET /redfish/v1/ ", b(ok(ROOT_SESSIONS))),
        (
            "POST /redfish/v1/SessionService/Sessions ",
            b(answer("401 Unauthorized", "", "")),
        ),
    ]);
    assert_eq!(r.run(&mut c, Operation::Status, script), Err(Error::Auth));
    // A BMC whose SessionService has no Sessions: Basic auth.
    let script = VecDeque::from([
        (
            "POST /redfish/v1/SessionService/Sessions ",
            b(answer("404 Not Found", "", "")),
        ),
        ("GET /redfish/v1/Systems ", b(systems())),
        ("GET /redfish/v1/Systems/2794", b(system("Off"))),
    ]);
    assert_eq!(
        r.run(&mut c, Operation::Status, script),
        Ok(PowerState::Off)
    );
    assert!(r.requests.last().unwrap().contains("Authorization: Basic"));
}

#[test]
fn wrong_password() {
    let mut r = Run::new();
    let script = VecDeque::from([("GET /redfish/v1/ ", b(answer("401 UNAUTHORIZED", "", "")))]);
    assert_eq!(
        r.run(&mut client(), Operation::Status, script),
        Err(Error::Auth)
    );
}

#[test]
fn reset_maps_to_allowed_types_and_polls_until_settled() {
    let mut c = client();
    let mut r = Run::new();
    // sushy allows no PowerCycle: Cycle becomes ForceRestart; the machine is off at first,
    // then comes on (sushy applies a reset seconds later).
    let script = basic_discovery(vec![
        ("GET /redfish/v1/Systems/2794", b(system("On"))),
        (
            "POST /redfish/v1/Systems/2794",
            b(answer("204 NO CONTENT", "", "")),
        ),
        ("GET /redfish/v1/Systems/2794", b(system("Off"))),
        ("GET /redfish/v1/Systems/2794", b(system("PoweringOn"))),
        ("GET /redfish/v1/Systems/2794", b(system("On"))),
    ]);
    let op = Operation::Power(PowerAction::Cycle);
    assert_eq!(r.run(&mut c, op, script), Ok(PowerState::On));
    let post = &r.requests[3];
    assert!(
        post.contains("/Actions/ComputerSystem.Reset HTTP/1.1\r\n"),
        "{post}"
    );
    assert!(post.ends_with(r#"{"ResetType":"ForceRestart"}"#));
    assert_eq!(r.now, 2_000, "two polls a second apart");

    // Never settles: Timeout after the settle budget. (The system is cached by now.)
    let mut script = VecDeque::from([(
        "POST /redfish/v1/Systems/2794",
        b(answer("202 Accepted", "", "")),
    )]);
    for _ in 0..=30 {
        script.push_back(("GET /redfish/v1/Systems/2794", b(system("On"))));
    }
    let start = r.now;
    let op = Operation::Power(PowerAction::Off);
    assert_eq!(r.run(&mut c, op, script), Err(Error::Timeout));
    assert_eq!(r.now - start, 30_000);
}

#[test]
fn reset_type_outside_allowable_values_is_not_sent() {
    let mut c = client();
    let mut r = Run::new();
    let no_soft_off = ok(&system_json("On").replace("\"GracefulShutdown\",", ""));
    let script = basic_discovery(vec![("GET /redfish/v1/Systems/2794", b(no_soft_off))]);
    let op = Operation::Power(PowerAction::SoftOff);
    assert_eq!(r.run(&mut c, op, script), Err(Error::Unsupported));
    assert_eq!(r.requests.len(), 3);
}

#[test]
fn not_implemented_reset_is_unsupported() {
    let mut c = client();
    let mut r = Run::new();
    // sushy-emulator's answer to a reset type its driver lacks.
    let script = basic_discovery(vec![
        ("GET /redfish/v1/Systems/2794", b(system("On"))),
        (
            "POST /redfish/v1/Systems/2794",
            b(answer(
                "501 NOT IMPLEMENTED",
                "Content-Type: application/json\r\n",
                r#"{"error": {"code": "Base.1.0.GeneralError", "message": "Power state Nmi is not supported"}}"#,
            )),
        ),
    ]);
    let op = Operation::Power(PowerAction::HardReset);
    assert_eq!(r.run(&mut c, op, script), Err(Error::Unsupported));
}

#[test]
fn boot_patch_retries_without_mode() {
    let mut c = client();
    let mut r = Run::new();
    let script = basic_discovery(vec![
        ("GET /redfish/v1/Systems/2794", b(system("Off"))),
        (
            "PATCH /redfish/v1/Systems/2794",
            b(answer("400 Bad Request", "", "{}")),
        ),
        (
            "PATCH /redfish/v1/Systems/2794",
            b(answer("204 No Content", "", "")),
        ),
        ("GET /redfish/v1/Systems/2794", b(system("Off"))),
    ]);
    let op = Operation::BootPxe(PxeBoot {
        persistent: false,
        mode: BootMode::Efi,
    });
    assert_eq!(r.run(&mut c, op, script), Ok(PowerState::Off));
    assert!(r.requests[3].contains("\"BootSourceOverrideMode\":\"UEFI\""));
    assert!(r.requests[4].ends_with(
        r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}"#
    ));
    // Refused twice: the BMC's status.
    let script = VecDeque::from([
        (
            "PATCH /redfish/v1/Systems/2794",
            b(answer("400 Bad Request", "", "")),
        ),
        (
            "PATCH /redfish/v1/Systems/2794",
            b(answer("400 Bad Request", "", "")),
        ),
    ]);
    assert_eq!(r.run(&mut c, op, script), Err(Error::Refused(400)));
}

#[test]
fn redirects_are_followed_within_bounds() {
    let mut c = client();
    let mut r = Run::new();
    let moved = |to: &str| b(answer("301 Moved", &format!("Location: {to}\r\n"), ""));
    let script = VecDeque::from([
        ("GET /redfish/v1/ ", moved("http://bmc:8000/redfish/v1")),
        ("GET /redfish/v1 ", b(ok(ROOT_BASIC))),
        ("GET /redfish/v1/Systems ", b(systems())),
        (
            "GET /redfish/v1/Systems/2794",
            moved("/redfish/v1/Systems/2794"),
        ),
        (
            "GET /redfish/v1/Systems/2794",
            moved("/redfish/v1/Systems/2794"),
        ),
        (
            "GET /redfish/v1/Systems/2794",
            moved("/redfish/v1/Systems/2794"),
        ),
        (
            "GET /redfish/v1/Systems/2794",
            moved("/redfish/v1/Systems/2794"),
        ),
    ]);
    assert_eq!(
        r.run(&mut c, Operation::Status, script),
        Err(Error::Refused(301))
    );
    // Elsewhere: refused, the credentials stay here.
    let script = VecDeque::from([(
        "GET /redfish/v1/Systems/2794",
        moved("http://evil:80/redfish/v1/Systems/2794"),
    )]);
    assert_eq!(
        r.run(&mut c, Operation::Status, script),
        Err(Error::Refused(301))
    );
}

#[test]
fn keep_alive_loss_resends_once_on_a_new_connection() {
    let mut c = client();
    let mut r = Run::new();
    let script = basic_discovery(vec![
        ("GET /redfish/v1/Systems/2794", Reply::Close),
        ("GET /redfish/v1/Systems/2794", b(system("On"))),
    ]);
    assert_eq!(r.run(&mut c, Operation::Status, script), Ok(PowerState::On));
    // A fresh connection closed without an answer: no second try.
    let script = VecDeque::from([
        ("GET /redfish/v1/Systems/2794", Reply::Close),
        ("GET /redfish/v1/Systems/2794", Reply::Close),
    ]);
    assert_eq!(
        r.run(&mut c, Operation::Status, script),
        Err(Error::Timeout)
    );
}

#[test]
fn busy_timeout_and_garbage() {
    let mut c = client();
    c.start(Operation::Status, 0).unwrap();
    assert_eq!(c.start(Operation::Status, 0), Err(Error::Busy));
    assert!(c.needs_connection());
    c.connected(0);
    assert_eq!(c.poll_at(), Some(10_000));
    c.tick(10_000);
    assert_eq!(c.poll_result(), Some(Err(Error::Timeout)));

    let mut r = Run::new();
    for garbage in [
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{{{".to_string(),
        ok(&"[".repeat(5000)),
        "SSH-2.0-OpenSSH\r\n".to_string(),
    ] {
        let script = VecDeque::from([("GET /redfish/v1/ ", b(garbage))]);
        assert_eq!(
            r.run(&mut c, Operation::Status, script),
            Err(Error::Malformed)
        );
    }
}
