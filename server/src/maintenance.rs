//! Background upkeep of one server process: taking back expired leases, promoting due delayed
//! tasks, trimming the dead set, and reporting health from the store's reachability.
//! Every server runs these; each step is an atomic store operation, so replicas doing the
//! same work at once is safe.
//!
//! Readiness: the server reports SERVING while a PING to the store answers within the
//! command timeout *and* the store's event subscription is up (it is PINGed every second
//! on its own connection). Both are checked continuously, so readiness turns NOT_SERVING at
//! most [`HEALTH_EVERY`] + `redis.command_timeout` after the store stops answering (and at
//! most 1 s + `redis.command_timeout` after the subscription does).
//!
//! Leases are measured in the store's clock, which runs on while the store is unreachable.
//! So that leases which ran out during an outage are not taken from live workers, the reaper
//! runs only once the store has answered continuously for one lease renewal interval plus
//! one command timeout: by then every live worker has renewed its leases.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{error, info, warn};

use crate::hub::Hub;
use crate::metrics::{Metrics, inc};
use crate::store::Store;

/// Tasks handled per store call.
const BATCH: usize = 100;
/// Longest wait between looks at the delayed set. Tasks put off anywhere announce when they
/// come due, so this only bounds the cost of a lost announcement (and clock differences).
const PROMOTE_IDLE: Duration = Duration::from_secs(5);
/// Wait before looking again when the store did not answer.
const PROMOTE_RETRY: Duration = Duration::from_millis(500);
/// How often the dead set is trimmed.
const TRIM_EVERY: Duration = Duration::from_secs(60);
/// How often the store's reachability is checked.
pub(crate) const HEALTH_EVERY: Duration = Duration::from_millis(500);

/// The gRPC service names whose health is reported.
pub(crate) const HEALTH_SERVICES: [&str; 2] = ["", "proto.TaskManager"];

/// What the upkeep loops need to know.
#[derive(Clone, Debug)]
pub(crate) struct Upkeep {
    /// How often expired leases are looked for.
    pub(crate) reaper_interval: Duration,
    /// How often workers renew their leases.
    pub(crate) renew_interval: Duration,
    /// Timeout of one store command.
    pub(crate) command_timeout: Duration,
    /// Run on a store whose eviction policy may delete live tasks.
    pub(crate) allow_evicting_policy: bool,
}

/// Since when the store has answered without interruption, shared by the health loop and
/// the reaper.
#[derive(Default)]
struct Reachable(std::sync::Mutex<Option<Instant>>);

impl Reachable {
    fn set(&self, up: bool) {
        let mut since = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (up, *since) {
            (true, None) => *since = Some(Instant::now()),
            (false, _) => *since = None,
            (true, Some(_)) => {}
        }
    }

    /// True when the store has answered for at least `period`.
    fn for_at_least(&self, period: Duration) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|since| since.elapsed() >= period)
    }
}

/// Starts the loops; they end when `stop` fires. `refuse` fires (with the reason logged)
/// when the store must not be used: its eviction policy may delete live tasks.
pub(crate) fn spawn(
    store: Arc<dyn Store>,
    hub: Hub,
    upkeep: Upkeep,
    health: HealthReporter,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    refuse: CancellationToken,
) -> JoinSet<()> {
    let mut loops = JoinSet::new();
    let reachable = Arc::new(Reachable::default());
    let settle = upkeep.renew_interval + upkeep.command_timeout;
    loops.spawn(every(stop.clone(), upkeep.reaper_interval, {
        let store = store.clone();
        let metrics = metrics.clone();
        let reachable = reachable.clone();
        move || {
            let store = store.clone();
            let metrics = metrics.clone();
            let settled = reachable.for_at_least(settle);
            async move {
                if !settled {
                    return;
                }
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
                    Ok(promotion) => promotion.next_due.unwrap_or(PROMOTE_IDLE).min(PROMOTE_IDLE),
                    Err(_) => PROMOTE_RETRY,
                };
                tokio::select! {
                    () = hub.promote_after(Instant::now() + wait) => {}
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
        let mut admitted = false;
        loop {
            let answered = matches!(
                tokio::time::timeout(upkeep.command_timeout, store.ping()).await,
                Ok(Ok(()))
            );
            reachable.set(answered);
            let subscribed = store.subscribed();
            metrics.store_up.store(answered, Ordering::Relaxed);
            metrics.subscription_up.store(subscribed, Ordering::Relaxed);
            if answered && !admitted {
                match store.eviction_policy().await {
                    Ok(Some(policy)) if policy != "noeviction" && !upkeep.allow_evicting_policy => {
                        error!(
                            policy,
                            "Redis's maxmemory-policy is {policy:?}: when memory runs out it \
                             deletes keys, live tasks included. Set `maxmemory-policy \
                             noeviction` on Redis (the managed Redis has it), or set \
                             redis.allow_evicting_policy: true in stack.yaml to run anyway."
                        );
                        refuse.cancel();
                        break;
                    }
                    Ok(_) => match store.layout_conflict().await {
                        Ok(Some(reason)) => {
                            error!("{reason}");
                            refuse.cancel();
                            break;
                        }
                        Ok(None) => admitted = true,
                        Err(error) => warn!(%error, "Cannot read the store's layout yet."),
                    },
                    Err(error) => warn!(%error, "Cannot read the store's eviction policy yet."),
                }
            }
            let ok = answered && subscribed && admitted;
            metrics.ready.store(ok, Ordering::Relaxed);
            if serving != Some(ok) {
                if ok {
                    info!("The task store is reachable: serving.");
                } else if !answered {
                    warn!("The task store is unreachable: not serving.");
                } else if !subscribed {
                    warn!("The task store's event subscription is down: not serving.");
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
