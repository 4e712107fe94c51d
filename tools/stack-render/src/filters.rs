//! The filters and functions templates may use. Every value enters a rendered file through
//! one of them, so no value can change the structure of what it lands in; [`crate::quote`]
//! holds the rules for each grammar.
//!
//! The environment enforces it: its formatter writes a string only when it is a filter's
//! output (a "safe" string), and refuses any other string with an error that names the
//! template and line. Numbers and booleans are written as they are.
//!
//! One concept: the filters templates may call, each with its tests.

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State};

use crate::quote;

/// Which filters an environment gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Filters {
    /// The real filters.
    Quoting,
    /// Filters that write a fixed placeholder of the same shape instead of each value: a
    /// template rendered with them shows the structure it means to write, whatever the
    /// values (see [`crate::readback`]).
    Skeleton,
}

/// Registers the filters (`q`, `yaml`, `block`, `sh`) and functions (`labels`, `selector`),
/// and the formatter that refuses strings no filter wrote.
pub(crate) fn register(env: &mut Environment<'static>, filters: Filters) {
    match filters {
        Filters::Quoting => {
            env.add_filter("q", q);
            env.add_filter("yaml", yaml);
            env.add_filter("block", block);
            env.add_filter("sh", sh);
            env.add_filter("go_duration", go_duration);
            env.add_filter("prom_duration", prom_duration);
        }
        Filters::Skeleton => {
            env.add_filter("q", |_: &Value| safe("\"v\"".to_owned()));
            env.add_filter("yaml", |_: &Value, indent: usize| {
                safe(format!("{}\"k\": \"v\"", " ".repeat(indent)))
            });
            env.add_filter("block", |_: &Value, _: usize| safe("\"v\"".to_owned()));
            env.add_filter("sh", |_: &Value| safe("'v'".to_owned()));
            env.add_filter("go_duration", |_: &Value| Value::from("v"));
            env.add_filter("prom_duration", |_: &Value| Value::from("v"));
        }
    }
    // `safe` would let a template write a raw value past the formatter.
    env.remove_filter("safe");
    env.add_function("labels", labels);
    env.add_function("selector", selector);
    // Macro output (and `indent` of it) is marked safe only when auto-escaping is on; the
    // formatter below is the only "escaping" there is.
    env.set_auto_escape_callback(|_| AutoEscape::Custom("stackctl".into()));
    env.set_formatter(format);
}

/// Writes what a `{{ … }}` produced: a filter's output, a number or a boolean.
fn format(out: &mut Output, _state: &mut State, value: &Value) -> Result<(), Error> {
    let allowed = value.is_safe()
        || value.is_undefined()
        || matches!(value.kind(), ValueKind::Number | ValueKind::Bool);
    if !allowed {
        let shown: String = value.to_string().chars().take(60).collect();
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "a {} value ({}) is written without a quoting filter; pass it through q, \
                 yaml, block or sh",
                value.kind(),
                quote::json_string(&shown)
            ),
        ));
    }
    let text = match value.kind() {
        ValueKind::Undefined => return Ok(()),
        // minijinja writes True and False, as Python does; YAML 1.2 and JSON want these.
        ValueKind::Bool if value.is_true() => "true".to_owned(),
        ValueKind::Bool => "false".to_owned(),
        _ => value.to_string(),
    };
    out.write_str(&text)
        .map_err(|error| Error::new(ErrorKind::WriteFailure, error.to_string()))
}

fn safe(text: String) -> Result<Value, Error> {
    Ok(Value::from_safe_string(text))
}

fn to_json(value: &Value) -> Result<serde_json::Value, Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "an undefined value reached a filter",
        ));
    }
    serde_json::to_value(value)
        .map_err(|error| Error::new(ErrorKind::InvalidOperation, error.to_string()))
}

/// Any value as JSON: strings double-quoted with every line break and control escaped
/// (valid YAML and Alloy, read back exactly), numbers and booleans bare, maps and lists as
/// flow JSON.
pub(crate) fn q(value: &Value) -> Result<Value, Error> {
    safe(quote::json(&to_json(value)?))
}

/// A nested value as block YAML (strings JSON-quoted), every line indented by `indent`.
pub(crate) fn yaml(value: &Value, indent: usize) -> Result<Value, Error> {
    let text = quote::yaml(&to_json(value)?);
    let pad = " ".repeat(indent);
    safe(
        text.lines()
            .map(|line| format!("{pad}{line}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// A string as a YAML block scalar indented by `indent`, byte-exact; text a block scalar
/// cannot hold exactly is written as a JSON string instead, which is just as exact.
pub(crate) fn block(value: &Value, indent: usize) -> Result<Value, Error> {
    match value
        .as_str()
        .and_then(|text| quote::block_scalar(text, indent))
    {
        Some(text) => safe(text),
        None => q(value),
    }
}

/// The duration a filter was given: a stack duration as text (`3d`, `1h30m`).
fn duration_of(filter: &str, value: &Value) -> Result<std::time::Duration, Error> {
    let text = value.as_str().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("{filter} takes a duration, not {}", value.kind()),
        )
    })?;
    stack_config::types::Duration::parse(text)
        .map(stack_config::types::Duration::get)
        .map_err(|error| Error::new(ErrorKind::InvalidOperation, error))
}

/// A stack duration (`3d`, `1h30m`) in Go's `time.Duration` grammar (`72h`, `1h30m`), which
/// is what Go programs that decode YAML into `time.Duration` (Tempo) parse: Go has the units
/// `h`, `m`, `s`, `ms` (and smaller) but no days. Plain text: quote it with `q`.
pub(crate) fn go_duration(value: &Value) -> Result<Value, Error> {
    Ok(Value::from(go_duration_text(duration_of(
        "go_duration",
        value,
    )?)))
}

/// A stack duration in the Prometheus duration grammar (`model.ParseDuration`, also used by
/// Loki's and Mimir's `model.Duration` settings and Prometheus' flags): `15d`, `1d12h`,
/// `250ms`, `0s`. Plain text: quote it with `q`.
pub(crate) fn prom_duration(value: &Value) -> Result<Value, Error> {
    Ok(Value::from(prom_duration_text(duration_of(
        "prom_duration",
        value,
    )?)))
}

/// `duration` in the Prometheus grammar, largest units first: `<n>d<n>h<n>m<n>s<n>ms` with
/// zero parts left out, `0s` for nothing. (Weeks and years exist too; days are exact, and
/// what people read.)
pub(crate) fn prom_duration_text(duration: std::time::Duration) -> String {
    units_text(
        duration,
        &[
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ],
    )
}

fn units_text(duration: std::time::Duration, units: &[(&str, u128)]) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in units {
        if millis >= *size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

/// `duration` in Go's `time.Duration` grammar: `<n>h<n>m<n>s<n>ms`, zero parts left out,
/// `0s` for nothing.
pub(crate) fn go_duration_text(duration: std::time::Duration) -> String {
    units_text(
        duration,
        &[("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)],
    )
}

/// A value as one bash word.
pub(crate) fn sh(value: &Value) -> Result<Value, Error> {
    let text = match value.as_str() {
        Some(text) => text.to_owned(),
        None => to_json(value)?.to_string(),
    };
    let word = quote::shell_word(&text)
        .map_err(|error| Error::new(ErrorKind::InvalidOperation, error.to_string()))?;
    safe(word)
}

/// The role of a component (the namespace is none), for `app.kubernetes.io/component`.
fn role(component: &str) -> &'static str {
    stack_config::Component::from_name(component).map_or("namespace", stack_config::Component::role)
}

/// A label value: at most 63 characters, starting and ending with a letter or digit.
fn label_value(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect();
    kept.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

fn lookup(state: &State, path: &[&str]) -> Result<Value, Error> {
    let mut value = state.lookup(path[0]).ok_or_else(|| {
        Error::new(
            ErrorKind::UndefinedError,
            format!("{} is undefined", path[0]),
        )
    })?;
    for key in &path[1..] {
        value = value.get_attr(key)?;
    }
    Ok(value)
}

/// The six `app.kubernetes.io/*` labels of `component`.
fn labels(state: &State, component: &str, _kwargs: Kwargs) -> Result<Value, Error> {
    let instance = lookup(state, &["stack", "name"])?;
    let version = lookup(state, &["versions", component])
        .ok()
        .filter(|v| !v.is_undefined())
        .or_else(|| lookup(state, &["stack", "images", "tag"]).ok())
        .map(|v| label_value(&v.to_string()))
        .unwrap_or_default();
    let mut map = serde_json::Map::new();
    map.insert("app.kubernetes.io/name".into(), component.into());
    map.insert(
        "app.kubernetes.io/instance".into(),
        instance.to_string().into(),
    );
    map.insert("app.kubernetes.io/version".into(), version.into());
    map.insert("app.kubernetes.io/component".into(), role(component).into());
    map.insert("app.kubernetes.io/part-of".into(), "taskmanager".into());
    map.insert("app.kubernetes.io/managed-by".into(), "stackctl".into());
    Ok(Value::from(minijinja::value::Serde(&map)))
}

/// The selector labels of `component`: name and instance only, so that changing a version
/// never orphans running pods.
fn selector(state: &State, component: &str) -> Result<Value, Error> {
    let instance = lookup(state, &["stack", "name"])?;
    let mut map = serde_json::Map::new();
    map.insert("app.kubernetes.io/name".into(), component.into());
    map.insert(
        "app.kubernetes.io/instance".into(),
        instance.to_string().into(),
    );
    Ok(Value::from(minijinja::value::Serde(&map)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(yaml: &str) -> String {
        let doc = yaml_rust2::YamlLoader::load_from_str(yaml).expect("parses");
        doc[0]["v"].as_str().expect("a string").to_owned()
    }

    fn text(value: Result<Value, Error>) -> String {
        let value = value.expect("renders");
        assert!(value.is_safe(), "filters write safe strings");
        value.as_str().expect("a string").to_owned()
    }

    /// Go's `time.ParseDuration` grammar: one or more `<decimal><unit>` with the units
    /// `ns`, `us`, `µs`, `ms`, `s`, `m`, `h` (no days), or `0`; this checks the integer form
    /// the filter writes.
    fn is_go_duration(text: &str) -> bool {
        if text == "0" {
            return true;
        }
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return false;
            }
            rest = &rest[digits..];
            let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h"]
                .into_iter()
                .filter(|unit| rest.starts_with(unit))
                .max_by_key(|unit| unit.len())
            else {
                return false;
            };
            rest = &rest[unit.len()..];
        }
        !text.is_empty()
    }

    #[test]
    fn go_durations_have_no_days() {
        for (stack, go) in [
            ("3d", "72h"),
            ("1d2h30m", "26h30m"),
            ("90s", "1m30s"),
            ("250ms", "250ms"),
            ("1h0m", "1h"),
            ("0s", "0s"),
            ("7d12h", "180h"),
        ] {
            let written = go_duration(&Value::from(stack)).expect("renders");
            assert_eq!(written.as_str(), Some(go), "{stack}");
            assert!(is_go_duration(go), "{go}");
        }
        assert!(!is_go_duration("3d"), "Go has no day unit");
        assert!(go_duration(&Value::from("soon")).is_err());
        assert!(go_duration(&Value::from(3)).is_err());
    }

    /// Prometheus' `model.ParseDuration` grammar:
    /// `^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$`,
    /// not empty, or `0`.
    fn is_prom_duration(text: &str) -> bool {
        if text == "0" {
            return true;
        }
        let units = ["y", "w", "d", "h", "m", "s", "ms"];
        let mut next = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return false;
            }
            rest = &rest[digits..];
            // `ms` before `m`; each unit once, in order.
            let Some(index) = (next..units.len())
                .filter(|i| rest.starts_with(units[*i]))
                .max_by_key(|i| units[*i].len())
            else {
                return false;
            };
            rest = &rest[units[index].len()..];
            next = index + 1;
        }
        !text.is_empty()
    }

    #[test]
    fn prom_durations_keep_days_and_follow_the_grammar() {
        for (stack, prom) in [
            ("15d", "15d"),
            ("30d", "30d"),
            ("1d2h30m", "1d2h30m"),
            ("90s", "1m30s"),
            ("36h", "1d12h"),
            ("250ms", "250ms"),
            ("1s500ms", "1s500ms"),
            ("0s", "0s"),
        ] {
            let written = prom_duration(&Value::from(stack)).expect("renders");
            assert_eq!(written.as_str(), Some(prom), "{stack}");
            assert!(is_prom_duration(prom), "{prom}");
        }
        for bad in ["", "1h1d", "1.5h", "1hh", "3 d", "1us"] {
            assert!(!is_prom_duration(bad), "{bad}");
        }
        assert!(prom_duration(&Value::from("soon")).is_err());
        assert!(prom_duration(&Value::from(3)).is_err());
    }

    #[test]
    fn duration_filters_write_plain_text_that_needs_quoting() {
        let value = go_duration(&Value::from("3d")).expect("renders");
        assert!(!value.is_safe(), "a template must quote it with q");
        assert_eq!(text(q(&value)), "\"72h\"");
    }

    #[test]
    fn block_scalars_are_exact() {
        for text_in in [
            "a\n",
            "a",
            "a\n\n",
            "x: y\n- z\n# not a comment\n",
            "tab\there\n",
            "one\n\n\ntwo\n",
            "yes\n",
            "0123",
        ] {
            let rendered = text(block(&Value::from(text_in), 2));
            assert!(rendered.starts_with('|'), "{text_in:?} as {rendered:?}");
            assert_eq!(
                read_back(&format!("v: {rendered}\n")),
                text_in,
                "{text_in:?} as {rendered:?}"
            );
        }
        for text_in in [
            "\r\n",
            "",
            "\n\n",
            "bell\u{7}",
            "\u{feff}bom",
            "  leading\nspaces\n",
            "\ttab first\n",
            "a\u{2028}---\u{2028}kind: ClusterRoleBinding\n",
        ] {
            let rendered = text(block(&Value::from(text_in), 2));
            assert!(rendered.starts_with('"'), "{text_in:?} falls back to JSON");
            assert_eq!(read_back(&format!("v: {rendered}\n")), text_in);
        }
    }

    #[test]
    fn shell_words_are_exact() {
        assert_eq!(text(sh(&Value::from("it's"))), r#"'it'"'"'s'"#);
        assert_eq!(text(sh(&Value::from(5))), "'5'");
        let error = sh(&Value::from("a\0b")).expect_err("NUL is refused");
        assert!(error.to_string().contains("cannot hold a NUL"), "{error}");
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("v1.2.3"), "v1.2.3");
        assert_eq!(label_value("-x-"), "x");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn raw_strings_are_refused() {
        let mut env = Environment::new();
        register(&mut env, Filters::Quoting);
        let render = |source: &str| env.render_str(source, minijinja::context! { v => "x\ny" });
        assert_eq!(
            render("{{ v | q }} {{ 5 }} {{ true }}").expect("renders"),
            "\"x\\ny\" 5 true"
        );
        let error = render("{{ v }}").expect_err("a raw string is refused");
        assert!(
            error.to_string().contains("without a quoting filter"),
            "{error}"
        );
        assert!(render("{{ v | safe }}").is_err(), "safe is not available");
        assert!(render("{{ v ~ '' }}").is_err());
    }
}
