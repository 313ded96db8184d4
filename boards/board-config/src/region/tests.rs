use core::net::Ipv4Addr;

use super::*;
use crate::DhcpMode;

fn proxy_with_token() -> BoardConfig {
    BoardConfig {
        ip: Ipv4Addr::new(192, 168, 5, 2),
        prefix: 23,
        gateway: Some(Ipv4Addr::new(192, 168, 4, 1)),
        dhcp: DhcpMode::Proxy,
        lease_secs: 600,
        mac: [0x02, 0xaa, 0, 0, 0, 9],
        token: Some("rack1:abc".try_into().unwrap()),
    }
}

fn region(config: &BoardConfig) -> ([u8; REGION_MAX], usize) {
    let mut buf = [0u8; REGION_MAX];
    let n = encode(config, &mut buf).unwrap();
    (buf, n)
}

/// Rewrites the header's CRC so a payload change reaches the decoder.
fn fix_crc(buf: &mut [u8], n: usize) {
    let crc = crc32fast::hash(&buf[HEADER_LEN..n]);
    buf[12..16].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn round_trips() {
    for config in [BoardConfig::default(), proxy_with_token()] {
        let (buf, n) = region(&config);
        assert_eq!(decode(&buf[..n]).unwrap(), config);
        // The region is larger than the config: the rest is ignored.
        assert_eq!(decode(&buf).unwrap(), config);
    }
}

#[test]
fn longest_token_fits() {
    let mut config = proxy_with_token();
    let mut token = heapless::String::new();
    for _ in 0..uplink::enroll::TOKEN_TEXT_MAX {
        token.push('x').unwrap();
    }
    config.token = Some(token);
    let (buf, _) = region(&config);
    assert_eq!(decode(&buf).unwrap(), config);
}

#[test]
fn empty_and_erased_regions_are_empty() {
    assert_eq!(decode(&[0u8; 64]), Err(RegionError::Empty));
    assert_eq!(decode(&[0xff; 64]), Err(RegionError::Empty));
    assert_eq!(decode(&[]), Err(RegionError::Truncated));
}

#[test]
fn header_checks() {
    let (buf, n) = region(&BoardConfig::default());
    let mut bad = buf;
    bad[20] ^= 1;
    assert!(matches!(decode(&bad), Err(RegionError::Crc { .. })));
    let mut bad = buf;
    bad[4] = 9;
    assert_eq!(decode(&bad), Err(RegionError::Version(9)));
    let mut bad = buf;
    bad[8..12].copy_from_slice(&(PAYLOAD_MAX as u32 + 1).to_le_bytes());
    assert_eq!(
        decode(&bad),
        Err(RegionError::Length(PAYLOAD_MAX as u32 + 1))
    );
    let mut bad = buf;
    bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(decode(&bad), Err(RegionError::Length(u32::MAX)));
    assert_eq!(decode(&buf[..n - 1]), Err(RegionError::Truncated));
}

#[test]
fn trailing_payload_bytes_are_refused() {
    let (mut buf, n) = region(&BoardConfig::default());
    buf[8..12].copy_from_slice(&((n - HEADER_LEN + 1) as u32).to_le_bytes());
    fix_crc(&mut buf, n + 1);
    assert_eq!(decode(&buf), Err(RegionError::Encoding));
}

#[test]
fn invalid_configs_are_refused_both_ways() {
    let mut config = BoardConfig {
        dhcp: DhcpMode::Pool {
            first: Ipv4Addr::new(10, 77, 1, 10),
            last: Ipv4Addr::new(10, 77, 1, 20),
        },
        ..BoardConfig::default()
    };
    let mut buf = [0u8; REGION_MAX];
    assert!(matches!(
        encode(&config, &mut buf),
        Err(RegionError::Invalid(_))
    ));
    config = BoardConfig {
        prefix: 33,
        ..BoardConfig::default()
    };
    assert_eq!(
        encode(&config, &mut buf),
        Err(RegionError::Invalid(Invalid::Prefix(33)))
    );
    config = BoardConfig {
        mac: [1, 0, 0, 0, 0, 1],
        ..BoardConfig::default()
    };
    assert_eq!(
        encode(&config, &mut buf),
        Err(RegionError::Invalid(Invalid::MulticastMac))
    );
    // The same refusal when such bytes are found in a region (written past the checks).
    let (mut good, n) = region(&BoardConfig::default());
    let prefix_at = HEADER_LEN + 4;
    assert_eq!(good[prefix_at], 24);
    good[prefix_at] = 33;
    fix_crc(&mut good, n);
    assert_eq!(
        decode(&good),
        Err(RegionError::Invalid(Invalid::Prefix(33)))
    );
}

#[test]
fn small_buffers_are_errors() {
    let mut buf = [0u8; 8];
    assert_eq!(
        encode(&BoardConfig::default(), &mut buf),
        Err(RegionError::Truncated)
    );
    let mut buf = [0u8; HEADER_LEN + 4];
    assert_eq!(
        encode(&BoardConfig::default(), &mut buf),
        Err(RegionError::TooLarge)
    );
}

/// Malformed input without a fuzzer: every truncation, every single-bit flip (with the CRC
/// fixed, so the decoder sees it) and pseudo-random payloads decode to a value or an error,
/// never a panic.
#[test]
fn malformed_regions_never_panic() {
    let (buf, n) = region(&proxy_with_token());
    for cut in 0..n {
        assert!(decode(&buf[..cut]).is_err());
    }
    for at in HEADER_LEN..n {
        for bit in 0..8 {
            let mut bad = buf;
            bad[at] ^= 1 << bit;
            fix_crc(&mut bad, n);
            let _ = decode(&bad);
        }
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..20_000 {
        let mut bad = buf;
        let len = HEADER_LEN + round % PAYLOAD_MAX;
        for b in &mut bad[HEADER_LEN..len] {
            // xorshift64: deterministic, no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        bad[8..12].copy_from_slice(&((len - HEADER_LEN) as u32).to_le_bytes());
        fix_crc(&mut bad, len);
        let _ = decode(&bad);
    }
}
