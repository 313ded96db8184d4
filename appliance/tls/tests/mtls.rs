//! `TlsClient` against a tokio-rustls server on loopback: mutual TLS 1.3 and the refusals.

mod common;

use common::{Driver, Pki, ServerVersions, echo_server};
use uplink_tls::{AlertDescription, Error};

#[test]
fn mutual_tls_handshake_and_echo_both_ways() {
    let pki = Pki::new("provider CA");
    let (addr, server) = echo_server(&pki, &pki, ServerVersions::Tls13);
    let mut client = Driver::connect(addr, pki.client_config(Some(pki.identity()))).unwrap();
    client.handshake().unwrap();

    assert_eq!(client.echo(b"hello provider").unwrap(), b"hello provider");
    // More than one record each way, through the write and read back-pressure.
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    assert_eq!(client.echo(&big).unwrap(), big);

    client.tls.close();
    client.flush();
    let closed = client.run(|tls| tls.peer_closed()).unwrap();
    assert!(closed, "server answers close_notify with its own");
    assert_eq!(
        server.recv().unwrap(),
        Ok(14 + big.len()),
        "server saw all bytes"
    );
    assert_eq!(client.tls.write(b"late"), Err(Error::Closed));
}

#[test]
fn server_certificate_from_another_ca_is_refused() {
    let ours = Pki::new("provider CA");
    let other = Pki::new("some other CA");
    let (addr, _server) = echo_server(&other, &ours, ServerVersions::Tls13);
    let mut client = Driver::connect(addr, ours.client_config(Some(ours.identity()))).unwrap();
    assert_eq!(client.handshake(), Err(Error::UntrustedServer));
}

#[test]
fn wrong_ca_pin_is_refused_before_dialing() {
    let pki = Pki::new("provider CA");
    let mut config = pki.client_config(Some(pki.identity()));
    config.ca_pin[0] ^= 1;
    assert!(matches!(
        uplink_tls::TlsClient::new(config),
        Err(Error::CaPinMismatch)
    ));
}

#[test]
fn tls12_only_server_is_refused() {
    let pki = Pki::new("provider CA");
    let (addr, server) = echo_server(&pki, &pki, ServerVersions::Tls12Only);
    let mut client = Driver::connect(addr, pki.client_config(Some(pki.identity()))).unwrap();
    assert_eq!(client.handshake(), Err(Error::Incompatible));
    assert!(server.recv().unwrap().is_err());
}

#[test]
fn server_refuses_a_client_without_certificate() {
    let pki = Pki::new("provider CA");
    let (addr, server) = echo_server(&pki, &pki, ServerVersions::Tls13);
    let mut client = Driver::connect(addr, pki.client_config(None)).unwrap();
    // TLS 1.3: our side of the handshake completes; the refusal comes after it.
    client.handshake().unwrap();
    assert_eq!(
        client.echo(b"anyone there?"),
        Err(Error::PeerAlert(AlertDescription::CertificateRequired))
    );
    let refusal = server.recv().unwrap().unwrap_err();
    assert!(refusal.contains("no certificates"), "{refusal}");
}

#[test]
fn server_refuses_a_client_certificate_from_another_ca() {
    let pki = Pki::new("provider CA");
    let other = Pki::new("rogue CA");
    let (addr, server) = echo_server(&pki, &pki, ServerVersions::Tls13);
    let config = pki.client_config(Some(other.identity()));
    let mut client = Driver::connect(addr, config).unwrap();
    client.handshake().unwrap();
    assert!(matches!(
        client.echo(b"let me in"),
        Err(Error::PeerAlert(_))
    ));
    assert!(server.recv().unwrap().is_err());
}

/// The client's records carry at most `MAX_FRAGMENT` bytes of plaintext, as the provider's
/// do (its `ServerConfig`): the board's buffers are sized for that.
#[test]
fn records_sent_hold_at_most_max_fragment() {
    let pki = Pki::new("provider CA");
    let (addr, _server) = echo_server(&pki, &pki, ServerVersions::Tls13);
    let mut client = Driver::connect(addr, pki.client_config(Some(pki.identity()))).unwrap();
    client.handshake().unwrap();
    client.flush();

    let data = vec![0x5a; 3 * uplink_tls::MAX_FRAGMENT + 100];
    assert_eq!(client.tls.write(&data).unwrap(), data.len());
    let mut out = vec![0u8; 2 * data.len()];
    let n = client.tls.poll_transmit(&mut out);
    // TLS 1.3 records: 5-byte header (length in bytes 3..5), then plaintext, its content
    // type byte and the 16-byte AES-GCM tag.
    let mut records = Vec::new();
    let mut at = 0;
    while at + 5 <= n {
        let len = usize::from(u16::from_be_bytes([out[at + 3], out[at + 4]]));
        records.push(len - 17);
        at += 5 + len;
    }
    assert_eq!(at, n, "whole records");
    assert_eq!(records.iter().sum::<usize>(), data.len());
    assert!(
        records.iter().all(|&r| r <= uplink_tls::MAX_FRAGMENT),
        "plaintext per record: {records:?}"
    );
}
