//! Turning command-line values into the appliance's DHCP configuration.

use std::net::Ipv4Addr;

use appliance::dhcp::config::MAX_OPTION_LEN;
use appliance::dhcp::pxe::{BootFile, BootTarget, MAX_BOOT_FILE};
use appliance::dhcp::{Config, Mode, Reservation, Subnet};
use appliance::inventory::MachineKey;
use appliance::net::{Ipv4Net, MacAddr, Uuid};

/// The DHCP-related flags of `host-sim serve`, already split from clap's parsing.
pub struct DhcpArgs<'a> {
    pub ip: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    /// `None` in proxyDHCP mode.
    pub pool: Option<&'a str>,
    pub lease_time: u32,
    pub dns: &'a [Ipv4Addr],
    pub domain: Option<&'a str>,
    pub reserve: &'a [String],
    pub reserve_uuid: &'a [String],
    pub relay_pools: &'a [String],
    pub options: &'a [String],
    pub http_port: u16,
}

pub fn dhcp_config(a: &DhcpArgs<'_>) -> Result<Config, String> {
    let mode = if a.pool.is_some() {
        Mode::Full
    } else {
        Mode::Proxy
    };
    let mut config = Config::new(mode, a.ip.addr);
    config.lease_secs = a.lease_time;
    config.boot.http_port = a.http_port;
    if let Some(pool) = a.pool {
        let (first, last) = parse_range(pool)?;
        push(
            &mut config.subnets,
            Subnet {
                net: a.ip,
                pool_first: first,
                pool_last: last,
                router: a.gateway,
            },
            "subnets",
        )?;
    }
    for spec in a.relay_pools {
        push(&mut config.subnets, parse_relay_pool(spec)?, "subnets")?;
    }
    for ip in a.dns {
        push(&mut config.dns, *ip, "--dns servers")?;
    }
    if let Some(domain) = a.domain {
        config.domain = domain
            .try_into()
            .map_err(|_| format!("--domain {domain}: too long"))?;
    }
    for spec in a.reserve {
        let (mac, ip) = parse_pair(spec, "--reserve MAC=IP", MacAddr::parse)?;
        push(
            &mut config.reservations,
            Reservation {
                key: MachineKey::Mac(mac),
                ip,
            },
            "reservations",
        )?;
    }
    for spec in a.reserve_uuid {
        let (uuid, ip) = parse_pair(spec, "--reserve-uuid UUID=IP", Uuid::parse)?;
        push(
            &mut config.reservations,
            Reservation {
                key: MachineKey::Uuid(uuid),
                ip,
            },
            "reservations",
        )?;
    }
    for spec in a.options {
        push(
            &mut config.extra_options,
            parse_option(spec)?,
            "--option values",
        )?;
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// `CODE=HEX`: a DHCP option sent verbatim, e.g. `42=0a4d007b` (NTP server 10.77.0.123).
fn parse_option(s: &str) -> Result<(u8, heapless::Vec<u8, MAX_OPTION_LEN>), String> {
    let bad =
        || format!("{s}: expected CODE=HEX with at most {MAX_OPTION_LEN} bytes, e.g. 42=0a4d007b");
    let (code, hex) = s.split_once('=').ok_or_else(bad)?;
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    let mut value = heapless::Vec::new();
    for pair in hex.as_bytes().chunks(2) {
        let byte = std::str::from_utf8(pair)
            .ok()
            .and_then(|p| u8::from_str_radix(p, 16).ok());
        value.push(byte.ok_or_else(bad)?).map_err(|_| bad())?;
    }
    Ok((code.parse().map_err(|_| bad())?, value))
}

/// `MAC|UUID=TARGET`, TARGET one of `local`, `script:URL`, `file:NAME`: a machine's boot
/// target, as the provider will set it over the uplink.
pub fn parse_boot_override(s: &str) -> Result<(MachineKey, BootTarget), String> {
    let bad = || format!("{s}: expected MAC|UUID=local|script:URL|file:NAME");
    let (key, target) = s.split_once('=').ok_or_else(bad)?;
    let key = MacAddr::parse(key)
        .map(MachineKey::Mac)
        .or_else(|| Uuid::parse(key).map(MachineKey::Uuid))
        .ok_or_else(bad)?;
    let name = |v: &str| {
        BootFile::try_from(v).map_err(|_| format!("{s}: longer than {MAX_BOOT_FILE} bytes"))
    };
    let target = match target.split_once(':') {
        _ if target == "local" => BootTarget::Local,
        Some(("script", url)) => BootTarget::Script(name(url)?),
        Some(("file", file)) => BootTarget::File(name(file)?),
        _ => return Err(bad()),
    };
    Ok((key, target))
}

fn push<T, const N: usize>(v: &mut heapless::Vec<T, N>, item: T, what: &str) -> Result<(), String> {
    v.push(item)
        .map_err(|_| format!("too many {what} (at most {N})"))
}

fn parse_range(s: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let bad = || format!("{s}: expected FIRST-LAST, e.g. 10.77.0.100-10.77.0.199");
    let (first, last) = s.split_once('-').ok_or_else(bad)?;
    Ok((
        first.parse().map_err(|_| bad())?,
        last.parse().map_err(|_| bad())?,
    ))
}

fn parse_pair<K>(
    s: &str,
    form: &str,
    key: impl Fn(&str) -> Option<K>,
) -> Result<(K, Ipv4Addr), String> {
    let bad = || format!("{s}: expected {form}");
    let (k, ip) = s.split_once('=').ok_or_else(bad)?;
    Ok((key(k).ok_or_else(bad)?, ip.parse().map_err(|_| bad())?))
}

/// `CIDR=FIRST-LAST[,ROUTER]`: a subnet behind a DHCP relay.
fn parse_relay_pool(s: &str) -> Result<Subnet, String> {
    let bad = || {
        format!(
            "{s}: expected CIDR=FIRST-LAST[,ROUTER], e.g. 10.78.0.0/24=10.78.0.10-10.78.0.200,10.78.0.1"
        )
    };
    let (net, rest) = s.split_once('=').ok_or_else(bad)?;
    let (range, router) = match rest.split_once(',') {
        Some((range, router)) => (range, Some(router.parse().map_err(|_| bad())?)),
        None => (rest, None),
    };
    let (pool_first, pool_last) = parse_range(range)?;
    Ok(Subnet {
        net: Ipv4Net::parse(net).ok_or_else(bad)?,
        pool_first,
        pool_last,
        router,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args<'a>(pool: Option<&'a str>, reserve: &'a [String], relay: &'a [String]) -> DhcpArgs<'a> {
        DhcpArgs {
            ip: Ipv4Net::parse("10.77.0.1/24").unwrap(),
            gateway: None,
            pool,
            lease_time: 3600,
            dns: &[],
            domain: None,
            reserve,
            reserve_uuid: &[],
            relay_pools: relay,
            options: &[],
            http_port: 80,
        }
    }

    #[test]
    fn builds_full_proxy_and_relayed_configs() {
        let relay = ["10.78.0.0/24=10.78.0.10-10.78.0.20,10.78.0.1".to_string()];
        let reserve = ["52:54:00:aa:00:01=10.77.0.50".to_string()];
        let c = dhcp_config(&args(Some("10.77.0.100-10.77.0.199"), &reserve, &relay)).unwrap();
        assert_eq!(
            (c.mode, c.subnets.len(), c.reservations.len()),
            (Mode::Full, 2, 1)
        );
        assert_eq!(c.subnets[1].router, Some(Ipv4Addr::new(10, 78, 0, 1)));
        assert_eq!(
            dhcp_config(&args(None, &[], &[])).unwrap().mode,
            Mode::Proxy
        );
    }

    #[test]
    fn bad_values_get_a_clear_error() {
        let err = |pool, reserve: &[String], relay: &[String]| {
            dhcp_config(&args(pool, reserve, relay)).unwrap_err()
        };
        assert!(err(Some("10.77.0.100"), &[], &[]).contains("expected FIRST-LAST"));
        assert!(err(Some("10.77.1.1-10.77.1.9"), &[], &[]).contains("outside"));
        assert!(err(Some("10.77.0.100-10.77.0.199"), &["nope".into()], &[]).contains("MAC=IP"));
        assert!(
            err(
                Some("10.77.0.100-10.77.0.199"),
                &[],
                &["10.78.0.0/24".into()]
            )
            .contains("CIDR=FIRST-LAST")
        );
        assert!(parse_option("42=0a4d00").is_ok());
        assert!(parse_option("42=0a4d0").unwrap_err().contains("CODE=HEX"));
        assert!(parse_option("300=00").is_err());
    }

    #[test]
    fn boot_overrides_by_mac_or_uuid() {
        let mac = MacAddr([0x52, 0x54, 0, 0xaa, 0, 1]);
        let parsed = parse_boot_override("52:54:00:aa:00:01=local").unwrap();
        assert_eq!(parsed, (MachineKey::Mac(mac), BootTarget::Local));
        let spec = "12345678-9abc-4def-8123-0000000b1051=script:http://10.77.0.9/x.ipxe";
        let (key, target) = parse_boot_override(spec).unwrap();
        assert!(matches!(key, MachineKey::Uuid(_)));
        assert_eq!(
            target,
            BootTarget::Script("http://10.77.0.9/x.ipxe".try_into().unwrap())
        );
        assert!(parse_boot_override("52:54:00:aa:00:01=disk").is_err());
    }
}
