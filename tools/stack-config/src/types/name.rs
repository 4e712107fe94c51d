//! Names that end up in Kubernetes objects and Redis keys.

use super::checked_string;

/// Checks a DNS-1123 label: what Kubernetes accepts for namespaces, Service names and labels.
pub(crate) fn check_dns_label(value: &str) -> Result<(), String> {
    const RULE: &str = "is not a DNS-1123 label: use 1-63 lowercase letters, digits and '-', \
                        starting and ending with a letter or digit";
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-';
    if ok { Ok(()) } else { Err(RULE.to_owned()) }
}

/// Checks a DNS-1123 subdomain: what Kubernetes accepts for Secret and StorageClass names.
pub(crate) fn check_dns_subdomain(value: &str) -> Result<(), String> {
    const RULE: &str = "is not a DNS-1123 subdomain: use at most 253 characters of \
                        dot-separated DNS-1123 labels (lowercase letters, digits, '-')";
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| check_dns_label(label).is_ok());
    if ok { Ok(()) } else { Err(RULE.to_owned()) }
}

fn check_key_prefix(value: &str) -> Result<(), String> {
    if value.len() > 64 {
        return Err("is too long for a key prefix: at most 64 bytes".to_owned());
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || crate::escape::unsafe_kind(c).is_some())
    {
        return Err(
            "is not a valid key prefix: no whitespace, control characters, byte-order marks or \
             bidirectional controls"
                .to_owned(),
        );
    }
    Ok(())
}

checked_string! {
    /// A DNS-1123 label (RFC 1123): 1-63 lowercase letters, digits and `-`, starting and
    /// ending with a letter or digit. Namespaces, object names and environment names.
    DnsLabel,
    check = check_dns_label,
    schema = {
        "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        "maxLength": 63,
        "description": "A DNS-1123 label: 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit."
    }
}

checked_string! {
    /// A DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters. Names of
    /// Secrets, StorageClasses and image pull secrets.
    DnsSubdomain,
    check = check_dns_subdomain,
    schema = {
        "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        "maxLength": 253,
        "description": "A DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters."
    }
}

checked_string! {
    /// A prefix put in front of every Redis key; empty keeps the original bare key names.
    KeyPrefix,
    check = check_key_prefix,
    schema = {
        "pattern": "^[^\\s]*$",
        "maxLength": 64,
        "description": "A prefix for every Redis key (no whitespace, at most 64 bytes). Empty keeps the original key names."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for good in [
            "a",
            "taskmanager",
            "task-manager-2",
            "0abc",
            &"a".repeat(63),
        ] {
            assert!(DnsLabel::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Task",
            "task_manager",
            "-a",
            "a-",
            "a.b",
            "ä",
            &"a".repeat(64),
        ] {
            let error = DnsLabel::new(bad).expect_err(bad);
            assert!(error.contains("is not a DNS-1123 label"), "{error}");
        }
    }

    #[test]
    fn dns_subdomains() {
        assert!(DnsSubdomain::new("redis-auth.v1").is_ok());
        for bad in ["", "a..b", ".a", "A", "a_b"] {
            assert!(DnsSubdomain::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_prefixes() {
        assert!(KeyPrefix::new("").is_ok());
        assert!(KeyPrefix::new("taskmanager:").is_ok());
        assert!(KeyPrefix::new("a b").is_err());
        for bad in ["a\u{1b}", "a\u{2028}", "a\u{85}", "\u{feff}a", "a\u{202e}"] {
            assert!(KeyPrefix::new(bad).is_err(), "{bad:?}");
        }
        assert!(KeyPrefix::new("x".repeat(65)).is_err());
    }
}
