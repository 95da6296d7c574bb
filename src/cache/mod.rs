//! Multi-level caches for previews, all content-addressed (what identifies a result is the
//! source file's content hash, the chain prefix that made it, the pyramid level, the quality
//! preset and the app version; never a path or a pointer):
//!
//! | level | holds | lives |
//! |---|---|---|
//! | result ([`memory::MemoryCache`]) | finished preview frames | memory, LRU under a byte cap, `cache_ttl` |
//! | intermediate | a chain prefix's output, so editing op k re-runs only k..n | memory, LRU |
//! | thumbnail | decoded pyramids of recently opened images | memory, LRU |
//! | disk ([`disk::DiskCache`]) | pyramid levels and settled previews | the cache folder, `persistent_cache_size`, `cache_ttl` |
//!
//! Every level counts hits, misses, entries and bytes ([`Counters`]); the app's profiler panel
//! shows them and `opossum cache stats` prints the disk cache's (with hit counts kept across
//! runs). The render-side wiring is in [`crate::engine::cached`].

pub mod disk;
pub mod key;
pub mod memory;

use std::sync::atomic::{AtomicU64, Ordering};

pub use key::Key;

/// `cache_ttl` (seconds) as a memory cache's time to live: `None` (never expires) for 0.
pub fn ttl(seconds: u64) -> Option<std::time::Duration> {
    (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
}

/// Whether an entry last used (or inserted) `age` ago has outlived `ttl`; a zero `ttl`
/// (`cache_ttl = 0`) never expires.
pub fn expired(age: std::time::Duration, ttl: std::time::Duration) -> bool {
    !ttl.is_zero() && age > ttl
}

/// Live counters of one cache level, shared between the worker that uses it and the UI.
#[derive(Debug, Default)]
pub struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    entries: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn evicted(&self, n: u64) {
        self.evictions.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_size(&self, entries: u64, bytes: u64) {
        self.entries.store(entries, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    /// A snapshot under `name`.
    pub fn snapshot(&self, name: &'static str) -> LevelStats {
        LevelStats {
            name,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// What one cache level did so far and holds now.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LevelStats {
    /// Level name (`result`, `intermediate`, `thumbnail`, `disk`).
    pub name: &'static str,
    /// Lookups answered.
    pub hits: u64,
    /// Lookups not answered (absent, expired or, on disk, corrupt).
    pub misses: u64,
    /// Entries dropped to stay under the cap or past their TTL.
    pub evictions: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now.
    pub bytes: u64,
}

impl LevelStats {
    /// Hits per lookup, if there were lookups.
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}
