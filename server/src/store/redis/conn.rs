//! The command connection: to one Redis (a connection manager, replaced when it stops
//! answering), or to a Redis Cluster (a cluster connection, made on first use and again
//! after it stopped answering).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisFuture, Value};
use tracing::warn;

use super::map_err;
use crate::store::{Result, StoreError};

/// The shortest life of a cluster connection before an unreachable node remakes it.
const REMAKE_AFTER: Duration = Duration::from_secs(1);

/// Where commands go.
pub(super) enum Link {
    /// One Redis.
    Standalone {
        client: Client,
        config: ConnectionManagerConfig,
        conn: ArcSwap<ConnectionManager>,
    },
    /// A Redis Cluster.
    Cluster {
        client: ClusterClient,
        /// The connection and when it was made, or when making one last failed.
        conn: std::sync::Mutex<Cached>,
        connect_timeout: Duration,
    },
}

/// The cluster connection, or why there is none.
pub(super) enum Cached {
    /// Not made yet, or dropped to be made again.
    None,
    /// Made at that instant.
    Made(ClusterConnection, Instant),
    /// Making one failed at that instant: callers fail fast until [`RETRY_AFTER`] has
    /// passed, instead of each trying again in turn.
    Failed(Instant),
    /// One is being made (since then): other callers fail fast meanwhile. The lock is never
    /// held while connecting, so a slow connect holds up no one.
    Connecting(Instant),
}

/// Puts the cache back to `None` if a connect is abandoned (its caller's deadline passed).
struct Abandon<'a>(&'a std::sync::Mutex<Cached>, bool);

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if !self.1 {
            let mut slot = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if matches!(*slot, Cached::Connecting(_)) {
                *slot = Cached::None;
            }
        }
    }
}

/// How long after a failed attempt to connect to a cluster the next one is made.
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// A connection to run one command or script on.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Link {
    /// A link to one Redis; nothing is dialled yet.
    pub(super) fn standalone(
        url: &str,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self> {
        let client = Client::open(url)
            .map_err(|error| StoreError::Unavailable(format!("invalid Redis address: {error}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(map_err)?;
        Ok(Self::Standalone {
            client,
            config,
            conn: ArcSwap::from_pointee(conn),
        })
    }

    /// A link to the Redis Cluster that `nodes` (seed addresses) belong to; nothing is
    /// dialled yet.
    pub(super) fn cluster(
        nodes: &[String],
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self> {
        let client = ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(connect_timeout)
            .response_timeout(command_timeout)
            .retries(2)
            .build()
            .map_err(|error| {
                StoreError::Unavailable(format!("invalid Redis Cluster addresses: {error}"))
            })?;
        Ok(Self::Cluster {
            client,
            conn: std::sync::Mutex::new(Cached::None),
            connect_timeout,
        })
    }

    /// The connection to use now.
    pub(super) async fn conn(&self) -> Result<Conn> {
        match self {
            Self::Standalone { conn, .. } => {
                Ok(Conn::Single(ConnectionManager::clone(&conn.load())))
            }
            Self::Cluster {
                client,
                conn,
                connect_timeout,
            } => {
                {
                    let mut slot = conn
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    match &*slot {
                        Cached::Made(conn, _) => return Ok(Conn::Cluster(conn.clone())),
                        Cached::Failed(at) if at.elapsed() < RETRY_AFTER => {
                            return Err(StoreError::Unavailable(
                                "cannot connect to the Redis Cluster (retrying shortly)".into(),
                            ));
                        }
                        Cached::Connecting(since) if since.elapsed() < *connect_timeout => {
                            return Err(StoreError::Unavailable(
                                "connecting to the Redis Cluster".into(),
                            ));
                        }
                        _ => *slot = Cached::Connecting(Instant::now()),
                    }
                }
                let mut abandon = Abandon(conn, false);
                let made = tokio::time::timeout(*connect_timeout, client.get_async_connection())
                    .await
                    .map_err(|_| {
                        StoreError::Unavailable("timed out connecting to the Redis Cluster".into())
                    })
                    .and_then(|made| made.map_err(map_err));
                abandon.1 = true;
                let mut slot = conn
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match made {
                    Ok(made) => {
                        *slot = Cached::Made(made.clone(), Instant::now());
                        Ok(Conn::Cluster(made))
                    }
                    Err(error) => {
                        *slot = Cached::Failed(Instant::now());
                        Err(error)
                    }
                }
            }
        }
    }

    /// Drops the connection for a fresh one: a connection that stops answering without
    /// dropping is not replaced by the client itself.
    pub(super) async fn reconnect(&self) {
        warn!("Redis stopped answering on the command connection; reconnecting.");
        match self {
            Self::Standalone {
                client,
                config,
                conn,
            } => match ConnectionManager::new_lazy_with_config(client.clone(), config.clone()) {
                Ok(fresh) => conn.store(Arc::new(fresh)),
                Err(error) => warn!(%error, "Cannot make a new Redis connection."),
            },
            Self::Cluster { conn, .. } => {
                *conn
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Cached::None;
            }
        }
    }

    /// Notes that a command found Redis unavailable. The cluster client retries a node that
    /// refuses connections without asking the cluster where its slots went, so after a
    /// failover it would keep dialling the dead master: the connection is made again (at
    /// most once a second), which reads the slots afresh from any reachable node.
    pub(super) async fn unavailable(&self) {
        if let Self::Cluster { conn, .. } = self {
            let mut slot = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if matches!(&*slot, Cached::Made(_, made) if made.elapsed() >= REMAKE_AFTER) {
                warn!("A Redis Cluster node cannot be reached; reading the slots again.");
                *slot = Cached::None;
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}
