//! One HTTP connection as a sans-IO state machine.
//!
//! Requests are handled one at a time, in order. `receive` copies one request head into
//! the head buffer and stops there, so pipelined requests wait in the socket's receive
//! buffer (the client's flow control) instead of in ours. `send` then writes the response
//! straight into the socket's send buffer: the header is formatted in pieces as room
//! allows, the body is read from the store (or rendered) at the offset reached so far.
//! Nothing but the 2 KiB head buffer and a few counters is kept per connection.
//!
//! Deadlines, all visible in [`Connection::poll_at`]:
//! - a request head must be complete [`HEAD_TIMEOUT_MS`] after its first byte, however
//!   steadily it trickles in (slowloris): 408, then close;
//! - a connection waiting for a request is closed after [`IDLE_TIMEOUT_MS`];
//! - a response that has not moved for [`SEND_TIMEOUT_MS`] (the client stopped reading)
//!   is abandoned and the connection closed.

use core::cmp::min;
use core::fmt::{self, Write};

use super::request::{self, ByteRange, MAX_HEAD, Method, Version};
use super::script::{self, Requester};
use super::{BootTargets, Event, Site, Status, log_field, url};
use crate::assets::{self, Asset, AssetError, AssetStore, NameError};
use crate::dhcp::pxe::BootTarget;
use crate::net::Uuid;

/// How long a request head may take from its first byte.
pub const HEAD_TIMEOUT_MS: u64 = 10_000;
/// How long a connection may wait for its next request.
pub const IDLE_TIMEOUT_MS: u64 = 15_000;
/// How long a response may wait for room in the socket.
pub const SEND_TIMEOUT_MS: u64 = 30_000;
/// Largest request body skipped to keep the connection; a bigger one closes it after the
/// response (nothing here reads bodies).
pub const MAX_DISCARD: u64 = 64 * 1024;
/// Longest decoded path; longer ones cannot name a file ([`assets::MAX_NAME`]).
const MAX_PATH: usize = 2 * assets::MAX_NAME;

pub struct Connection {
    /// The head being read, then the head being answered (its target is logged).
    head: [u8; MAX_HEAD],
    head_len: usize,
    /// The first byte of the head being read, blank lines before it included.
    head_started: Option<u64>,
    /// The last response finished, head read or byte sent: idle and stall deadlines.
    last_progress: u64,
    /// Request body bytes still to skip.
    discard: u64,
    /// Close once the current response is out.
    close_after: bool,
    phase: Phase,
    /// A file an abandoned response left open, closed at the next call that has the store.
    orphan: Option<Asset>,
    event: Option<Event>,
    /// Events replaced before they were polled.
    events_lost: u32,
}

// No allocator to box the response in: the connection is sized for it either way.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Reading a request head, or waiting for one.
    Reading,
    /// A head is in (or was refused with this status); `send` builds the response.
    Ready {
        refuse: Option<Status>,
        received_ms: u64,
    },
    Responding(Response),
    /// Nothing more will be sent.
    Closed,
}

impl Connection {
    pub fn new(now_ms: u64) -> Connection {
        Connection {
            head: [0; MAX_HEAD],
            head_len: 0,
            head_started: None,
            last_progress: now_ms,
            discard: 0,
            close_after: false,
            phase: Phase::Reading,
            orphan: None,
            event: None,
            events_lost: 0,
        }
    }

    /// Takes received bytes; returns how many were consumed. The rest belongs to a later
    /// request and stays in the socket until the current response is sent.
    pub fn receive(&mut self, now_ms: u64, data: &[u8]) -> usize {
        self.tick(now_ms);
        let mut used = 0;
        while used < data.len() && !matches!(self.phase, Phase::Closed) {
            if self.discard > 0 {
                let n = min(self.discard, (data.len() - used) as u64);
                self.discard -= n;
                used += n as usize;
                continue;
            }
            if !matches!(self.phase, Phase::Reading) {
                break;
            }
            let b = data[used];
            self.head_started.get_or_insert(now_ms);
            // RFC 9112 2.2: blank lines before a request line are skipped.
            if self.head_len == 0 && (b == b'\r' || b == b'\n') {
                used += 1;
                continue;
            }
            if self.head_len == MAX_HEAD {
                self.refuse(now_ms, Status::HeadersTooLarge);
                break;
            }
            self.head[self.head_len] = b;
            self.head_len += 1;
            used += 1;
            let head = &self.head[..self.head_len];
            if head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n") {
                self.head_complete(now_ms);
            } else if self.head_len == 1 && !b.is_ascii_uppercase() {
                // Not a request line (a TLS hello, a stray protocol): no need to wait.
                self.refuse(now_ms, Status::BadRequest);
            }
        }
        used
    }

    /// Fills `out` with the next bytes to send; 0 when there is nothing to send now.
    pub fn send<S: AssetStore>(
        &mut self,
        now_ms: u64,
        out: &mut [u8],
        site: &mut Site<'_, S>,
    ) -> usize {
        self.tick(now_ms);
        if let Some(asset) = self.orphan.take() {
            site.store.close(asset);
        }
        if let Phase::Ready {
            refuse,
            received_ms,
        } = self.phase
        {
            let head = &self.head[..self.head_len];
            let response = start(head, refuse, received_ms, self.close_after, site);
            self.phase = Phase::Responding(response);
        }
        let Phase::Responding(r) = &mut self.phase else {
            return 0;
        };
        let (n, failed) = r.write(out, site);
        let done = r.head_sent == r.head_total && (!r.send_body || r.body_sent == r.body_len);
        if n > 0 {
            self.last_progress = now_ms;
        }
        if done {
            self.finish(now_ms, site.store);
        } else if failed {
            self.abandon(now_ms);
            if let Some(asset) = self.orphan.take() {
                site.store.close(asset);
            }
        }
        n
    }

    /// The client sent FIN and everything before it was received: answer what was asked,
    /// then close. A half-read head is dropped.
    pub fn peer_closed(&mut self, now_ms: u64) {
        self.tick(now_ms);
        match self.phase {
            Phase::Reading => self.phase = Phase::Closed,
            Phase::Ready { .. } | Phase::Responding(_) => self.close_after = true,
            Phase::Closed => {}
        }
    }

    /// Checks the deadlines; call it once [`Connection::poll_at`] has passed (`receive` and
    /// `send` check them too).
    pub fn tick(&mut self, now_ms: u64) {
        match self.phase {
            Phase::Reading => match self.head_started {
                Some(t) if now_ms >= t.saturating_add(HEAD_TIMEOUT_MS) => {
                    self.refuse(now_ms, Status::RequestTimeout)
                }
                None if now_ms >= self.last_progress.saturating_add(IDLE_TIMEOUT_MS) => {
                    self.phase = Phase::Closed
                }
                _ => {}
            },
            Phase::Ready { .. } | Phase::Responding(_) => {
                if now_ms >= self.last_progress.saturating_add(SEND_TIMEOUT_MS) {
                    self.abandon(now_ms);
                }
            }
            Phase::Closed => {}
        }
    }

    /// The next deadline; `None` once closed.
    pub fn poll_at(&self) -> Option<u64> {
        match self.phase {
            Phase::Reading => Some(match self.head_started {
                Some(t) => t.saturating_add(HEAD_TIMEOUT_MS),
                None => self.last_progress.saturating_add(IDLE_TIMEOUT_MS),
            }),
            Phase::Ready { .. } | Phase::Responding(_) => {
                Some(self.last_progress.saturating_add(SEND_TIMEOUT_MS))
            }
            Phase::Closed => None,
        }
    }

    /// Everything this connection will send has been handed out by `send`: close the
    /// socket (its FIN follows the queued bytes), then call [`Connection::release`].
    pub fn should_close(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The socket is gone (closed, reset or timed out): closes the file a response still
    /// holds; a response cut short is logged as aborted.
    pub fn release<S: AssetStore>(&mut self, now_ms: u64, store: &mut S) {
        self.abandon(now_ms);
        if let Some(asset) = self.orphan.take() {
            store.close(asset);
        }
    }

    /// The finished or abandoned response, once, for the log. One is held: poll after
    /// every `send`, `tick` and `release`, or a newer event replaces it.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.event.take()
    }

    /// Events replaced before they were polled.
    pub fn events_lost(&self) -> u32 {
        self.events_lost
    }

    fn record(&mut self, event: Event) {
        if self.event.replace(event).is_some() {
            self.events_lost = self.events_lost.saturating_add(1);
        }
    }

    fn head_complete(&mut self, now_ms: u64) {
        self.last_progress = now_ms;
        match request::parse(&self.head[..self.head_len]) {
            Ok(req) => {
                if !req.keep_alive || req.transfer_encoding || req.content_length > MAX_DISCARD {
                    self.close_after = true;
                } else {
                    self.discard = req.content_length;
                }
                self.phase = Phase::Ready {
                    refuse: None,
                    received_ms: now_ms,
                };
            }
            Err(e) => self.refuse(now_ms, e.status()),
        }
    }

    /// Answers with an error and closes: the head could not be read to its end.
    fn refuse(&mut self, now_ms: u64, status: Status) {
        self.close_after = true;
        self.head_len = 0;
        self.last_progress = now_ms;
        self.phase = Phase::Ready {
            refuse: Some(status),
            received_ms: now_ms,
        };
    }

    fn finish<S: AssetStore>(&mut self, now_ms: u64, store: &mut S) {
        let Phase::Responding(r) = core::mem::replace(&mut self.phase, Phase::Reading) else {
            return;
        };
        let e = r.event(&self.head, now_ms, true);
        self.record(e);
        if let Body::Asset { asset, .. } = r.body {
            store.close(asset);
        }
        self.last_progress = now_ms;
        self.head_len = 0;
        self.head_started = None;
        if self.close_after {
            self.phase = Phase::Closed;
        }
    }

    /// Gives up on the current response, if any, and closes.
    fn abandon(&mut self, now_ms: u64) {
        match core::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Responding(r) => {
                let e = r.event(&self.head, now_ms, false);
                self.record(e);
                if let Body::Asset { asset, .. } = r.body {
                    self.orphan = Some(asset);
                }
            }
            Phase::Ready {
                refuse,
                received_ms,
            } => {
                // No response began: the status is the refusal's, or 0.
                let log = match refuse {
                    Some(_) => None,
                    None => request::parse(&self.head[..self.head_len])
                        .ok()
                        .map(|r| (r.method_token.len(), r.target.len())),
                };
                let status = refuse.map_or(0, Status::code);
                let ms = now_ms.saturating_sub(received_ms);
                let e = event(&self.head, log, status, 0, ms, false);
                self.record(e);
            }
            Phase::Reading | Phase::Closed => {}
        }
    }
}

/// What the response header says besides the status line and length.
struct Fields {
    status: Status,
    content_type: &'static str,
    range: ContentRange,
    accept_ranges: bool,
    no_store: bool,
    /// `close`, or `keep-alive` for an HTTP/1.0 client that asked for it.
    connection: Option<&'static str>,
}

impl Fields {
    fn new(status: Status, connection: Option<&'static str>) -> Fields {
        Fields {
            status,
            content_type: "text/plain",
            range: ContentRange::None,
            accept_ranges: false,
            no_store: false,
            connection,
        }
    }
}

enum ContentRange {
    None,
    /// Bytes `start..end` of `size`.
    Part {
        start: u64,
        end: u64,
        size: u64,
    },
    Unsatisfied(u64),
}

#[allow(clippy::large_enum_variant)]
enum Body {
    /// `404 Not Found` and the like, as text.
    Status(Status),
    Asset {
        asset: Asset,
        start: u64,
    },
    Script {
        who: Requester,
        target: BootTarget,
    },
    /// The site's join config, read again at each send (it must keep its length).
    JoinConfig,
}

struct Response {
    fields: Fields,
    head_total: usize,
    head_sent: usize,
    body: Body,
    /// The Content-Length, also for HEAD.
    body_len: u64,
    body_sent: u64,
    send_body: bool,
    /// Lengths of the method and target at the start of the head; `None` for a refused head.
    log: Option<(usize, usize)>,
    received_ms: u64,
}

impl Response {
    fn new(
        fields: Fields,
        body: Body,
        body_len: u64,
        send_body: bool,
        log: Option<(usize, usize)>,
        received_ms: u64,
    ) -> Response {
        let mut count = Window::new(&mut [], 0);
        let _ = write_head(&mut count, &fields, body_len);
        Response {
            fields,
            head_total: count.total,
            head_sent: 0,
            body,
            body_len,
            body_sent: 0,
            send_body,
            log,
            received_ms,
        }
    }

    /// A response with a short text body saying what went wrong.
    fn status(
        status: Status,
        fields: Fields,
        send_body: bool,
        log: Option<(usize, usize)>,
        received_ms: u64,
    ) -> Response {
        let mut count = Window::new(&mut [], 0);
        let _ = write_status_body(&mut count, status);
        let len = count.total as u64;
        Response::new(
            fields,
            Body::Status(status),
            len,
            send_body,
            log,
            received_ms,
        )
    }

    /// Writes what fits of the rest of the response; `true` when the body cannot be
    /// finished (the store failed or the file or script changed under it).
    fn write<S: AssetStore>(&mut self, out: &mut [u8], site: &mut Site<'_, S>) -> (usize, bool) {
        let mut n = 0;
        if self.head_sent < self.head_total {
            let mut w = Window::new(out, self.head_sent);
            let _ = write_head(&mut w, &self.fields, self.body_len);
            n = w.len;
            self.head_sent += n;
            if self.head_sent < self.head_total {
                return (n, false);
            }
        }
        if !self.send_body {
            return (n, false);
        }
        let left = self.body_len - self.body_sent;
        let room = usize::try_from(left).map_or(out.len() - n, |l| min(l, out.len() - n));
        if room == 0 {
            return (n, false);
        }
        let dst = &mut out[n..n + room];
        let written = match &self.body {
            Body::Status(status) => {
                let mut w = Window::new(dst, self.body_sent as usize);
                let _ = write_status_body(&mut w, *status);
                Some(w.len)
            }
            Body::Asset { asset, start } => {
                let offset = start.saturating_add(self.body_sent);
                site.store
                    .read(*asset, offset, dst)
                    .ok()
                    .map(|k| min(k, room))
            }
            Body::Script { who, target } => {
                let mut w = Window::new(dst, self.body_sent as usize);
                script::render(&mut w, site.script, who, target)
                    .ok()
                    .map(|_| w.len)
            }
            Body::JoinConfig => (site.targets.join_config())
                .filter(|c| c.len() as u64 == self.body_len)
                .map(|c| {
                    let mut w = Window::new(dst, self.body_sent as usize);
                    let _ = w.write_str(c);
                    w.len
                }),
        };
        let k = written.unwrap_or(0);
        self.body_sent += k as u64;
        // Room was there but fewer bytes came: the body can no longer match its length.
        (n + k, k < room)
    }

    fn event(&self, head: &[u8], now_ms: u64, complete: bool) -> Event {
        let bytes = if self.send_body { self.body_sent } else { 0 };
        let ms = now_ms.saturating_sub(self.received_ms);
        let status = self.fields.status.code();
        event(head, self.log, status, bytes, ms, complete)
    }
}

/// A log event; `log` has the lengths of the method and target at the start of `head`.
fn event(
    head: &[u8],
    log: Option<(usize, usize)>,
    status: u16,
    bytes: u64,
    ms: u64,
    complete: bool,
) -> Event {
    fn text(b: &[u8]) -> &str {
        core::str::from_utf8(b).unwrap_or("-")
    }
    let (method, target) = match log {
        Some((m, t)) => (
            head.get(..m).map_or("-", text),
            head.get(m + 1..m + 1 + t).map_or("-", text),
        ),
        None => ("-", "-"),
    };
    Event {
        method: log_field(method),
        target: log_field(target),
        status,
        bytes,
        ms,
        complete,
    }
}

/// Builds the response to the head in `head`, or to a refused one.
fn start<S: AssetStore>(
    head: &[u8],
    refuse: Option<Status>,
    received_ms: u64,
    close: bool,
    site: &mut Site<'_, S>,
) -> Response {
    let closing = close.then_some("close");
    let req = match refuse.map_or_else(|| request::parse(head).map_err(|e| e.status()), Err) {
        Ok(req) => req,
        Err(status) => {
            return Response::status(
                status,
                Fields::new(status, Some("close")),
                true,
                None,
                received_ms,
            );
        }
    };
    let log = Some((req.method_token.len(), req.target.len()));
    let connection = match req.version {
        Version::Http10 if !close => Some("keep-alive"),
        _ => closing,
    };
    let status_response = |status: Status| {
        let fields = Fields::new(status, connection);
        Response::status(status, fields, req.method != Method::Head, log, received_ms)
    };
    match req.method {
        Method::Get | Method::Head => {}
        Method::NotAllowed => return status_response(Status::MethodNotAllowed),
        Method::Unknown => return status_response(Status::NotImplemented),
    }
    let name = match url::decoded_len(req.path.as_bytes()) {
        None => Err(NameError::BadCharacter),
        Some(len) if len > MAX_PATH => Err(NameError::TooLong),
        Some(_) => {
            let mut buf = [0u8; MAX_PATH];
            let decoded = url::percent_decode(req.path.as_bytes(), false, &mut buf).unwrap_or(&[]);
            assets::normalize(decoded)
        }
    };
    let name = match name {
        Ok(name) => name,
        // `..`, NUL, bad escapes: not a name at all.
        Err(NameError::Traversal | NameError::BadCharacter) => {
            return status_response(Status::BadRequest);
        }
        Err(NameError::Empty | NameError::TooLong) => return status_response(Status::NotFound),
    };
    let send_body = req.method == Method::Get;

    if name.as_str() == site.script.path.trim_start_matches('/') {
        let who = Requester::from_query(req.query);
        let target = site.targets.boot_target(who.mac, who.uuid);
        return match script::rendered_len(site.script, &who, &target) {
            Ok(len) => {
                let mut fields = Fields::new(Status::Ok, connection);
                fields.no_store = true;
                let body = Body::Script { who, target };
                Response::new(fields, body, len as u64, send_body, log, received_ms)
            }
            Err(_) => status_response(Status::InternalError),
        };
    }

    if name.as_str() == JOIN_CONFIG_PATH {
        return match join_config(req.query, site.targets) {
            Ok(len) => {
                let mut fields = Fields::new(Status::Ok, connection);
                fields.content_type = "application/yaml";
                fields.no_store = true;
                Response::new(fields, Body::JoinConfig, len, send_body, log, received_ms)
            }
            Err(status) => status_response(status),
        };
    }

    let asset = match site.store.open(&name) {
        Ok(asset) => asset,
        Err(AssetError::NotFound) => return status_response(Status::NotFound),
        Err(AssetError::Busy) => return status_response(Status::Unavailable),
        Err(AssetError::Io) => return status_response(Status::InternalError),
    };
    let size = asset.size;
    // RFC 9110 14.2: ranges apply to GET only.
    let range = req
        .range
        .filter(|_| send_body)
        .map(|r| ByteRange::resolve(r, size));
    let (status, span) = match range {
        None => (Status::Ok, (0, size)),
        Some(Some(span)) => (Status::PartialContent, span),
        Some(None) => {
            site.store.close(asset);
            let mut fields = Fields::new(Status::RangeNotSatisfiable, connection);
            fields.range = ContentRange::Unsatisfied(size);
            fields.accept_ranges = true;
            return Response::status(Status::RangeNotSatisfiable, fields, true, log, received_ms);
        }
    };
    let mut fields = Fields::new(status, connection);
    fields.content_type = "application/octet-stream";
    fields.accept_ranges = true;
    if status == Status::PartialContent {
        fields.range = ContentRange::Part {
            start: span.0,
            end: span.1,
            size,
        };
    }
    let body = Body::Asset {
        asset,
        start: span.0,
    };
    Response::new(fields, body, span.1 - span.0, send_body, log, received_ms)
}

/// Where Talos fetches the join config (Omni's bare-metal provider serves the same path).
pub const JOIN_CONFIG_PATH: &str = "config";

/// The join config's length for `/config?u=UUID`, or the status that refuses it: 400
/// without a well-formed, non-nil UUID in `u`, 404 while the provider has sent none.
fn join_config(query: &str, targets: &dyn BootTargets) -> Result<u64, Status> {
    let mut buf = [0u8; 64];
    url::query_param(query, "u", &mut buf)
        .and_then(Uuid::parse)
        .filter(|u| !u.is_nil())
        .ok_or(Status::BadRequest)?;
    match targets.join_config() {
        Some(c) if !c.is_empty() => Ok(c.len() as u64),
        _ => Err(Status::NotFound),
    }
}

/// No Date header: a board has no clock to give one (RFC 9110 6.6.1).
fn write_head(w: &mut impl Write, f: &Fields, length: u64) -> fmt::Result {
    let status = f.status;
    write!(w, "HTTP/1.1 {} {}\r\n", status.code(), status.reason())?;
    write!(
        w,
        "Content-Type: {}\r\nContent-Length: {length}\r\n",
        f.content_type
    )?;
    match f.range {
        ContentRange::None => {}
        ContentRange::Part { start, end, size } => {
            write!(w, "Content-Range: bytes {start}-{}/{size}\r\n", end - 1)?
        }
        ContentRange::Unsatisfied(size) => write!(w, "Content-Range: bytes */{size}\r\n")?,
    }
    if f.accept_ranges {
        w.write_str("Accept-Ranges: bytes\r\n")?;
    }
    match status {
        Status::MethodNotAllowed => w.write_str("Allow: GET, HEAD\r\n")?,
        Status::Unavailable => w.write_str("Retry-After: 1\r\n")?,
        _ => {}
    }
    if f.no_store {
        w.write_str("Cache-Control: no-store\r\n")?;
    }
    if let Some(c) = f.connection {
        write!(w, "Connection: {c}\r\n")?;
    }
    w.write_str("\r\n")
}

fn write_status_body(w: &mut impl Write, status: Status) -> fmt::Result {
    writeln!(w, "{} {}", status.code(), status.reason())
}

/// A `fmt::Write` that drops the first `skip` bytes written, copies the next ones into
/// `out` until it is full and counts them all: text produced in pieces, each resumed where
/// the last ended, without a buffer. With an empty `out` it only counts.
struct Window<'o> {
    out: &'o mut [u8],
    skip: usize,
    /// Bytes copied into `out`.
    len: usize,
    /// Bytes written, skipped or not.
    total: usize,
}

impl<'o> Window<'o> {
    fn new(out: &'o mut [u8], skip: usize) -> Window<'o> {
        Window {
            out,
            skip,
            len: 0,
            total: 0,
        }
    }
}

impl Write for Window<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let b = s.as_bytes();
        let from = self.skip.saturating_sub(self.total);
        self.total = self.total.saturating_add(b.len());
        if from < b.len() {
            let k = min(self.out.len() - self.len, b.len() - from);
            self.out[self.len..self.len + k].copy_from_slice(&b[from..from + k]);
            self.len += k;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_resumes_where_it_left_off() {
        let text = |w: &mut Window<'_>| {
            // Several pieces, so resuming crosses write_str calls.
            let (a, n, z) = ("abc", 12345, "xyz");
            let _ = write!(w, "{a}-{n}-{z}");
        };
        let mut whole = [0u8; 32];
        let mut w = Window::new(&mut whole, 0);
        text(&mut w);
        let (len, total) = (w.len, w.total);
        assert_eq!((&whole[..len], total), (&b"abc-12345-xyz"[..], 13));
        let mut pieces = [0u8; 13];
        let mut at = 0;
        while at < 13 {
            let mut buf = [0u8; 4];
            let mut w = Window::new(&mut buf, at);
            text(&mut w);
            let n = w.len;
            pieces[at..at + n].copy_from_slice(&buf[..n]);
            at += n;
        }
        assert_eq!(&pieces, b"abc-12345-xyz");
    }

    #[test]
    fn a_connection_is_small() {
        // The head buffer and a few hundred bytes of state (mostly a script's boot URL).
        assert!(core::mem::size_of::<Connection>() < MAX_HEAD + 768);
    }
}
