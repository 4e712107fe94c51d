//! Checking requests: the limits applied to them, task requests and task ids.

use std::time::Duration;

use taskmanager_proto::pb;
use tonic::Status;

use super::TaskManagerService;
use crate::task::NewTask;

/// Limits applied to requests.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// Longest `task_description`, bytes.
    pub max_description_bytes: usize,
    /// Largest `payload`, bytes.
    pub max_payload_bytes: usize,
    /// Longest `idempotency_key` and `kind`, bytes.
    pub max_key_bytes: usize,
    /// Most tasks in one `SubmitTasks`.
    pub max_batch: usize,
    /// Attempts of a task that does not say.
    pub default_max_attempts: u32,
    /// Most status streams open at once.
    pub max_streams: usize,
    /// Most unary requests handled at once.
    pub max_in_flight: usize,
}

/// Most attempts a request may ask for.
const MAX_ATTEMPTS: u32 = 100;
/// Longest delay a request may ask for: 30 days.
const MAX_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;
/// Longest task id accepted.
const MAX_ID_BYTES: usize = 64;

impl TaskManagerService {
    /// Checks one task request; `field` prefixes field names in errors (`tasks[2].`).
    pub(super) fn validate(
        &self,
        request: pb::TaskRequest,
        field: &str,
    ) -> Result<NewTask, Status> {
        let invalid = |name: &str, problem: String| {
            Status::invalid_argument(format!("{field}{name}: {problem}"))
        };
        let limits = &self.limits;
        if request.task_description.len() > limits.max_description_bytes {
            return Err(invalid(
                "task_description",
                format!(
                    "{} bytes is longer than the limit of {}",
                    request.task_description.len(),
                    limits.max_description_bytes
                ),
            ));
        }
        let priority = u8::try_from(request.priority)
            .ok()
            .filter(|p| pb::TaskPriority::try_from(i32::from(*p)).is_ok())
            .ok_or_else(|| {
                invalid(
                    "priority",
                    format!(
                        "{} is not LOW (0), MEDIUM (1) or HIGH (2)",
                        request.priority
                    ),
                )
            })?;
        if request.kind.len() > limits.max_key_bytes {
            return Err(invalid(
                "kind",
                format!("longer than {} bytes", limits.max_key_bytes),
            ));
        }
        if !self.registry.contains(&request.kind) {
            return Err(invalid(
                "kind",
                format!(
                    "no handler for {:?}; known kinds: {}",
                    request.kind,
                    self.registry.kinds().join(", ")
                ),
            ));
        }
        if request.idempotency_key.len() > limits.max_key_bytes {
            return Err(invalid(
                "idempotency_key",
                format!("longer than {} bytes", limits.max_key_bytes),
            ));
        }
        if request.payload.len() > limits.max_payload_bytes {
            return Err(invalid(
                "payload",
                format!(
                    "{} bytes is larger than the limit of {}",
                    request.payload.len(),
                    limits.max_payload_bytes
                ),
            ));
        }
        if request.max_attempts > MAX_ATTEMPTS {
            return Err(invalid("max_attempts", format!("at most {MAX_ATTEMPTS}")));
        }
        if request.delay_ms > MAX_DELAY_MS {
            return Err(invalid(
                "delay_ms",
                format!("at most {MAX_DELAY_MS} (30 days)"),
            ));
        }
        Ok(NewTask {
            id: crate::task::random_id(),
            description: request.task_description,
            priority,
            number1: request.number1,
            number2: request.number2,
            kind: if request.kind.is_empty() {
                "default".to_owned()
            } else {
                request.kind
            },
            payload: request.payload,
            idempotency_key: (!request.idempotency_key.is_empty())
                .then_some(request.idempotency_key),
            max_attempts: if request.max_attempts == 0 {
                limits.default_max_attempts
            } else {
                request.max_attempts
            },
            delay: Duration::from_millis(request.delay_ms),
            trace_parent: crate::telemetry::current_traceparent(),
        })
    }
}

/// Checks a task id from a request.
pub(super) fn check_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("task_id: must not be empty"));
    }
    if id.len() > MAX_ID_BYTES
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Status::invalid_argument(format!(
            "task_id: {:?} is not a task id (at most {MAX_ID_BYTES} letters, digits, '-', '_')",
            id.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_id;

    #[test]
    fn task_ids() {
        assert!(check_id("7c1f0d3a-9b1e-4f55-a0ad-0c5d2a0b9e11").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a b").is_err());
        assert!(check_id(&"a".repeat(65)).is_err());
    }
}
