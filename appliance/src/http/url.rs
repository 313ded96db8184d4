//! Percent-decoding of request paths and query values, and percent-encoding of the file
//! names the script puts in URLs.

use core::fmt;

/// Decodes `%XX` escapes of `raw` into `out` (and `+` into a space for query values, as
/// HTML forms send them). `None` on a bad escape or when `out` is too small.
pub fn percent_decode<'o>(raw: &[u8], plus_is_space: bool, out: &'o mut [u8]) -> Option<&'o [u8]> {
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = match raw[i] {
            b'%' => {
                let hi = hex(*raw.get(i + 1)?)?;
                let lo = hex(*raw.get(i + 2)?)?;
                i += 2;
                hi << 4 | lo
            }
            b'+' if plus_is_space => b' ',
            b => b,
        };
        *out.get_mut(n)? = b;
        n += 1;
        i += 1;
    }
    Some(&out[..n])
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The first `key=value` pair of a query whose key is `key`, its value decoded into `out`.
/// Pairs that do not decode are skipped.
pub fn query_param<'o>(query: &str, key: &str, out: &'o mut [u8]) -> Option<&'o str> {
    for pair in query.split(['&', ';']) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let mut kbuf = [0u8; 32];
        if percent_decode(k.as_bytes(), true, &mut kbuf) != Some(key.as_bytes()) {
            continue;
        }
        // Checked first: `out` can only be lent once, to the value returned.
        if decoded_len(v.as_bytes()).is_none_or(|l| l > out.len()) {
            continue;
        }
        let value = percent_decode(v.as_bytes(), true, out)?;
        return core::str::from_utf8(value).ok();
    }
    None
}

/// The decoded length of `raw`, if its escapes are well formed.
pub fn decoded_len(raw: &[u8]) -> Option<usize> {
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            hex(*raw.get(i + 1)?)?;
            hex(*raw.get(i + 2)?)?;
            i += 2;
        }
        n += 1;
        i += 1;
    }
    Some(n)
}

/// A file name as a URL path: RFC 3986 unreserved characters and `/` as they are, every
/// other byte `%XX`, so a name with spaces or `#` still names the file.
pub struct PathEncoded<'a>(pub &'a str);

impl fmt::Display for PathEncoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0.as_bytes() {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                fmt::Write::write_char(f, b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn decodes_and_finds_params() {
        let mut buf = [0u8; 32];
        assert_eq!(
            percent_decode(b"a%2Fb%2e+c", false, &mut buf),
            Some(&b"a/b.+c"[..])
        );
        assert_eq!(percent_decode(b"a+b", true, &mut buf), Some(&b"a b"[..]));
        assert_eq!(percent_decode(b"%zz", false, &mut buf), None);
        assert_eq!(percent_decode(b"%4", false, &mut buf), None);
        assert_eq!(percent_decode(&[b'a'; 33], false, &mut buf), None);

        let q = "arch=x86_64&mac=52%3a54%3A00%3A12%3A34%3A56&uuid&bad=%g1&mac=ignored";
        assert_eq!(query_param(q, "mac", &mut buf), Some("52:54:00:12:34:56"));
        assert_eq!(query_param(q, "arch", &mut buf), Some("x86_64"));
        assert_eq!(query_param(q, "uuid", &mut buf), Some(""));
        assert_eq!(query_param(q, "bad", &mut buf), None);
        assert_eq!(query_param(q, "nope", &mut buf), None);
        let mut tiny = [0u8; 4];
        assert_eq!(query_param("m=toolong&m=ok", "m", &mut tiny), Some("ok"));
        assert_eq!(query_param("m%61c=1", "mac", &mut buf), Some("1"));
    }

    #[test]
    fn encodes_paths() {
        let s = std::format!("{}", PathEncoded("talos/init ramfs#1.xz"));
        assert_eq!(s, "talos/init%20ramfs%231.xz");
    }
}
