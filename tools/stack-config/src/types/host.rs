//! Host names and IP addresses.

use super::checked_string;

fn check_host(value: &str) -> Result<(), String> {
    if value.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    };
    let name = value.strip_suffix('.').unwrap_or(value);
    if !name.is_empty() && value.len() <= 253 && name.split('.').all(label_ok) {
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

#[cfg(test)]
mod tests {
    use super::Host;

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
        for bad in ["", "redis:6379", "a b", "-redis", "redis_1", "[::1]"] {
            assert!(Host::new(bad).is_err(), "{bad}");
        }
    }
}
