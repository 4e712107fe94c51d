//! Host names and IP addresses.

use super::checked_string;

/// True for one DNS label: 1-63 letters, digits and '-', not starting or ending with '-'.
pub(crate) fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// True for a DNS name: dot-separated labels of 1-63 letters, digits and '-' (not at either
/// end of a label), at most 253 characters, optionally with a final dot. A name whose last
/// label is a number is not a DNS name: resolvers and URL parsers read it as an IPv4 address
/// (`10.0.0.256` is a bad address, not a host called `256`).
pub(crate) fn is_dns_name(value: &str) -> bool {
    let name = value.strip_suffix('.').unwrap_or(value);
    let numeric_end = name
        .rsplit('.')
        .next()
        .is_some_and(|last| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()));
    !name.is_empty() && value.len() <= 253 && name.split('.').all(is_dns_label) && !numeric_end
}

fn check_host(value: &str) -> Result<(), String> {
    if value.parse::<std::net::IpAddr>().is_ok() || is_dns_name(value) {
        Ok(())
    } else {
        Err(
            "is not a host: use a DNS name (letters, digits, '-' and '.') or an IP address"
                .to_owned(),
        )
    }
}

checked_string! {
    /// A host to connect to: a DNS name or an IPv4/IPv6 address (without brackets or port).
    Host,
    check = check_host,
    schema = {
        "minLength": 1,
        "maxLength": 253,
        "description": "A DNS name or an IP address, without port."
    }
}

fn check_host_port(value: &str) -> Result<(), String> {
    const RULE: &str = "is not a host and port: use host:port, with an IPv6 address in \
                        brackets ([::1]:6379)";
    let (host, port) = value.rsplit_once(':').ok_or_else(|| RULE.to_owned())?;
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.strip_suffix(']').filter(|h| h.contains(':')),
        None => (!host.contains(':')).then_some(host),
    }
    .ok_or_else(|| RULE.to_owned())?;
    let port_ok = port.parse::<u16>().is_ok_and(|port| port != 0);
    if port_ok && check_host(host).is_ok() {
        Ok(())
    } else {
        Err(RULE.to_owned())
    }
}

checked_string! {
    /// A node to connect to: `host:port`, an IPv6 address in brackets (`[::1]:6379`).
    HostPort,
    check = check_host_port,
    schema = {
        "minLength": 3,
        "maxLength": 261,
        "description": "host:port, with an IPv6 address in brackets ([::1]:6379)."
    }
}

#[cfg(test)]
mod tests {
    use super::{Host, HostPort};

    #[test]
    fn host_ports() {
        for good in ["redis-0.redis:6379", "10.0.0.7:7000", "[::1]:6379", "a:1"] {
            assert!(HostPort::new(good).is_ok(), "{good}");
        }
        for bad in [
            "redis",
            "redis:",
            ":6379",
            "redis:0",
            "redis:70000",
            "::1:6379",
            "[a]:1",
        ] {
            assert!(HostPort::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        for good in [
            "redis",
            "redis.example.com",
            "10.0.0.7",
            "::1",
            "my-redis.cache.local.",
        ] {
            assert!(Host::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "redis:6379",
            "a b",
            "-redis",
            "redis_1",
            "[::1]",
            "10.0.0.256",
            "1.2.3",
            "fe80::1%eth0",
            "a\u{1b}",
        ] {
            assert!(Host::new(bad).is_err(), "{bad}");
        }
    }
}
