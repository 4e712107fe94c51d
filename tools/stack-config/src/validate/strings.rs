//! Rules on the stack's strings and quantities: what Kubernetes, a container runtime or the
//! program that reads a value would refuse, caught by `check` instead of at apply time.
//!
//! Most strings are checked by their type when they are read (`DnsLabel`, `Registry`,
//! `ImageTag`, `Host`, `KeyPrefix`, `Quantity`, ...). These rules cover what a type cannot
//! see on its own: values kept as plain strings (free text, Secret keys, addresses), values
//! composed from several keys (image references, object names), and limits that depend on
//! how a value is used (volume sizes, memory in bytes).

use crate::diagnostic::Diagnostic;
use crate::escape::{quoted, unsafe_char};
use crate::model::{ComponentImage, RedisMode, Stack};
use crate::types::{Quantity, check_http_url, check_reference, check_text};

/// Runs every rule of this module.
pub(super) fn check(stack: &Stack, out: &mut Vec<Diagnostic>) {
    instance_name(stack, out);
    addresses(stack, out);
    grafana_user(stack, out);
    redis_password(stack, out);
    images(stack, out);
    storage(stack, out);
    memory(stack, out);
}

/// Grafana stores logins in a column of 190 characters.
const GRAFANA_LOGIN_MAX: usize = 190;

/// Every object is named `<name>-<component>`. Services (`<name>-prometheus` is the longest)
/// must be RFC 1035 labels: a letter first, at most 63 characters. The managed Redis is a
/// StatefulSet, which labels its pods `controller-revision-hash: <name>-redis-<hash>` with a
/// hash of up to 10 characters, and a label value is at most 63 characters.
fn instance_name(stack: &Stack, out: &mut Vec<Diagnostic>) {
    let name = stack.name.as_str();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.push(
            Diagnostic::error(
                "name",
                "instance-name",
                format!(
                    "{} does not start with a letter: every Service is named \
                     `<name>-<component>`, and Kubernetes requires a Service name to start \
                     with a letter (RFC 1035)",
                    quoted(name)
                ),
            )
            .with_help(format!("for example `tm-{name}`")),
        );
    }
    let (max, why) = if stack.redis.mode == RedisMode::Managed {
        (
            63 - "-redis-".len() - 10,
            "the managed Redis StatefulSet labels its pods `controller-revision-hash: \
             <name>-redis-<10-character hash>`, and a label value is at most 63 characters",
        )
    } else {
        (
            63 - "-prometheus".len(),
            "the Service `<name>-prometheus` must be a DNS label of at most 63 characters",
        )
    };
    if name.len() > max {
        out.push(Diagnostic::error(
            "name",
            "instance-name",
            format!(
                "{} is {} characters long, and at most {max} fit: {why}",
                quoted(name),
                name.len()
            ),
        ));
    }
}

/// Addresses the client and the server dial are written into manifests, command lines and
/// configs: they must be plain `http(s)://host[:port][/path]` URLs.
fn addresses(stack: &Stack, out: &mut Vec<Diagnostic>) {
    for (path, address) in [
        ("client.address", &stack.client.address),
        (
            "observability.tracing.endpoint",
            &stack.observability.tracing.endpoint,
        ),
    ] {
        if let Some(address) = address
            && let Err(reason) = check_http_url(address)
        {
            out.push(
                Diagnostic::error(
                    path,
                    "address",
                    format!("{} is not an http(s) address: it {reason}", quoted(address)),
                )
                .with_help(
                    "use http://host:port or https://host:port, where host is a DNS name, an \
                     IPv4 address or an IPv6 address in brackets",
                ),
            );
        }
    }
}

/// True when Grafana would expand part of `value` as it reads its settings: `${NAME}` and
/// `$__env{NAME}` become environment variables, `$__file{PATH}` a file's content (Grafana's
/// expander pattern is `\$(|__\w+){([^}]+)}`).
fn grafana_expands(value: &str) -> bool {
    value.match_indices('$').any(|(i, _)| {
        let rest = &value[i + 1..];
        let rest = match rest.strip_prefix("__") {
            Some(name) => {
                let word = name
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(name.len());
                if word == 0 {
                    return false;
                }
                &name[word..]
            }
            None => rest,
        };
        rest.strip_prefix('{')
            .and_then(|inside| inside.find('}'))
            .is_some_and(|close| close > 0)
    })
}

/// Grafana's admin user reaches Grafana through an environment variable.
fn grafana_user(stack: &Stack, out: &mut Vec<Diagnostic>) {
    const PATH: &str = "observability.grafana.admin.user";
    let user = &stack.observability.grafana.admin.user;
    if let Err(reason) = check_text(user) {
        out.push(Diagnostic::error(
            PATH,
            "text",
            format!("{} {reason}", quoted(user)),
        ));
    } else if user.is_empty() {
        out.push(Diagnostic::error(
            PATH,
            "grafana-user",
            "the admin user name is empty: Grafana cannot create a user without a login",
        ));
    } else if user.chars().count() > GRAFANA_LOGIN_MAX {
        out.push(Diagnostic::error(
            PATH,
            "grafana-user",
            format!(
                "{} is {} characters long: Grafana stores logins of at most \
                 {GRAFANA_LOGIN_MAX}",
                quoted(user),
                user.chars().count()
            ),
        ));
    }
    if grafana_expands(user) {
        out.push(
            Diagnostic::error(
                PATH,
                "grafana-user",
                format!(
                    "{} would not reach Grafana as written: Grafana replaces `${{NAME}}`, \
                     `$__env{{NAME}}` and `$__file{{PATH}}` in its settings with environment \
                     variables and file contents",
                    quoted(user)
                ),
            )
            .with_help("choose a user name without `${`, or a `$__` word followed by `{`"),
        );
    }
}

/// The Redis password reaches the server and `docker run` through an environment variable.
/// Its value never appears in a message.
fn redis_password(stack: &Stack, out: &mut Vec<Diagnostic>) {
    const PATH: &str = "redis.auth.password";
    let auth = &stack.redis.auth;
    let Some(password) = &auth.password else {
        return;
    };
    let password = password.expose();
    if let Some(character) = unsafe_char(password) {
        out.push(Diagnostic::error(
            PATH,
            "text",
            format!(
                "the password contains {character}: it is passed in an environment variable and \
                 typed into redis-cli, so it must be printable text"
            ),
        ));
    }
    if password.is_empty() && auth.enabled {
        out.push(
            Diagnostic::error(
                PATH,
                "redis-password",
                "the password is empty, and Redis reads an empty `requirepass` as no password \
                 at all",
            )
            .with_help("set a password, or `redis.auth.enabled: false`")
            .with_related("redis.auth.enabled"),
        );
    }
}

/// Every image reference, as the manifests write it, must parse as a reference.
fn images(stack: &Stack, out: &mut Vec<Diagnostic>) {
    let images = &stack.images;
    let mut check = |path: &str, related: Option<&str>, reference: String| {
        if let Err(reason) = check_reference(&reference) {
            let mut diagnostic = Diagnostic::error(
                path,
                "image-reference",
                format!(
                    "the image reference {} is invalid: {reason}",
                    quoted(&reference)
                ),
            );
            if let Some(related) = related {
                diagnostic = diagnostic.with_related(related);
            }
            out.push(diagnostic);
        }
    };
    check(
        "images.server",
        Some("images.registry"),
        stack.server_image(),
    );
    check(
        "images.client",
        Some("images.registry"),
        stack.client_image(),
    );
    let o = &stack.observability;
    let third_party: [(&str, &ComponentImage); 8] = [
        ("redis.image", &stack.redis.image),
        ("observability.prometheus.image", &o.prometheus.image),
        ("observability.grafana.image", &o.grafana.image),
        ("observability.loki.image", &o.loki.image),
        ("observability.logs.promtail.image", &o.logs.promtail.image),
        ("observability.logs.alloy.image", &o.logs.alloy.image),
        ("observability.tempo.image", &o.tempo.image),
        ("observability.mimir.image", &o.mimir.image),
    ];
    for (path, image) in third_party {
        check(
            &format!("{path}.repository"),
            images.mirror.as_ref().map(|_| "images.mirror"),
            images.third_party(image),
        );
    }
}

/// The volumes' sizes: Kubernetes refuses a PersistentVolumeClaim that requests no storage,
/// and storage is counted in whole bytes.
fn storage(stack: &Stack, out: &mut Vec<Diagnostic>) {
    let o = &stack.observability;
    for (path, size) in [
        ("redis.persistence.size", &stack.redis.persistence.size),
        (
            "observability.prometheus.storage.size",
            &o.prometheus.storage.size,
        ),
        (
            "observability.grafana.storage.size",
            &o.grafana.storage.size,
        ),
        ("observability.loki.storage.size", &o.loki.storage.size),
        ("observability.tempo.storage.size", &o.tempo.storage.size),
        ("observability.mimir.storage.size", &o.mimir.storage.size),
    ] {
        if size.value() <= 0.0 {
            out.push(Diagnostic::error(
                path,
                "storage-size",
                format!(
                    "a volume of {size} holds nothing: Kubernetes requires a \
                     PersistentVolumeClaim to request more than 0 bytes of storage"
                ),
            ));
        } else {
            whole_bytes(out, path, size);
        }
    }
}

fn whole_bytes(out: &mut Vec<Diagnostic>, path: &str, quantity: &Quantity) {
    if !quantity.is_whole() {
        out.push(
            Diagnostic::error(
                path,
                "whole-bytes",
                format!(
                    "{quantity} is not a whole number of bytes ({} bytes): memory and storage \
                     are counted in bytes",
                    quantity.value()
                ),
            )
            .with_help("use a binary suffix such as 128Mi or 1Gi (`m` means thousandths)"),
        );
    }
}

/// Memory requests and limits are counted in whole bytes.
fn memory(stack: &Stack, out: &mut Vec<Diagnostic>) {
    for (path, resources) in super::component_resources(stack) {
        whole_bytes(
            out,
            &format!("{path}.requests.memory"),
            &resources.requests.memory,
        );
        whole_bytes(
            out,
            &format!("{path}.limits.memory"),
            &resources.limits.memory,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::grafana_expands;

    #[test]
    fn grafana_expansion() {
        for expanded in [
            "${HOME}",
            "a$__env{X}b",
            "$__file{/etc/passwd}",
            "x$__a1{y}",
        ] {
            assert!(grafana_expands(expanded), "{expanded}");
        }
        for kept in ["$", "a$b", "${}", "${x", "$__{x}", "$ {x}", "admin", "$$"] {
            assert!(!grafana_expands(kept), "{kept}");
        }
    }
}
