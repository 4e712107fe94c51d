//! Logs (JSON or text) and traces (OTLP over gRPC, to Tempo or any collector).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use stack_config::model::{LogFormat, LogLevel};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where traces go.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceSettings {
    /// OTLP/gRPC endpoint, such as `http://tempo:4317`.
    pub endpoint: String,
    /// Fraction of traces kept (0-1); a span whose parent was sampled is always kept.
    pub sampling_ratio: f64,
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
/// `traces` is set. Must run inside a Tokio runtime (the exporter's gRPC channel lives on it).
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

/// The W3C `traceparent` of the current span, when it is being traced.
pub fn current_traceparent() -> Option<String> {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span that `traceparent` names.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(context);
}

/// The trace id of `span` when it is traced, as Tempo and Grafana show it.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}
