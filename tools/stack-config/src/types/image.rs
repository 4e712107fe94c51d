//! Container image references, checked against the distribution reference grammar.
//!
//! One concept: the image reference grammar (registry, repository, tag, digest) and its
//! tests.

use super::checked_string;

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: one path component of an image name.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(&bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(&bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let dashes = separator.bytes().all(|b| b == b'-');
        if !(separator == "." || separator == "_" || separator == "__" || dashes) {
            return false;
        }
    }
    true
}

/// Longest image name (`[domain/]path`, without tag or digest) the distribution reference
/// grammar allows.
pub(crate) const NAME_MAX: usize = 255;

/// Longest image tag.
const TAG_MAX: usize = 128;

/// `host[:port]`: host is a DNS name (labels of letters, digits and '-', at most 63
/// characters each), an IPv4 address, or an IPv6 address in brackets; port is 1-65535.
fn is_registry_host(component: &str) -> bool {
    let port = if let Some(bracketed) = component.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return false;
        };
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
        }
    } else {
        let (host, port) = match component.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (component, None),
        };
        if host.is_empty() || !host.split('.').all(super::host::is_dns_label) {
            return false;
        }
        port
    };
    port.is_none_or(|port| {
        port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && matches!(port.parse::<u32>(), Ok(1..=65535))
    })
}

/// True when the first component of a reference names a registry rather than a path (the
/// rule of the distribution reference library: a '.' or ':', `localhost`, an uppercase
/// letter, or an IPv6 address).
fn looks_like_host(component: &str) -> bool {
    component.contains('.')
        || component.contains(':')
        || component == "localhost"
        || component.starts_with('[')
        || component.bytes().any(|b| b.is_ascii_uppercase())
}

const PATH_RULE: &str = "path components use lowercase letters and digits separated by '.', '_', \
                         '__' or '-'";

fn check_registry(value: &str) -> Result<(), String> {
    if value.len() > NAME_MAX {
        return Err(format!(
            "is not a registry: at most {NAME_MAX} characters, as an image name with its \
             registry is at most {NAME_MAX}"
        ));
    }
    let mut components = value.split('/');
    let host = components.next().unwrap_or_default();
    if !is_registry_host(host) {
        return Err(format!(
            "is not a registry: start with a host[:port] such as ghcr.io/acme or localhost:5000 \
             (a port is 1-65535; {PATH_RULE})"
        ));
    }
    if components.all(is_path_component) {
        Ok(())
    } else {
        Err(format!("is not a registry: {PATH_RULE}"))
    }
}

/// Checks an image name (`[domain/]path`, no tag).
fn check_name(value: &str) -> Result<(), String> {
    let components: Vec<&str> = value.split('/').collect();
    let path = match components.as_slice() {
        [host, path @ ..] if !path.is_empty() && looks_like_host(host) => {
            if !is_registry_host(host) {
                return Err(format!(
                    "{} is not a host[:port]",
                    crate::escape::quoted(host)
                ));
            }
            path
        }
        path => path,
    };
    if !path.iter().all(|c| is_path_component(c)) {
        return Err(PATH_RULE.to_owned());
    }
    if value.len() > NAME_MAX {
        return Err(format!(
            "the name is {} characters long, and an image name (registry included) is at most \
             {NAME_MAX}",
            value.len()
        ));
    }
    Ok(())
}

/// Checks a digest: `algorithm:hex`, with the hex length of a SHA-256, SHA-384 or SHA-512 sum
/// (the algorithms container runtimes verify).
fn check_digest(digest: &str) -> Result<(), String> {
    let hex_len = match digest.split_once(':') {
        Some(("sha256", hex)) => Some((hex, 64)),
        Some(("sha384", hex)) => Some((hex, 96)),
        Some(("sha512", hex)) => Some((hex, 128)),
        _ => None,
    };
    match hex_len {
        Some((hex, len))
            if hex.len() == len
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(
            "the digest is not sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex> (lowercase)"
                .to_owned(),
        ),
    }
}

/// Checks a whole image reference, `name[:tag][@digest]`, against the distribution reference
/// grammar: path components, an optional registry host, a name of at most 255 characters, a
/// tag of 1-128 characters, a SHA-2 digest. The error says what is wrong, without the value.
pub(crate) fn check_reference(reference: &str) -> Result<(), String> {
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    check_name(name)?;
    if let Some(tag) = tag {
        check_tag(tag).map_err(|_| {
            format!(
                "the tag is not 1-{TAG_MAX} letters, digits, '_', '.' and '-' (not starting with \
                 '.' or '-')"
            )
        })?;
    }
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    Ok(())
}

fn check_repository(value: &str) -> Result<(), String> {
    check_name(value).map_err(|reason| format!("is not an image repository: {reason}"))
}

fn check_tag(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= TAG_MAX
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b));
    if ok {
        Ok(())
    } else {
        Err(
            "is not an image tag: use 1-128 letters, digits, '_', '.' and '-', not starting \
             with '.' or '-'"
                .to_owned(),
        )
    }
}

checked_string! {
    /// Where images are pushed and pulled: a registry host with an optional port and path,
    /// such as `ghcr.io/acme` or `localhost:5000`.
    Registry,
    check = check_registry,
    schema = {
        "pattern": "^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*$",
        "maxLength": 255,
        "description": "An image registry: host[:port] with an optional path, for example ghcr.io/acme or localhost:5000."
    }
}

checked_string! {
    /// An image repository (name without tag): `taskmanager-server`, `grafana/loki`, or with
    /// a registry host, `quay.io/prometheus/prometheus`.
    ImageRepository,
    check = check_repository,
    schema = {
        "pattern": "^(([A-Za-z0-9.-]+|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?/)?[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*$",
        "maxLength": 255,
        "description": "An image repository without tag, optionally with a registry host: taskmanager-server, grafana/loki, quay.io/prometheus/prometheus."
    }
}

checked_string! {
    /// An image tag: 1-128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`.
    /// Quote tags that look like numbers (`"1.10"`) so editors see a string.
    ImageTag,
    check = check_tag,
    schema = {
        "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        "description": "An image tag: 1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'."
    }
}

checked_string! {
    /// The tag of a third-party image, optionally pinned to a digest: `2.10.3` or
    /// `2.10.3@sha256:<64 hex>`. The digest is kept in every image reference; the tag names
    /// the version the templates check against their version line.
    PinnedTag,
    check = check_pinned_tag,
    schema = {
        "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128}))?$",
        "description": "An image tag (1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'), optionally followed by @sha256:<64 hex> (or sha384, sha512)."
    }
}

fn check_pinned_tag(value: &str) -> Result<(), String> {
    match value.split_once('@') {
        Some((tag, digest)) => {
            check_tag(tag)?;
            check_digest(digest).map_err(|reason| format!("has a digest that is wrong: {reason}"))
        }
        None => check_tag(value),
    }
}

impl PinnedTag {
    /// The tag without its digest.
    pub fn tag(&self) -> &str {
        self.0
            .split_once('@')
            .map_or(self.0.as_str(), |(tag, _)| tag)
    }

    /// The digest (`sha256:...`), when the tag is pinned to one.
    pub fn digest(&self) -> Option<&str> {
        self.0.split_once('@').map(|(_, digest)| digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries() {
        for good in [
            "localhost:5000",
            "ghcr.io/acme",
            "docker.io/library",
            "r.example:443/a/b-c",
            "[::1]:5000",
            "[2001:db8::1]/acme",
            "GHCR.io/acme",
        ] {
            assert!(Registry::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ghcr.io/Acme",
            "ghcr.io/",
            "host:port",
            "-x.io",
            "ghcr.io//a",
            "a b",
            "host:0",
            "host:65536",
            "host:",
            "[::1",
            "[::g]:1",
            "[::1]5000",
            &format!("{}.io", "a".repeat(64)),
            &format!("r.io/{}", "a".repeat(251)),
            &"a".repeat(10_000),
        ] {
            let error = Registry::new(bad).expect_err(bad);
            assert!(error.contains("is not a registry"), "{error}");
        }
    }

    #[test]
    fn repositories() {
        for good in [
            "taskmanager-server",
            "grafana/loki",
            "quay.io/prometheus/prometheus",
            "localhost:5000/a__b",
            "a.b_c",
        ] {
            assert!(ImageRepository::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Loki",
            "grafana/",
            "a..b",
            "a:b",
            "_a",
            "a/b:tag",
            "Ho_st/a",
            "r.io:99999/a",
            &"a".repeat(256),
        ] {
            assert!(ImageRepository::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references() {
        let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
        for good in [
            "redis:7.4-alpine".to_owned(),
            "localhost:5000/taskmanager-server:0.1.0".to_owned(),
            "mirror.example/quay.io/prometheus/prometheus:v3.7.3".to_owned(),
            "[::1]:5000/a/b".to_owned(),
            "localhost:5000".to_owned(),
            format!("redis@{digest}"),
            format!("redis:7.4@{digest}"),
            format!("grafana/loki@sha512:{}", "ab".repeat(64)),
            format!("{}:t", "a".repeat(255)),
        ] {
            assert_eq!(check_reference(&good), Ok(()), "{good}");
        }
        for (bad, reason) in [
            ("redis:".to_owned(), "the tag"),
            ("redis:.x".to_owned(), "the tag"),
            (format!("redis:{}", "t".repeat(129)), "the tag"),
            (
                "mirror.example/localhost:5000/x:1".to_owned(),
                "path components",
            ),
            ("Redis:1".to_owned(), "path components"),
            (format!("{}:t", "a".repeat(256)), "is 256 characters long"),
            (
                format!("r.io/{}:t", "a".repeat(251)),
                "is 256 characters long",
            ),
            ("redis@sha256:abc".to_owned(), "the digest"),
            (format!("redis@md5:{}", "a".repeat(32)), "the digest"),
            (format!("redis@sha256:{}", "A".repeat(64)), "the digest"),
            ("r.io:0/a".to_owned(), "is not a host[:port]"),
        ] {
            let error = check_reference(&bad).expect_err(&bad);
            assert!(error.contains(reason), "{bad}: {error}");
        }
    }

    #[test]
    fn tags() {
        for good in ["0.1.0", "v3.5.0", "latest", "7.4-alpine", "_x", "0123"] {
            assert!(ImageTag::new(good).is_ok(), "{good}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", &"a".repeat(129)] {
            assert!(ImageTag::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pinned_tags() {
        let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let pinned = PinnedTag::new(format!("2.10.3@{digest}")).expect("a pinned tag");
        assert_eq!(pinned.tag(), "2.10.3");
        assert_eq!(pinned.digest(), Some(digest.as_str()));
        let plain = PinnedTag::new("v3.7.3").expect("a tag");
        assert_eq!((plain.tag(), plain.digest()), ("v3.7.3", None));
        assert!(check_reference(&format!("grafana/tempo:{pinned}")).is_ok());
        for (bad, reason) in [
            ("2.10.3@sha256:abc", "has a digest that is wrong"),
            ("2.10.3@", "has a digest that is wrong"),
            ("@sha256:00", "is not an image tag"),
            (".x", "is not an image tag"),
        ] {
            let error = PinnedTag::new(bad).expect_err(bad);
            assert!(error.contains(reason), "{bad}: {error}");
        }
    }
}
