//! How statuses are shown: a live progress bar on a terminal, one line per status otherwise,
//! or one JSON object per status with `--json`.

use std::io::Write;

use taskmanager_proto::pb;

/// Output style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A progress bar redrawn in place.
    Bar,
    /// One plain line per status.
    Lines,
    /// One JSON object per status.
    Json,
    /// Nothing (the load generator follows many streams and only counts outcomes).
    Quiet,
}

/// Where statuses go.
pub struct Output {
    style: Style,
    /// Prefix of plain lines (the demo runs many tasks at once).
    prefix: String,
    /// The bar as last drawn, while its line is open.
    bar: Option<String>,
}

impl Output {
    /// An output on stdout: `json` when asked, a bar when stdout is a terminal, else lines.
    pub fn stdout(json: bool) -> Self {
        use std::io::IsTerminal;
        let style = if json {
            Style::Json
        } else if std::io::stdout().is_terminal() {
            Style::Bar
        } else {
            Style::Lines
        };
        Self::new(style)
    }

    /// An output of the given style.
    pub fn new(style: Style) -> Self {
        Self {
            style,
            prefix: String::new(),
            bar: None,
        }
    }

    /// The same output with a line prefix, for one of several concurrent tasks (bars become
    /// lines: several bars cannot share one terminal line).
    pub fn for_task(&self, prefix: &str) -> Self {
        let style = if self.style == Style::Bar {
            Style::Lines
        } else {
            self.style
        };
        Self {
            style,
            prefix: prefix.to_owned(),
            bar: None,
        }
    }

    /// The style in use.
    pub fn style(&self) -> Style {
        self.style
    }

    /// Shows one status.
    pub fn status(&mut self, status: &pb::StatusResponse) {
        let text = match self.style {
            Style::Json => format!("{}\n", json(status)),
            Style::Lines => format!("{}{}\n", self.prefix, line(status)),
            Style::Bar => {
                let drawn = bar(status);
                let text = format!("\r\x1b[2K{drawn}");
                self.bar = Some(drawn);
                text
            }
            Style::Quiet => return,
        };
        write_stdout(&text);
    }

    /// Says what the client is doing besides showing statuses (reconnecting): `brief` after
    /// the bar on its line (a longer text would wrap and break the redraw), else `full` as a
    /// line on stderr, so that stdout keeps only statuses (pure JSON lines with `--json`).
    pub fn notice(&mut self, brief: &str, full: &str) {
        match self.style {
            Style::Bar => {
                let drawn = self.bar.get_or_insert_with(String::new);
                let separator = if drawn.is_empty() { "" } else { "  " };
                write_stdout(&format!("\r\x1b[2K{drawn}{separator}{brief}"));
            }
            Style::Lines | Style::Json => eprintln!("{}{full}", self.prefix),
            Style::Quiet => {}
        }
    }

    /// Ends the bar's line, if one is open.
    pub fn finish(&mut self) {
        if self.bar.take().is_some() {
            println!();
        }
    }
}

fn write_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// One plain line: `<id> #<seq> <STATUS> <progress>% attempt a/m [result|error]`.
pub fn line(status: &pb::StatusResponse) -> String {
    let text = format!(
        "{} #{} {} {}% attempt {}/{}",
        status.task_id,
        status.sequence,
        status.status,
        status.progress,
        status.attempt,
        status.max_attempts
    );
    text + &outcome(status)
}

/// A progress bar: `<id> [#####.....]  50% IN_PROGRESS attempt 1/3`.
pub fn bar(status: &pb::StatusResponse) -> String {
    const WIDTH: usize = 20;
    let filled = usize::try_from(status.progress.min(100)).unwrap_or(0) * WIDTH / 100;
    let text = format!(
        "{} [{}{}] {:>3}% {} attempt {}/{}",
        short(&status.task_id),
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        status.progress,
        status.status,
        status.attempt,
        status.max_attempts
    );
    text + &outcome(status)
}

/// ` result ...` and ` error "..."`, for the fields that are set.
fn outcome(status: &pb::StatusResponse) -> String {
    let mut text = String::new();
    if !status.result.is_empty() {
        text.push_str(&format!(" result {}", status.result));
    }
    if !status.error.is_empty() {
        text.push_str(&format!(" error {:?}", status.error));
    }
    text
}

/// A status as JSON.
pub fn json(status: &pb::StatusResponse) -> serde_json::Value {
    serde_json::json!({
        "task_id": status.task_id,
        "sequence": status.sequence,
        "status": status.status,
        "progress": status.progress,
        "attempt": status.attempt,
        "max_attempts": status.max_attempts,
        "result": status.result,
        "error": status.error,
        "updated_at_unix_ms": status.updated_at_unix_ms,
    })
}

/// The first block of a UUID.
pub fn short(id: &str) -> &str {
    id.split('-').next().unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(progress: u32, state: &str) -> pb::StatusResponse {
        pb::StatusResponse {
            status: state.into(),
            task_id: "0f8e2d1c-aaaa-4bbb-8ccc-123456789abc".into(),
            sequence: 4,
            progress,
            attempt: 1,
            max_attempts: 3,
            ..Default::default()
        }
    }

    #[test]
    fn formats() {
        assert_eq!(
            bar(&status(50, "IN_PROGRESS")),
            "0f8e2d1c [##########..........]  50% IN_PROGRESS attempt 1/3"
        );
        assert_eq!(
            line(&status(100, "COMPLETED")),
            "0f8e2d1c-aaaa-4bbb-8ccc-123456789abc #4 COMPLETED 100% attempt 1/3"
        );
        assert_eq!(json(&status(30, "QUEUED"))["sequence"], 4);
    }
}
