//! Enrolling: only the CA's SHA-256 is known, the server presents the CA at the end of its
//! chain; and ALPN, which picks the provider's service.

mod common;

use common::{Driver, Pki, ServerVersions, serve_once, server_config};
use uplink_tls::{AlertDescription, Error};

/// A server that presents `chain` and offers `alpn`, with client certificates optional as
/// the provider's enrollment service has them.
fn server(pki: &Pki, chain_with_ca: bool, alpn: &[&[u8]]) -> std::net::SocketAddr {
    let mut config = server_config(pki, pki, ServerVersions::Tls13);
    let chain = if chain_with_ca {
        pki.chain_with_ca()
    } else {
        pki.server_chain.clone()
    };
    let resolver = rustls::sign::CertifiedKey::from_der(
        chain,
        pki.server_key(),
        &rustls::crypto::ring::default_provider(),
    )
    .unwrap();
    config.cert_resolver = std::sync::Arc::new(rustls::sign::SingleCertAndKey::from(resolver));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    serve_once(config).0
}

fn enrolling(pki: &Pki, alpn: &[&[u8]]) -> uplink_tls::ClientConfig {
    let mut config = pki.client_config(Some(pki.identity()));
    config.ca_der = None;
    config.alpn = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

#[test]
fn presented_ca_matching_the_pin_is_trusted_and_handed_out() {
    let pki = Pki::new("provider CA");
    let addr = server(&pki, true, &[b"rack-enroll/1"]);
    let config = enrolling(&pki, &[b"rack-tunnel/1", b"rack-enroll/1"]);
    let mut client = Driver::connect(addr, config).unwrap();
    assert_eq!(client.tls.server_ca(), None, "nothing before the handshake");
    client.handshake().unwrap();
    assert_eq!(client.tls.alpn_protocol(), Some(&b"rack-enroll/1"[..]));
    assert_eq!(client.tls.server_ca(), Some(&pki.ca_der[..]));
    assert_eq!(client.echo(b"enroll me").unwrap(), b"enroll me");
}

#[test]
fn presented_ca_with_another_hash_is_refused() {
    let pki = Pki::new("provider CA");
    let addr = server(&pki, true, &[]);
    let mut config = enrolling(&pki, &[]);
    config.ca_pin[31] ^= 1;
    let mut client = Driver::connect(addr, config).unwrap();
    assert_eq!(client.handshake(), Err(Error::UntrustedServer));
}

#[test]
fn a_chain_without_its_ca_is_refused() {
    let pki = Pki::new("provider CA");
    let addr = server(&pki, false, &[]);
    let mut client = Driver::connect(addr, enrolling(&pki, &[])).unwrap();
    assert_eq!(client.handshake(), Err(Error::UntrustedServer));
}

#[test]
fn the_pinned_ca_must_have_signed_the_server_certificate() {
    // The server appends the pinned CA to a chain another CA signed.
    let pinned = Pki::new("provider CA");
    let other = Pki::new("impostor CA");
    let mut config = server_config(&other, &other, ServerVersions::Tls13);
    let mut chain = other.server_chain.clone();
    chain.push(pinned.ca_der.clone().into());
    let key = rustls::sign::CertifiedKey::from_der(
        chain,
        other.server_key(),
        &rustls::crypto::ring::default_provider(),
    )
    .unwrap();
    config.cert_resolver = std::sync::Arc::new(rustls::sign::SingleCertAndKey::from(key));
    let (addr, _) = serve_once(config);
    let mut client = Driver::connect(addr, enrolling(&pinned, &[])).unwrap();
    assert_eq!(client.handshake(), Err(Error::UntrustedServer));
}

#[test]
fn a_server_without_our_alpn_is_refused() {
    let pki = Pki::new("provider CA");
    let addr = server(&pki, true, &[b"h2"]);
    let mut client = Driver::connect(addr, enrolling(&pki, &[b"rack-tunnel/1"])).unwrap();
    assert!(matches!(
        client.handshake(),
        Err(Error::PeerAlert(AlertDescription::NoApplicationProtocol))
    ));
}
