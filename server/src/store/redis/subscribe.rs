//! The event subscriptions of one process: one channel on a standalone Redis, one sharded
//! channel per shard on a Redis Cluster (`SSUBSCRIBE`: each shard's events stay on the nodes
//! that hold its slot, instead of being broadcast to every node). Every (re)subscription
//! announces `Resync`, so that streams and workers re-read what they may have missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::{Client, ProtocolVersion, PushInfo, PushKind, RedisError, Value};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tracing::{info, warn};

use super::parse_notices;
use crate::task::Notice;

/// How often a subscription connection is PINGed to prove it alive.
const PING_EVERY: Duration = Duration::from_secs(1);

/// Keeps one subscription to the events channels (the shared one and this process's own)
/// for the whole process. The connection is
/// PINGed every second; one that does not answer within the command timeout is dropped and
/// made again. Every (re)subscription announces `Resync`, so that streams and workers
/// re-read what they may have missed while it was down. `subscribed` tells whether the
/// subscription is up, for readiness.
pub(super) async fn standalone(
    client: Client,
    channels: Vec<String>,
    notices: broadcast::Sender<Notice>,
    subscribed: Arc<AtomicBool>,
    (connect_timeout, command_timeout): (Duration, Duration),
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let pubsub = tokio::time::timeout(connect_timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channels).await?;
            Ok::<_, RedisError>(pubsub)
        })
        .await;
        match pubsub {
            Ok(Ok(pubsub)) => {
                subscribed.store(true, Ordering::Relaxed);
                info!("Subscribed to task events.");
                let _ = notices.send(Notice::Resync);
                backoff = Duration::from_millis(100);
                let (mut sink, mut messages) = pubsub.split();
                let mut pings = tokio::time::interval(PING_EVERY);
                pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                for notice in parse_notices(message.get_payload_bytes()) {
                                    let _ = notices.send(notice);
                                }
                            }
                            None => {
                                warn!("Lost the task event subscription; resubscribing.");
                                break;
                            }
                        },
                        _ = pings.tick() => {
                            let pong = tokio::time::timeout(
                                command_timeout,
                                sink.ping::<redis::Value>(),
                            )
                            .await;
                            if !matches!(pong, Ok(Ok(_))) {
                                warn!("The task event subscription stopped answering; \
                                       resubscribing.");
                                break;
                            }
                        }
                    }
                }
                subscribed.store(false, Ordering::Relaxed);
            }
            Ok(Err(error)) => warn!(%error, "Cannot subscribe to task events; retrying."),
            Err(_) => warn!("Timed out subscribing to task events; retrying."),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Keeps one sharded subscription per shard channel (each shard's shared channel and this
/// process's own), on a cluster connection that follows
/// the slots to their masters (and, after a failover, to the promoted replica: the client
/// subscribes again there, which announces `Resync`). The connection is PINGed every
/// second; one that does not answer within the command timeout is made again.
pub(super) async fn cluster(
    nodes: Vec<String>,
    channels: Vec<String>,
    notices: broadcast::Sender<Notice>,
    subscribed: Arc<AtomicBool>,
    (connect_timeout, command_timeout): (Duration, Duration),
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let (pushes, mut received) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
        let made = tokio::time::timeout(connect_timeout, async {
            let client = ClusterClient::builder(nodes.iter().map(String::as_str))
                .connection_timeout(connect_timeout)
                .response_timeout(command_timeout)
                .use_protocol(ProtocolVersion::RESP3)
                .push_sender(pushes)
                .build()?;
            let mut conn = client.get_async_connection().await?;
            for channel in &channels {
                conn.ssubscribe(channel).await?;
            }
            Ok::<_, RedisError>(conn)
        })
        .await;
        match made {
            Ok(Ok(mut conn)) => {
                subscribed.store(true, Ordering::Relaxed);
                info!(shards = channels.len(), "Subscribed to task events.");
                let _ = notices.send(Notice::Resync);
                backoff = Duration::from_millis(100);
                // The confirmations of the subscriptions just made; any later one is a
                // subscription made again by the client (a reconnection, a failover).
                let mut initial = channels.len();
                let mut pings = tokio::time::interval(PING_EVERY);
                pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        push = received.recv() => match push {
                            Some(PushInfo { kind: PushKind::SMessage, data }) => {
                                if let Some(Value::BulkString(payload)) = data.get(1) {
                                    for notice in parse_notices(payload) {
                                        let _ = notices.send(notice);
                                    }
                                }
                            }
                            Some(PushInfo { kind: PushKind::SSubscribe, .. }) => {
                                if initial > 0 {
                                    initial -= 1;
                                } else {
                                    info!("Subscribed to task events again.");
                                    let _ = notices.send(Notice::Resync);
                                }
                            }
                            Some(PushInfo { kind: PushKind::SUnsubscribe, .. }) => {
                                // Never asked for: the node gave the slot away (resharding)
                                // and dropped its subscribers. Subscribe again where the
                                // slots are now; the resync covers what passed meanwhile.
                                warn!("A shard's slot moved; resubscribing to task events.");
                                break;
                            }
                            Some(PushInfo { kind: PushKind::Disconnection, .. }) => {
                                // The node may be gone for good (a failed master): subscribe
                                // again from scratch, where the slots are now.
                                warn!("A task event subscription was disconnected; \
                                       resubscribing.");
                                break;
                            }
                            Some(_) => {}
                            None => {
                                warn!("Lost the task event subscriptions; resubscribing.");
                                break;
                            }
                        },
                        _ = pings.tick() => {
                            let pong = tokio::time::timeout(
                                command_timeout,
                                redis::cmd("PING").query_async::<Value>(&mut conn),
                            )
                            .await;
                            if !matches!(pong, Ok(Ok(_))) {
                                warn!("The task event subscriptions stopped answering; \
                                       resubscribing.");
                                break;
                            }
                        }
                    }
                }
                subscribed.store(false, Ordering::Relaxed);
            }
            Ok(Err(error)) => warn!(%error, "Cannot subscribe to task events; retrying."),
            Err(_) => warn!("Timed out subscribing to task events; retrying."),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
