//! The HTTP endpoint of the metrics: `/metrics`, `/healthz` and `/readyz`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Metrics;
use crate::hub::Hub;
use crate::store::Store;

/// The content type of OpenMetrics text, the format that carries exemplars.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape waits for the store's queue depths before answering without them.
const DEPTHS_TIMEOUT: Duration = Duration::from_secs(1);

/// What the HTTP endpoint reads.
#[derive(Clone)]
struct Endpoint {
    metrics: Arc<Metrics>,
    hub: Hub,
    store: Arc<dyn Store>,
}

impl Endpoint {
    async fn answer(
        &self,
        request: &hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let text = |status: u16, content_type: &str, body: String| {
            hyper::Response::builder()
                .status(status)
                .header(hyper::header::CONTENT_TYPE, content_type)
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_default()
        };
        let plain = "text/plain; charset=utf-8";
        if request.method() != hyper::Method::GET && request.method() != hyper::Method::HEAD {
            return text(405, plain, "only GET\n".to_owned());
        }
        match request.uri().path() {
            "/metrics" => {
                let depths = match tokio::time::timeout(DEPTHS_TIMEOUT, self.store.depths()).await {
                    Ok(Ok(depths)) => Some(depths),
                    Ok(Err(error)) => {
                        debug!(%error, "Cannot read the queue depths for a scrape.");
                        None
                    }
                    Err(_) => {
                        debug!("The store did not answer the queue depths in time.");
                        None
                    }
                };
                text(
                    200,
                    CONTENT_TYPE,
                    self.metrics.render(&self.hub, depths.as_ref()),
                )
            }
            "/healthz" => text(200, plain, "ok\n".to_owned()),
            "/readyz" if self.metrics.ready.load(Ordering::Relaxed) => {
                text(200, plain, "ready\n".to_owned())
            }
            "/readyz" => text(
                503,
                plain,
                "not ready: the task store or its event subscription is down\n".to_owned(),
            ),
            _ => text(404, plain, "try /metrics\n".to_owned()),
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `stop` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    hub: Hub,
    store: Arc<dyn Store>,
    stop: CancellationToken,
) {
    let endpoint = Endpoint {
        metrics,
        hub,
        store,
    };
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    debug!(%error, "Cannot accept a metrics connection.");
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let endpoint = endpoint.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let endpoint = endpoint.clone();
                async move { Ok::<_, Infallible>(endpoint.answer(&request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        debug!(%error, "A metrics connection failed.");
                    }
                }
                () = stop.cancelled() => {
                    // Finish the request in flight (at most 2 s), then close.
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), connection.as_mut()).await;
                }
            }
        });
    }
}
