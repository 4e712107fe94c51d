//! The TaskManager server: a tonic gRPC API over a durable task store, with workers, leases,
//! retries and status streams that work across replicas.
//!
//! - [`store`]: the store interface, the Redis store (system of record) and the in-memory one.
//! - [`hub`]: one store subscription per process, fanned out to streams and workers.
//! - [`worker`]: workers, leases and the handler registry.
//! - [`api`]: the gRPC service.
//! - [`serve`]: everything assembled, with graceful shutdown.

pub mod api;
pub mod hub;
pub(crate) mod maintenance;
pub mod metrics;
pub mod settings;
pub mod statuses;
pub mod store;
pub mod task;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use stack_config::model::StoreKind;
use taskmanager_proto::pb::task_manager_server::TaskManagerServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use settings::Settings;
use store::{MemoryStore, RedisStore, Store};
pub use taskmanager_telemetry as telemetry;
use worker::handler::Registry;

/// The gRPC health service name that reports the process alive, for liveness probes.
pub const LIVENESS: &str = "liveness";

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The gRPC transport failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not be set up (a bug: the descriptor set is built in).
    #[error("cannot set up reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The store must not be used as configured: its eviction policy may delete live
    /// tasks, or its queue is split into another number of shards (the log says which).
    #[error(
        "refusing to run on this Redis: its maxmemory-policy may delete live tasks (set it \
         to noeviction, or redis.allow_evicting_policy: true), or its queue is split into \
         another number of shards than redis.cluster.shards; the log says which"
    )]
    Refused,
}

/// Opens the configured store. Nothing is dialled yet: a Redis that cannot be reached now
/// is connected to once it answers, while the server already serves health (NOT_SERVING).
pub fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, store::StoreError> {
    Ok(match settings.store {
        StoreKind::Memory => Arc::new(
            MemoryStore::new(settings.retention).with_max_queued(settings.redis.max_queued),
        ),
        StoreKind::Redis => Arc::new(RedisStore::connect(settings.redis.clone())?),
    })
}

/// Serves the API on `listener` until `shutdown` fires, then shuts down gracefully: stops
/// taking work, ends status streams with `UNAVAILABLE` (clients reconnect to another
/// replica), lets running tasks finish within the grace period, hands the rest back to the
/// queue, and returns.
pub async fn serve(
    settings: Settings,
    store: Arc<dyn Store>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let hub = hub::Hub::spawn(store.notices());
    let metrics = Arc::new(metrics::Metrics::default());
    let metrics_stop = CancellationToken::new();
    if let Some(metrics_listener) = metrics_listener {
        tokio::spawn(metrics::serve(
            metrics_listener,
            metrics.clone(),
            hub.clone(),
            store.clone(),
            metrics_stop.clone(),
        ));
    }
    let registry = Arc::new(Registry::with_default(settings.simulation));
    let (health, health_service) = tonic_health::server::health_reporter();
    for service in maintenance::HEALTH_SERVICES {
        health
            .set_service_status(service, tonic_health::ServingStatus::NotServing)
            .await;
    }
    // "liveness" answers SERVING while the process runs, whatever the store does: a
    // liveness probe on it restarts a stuck server, never one that waits for Redis.
    health
        .set_service_status(LIVENESS, tonic_health::ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(taskmanager_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let stop = worker::Stop::default();
    let mut workers = worker::spawn(
        store.clone(),
        hub.clone(),
        registry.clone(),
        settings.workers.clone(),
        stop.clone(),
        metrics.clone(),
    );
    let upkeep_stop = CancellationToken::new();
    let refused = CancellationToken::new();
    let mut upkeep = maintenance::spawn(
        store.clone(),
        hub.clone(),
        maintenance::Upkeep {
            reaper_interval: settings.reaper_interval,
            renew_interval: settings.workers.renew_interval,
            command_timeout: settings.redis.command_timeout,
            allow_evicting_policy: settings.allow_evicting_policy,
        },
        health,
        metrics.clone(),
        upkeep_stop.clone(),
        refused.clone(),
    );

    let status_layer = statuses::StatusLayer::new(metrics.clone(), settings.traces.is_some());
    let service = api::TaskManagerService::new(
        store,
        hub.clone(),
        registry,
        settings.limits.clone(),
        metrics,
        shutdown.clone(),
    );
    // HTTP/2 streams per connection are bounded too, so that one connection cannot hold
    // more than the server's limits allow (past them, requests get RESOURCE_EXHAUSTED).
    let per_connection = settings
        .limits
        .max_streams
        .saturating_add(settings.limits.max_in_flight)
        .saturating_add(16);
    let grpc = tonic::transport::Server::builder()
        .max_concurrent_streams(u32::try_from(per_connection).unwrap_or(u32::MAX))
        .layer(status_layer)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            TaskManagerServer::new(service)
                .max_decoding_message_size(settings.max_message_bytes)
                .max_encoding_message_size(settings.max_message_bytes),
        )
        .serve_with_incoming_shutdown(incoming(listener), shutdown.clone().cancelled_owned());
    let grpc = tokio::spawn(grpc);

    tokio::select! {
        () = shutdown.cancelled() => {}
        () = refused.cancelled() => shutdown.cancel(),
    }
    info!(grace = ?settings.shutdown_grace, "Shutting down: no new tasks will be taken.");
    stop.claiming.cancel();
    hub.wake_workers();
    let drain = async { while workers.join_next().await.is_some() {} };
    if tokio::time::timeout(settings.shutdown_grace, drain)
        .await
        .is_err()
    {
        warn!("Grace period over: handing running tasks back to the queue.");
        stop.running.cancel();
        while workers.join_next().await.is_some() {}
    }
    upkeep_stop.cancel();
    while upkeep.join_next().await.is_some() {}
    metrics_stop.cancel();
    match tokio::time::timeout(Duration::from_secs(5), grpc).await {
        Ok(Ok(result)) => result?,
        Ok(Err(error)) => warn!(%error, "The gRPC server task failed."),
        Err(_) => warn!("Connections did not close within 5s; exiting anyway."),
    }
    info!("Stopped.");
    if refused.is_cancelled() {
        return Err(ServeError::Refused);
    }
    Ok(())
}

/// Accepted connections with Nagle's algorithm off: small gRPC frames (a status, an id) go
/// out at once instead of waiting up to 40 ms for a delayed ACK.
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|stream| {
        if let Ok(stream) = &stream
            && let Err(error) = stream.set_nodelay(true)
        {
            warn!(%error, "Cannot disable Nagle's algorithm on a connection.");
        }
        stream
    })
}

/// A server started in the background, for tests and embedding.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The address of its metrics endpoint.
    pub metrics_addr: SocketAddr,
    /// Fire to shut it down gracefully.
    pub shutdown: CancellationToken,
    /// Completes when it has stopped.
    pub handle: tokio::task::JoinHandle<Result<(), ServeError>>,
}

/// Starts a server on `listen` (port 0 picks a free port) over `store`, with its metrics
/// endpoint on a free port of the same host.
pub async fn start(
    settings: Settings,
    store: Arc<dyn Store>,
    listen: SocketAddr,
) -> std::io::Result<Running> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let metrics_listener = TcpListener::bind(SocketAddr::new(listen.ip(), 0)).await?;
    let metrics_addr = metrics_listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(serve(
        settings,
        store,
        listener,
        Some(metrics_listener),
        shutdown.clone(),
    ));
    Ok(Running {
        addr,
        metrics_addr,
        shutdown,
        handle,
    })
}
