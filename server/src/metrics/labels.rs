//! The label types of the metrics, and the exemplar type of the histograms.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};

/// The exemplar of an observation: the trace it belongs to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    /// The trace id, as Tempo shows it.
    pub trace_id: String,
}

/// A task's priority, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[expect(
    non_camel_case_types,
    reason = "label values are written as the variant names"
)]
pub enum Priority {
    /// LOW.
    low,
    /// MEDIUM.
    medium,
    /// HIGH.
    high,
}

impl Priority {
    /// The label of a stored priority (0-2).
    pub fn of(priority: u8) -> Self {
        match priority {
            0 => Self::low,
            1 => Self::medium,
            _ => Self::high,
        }
    }
}

/// Labels by priority.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PriorityLabels {
    /// `low`, `medium` or `high`.
    pub priority: Priority,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[expect(
    non_camel_case_types,
    reason = "label values are written as the variant names"
)]
pub enum Outcome {
    /// The task completed.
    completed,
    /// The attempt failed and the task will be retried.
    retried,
    /// The task failed for good.
    failed,
    /// The task was cancelled while running.
    cancelled,
    /// The task was handed back to the queue (shutdown).
    released,
    /// The lease was lost; the report was rejected.
    stale,
}

/// Labels by outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// How the attempt ended.
    pub outcome: Outcome,
}

/// Labels of a gRPC response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResponseLabels {
    pub(super) method: &'static str,
    pub(super) code: &'static str,
}

/// The canonical name of a gRPC status code, as gRPC's documentation spells it.
pub(super) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
