//! Container image references, checked against the distribution reference grammar.

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

/// `host[:port]`, where host is a DNS name (or `localhost`) or an IPv4 address.
fn is_registry_host(component: &str) -> bool {
    let (host, port) = match component.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (component, None),
    };
    let port_ok = port.is_none_or(|port| {
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
    });
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    };
    port_ok && !host.is_empty() && host.split('.').all(label_ok)
}

/// True when the first component of a reference names a registry rather than a path.
fn looks_like_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

const PATH_RULE: &str = "path components use lowercase letters and digits separated by '.', '_', \
                         '__' or '-'";

fn check_registry(value: &str) -> Result<(), String> {
    let mut components = value.split('/');
    let host = components.next().unwrap_or_default();
    if !is_registry_host(host) {
        return Err(format!(
            "is not a registry: start with a host[:port] such as ghcr.io/acme or localhost:5000 \
             ({PATH_RULE})"
        ));
    }
    if components.all(is_path_component) {
        Ok(())
    } else {
        Err(format!("is not a registry: {PATH_RULE}"))
    }
}

fn check_repository(value: &str) -> Result<(), String> {
    let components: Vec<&str> = value.split('/').collect();
    let path = match components.as_slice() {
        [host, path @ ..] if !path.is_empty() && looks_like_host(host) => {
            if !is_registry_host(host) {
                return Err(format!(
                    "is not an image repository: {host:?} is not a host[:port]"
                ));
            }
            path
        }
        path => path,
    };
    if value.len() <= 255 && path.iter().all(|c| is_path_component(c)) {
        Ok(())
    } else {
        Err(format!(
            "is not an image repository: {PATH_RULE}, at most 255 characters"
        ))
    }
}

fn check_tag(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
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
        "pattern": "^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*$",
        "description": "An image registry: host[:port] with an optional path, for example ghcr.io/acme or localhost:5000."
    }
}

checked_string! {
    /// An image repository (name without tag): `taskmanager-server`, `grafana/loki`, or with
    /// a registry host, `quay.io/prometheus/prometheus`.
    ImageRepository,
    check = check_repository,
    schema = {
        "pattern": "^([A-Za-z0-9.-]+(:[0-9]{1,5})?/)?[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*$",
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
        for bad in ["", "Loki", "grafana/", "a..b", "a:b", "_a", "a/b:tag"] {
            assert!(ImageRepository::new(bad).is_err(), "{bad}");
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
}
