//! The uplink's refusals, through the real binaries and real peers: host-sim given an
//! expired or an already used token logs a clear refusal and serves DHCP all the same; at
//! the provider's TLS port a plaintext client, a TLS 1.2 client, a TLS 1.3 client without a
//! certificate and one with a certificate from another CA (all `openssl s_client`, Debian's
//! OpenSSL 3) are refused, while the same client without a certificate completes the
//! enrollment ALPN's handshake (so the refusals are the provider's, not the client's).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use e2e::dhclient::Dhclient;
use e2e::net::in_netns;
use e2e::provider::{PROVIDER_IP, PROVIDER_PORT, Provider};
use e2e::{HostSim, Netns, Rack, Workdir, require_root, require_tool};

const POOL: &str = "10.77.0.100-10.77.0.149";
const WAIT: Duration = Duration::from_secs(30);

/// Starts host-sim on a fresh state dir with `token`, waits for its enrollment refusal and
/// for a dhclient to bind meanwhile; returns the refusal line.
fn refused_but_serving(rack: &Rack, wd: &Workdir, token: &str, client: &Netns, n: usize) -> String {
    let _ = std::fs::remove_dir_all(wd.path().join("state"));
    let mut hs = HostSim::start(
        rack,
        wd,
        "host-sim",
        &["--dhcp-pool", POOL, "--enroll-token", token],
    );
    let lf = hs.log().clone();
    let from = lf.mark();
    let (_, line) = lf
        .wait_for_from(
            from,
            WAIT,
            |l| l.starts_with("uplink enrollment failed"),
            || hs.check_alive(),
        )
        .unwrap_or_else(|e| panic!("no enrollment refusal: {e}"));
    let mut c = Dhclient::new(client, wd, &format!("c{n}"));
    c.start();
    c.wait_event(0, &["BOUND", "REBOOT"], WAIT);
    c.release();
    hs.stop();
    line
}

#[test]
fn spent_tokens_are_refused_and_dhcp_serves_on() {
    if !require_root() {
        return;
    }
    let wd = Workdir::new("uplink-tokens");
    let rack = Rack::new("uplink-tokens");
    let provider = Provider::start(&rack, &wd);
    let client = rack.host("c", Some("52:54:00:77:06:01"), &[]);

    let expired = provider.token_with(&["--expires", "1s"]);
    std::thread::sleep(Duration::from_secs(2));
    let line = refused_but_serving(&rack, &wd, &expired, &client, 0);
    eprintln!("expired token: {line}");
    assert!(line.contains("enrollment token expired"), "{line}");

    // Spent once by an appliance that enrolls, then offered again by another.
    let token = provider.token();
    let mut first = HostSim::start(
        &rack,
        &wd,
        "first",
        &["--dhcp-pool", POOL, "--enroll-token", &token],
    );
    let lf = first.log().clone();
    lf.wait_for_from(
        0,
        WAIT,
        |l| l.starts_with("uplink connected"),
        || first.check_alive(),
    )
    .unwrap_or_else(|e| panic!("the first appliance did not enroll: {e}"));
    first.stop();
    let line = refused_but_serving(&rack, &wd, &token, &client, 1);
    eprintln!("used token: {line}");
    assert!(line.contains("enrollment token already used"), "{line}");
}

/// `openssl s_client` against the provider's port from `ns` with `args`: whether it exited
/// 0, and its whole output. Its stdin is empty: it leaves after the handshake unless
/// `-ign_eof` makes it wait for the server to close.
fn s_client(ns: &Netns, args: &[&str]) -> (bool, String) {
    let connect = format!("{PROVIDER_IP}:{PROVIDER_PORT}");
    let base = ["s_client", "-connect", &connect];
    let out = ns
        .run(
            "openssl",
            &[&base[..], args].concat(),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|e| panic!("openssl s_client {args:?}: {e}"));
    (out.success(), format!("{}{}", out.stdout, out.stderr))
}

/// A CA of our own and a client certificate it signed, in `wd` (P-256, as appliances use).
fn foreign_client_cert(wd: &Workdir) -> (String, String) {
    let p = |name: &str| wd.file(name).to_string_lossy().into_owned();
    let (ca_key, ca, key, csr, cert) = (
        p("f-ca.key"),
        p("f-ca.pem"),
        p("f.key"),
        p("f.csr"),
        p("f.pem"),
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                &ca_key,
                "-out",
                &ca,
                "-subj",
                "/CN=foreign CA",
                "-days",
                "2",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &["-keyout", &key, "-out", &csr, "-subj", "/CN=appliance"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
        ],
    ];
    for args in steps {
        let out = e2e::proc::run_timeout(std::process::Command::new("openssl").args(&args), WAIT)
            .unwrap_or_else(|e| panic!("openssl {args:?}: {e}"));
        assert!(out.success(), "openssl {args:?}: {}", out.stderr);
    }
    (cert, key)
}

#[test]
fn plaintext_tls12_anonymous_and_foreign_clients_are_refused() {
    if !require_root() {
        return;
    }
    require_tool("openssl", "openssl");
    let wd = Workdir::new("uplink-tls");
    let rack = Rack::new("uplink-tls");
    let _provider = Provider::start(&rack, &wd);
    let ns = rack.host("peer", None, &["10.77.0.9/24"]);

    // Plaintext: the provider closes without a byte of answer.
    let answer = in_netns(&ns, || {
        let mut s = TcpStream::connect((PROVIDER_IP, PROVIDER_PORT)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: provider\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        match s.read_to_end(&mut got) {
            Ok(_) => Ok(got),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(got),
            Err(e) => Err(format!("no close within 10 s: {e}")),
        }
    })
    .unwrap_or_else(|e| panic!("plaintext client: {e}"));
    // Nothing, or a TLS alert record (content type 21).
    assert!(
        answer.is_empty() || answer[0] == 21,
        "plaintext got an answer: {answer:?}"
    );
    eprintln!("plaintext: closed after {answer:?}");

    // The control: TLS 1.3 with the enrollment ALPN completes its handshake.
    let (_, out) = s_client(&ns, &["-tls1_3", "-alpn", "rack-enroll/1"]);
    assert!(
        out.contains("TLSv1.3") && out.contains("ALPN protocol: rack-enroll/1"),
        "control:\n{out}"
    );

    let (cert, key) = foreign_client_cert(&wd);
    let tunnel = ["-tls1_3", "-alpn", "rack-tunnel/1"];
    let foreign = [&tunnel[..], &["-cert", &cert, "-key", &key]].concat();
    // Each with the reason OpenSSL reports: the server's alert, or the bare close for a
    // ClientHello without ALPN.
    let refusals: [(&str, Vec<&str>, &str); 4] = [
        (
            "TLS 1.2",
            vec!["-tls1_2", "-alpn", "rack-tunnel/1"],
            "alert protocol version",
        ),
        (
            "TLS 1.3 tunnel without a certificate",
            tunnel.to_vec(),
            "alert certificate required",
        ),
        ("TLS 1.3 without ALPN", vec!["-tls1_3"], "unexpected eof"),
        (
            "certificate from another CA",
            foreign,
            "alert certificate unknown",
        ),
    ];
    for (what, args, reason) in refusals {
        // Waits for the server: a TLS 1.3 server refuses a client certificate after the
        // client has finished its part of the handshake.
        let (ok, out) = s_client(&ns, &[&args[..], &["-ign_eof"]].concat());
        let why = out.lines().find(|l| l.contains(reason));
        eprintln!("{what}: refused={} {}", !ok, why.unwrap_or(""));
        assert!(
            !ok && why.is_some(),
            "{what} was not refused ({reason}):\n{out}"
        );
    }
}
