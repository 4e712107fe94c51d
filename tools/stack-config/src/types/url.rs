//! Addresses that components dial: `http(s)://host[:port][/path]`.

use super::host::is_dns_name;

/// Checks an address the client or the server dials: scheme `http` or `https`; a host that
/// is a DNS name, an IPv4 address or a bracketed IPv6 address; an optional port 1-65535; an
/// optional path of unreserved characters (`A-Z a-z 0-9 - . _ ~`), `/` and `%XX` escapes.
/// Nothing else: no user info, query or fragment, so that the address reads the same to
/// every program it is written into (a manifest, a command line, a shell script).
pub(crate) fn check_http_url(value: &str) -> Result<(), String> {
    let Some(rest) = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
    else {
        return Err("must start with http:// or https://".to_owned());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err("has user info before its host (user@host), which is not allowed".to_owned());
    }
    let port = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return Err("has an unclosed '[' around its IPv6 address".to_owned());
        };
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("has no valid IPv6 address between '[' and ']'".to_owned());
        }
        match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| {
                "has something other than ':port' after its IPv6 address".to_owned()
            })?),
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("has no host".to_owned());
        }
        if host.parse::<std::net::Ipv4Addr>().is_err() && !is_dns_name(host) {
            return Err(
                "has a host that is not a DNS name (letters, digits, '-' and '.'), an IPv4 \
                 address or a bracketed IPv6 address"
                    .to_owned(),
            );
        }
        port
    };
    if let Some(port) = port {
        let number =
            (!port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
                .then(|| port.parse::<u32>().ok())
                .flatten();
        if !matches!(number, Some(1..=65535)) {
            return Err("has a port that is not a number from 1 to 65535".to_owned());
        }
    }
    check_path(path)
}

fn check_path(path: &str) -> Result<(), String> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            i += 1;
        } else if b == b'%'
            && bytes.len() > i + 2
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            i += 3;
        } else {
            return Err(
                "has a character outside the host, port and path (a path holds letters, digits, \
                 '-', '.', '_', '~', '/' and %XX escapes; no user info, query or fragment)"
                    .to_owned(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_http_url;

    #[test]
    fn accepts_plain_addresses() {
        for good in [
            "http://127.0.0.1:50051",
            "https://taskmanager-server.prod.svc:50051",
            "http://otel-collector:4317",
            "http://a.example.com",
            "http://A.Example.COM.:80/",
            "http://[::1]:4317",
            "https://[2001:db8::1]",
            "http://tempo:4318/v1/traces",
            "http://h/a%2Fb/~x_y-z.1",
        ] {
            assert_eq!(check_http_url(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "a.example.com:4317",
            "ftp://a.example.com",
            "HTTP://a.example.com",
            "http://",
            "http://:4317",
            "http://a.example.com$(id)",
            "http://a.example.com:4317/$(id)",
            "http://a b",
            "http://user:pw@host:1",
            "http://host:0",
            "http://host:65536",
            "http://host:",
            "http://host:80:80",
            "http://host/?q=1",
            "http://host/#f",
            "http://host/%zz",
            "http://::1:4317",
            "http://[::1",
            "http://[::g]:1",
            "http://[::1]x",
            "http://10.0.0.256:1",
            "http://host/a\nb",
            "http://h\u{1b}st",
            "http://-host",
            "http://host_1",
        ] {
            assert!(check_http_url(bad).is_err(), "{bad:?}");
        }
    }
}
