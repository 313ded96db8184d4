//! The client's answers: what each step's response means for the client's state.

use super::{Client, MAX_REDIRECTS, Path, Phase, Service, Step};
use crate::bmc::Error;
use crate::bmc::redfish::http::{self, Method};
use crate::bmc::redfish::json::{self, Collection, ComputerSystem, ServiceRoot};

impl Client {
    /// A whole answer is in: act on it, then plan the next step.
    pub(super) fn on_response(&mut self, now_ms: u64) {
        self.phase = Phase::Idle;
        match self.handle(now_ms) {
            Ok(true) => {} // A redirect: the same step goes on.
            Ok(false) => self.advance(now_ms),
            Err(e) => self.fail(e, now_ms),
        }
    }

    /// Applies the answer of the current step; `Ok(true)` if the request was redirected.
    fn handle(&mut self, now_ms: u64) -> Result<bool, Error> {
        let status = self.response.head().status;
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            self.redirect(status, now_ms)?;
            return Ok(true);
        }
        let relog = self.token.is_some() && !matches!(self.step, Step::Login | Step::Logout);
        if status == 401 {
            if let Some(op) = self.op.as_mut().filter(|op| relog && !op.relogged) {
                // The session expired: log in again, then repeat the step.
                op.relogged = true;
                self.forget_session();
                return Ok(false);
            }
            if relog {
                self.forget_session(); // Refused twice: the next operation logs in anew.
            }
            return Err(Error::Auth);
        }
        let ok = (200..300).contains(&status);
        let body = self.rx.get(..self.response.body_len()).unwrap_or_default();
        match self.step {
            Step::Root if ok => {
                let root: ServiceRoot = json::parse(body)?;
                let systems = root.systems.as_ref().ok_or(Error::Malformed)?;
                self.service.systems = Some(path_of(systems.id)?);
                self.service.sessions = sessions_path(&root)?;
                self.service.root_read = true;
            }
            Step::Login if ok => {
                let token = self.response.head().token.clone().ok_or(Error::Malformed)?;
                let uri = match &self.response.head().location {
                    Some(l) => Some(l.as_str()),
                    None => json::parse::<json::Link>(body).ok().map(|l| l.id),
                };
                self.session = uri.map(path_of).transpose()?;
                self.token = Some(token);
            }
            Step::Login if matches!(status, 404 | 405 | 501) => self.service.sessions = None,
            Step::Login if status == 403 => return Err(Error::Auth),
            Step::Systems if ok => {
                let c: Collection = json::parse(body)?;
                let want = self.config.system.as_deref();
                let member = c.members.and_then(|m| m.find(want));
                self.service.system = Some(path_of(member.ok_or(Error::Refused(404))?)?);
            }
            Step::System if ok => {
                let sys: ComputerSystem = json::parse(body)?;
                let power = sys.power()?;
                let reset = sys.reset();
                let target = reset.map(|r| path_of(r.target)).transpose()?;
                self.service.reset = Some((target, reset.and_then(|r| r.allowed)));
                if let Some(op) = self.op.as_mut().filter(|op| op.acted) {
                    op.read = Some(power);
                }
            }
            Step::System if status == 404 => {
                // The system went away: find it again next time.
                self.service = Service::default();
                return Err(Error::Refused(status));
            }
            Step::Reset(_) | Step::Patch { .. } if ok => {
                let until = now_ms.saturating_add(self.config.settle_timeout_ms);
                if let Some(op) = self.op.as_mut() {
                    op.acted = true;
                    op.read = None;
                    op.settle_until = until;
                }
            }
            Step::Reset(_) | Step::Patch { .. } if status == 501 => return Err(Error::Unsupported),
            Step::Patch { with_mode: true } if (400..500).contains(&status) => {
                // Some BMCs refuse BootSourceOverrideMode: try once without it.
                if let Some(op) = self.op.as_mut() {
                    op.patch_with_mode = false;
                }
            }
            Step::Logout => self.forget_session(),
            _ => return Err(Error::Refused(status)),
        }
        Ok(false)
    }

    /// Follows a redirect on the same connection, to the same host only.
    fn redirect(&mut self, status: u16, now_ms: u64) -> Result<(), Error> {
        let location = self
            .response
            .head()
            .location
            .clone()
            .ok_or(Error::Refused(status))?;
        let (authority, path) = split_url(&location);
        if self.redirects >= MAX_REDIRECTS
            || authority.is_some_and(|a| !a.eq_ignore_ascii_case(&self.config.host))
        {
            return Err(Error::Refused(status));
        }
        self.path = path_of(path)?;
        if status == 303 {
            self.method = Method::Get;
            self.body = None;
        }
        let redirects = self.redirects + 1;
        self.phase = Phase::Exchange(now_ms.saturating_add(self.config.request_timeout_ms));
        self.encode()?;
        self.redirects = redirects;
        Ok(())
    }
}

/// The Sessions collection: `Links.Sessions`, else `<SessionService>/Sessions`.
fn sessions_path(root: &ServiceRoot) -> Result<Option<Path>, Error> {
    if let Some(s) = root.links.as_ref().and_then(|l| l.sessions.as_ref()) {
        return path_of(s.id).map(Some);
    }
    let Some(service) = &root.session_service else {
        return Ok(None);
    };
    let mut p = path_of(service.id.trim_end_matches('/'))?;
    p.push_str("/Sessions").map_err(|_| Error::Malformed)?;
    Ok(Some(p))
}

/// `scheme://authority/path` → (authority, path); a bare path → (None, path).
fn split_url(url: &str) -> (Option<&str>, &str) {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest,
        None => return (None, url),
    };
    match rest.find('/') {
        Some(i) => (rest.get(..i), rest.get(i..).unwrap_or("/")),
        None => (Some(rest), "/"),
    }
}

/// A path the BMC gave (a link or `Location`) as a request target: absolute, printable,
/// no JSON escapes (they are not decoded), short enough.
fn path_of(link: &str) -> Result<Path, Error> {
    let (_, path) = split_url(link);
    if !path.starts_with('/') || path.contains('\\') || !http::is_token_safe(path) {
        return Err(Error::Malformed);
    }
    Path::try_from(path).map_err(|_| Error::Malformed)
}
