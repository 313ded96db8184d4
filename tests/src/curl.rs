//! curl, a real HTTP client, in a namespace on the rack: what Talos fetches from an appliance.

use std::time::Duration;

use crate::net::Netns;

/// The UUID the join-config checks ask with (a Dell service tag's, as Talos would send).
pub const UUID: &str = "4c4c4544-004d-3110-804b-b5c04f513432";

/// GETs `url` from `ns` (10 s): the status code and the body; panics when curl fails.
pub fn get(ns: &Netns, url: &str) -> (String, String) {
    let args = ["-sS", "--max-time", "10", "-w", "\n%{http_code}", url];
    let out =
        (ns.run("curl", &args, Duration::from_secs(15))).unwrap_or_else(|e| panic!("curl: {e}"));
    assert!(out.success(), "curl {url}: {}", out.stderr);
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or_default();
    (code.to_owned(), body.to_owned())
}

/// The appliance at `ip` serves `want` at `/config?u=UUID` byte for byte, and 400 without a
/// UUID.
pub fn check_join_config(ns: &Netns, ip: &str, want: &str) {
    let base = format!("http://{ip}/config");
    let (code, body) = get(ns, &format!("{base}?u={UUID}"));
    assert_eq!(code, "200", "{body}");
    assert_eq!(body, want);
    let (code, _) = get(ns, &base);
    assert_eq!(code, "400");
}
