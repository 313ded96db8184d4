//! The Redfish resources the client reads, as `serde-json-core` models borrowing from the
//! response body, and the small JSON bodies it sends.
//!
//! Unknown fields are ignored. `serde-json-core` recurses once per nesting level, so a body
//! nested deeper than [`MAX_DEPTH`] is refused by a scan before it is deserialized; strings
//! are not unescaped, so a link holding a `\` escape is refused when it is used.

use core::fmt::{self, Write};

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};

use super::reset::{ResetType, ResetTypes};
use crate::bmc::{BootMode, Error, PowerState, PxeBoot};

/// Deepest nesting of objects and arrays accepted (Redfish resources need about 6).
pub const MAX_DEPTH: usize = 24;
/// Most members of a collection looked at; later ones are ignored.
pub const MAX_MEMBERS: usize = 32;

/// Refuses bodies nested deeper than [`MAX_DEPTH`] (brackets inside strings do not count).
pub fn check_depth(body: &[u8]) -> Result<(), Error> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Error::Malformed);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Deserializes `T` from a whole response body.
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Error> {
    check_depth(body)?;
    serde_json_core::from_slice(body)
        .map(|(value, _)| value)
        .map_err(|_| Error::Malformed)
}

/// A reference to another resource.
#[derive(Debug, Deserialize)]
pub struct Link<'a> {
    #[serde(rename = "@odata.id")]
    pub id: &'a str,
}

/// `/redfish/v1`.
#[derive(Debug, Deserialize)]
pub struct ServiceRoot<'a> {
    #[serde(rename = "Systems", borrow)]
    pub systems: Option<Link<'a>>,
    #[serde(rename = "SessionService", borrow)]
    pub session_service: Option<Link<'a>>,
    #[serde(rename = "Links", borrow)]
    pub links: Option<RootLinks<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct RootLinks<'a> {
    #[serde(rename = "Sessions", borrow)]
    pub sessions: Option<Link<'a>>,
}

/// A resource collection (the Systems collection).
#[derive(Debug, Deserialize)]
pub struct Collection<'a> {
    #[serde(rename = "Members", borrow)]
    pub members: Option<Members<'a>>,
}

/// The first [`MAX_MEMBERS`] member links of a collection.
#[derive(Debug)]
pub struct Members<'a> {
    links: [&'a str; MAX_MEMBERS],
    len: usize,
}

impl<'a> Members<'a> {
    /// The member whose last path segment is `id`, or the first member if `id` is `None`.
    pub fn find(&self, id: Option<&str>) -> Option<&'a str> {
        let links = self.links.get(..self.len).unwrap_or_default();
        match id {
            None => links.first().copied(),
            Some(id) => links
                .iter()
                .copied()
                .find(|m| m.trim_end_matches('/').rsplit('/').next() == Some(id)),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(core::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of links")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Members<'a>, A::Error> {
                let mut members = Members {
                    links: [""; MAX_MEMBERS],
                    len: 0,
                };
                for slot in members.links.iter_mut() {
                    match seq.next_element::<Link<'de>>()? {
                        Some(link) => *slot = link.id,
                        None => return Ok(members),
                    }
                    members.len += 1;
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(members)
            }
        }
        d.deserialize_seq(V(core::marker::PhantomData))
    }
}

/// A ComputerSystem: its power, boot override and reset action.
#[derive(Debug, Deserialize)]
pub struct ComputerSystem<'a> {
    #[serde(rename = "PowerState", borrow)]
    pub power_state: Option<&'a str>,
    #[serde(rename = "Boot", borrow)]
    pub boot: Option<Boot<'a>>,
    #[serde(rename = "Actions", borrow)]
    pub actions: Option<Actions<'a>>,
}

impl ComputerSystem<'_> {
    /// The power state and whether it is settled (not `PoweringOn`/`PoweringOff`). A machine
    /// on its way counts as where it is going; `Paused` counts as on.
    pub fn power(&self) -> Result<(PowerState, bool), Error> {
        match self.power_state.ok_or(Error::Malformed)? {
            "On" | "Paused" => Ok((PowerState::On, true)),
            "Off" => Ok((PowerState::Off, true)),
            "PoweringOn" => Ok((PowerState::On, false)),
            "PoweringOff" => Ok((PowerState::Off, false)),
            _ => Err(Error::Malformed),
        }
    }

    /// The reset action's target and the reset types it allows, if the BMC says.
    pub fn reset(&self) -> Option<&ResetAction<'_>> {
        self.actions.as_ref()?.reset.as_ref()
    }
}

/// The boot override as the BMC reports it.
#[derive(Debug, Deserialize)]
pub struct Boot<'a> {
    #[serde(rename = "BootSourceOverrideEnabled")]
    pub enabled: Option<&'a str>,
    #[serde(rename = "BootSourceOverrideTarget")]
    pub target: Option<&'a str>,
    #[serde(rename = "BootSourceOverrideMode")]
    pub mode: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
pub struct Actions<'a> {
    #[serde(rename = "#ComputerSystem.Reset", borrow)]
    pub reset: Option<ResetAction<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct ResetAction<'a> {
    pub target: &'a str,
    #[serde(rename = "ResetType@Redfish.AllowableValues")]
    pub allowed: Option<ResetTypes>,
}

/// Bodies the client sends; all short, so they are built in a small buffer.
pub type Body = heapless::Vec<u8, 256>;

fn put(body: &mut Body, parts: &[&str]) -> Result<(), Error> {
    parts
        .iter()
        .try_for_each(|p| body.extend_from_slice(p.as_bytes()))
        .map_err(|_| Error::Busy)
}

/// Appends `s` as a JSON string, escaped.
fn put_string(body: &mut Body, s: &str) -> Result<(), Error> {
    put(body, &["\""])?;
    for c in s.chars() {
        let mut utf8 = [0u8; 4];
        let mut esc = heapless::String::<6>::new();
        let piece: &str = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            c if c < ' ' => {
                write!(esc, "\\u{:04x}", u32::from(c)).map_err(|_| Error::Busy)?;
                &esc
            }
            c => c.encode_utf8(&mut utf8),
        };
        put(body, &[piece])?;
    }
    put(body, &["\""])
}

/// `{"UserName":…,"Password":…}` for a session login.
pub fn login(user: &str, password: &str) -> Result<Body, Error> {
    let mut b = Body::new();
    put(&mut b, &["{\"UserName\":"])?;
    put_string(&mut b, user)?;
    put(&mut b, &[",\"Password\":"])?;
    put_string(&mut b, password)?;
    put(&mut b, &["}"])?;
    Ok(b)
}

/// `{"ResetType":…}`.
pub fn reset(t: ResetType) -> Result<Body, Error> {
    let mut b = Body::new();
    put(&mut b, &["{\"ResetType\":\"", t.as_str(), "\"}"])?;
    Ok(b)
}

/// The boot override PATCH: PXE once or always, in `pxe.mode` unless `with_mode` is false.
pub fn boot_pxe(pxe: PxeBoot, with_mode: bool) -> Result<Body, Error> {
    let enabled = if pxe.persistent { "Continuous" } else { "Once" };
    let mut b = Body::new();
    put(
        &mut b,
        &[
            "{\"Boot\":{\"BootSourceOverrideTarget\":\"Pxe\",\"BootSourceOverrideEnabled\":\"",
            enabled,
            "\"",
        ],
    )?;
    if with_mode {
        let mode = match pxe.mode {
            BootMode::Efi => "UEFI",
            BootMode::Legacy => "Legacy",
        };
        put(&mut b, &[",\"BootSourceOverrideMode\":\"", mode, "\""])?;
    }
    put(&mut b, &["}}"])?;
    Ok(b)
}

#[cfg(test)]
pub(crate) mod tests;
