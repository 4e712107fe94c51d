//! Reading YAML into figment values while remembering where every key and value stands.
//!
//! Plain scalars are kept as the text that was written (only `null`, `~` and empty become
//! null); the model's types decide what the text means. So `tag: 0123` stays `"0123"`, and
//! `port: 8080` becomes a number only because a port is one — the same rule applies to
//! values from environment variables and `--set`, which are text too.
//!
//! Reading is bounded for any input: the limits of [`Loader`] (nesting depth, nodes, what
//! aliases may copy, errors reported) are checked event by event, as the parser produces
//! them, so nothing past a limit is ever built. Work and memory are linear in the file.
//!
//! One concept: reading a YAML file into located figment values (the event walk, its limits
//! and the spans it records live together).

mod spans;
mod text;

use std::collections::HashMap;

use figment::value::{Dict, Empty, Tag, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostic::{Diagnostic, Origin};
use crate::load::Loader;
use spans::{NodeId, Position, Spans};
use text::Text;

/// A parsed YAML file: its content as a figment dictionary and the position of every path.
#[derive(Debug)]
pub(crate) struct SourceFile {
    /// The file name as given.
    pub(crate) name: String,
    /// The file's text, for snippets.
    text: Text,
    /// The top-level mapping.
    pub(crate) dict: Dict,
    /// Position of every key and value.
    spans: Spans,
}

impl SourceFile {
    /// Parses the bytes of the file `name`, which must be UTF-8.
    pub(crate) fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Self, Vec<Diagnostic>> {
        match String::from_utf8(bytes) {
            Ok(text) => Self::parse(name, &text),
            Err(error) => {
                let bytes = error.as_bytes();
                let valid = error.utf8_error().valid_up_to();
                let prefix = Text::new(std::str::from_utf8(&bytes[..valid]).unwrap_or_default());
                let (line, column) = prefix.position_of(prefix.as_str().len());
                // The line up to the bad byte, which shows as a replacement character.
                let (mut snippet, _) = prefix.snippet(line, column, 1);
                if !snippet.ends_with('…') {
                    snippet.push('\u{fffd}');
                }
                let origin = Origin::File {
                    file: name.to_owned(),
                    line,
                    column,
                    snippet,
                    width: 1,
                };
                let diagnostic = Diagnostic::error(
                    "",
                    "invalid-character",
                    format!(
                        "the file is not valid UTF-8: byte 0x{:02X} cannot start or continue a \
                         character here",
                        bytes[valid]
                    ),
                )
                .with_origin(origin)
                .with_help("save the file as UTF-8");
                Err(vec![diagnostic])
            }
        }
    }

    /// Parses `text`, read from the file `name`.
    pub(crate) fn parse(name: &str, text: &str) -> Result<Self, Vec<Diagnostic>> {
        let text = Text::new(text);
        if let Some(forbidden) = text.forbidden() {
            let position = Position::new(forbidden.line, forbidden.column, 1);
            let more = match forbidden.count {
                1 => String::new(),
                n => format!(" ({n} in the file)"),
            };
            let diagnostic = Diagnostic::error(
                "",
                "invalid-character",
                format!(
                    "the file contains {}, which YAML does not allow{more}",
                    text::describe(forbidden.character)
                ),
            )
            .with_origin(origin_in(name, &text, position))
            .with_help("write the value with an escape in a double-quoted string, such as \"\\t\"");
            return Err(vec![diagnostic]);
        }
        let (dict, spans, errors) = {
            let mut builder = Builder {
                name,
                text: &text,
                parser: Parser::new_from_str(text.as_str()),
                spans: Spans::new(),
                anchors: HashMap::new(),
                errors: Errors::default(),
                path: Vec::new(),
                depth: 0,
                nodes: 0,
                copied: Size::default(),
            };
            let dict = builder.document();
            (dict, builder.spans, builder.errors.finish())
        };
        match dict {
            Some(dict) if errors.is_empty() => Ok(Self {
                name: name.to_owned(),
                text,
                dict,
                spans,
            }),
            None if errors.is_empty() => Err(vec![Diagnostic::error(
                "",
                "internal",
                "the YAML reader stopped without saying why; this is a bug in stack-config, \
                 please report it with the file",
            )]),
            _ => Err(errors),
        }
    }

    /// The origin of the key at `path` (`prefix` is prepended, for overlays), or of the
    /// deepest enclosing key that has a position. `at_key` points at the key rather than the
    /// value.
    pub(crate) fn origin(&self, path: &str, at_key: bool) -> Option<Origin> {
        let (span, _) = self.spans.find(path)?;
        let position = if at_key {
            span.key.unwrap_or(span.value)
        } else {
            span.value
        };
        Some(origin_in(&self.name, &self.text, position))
    }

    /// The origin of exactly the key at `path` (pointing at the key), if the file has it.
    pub(crate) fn origin_exact(&self, path: &str) -> Option<Origin> {
        let (span, true) = self.spans.find(path)? else {
            return None;
        };
        Some(origin_in(
            &self.name,
            &self.text,
            span.key.unwrap_or(span.value),
        ))
    }
}

fn origin_in(name: &str, text: &Text, position: Position) -> Origin {
    let (line, column, width) = (
        position.line as usize,
        position.column as usize,
        position.width as usize,
    );
    let (snippet, width) = text.snippet(line, column, width);
    Origin::File {
        file: name.to_owned(),
        line,
        column,
        snippet,
        width,
    }
}

/// What a node holds, to charge an alias that copies it.
#[derive(Clone, Copy, Debug, Default)]
struct Size {
    /// Nodes: scalars, mappings, sequences and keys.
    nodes: usize,
    /// Bytes of text in keys and scalars.
    bytes: usize,
    /// Levels of mappings and sequences (0 for a scalar).
    height: usize,
}

/// A node that an anchor names, ready to be copied by its aliases.
struct Anchored {
    value: Value,
    size: Size,
}

/// The diagnostics of one file, at most `Loader::MAX_ERRORS` of them.
#[derive(Default)]
struct Errors {
    shown: Vec<Diagnostic>,
    /// Errors past the limit, counted but not built.
    hidden: usize,
    /// Where the first hidden error stands.
    first_hidden: Option<Origin>,
}

impl Errors {
    fn is_full(&self) -> bool {
        self.shown.len() >= Loader::MAX_ERRORS
    }

    fn finish(mut self) -> Vec<Diagnostic> {
        if self.hidden > 0 {
            let origin = self.first_hidden.take().unwrap_or(Origin::Default);
            self.shown
                .push(more_errors(self.hidden).with_origin(origin));
        }
        self.shown
    }
}

/// The diagnostic that stands for `hidden` errors left out of a report.
pub(crate) fn more_errors(hidden: usize) -> Diagnostic {
    let plural = if hidden == 1 { "" } else { "s" };
    Diagnostic::error(
        "",
        "error-limit",
        format!(
            "{hidden} more error{plural} not shown (at most {} are reported at once); here is one",
            Loader::MAX_ERRORS
        ),
    )
    .with_help("fix the errors above and check again")
}

struct Builder<'a> {
    name: &'a str,
    text: &'a Text,
    parser: Parser<std::str::Chars<'a>>,
    spans: Spans,
    anchors: HashMap<usize, Anchored>,
    errors: Errors,
    /// Key path of the node being read, one segment per level.
    path: Vec<String>,
    /// Mappings and sequences open around the node being read.
    depth: usize,
    /// Nodes in the document so far, copies made by aliases included.
    nodes: usize,
    /// What aliases have copied so far.
    copied: Size,
}

/// Marks a parse failure that has already been recorded in `Builder::errors`.
struct Failed;

/// A node read, with its size, or a failure.
type Built = Result<(Value, Size), Failed>;

impl Builder<'_> {
    fn next(&mut self) -> Result<(Event, Marker), Failed> {
        self.parser.next_token().map_err(|error| {
            // The parser's own limit on flow nesting (`[[[[…`), far past ours: the scanner
            // reads a run of brackets ahead of the events that would reach ours.
            if error.info() == "recursion limit exceeded" {
                return self.fatal(*error.marker(), 1, "nesting-depth", nesting_message());
            }
            let message = format!("invalid YAML: {}", error.info());
            self.fatal(*error.marker(), 1, "yaml-syntax", message)
        })
    }

    fn position(marker: Marker, width: usize) -> Position {
        Position::new(marker.line(), marker.col() + 1, width)
    }

    /// Records an error at `marker` that does not stop the reading (a duplicate key). Past
    /// `Loader::MAX_ERRORS`, such errors are only counted.
    fn error_at(&mut self, marker: Marker, width: usize, rule: &'static str, message: String) {
        let origin = || origin_in(self.name, self.text, Self::position(marker, width));
        if self.errors.is_full() {
            self.errors.hidden += 1;
            if self.errors.first_hidden.is_none() {
                self.errors.first_hidden = Some(origin());
            }
            return;
        }
        let origin = origin();
        self.errors
            .shown
            .push(Diagnostic::error("", rule, message).with_origin(origin));
    }

    /// Records an error that stops the reading, at `marker`, and fails. It is shown even past
    /// `Loader::MAX_ERRORS`.
    fn fatal(
        &mut self,
        marker: Marker,
        width: usize,
        rule: &'static str,
        message: String,
    ) -> Failed {
        let origin = origin_in(self.name, self.text, Self::position(marker, width));
        self.errors
            .shown
            .push(Diagnostic::error("", rule, message).with_origin(origin));
        Failed
    }

    /// Records that a limit was reached at `marker`, naming the key path, and fails: nothing
    /// past a limit is read.
    fn limit(&mut self, marker: Marker, rule: &'static str, message: String) -> Failed {
        self.limit_at(marker, 1, rule, message)
    }

    /// As `limit`, underlining `width` characters.
    fn limit_at(
        &mut self,
        marker: Marker,
        width: usize,
        rule: &'static str,
        message: String,
    ) -> Failed {
        let origin = origin_in(self.name, self.text, Self::position(marker, width));
        let diagnostic = Diagnostic::error(self.path.join("."), rule, message).with_origin(origin);
        self.errors.shown.push(diagnostic);
        Failed
    }

    /// Counts `added` nodes into the document.
    fn count_nodes(&mut self, added: usize, marker: Marker) -> Result<(), Failed> {
        self.nodes += added;
        if self.nodes > Loader::MAX_NODES {
            return Err(self.limit(
                marker,
                "document-size",
                format!(
                    "the document holds more than {} values (keys, scalars, lists and \
                     mappings, counting what aliases copy); a stack needs a few hundred",
                    Loader::MAX_NODES
                ),
            ));
        }
        Ok(())
    }

    /// Reads the single document; `None` when there is none or it is malformed.
    fn document(&mut self) -> Option<Dict> {
        let mut dict = None;
        let mut documents = 0;
        loop {
            let (event, marker) = self.next().ok()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Some(dict.unwrap_or_default()),
                Event::DocumentStart => {
                    documents += 1;
                    if documents > 1 {
                        let message = "the file holds more than one YAML document; keep one";
                        self.fatal(marker, 3, "yaml-syntax", message.into());
                        return None;
                    }
                }
                event => match self.node(event, marker, Spans::ROOT).ok()?.0 {
                    Value::Dict(_, map) => dict = Some(map),
                    Value::Empty(..) => dict = Some(Dict::new()),
                    _ => {
                        let message =
                            "the top level of the file must be a mapping of keys to values";
                        self.fatal(marker, 1, "type", message.into());
                        return None;
                    }
                },
            }
        }
    }

    fn node(&mut self, event: Event, marker: Marker, span: NodeId) -> Built {
        let (value, size, anchor) = match event {
            Event::Scalar(text, style, anchor, _tag) => {
                self.count_nodes(1, marker)?;
                let width = scalar_width(&text, style);
                self.spans.set_value(span, Self::position(marker, width));
                let size = Size {
                    nodes: 1,
                    bytes: text.len(),
                    height: 0,
                };
                let value = if style == TScalarStyle::Plain
                    && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL")
                {
                    Value::Empty(Tag::Default, Empty::None)
                } else {
                    Value::String(Tag::Default, text)
                };
                (value, size, anchor)
            }
            Event::MappingStart(anchor, _) => {
                self.spans.set_value(span, Self::position(marker, 1));
                let (value, size) = self.collection(marker, span, Self::mapping)?;
                (value, size, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                self.spans.set_value(span, Self::position(marker, 1));
                let (value, size) = self.collection(marker, span, Self::sequence)?;
                (value, size, anchor)
            }
            Event::Alias(id) => {
                self.spans
                    .set_value(span, Self::position(marker, self.alias_width(marker)));
                return self.alias(id, marker);
            }
            _ => {
                let message = "unexpected YAML structure".into();
                return Err(self.fatal(marker, 1, "yaml-syntax", message));
            }
        };
        if anchor != 0 {
            // Keeping the node for its aliases is a copy too: nested anchors would otherwise
            // copy a large node once per level.
            self.copy(size, marker, 1)?;
            self.anchors.insert(
                anchor,
                Anchored {
                    value: value.clone(),
                    size,
                },
            );
        }
        Ok((value, size))
    }

    /// Reads a mapping or a sequence with `read`, one level deeper.
    fn collection(
        &mut self,
        marker: Marker,
        span: NodeId,
        read: fn(&mut Self, NodeId) -> Built,
    ) -> Built {
        self.count_nodes(1, marker)?;
        if self.depth >= Loader::MAX_DEPTH {
            return Err(self.limit(marker, "nesting-depth", nesting_message()));
        }
        self.depth += 1;
        let read = read(self, span);
        self.depth -= 1;
        let (value, size) = read?;
        Ok((
            value,
            Size {
                nodes: size.nodes + 1,
                height: size.height + 1,
                ..size
            },
        ))
    }

    /// The contents of a mapping (the mapping itself is counted by `collection`).
    fn mapping(&mut self, span: NodeId) -> Built {
        let mut dict = Dict::new();
        let mut size = Size::default();
        loop {
            let (event, marker) = self.next()?;
            let key = match event {
                Event::MappingEnd => return Ok((Value::Dict(Tag::Default, dict), size)),
                Event::Scalar(text, ..) => text,
                _ => {
                    let message = "keys must be plain strings, not lists or mappings".into();
                    return Err(self.fatal(marker, 1, "type", message));
                }
            };
            self.count_nodes(1, marker)?;
            let width = key.chars().count();
            if width > Loader::MAX_KEY_CHARS {
                return Err(self.limit(
                    marker,
                    "key-size",
                    format!(
                        "a key is longer than {} characters (YAML's limit on implicit keys)",
                        Loader::MAX_KEY_CHARS
                    ),
                ));
            }
            if dict.contains_key(&key) {
                // Past the limit on errors, the message is not built: its path may be long.
                let message = match self.errors.is_full() {
                    true => String::new(),
                    false => format!(
                        "key `{}` appears more than once in the same mapping",
                        join(&self.path.join("."), &key)
                    ),
                };
                self.error_at(marker, width, "duplicate-key", message);
            }
            let child = self
                .spans
                .add_key(span, &key, Self::position(marker, width));
            self.path.push(key);
            let value = self
                .next()
                .and_then(|(event, marker)| self.node(event, marker, child));
            let key = self.path.pop().unwrap_or_default();
            let (value, child_size) = value?;
            size.nodes += 1 + child_size.nodes;
            size.bytes += key.len() + child_size.bytes;
            size.height = size.height.max(child_size.height);
            dict.insert(key, value);
        }
    }

    /// The contents of a sequence (the sequence itself is counted by `collection`).
    fn sequence(&mut self, span: NodeId) -> Built {
        let mut items = Vec::new();
        let mut size = Size::default();
        loop {
            let (event, marker) = self.next()?;
            if event == Event::SequenceEnd {
                return Ok((Value::Array(Tag::Default, items), size));
            }
            if items.len() == Loader::MAX_ITEMS {
                return Err(self.limit(
                    marker,
                    "list-size",
                    format!(
                        "the list holds more than {} items; a stack's lists hold a few",
                        Loader::MAX_ITEMS
                    ),
                ));
            }
            let child = self.spans.add_item(span);
            self.path.push(items.len().to_string());
            let item = self.node(event, marker, child);
            self.path.pop();
            let (item, item_size) = item?;
            size.nodes += item_size.nodes;
            size.bytes += item_size.bytes;
            size.height = size.height.max(item_size.height);
            items.push(item);
        }
    }

    /// A copy of the node an alias names, if it stays within the limits.
    fn alias(&mut self, id: usize, marker: Marker) -> Built {
        let Some(size) = self.anchors.get(&id).map(|anchored| anchored.size) else {
            // The parser rejects unknown anchors; what is left is an alias inside the very
            // node its anchor names.
            let message = "an alias cannot refer to the node that contains it".into();
            return Err(self.fatal(marker, self.alias_width(marker), "yaml-syntax", message));
        };
        let width = self.alias_width(marker);
        self.copy(size, marker, width)?;
        if self.depth + size.height > Loader::MAX_DEPTH {
            return Err(self.limit_at(
                marker,
                width,
                "nesting-depth",
                format!(
                    "this alias makes values nest more than {} levels deep; a stack nests fewer \
                     than 10",
                    Loader::MAX_DEPTH
                ),
            ));
        }
        self.count_nodes(size.nodes, marker)?;
        let value = self.anchors.get(&id).map(|anchored| anchored.value.clone());
        Ok((value.ok_or(Failed)?, size))
    }

    /// Counts a copy of a node of `size` (by an anchor or an alias, at `marker`) against the
    /// limits on what anchors and aliases copy.
    fn copy(&mut self, size: Size, marker: Marker, width: usize) -> Result<(), Failed> {
        self.copied.nodes += size.nodes;
        self.copied.bytes += size.bytes;
        if self.copied.nodes > Loader::MAX_ALIAS_NODES
            || self.copied.bytes > Loader::MAX_ALIAS_BYTES
        {
            return Err(self.limit_at(
                marker,
                width,
                "alias-expansion",
                format!(
                    "anchors and aliases copy more than {} values or {} bytes of text in all; \
                     a stack's anchors need far less (is this an alias bomb?)",
                    Loader::MAX_ALIAS_NODES,
                    Loader::MAX_ALIAS_BYTES
                ),
            ));
        }
        Ok(())
    }

    /// Characters of the alias at `marker` (`*name`), to underline it.
    fn alias_width(&self, marker: Marker) -> usize {
        self.text
            .line(marker.line())
            .chars()
            .skip(marker.col())
            .take_while(|c| !matches!(c, ' ' | '\t' | ',' | '[' | ']' | '{' | '}'))
            .count()
            .max(1)
    }
}

fn nesting_message() -> String {
    format!(
        "values nest more than {} levels deep; a stack nests fewer than 10",
        Loader::MAX_DEPTH
    )
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
