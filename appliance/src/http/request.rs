//! The request head parser: one complete head (request line, headers, blank line) in, the
//! few facts the server acts on out. Every line is checked for syntax; headers the server
//! has no use for are then ignored.
//!
//! Strict where leniency enables request smuggling (bare CR, folded lines, space before the
//! colon, conflicting lengths), lenient where RFC 9112 allows it (LF alone ends a line).

use super::Status;

/// Longest request head: request line, headers and the blank line.
pub const MAX_HEAD: usize = 2048;
/// Most header lines in one head.
pub const MAX_HEADERS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// A method HTTP defines that no resource here allows: 405.
    NotAllowed,
    /// A method this server does not know: 501.
    Unknown,
}

impl Method {
    fn from_token(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" | b"PUT" | b"DELETE" | b"CONNECT" | b"OPTIONS" | b"TRACE" | b"PATCH" => {
                Method::NotAllowed
            }
            _ => Method::Unknown,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    /// HTTP/1.1, and 1.x above it, which RFC 9110 says to treat as 1.1.
    Http11,
}

/// One byte range of a `Range: bytes=...` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last` (inclusive), or `first-` to the end.
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The span `start..end` of a body of `size` bytes; `None` when unsatisfiable (416).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::From { first, .. } if first >= size => None,
            ByteRange::From { first, last } => {
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                Some((first, end))
            }
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(_) if size == 0 => None,
            ByteRange::Suffix(n) => Some((size - n.min(size), size)),
        }
    }
}

/// Why a head was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not HTTP/1.x syntax, incomplete, or ambiguous: 400.
    Malformed,
    /// Over [`MAX_HEAD`] or [`MAX_HEADERS`]: 431.
    TooLarge,
    /// HTTP/2 or another major version: 505.
    Version,
}

impl Error {
    pub fn status(self) -> Status {
        match self {
            Error::Malformed => Status::BadRequest,
            Error::TooLarge => Status::HeadersTooLarge,
            Error::Version => Status::VersionNotSupported,
        }
    }
}

/// A parsed request head; the strings borrow the head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'h> {
    pub method: Method,
    /// The method as sent, for the log.
    pub method_token: &'h str,
    /// The request target as sent.
    pub target: &'h str,
    /// The target's path, still percent-encoded; absolute-form targets lose scheme and host.
    pub path: &'h str,
    /// What follows `?`, still percent-encoded.
    pub query: &'h str,
    pub version: Version,
    /// Whether the client lets the connection stay open after the response.
    pub keep_alive: bool,
    /// Body length announced by `Content-Length`; 0 without one.
    pub content_length: u64,
    /// A `Transfer-Encoding` body follows, which this server does not read.
    pub transfer_encoding: bool,
    /// A single byte range to serve; `None` without one and for every `Range` the server
    /// ignores (another unit, several ranges, bad syntax, `If-Range`).
    pub range: Option<ByteRange>,
}

/// The length of the head at the start of `buf` (through its blank line), once complete.
pub fn head_len(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if (line.is_empty() || line == b"\r") && line_start > 0 {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// Parses the complete head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Request<'_>, Error> {
    let len = head_len(buf).ok_or(Error::Malformed)?;
    if len > MAX_HEAD {
        return Err(Error::TooLarge);
    }
    let mut lines = buf[..len].split(|&b| b == b'\n').map(strip_cr);
    let (method_token, target, version) = request_line(lines.next().ok_or(Error::Malformed)?)?;
    let (path, query) = split_target(target)?;

    let mut headers = Headers::default();
    let mut count = 0;
    for line in lines.take_while(|l| !l.is_empty()) {
        count += 1;
        if count > MAX_HEADERS {
            return Err(Error::TooLarge);
        }
        let (name, value) = header_line(line)?;
        headers.add(name, value)?;
    }
    if headers.content_length.is_some() && headers.transfer_encoding {
        // Two framings: the classic smuggling vector (RFC 9112 6.3).
        return Err(Error::Malformed);
    }
    if version == Version::Http11 && headers.hosts != 1 || headers.hosts > 1 {
        return Err(Error::Malformed);
    }
    let keep_alive = match version {
        Version::Http11 => !headers.close,
        Version::Http10 => headers.keep_alive && !headers.close,
    };
    let range = match (headers.range, headers.if_range) {
        (RangeHeader::One(r), false) => Some(r),
        _ => None,
    };
    Ok(Request {
        method: Method::from_token(method_token.as_bytes()),
        method_token,
        target,
        path,
        query,
        version,
        keep_alive,
        content_length: headers.content_length.unwrap_or(0),
        transfer_encoding: headers.transfer_encoding,
        range,
    })
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `method SP target SP version`, single spaces only.
fn request_line(line: &[u8]) -> Result<(&str, &str, Version), Error> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Malformed);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Error::Malformed);
    }
    if target.is_empty() || !target.iter().all(|b| (0x21..0x7f).contains(b)) {
        return Err(Error::Malformed);
    }
    let version = match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match (major, minor) {
                (b'1', b'0') => Version::Http10,
                (b'1', _) => Version::Http11,
                _ => return Err(Error::Version),
            }
        }
        _ => return Err(Error::Malformed),
    };
    // Both are ASCII, checked above.
    let text = |b| core::str::from_utf8(b).map_err(|_| Error::Malformed);
    Ok((text(method)?, text(target)?, version))
}

/// Origin form `/path?query`, or absolute form `http://host/path?query` (RFC 9112 3.2.2:
/// servers must accept it). `*` and authority forms fall through as paths nothing matches.
fn split_target(target: &str) -> Result<(&str, &str), Error> {
    let rest = match target.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http://") => {
            let after = &target[7..];
            let cut = after.find(['/', '?']).unwrap_or(after.len());
            &after[cut..]
        }
        _ => target,
    };
    Ok(rest.split_once('?').unwrap_or((rest, "")))
}

fn header_line(line: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(Error::Malformed)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // An empty name also rejects obs-fold continuation lines, which start with whitespace.
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(Error::Malformed);
    }
    let value = trim(value);
    if !value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
    {
        return Err(Error::Malformed);
    }
    Ok((name, value))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum RangeHeader {
    #[default]
    None,
    One(ByteRange),
    /// Present but not one byte range we serve: the whole body is sent instead.
    Ignored,
}

#[derive(Default)]
struct Headers {
    hosts: u8,
    close: bool,
    keep_alive: bool,
    content_length: Option<u64>,
    transfer_encoding: bool,
    range: RangeHeader,
    if_range: bool,
}

impl Headers {
    fn add(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("host") {
            self.hosts = self.hosts.saturating_add(1);
        } else if is("connection") {
            for option in list(value) {
                self.close |= option.eq_ignore_ascii_case(b"close");
                self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if is("content-length") {
            // Repeats must agree (RFC 9110 8.6), or the body's end is ambiguous.
            let mut elements = list(value);
            let n = elements.next().and_then(digits).ok_or(Error::Malformed)?;
            if elements.any(|e| digits(e) != Some(n)) || self.content_length.is_some_and(|m| m != n)
            {
                return Err(Error::Malformed);
            }
            self.content_length = Some(n);
        } else if is("transfer-encoding") {
            // The body's length is only known when chunked comes last (RFC 9112 6.3).
            if list(value)
                .last()
                .is_none_or(|c| !c.eq_ignore_ascii_case(b"chunked"))
            {
                return Err(Error::Malformed);
            }
            self.transfer_encoding = true;
        } else if is("range") {
            self.range = match self.range {
                RangeHeader::None => parse_range(value),
                _ => RangeHeader::Ignored,
            };
        } else if is("if-range") {
            // No validators are sent, so none can match: serve the whole body (RFC 9110 13.1.5).
            self.if_range = true;
        }
        Ok(())
    }
}

/// A single range of `bytes=`; anything else is ignored rather than refused, as RFC 9110
/// 14.2 allows. Several ranges would need a multipart body: the whole body is sent instead.
fn parse_range(value: &[u8]) -> RangeHeader {
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return RangeHeader::Ignored;
    };
    if !trim(&value[..eq]).eq_ignore_ascii_case(b"bytes") {
        return RangeHeader::Ignored;
    }
    let mut ranges = list(&value[eq + 1..]);
    let (Some(spec), None) = (ranges.next(), ranges.next()) else {
        return RangeHeader::Ignored;
    };
    let range = match spec.iter().position(|&b| b == b'-') {
        Some(0) => digits(&spec[1..]).map(ByteRange::Suffix),
        Some(dash) => match (digits(&spec[..dash]), &spec[dash + 1..]) {
            (Some(first), []) => Some(ByteRange::From { first, last: None }),
            (Some(first), last) => digits(last)
                .filter(|&l| l >= first)
                .map(|l| ByteRange::From {
                    first,
                    last: Some(l),
                }),
            (None, _) => None,
        },
        None => None,
    };
    range.map_or(RangeHeader::Ignored, RangeHeader::One)
}

/// The non-empty elements of a comma-separated header list, trimmed.
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|e| !e.is_empty())
}

/// A decimal number; huge values saturate (a range past any file, a body too big to skip).
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn trim(s: &[u8]) -> &[u8] {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ws(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests;
