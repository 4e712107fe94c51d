//! The filters and functions templates may use. Every value enters a rendered file through
//! one of them, so no value can change the structure of what it lands in.

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, State};

/// Registers the filters (`q`, `yaml`, `block`, `sh`) and functions (`labels`, `selector`).
pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_filter("q", q);
    env.add_filter("yaml", yaml);
    env.add_filter("block", block);
    env.add_filter("sh", sh);
    env.add_function("labels", labels);
    env.add_function("selector", selector);
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

/// Any value as JSON: strings double-quoted and escaped (valid YAML, read back exactly),
/// numbers and booleans bare, maps and lists as flow JSON.
pub(crate) fn q(value: &Value) -> Result<String, Error> {
    Ok(to_json(value)?.to_string())
}

/// A nested value as block YAML (strings JSON-quoted), every line indented by `indent`.
pub(crate) fn yaml(value: &Value, indent: usize) -> Result<String, Error> {
    let json = to_json(value)?;
    let text = stack_config::to_yaml(&json);
    let pad = " ".repeat(indent);
    Ok(text
        .lines()
        .map(|line| format!("{pad}{line}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// A string as a YAML block scalar, byte-exact: the header chooses the chomping that keeps
/// the trailing newlines as they are, and an indentation indicator when the text starts with
/// a space. Text a block scalar cannot hold (control characters, carriage returns, a byte
/// order mark) is written as a JSON string instead, which is just as exact.
pub(crate) fn block(value: &Value, indent: usize) -> Result<String, Error> {
    let Some(text) = value.as_str() else {
        return q(value);
    };
    let printable = |c: char| c == '\n' || c == '\t' || !(c.is_control() || c == '\u{feff}');
    if text.is_empty() || !text.chars().all(printable) || text.trim_matches('\n').is_empty() {
        return q(value);
    }
    let trailing = text.len() - text.trim_end_matches('\n').len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let indicator = if text.starts_with(' ') || text.starts_with('\t') {
        indent.to_string()
    } else {
        String::new()
    };
    let pad = " ".repeat(indent);
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<String> = body
        .split('\n')
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else {
                format!("{pad}{line}")
            }
        })
        .collect();
    Ok(format!("|{indicator}{chomp}\n{}", lines.join("\n")))
}

/// A string as one single-quoted shell word.
pub(crate) fn sh(value: &Value) -> Result<String, Error> {
    let text = match value.as_str() {
        Some(text) => text.to_owned(),
        None => to_json(value)?.to_string(),
    };
    Ok(format!("'{}'", text.replace('\'', "'\"'\"'")))
}

/// The role of each component, for `app.kubernetes.io/component`.
fn role(component: &str) -> &'static str {
    match component {
        "server" => "api",
        "client" => "load-generator",
        "redis" => "database",
        "prometheus" | "mimir" => "metrics",
        "loki" | "promtail" | "alloy" => "logs",
        "tempo" => "traces",
        "grafana" => "dashboards",
        _ => "namespace",
    }
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

    #[test]
    fn block_scalars_are_exact() {
        for text in [
            "a\n",
            "a",
            "a\n\n",
            "  leading\nspaces\n",
            "x: y\n- z\n# not a comment\n",
            "tab\there\n",
            "\ttab first\n",
            "one\n\n\ntwo\n",
            "yes\n",
            "0123",
        ] {
            let rendered = block(&Value::from(text), 2).expect("renders");
            assert_eq!(
                read_back(&format!("v: {rendered}\n")),
                text,
                "{text:?} as {rendered:?}"
            );
        }
        for text in ["\r\n", "", "\n\n", "bell\u{7}", "\u{feff}bom"] {
            let rendered = block(&Value::from(text), 2).expect("renders");
            assert!(rendered.starts_with('"'), "{text:?} falls back to JSON");
            assert_eq!(read_back(&format!("v: {rendered}\n")), text);
        }
    }

    #[test]
    fn shell_words_are_exact() {
        assert_eq!(
            sh(&Value::from("it's")).ok().as_deref(),
            Some(r#"'it'"'"'s'"#)
        );
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("v1.2.3"), "v1.2.3");
        assert_eq!(label_value("-x-"), "x");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
    }
}
