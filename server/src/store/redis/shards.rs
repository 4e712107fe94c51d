//! The queue's shards: one on a standalone Redis, several on a Redis Cluster, each a queue of
//! its own (pending, delayed, leases, dead, events) whose keys, with those of its tasks, share
//! one hash tag and so one slot.
//!
//! A task belongs to the shard its id names ([`Shards::of_id`]); a task with an idempotency
//! key to the shard of its key, so that the key is looked up where the task would be; the
//! store picks ids that name the shard it places a task in.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The keys of the queue that every script declares, in this order (`lua/common.lua`).
/// `events` names a channel and is never stored: while a shard's slot migrates, Redis
/// refuses a script with a declared key missing on the node (ASK on the source, TRYAGAIN on
/// the target), so no step runs on a slot half moved. Keep a never-stored key declared.
pub(super) const QUEUE_KEYS: [&str; 8] = [
    "tasks", "leases", "delayed", "dead", "enqueued", "events", "alive", "resumed",
];

/// Slots of a Redis Cluster.
const SLOTS: u32 = 16384;

/// One queue.
pub(super) struct Shard {
    /// The prefix of all its keys: the configured prefix, and on a cluster its hash tag.
    pub(super) prefix: String,
    /// [`QUEUE_KEYS`] under the prefix, as every script declares them.
    pub(super) queue_keys: [String; 8],
    /// The slot of all its keys on a cluster.
    pub(super) slot: u16,
    /// Its place among the store's shards.
    pub(super) index: usize,
}

impl Shard {
    fn new(prefix: String, index: usize) -> Self {
        let queue_keys = QUEUE_KEYS.map(|name| format!("{prefix}{name}"));
        let slot = slot(queue_keys[0].as_bytes());
        Self {
            prefix,
            queue_keys,
            slot,
            index,
        }
    }

    /// The channels a server reads: the one every server reads (events that wake workers,
    /// notices) and its own (the events of the tasks it streams), in the shard's slot.
    pub(super) fn channels(&self, server: &str) -> Vec<String> {
        vec![
            self.queue_keys[5].clone(),
            self.key(&format!("events:{server}")),
        ]
    }

    /// The key `name` under its prefix.
    pub(super) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// The shards of one store.
pub(super) struct Shards {
    shards: Vec<Shard>,
    /// Where the next placement and the next claim start, so that they go round.
    next: AtomicUsize,
}

impl Shards {
    /// One shard whose keys are the prefix and the original names (`<prefix>tasks`).
    pub(super) fn standalone(prefix: &str) -> Self {
        Self {
            shards: vec![Shard::new(prefix.to_owned(), 0)],
            next: AtomicUsize::new(0),
        }
    }

    /// `count` shards whose keys are `<prefix>{<tag>}tasks`, ...: the tags are chosen so
    /// that shard `s` lies in the `s`-th of `count` equal ranges of slots, which spreads the
    /// shards over the masters of a cluster whose masters hold equal ranges.
    pub(super) fn cluster(prefix: &str, count: usize) -> Self {
        let count = count.max(1);
        let shards = (0..count)
            .map(|s| Shard::new(format!("{prefix}{{{}}}", tag_in_range(s, count)), s))
            .collect();
        Self {
            shards,
            next: AtomicUsize::new(0),
        }
    }

    /// How many there are.
    pub(super) fn len(&self) -> usize {
        self.shards.len()
    }

    /// Every shard, in order.
    pub(super) fn all(&self) -> &[Shard] {
        &self.shards
    }

    /// Every shard, starting at a different one on each call.
    pub(super) fn round(&self) -> impl Iterator<Item = &Shard> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.shards.len();
        (0..n).map(move |i| &self.shards[(start + i) % n])
    }

    /// The shard of the task `id`.
    pub(super) fn of_id(&self, id: &str) -> &Shard {
        &self.shards[self.index_of(id)]
    }

    /// The index of the shard a name (a task id, an idempotency key) falls in.
    pub(super) fn index_of(&self, name: &str) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        (fnv1a(name.as_bytes()) % self.shards.len() as u64) as usize
    }

    /// The index of the shard for the next task without an idempotency key.
    pub(super) fn next_index(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len()
    }
}

/// 64-bit FNV-1a: a stable hash of a name, the same in every process and version.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The slot Redis Cluster gives a key: CRC16 (XMODEM) of its hash tag, or of the key.
pub(super) fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let close = key[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &key[open + 1..open + 1 + close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS as u16
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The first tag `<s>` or `<s>.<k>` whose slot lies in the `s`-th of `count` equal ranges.
fn tag_in_range(s: usize, count: usize) -> String {
    let low = (s as u64 * u64::from(SLOTS) / count as u64) as u16;
    let high = ((s as u64 + 1) * u64::from(SLOTS) / count as u64) as u16;
    let fits = |tag: &str| (low..high).contains(&slot(tag.as_bytes()));
    if fits(&s.to_string()) {
        return s.to_string();
    }
    (0u64..)
        .map(|k| format!("{s}.{k}"))
        .find(|tag| fits(tag))
        .expect("some tag falls in every range of slots")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_cluster_slots() {
        // The examples of the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    #[test]
    fn shards_spread_over_the_slots_and_keep_their_tasks() {
        let shards = Shards::cluster("tm:", 6);
        for (s, shard) in shards.all().iter().enumerate() {
            let slot = u32::from(slot(shard.queue_keys[0].as_bytes()));
            assert!(slot * 6 / SLOTS == s as u32, "shard {s} at slot {slot}");
            for key in &shard.queue_keys {
                assert_eq!(super::slot(key.as_bytes()), slot as u16, "{key}");
            }
            assert_eq!(super::slot(shard.key("task:x").as_bytes()), slot as u16);
        }
        let standalone = Shards::standalone("tm:");
        assert_eq!(standalone.all()[0].queue_keys[0], "tm:tasks");
        assert_eq!(standalone.index_of("anything"), 0);
        let placed: std::collections::BTreeSet<usize> = (0..60)
            .map(|i| shards.index_of(&format!("id-{i}")))
            .collect();
        assert_eq!(placed.len(), 6, "ids spread over every shard");
    }
}
