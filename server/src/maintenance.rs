//! Background upkeep of one server process: taking back expired leases, promoting due delayed
//! tasks, trimming the dead set, and reporting health from the store's reachability.
//! Every server runs these; each step is an atomic store operation, so replicas doing the
//! same work at once is safe.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{info, warn};

use crate::metrics::{Metrics, inc};
use crate::store::Store;

/// Tasks handled per store call.
const BATCH: usize = 100;
/// Longest wait between looks at the delayed set.
const PROMOTE_EVERY: Duration = Duration::from_millis(100);
/// How often the dead set is trimmed.
const TRIM_EVERY: Duration = Duration::from_secs(60);
/// How often the store's reachability is checked.
const HEALTH_EVERY: Duration = Duration::from_millis(500);

/// The gRPC service names whose health is reported.
pub(crate) const HEALTH_SERVICES: [&str; 2] = ["", "proto.TaskManager"];

/// Starts the loops; they end when `stop` fires.
pub(crate) fn spawn(
    store: Arc<dyn Store>,
    reaper_interval: Duration,
    command_timeout: Duration,
    health: HealthReporter,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> JoinSet<()> {
    let mut loops = JoinSet::new();
    loops.spawn(every(stop.clone(), reaper_interval, {
        let store = store.clone();
        let metrics = metrics.clone();
        move || {
            let store = store.clone();
            let metrics = metrics.clone();
            async move {
                loop {
                    match store.reap_expired(BATCH).await {
                        Ok(0) => break,
                        Ok(count) => {
                            for _ in 0..count {
                                inc(&metrics.reaped);
                            }
                            warn!(count, "Took back tasks whose lease expired.");
                            if count < BATCH {
                                break;
                            }
                        }
                        Err(error) => {
                            warn!(%error, "Cannot look for expired leases.");
                            break;
                        }
                    }
                }
            }
        }
    }));
    loops.spawn({
        let store = store.clone();
        let stop = stop.clone();
        async move {
            loop {
                let wait = match store.promote_due(BATCH).await {
                    Ok(promotion) if promotion.moved == BATCH => Duration::ZERO,
                    Ok(promotion) => promotion
                        .next_due
                        .unwrap_or(PROMOTE_EVERY)
                        .min(PROMOTE_EVERY),
                    Err(_) => PROMOTE_EVERY,
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
    });
    loops.spawn(every(stop.clone(), TRIM_EVERY, {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move {
                if let Err(error) = store.trim_dead().await {
                    warn!(%error, "Cannot trim the dead set.");
                }
            }
        }
    }));
    loops.spawn(async move {
        let mut serving: Option<bool> = None;
        loop {
            let ok = matches!(
                tokio::time::timeout(command_timeout, store.ping()).await,
                Ok(Ok(()))
            );
            metrics
                .store_up
                .store(ok, std::sync::atomic::Ordering::Relaxed);
            if serving != Some(ok) {
                if ok {
                    info!("The task store is reachable: serving.");
                } else {
                    warn!("The task store is unreachable: not serving.");
                }
                let status = if ok {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                for service in HEALTH_SERVICES {
                    health.set_service_status(service, status).await;
                }
                serving = Some(ok);
            }
            tokio::select! {
                () = tokio::time::sleep(HEALTH_EVERY) => {}
                () = stop.cancelled() => break,
            }
        }
        for service in HEALTH_SERVICES {
            health
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
    });
    loops
}

/// Runs `step` every `period` until `stop` fires.
async fn every<F, Fut>(stop: CancellationToken, period: Duration, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => step().await,
            () = stop.cancelled() => break,
        }
    }
}
