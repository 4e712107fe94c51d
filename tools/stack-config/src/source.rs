//! Reading YAML into figment values while remembering where every key and value stands.
//!
//! Plain scalars are kept as the text that was written (only `null`, `~` and empty become
//! null); the model's types decide what the text means. So `tag: 0123` stays `"0123"`, and
//! `port: 8080` becomes a number only because a port is one — the same rule applies to
//! values from environment variables and `--set`, which are text too.

use std::collections::HashMap;

use figment::value::{Dict, Empty, Tag, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostic::{Diagnostic, Origin};

/// Where one key and its value stand in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    /// Position of the key (absent for sequence items).
    pub(crate) key: Option<Position>,
    /// Position of the value.
    pub(crate) value: Position,
}

/// A position in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    /// Line, from 1.
    pub(crate) line: usize,
    /// Column, from 1.
    pub(crate) column: usize,
    /// Characters to underline.
    pub(crate) width: usize,
}

/// A parsed YAML file: its content as a figment dictionary and the position of every path.
#[derive(Clone, Debug)]
pub(crate) struct SourceFile {
    /// The file name as given.
    pub(crate) name: String,
    /// The file's lines, for snippets.
    lines: Vec<String>,
    /// The top-level mapping.
    pub(crate) dict: Dict,
    /// Position of every dotted path (`server.port`, `images.pull_secrets.0`).
    spans: HashMap<String, Span>,
}

impl SourceFile {
    /// Parses `text`, read from the file `name`.
    pub(crate) fn parse(name: &str, text: &str) -> Result<Self, Vec<Diagnostic>> {
        let mut builder = Builder {
            name,
            text,
            parser: Parser::new_from_str(text),
            spans: HashMap::new(),
            anchors: HashMap::new(),
            errors: Vec::new(),
        };
        let dict = builder.document();
        let lines = text.lines().map(str::to_owned).collect();
        if builder.errors.is_empty() {
            Ok(Self {
                name: name.to_owned(),
                lines,
                dict: dict.unwrap_or_default(),
                spans: builder.spans,
            })
        } else {
            Err(builder.errors)
        }
    }

    /// The origin of the key at `path` (`prefix` is prepended, for overlays), or of the
    /// deepest enclosing key that has a position. `at_key` points at the key rather than the
    /// value.
    pub(crate) fn origin(&self, path: &str, at_key: bool) -> Option<Origin> {
        let mut path = path;
        loop {
            if let Some(span) = self.spans.get(path) {
                let position = if at_key {
                    span.key.unwrap_or(span.value)
                } else {
                    span.value
                };
                return Some(self.origin_at(position));
            }
            path = path.rsplit_once('.')?.0;
        }
    }

    /// The origin of exactly the key at `path` (pointing at the key), if the file has it.
    pub(crate) fn origin_exact(&self, path: &str) -> Option<Origin> {
        let span = self.spans.get(path)?;
        Some(self.origin_at(span.key.unwrap_or(span.value)))
    }

    fn origin_at(&self, position: Position) -> Origin {
        origin_in(&self.name, &self.lines, position)
    }
}

fn origin_in(name: &str, lines: &[String], position: Position) -> Origin {
    Origin::File {
        file: name.to_owned(),
        line: position.line,
        column: position.column,
        snippet: lines.get(position.line - 1).cloned().unwrap_or_default(),
        width: position.width,
    }
}

struct Builder<'a> {
    name: &'a str,
    text: &'a str,
    parser: Parser<std::str::Chars<'a>>,
    spans: HashMap<String, Span>,
    anchors: HashMap<usize, Value>,
    errors: Vec<Diagnostic>,
}

/// Marks a parse failure that has already been recorded in `Builder::errors`.
struct Failed;

impl Builder<'_> {
    fn next(&mut self) -> Result<(Event, Marker), Failed> {
        self.parser.next_token().map_err(|error| {
            let marker = *error.marker();
            self.error_at(
                marker,
                1,
                "yaml-syntax",
                format!("invalid YAML: {}", error.info()),
            );
            Failed
        })
    }

    fn position(&self, marker: Marker, width: usize) -> Position {
        Position {
            line: marker.line(),
            column: marker.col() + 1,
            width,
        }
    }

    fn error_at(&mut self, marker: Marker, width: usize, rule: &'static str, message: String) {
        let lines: Vec<String> = self.text.lines().map(str::to_owned).collect();
        let origin = origin_in(self.name, &lines, self.position(marker, width));
        self.errors
            .push(Diagnostic::error("", rule, message).with_origin(origin));
    }

    /// Reads the single document; `None` when there is none or it is malformed.
    fn document(&mut self) -> Option<Dict> {
        let mut dict = None;
        let mut documents = 0;
        loop {
            let (event, marker) = self.next().ok()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return dict,
                Event::DocumentStart => {
                    documents += 1;
                    if documents > 1 {
                        self.error_at(
                            marker,
                            3,
                            "yaml-syntax",
                            "the file holds more than one YAML document; keep one".into(),
                        );
                        return None;
                    }
                }
                event => match self.node(event, marker, "").ok()? {
                    Value::Dict(_, map) => dict = Some(map),
                    Value::Empty(..) => dict = Some(Dict::new()),
                    _ => {
                        self.error_at(
                            marker,
                            1,
                            "type",
                            "the top level of the file must be a mapping of keys to values".into(),
                        );
                        return None;
                    }
                },
            }
        }
    }

    fn node(&mut self, event: Event, marker: Marker, path: &str) -> Result<Value, Failed> {
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let width = scalar_width(&text, style);
                self.record_value(path, self.position(marker, width));
                let value = if style == TScalarStyle::Plain
                    && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL")
                {
                    Value::Empty(Tag::Default, Empty::None)
                } else {
                    Value::String(Tag::Default, text)
                };
                (value, anchor)
            }
            Event::MappingStart(anchor, _) => {
                self.record_value(path, self.position(marker, 1));
                (self.mapping(path)?, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                self.record_value(path, self.position(marker, 1));
                (self.sequence(path)?, anchor)
            }
            Event::Alias(id) => {
                self.record_value(path, self.position(marker, 1));
                let value = self.anchors.get(&id).cloned().ok_or(Failed)?;
                (value, 0)
            }
            _ => {
                self.error_at(marker, 1, "yaml-syntax", "unexpected YAML structure".into());
                return Err(Failed);
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    fn mapping(&mut self, path: &str) -> Result<Value, Failed> {
        let mut dict = Dict::new();
        loop {
            let (event, marker) = self.next()?;
            let key = match event {
                Event::MappingEnd => return Ok(Value::Dict(Tag::Default, dict)),
                Event::Scalar(text, ..) => text,
                _ => {
                    self.error_at(
                        marker,
                        1,
                        "type",
                        "keys must be plain strings, not lists or mappings".into(),
                    );
                    return Err(Failed);
                }
            };
            let child = join(path, &key);
            if dict.contains_key(&key) {
                self.error_at(
                    marker,
                    key.chars().count(),
                    "duplicate-key",
                    format!("key `{child}` appears more than once in the same mapping"),
                );
            }
            let key_position = self.position(marker, key.chars().count());
            self.spans.insert(
                child.clone(),
                Span {
                    key: Some(key_position),
                    value: key_position,
                },
            );
            let (event, marker) = self.next()?;
            let value = self.node(event, marker, &child)?;
            dict.insert(key, value);
        }
    }

    fn sequence(&mut self, path: &str) -> Result<Value, Failed> {
        let mut items = Vec::new();
        loop {
            let (event, marker) = self.next()?;
            if event == Event::SequenceEnd {
                return Ok(Value::Array(Tag::Default, items));
            }
            let child = join(path, &items.len().to_string());
            items.push(self.node(event, marker, &child)?);
        }
    }

    fn record_value(&mut self, path: &str, position: Position) {
        if path.is_empty() {
            return;
        }
        let span = self.spans.entry(path.to_owned()).or_insert(Span {
            key: None,
            value: position,
        });
        span.value = position;
    }
}

/// Characters to underline for a scalar: its text, plus quotes, on one line.
fn scalar_width(text: &str, style: TScalarStyle) -> usize {
    let first_line = text.lines().next().unwrap_or_default().chars().count();
    match style {
        TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => first_line + 2,
        TScalarStyle::Plain => first_line.max(1),
        _ => 1,
    }
}

/// `parent.child`, or `child` at the top level.
pub(crate) fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(value: &Value) -> Option<&str> {
        value.as_str()
    }

    #[test]
    fn keeps_scalars_as_written_and_records_positions() {
        let text =
            "a:\n  tag: 0123\n  flag: yes\n  quoted: \"x: y\"\n  none: ~\nlist:\n  - one\n  - 2\n";
        let file = SourceFile::parse("f.yaml", text).expect("parses");
        let a = file.dict["a"].as_dict().expect("a is a mapping");
        assert_eq!(string(&a["tag"]), Some("0123"));
        assert_eq!(string(&a["flag"]), Some("yes"));
        assert_eq!(string(&a["quoted"]), Some("x: y"));
        assert!(matches!(a["none"], Value::Empty(_, Empty::None)));
        let list = file.dict["list"].as_array().expect("list is a sequence");
        assert_eq!(string(&list[1]), Some("2"));

        let Some(Origin::File {
            line,
            column,
            width,
            snippet,
            ..
        }) = file.origin("a.tag", false)
        else {
            panic!("a.tag has a position");
        };
        assert_eq!((line, column, width), (2, 8, 4));
        assert_eq!(snippet, "  tag: 0123");
        let Some(Origin::File {
            line,
            column,
            width,
            ..
        }) = file.origin("a.quoted", true)
        else {
            panic!("a.quoted has a position");
        };
        assert_eq!((line, column, width), (4, 3, 6));
        let Some(Origin::File { line, column, .. }) = file.origin("list.1", false) else {
            panic!("list.1 has a position");
        };
        assert_eq!((line, column), (8, 5));
        // A path below a scalar falls back to the nearest known key.
        let Some(Origin::File { line, .. }) = file.origin("a.tag.deeper", false) else {
            panic!("falls back");
        };
        assert_eq!(line, 2);
    }

    #[test]
    fn reports_syntax_errors_and_duplicates_with_positions() {
        let errors = SourceFile::parse("f.yaml", "a: [1, 2\nb: 3\n").expect_err("unclosed");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].rule, "yaml-syntax");
        assert!(
            errors[0]
                .location()
                .is_some_and(|l| l.starts_with("f.yaml:"))
        );

        let errors = SourceFile::parse("f.yaml", "a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].rule, "duplicate-key");
        assert_eq!(errors[0].location().as_deref(), Some("f.yaml:3:1"));

        let errors = SourceFile::parse("f.yaml", "- a\n- b\n").expect_err("not a mapping");
        assert_eq!(errors[0].rule, "type");
    }

    #[test]
    fn resolves_aliases() {
        let file = SourceFile::parse("f.yaml", "a: &x {b: c}\nd: *x\n").expect("parses");
        assert_eq!(file.dict["a"], file.dict["d"]);
    }
}
