//! The thumbnail level of the caches: decoded sources as pyramids, found by the file's content
//! hash. Recently opened images stay in memory (switching back costs no decode); on disk the
//! pyramid's levels up to [`DISK_SIDE_PX`] are kept, so reopening a large image shows a preview
//! from them while the full-resolution decode runs, and a small image (all levels that size)
//! needs no decode at all.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use image::{DynamicImage, RgbaImage};

use super::Engine;
use super::content::Detail;
use super::geom::Size;
use super::pyramid::{Level, Pyramid};
use crate::cache::disk::{DiskCache, Kind};
use crate::cache::key::{self, KeyBuilder};
use crate::cache::memory::MemoryCache;
use crate::cache::{Key, LevelStats};
use crate::error::{Error, Result};
use crate::io::decode::{self, Orientation};

/// Longest side of the pyramid levels kept on disk.
pub const DISK_SIDE_PX: u32 = 2048;
/// 2: the content measure follows the full size; 3: it says whether the source is opaque
/// 8-bit (bump again when `Detail::measure` changes).
const PAYLOAD_VERSION: u8 = 3;

/// A decoded source ready for previews.
pub struct LoadedSource {
    /// Content hash of the file.
    pub key: Key,
    /// Its pyramid (without the largest levels when `complete` is false).
    pub pyramid: Arc<Pyramid>,
    /// EXIF orientation.
    pub orientation: Orientation,
    /// Container format name.
    pub format: String,
    /// Whether level 0 is the full-resolution image.
    pub complete: bool,
}

impl LoadedSource {
    fn bytes(&self) -> u64 {
        self.pyramid.bytes()
    }

    /// Disk payload: the levels up to [`DISK_SIDE_PX`].
    fn encode(&self) -> Option<Vec<u8>> {
        let levels: Vec<&Level> = self
            .pyramid
            .levels
            .iter()
            .filter(|l| l.image.width().max(l.image.height()) <= DISK_SIDE_PX)
            .collect();
        if levels.is_empty() {
            return None;
        }
        let complete = self.complete && levels.len() == self.pyramid.levels.len();
        let mut out = vec![
            PAYLOAD_VERSION,
            self.orientation.to_exif(),
            u8::from(complete),
            self.format.len().min(255) as u8,
        ];
        out.extend_from_slice(&self.format.as_bytes()[..self.format.len().min(255)]);
        for v in [
            self.pyramid.full.width,
            self.pyramid.full.height,
            levels.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        // A pyramid is built from the decoded image, so its measure always has the gradient.
        let gradient = self.pyramid.detail.gradient?;
        out.extend_from_slice(&gradient.to_le_bytes());
        out.push(u8::from(self.pyramid.detail.opaque_8bit));
        for level in levels {
            out.extend_from_slice(&level.image.width().to_le_bytes());
            out.extend_from_slice(&level.image.height().to_le_bytes());
            out.extend_from_slice(&level.scale.to_le_bytes());
            out.extend_from_slice(level.image.as_bytes());
        }
        Some(out)
    }

    fn decode(key: Key, payload: &[u8]) -> Option<LoadedSource> {
        let mut at = 0;
        let mut take = |n: usize| -> Option<&[u8]> {
            let part = payload.get(at..at + n)?;
            at += n;
            Some(part)
        };
        let head = take(4)?;
        if head[0] != PAYLOAD_VERSION {
            return None;
        }
        let orientation = Orientation::from_exif(head[1])?;
        let complete = head[2] == 1;
        let format = String::from_utf8(take(usize::from(head[3]))?.to_vec()).ok()?;
        let mut u32_at = || Some(u32::from_le_bytes(take(4)?.try_into().ok()?));
        let (fw, fh, n) = (u32_at()?, u32_at()?, u32_at()?);
        let gradient = f32::from_le_bytes(take(4)?.try_into().ok()?);
        let opaque_8bit = match take(1)?[0] {
            0 => false,
            1 => true,
            _ => return None,
        };
        if !gradient.is_finite() {
            return None;
        }
        let mut levels = Vec::new();
        for _ in 0..n {
            let mut take_u32 = || Some(u32::from_le_bytes(take(4)?.try_into().ok()?));
            let (w, h) = (take_u32()?, take_u32()?);
            let scale = f64::from_le_bytes(take(8)?.try_into().ok()?);
            let bytes = take((w as usize).checked_mul(h as usize)?.checked_mul(4)?)?;
            let image = RgbaImage::from_raw(w, h, bytes.to_vec())?;
            levels.push(Level {
                image: DynamicImage::ImageRgba8(image),
                scale,
            });
        }
        (at == payload.len() && !levels.is_empty()).then(|| LoadedSource {
            key,
            pyramid: Arc::new(Pyramid {
                full: Size::new(fw, fh),
                levels,
                detail: Detail {
                    gradient: Some(gradient),
                    opaque_8bit,
                },
            }),
            orientation,
            format,
            complete,
        })
    }
}

/// Memory and disk storage of decoded sources.
pub struct ThumbnailCache {
    memory: Mutex<MemoryCache<LoadedSource>>,
    disk: Option<Arc<DiskCache>>,
}

impl ThumbnailCache {
    /// Keep up to `cap_bytes` of pyramids in memory (unused ones expire after `ttl`), and
    /// their smaller levels in `disk`.
    pub fn new(cap_bytes: u64, ttl: Duration, disk: Option<Arc<DiskCache>>) -> Self {
        Self {
            memory: Mutex::new(MemoryCache::new(cap_bytes, (!ttl.is_zero()).then_some(ttl))),
            disk,
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, MemoryCache<LoadedSource>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its counters (the disk's are the preview caches' too: one folder).
    pub fn stats(&self) -> LevelStats {
        self.memory().counters().snapshot("thumbnail")
    }

    /// Drop the pyramids held in memory.
    pub fn clear_memory(&self) {
        self.memory().clear();
    }

    /// Load `path` for previews: from memory when it was opened recently, else decoded, with
    /// `early` called first with the smaller levels when the disk cache has them (a partial
    /// source to preview from while the full decode runs). The key includes the decode limits,
    /// so a source refused under stricter limits is never served from the cache.
    pub fn load(
        &self,
        engine: &Engine,
        path: &Path,
        early: impl FnOnce(Arc<LoadedSource>),
    ) -> Result<Arc<LoadedSource>> {
        puffin::profile_function!();
        let limits = engine.decode_limits();
        let stamp = file_stamp(path);
        let content = match key::file_content(path) {
            Ok(content) => content,
            // Let the decoder say what is wrong with the file (missing, a folder, unreadable).
            Err(e) => {
                decode::decode_file(path, &limits)?;
                return Err(Error::io("read", path, e));
            }
        };
        let key = KeyBuilder::new("thumbnail")
            .key(content)
            .text(&format!("{limits:?}"))
            .finish();
        if let Some(hit) = self.memory().get(key) {
            return Ok(hit);
        }
        let on_disk = self
            .disk
            .as_ref()
            .and_then(|d| d.get(Kind::Thumbnail, key))
            .and_then(|payload| LoadedSource::decode(content, &payload));
        if let Some(found) = on_disk {
            let found = Arc::new(found);
            if found.complete {
                self.memory().insert(key, found.clone(), found.bytes());
                if let Some(disk) = &self.disk {
                    disk.save_stats();
                }
                return Ok(found);
            }
            early(found);
            return self.decode(engine, path, &limits, (key, content, stamp), false);
        }
        self.decode(engine, path, &limits, (key, content, stamp), true)
    }

    /// Decode `path` and build its pyramid; keep it in memory and (when `to_disk`) on disk.
    fn decode(
        &self,
        engine: &Engine,
        path: &Path,
        limits: &decode::DecodeLimits,
        (key, content, stamp): (Key, Key, Option<FileStamp>),
        to_disk: bool,
    ) -> Result<Arc<LoadedSource>> {
        let decoded = decode::decode_file(path, limits)?;
        // The content was hashed in an earlier read: if the file changed since, these pixels
        // are not that content's and must not be cached under its key.
        if file_stamp(path) != stamp {
            return Err(Error::io(
                "read",
                path,
                std::io::Error::other("the file changed while it was being read; open it again"),
            ));
        }
        let loaded = Arc::new(LoadedSource {
            key: content,
            // On the engine's pool: its resizes are multi-threaded, within `max_cpu_cores`.
            pyramid: Arc::new(engine.pool().install(|| Pyramid::build(&decoded.image))?),
            orientation: decoded.orientation,
            format: format!("{:?}", decoded.format),
            complete: true,
        });
        drop(decoded);
        self.memory().insert(key, loaded.clone(), loaded.bytes());
        if to_disk
            && let Some(disk) = &self.disk
            && let Some(payload) = loaded.encode()
        {
            let _ = disk.put(Kind::Thumbnail, key, &payload);
        }
        Ok(loaded)
    }
}

/// Size and modification time: what changes when a file is rewritten.
type FileStamp = (u64, Option<std::time::SystemTime>);

fn file_stamp(path: &Path) -> Option<FileStamp> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.modified().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn write_png(path: &Path, width: u32, height: u32) {
        let image = RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8, 255])
        });
        image.save(path).unwrap();
    }

    fn levels(source: &LoadedSource) -> Vec<(u32, u32, u64, Vec<u8>)> {
        source
            .pyramid
            .levels
            .iter()
            .map(|l| {
                (
                    l.image.width(),
                    l.image.height(),
                    l.scale.to_bits(),
                    l.image.as_bytes().to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn reopening_uses_memory_then_disk_and_gives_the_same_levels() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(Config::default()).unwrap();
        let (big, small) = (dir.path().join("big.png"), dir.path().join("small.png"));
        write_png(&big, 3000, 900);
        // The small one opaque RGB: its measure says so, also from disk.
        image::DynamicImage::ImageRgba8(RgbaImage::from_fn(300, 200, |x, y| {
            image::Rgba([(x % 251) as u8, (y % 241) as u8, 9, 255])
        }))
        .to_rgb8()
        .save(&small)
        .unwrap();
        let disk = || {
            Some(Arc::new(
                DiskCache::open(&dir.path().join("cache"), 1 << 30, Duration::from_secs(60))
                    .unwrap(),
            ))
        };
        let first = ThumbnailCache::new(1 << 30, Duration::from_secs(60), disk());
        let no_early = |_: Arc<LoadedSource>| panic!("no partial source expected");
        let big_1 = first.load(&engine, &big, no_early).unwrap();
        let small_1 = first.load(&engine, &small, no_early).unwrap();
        assert!(big_1.complete && big_1.pyramid.levels[0].image.width() == 3000);
        // Opened again in the same run: the same pyramid from memory.
        assert!(Arc::ptr_eq(
            &big_1,
            &first.load(&engine, &big, no_early).unwrap()
        ));
        assert_eq!(first.stats().hits, 1);

        // A new run: the large image previews from its disk levels, then decodes in full.
        let second = ThumbnailCache::new(1 << 30, Duration::from_secs(60), disk());
        let mut early = None;
        let big_2 = second.load(&engine, &big, |s| early = Some(s)).unwrap();
        let early = early.expect("a partial source from disk");
        assert!(!early.complete);
        assert!(early.pyramid.levels[0].image.width() <= DISK_SIDE_PX);
        assert_eq!(levels(&early)[..], levels(&big_1)[1..]);
        assert_eq!(levels(&big_2), levels(&big_1));
        // The content measure comes back with the levels (the full image is not on disk).
        assert!(big_1.pyramid.detail.gradient.unwrap() > 0.0);
        assert_eq!(early.pyramid.detail, big_1.pyramid.detail);
        // The small one is all on disk: no decode, no partial step.
        let small_2 = second.load(&engine, &small, no_early).unwrap();
        assert!(small_2.complete);
        assert_eq!(levels(&small_2), levels(&small_1));
        assert_eq!(
            (small_2.orientation, &small_2.format),
            (small_1.orientation, &small_1.format)
        );
        assert!(small_1.pyramid.detail.opaque_8bit && !big_1.pyramid.detail.opaque_8bit);
        assert_eq!(small_2.pyramid.detail, small_1.pyramid.detail);

        // An edited file is another key: decoded afresh.
        write_png(&small, 301, 200);
        let third = ThumbnailCache::new(1 << 30, Duration::from_secs(60), disk());
        assert_eq!(
            third
                .load(&engine, &small, no_early)
                .unwrap()
                .pyramid
                .full
                .width,
            301
        );
        // A missing file keeps the decoder's error.
        let missing = third.load(&engine, &dir.path().join("nope.png"), no_early);
        assert!(missing.is_err());

        // The file is rewritten after it was hashed and before it is decoded (here: while the
        // partial source from disk is shown): an error, and nothing cached under the old key.
        let fourth = ThumbnailCache::new(1 << 30, Duration::from_secs(60), disk());
        let changed = fourth.load(&engine, &big, |_| write_png(&big, 2999, 900));
        let message = changed
            .err()
            .expect("a changed file is an error")
            .to_string();
        assert!(
            message.contains("changed while it was being read"),
            "{message}"
        );
        assert_eq!(fourth.stats().entries, 0);
    }
}
