//! The text of a stack file, made ready for the parser and for snippets.
//!
//! A leading byte-order mark is dropped (editors hide it, and the parser would read it as
//! part of the first key). Characters that YAML does not allow in a stream are found before
//! parsing: the parser reads a NUL as the end of the input and would silently ignore the rest.
//! The start of every line is indexed once, so that turning a position into a snippet costs
//! no more than the snippet, however many diagnostics there are.

/// Characters shown of a line in a snippet past the underlined part, at most.
const SNIPPET_CONTEXT: usize = 60;
/// Characters of a line shown in a snippet, at most; a longer line is cut with `…`.
const SNIPPET_MAX: usize = 1024;

/// A stack file's text, without its byte-order mark, with the start of every line.
#[derive(Debug)]
pub(crate) struct Text {
    text: String,
    /// Byte offset of the start of every line; the parser's line `n` starts at `[n - 1]`.
    line_starts: Vec<usize>,
}

/// A character YAML does not allow, where it first occurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Forbidden {
    /// The character.
    pub(crate) character: char,
    /// Line, from 1.
    pub(crate) line: usize,
    /// Column, in characters, from 1.
    pub(crate) column: usize,
    /// How many forbidden characters the file holds in all.
    pub(crate) count: usize,
}

impl Text {
    pub(crate) fn new(text: &str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text).to_owned();
        // Line breaks as the parser counts them: `\r\n`, `\r` or `\n`.
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        let mut index = 0;
        while index < bytes.len() {
            match bytes[index] {
                b'\r' if bytes.get(index + 1) == Some(&b'\n') => {
                    index += 2;
                    line_starts.push(index);
                }
                b'\r' | b'\n' => {
                    index += 1;
                    line_starts.push(index);
                }
                _ => index += 1,
            }
        }
        Self { text, line_starts }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Line `line` (from 1) without its line break; empty past the end.
    pub(crate) fn line(&self, line: usize) -> &str {
        let Some(&start) = line.checked_sub(1).and_then(|i| self.line_starts.get(i)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\r', '\n'])
    }

    /// Line `line`, cut to what a reader needs to see `width` characters from `column`, and
    /// the width that is left to underline: at most `SNIPPET_MAX` characters, so that a huge
    /// one-line file or a huge value does not make huge messages.
    pub(crate) fn snippet(&self, line: usize, column: usize, width: usize) -> (String, usize) {
        let line = self.line(line);
        let keep = (column + width + SNIPPET_CONTEXT).min(SNIPPET_MAX);
        let width = width
            .min(keep.saturating_sub(column.saturating_sub(1)))
            .max(1);
        match line.char_indices().nth(keep) {
            Some((cut, _)) => (format!("{}…", &line[..cut]), width),
            None => (line.to_owned(), width),
        }
    }

    /// Line and column (from 1, in characters) of the byte offset `offset`.
    pub(crate) fn position_of(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
    }

    /// The first character YAML does not allow in a stream, if any (YAML 1.2 §5.1: C0
    /// controls other than tab, line feed and carriage return, DEL, C1 controls other than
    /// NEL, and U+FFFE / U+FFFF).
    pub(crate) fn forbidden(&self) -> Option<Forbidden> {
        let mut found = self
            .text
            .char_indices()
            .filter(|&(_, character)| is_forbidden(character));
        let (offset, character) = found.next()?;
        let (line, column) = self.position_of(offset);
        Some(Forbidden {
            character,
            line,
            column,
            count: 1 + found.count(),
        })
    }
}

fn is_forbidden(character: char) -> bool {
    match character {
        '\t' | '\n' | '\r' | '\u{85}' => false,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => true,
        _ => false,
    }
}

/// How a forbidden character is named in a message.
pub(crate) fn describe(character: char) -> String {
    let code = format!("U+{:04X}", u32::from(character));
    match character {
        '\0' => format!("a NUL character ({code})"),
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => format!("the control character {code}"),
        _ => format!("the noncharacter {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_lines_as_the_parser_counts_them() {
        let text = Text::new("a\r\nbb\rccc\n\ndd");
        assert_eq!(
            (1..=6).map(|n| text.line(n)).collect::<Vec<_>>(),
            vec!["a", "bb", "ccc", "", "dd", ""]
        );
        assert_eq!(text.position_of(0), (1, 1));
        assert_eq!(text.position_of(4), (2, 2));
        assert_eq!(text.position_of(6), (3, 1));
        assert_eq!(Text::new("").line(1), "");
    }

    #[test]
    fn drops_a_leading_byte_order_mark_only() {
        assert_eq!(Text::new("\u{feff}a: 1\n").as_str(), "a: 1\n");
        assert_eq!(Text::new("a: \u{feff}\n").as_str(), "a: \u{feff}\n");
    }

    #[test]
    fn finds_forbidden_characters() {
        let found = Text::new("a: 1\nbé: x\0y\0\n").forbidden();
        assert_eq!(
            found,
            Some(Forbidden {
                character: '\0',
                line: 2,
                column: 6,
                count: 2
            })
        );
        assert_eq!(Text::new("a:\t\"é\u{85}\"\r\n").forbidden(), None);
        assert_eq!(
            Text::new("\u{1b}[31m").forbidden().map(|f| f.character),
            Some('\u{1b}')
        );
        assert_eq!(describe('\0'), "a NUL character (U+0000)");
        assert_eq!(describe('\u{1b}'), "the control character U+001B");
    }

    #[test]
    fn cuts_long_lines_and_widths_in_snippets() {
        let line = "x".repeat(5000);
        let text = Text::new(&line);
        let (snippet, width) = text.snippet(1, 1, 3);
        assert_eq!((snippet.chars().count(), width), (1 + 3 + 60 + 1, 3));
        assert!(snippet.ends_with('…'));
        let (snippet, width) = text.snippet(1, 4000, 1);
        assert_eq!((snippet.chars().count(), width), (SNIPPET_MAX + 1, 1));
        // A value longer than a snippet is underlined as far as the snippet goes.
        let (snippet, width) = text.snippet(1, 7, 4000);
        assert_eq!(
            (snippet.chars().count(), width),
            (SNIPPET_MAX + 1, SNIPPET_MAX - 6)
        );
        assert_eq!(Text::new("short").snippet(1, 1, 5), ("short".to_owned(), 5));
    }
}
