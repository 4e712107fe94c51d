//! The command connection: to one Redis (a connection manager, replaced when it stops
//! answering), or to a Redis Cluster (a cluster connection, made on first use and again
//! after it stopped answering).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisFuture, Value};
use tracing::warn;

use super::map_err;
use crate::store::{Result, StoreError};

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
        conn: tokio::sync::Mutex<Option<ClusterConnection>>,
        connect_timeout: Duration,
    },
}

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
            conn: tokio::sync::Mutex::new(None),
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
                let mut slot = conn.lock().await;
                if let Some(conn) = slot.as_ref() {
                    return Ok(Conn::Cluster(conn.clone()));
                }
                let made = tokio::time::timeout(*connect_timeout, client.get_async_connection())
                    .await
                    .map_err(|_| {
                        StoreError::Unavailable("timed out connecting to the Redis Cluster".into())
                    })?
                    .map_err(map_err)?;
                *slot = Some(made.clone());
                Ok(Conn::Cluster(made))
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
            Self::Cluster { conn, .. } => *conn.lock().await = None,
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
