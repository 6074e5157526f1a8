//! Trusted proxy headers (mod_wsgi's `WSGITrustedProxyHeaders` / `WSGITrustedProxies`).
//!
//! A front-end proxy says who the client was (`X-Forwarded-For`), which host and scheme it
//! asked for (`X-Forwarded-Host`, `X-Forwarded-Proto`) and where the application is mounted
//! (`X-Script-Name`). Those headers are only believed for the header names configured, and,
//! when proxies are listed, only on requests whose peer address is one of them. Headers of
//! a configured category that are not believed are removed from the request, so that the
//! application cannot take a client's own `X-Forwarded-For` for the proxy's. The rules are
//! mod_wsgi 4.9's (`wsgi_process_proxy_headers`), applied to [`RequestMeta`] so that any
//! server can use them.

use std::borrow::Cow;
use std::net::IpAddr;

use super::request::{Bytes, RequestMeta};

/// An address or subnet of `WSGITrustedProxies`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    addr: IpAddr,
    bits: u8,
}

impl Subnet {
    /// `10.0.0.1`, `10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `10.1` (the first octets), `::1`,
    /// `fd00::/8` -- the forms httpd's `apr_ipsubnet_create` takes.
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let bad = || format!("{s:?} is not an IP address or subnet (e.g. 10.0.0.1, 10.0.0.0/8, fd00::/8)");
        let (ip, mask) = match s.split_once('/') {
            Some((ip, mask)) => (ip, Some(mask)),
            None => (s, None),
        };
        let (addr, full) = match ip.parse::<IpAddr>() {
            Ok(a) => (a, if a.is_ipv4() { 32 } else { 128 }),
            // A partial IPv4 address: the octets given are the network.
            Err(_) if mask.is_none() && !ip.is_empty() && !ip.contains(':') => {
                let octets: Vec<u8> =
                    ip.split('.').map(|o| o.parse::<u8>()).collect::<Result<_, _>>().map_err(|_| bad())?;
                if octets.is_empty() || octets.len() > 3 {
                    return Err(bad());
                }
                let mut v4 = [0u8; 4];
                v4[..octets.len()].copy_from_slice(&octets);
                return Ok(Subnet { addr: IpAddr::from(v4), bits: 8 * octets.len() as u8 });
            }
            Err(_) => return Err(bad()),
        };
        let bits = match mask {
            None => full,
            Some(m) => match (m.parse::<u8>(), m.parse::<IpAddr>(), addr) {
                (Ok(n), _, _) if n <= full => n,
                (_, Ok(IpAddr::V4(m)), IpAddr::V4(_)) => {
                    let m = u32::from(m);
                    if m.leading_ones() + m.trailing_zeros() != 32 {
                        return Err(bad());
                    }
                    m.leading_ones() as u8
                }
                _ => return Err(bad()),
            },
        };
        Ok(Subnet { addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on an IPv6 socket appears as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let prefix = |a: u128, b: u128, width: u32| {
            let bits = u32::from(self.bits);
            bits == 0 || (a ^ b) >> (width - bits) == 0
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => prefix(u32::from(a).into(), u32::from(b).into(), 32),
            (IpAddr::V6(a), IpAddr::V6(b)) => prefix(u128::from(a), u128::from(b), 128),
            _ => false,
        }
    }
}

/// The headers `WSGITrustedProxyHeaders` may name, by category.
const CLIENT: &[&str] = &["X-Forwarded-For", "X-Client-IP", "X-Real-IP"];
const SCHEME: &[&str] =
    &["X-Forwarded-HTTPS", "X-Forwarded-Proto", "X-Forwarded-Scheme", "X-Forwarded-SSL", "X-HTTPS", "X-Scheme"];
const HOST: &[&str] = &["X-Forwarded-Host", "X-Host"];
const SCRIPT_NAME: &[&str] = &["X-Script-Name", "X-Forwarded-Script-Name"];
const OTHER: &[&str] = &["X-Forwarded-Server", "X-Forwarded-Port"];

/// The canonical spelling of a header `WSGITrustedProxyHeaders` may name (`x-forwarded-for`
/// and mod_wsgi's `HTTP_X_FORWARDED_FOR` form are accepted too), or an error listing them.
pub fn header_name(name: &str) -> Result<&'static str, String> {
    let wanted = name.strip_prefix("HTTP_").unwrap_or(name).replace('_', "-");
    [CLIENT, SCHEME, HOST, SCRIPT_NAME, OTHER]
        .iter()
        .flat_map(|c| c.iter())
        .find(|n| n.eq_ignore_ascii_case(&wanted))
        .copied()
        .ok_or_else(|| {
            let all: Vec<&str> = [CLIENT, SCHEME, HOST, SCRIPT_NAME, OTHER].concat();
            format!("{name:?} is not a proxy header oxwsgi (or mod_wsgi) knows; use one of: {}", all.join(", "))
        })
}

/// What the configuration says for one request.
pub struct Trust<'c> {
    /// Canonical header names, in the configured order ([`header_name`]).
    pub headers: &'c [&'static str],
    /// `None`: every peer is trusted (no `WSGITrustedProxies`).
    pub proxies: Option<&'c [Subnet]>,
}

fn owned<'a>(s: &str) -> Bytes<'a> {
    Cow::Owned(s.as_bytes().to_vec())
}

fn in_list(list: &[Subnet], ip: &str) -> Option<bool> {
    let ip: IpAddr = ip.trim().parse().ok()?;
    Some(list.iter().any(|s| s.contains(ip)))
}

/// The value of header `name` (repeated headers joined with ", "), as text.
fn header(m: &RequestMeta<'_>, name: &str) -> Option<String> {
    let mut values = m.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v);
    let first = values.next()?;
    let mut s: String = first.iter().map(|&b| b as char).collect();
    for v in values {
        s.push_str(", ");
        s.extend(v.iter().map(|&b| b as char));
    }
    Some(s.trim().to_string())
}

fn set_header<'a>(m: &mut RequestMeta<'a>, name: &str, value: &str) {
    m.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name.as_bytes()));
    m.headers.push((owned(name), Cow::Owned(value.chars().map(|c| c as u32 as u8).collect())));
}

fn set_var<'a>(m: &mut RequestMeta<'a>, name: &str, value: Option<&str>) {
    m.server_vars.retain(|(k, _)| &**k != name.as_bytes());
    if let Some(v) = value {
        m.server_vars.push((owned(name), owned(v)));
    }
}

/// `X-Forwarded-For` from a trusted peer: with a proxy list, the client is the address just
/// before the trusted proxies at the end of the list; without one, the first address.
fn forwarded_for(m: &mut RequestMeta<'_>, proxies: Option<&[Subnet]>, value: &str) {
    let items: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let Some(last) = items.last() else { return };
    let Some(list) = proxies else {
        m.remote_addr = owned(items[0]);
        return;
    };
    let mut first = None;
    for (i, item) in items.iter().enumerate().rev() {
        match in_list(list, item) {
            Some(true) => first = Some(i),
            _ => break,
        }
    }
    let (addr, chain) = match first {
        Some(f) => {
            let i = f.saturating_sub(1);
            (items[i].to_string(), items[i..].join(", "))
        }
        None => (last.to_string(), last.to_string()),
    };
    m.remote_addr = owned(&addr);
    set_header(m, "X-Forwarded-For", &chain);
}

/// Apply the trusted proxy headers to `m`; see the module documentation.
pub fn apply(m: &mut RequestMeta<'_>, trust: &Trust<'_>) {
    if trust.headers.is_empty() {
        return;
    }
    let peer_trusted = match trust.proxies {
        None => true,
        Some(list) => in_list(list, &String::from_utf8_lossy(&m.remote_addr)).unwrap_or(false),
    };
    let configured = |cat: &[&str]| trust.headers.iter().any(|h| cat.contains(h));
    // Per category, the header whose value was used (it stays; the others go).
    let mut used: [Option<&str>; 4] = [None; 4];
    if peer_trusted {
        for &name in trust.headers {
            let Some(value) = header(m, name) else { continue };
            match name {
                "X-Forwarded-For" => {
                    forwarded_for(m, trust.proxies, &value);
                    used[0] = Some(name);
                }
                "X-Client-IP" | "X-Real-IP" => {
                    m.remote_addr = owned(&value);
                    used[0] = Some(name);
                }
                "X-Forwarded-Host" | "X-Host" => {
                    set_header(m, "Host", &value);
                    used[2] = Some(name);
                }
                "X-Forwarded-Server" => m.server_name = owned(&value),
                "X-Forwarded-Port" => {
                    if let Ok(p) = value.parse() {
                        m.server_port = p;
                    }
                }
                "X-Script-Name" | "X-Forwarded-Script-Name" => {
                    set_var(m, "mod_wsgi.mount_point", Some(&value));
                    m.script_name = owned(&value);
                    used[3] = Some(name);
                }
                "X-Forwarded-Proto" | "X-Forwarded-Scheme" | "X-Scheme" => {
                    if value.eq_ignore_ascii_case("https") {
                        set_var(m, "HTTPS", Some("1"));
                    } else if value.eq_ignore_ascii_case("http") {
                        set_var(m, "HTTPS", None);
                    }
                    used[1] = Some(name);
                }
                _ => {
                    // X-Forwarded-HTTPS, X-Forwarded-SSL, X-HTTPS: a boolean.
                    let v = value.to_ascii_lowercase();
                    if ["on", "true", "1"].contains(&v.as_str()) {
                        set_var(m, "HTTPS", Some("1"));
                    } else if ["off", "false", "0"].contains(&v.as_str()) {
                        set_var(m, "HTTPS", None);
                    }
                    used[1] = Some(name);
                }
            }
        }
    }
    for (i, cat) in [CLIENT, SCHEME, HOST, SCRIPT_NAME].into_iter().enumerate() {
        if configured(cat) {
            m.headers.retain(|(k, _)| !cat.iter().any(|n| k.eq_ignore_ascii_case(n.as_bytes()) && used[i] != Some(*n)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(remote: &str, headers: &[(&str, &str)]) -> RequestMeta<'static> {
        RequestMeta {
            remote_addr: owned(remote),
            server_name: owned("backend"),
            server_port: 8080,
            script_name: owned("/app"),
            headers: headers.iter().map(|(k, v)| (owned(k), owned(v))).collect(),
            ..RequestMeta::default()
        }
    }

    fn has(m: &RequestMeta<'_>, name: &str) -> Option<String> {
        header(m, name)
    }

    #[test]
    fn subnets() {
        let s = |t: &str| Subnet::parse(t).unwrap();
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(s("10.0.0.0/8").contains(ip("10.200.1.1")));
        assert!(!s("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(s("10.1").contains(ip("10.1.9.9")));
        assert!(s("192.168.0.0/255.255.0.0").contains(ip("192.168.3.4")));
        assert!(s("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(s("fd00::/8").contains(ip("fd12::1")));
        assert!(!s("fd00::/8").contains(ip("10.0.0.1")));
        assert!(s("0.0.0.0/0").contains(ip("8.8.8.8")));
        for bad in ["", "example.com", "10.0.0.0/33", "10.0.0.0/255.0.255.0", "1.2.3.4.5", "10.x"] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_names() {
        assert_eq!(header_name("x-forwarded-for"), Ok("X-Forwarded-For"));
        assert_eq!(header_name("HTTP_X_FORWARDED_PROTO"), Ok("X-Forwarded-Proto"));
        assert!(header_name("X-Forwarded-Whatever").is_err());
    }

    #[test]
    fn untrusted_peer_headers_are_removed_not_applied() {
        let proxies = [Subnet::parse("10.0.0.0/8").unwrap()];
        let trust =
            Trust { headers: &["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"], proxies: Some(&proxies) };
        let mut m = meta(
            "192.0.2.7",
            &[
                ("Host", "backend"),
                ("X-Forwarded-For", "1.2.3.4"),
                ("X-Real-IP", "5.6.7.8"),
                ("X-Forwarded-Proto", "https"),
            ],
        );
        apply(&mut m, &trust);
        assert_eq!(&*m.remote_addr, b"192.0.2.7");
        assert_eq!(has(&m, "X-Forwarded-For"), None);
        assert_eq!(has(&m, "X-Real-IP"), None);
        assert_eq!(has(&m, "X-Forwarded-Proto"), None);
        assert_eq!(has(&m, "Host").as_deref(), Some("backend"));
        assert!(m.server_vars.is_empty());
    }

    #[test]
    fn trusted_peer_headers_are_applied() {
        let proxies = [Subnet::parse("10.0.0.0/8").unwrap()];
        let trust = Trust {
            headers: &["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Script-Name"],
            proxies: Some(&proxies),
        };
        let mut m = meta(
            "10.0.0.2",
            &[
                ("Host", "backend"),
                ("X-Forwarded-For", "6.6.6.6, 1.2.3.4, 10.0.0.9"),
                ("X-Real-IP", "5.6.7.8"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "www.example.com"),
                ("X-Forwarded-Port", "443"),
                ("X-Script-Name", "/mount"),
            ],
        );
        apply(&mut m, &trust);
        // 10.0.0.9 is a trusted proxy: the client is the address before it.
        assert_eq!(&*m.remote_addr, b"1.2.3.4");
        assert_eq!(has(&m, "X-Forwarded-For").as_deref(), Some("1.2.3.4, 10.0.0.9"));
        assert_eq!(has(&m, "X-Real-IP"), None);
        assert_eq!(has(&m, "Host").as_deref(), Some("www.example.com"));
        assert_eq!(m.server_port, 443);
        assert_eq!(&*m.script_name, b"/mount");
        assert!(m.server_vars.iter().any(|(k, v)| &**k == b"HTTPS" && &**v == b"1"));
    }

    #[test]
    fn without_a_proxy_list_the_first_address_is_the_client() {
        let trust = Trust { headers: &["X-Forwarded-For"], proxies: None };
        let mut m = meta("192.0.2.7", &[("X-Forwarded-For", " 1.2.3.4 , 10.0.0.9")]);
        apply(&mut m, &trust);
        assert_eq!(&*m.remote_addr, b"1.2.3.4");
        assert_eq!(has(&m, "X-Forwarded-For").as_deref(), Some("1.2.3.4 , 10.0.0.9"));
    }

    #[test]
    fn proto_http_from_a_trusted_proxy_clears_https() {
        let trust = Trust { headers: &["X-Forwarded-Proto"], proxies: None };
        let mut m = meta("10.0.0.1", &[("X-Forwarded-Proto", "http")]);
        m.server_vars.push((owned("HTTPS"), owned("1")));
        apply(&mut m, &trust);
        assert!(m.server_vars.is_empty());
    }
}
