//! The status of every gRPC response: corrected where tonic's differs from what a client
//! should see, and counted by method and code.
//!
//! tonic answers a request it cannot decode with INTERNAL (prost's mapping: a bug on the
//! server) and a request over the size limit with OUT_OF_RANGE. Both are the client's
//! mistake, not the server's: a request that is not valid protobuf (garbage bytes, a string
//! field that is not UTF-8) is answered INVALID_ARGUMENT, and one larger than
//! `server.limits.max_message_bytes` RESOURCE_EXHAUSTED, as gRPC's status code table has it
//! for messages over a configured limit. (The same table lists a request that fails to
//! parse as INTERNAL; this server deliberately says INVALID_ARGUMENT, so that INTERNAL
//! always means a server bug worth reporting.)
//!
//! The layer sees the status of every call that ends before its response body starts
//! (unary calls, and streams refused at open), so `taskmanager_grpc_responses_total` counts
//! every rejection, whoever made it: validation, limits, the store, or tonic's own decoding.
//!
//! Each call of the TaskManager API runs in a server span that continues the caller's trace
//! (the W3C `traceparent` in its metadata), so that the client's span, this one, the
//! method's and every attempt of a submitted task share one trace.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use crate::metrics::Metrics;

/// The layer, for `tonic::transport::Server::layer`.
#[derive(Clone)]
pub struct StatusLayer {
    metrics: Arc<Metrics>,
    traced: bool,
}

impl StatusLayer {
    /// Counts into `metrics`; with `traced`, runs each API call in a span that continues the
    /// caller's trace (without, the span would only cost: nothing exports it).
    pub fn new(metrics: Arc<Metrics>, traced: bool) -> Self {
        Self { metrics, traced }
    }
}

impl<S> Layer<S> for StatusLayer {
    type Service = Statuses<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Statuses {
            inner,
            metrics: self.metrics.clone(),
            traced: self.traced,
        }
    }
}

/// The service the layer wraps around the routes.
#[derive(Clone)]
pub struct Statuses<S> {
    inner: S,
    metrics: Arc<Metrics>,
    traced: bool,
}

impl<S, B, R> Service<http::Request<B>> for Statuses<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method(request.uri().path());
        let metrics = self.metrics.clone();
        let span = if self.traced && request.uri().path().starts_with("/proto.TaskManager/") {
            let span = tracing::info_span!(
                "grpc",
                otel.name = format!("proto.TaskManager/{method}"),
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = "proto.TaskManager",
                rpc.method = method,
            );
            crate::telemetry::continue_from(&span, request.headers());
            span
        } else {
            // Health checks and reflection: not worth a trace.
            tracing::Span::none()
        };
        let response = self.inner.call(request);
        Box::pin(
            async move {
                let mut response = response.await?;
                let code = match Status::from_header_map(response.headers()) {
                    Some(status) => match corrected(&status) {
                        Some(better) => {
                            let headers = response.headers_mut();
                            headers.remove(Status::GRPC_STATUS);
                            headers.remove(Status::GRPC_MESSAGE);
                            let _ = better.add_header(headers);
                            better.code()
                        }
                        None => status.code(),
                    },
                    None => Code::Ok,
                };
                metrics.count_response(method, code);
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The status a client should get instead of `status`, when tonic's is wrong.
fn corrected(status: &Status) -> Option<Status> {
    let message = status.message();
    match status.code() {
        Code::Internal if message.starts_with("failed to decode Protobuf message") => {
            Some(Status::invalid_argument(format!(
                "the request is not a valid message of this method: {}",
                message.trim_start_matches("failed to decode Protobuf message: ")
            )))
        }
        Code::OutOfRange if message.contains("decoded message length too large") => {
            Some(Status::resource_exhausted(format!(
                "the request is larger than the server accepts \
                 (server.limits.max_message_bytes): {message}"
            )))
        }
        _ => None,
    }
}

/// The method's name for metrics: one of the known ones, or `other` (so that a client
/// cannot grow the metrics by calling made-up paths).
fn method(path: &str) -> &'static str {
    const KNOWN: [&str; 8] = [
        "/proto.TaskManager/SubmitTask",
        "/proto.TaskManager/StreamTaskStatus",
        "/proto.TaskManager/SubmitTasks",
        "/proto.TaskManager/GetTask",
        "/proto.TaskManager/CancelTask",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ];
    KNOWN
        .iter()
        .find(|known| **known == path)
        .and_then(|known| known.rsplit('/').next())
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_and_oversize_requests_get_the_client_codes() {
        let garbage = Status::internal("failed to decode Protobuf message: invalid wire type");
        let better = corrected(&garbage).expect("corrected");
        assert_eq!(better.code(), Code::InvalidArgument);
        assert!(
            better.message().ends_with("invalid wire type"),
            "{better:?}"
        );
        let large = Status::out_of_range(
            "Error, decoded message length too large: found 5242885 bytes, the limit is: \
             4194304 bytes",
        );
        assert_eq!(
            corrected(&large).map(|s| s.code()),
            Some(Code::ResourceExhausted)
        );
        // A server's own INTERNAL or OUT_OF_RANGE stays.
        assert!(corrected(&Status::internal("a bug")).is_none());
        assert!(corrected(&Status::out_of_range("after_sequence: 9 is past")).is_none());
    }

    #[test]
    fn unknown_paths_count_as_other() {
        assert_eq!(method("/proto.TaskManager/SubmitTask"), "SubmitTask");
        assert_eq!(method("/proto.TaskManager/Nope"), "other");
        assert_eq!(method("/grpc.health.v1.Health/Check"), "Check");
    }
}
