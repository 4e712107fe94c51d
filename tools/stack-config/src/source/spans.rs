//! Where every key and value of a file stands, in a tree shaped like the document.
//!
//! A tree rather than a map from dotted paths: a map would store every path in full, and a
//! long key with many values below it would be copied once per value — memory quadratic in
//! the size of the file. The tree stores each key once.

use std::collections::HashMap;

/// Where one key and its value stand in a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    /// Position of the key (absent for sequence items).
    pub(crate) key: Option<Position>,
    /// Position of the value.
    pub(crate) value: Position,
}

/// A position in a file (32 bits each: a file is far smaller than 4 GiB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Position {
    /// Line, from 1.
    pub(crate) line: u32,
    /// Column, in characters, from 1.
    pub(crate) column: u32,
    /// Characters to underline.
    pub(crate) width: u32,
}

impl Position {
    pub(crate) fn new(line: usize, column: usize, width: usize) -> Self {
        let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            line: narrow(line),
            column: narrow(column),
            width: narrow(width),
        }
    }
}

/// Identifies a node of the tree.
pub(crate) type NodeId = usize;

/// The positions of a document's keys and values.
#[derive(Debug)]
pub(crate) struct Spans {
    nodes: Vec<Node>,
}

#[derive(Debug, Default)]
struct Node {
    span: Span,
    children: Children,
}

#[derive(Debug, Default)]
enum Children {
    #[default]
    None,
    Keys(HashMap<String, NodeId>),
    Items(Vec<NodeId>),
}

impl Spans {
    /// The document, a node without a position.
    pub(crate) const ROOT: NodeId = 0;

    pub(crate) fn new() -> Self {
        Self {
            nodes: vec![Node::default()],
        }
    }

    /// Adds the key `key` of the mapping `parent`, at `position`. A duplicate key replaces the
    /// earlier one, as its value does in the document.
    pub(crate) fn add_key(&mut self, parent: NodeId, key: &str, position: Position) -> NodeId {
        let id = self.push(Span {
            key: Some(position),
            value: position,
        });
        if !matches!(self.nodes[parent].children, Children::Keys(_)) {
            self.nodes[parent].children = Children::Keys(HashMap::new());
        }
        if let Children::Keys(keys) = &mut self.nodes[parent].children {
            keys.insert(key.to_owned(), id);
        }
        id
    }

    /// Adds the next item of the sequence `parent`; its position comes with `set_value`.
    pub(crate) fn add_item(&mut self, parent: NodeId) -> NodeId {
        let id = self.push(Span::default());
        if !matches!(self.nodes[parent].children, Children::Items(_)) {
            self.nodes[parent].children = Children::Items(Vec::new());
        }
        if let Children::Items(items) = &mut self.nodes[parent].children {
            items.push(id);
        }
        id
    }

    /// Records where the value of `node` stands.
    pub(crate) fn set_value(&mut self, node: NodeId, position: Position) {
        if node != Self::ROOT {
            self.nodes[node].span.value = position;
        }
    }

    fn push(&mut self, span: Span) -> NodeId {
        self.nodes.push(Node {
            span,
            children: Children::None,
        });
        self.nodes.len() - 1
    }

    fn child(&self, node: NodeId, segment: &str) -> Option<NodeId> {
        match &self.nodes[node].children {
            Children::None => None,
            Children::Keys(keys) => keys.get(segment).copied(),
            Children::Items(items) => items.get(segment.parse::<usize>().ok()?).copied(),
        }
    }

    /// The span of the dotted `path` (`server.port`, `images.pull_secrets.0`) if the file has
    /// exactly that key, else the span of its deepest ancestor in the file (`exact` false).
    /// A key that itself holds dots (`"a.b": 1`) is found too.
    pub(crate) fn find(&self, path: &str) -> Option<(Span, bool)> {
        if path.is_empty() {
            return None;
        }
        let segments: Vec<&str> = path.split('.').collect();
        let mut node = Self::ROOT;
        let mut next = 0;
        while next < segments.len() {
            let found = (next..segments.len()).find_map(|last| {
                let key = segments[next..=last].join(".");
                self.child(node, &key).map(|child| (child, last + 1))
            });
            match found {
                Some((child, after)) => (node, next) = (child, after),
                None => break,
            }
        }
        (node != Self::ROOT).then(|| (self.nodes[node].span, next == segments.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_items_and_ancestors() {
        let at = |line| Position::new(line, 1, 1);
        let mut spans = Spans::new();
        let a = spans.add_key(Spans::ROOT, "a", at(1));
        spans.set_value(a, at(2));
        let list = spans.add_key(a, "list", at(3));
        let item = spans.add_item(list);
        spans.set_value(item, at(4));
        let dotted = spans.add_key(Spans::ROOT, "x.y", at(5));

        let found = |path| {
            spans
                .find(path)
                .map(|(span, exact)| (span.value.line, exact))
        };
        assert_eq!(found("a"), Some((2, true)));
        assert_eq!(found("a.list.0"), Some((4, true)));
        assert_eq!(found("a.list.1"), Some((3, false)));
        assert_eq!(found("a.nope.deeper"), Some((2, false)));
        assert_eq!(found("x.y"), Some((5, true)));
        assert_eq!(found("nope"), None);
        assert_eq!(found(""), None);
        assert_eq!(spans.find("a").map(|(span, _)| span.key), Some(Some(at(1))));
        let _ = dotted;
    }

    #[test]
    fn a_duplicate_key_replaces_the_earlier_one() {
        let mut spans = Spans::new();
        spans.add_key(Spans::ROOT, "a", Position::new(1, 1, 1));
        spans.add_key(Spans::ROOT, "a", Position::new(2, 1, 1));
        assert_eq!(spans.find("a").map(|(span, _)| span.value.line), Some(2));
    }
}
