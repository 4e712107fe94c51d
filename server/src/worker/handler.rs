//! Task handlers: the work itself, looked up by task kind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::task::TaskRecord;

/// The kind a task without one runs as.
pub const DEFAULT_KIND: &str = "default";

/// Why a handler did not complete its task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerError {
    /// The attempt failed; the task is retried while attempts remain.
    Failed(String),
    /// The task can never succeed; it fails without further attempts.
    Permanent(String),
    /// The handler stopped because it was asked to (`TaskContext::cancelled`).
    Cancelled,
}

/// What a handler gets: the task, a way to report progress, and a cancellation signal.
pub struct TaskContext {
    /// The task being run (attempt already counted).
    pub task: TaskRecord,
    store: Arc<dyn Store>,
    token: String,
    cancel: CancellationToken,
}

impl TaskContext {
    pub(crate) fn new(
        task: TaskRecord,
        store: Arc<dyn Store>,
        token: String,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            task,
            store,
            token,
            cancel,
        }
    }

    /// Reports progress of this attempt (percent, 0-100). Best effort: a failure to record
    /// it does not fail the task.
    pub async fn progress(&self, percent: u32) {
        if let Err(error) = self
            .store
            .progress(&self.task.id, &self.token, percent)
            .await
        {
            tracing::debug!(%error, task_id = %self.task.id, "Could not record progress.");
        }
    }

    /// Resolves when the handler should stop: the task was cancelled, its lease was lost,
    /// or the server is shutting down past its grace period.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// True once the handler should stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// The work of one task kind.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt and returns its result (text, shown to clients).
    async fn run(&self, context: &TaskContext) -> Result<String, HandlerError>;
}

/// Handlers by kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl Registry {
    /// A registry with the default handler.
    pub fn with_default(simulation: Simulation) -> Self {
        let mut registry = Self::default();
        registry.register(DEFAULT_KIND, Arithmetic { simulation });
        registry
    }

    /// Adds (or replaces) the handler of `kind`.
    pub fn register(&mut self, kind: &str, handler: impl Handler) {
        self.handlers.insert(kind.to_owned(), Arc::new(handler));
    }

    /// The handler of `kind` (the default one for an empty kind).
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        let kind = if kind.is_empty() { DEFAULT_KIND } else { kind };
        self.handlers.get(kind).cloned()
    }

    /// True when `kind` has a handler.
    pub fn contains(&self, kind: &str) -> bool {
        self.get(kind).is_some()
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort();
        kinds
    }
}

/// Simulated work of the default handler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Simulation {
    /// How long each attempt works.
    pub duration: Duration,
    /// Fraction of attempts that fail.
    pub failure_rate: f64,
}

/// The default handler: arithmetic on `number1` and `number2`, after the simulated work.
pub struct Arithmetic {
    /// The simulated work.
    pub simulation: Simulation,
}

/// Steps of progress reported during the simulated work.
const STEPS: u32 = 10;

impl Arithmetic {
    /// The result for two operands: `{"sum":..,"difference":..,"product":..,"quotient":..}`
    /// (quotient truncated toward zero, null when dividing by zero).
    pub fn compute(a: i32, b: i32) -> String {
        let (a, b) = (i64::from(a), i64::from(b));
        let quotient = if b == 0 {
            "null".to_owned()
        } else {
            (a / b).to_string()
        };
        format!(
            "{{\"sum\":{},\"difference\":{},\"product\":{},\"quotient\":{quotient}}}",
            a + b,
            a - b,
            a * b
        )
    }
}

#[async_trait]
impl Handler for Arithmetic {
    async fn run(&self, context: &TaskContext) -> Result<String, HandlerError> {
        let duration = self.simulation.duration;
        if !duration.is_zero() {
            let step = duration / STEPS;
            for done in 1..=STEPS {
                tokio::select! {
                    () = tokio::time::sleep(step) => {}
                    () = context.cancelled() => return Err(HandlerError::Cancelled),
                }
                if done < STEPS {
                    context.progress(done * 100 / STEPS).await;
                }
            }
        }
        if self.simulation.failure_rate > 0.0
            && rand::rng().random_bool(self.simulation.failure_rate.clamp(0.0, 1.0))
        {
            return Err(HandlerError::Failed("simulated failure".to_owned()));
        }
        Ok(Self::compute(context.task.number1, context.task.number2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_a_checkable_result() {
        assert_eq!(
            Arithmetic::compute(7, -2),
            r#"{"sum":5,"difference":9,"product":-14,"quotient":-3}"#
        );
        assert_eq!(
            Arithmetic::compute(i32::MAX, i32::MAX),
            r#"{"sum":4294967294,"difference":0,"product":4611686014132420609,"quotient":1}"#
        );
        assert_eq!(
            Arithmetic::compute(1, 0),
            r#"{"sum":1,"difference":1,"product":0,"quotient":null}"#
        );
    }

    #[test]
    fn an_empty_kind_is_the_default() {
        let registry = Registry::with_default(Simulation {
            duration: Duration::ZERO,
            failure_rate: 0.0,
        });
        assert!(registry.contains(""));
        assert!(registry.contains("default"));
        assert!(!registry.contains("resize-image"));
        assert_eq!(registry.kinds(), vec!["default".to_owned()]);
    }
}
