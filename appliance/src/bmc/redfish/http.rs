//! HTTP/1.1 client codec: encodes one request into a buffer and parses one response
//! incrementally (status line, headers, Content-Length, chunked or until-close body).
//!
//! Only what a Redfish client needs is kept from the head: the status, `Location`,
//! `X-Auth-Token` and whether the connection stays open. Everything is bounded: line length,
//! header count, head size and body size (the body goes into the caller's buffer); a
//! response outside these bounds is [`Error::Malformed`].

use heapless::String;

use crate::bmc::Error;

/// Longest head line kept; longer lines are dropped unless they are a header we need.
const LINE_CAP: usize = 512;
/// Most header lines in one response.
pub const MAX_HEADERS: usize = 64;
/// Most bytes in one response head (status line and headers).
pub const HEAD_MAX: usize = 16 * 1024;
/// Longest path (request target, `Location`, resource link) the client handles.
pub const PATH_CAP: usize = 192;
/// Longest session token the client keeps.
pub const TOKEN_CAP: usize = 256;

/// The request methods a Redfish client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// How a request authenticates. No `Debug`: it holds the password or a session token.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Basic { user: &'a str, password: &'a str },
    Token(&'a str),
}

/// One request; `body` is sent as `application/json`.
pub struct Request<'a> {
    pub method: Method,
    pub host: &'a str,
    pub path: &'a str,
    pub auth: Auth<'a>,
    pub body: Option<&'a [u8]>,
}

/// Appends to a byte buffer; [`Error::Busy`] once it is full ("buffers too small").
struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self.len.checked_add(bytes.len()).ok_or(Error::Busy)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(Error::Busy)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn put_decimal(&mut self, n: usize) -> Result<(), Error> {
        use core::fmt::Write;
        write!(self, "{n}").map_err(|_| Error::Busy)
    }

    /// Standard base64 with padding (RFC 4648), for the Basic credentials.
    fn put_base64(&mut self, parts: &[&[u8]]) -> Result<(), Error> {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bytes = parts.iter().flat_map(|p| p.iter().copied()).peekable();
        while bytes.peek().is_some() {
            let mut v = 0u32;
            let mut n = 0;
            for shift in [16, 8, 0] {
                if let Some(b) = bytes.next() {
                    v |= u32::from(b) << shift;
                    n += 1;
                }
            }
            let mut chars = [b'='; 4];
            for (i, c) in chars.iter_mut().enumerate().take(n + 1) {
                let sextet = (v >> (18 - 6 * i)) & 0x3f;
                *c = ALPHABET.get(sextet as usize).copied().unwrap_or(b'=');
            }
            self.put(&chars)?;
        }
        Ok(())
    }
}

impl core::fmt::Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.put(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

/// True if `s` may stand in a request line or header value as is: visible ASCII only, so a
/// path or token taken from the BMC's answers cannot inject a header.
pub fn is_token_safe(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

impl Request<'_> {
    /// Writes the request into `out`; its length, [`Error::Busy`] if `out` is too small, or
    /// [`Error::Malformed`] if the path, host or token holds bytes a request cannot carry.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        if !is_token_safe(self.path) || !is_token_safe(self.host) {
            return Err(Error::Malformed);
        }
        let mut o = Out { buf: out, len: 0 };
        o.put(self.method.as_str().as_bytes())?;
        o.put(b" ")?;
        o.put(self.path.as_bytes())?;
        o.put(b" HTTP/1.1\r\nHost: ")?;
        o.put(self.host.as_bytes())?;
        o.put(b"\r\nAccept: application/json\r\nOData-Version: 4.0\r\n")?;
        match self.auth {
            Auth::None => {}
            Auth::Basic { user, password } => {
                o.put(b"Authorization: Basic ")?;
                o.put_base64(&[user.as_bytes(), b":", password.as_bytes()])?;
                o.put(b"\r\n")?;
            }
            Auth::Token(token) => {
                if !is_token_safe(token) {
                    return Err(Error::Malformed);
                }
                o.put(b"X-Auth-Token: ")?;
                o.put(token.as_bytes())?;
                o.put(b"\r\n")?;
            }
        }
        if let Some(body) = self.body {
            o.put(b"Content-Type: application/json\r\nContent-Length: ")?;
            o.put_decimal(body.len())?;
            o.put(b"\r\n\r\n")?;
            o.put(body)?;
        } else {
            if matches!(self.method, Method::Post | Method::Patch) {
                o.put(b"Content-Length: 0\r\n")?;
            }
            o.put(b"\r\n")?;
        }
        Ok(o.len)
    }
}

/// What the client keeps of a response head.
#[derive(Debug, Default)]
pub struct Head {
    pub status: u16,
    pub location: Option<String<PATH_CAP>>,
    pub token: Option<String<TOKEN_CAP>>,
    /// The server closes the connection after this response.
    pub close: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    StatusLine,
    Headers,
    Length(usize),
    UntilClose,
    ChunkSize,
    ChunkData(usize),
    ChunkEnd,
    Trailers,
    Done,
}

/// An incremental parser of one response. Feed it bytes with [`Response::feed`] until
/// [`Response::is_done`]; the body lands in the caller's buffer.
#[derive(Debug)]
pub struct Response {
    state: State,
    line: heapless::Vec<u8, LINE_CAP>,
    line_overflow: bool,
    head: Head,
    headers: usize,
    head_bytes: usize,
    length: Option<usize>,
    chunked: bool,
    body_len: usize,
}

impl Default for Response {
    fn default() -> Self {
        Self::new()
    }
}

impl Response {
    pub const fn new() -> Response {
        Response {
            state: State::StatusLine,
            line: heapless::Vec::new(),
            line_overflow: false,
            head: Head {
                status: 0,
                location: None,
                token: None,
                close: false,
            },
            headers: 0,
            head_bytes: 0,
            length: None,
            chunked: false,
            body_len: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// True once any byte of the response arrived.
    pub fn started(&self) -> bool {
        self.head_bytes > 0
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Length of the body in the caller's buffer.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// Consumes bytes of the response; returns how many (fewer than offered once done).
    pub fn feed(&mut self, input: &[u8], body: &mut [u8]) -> Result<usize, Error> {
        let mut used = 0;
        while let Some(rest) = input.get(used..).filter(|r| !r.is_empty()) {
            used += match self.state {
                State::Done => break,
                State::Length(left) | State::ChunkData(left) => {
                    let n = rest.len().min(left);
                    self.store(rest.get(..n).unwrap_or_default(), body)?;
                    let left = left - n;
                    self.state = match self.state {
                        State::Length(_) if left == 0 => State::Done,
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                    n
                }
                State::UntilClose => {
                    self.store(rest, body)?;
                    rest.len()
                }
                _ => {
                    let n = match rest.iter().position(|&b| b == b'\n') {
                        Some(i) => i + 1,
                        None => rest.len(),
                    };
                    let part = rest.get(..n).unwrap_or_default();
                    if matches!(self.state, State::StatusLine | State::Headers) {
                        self.head_bytes = self.head_bytes.saturating_add(n);
                        if self.head_bytes > HEAD_MAX {
                            return Err(Error::Malformed);
                        }
                    }
                    let room = LINE_CAP - self.line.len();
                    let keep = part.strip_suffix(b"\n").unwrap_or(part);
                    if keep.len() > room {
                        self.line_overflow = true;
                    }
                    let _ = self
                        .line
                        .extend_from_slice(keep.get(..room.min(keep.len())).unwrap_or_default());
                    if part.ends_with(b"\n") {
                        self.end_line()?;
                        self.line.clear();
                        self.line_overflow = false;
                    }
                    n
                }
            };
        }
        Ok(used)
    }

    /// The peer closed the connection: ends an until-close body; any other unfinished
    /// response is truncated.
    pub fn eof(&mut self) -> Result<(), Error> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(Error::Malformed),
        }
    }

    fn store(&mut self, bytes: &[u8], body: &mut [u8]) -> Result<(), Error> {
        let end = self
            .body_len
            .checked_add(bytes.len())
            .ok_or(Error::Malformed)?;
        body.get_mut(self.body_len..end)
            .ok_or(Error::Malformed)?
            .copy_from_slice(bytes);
        self.body_len = end;
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), Error> {
        let buf = core::mem::take(&mut self.line);
        let line = buf.strip_suffix(b"\r").unwrap_or(&buf);
        match self.state {
            State::StatusLine => {
                if self.line_overflow {
                    return Err(Error::Malformed);
                }
                let (v11, status) = parse_status_line(line)?;
                self.head.status = status;
                self.head.close = !v11;
                self.state = State::Headers;
            }
            State::Headers if line.is_empty() => self.end_head(),
            State::Headers => {
                self.headers += 1;
                if self.headers > MAX_HEADERS {
                    return Err(Error::Malformed);
                }
                self.header(line)?;
            }
            State::ChunkSize => {
                if self.line_overflow {
                    return Err(Error::Malformed);
                }
                let hex = line.split(|&b| b == b';').next().unwrap_or_default();
                let size = parse_number(trim(hex), 16)?;
                self.state = if size == 0 {
                    State::Trailers
                } else {
                    State::ChunkData(size)
                };
            }
            State::ChunkEnd if line.is_empty() => self.state = State::ChunkSize,
            State::Trailers if line.is_empty() => self.state = State::Done,
            State::Trailers => {}
            _ => return Err(Error::Malformed),
        }
        Ok(())
    }

    fn header(&mut self, line: &[u8]) -> Result<(), Error> {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Error::Malformed)?;
        let name = line.get(..colon).unwrap_or_default();
        let value = trim(line.get(colon + 1..).unwrap_or_default());
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        let needed = [
            "content-length",
            "transfer-encoding",
            "location",
            "x-auth-token",
        ];
        if self.line_overflow {
            // A header we need must be whole; others may be as long as they like.
            return match needed.iter().any(|n| is(n)) {
                true => Err(Error::Malformed),
                false => Ok(()),
            };
        }
        if is("content-length") {
            let n = parse_number(value, 10)?;
            if self.length.is_some_and(|l| l != n) {
                return Err(Error::Malformed);
            }
            self.length = Some(n);
        } else if is("transfer-encoding") {
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            if !trim(last).eq_ignore_ascii_case(b"chunked") {
                return Err(Error::Malformed);
            }
            self.chunked = true;
        } else if is("connection") {
            for t in value.split(|&b| b == b',').map(trim) {
                if t.eq_ignore_ascii_case(b"close") {
                    self.head.close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    self.head.close = false;
                }
            }
        } else if is("location") {
            self.head.location = Some(to_string(value)?);
        } else if is("x-auth-token") {
            self.head.token = Some(to_string(value)?);
        }
        Ok(())
    }

    fn end_head(&mut self) {
        let status = self.head.status;
        if (100..200).contains(&status) {
            // An interim response (100 Continue): the real one follows.
            *self = Response::new();
            return;
        }
        self.state = if status == 204 || status == 304 {
            State::Done
        } else if self.chunked {
            State::ChunkSize
        } else {
            match self.length {
                Some(0) => State::Done,
                Some(n) => State::Length(n),
                None => {
                    self.head.close = true;
                    State::UntilClose
                }
            }
        };
    }
}

/// `HTTP/1.x SSS reason` → (is 1.1 or later, status).
fn parse_status_line(line: &[u8]) -> Result<(bool, u16), Error> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let v11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return Err(Error::Malformed),
    };
    if code.len() != 3 {
        return Err(Error::Malformed);
    }
    let status = parse_number(code, 10)?;
    match u16::try_from(status) {
        Ok(s) if s >= 100 => Ok((v11, s)),
        _ => Err(Error::Malformed),
    }
}

/// A non-empty run of digits in `radix` that fits in a `usize`.
fn parse_number(digits: &[u8], radix: u32) -> Result<usize, Error> {
    if digits.is_empty() {
        return Err(Error::Malformed);
    }
    digits.iter().try_fold(0usize, |n, &b| {
        let d = char::from(b).to_digit(radix).ok_or(Error::Malformed)?;
        n.checked_mul(radix as usize)
            .and_then(|n| n.checked_add(d as usize))
            .ok_or(Error::Malformed)
    })
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

fn to_string<const N: usize>(value: &[u8]) -> Result<String<N>, Error> {
    let s = core::str::from_utf8(value).map_err(|_| Error::Malformed)?;
    String::try_from(s).map_err(|_| Error::Malformed)
}

#[cfg(test)]
mod tests;
