//! An OTLP trace collector for tests: the OTLP/gRPC trace service, as Tempo's receiver
//! implements it, on a free loopback port, keeping every span it is sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

/// A running collector. Clones share the spans.
#[derive(Clone, Default)]
pub struct Collector {
    exports: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

/// One exported span, flattened.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportedSpan {
    /// The `service.name` of its resource.
    pub service: String,
    /// The span's name.
    pub name: String,
    /// Trace id, in hex as Tempo shows it.
    pub trace_id: String,
    /// Span id, in hex.
    pub span_id: String,
    /// The parent's span id, in hex (empty for a root).
    pub parent: String,
    /// Its string-valued attributes.
    pub attributes: BTreeMap<String, String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn strings(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|attribute| match attribute.value.as_ref() {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(text)),
            }) => Some((attribute.key.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

impl Collector {
    /// Starts a collector on a free loopback port; returns it and its endpoint
    /// (`http://127.0.0.1:PORT`). It serves until the runtime stops.
    pub async fn start() -> std::io::Result<(Self, String)> {
        let collector = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Ok((collector, endpoint))
    }

    /// Every span received so far, in the order received.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        let exports = self
            .exports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut out = Vec::new();
        for export in exports {
            for resource in export.resource_spans {
                let service = resource
                    .resource
                    .map(|resource| strings(&resource.attributes))
                    .and_then(|mut attributes| attributes.remove("service.name"))
                    .unwrap_or_default();
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        out.push(ExportedSpan {
                            service: service.clone(),
                            name: span.name.clone(),
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent: hex(&span.parent_span_id),
                            attributes: strings(&span.attributes),
                        });
                    }
                }
            }
        }
        out
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.exports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}
