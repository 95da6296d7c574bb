//! An in-memory LRU cache under a byte cap, with a time to live: the result, intermediate and
//! thumbnail levels. Values are shared (`Arc`), so a hit costs no copy, and an evicted value
//! still in use stays alive until its user drops it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;

use super::{Counters, Key};

struct Entry<V> {
    value: Arc<V>,
    bytes: u64,
    inserted: Instant,
}

/// LRU map from [`Key`] to shared values, holding at most `cap_bytes`.
pub struct MemoryCache<V> {
    map: LruCache<Key, Entry<V>>,
    cap_bytes: u64,
    ttl: Option<Duration>,
    bytes: u64,
    counters: Arc<Counters>,
}

impl<V> MemoryCache<V> {
    /// A cache of at most `cap_bytes` whose entries expire `ttl` after insertion (`None`:
    /// never). A cap of 0 disables it: every lookup misses and nothing is kept.
    pub fn new(cap_bytes: u64, ttl: Option<Duration>) -> Self {
        Self {
            map: LruCache::unbounded(),
            cap_bytes,
            ttl,
            bytes: 0,
            counters: Arc::new(Counters::default()),
        }
    }

    /// Its counters (shared, for the UI).
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Its cap in bytes.
    pub fn cap_bytes(&self) -> u64 {
        self.cap_bytes
    }

    /// Whether it keeps anything.
    pub fn enabled(&self) -> bool {
        self.cap_bytes > 0
    }

    /// The value under `key`, if present and not expired (counted as a hit or a miss).
    pub fn get(&mut self, key: Key) -> Option<Arc<V>> {
        let found = self.lookup(key);
        match found {
            Some(_) => self.counters.hit(),
            None => self.counters.miss(),
        }
        found
    }

    /// Like [`get`](Self::get), without counting: for probing several candidate keys.
    pub fn lookup(&mut self, key: Key) -> Option<Arc<V>> {
        let expired = match self.map.get(&key) {
            None => return None,
            Some(e) => self.ttl.is_some_and(|ttl| e.inserted.elapsed() > ttl),
        };
        if expired {
            if let Some(e) = self.map.pop(&key) {
                self.bytes -= e.bytes;
                self.counters.evicted(1);
                self.publish();
            }
            return None;
        }
        self.map.get(&key).map(|e| e.value.clone())
    }

    /// Whether `key` is present (no counting, no LRU update).
    pub fn contains(&self, key: Key) -> bool {
        self.map.contains(&key)
    }

    /// Keep `value` (of `bytes`) under `key`, evicting the least recently used entries to
    /// stay under the cap. A value larger than the whole cap is not kept.
    pub fn insert(&mut self, key: Key, value: Arc<V>, bytes: u64) {
        if bytes > self.cap_bytes {
            return;
        }
        if let Some(old) = self.map.pop(&key) {
            self.bytes -= old.bytes;
        }
        let mut evicted = 0;
        while self.bytes + bytes > self.cap_bytes {
            let Some((_, e)) = self.map.pop_lru() else {
                break;
            };
            self.bytes -= e.bytes;
            evicted += 1;
        }
        self.counters.evicted(evicted);
        self.map.put(
            key,
            Entry {
                value,
                bytes,
                inserted: Instant::now(),
            },
        );
        self.bytes += bytes;
        self.publish();
    }

    /// Drop everything.
    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
        self.publish();
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn publish(&self) {
        self.counters.set_size(self.map.len() as u64, self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u128) -> Key {
        Key(n)
    }

    #[test]
    fn evicts_least_recently_used_to_stay_under_the_cap() {
        let mut c = MemoryCache::new(100, None);
        c.insert(k(1), Arc::new(1), 40);
        c.insert(k(2), Arc::new(2), 40);
        assert_eq!(c.get(k(1)).as_deref(), Some(&1)); // 1 is now the most recent
        c.insert(k(3), Arc::new(3), 40); // evicts 2
        assert!(c.get(k(2)).is_none());
        assert_eq!(c.get(k(1)).as_deref(), Some(&1));
        assert_eq!(c.get(k(3)).as_deref(), Some(&3));
        assert_eq!(c.bytes(), 80);
        c.insert(k(4), Arc::new(4), 101); // larger than the cap: not kept
        assert!(c.get(k(4)).is_none());
        let s = c.counters().snapshot("result");
        assert_eq!(
            (s.hits, s.misses, s.evictions, s.entries, s.bytes),
            (3, 2, 1, 2, 80)
        );
        assert_eq!(s.hit_rate(), Some(0.6));
    }

    #[test]
    fn expired_entries_are_misses_and_are_dropped() {
        let mut c = MemoryCache::new(100, Some(Duration::ZERO));
        c.insert(k(1), Arc::new(1), 10);
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.get(k(1)).is_none());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn a_zero_cap_keeps_nothing() {
        let mut c = MemoryCache::new(0, None);
        assert!(!c.enabled());
        c.insert(k(1), Arc::new(1), 1);
        assert!(c.get(k(1)).is_none());
    }
}
