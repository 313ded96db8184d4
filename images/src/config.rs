//! The image's config from the command line or a `--config` file: the same fields either
//! way (the file is JSON with the flags' names, e.g. `{"ip": "10.77.0.1/24",
//! "dhcp_pool": "10.77.0.100-10.77.0.199"}`), turned into a checked [`BoardConfig`].

use std::net::Ipv4Addr;
use std::path::Path;

use appliance::net::{Ipv4Net, MacAddr};
use board_config::{BoardConfig, DEFAULT_LEASE_SECS, DEFAULT_MAC, DhcpMode};
use clap::Args;
use serde::Deserialize;
use uplink::enroll::EnrollmentToken;

/// The network flags of `host-sim serve` that a board takes.
#[derive(Args, Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct NetworkArgs {
    /// The board's address and prefix, e.g. 10.77.0.1/24.
    #[arg(long)]
    pub ip: Option<String>,
    /// Default route, and the router (option 3) of the pool's clients.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Full DHCP server with this pool on the board's subnet, e.g. 10.77.0.100-10.77.0.199.
    #[arg(long, conflicts_with = "proxy_dhcp")]
    pub dhcp_pool: Option<String>,
    /// proxyDHCP beside the site's DHCP server: boot files only, no addresses.
    #[arg(long)]
    #[serde(default)]
    pub proxy_dhcp: bool,
    /// Lease time in seconds (default 3600).
    #[arg(long)]
    pub lease_time: Option<u32>,
    /// The board's MAC (default 02:00:00:77:00:01).
    #[arg(long)]
    pub mac: Option<String>,
}

impl NetworkArgs {
    /// Reads a `--config` file.
    pub fn from_file(path: &Path) -> Result<NetworkArgs, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether any network flag was given (they and `--config` exclude each other).
    pub fn any(&self) -> bool {
        self.ip.is_some()
            || self.gateway.is_some()
            || self.dhcp_pool.is_some()
            || self.proxy_dhcp
            || self.lease_time.is_some()
            || self.mac.is_some()
    }

    /// The board config with `token`, checked as the firmware will check it.
    pub fn board_config(&self, token: Option<&str>) -> Result<BoardConfig, String> {
        let ip = self.ip.as_deref().ok_or("--ip is required")?;
        let net = Ipv4Net::parse(ip)
            .ok_or_else(|| format!("--ip {ip}: expected ADDRESS/PREFIX, e.g. 10.77.0.1/24"))?;
        let gateway = self
            .gateway
            .as_deref()
            .map(|g| parse_ip(g, "--gateway"))
            .transpose()?;
        let dhcp = match (&self.dhcp_pool, self.proxy_dhcp) {
            (Some(pool), false) => parse_pool(pool)?,
            (None, true) => DhcpMode::Proxy,
            _ => return Err("give one of --dhcp-pool FIRST-LAST and --proxy-dhcp".into()),
        };
        let mac = match self.mac.as_deref() {
            Some(m) => {
                MacAddr::parse(m)
                    .ok_or_else(|| format!("--mac {m}: expected aa:bb:cc:dd:ee:ff"))?
                    .0
            }
            None => DEFAULT_MAC,
        };
        let config = BoardConfig {
            ip: net.addr,
            prefix: net.prefix,
            gateway,
            dhcp,
            lease_secs: self.lease_time.unwrap_or(DEFAULT_LEASE_SECS),
            mac,
            token: token.map(parse_token).transpose()?,
        };
        config.dhcp_config().map_err(|e| format!("config: {e}"))?;
        Ok(config)
    }
}

fn parse_ip(s: &str, flag: &str) -> Result<Ipv4Addr, String> {
    s.parse()
        .map_err(|_| format!("{flag} {s}: not an IPv4 address"))
}

fn parse_pool(s: &str) -> Result<DhcpMode, String> {
    let (first, last) = s
        .split_once('-')
        .ok_or_else(|| format!("--dhcp-pool {s}: expected FIRST-LAST"))?;
    Ok(DhcpMode::Pool {
        first: parse_ip(first, "--dhcp-pool")?,
        last: parse_ip(last, "--dhcp-pool")?,
    })
}

/// The token as the firmware will store it, if the uplink can read it.
fn parse_token(text: &str) -> Result<heapless::String<{ uplink::enroll::TOKEN_TEXT_MAX }>, String> {
    let text = text.trim();
    EnrollmentToken::parse(text).map_err(|e| format!("--token: {e}"))?;
    text.try_into()
        .map_err(|_| "--token: longer than the config region holds".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(ip: &str, pool: Option<&str>) -> NetworkArgs {
        NetworkArgs {
            ip: Some(ip.into()),
            dhcp_pool: pool.map(Into::into),
            proxy_dhcp: pool.is_none(),
            ..NetworkArgs::default()
        }
    }

    #[test]
    fn builds_pool_and_proxy_configs() {
        let c = args("10.77.0.1/24", Some("10.77.0.150-10.77.0.160"))
            .board_config(None)
            .unwrap();
        assert_eq!(c.prefix, 24);
        assert_eq!(c.mac, DEFAULT_MAC);
        assert!(matches!(c.dhcp, DhcpMode::Pool { .. }));
        let c = args("192.168.1.5/16", None).board_config(None).unwrap();
        assert_eq!(c.dhcp, DhcpMode::Proxy);
    }

    #[test]
    fn bad_input_is_an_error() {
        let cases = [
            (args("10.77.0.300/24", None), None, "--ip"),
            (args("10.77.0.1", None), None, "--ip"),
            (args("10.77.0.1/40", None), None, "--ip"),
            (
                args("10.77.0.1/24", Some("10.77.1.1-10.77.1.9")),
                None,
                "pool",
            ),
            (
                args("10.77.0.1/24", Some("10.77.0.9-10.77.0.1")),
                None,
                "pool",
            ),
            (args("10.77.0.1/24", Some("10.77.0.9")), None, "FIRST-LAST"),
            (args("10.77.0.1/24", None), Some("rack1:!!"), "--token"),
            (args("10.77.0.1/24", None), Some("hello"), "rack1:"),
        ];
        for (a, token, want) in cases {
            let e = a.board_config(token).unwrap_err();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
        let mut a = args("10.77.0.1/24", None);
        a.mac = Some("01:00:5e:00:00:01".into());
        assert!(a.board_config(None).unwrap_err().contains("multicast"));
        a.proxy_dhcp = false;
        assert!(a.board_config(None).is_err());
    }

    #[test]
    fn keeps_a_valid_token_and_the_summary_hides_its_secret() {
        let token = EnrollmentToken {
            addr: "provider.example:8791".try_into().unwrap(),
            ca_sha256: [7; 32],
            secret: heapless::Vec::from_slice(&[0xab; 32]).unwrap(),
        };
        let text = token.encode().unwrap();
        let c = args("10.77.0.1/24", None)
            .board_config(Some(text.as_str()))
            .unwrap();
        assert_eq!(c.token.as_deref(), Some(text.as_str()));
        let summary = serde_json::to_string(&crate::manifest::ConfigSummary::new(&c)).unwrap();
        assert!(summary.contains("provider.example:8791"), "{summary}");
        assert!(
            !summary.contains(text.as_str()) && !summary.contains("abab"),
            "{summary}"
        );
    }

    #[test]
    fn reads_a_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(
            &path,
            r#"{"ip": "10.9.0.1/24", "dhcp_pool": "10.9.0.10-10.9.0.20", "lease_time": 60}"#,
        )
        .unwrap();
        let c = NetworkArgs::from_file(&path)
            .unwrap()
            .board_config(None)
            .unwrap();
        assert_eq!(c.lease_secs, 60);
        std::fs::write(&path, r#"{"ip": "10.9.0.1/24", "pool": "x"}"#).unwrap();
        assert!(
            NetworkArgs::from_file(&path)
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
