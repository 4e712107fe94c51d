//! Logs (JSON or text) and traces (OTLP over gRPC, to Tempo or any collector) of the server
//! and the client, set up the same way from the same `observability.tracing` settings.
//!
//! One trace runs from the client to the worker: the client puts its span's W3C
//! `traceparent` into each call's gRPC metadata ([`inject`]); the server continues it
//! ([`continue_from`], in a server span around each call) and stores it with the task, so that every attempt joins it
//! ([`set_parent`]). A trace id is only shown ([`trace_id`]) for a sampled span: a log line
//! or an exemplar never links to a trace that was not exported.

#[cfg(feature = "collector")]
pub mod collector;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use stack_config::model::{LogFormat, LogLevel};
use stack_config::{Component, Stack, Topology};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The OpenTelemetry `service.name` of the server. The log shippers label the server pods'
/// lines with the same `service_name` (`<part-of>-<name>` of the pod), which is what
/// Grafana's traces-to-logs query looks for.
pub const SERVER_SERVICE: &str = "taskmanager-server";

/// The OpenTelemetry `service.name` of the client (see [`SERVER_SERVICE`]).
pub const CLIENT_SERVICE: &str = "taskmanager-client";

/// Where traces go.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceSettings {
    /// OTLP/gRPC endpoint, such as `http://tempo:4317`.
    pub endpoint: String,
    /// Fraction of traces kept (0-1); a span whose parent was sampled is always kept.
    pub sampling_ratio: f64,
}

impl TraceSettings {
    /// Where `component`'s traces go in `stack` (compiled into `topology`): its trace
    /// endpoint, the configured one or the deployed Tempo; `None` when tracing is off.
    pub fn new(stack: &Stack, topology: &Topology, component: Component) -> Option<Self> {
        let endpoint = topology.endpoint(component, Component::Tempo)?;
        Some(Self {
            endpoint: endpoint.url.clone(),
            sampling_ratio: stack.observability.tracing.sampling_ratio.get(),
        })
    }
}

/// The installed telemetry; [`Telemetry::shutdown`] flushes the traces still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("warning: traces may have been lost on shutdown: {error}");
        }
    }
}

/// Installs the global subscriber: the log format and level, and an OTLP trace exporter when
/// `traces` is set. `service` is the OpenTelemetry `service.name` (and, with `-` as `_`, the
/// crate whose events are logged at `level`). Must run inside a Tokio runtime (the
/// exporter's gRPC channel lives on it).
pub fn init(
    service: &'static str,
    level: LogLevel,
    format: LogFormat,
    traces: Option<&TraceSettings>,
) -> Result<Telemetry, opentelemetry_otlp::ExporterBuildError> {
    let level = match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let crate_name = service.replace('-', "_");
    // RUST_LOG, when set, refines the configured level.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,{crate_name}={level}")));
    let provider = match traces {
        Some(traces) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(traces.endpoint.clone())
                .build()?;
            let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                traces.sampling_ratio.clamp(0.0, 1.0),
            )));
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_sampler(sampler)
                    .with_resource(Resource::builder().with_service_name(service).build())
                    .build(),
            )
        }
        None => None,
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_filter(EnvFilter::new(format!("{crate_name}=info")))
    });
    let registry = tracing_subscriber::registry().with(otel);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Json => registry
            .with(
                fmt.json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Text => registry
            .with(fmt.with_ansi(false).with_filter(filter))
            .init(),
    }
    Ok(Telemetry { provider })
}

/// Writes into gRPC metadata.
struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Puts the W3C trace context of the current span (`traceparent`, `tracestate`) into the
/// metadata of an outgoing call. Nothing is written when the span is not traced.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
}

/// A request for `message` that carries the current span's trace context.
pub fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    inject(request.metadata_mut());
    request
}

/// Reads from HTTP headers (a gRPC call's metadata, before tonic decodes it).
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes `span` a child of the trace context that an incoming call's headers carry, if they
/// carry one (a caller that does not trace continues nothing). Call it before the span is
/// entered: tracing-opentelemetry starts the span then, and its parent is fixed.
pub fn continue_from(span: &tracing::Span, headers: &http::HeaderMap) {
    let context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// The W3C `traceparent` of the current span, when it is traced.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span that `traceparent` names.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(context);
}

/// The trace id of `span`, as Tempo and Grafana show it, when the span is sampled (and so
/// exported): log lines and exemplars carry it only then.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    (span_context.is_valid() && span_context.is_sampled())
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_travels_in_metadata() {
        let mut headers = http::HeaderMap::new();
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert("traceparent", parent.parse().expect("ascii"));
        let context = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
        let span = context.span();
        let span_context = span.span_context();
        assert!(span_context.is_sampled() && span_context.is_remote());
        assert_eq!(
            span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );

        let mut out = tonic::metadata::MetadataMap::new();
        TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(&mut out));
        assert_eq!(
            out.get("traceparent").and_then(|v| v.to_str().ok()),
            Some(parent)
        );
    }

    #[test]
    fn a_call_without_trace_context_continues_nothing() {
        let context =
            TraceContextPropagator::new().extract(&HeaderExtractor(&http::HeaderMap::new()));
        assert!(!context.span().span_context().is_valid());
        // Outside any traced span there is nothing to inject.
        let mut out = tonic::metadata::MetadataMap::new();
        inject(&mut out);
        assert!(out.is_empty());
    }
}
