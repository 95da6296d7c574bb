//! The persistent cache: one file per entry in a folder of the cache directory that
//! `directories` gives (`~/.cache/opossum/previews-v1` on Linux), so previews survive restarts.
//!
//! - Entries are `<kind>-<key>.opc`: a header (magic, kind, key, length, CRC-32) and the
//!   payload. A truncated, corrupt, foreign or renamed entry is a miss (and is removed), never
//!   an error or a wrong result.
//! - Writes go to a temporary file in the same folder and are renamed into place, so readers
//!   (other app instances too) never see half an entry.
//! - Size cap (`persistent_cache_size`) with least-recently-used eviction (a hit refreshes the
//!   file's mtime) and a time to live since last use (`cache_ttl`). Eviction and `clear` only
//!   ever remove regular files with entry names directly inside the folder: no recursion, no
//!   symlinks followed, nothing outside the folder touched.
//! - Hit and miss counts are kept across runs in `stats.json` (merged after each write, after
//!   opening an image and when the cache is dropped; approximate when several processes use the
//!   folder at once).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{Counters, Key};

const MAGIC: &[u8; 8] = b"OPOSSUMC";
const HEADER_BYTES: usize = 8 + 1 + 16 + 8 + 4;
const EXTENSION: &str = "opc";
const TEMP_PREFIX: &str = ".tmp-";
const STATS_FILE: &str = "stats.json";
/// Temporary files older than this are leftovers of a crash and are removed.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// What an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Pyramid levels of a source (the thumbnail cache).
    Thumbnail,
    /// A settled preview frame.
    Result,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Thumbnail, Kind::Result];

    fn tag(self) -> u8 {
        match self {
            Kind::Thumbnail => 1,
            Kind::Result => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Thumbnail => "thumb",
            Kind::Result => "result",
        }
    }
}

/// One entry file found in the folder.
struct Listed {
    path: PathBuf,
    kind: Kind,
    bytes: u64,
    used: SystemTime,
}

/// Hit counts kept across runs.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Persisted {
    /// Lookups answered, all runs.
    pub hits: u64,
    /// Lookups not answered, all runs.
    pub misses: u64,
}

/// What `opossum cache stats` prints.
#[derive(Clone, Debug, Serialize)]
pub struct DiskStats {
    /// The folder.
    pub dir: PathBuf,
    /// Entries now.
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Pyramid entries and bytes.
    pub thumbnails: (u64, u64),
    /// Preview entries and bytes.
    pub results: (u64, u64),
    /// The size cap.
    pub cap_bytes: u64,
    /// Time to live since last use, seconds.
    pub ttl_s: u64,
    /// Seconds since the least recently used entry was used.
    pub oldest_use_s: Option<u64>,
    /// Hits and misses of all runs (this one included).
    pub lookups: Persisted,
}

struct State {
    /// Bytes of entries, as far as this process knows (scanned at open, then tracked).
    bytes: u64,
    entries: u64,
    /// This process's hits and misses not yet merged into `stats.json`.
    unsaved: Persisted,
}

/// The on-disk cache folder.
pub struct DiskCache {
    dir: PathBuf,
    cap_bytes: u64,
    ttl: Duration,
    counters: Arc<Counters>,
    state: Mutex<State>,
    /// Set by [`close`](Self::close): writes are ignored from then on.
    closed: std::sync::atomic::AtomicBool,
    /// Serialises the read-merge-write of `stats.json` within this process.
    stats_lock: Mutex<()>,
}

/// The default folder: `<cache dir>/previews-v1`, where `directories` puts caches (overridden
/// by `OPOSSUM_CACHE_DIR`).
pub fn default_dir() -> Option<PathBuf> {
    let root = match std::env::var_os("OPOSSUM_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => directories::ProjectDirs::from("org", "Opossum", "opossum")?
            .cache_dir()
            .to_path_buf(),
    };
    Some(root.join("previews-v1"))
}

fn entry_name(kind: Kind, key: Key) -> String {
    format!("{}-{key}.{EXTENSION}", kind.name())
}

/// The kind of an entry file name (`None` for anything that is not one).
fn parse_name(name: &str) -> Option<Kind> {
    let stem = name.strip_suffix(&format!(".{EXTENSION}"))?;
    let (kind, key) = stem.split_once('-')?;
    Key::parse(key)?;
    Kind::ALL.into_iter().find(|k| k.name() == kind)
}

fn encode(kind: Kind, key: Key, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(kind.tag());
    out.extend_from_slice(&key.0.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of `bytes` if it is an intact entry for `kind` and `key`.
fn decode(kind: Kind, key: Key, mut bytes: Vec<u8>) -> Option<Vec<u8>> {
    if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC || bytes[8] != kind.tag() {
        return None;
    }
    let word = |at: usize, n: usize| &bytes[at..at + n];
    let stored_key = u128::from_le_bytes(word(9, 16).try_into().ok()?);
    let len = u64::from_le_bytes(word(25, 8).try_into().ok()?);
    let crc = u32::from_le_bytes(word(33, 4).try_into().ok()?);
    if stored_key != key.0 || len != (bytes.len() - HEADER_BYTES) as u64 {
        return None;
    }
    let payload = bytes.split_off(HEADER_BYTES);
    (crc32fast::hash(&payload) == crc).then_some(payload)
}

impl DiskCache {
    /// Open (creating) the cache in `dir`, holding at most `cap_bytes`, entries unused for
    /// `ttl` expiring. Scans the folder once, evicting what is expired or over the cap.
    pub fn open(dir: &Path, cap_bytes: u64, ttl: Duration) -> std::io::Result<DiskCache> {
        std::fs::create_dir_all(dir)?;
        let cache = Self::inspect(dir, cap_bytes, ttl);
        cache.evict(cap_bytes);
        Ok(cache)
    }

    /// The cache in `dir` for reading its statistics or clearing it: creates nothing and
    /// evicts nothing until used.
    pub fn inspect(dir: &Path, cap_bytes: u64, ttl: Duration) -> DiskCache {
        DiskCache {
            dir: dir.to_path_buf(),
            cap_bytes,
            ttl,
            counters: Arc::new(Counters::default()),
            state: Mutex::new(State {
                bytes: 0,
                entries: 0,
                unsaved: Persisted::default(),
            }),
            closed: std::sync::atomic::AtomicBool::new(false),
            stats_lock: Mutex::new(()),
        }
    }

    /// Stop writing: later [`put`](Self::put)s are ignored (threads still holding this cache
    /// after the app replaced or cleared it cannot refill the folder).
    pub fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its counters (this run).
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, hit: bool) {
        let mut state = self.state();
        if hit {
            self.counters.hit();
            state.unsaved.hits += 1;
        } else {
            self.counters.miss();
            state.unsaved.misses += 1;
        }
    }

    /// The payload stored under `kind` and `key`, if present, intact and not expired.
    pub fn get(&self, kind: Kind, key: Key) -> Option<Vec<u8>> {
        puffin::profile_function!();
        let found = self.read(kind, key);
        self.count(found.is_some());
        found
    }

    /// The first of `keys` stored under `kind`, with its payload: one lookup in the counters.
    pub fn get_any(&self, kind: Kind, keys: &[Key]) -> Option<(Key, Vec<u8>)> {
        puffin::profile_function!();
        let found = keys
            .iter()
            .find_map(|&key| self.read(kind, key).map(|p| (key, p)));
        self.count(found.is_some());
        found
    }

    fn read(&self, kind: Kind, key: Key) -> Option<Vec<u8>> {
        let path = self.dir.join(entry_name(kind, key));
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_file() {
            return None;
        }
        let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let expired = used
            .elapsed()
            .is_ok_and(|age| super::expired(age, self.ttl));
        let payload = if expired {
            None
        } else {
            // An unreadable file (permissions, a concurrent replace) is a miss, not damage.
            let bytes = std::fs::read(&path).ok()?;
            decode(kind, key, bytes)
        };
        match payload {
            Some(payload) => {
                // A hit makes the entry the most recently used one.
                if let Ok(file) = std::fs::File::options().write(true).open(&path) {
                    let _ = file.set_modified(SystemTime::now());
                }
                Some(payload)
            }
            None => {
                // Expired or damaged: remove it so it stops taking space.
                if std::fs::remove_file(&path).is_ok() {
                    let mut state = self.state();
                    state.bytes = state.bytes.saturating_sub(meta.len());
                    state.entries = state.entries.saturating_sub(1);
                    self.counters.evicted(1);
                    self.counters.set_size(state.entries, state.bytes);
                }
                None
            }
        }
    }

    /// Store `payload` under `kind` and `key` (atomically; replaces an older entry), then
    /// evict least recently used entries if the folder is over the cap. Errors (a full disk, a
    /// read-only folder) only mean the entry is not kept.
    pub fn put(&self, kind: Kind, key: Key, payload: &[u8]) -> std::io::Result<()> {
        puffin::profile_function!();
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let bytes = encode(kind, key, payload);
        // An entry the eviction below would remove at once (and everything with it) is not kept.
        if bytes.len() as u64 > self.eviction_target() {
            return Ok(());
        }
        let path = self.dir.join(entry_name(kind, key));
        let replaced = std::fs::symlink_metadata(&path)
            .ok()
            .filter(|m| m.file_type().is_file())
            .map(|m| m.len());
        let temp_file = || {
            tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .tempfile_in(&self.dir)
        };
        let mut temp = match temp_file() {
            // The folder was removed while the app runs (a user's clean-up): make it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir)?;
                temp_file()?
            }
            other => other?,
        };
        temp.write_all(&bytes)?;
        temp.persist(&path).map_err(|e| e.error)?;
        let over = {
            let mut state = self.state();
            state.bytes = state.bytes.saturating_sub(replaced.unwrap_or(0)) + bytes.len() as u64;
            state.entries += u64::from(replaced.is_none());
            self.counters.set_size(state.entries, state.bytes);
            state.bytes > self.cap_bytes
        };
        if over {
            self.evict(self.eviction_target());
        }
        // Puts are rare (a decoded image, a settled preview): a good time to keep the counts,
        // so a killed app loses few of them.
        self.save_stats();
        Ok(())
    }

    /// What eviction brings the folder down to: 90% of the cap, so that not every put
    /// rescans the folder.
    fn eviction_target(&self) -> u64 {
        self.cap_bytes - self.cap_bytes / 10
    }

    /// Entry files directly in the folder (regular files with entry names only).
    fn list(&self) -> Vec<Listed> {
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in read.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // `DirEntry::metadata` does not follow symlinks.
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.file_type().is_file() {
                continue;
            }
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.starts_with(TEMP_PREFIX) {
                if used.elapsed().is_ok_and(|age| age > STALE_TEMP) {
                    let _ = std::fs::remove_file(entry.path());
                }
                continue;
            }
            if let Some(kind) = parse_name(name) {
                out.push(Listed {
                    path: entry.path(),
                    kind,
                    bytes: meta.len(),
                    used,
                });
            }
        }
        out
    }

    /// Remove expired entries, then least recently used ones until at most `target_bytes`.
    fn evict(&self, target_bytes: u64) {
        puffin::profile_function!();
        let mut listed = self.list();
        listed.sort_by_key(|l| l.used);
        let mut total: u64 = listed.iter().map(|l| l.bytes).sum();
        let mut kept = listed.len() as u64;
        let mut evicted = 0;
        for entry in &listed {
            let expired = entry
                .used
                .elapsed()
                .is_ok_and(|age| super::expired(age, self.ttl));
            if !expired && total <= target_bytes {
                continue;
            }
            if std::fs::remove_file(&entry.path).is_ok() {
                total -= entry.bytes;
                kept -= 1;
                evicted += 1;
            }
        }
        self.counters.evicted(evicted);
        let mut state = self.state();
        state.bytes = total;
        state.entries = kept;
        self.counters.set_size(kept, total);
    }

    /// What the folder holds now and the lookups of all runs.
    pub fn stats(&self) -> DiskStats {
        let listed = self.list();
        let sum = |kind: Kind| {
            listed
                .iter()
                .filter(|l| l.kind == kind)
                .fold((0, 0), |(n, b), l| (n + 1, b + l.bytes))
        };
        let saved = self.saved();
        let unsaved = self.state().unsaved;
        DiskStats {
            dir: self.dir.clone(),
            entries: listed.len() as u64,
            bytes: listed.iter().map(|l| l.bytes).sum(),
            thumbnails: sum(Kind::Thumbnail),
            results: sum(Kind::Result),
            cap_bytes: self.cap_bytes,
            ttl_s: self.ttl.as_secs(),
            oldest_use_s: listed
                .iter()
                .filter_map(|l| l.used.elapsed().ok())
                .max()
                .map(|d| d.as_secs()),
            lookups: Persisted {
                hits: saved.hits + unsaved.hits,
                misses: saved.misses + unsaved.misses,
            },
        }
    }

    /// Remove every entry (and the lookup counts); returns the files and bytes removed.
    pub fn clear(&self) -> (u64, u64) {
        let _no_stats_write = self.stats_lock.lock().unwrap_or_else(|e| e.into_inner());
        let (mut files, mut bytes) = (0, 0);
        for entry in self.list() {
            if std::fs::remove_file(&entry.path).is_ok() {
                files += 1;
                bytes += entry.bytes;
            }
        }
        let _ = std::fs::remove_file(self.dir.join(STATS_FILE));
        let mut state = self.state();
        state.bytes = 0;
        state.entries = 0;
        state.unsaved = Persisted::default();
        self.counters.set_size(0, 0);
        (files, bytes)
    }

    fn saved(&self) -> Persisted {
        std::fs::read(self.dir.join(STATS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Merge this run's hits and misses into `stats.json`.
    pub fn save_stats(&self) {
        let _one_at_a_time = self.stats_lock.lock().unwrap_or_else(|e| e.into_inner());
        let unsaved = std::mem::take(&mut self.state().unsaved);
        if unsaved == Persisted::default() {
            return;
        }
        let saved = self.saved();
        let merged = Persisted {
            hits: saved.hits + unsaved.hits,
            misses: saved.misses + unsaved.misses,
        };
        if let Ok(json) = serde_json::to_vec(&merged) {
            let _ = crate::io::write_atomic(&self.dir.join(STATS_FILE), |w| w.write_all(&json));
        }
    }
}

impl Drop for DiskCache {
    fn drop(&mut self) {
        self.save_stats();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn round_trips_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = DiskCache::open(dir.path(), 1 << 20, DAY).unwrap();
            c.put(Kind::Result, Key(1), b"pixels").unwrap();
            assert_eq!(c.get(Kind::Result, Key(1)).as_deref(), Some(&b"pixels"[..]));
            assert_eq!(c.get(Kind::Thumbnail, Key(1)), None);
        }
        let c = DiskCache::open(dir.path(), 1 << 20, DAY).unwrap();
        assert_eq!(c.get(Kind::Result, Key(1)).as_deref(), Some(&b"pixels"[..]));
        let s = c.stats();
        assert_eq!((s.entries, s.results.0), (1, 1));
        assert_eq!((s.lookups.hits, s.lookups.misses), (2, 1));
    }

    #[test]
    fn a_closed_cache_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open(dir.path(), 1 << 20, DAY).unwrap();
        c.close();
        c.put(Kind::Result, Key(1), b"late").unwrap();
        assert_eq!(c.get(Kind::Result, Key(1)), None);
        assert_eq!(c.stats().entries, 0);
    }

    #[test]
    fn damaged_entries_are_misses_and_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open(dir.path(), 1 << 20, DAY).unwrap();
        let payload = vec![9u8; 1000];
        for (n, damage) in [
            |b: &mut Vec<u8>| b.truncate(b.len() - 1),
            |b: &mut Vec<u8>| b[HEADER_BYTES + 10] ^= 1,
            |b: &mut Vec<u8>| b.truncate(5),
            |b: &mut Vec<u8>| b.clear(),
            |b: &mut Vec<u8>| b[0] = b'X',
        ]
        .into_iter()
        .enumerate()
        {
            let key = Key(n as u128);
            c.put(Kind::Result, key, &payload).unwrap();
            let path = dir.path().join(entry_name(Kind::Result, key));
            let mut bytes = std::fs::read(&path).unwrap();
            damage(&mut bytes);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(c.get(Kind::Result, key), None, "damage {n}");
            assert!(!path.exists(), "damage {n}");
        }
        // An intact entry copied under another key's name is not that key's entry.
        c.put(Kind::Result, Key(100), &payload).unwrap();
        std::fs::copy(
            dir.path().join(entry_name(Kind::Result, Key(100))),
            dir.path().join(entry_name(Kind::Result, Key(101))),
        )
        .unwrap();
        assert_eq!(c.get(Kind::Result, Key(101)), None);
        assert_eq!(c.get(Kind::Result, Key(100)), Some(payload));
    }

    #[test]
    fn an_entry_too_big_for_the_cap_is_skipped_and_a_removed_folder_is_made_again() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache");
        let c = DiskCache::open(&dir, 10 * (HEADER_BYTES as u64 + 100), DAY).unwrap();
        c.put(Kind::Result, Key(1), &[1; 100]).unwrap();
        // Over 90% of the cap: storing it would evict it and everything else.
        c.put(Kind::Result, Key(2), &vec![2; 9 * (HEADER_BYTES + 100)])
            .unwrap();
        assert_eq!(c.get(Kind::Result, Key(2)), None);
        assert_eq!(c.get(Kind::Result, Key(1)), Some(vec![1; 100]));
        std::fs::remove_dir_all(&dir).unwrap();
        c.put(Kind::Result, Key(3), &[3; 100]).unwrap();
        assert_eq!(c.get(Kind::Result, Key(3)), Some(vec![3; 100]));
    }

    #[test]
    fn evicts_least_recently_used_and_expired_entries_inside_its_folder_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache");
        let c = DiskCache::open(&dir, 3 * (HEADER_BYTES as u64 + 100), DAY).unwrap();
        // Things that are not entries: never counted, never removed.
        let outside = root.path().join("precious.opc");
        std::fs::write(&outside, b"keep").unwrap();
        std::fs::write(dir.join("notes.txt"), b"keep").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, dir.join(entry_name(Kind::Result, Key(77)))).unwrap();
        for n in 0..3 {
            c.put(Kind::Result, Key(n), &[n as u8; 100]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(c.get(Kind::Result, Key(0)).is_some()); // 0 is now the most recent
        std::thread::sleep(Duration::from_millis(20));
        c.put(Kind::Result, Key(3), &[3; 100]).unwrap();
        assert!(
            c.get(Kind::Result, Key(1)).is_none(),
            "least recently used goes"
        );
        assert!(c.get(Kind::Result, Key(0)).is_some());
        assert!(c.get(Kind::Result, Key(3)).is_some());
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"keep");
        let (files, _) = c.clear();
        assert!(files >= 2);
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert!(dir.join("notes.txt").exists());
        // Entries unused for longer than the TTL are misses.
        let short = DiskCache::open(&dir, 1 << 20, Duration::from_millis(10)).unwrap();
        short.put(Kind::Thumbnail, Key(5), b"x").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(short.get(Kind::Thumbnail, Key(5)), None);
        // `cache_ttl = 0`: entries never expire, however long unused.
        let forever = DiskCache::open(&dir, 1 << 20, Duration::ZERO).unwrap();
        forever.put(Kind::Thumbnail, Key(6), b"y").unwrap();
        let year_ago = SystemTime::now() - Duration::from_secs(365 * 24 * 3600);
        std::fs::File::options()
            .write(true)
            .open(dir.join(entry_name(Kind::Thumbnail, Key(6))))
            .unwrap()
            .set_modified(year_ago)
            .unwrap();
        assert_eq!(forever.get(Kind::Thumbnail, Key(6)), Some(b"y".to_vec()));
    }
}
