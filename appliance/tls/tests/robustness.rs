//! Hostile or broken server input never panics: it ends in an `Error`.

mod common;

use common::Pki;
use uplink_tls::{Error, TlsClient};

/// xorshift64*: repeatable noise without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Feeds `input` in random cuts, exercising every call after each; returns the error.
fn drive(client: &mut TlsClient, input: &[u8], noise: &mut Noise) -> Option<Error> {
    let mut out = [0u8; 512];
    let mut plain = [0u8; 512];
    let mut at = 0;
    while at < input.len() {
        let cut = (at + 1 + (noise.next() % 700) as usize).min(input.len());
        match client.feed(&input[at..cut]) {
            Ok(0) => return None,
            Ok(n) => at += n,
            Err(e) => return Some(e),
        }
        while client.poll_transmit(&mut out) > 0 {}
        if let Err(e) = client.read(&mut plain) {
            return Some(e);
        }
        if let Err(e) = client.write(b"ping") {
            return Some(e);
        }
    }
    None
}

#[test]
fn random_server_bytes_end_in_an_error_not_a_panic() {
    let pki = Pki::new("provider CA");
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut errors = 0;
    for round in 0..400 {
        let identity = (round % 2 == 0).then(|| pki.identity());
        let mut client = TlsClient::new(pki.client_config(identity)).unwrap();
        let len = (noise.next() % 4000) as usize;
        let mut input = noise.bytes(len);
        // Half the rounds look like a TLS record header, so parsing goes deeper than that.
        if round % 2 == 1 && input.len() > 5 {
            let body = (input.len() - 5) as u16;
            input[..5].copy_from_slice(&[0x16, 0x03, 0x03, (body >> 8) as u8, body as u8]);
            if input.len() > 9 {
                input[5] = 2; // ServerHello
            }
        }
        if let Some(error) = drive(&mut client, &input, &mut noise) {
            errors += 1;
            // The error sticks: later calls report it instead of going on.
            assert_eq!(client.feed(b"more"), Err(error.clone()));
            assert_eq!(client.write(b"x"), Err(error));
        }
        client.close();
    }
    assert!(errors > 300, "only {errors} of 400 rounds failed");
}

#[test]
fn malformed_ca_certificate_is_refused() {
    let pki = Pki::new("provider CA");
    let mut config = pki.client_config(None);
    config.ca_der = Some(b"not a certificate".to_vec());
    config.ca_pin = common::sha256(b"not a certificate");
    assert!(matches!(
        TlsClient::new(config),
        Err(Error::BadCaCertificate)
    ));
}

#[test]
fn bad_server_name_is_refused() {
    let pki = Pki::new("provider CA");
    let mut config = pki.client_config(None);
    config.server_name = "not a host name!".to_string();
    assert!(matches!(TlsClient::new(config), Err(Error::BadServerName)));
}
