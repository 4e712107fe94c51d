//! `get` and `cancel`: one call about one task.

use taskmanager_proto::pb;

use super::Session;
use crate::{EXIT_OK, Failure};

/// Prints a snapshot of a task, as YAML or (`--json`) JSON.
pub(crate) async fn get(mut session: Session, id: String) -> Result<u8, Failure> {
    let task = session
        .client
        .get_task(taskmanager_telemetry::traced(pb::GetTaskRequest {
            task_id: id,
        }))
        .await
        .map_err(|status| Failure::rpc("cannot get the task", &status))?
        .into_inner();
    let json = serde_json::json!({
        "task_id": task.task_id,
        "task_description": task.task_description,
        "priority": task.priority().as_str_name(),
        "number1": task.number1,
        "number2": task.number2,
        "kind": task.kind,
        "status": task.status,
        "sequence": task.sequence,
        "progress": task.progress,
        "attempt": task.attempt,
        "max_attempts": task.max_attempts,
        "result": task.result,
        "error": task.error,
        "created_at_unix_ms": task.created_at_unix_ms,
        "updated_at_unix_ms": task.updated_at_unix_ms,
    });
    if session.json {
        println!("{json}");
    } else {
        print!("{}", stack_config::to_yaml(&json));
    }
    Ok(EXIT_OK)
}

/// Cancels a task and says what became of it.
pub(crate) async fn cancel(
    mut session: Session,
    id: String,
    reason: String,
) -> Result<u8, Failure> {
    let response = session
        .client
        .cancel_task(taskmanager_telemetry::traced(pb::CancelTaskRequest {
            task_id: id,
            reason,
        }))
        .await
        .map_err(|status| Failure::rpc("cannot cancel the task", &status))?
        .into_inner();
    let state = response
        .state()
        .as_str_name()
        .trim_start_matches("TASK_STATE_")
        .to_owned();
    if session.json {
        println!(
            "{}",
            serde_json::json!({ "cancelled": response.cancelled, "state": state })
        );
    } else if response.cancelled {
        println!("cancelled (now {state})");
    } else {
        println!("not cancelled: the task already ended {state}");
    }
    Ok(EXIT_OK)
}
