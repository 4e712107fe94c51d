//! Version lines: the versions of each third-party component that the templates are written
//! for, declared next to them in `templates/versions.yaml`, and the check that an image tag
//! of `stack.yaml` lies within its line.
//!
//! A config is written in its program's grammar at a version: Tempo 3 removed blocks that the
//! 2.x templates write, and would crash on them. So a tag outside the line is refused before
//! anything renders, with a message naming the line the templates support.

use std::collections::BTreeMap;

use stack_config::Diagnostic;
use stack_config::topology::{Tag, Topology};

use crate::RenderError;

/// Where the templates declare their lines.
pub const VERSIONS_FILE: &str = "versions.yaml";

/// The rule name of a tag outside its line.
const RULE: &str = "version-line";

/// One version line: `2.10` (every 2.10.x) or `7` (every 7.x).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line(Vec<u64>);

impl Line {
    /// Parses `MAJOR` or `MAJOR.MINOR` (more parts are allowed, but pin less than a release).
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Option<Vec<u64>> = text.split('.').map(number).collect();
        match parts {
            Some(parts) if !parts.is_empty() => Ok(Self(parts)),
            _ => Err(format!(
                "{} is not a version line: write MAJOR or MAJOR.MINOR, such as \"2.10\"",
                crate::quote::json_string(text)
            )),
        }
    }

    /// True when `tag` (without a digest) is a version within this line:
    /// `[v]<line>[.<more>][-<suffix>]`.
    pub fn contains(&self, tag: &str) -> bool {
        let tag = tag.strip_prefix('v').unwrap_or(tag);
        let version = tag.split_once('-').map_or(tag, |(version, _)| version);
        let parts: Option<Vec<u64>> = version.split('.').map(number).collect();
        parts.is_some_and(|parts| parts.len() >= self.0.len() && parts.starts_with(&self.0))
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        write!(f, "{}.x", parts.join("."))
    }
}

/// A run of ASCII digits as a number.
fn number(part: &str) -> Option<u64> {
    (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        .then(|| part.parse().ok())
        .flatten()
}

/// The lines the templates declare, by component.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionLines(BTreeMap<String, Vec<Line>>);

/// A line or a list of lines, as `versions.yaml` writes them.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Declared {
    One(String),
    Many(Vec<String>),
}

impl VersionLines {
    /// Parses `versions.yaml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let declared: BTreeMap<String, Declared> =
            serde_yaml::from_str(text).map_err(|error| error.to_string())?;
        let mut lines = BTreeMap::new();
        for (component, declared) in declared {
            let texts = match declared {
                Declared::One(text) => vec![text],
                Declared::Many(texts) => texts,
            };
            let parsed = texts
                .iter()
                .map(|text| Line::parse(text))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| format!("{component}: {error}"))?;
            if parsed.is_empty() {
                return Err(format!("{component}: no version line"));
            }
            lines.insert(component, parsed);
        }
        Ok(Self(lines))
    }

    /// The lines of `component`.
    pub fn of(&self, component: &str) -> &[Line] {
        self.0.get(component).map_or(&[], Vec::as_slice)
    }

    /// One error for each image tag of a deployed component that lies outside its line.
    pub fn check(&self, topology: &Topology) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for part in topology.deployed() {
            let Some(Tag { tag, key: path }) = &part.tag else {
                continue;
            };
            let title = part.component.title();
            let lines = self.of(part.component.name());
            if lines.iter().any(|line| line.contains(tag)) {
                continue;
            }
            let supported = if lines.is_empty() {
                "no version line (the templates declare none in versions.yaml)".to_owned()
            } else {
                lines
                    .iter()
                    .map(|line| format!("{title} {line}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            };
            out.push(
                Diagnostic::error(
                    path.as_str(),
                    RULE,
                    format!(
                        "the tag {} is outside the version line the templates render {title} \
                         for: {supported}",
                        crate::quote::json_string(tag)
                    ),
                )
                .with_help(format!(
                    "pick a tag of that line (with an optional @sha256 digest), or add \
                     templates for the new line (docs/operations.md, \"Version lines\"); \
                     {title}'s config grammar changes between lines"
                )),
            );
        }
        out
    }
}

/// The lines declared by `sources` (every template by name).
pub(crate) fn declared(sources: &[(String, String)]) -> Result<VersionLines, RenderError> {
    let text = sources
        .iter()
        .find(|(name, _)| name == VERSIONS_FILE)
        .map(|(_, text)| text.as_str())
        .unwrap_or_default();
    VersionLines::parse(text).map_err(|message| RenderError::Invalid {
        template: VERSIONS_FILE.to_owned(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_contain_their_releases_and_nothing_else() {
        let line = Line::parse("2.10").expect("a line");
        for tag in ["2.10", "2.10.0", "v2.10.3", "2.10.3-distroless", "2.10.1.4"] {
            assert!(line.contains(tag), "{tag}");
        }
        for tag in [
            "2.1", "2.100.0", "2.9.9", "3.0.0", "2", "latest", "v", "", "2.10x", "main-abc",
        ] {
            assert!(!line.contains(tag), "{tag}");
        }
        let major = Line::parse("7").expect("a line");
        assert!(major.contains("7.4-alpine") && major.contains("7") && !major.contains("8.0"));
        assert_eq!(line.to_string(), "2.10.x");
        for bad in ["", "2.", ".1", "v2", "x", "2.10-rc"] {
            assert!(Line::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn declarations_parse_one_line_or_a_list() {
        let lines = VersionLines::parse("a: \"2.10\"\nb: [\"7\", \"8.0\"]\n").expect("lines");
        assert_eq!(lines.of("a"), [Line(vec![2, 10])]);
        assert_eq!(lines.of("b"), [Line(vec![7]), Line(vec![8, 0])]);
        assert!(lines.of("c").is_empty());
        let error = VersionLines::parse("a: [\"2.x\"]\n").expect_err("not a line");
        assert!(
            error.starts_with("a: \"2.x\" is not a version line"),
            "{error}"
        );
        assert!(VersionLines::parse("a: []\n").is_err());
    }
}
