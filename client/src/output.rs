//! How statuses are shown: live progress bars on a terminal (indicatif; one per task, so the
//! demo's concurrent tasks each have theirs), one line per status otherwise, or one JSON
//! object per status with `--json`.

use std::io::Write;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use taskmanager_proto::pb;

/// Output style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A live progress bar per task.
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
    /// The terminal's bars, shared by every task's output (`Style::Bar`).
    bars: Option<MultiProgress>,
    /// This task's bar, once its first status arrived.
    bar: Option<ProgressBar>,
}

/// How one task's bar looks: `0f8e2d1c [##########..........]  50% IN_PROGRESS attempt 1/3`.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix} [{bar:20}] {pos:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>.")
}

impl Output {
    /// An output on stdout: `json` when asked, bars when stdout is a terminal, else lines.
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
        let bars = (style == Style::Bar)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        Self {
            style,
            prefix: String::new(),
            bars,
            bar: None,
        }
    }

    /// The same output for one of several concurrent tasks: a bar of its own under the
    /// others on a terminal, lines with `prefix` otherwise.
    pub fn for_task(&self, prefix: &str) -> Self {
        Self {
            style: self.style,
            prefix: prefix.to_owned(),
            bars: self.bars.clone(),
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
                let bar = self.bar_for(status);
                bar.set_position(u64::from(status.progress.min(100)));
                bar.set_message(bar_message(status));
                return;
            }
            Style::Quiet => return,
        };
        write_stdout(&text);
    }

    /// This task's bar, added under the others at its first status.
    fn bar_for(&mut self, status: &pb::StatusResponse) -> &ProgressBar {
        let bars = self.bars.get_or_insert_with(MultiProgress::new);
        self.bar.get_or_insert_with(|| {
            let bar = bars.add(ProgressBar::new(100).with_style(bar_style()));
            bar.set_prefix(short(&status.task_id).to_owned());
            bar
        })
    }

    /// Says what the client is doing besides showing statuses (reconnecting): on a
    /// terminal, `full` as a line above the bars; otherwise as a line on stderr, so that
    /// stdout keeps only statuses (pure JSON lines with `--json`). `brief` is for a display
    /// that has room for a word only.
    pub fn notice(&mut self, _brief: &str, full: &str) {
        match (&self.style, &self.bars) {
            (Style::Bar, Some(bars)) => {
                let _ = bars.println(format!("{}{full}", self.prefix));
            }
            (Style::Lines | Style::Json | Style::Bar, _) => eprintln!("{}{full}", self.prefix),
            (Style::Quiet, _) => {}
        }
    }

    /// Leaves this task's bar drawn as it ended.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
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

/// What a task's bar says after the percentage: `IN_PROGRESS attempt 1/3 [result|error]`.
pub fn bar_message(status: &pb::StatusResponse) -> String {
    let text = format!(
        "{} attempt {}/{}",
        status.status, status.attempt, status.max_attempts
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
            bar_message(&status(50, "IN_PROGRESS")),
            "IN_PROGRESS attempt 1/3"
        );
        assert_eq!(
            line(&status(100, "COMPLETED")),
            "0f8e2d1c-aaaa-4bbb-8ccc-123456789abc #4 COMPLETED 100% attempt 1/3"
        );
        assert_eq!(json(&status(30, "QUEUED"))["sequence"], 4);
    }
}
