//! `provider token create`'s output: the token as text and as a QR code in the terminal
//! (Unicode half blocks, two modules per character cell), and on request as SVG or PNG.
//! Build the token with [`crate::tls::token::enrollment_token`] from the store's secret,
//! the tunnel listener's `host:port` and the CA fingerprint.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use qrcode::render::{svg, unicode};
use qrcode::{Color, EcLevel, QrCode};
use time::OffsetDateTime;

use crate::tls::token::EnrollmentToken;

/// Pixels per QR module in the PNG.
const PNG_SCALE: usize = 8;
/// Light modules around the code, as the QR standard asks.
const QUIET_ZONE: usize = 4;

/// Prints `token` (valid until `expires_at`, Unix seconds) as text and QR code to `out`, and
/// writes the PNG and SVG files asked for.
pub fn print_enrollment_token(
    out: &mut impl Write,
    token: &EnrollmentToken,
    expires_at: u64,
    png: Option<&Path>,
    svg: Option<&Path>,
) -> io::Result<()> {
    let text = token
        .encode()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    // Medium error correction: the token is long and M keeps the code at a scannable size.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    writeln!(
        out,
        "Enrollment token for {} (single use, expires {}):\n\n{text}\n",
        token.addr,
        utc(expires_at)
    )?;
    // Inverted so it scans on the usual dark terminal background: light modules are the
    // drawn (light foreground) blocks.
    let terminal = code
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    writeln!(out, "{terminal}")?;
    if let Some(path) = svg {
        let image = code
            .render::<svg::Color>()
            .min_dimensions(256, 256)
            .quiet_zone(true)
            .build();
        std::fs::write(path, image)?;
        writeln!(out, "QR code written to {}", path.display())?;
    }
    if let Some(path) = png {
        write_png(&code, path)?;
        writeln!(out, "QR code written to {}", path.display())?;
    }
    Ok(())
}

/// An 8-bit grayscale PNG: black modules on white, [`PNG_SCALE`] pixels each.
fn write_png(code: &QrCode, path: &Path) -> io::Result<()> {
    let modules = code.width();
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in code.to_colors().iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let x0 = (i % modules + QUIET_ZONE) * PNG_SCALE;
        let y0 = (i / modules + QUIET_ZONE) * PNG_SCALE;
        for y in y0..y0 + PNG_SCALE {
            pixels[y * side + x0..y * side + x0 + PNG_SCALE].fill(0);
        }
    }
    let side = u32::try_from(side).map_err(io::Error::other)?;
    let mut encoder = png::Encoder::new(BufWriter::new(File::create(path)?), side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(io::Error::other)?;
    writer.write_image_data(&pixels).map_err(io::Error::other)?;
    writer.finish().map_err(io::Error::other)
}

/// `YYYY-MM-DD HH:MM UTC`.
fn utc(unix: u64) -> String {
    match i64::try_from(unix)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
    {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        None => format!("at Unix time {unix}"),
    }
}
