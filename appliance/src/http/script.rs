//! The per-machine iPXE script served at `/boot.ipxe`.
//!
//! A template with `{{name}}` placeholders (iPXE's own `${name}` passes through untouched)
//! is filled in with the appliance's address, the boot files and what the request's query
//! says about the machine. `{{target}}` expands to the commands for the machine's boot
//! target, so the built-in template is little more than that.
//!
//! Rendering writes to any `fmt::Write` and keeps no buffer: the connection renders once to
//! count the bytes and again for each piece it sends.

use core::fmt::{self, Write};
use core::net::Ipv4Addr;

use super::url::{PathEncoded, query_param};
use crate::dhcp::pxe::BootTarget;
use crate::net::{MacAddr, Uuid};

/// Longest script served; a longer rendering is a 500.
pub const MAX_SCRIPT: usize = 4096;
/// Longest `arch` query value kept.
pub const MAX_ARCH: usize = 16;

/// Boots the machine's target and nothing else.
pub const DEFAULT_TEMPLATE: &str = "#!ipxe\n{{target}}\n";

/// What the script is built from; set by the adapter.
#[derive(Clone, Debug)]
pub struct ScriptConfig<'a> {
    /// Where the script is served: `boot.ipxe`, as in DHCP's boot URL.
    pub path: &'a str,
    /// The address machines reach the appliance's HTTP server at.
    pub server: Ipv4Addr,
    pub port: u16,
    /// Boot-dir names of the kernel and initrd that `BootTarget::Default` boots.
    pub kernel: &'a str,
    pub initrd: &'a str,
    /// Kernel command line after `initrd=`; iPXE `${...}` settings are allowed.
    pub cmdline: &'a str,
    /// [`DEFAULT_TEMPLATE`], or the site's own.
    pub template: &'a str,
}

impl ScriptConfig<'static> {
    pub fn new(server: Ipv4Addr) -> ScriptConfig<'static> {
        ScriptConfig {
            path: "boot.ipxe",
            server,
            port: 80,
            kernel: "vmlinuz",
            initrd: "initrd.img",
            cmdline: "console=ttyS0",
            template: DEFAULT_TEMPLATE,
        }
    }
}

/// What a script request says about the machine asking (`?mac=..&uuid=..&arch=..`).
/// Values that do not parse are left out, so nothing the client sends reaches the script
/// verbatim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requester {
    pub mac: Option<MacAddr>,
    /// A nil UUID (QEMU without one) is not an identity and is dropped.
    pub uuid: Option<Uuid>,
    /// iPXE's `${buildarch}`: `x86_64`, `arm64`, `i386`; letters, digits, `_`, `-`, `.`.
    pub arch: heapless::String<MAX_ARCH>,
}

impl Requester {
    pub fn from_query(query: &str) -> Requester {
        let mut buf = [0u8; 64];
        let mac = query_param(query, "mac", &mut buf).and_then(parse_mac);
        let uuid = query_param(query, "uuid", &mut buf)
            .and_then(Uuid::parse)
            .filter(|u| !u.is_nil());
        let arch = query_param(query, "arch", &mut buf)
            .filter(|a| {
                a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            })
            .and_then(|a| heapless::String::try_from(a).ok())
            .unwrap_or_default();
        Requester { mac, uuid, arch }
    }
}

/// `52:54:00:12:34:56`, `52-54-00-12-34-56` (iPXE `hexhyp`) or `525400123456` (`hexraw`).
fn parse_mac(s: &str) -> Option<MacAddr> {
    MacAddr::parse(s).or_else(|| {
        let mut out = [0u8; 6];
        (s.len() == 12 && s.is_ascii()).then_some(())?;
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(MacAddr(out))
    })
}

/// Why a script could not be rendered (the request gets a 500).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptError {
    /// `{{` without a closing `}}`.
    Unclosed,
    /// A `{{name}}` this renderer does not know.
    UnknownPlaceholder,
    /// A value would break the script's lines: a control character in the command line
    /// or a file name, or whitespace in a chain URL.
    BadValue,
    /// Longer than [`MAX_SCRIPT`], or than the writer holds.
    TooLarge,
}

impl From<fmt::Error> for ScriptError {
    fn from(_: fmt::Error) -> ScriptError {
        ScriptError::TooLarge
    }
}

const PLACEHOLDERS: [&str; 8] = [
    "server", "mac", "uuid", "arch", "kernel", "initrd", "cmdline", "target",
];

/// Checks a template's placeholders, so an adapter can refuse a bad file at start-up.
pub fn check_template(template: &str) -> Result<(), ScriptError> {
    let mut rest = template;
    while let Some((_, name, after)) = next_placeholder(rest)? {
        if !PLACEHOLDERS.contains(&name) {
            return Err(ScriptError::UnknownPlaceholder);
        }
        rest = after;
    }
    Ok(())
}

/// `(text before, placeholder name, text after)` of the first placeholder.
fn next_placeholder(s: &str) -> Result<Option<(&str, &str, &str)>, ScriptError> {
    let Some(open) = s.find("{{") else {
        return Ok(None);
    };
    let inner = &s[open + 2..];
    let close = inner.find("}}").ok_or(ScriptError::Unclosed)?;
    Ok(Some((
        &s[..open],
        inner[..close].trim(),
        &inner[close + 2..],
    )))
}

/// Renders the script for one machine into `w`.
pub fn render<W: Write>(
    w: &mut W,
    config: &ScriptConfig<'_>,
    who: &Requester,
    target: &BootTarget,
) -> Result<(), ScriptError> {
    check_values(config, target)?;
    let mut rest = config.template;
    while let Some((text, name, after)) = next_placeholder(rest)? {
        w.write_str(text)?;
        let server = Server(config.server, config.port);
        match name {
            "server" => write!(w, "{server}")?,
            "mac" => who.mac.map_or(Ok(()), |m| write!(w, "{m}"))?,
            "uuid" => who.uuid.map_or(Ok(()), |u| write!(w, "{u}"))?,
            "arch" => w.write_str(&who.arch)?,
            "kernel" => w.write_str(config.kernel)?,
            "initrd" => w.write_str(config.initrd)?,
            "cmdline" => w.write_str(config.cmdline)?,
            "target" => boot_commands(w, config, target)?,
            _ => return Err(ScriptError::UnknownPlaceholder),
        }
        rest = after;
    }
    w.write_str(rest)?;
    Ok(())
}

/// The length of the rendering, checked against [`MAX_SCRIPT`].
pub fn rendered_len(
    config: &ScriptConfig<'_>,
    who: &Requester,
    target: &BootTarget,
) -> Result<usize, ScriptError> {
    let mut count = Count(0);
    render(&mut count, config, who, target)?;
    if count.0 > MAX_SCRIPT {
        return Err(ScriptError::TooLarge);
    }
    Ok(count.0)
}

struct Count(usize);

impl Write for Count {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 = self.0.saturating_add(s.len());
        Ok(())
    }
}

/// `Default` boots the appliance's kernel and initrd. `File` is a firmware-level choice
/// (DHCP hands that file out instead of iPXE); an iPXE that still asks for the script gets
/// the default boot. The initrd is named on the command line because iPXE's EFI builds pass
/// it to an EFI-stub kernel only then; iPXE names an image after its URL's last segment.
fn boot_commands<W: Write>(
    w: &mut W,
    config: &ScriptConfig<'_>,
    target: &BootTarget,
) -> Result<(), ScriptError> {
    let server = Server(config.server, config.port);
    match target {
        BootTarget::Script(url) => write!(w, "chain {url}")?,
        BootTarget::Local => w.write_str("exit")?,
        BootTarget::Default | BootTarget::File(_) => {
            let kernel = config.kernel.trim_start_matches('/');
            let initrd = config.initrd.trim_start_matches('/');
            let initrd_name = initrd.rsplit('/').next().unwrap_or(initrd);
            write!(
                w,
                "kernel http://{server}/{} initrd={initrd_name}",
                PathEncoded(kernel)
            )?;
            if !config.cmdline.is_empty() {
                write!(w, " {}", config.cmdline)?;
            }
            write!(w, "\ninitrd http://{server}/{}\nboot", PathEncoded(initrd))?;
        }
    }
    Ok(())
}

/// Values that go into the script unencoded must not end a line or, for words, split one.
fn check_values(config: &ScriptConfig<'_>, target: &BootTarget) -> Result<(), ScriptError> {
    let line_safe = |s: &str| !s.chars().any(char::is_control);
    let word_safe = |s: &str| !s.chars().any(|c| c.is_control() || c.is_whitespace());
    let initrd_name = config.initrd.rsplit('/').next().unwrap_or_default();
    let url_ok = match target {
        BootTarget::Script(url) => !url.is_empty() && word_safe(url),
        _ => true,
    };
    let ok =
        url_ok && line_safe(config.cmdline) && line_safe(config.kernel) && word_safe(initrd_name);
    ok.then_some(()).ok_or(ScriptError::BadValue)
}

/// `address[:port]`, the port left out when it is 80.
struct Server(Ipv4Addr, u16);

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            80 => write!(f, "{}", self.0),
            port => write!(f, "{}:{port}", self.0),
        }
    }
}

#[cfg(test)]
mod tests;
