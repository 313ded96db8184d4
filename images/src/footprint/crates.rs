//! Which crate a symbol belongs to, from its mangled name (legacy `_ZN...E` or v0 `_R...`).

/// The standard library's crates: a trait impl is charged to the other side when one side
/// is one of these (a user type's `Debug`, `defmt::Format` for `Option`).
const STD: &[&str] = &["core", "alloc", "std"];

/// The crate named by the symbol's path, or `None` for a symbol that is not Rust (C,
/// assembly, linker-script data) or whose path names no crate.
///
/// v0 names record the crate that holds an impl, so that is used when present; legacy
/// names only say `<Type as Trait>`, so the crate is the type's unless that is a standard
/// crate or a primitive, then the trait's.
pub fn crate_of(symbol: &str) -> Option<String> {
    if let Some(krate) = v0_crate(symbol) {
        return Some(krate.to_string());
    }
    let demangled = rustc_demangle::try_demangle(symbol).ok()?;
    path_crate(&format!("{demangled:#}")).map(str::to_string)
}

/// The first crate root in a v0 name: the innermost path of the nested, generic and impl
/// prefixes (`N`, `I`, `M`, `X`), i.e. the crate that defines the item or holds the impl.
/// `None` for anything else (`Y`, backrefs, punycode), left to the demangled form.
fn v0_crate(symbol: &str) -> Option<&str> {
    let rest = symbol.strip_prefix("_R")?;
    let s = rest.as_bytes();
    let mut i = s.iter().take_while(|b| b.is_ascii_digit()).count(); // encoding version
    loop {
        match *s.get(i)? {
            b'N' => i += 2, // tag, namespace
            b'I' => i += 1,
            b'M' | b'X' => i = skip_disambiguator(s, i + 1)?,
            b'C' => {
                i = skip_disambiguator(s, i + 1)?;
                let digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
                let len: usize = rest.get(i..i + digits)?.parse().ok()?;
                i += digits;
                if s.get(i) == Some(&b'_') {
                    i += 1;
                }
                let name = rest.get(i..i.checked_add(len)?)?;
                return is_ident(name).then_some(name);
            }
            _ => return None,
        }
    }
}

/// Skips an optional `s<base62>_` at `i`.
fn skip_disambiguator(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b's') {
        return Some(i);
    }
    let end = s[i..].iter().position(|&b| b == b'_')?;
    Some(i + end + 1)
}

/// The crate of a demangled path: its first segment, or for `<Type as Trait>::f` the
/// type's crate unless that is a standard crate or none (a primitive, a generic), then the
/// trait's.
fn path_crate(path: &str) -> Option<&str> {
    let path = strip_type_prefixes(path.trim());
    if let Some(inner) = path.strip_prefix('<') {
        let close = matching_close(inner)?;
        let inner = &inner[..close];
        let (ty, tr) = match split_top_level_as(inner) {
            Some((ty, tr)) => (path_crate(ty), path_crate(tr)),
            None => (path_crate(inner), None),
        };
        return match (ty, tr) {
            (Some(t), Some(r)) if STD.contains(&t) && !STD.contains(&r) => Some(r),
            (Some(t), _) => Some(t),
            (None, r) => r,
        };
    }
    let end = path.find("::")?;
    let first = &path[..end];
    is_ident(first).then_some(first)
}

/// `&T`, `&mut T`, `*const T`, `dyn T` are charged to `T`.
fn strip_type_prefixes(mut s: &str) -> &str {
    loop {
        let before = s;
        for prefix in ["&", "mut ", "*const ", "*mut ", "dyn ", "'_ "] {
            s = s.strip_prefix(prefix).unwrap_or(s).trim_start();
        }
        if s == before {
            return s;
        }
    }
}

/// The index of the `>` that closes a `<` just before `s`.
fn matching_close(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'<' => depth += 1,
            b'>' if depth == 0 => return Some(i),
            b'>' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `Type as Trait` split at its ` as ` outside any nested `<...>`.
fn split_top_level_as(s: &str) -> Option<(&str, &str)> {
    let mut depth = 0usize;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'<' | b'[' | b'(' => depth += 1,
            b'>' | b']' | b')' => depth = depth.saturating_sub(1),
            b' ' if depth == 0 && s[i..].starts_with(" as ") => {
                return Some((&s[..i], &s[i + 4..]));
            }
            _ => {}
        }
    }
    None
}

/// The crate of a rustc object file from its name in an `STT_FILE` symbol
/// (`smoltcp.c6dcdc4d547912c9-cgu.07`); `None` for other files (C, assembly).
pub fn cgu_crate(file: &str) -> Option<&str> {
    let (krate, rest) = file.split_once('.')?;
    (is_ident(krate) && rest.contains("-cgu.")).then_some(krate)
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(s: &str) -> Option<String> {
        crate_of(s)
    }

    // Names from the QEMU board's ELF (legacy mangling, rustc's default).
    #[test]
    fn legacy_paths() {
        let cases = [
            (
                "_ZN9appliance4dhcp6server6Server6handle17h702af01f004774adE",
                "appliance",
            ),
            (
                "_ZN7smoltcp5iface9interface9Interface4poll17h816c2b7777b6ea2cE",
                "smoltcp",
            ),
            ("_ZN11embassy_net3new17hebb1804d5a399205E", "embassy_net"),
            (
                "_ZN15qemu_mps2_an3868firmware9tftp_task4POOL17h64d3101d5bf3cb04E.llvm.10336824289590569611",
                "qemu_mps2_an386",
            ),
            (
                "_ZN17compiler_builtins3mem6memcpy17h0123456789abcdefE",
                "compiler_builtins",
            ),
        ];
        for (mangled, expected) in cases {
            assert_eq!(krate(mangled).as_deref(), Some(expected), "{mangled}");
        }
    }

    #[test]
    fn legacy_trait_impls() {
        let cases = [
            // <heapless::string::StringInner<LenT,S> as core::fmt::Write>::write_str
            (
                "_ZN82_$LT$heapless..string..StringInner$LT$LenT$C$S$GT$$u20$as$u20$core..fmt..Write$GT$9write_str17h292d1d50eb15e766E",
                "heapless",
            ),
            // <&T as core::fmt::Display>::fmt: a generic behind a reference, so the trait's.
            (
                "_ZN44_$LT$$RF$T$u20$as$u20$core..fmt..Display$GT$3fmt17h049c41033967b1beE",
                "core",
            ),
            // <core::future::poll_fn::PollFn<F> as core::future::future::Future>::poll
            (
                "_ZN87_$LT$core..future..poll_fn..PollFn$LT$F$GT$$u20$as$u20$core..future..future..Future$GT$4poll17hb3c69c0cf526df42E",
                "core",
            ),
        ];
        for (mangled, expected) in cases {
            assert_eq!(krate(mangled).as_deref(), Some(expected), "{mangled}");
        }
    }

    /// Demangled forms, as legacy names give them: a standard type with a crate's trait
    /// goes to the trait's crate (defmt's `Format` for `Option`).
    #[test]
    fn demangled_paths() {
        let cases = [
            (
                "<core::option::Option<T> as defmt::traits::Format>::format",
                Some("defmt"),
            ),
            ("<[T] as core::fmt::Debug>::fmt", Some("core")),
            (
                "<<A as B>::C as smoltcp::phy::Device>::receive",
                Some("smoltcp"),
            ),
            ("core::slice::<impl [T]>::copy_from_slice", Some("core")),
            ("<T>::method", None),
            ("memcpy", None),
        ];
        for (path, expected) in cases {
            assert_eq!(path_crate(path), expected, "{path}");
        }
    }

    // Names from `rustc -C symbol-mangling-version=v0` on a crate named lan9118.
    #[test]
    fn v0_names() {
        let cases = [
            // lan9118::dhcp::handle
            ("_RNvNtCs3aJlnCjmIB3_7lan91184dhcp6handle", "lan9118"),
            // <lan9118::Lan9118 as core::fmt::Debug>::fmt, an impl in lan9118
            (
                "_RNvXs_Cs3aJlnCjmIB3_7lan9118NtB4_7Lan9118NtNtCsgEmfK2I1SDS_4core3fmt5Debug3fmt",
                "lan9118",
            ),
            // <&&lan9118::Lan9118 as core::fmt::Debug>::fmt, core's impl for references
            (
                "_RNvXs1g_NtCsgEmfK2I1SDS_4core3fmtRRNtCs3aJlnCjmIB3_7lan91187Lan9118NtB6_5Debug3fmtBz_",
                "core",
            ),
            // lan9118::gen::<lan9118::Lan9118>
            (
                "_RINvCs3aJlnCjmIB3_7lan91183genNtB2_7Lan9118EB2_",
                "lan9118",
            ),
            // alloc::fmt::format::format_inner
            (
                "_RNvNvNtCslNYArtu3iFV_5alloc3fmt6format12format_inner",
                "alloc",
            ),
            // <core::fmt::Formatter>::pad_integral::write_prefix, from the board's ELF
            (
                "_RNvNvMsa_NtCs7ldSeZOOJos_4core3fmtNtB7_9Formatter12pad_integral12write_prefix",
                "core",
            ),
            // __rustc::__rust_dealloc: an identifier that starts with `_` has a separator
            ("_RNvCsfLfy6EI15iL_7___rustc14___rust_dealloc", "__rustc"),
        ];
        for (mangled, expected) in cases {
            assert_eq!(krate(mangled).as_deref(), Some(expected), "{mangled}");
        }
    }

    #[test]
    fn not_rust() {
        for name in [
            "memcpy",
            "__aeabi_memcpy",
            "Reset",
            "_ZN4mainE", // one segment names no crate
            "_R",
            "_RNvCs1_99x", // a length past the end
            "_RNvCs1",     // a disambiguator without its end
            "",
        ] {
            assert_eq!(krate(name), None, "{name}");
        }
    }

    #[test]
    fn object_file_names() {
        assert_eq!(
            cgu_crate("smoltcp.c6dcdc4d547912c9-cgu.07"),
            Some("smoltcp")
        );
        assert_eq!(
            cgu_crate("compiler_builtins.5aca761af72516b5-cgu.108"),
            Some("compiler_builtins")
        );
        assert_eq!(cgu_crate("startup.c"), None);
        assert_eq!(cgu_crate("asm.o"), None);
        assert_eq!(cgu_crate(""), None);
    }
}
