//! `provider token create`'s output: the token text parses back, the terminal QR code is
//! half blocks, and the SVG and PNG files are written.

use provider::tls::token::{EnrollmentToken, enrollment_token};
use provider::token_output::print_enrollment_token;

#[test]
fn printed_token_parses_back_and_renders_as_qr() {
    let token = enrollment_token("provider.example:7443", [0xab; 32], &[7; 32]).unwrap();
    let dir = std::env::temp_dir().join(format!("tls-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (png, svg) = (dir.join("t.png"), dir.join("t.svg"));
    let mut out = Vec::new();
    print_enrollment_token(&mut out, &token, 1_767_225_600, Some(&png), Some(&svg)).unwrap();
    let out = String::from_utf8(out).unwrap();

    assert!(out.contains("expires 2026-01-01 00:00 UTC"), "{out}");
    let line = out.lines().find(|l| l.starts_with("rack1:")).unwrap();
    assert_eq!(EnrollmentToken::parse(line).unwrap(), token);
    assert!(out.contains('▀') || out.contains('▄'), "{out}");

    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!(info.width, info.height);
    assert!(info.width >= 200, "{}", info.width);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn token_debug_hides_the_secret() {
    let token = enrollment_token("p:1", [0; 32], b"very-secret").unwrap();
    let shown = format!("{token:?}");
    assert!(
        !shown.contains("secret:") && !shown.contains("118"),
        "{shown}"
    );
}
