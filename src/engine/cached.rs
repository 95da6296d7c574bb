//! Previews through the caches of [`crate::cache`]: a finished frame is looked up in memory,
//! then on disk, before anything renders; otherwise the longest cached chain prefix is reused
//! and the edit point is kept as a new intermediate, so dragging a slider of op k re-runs only
//! ops k..n. Every key is built from the source's content hash, the pyramid level (size and
//! scale), the EXIF orientation, the quality preset and the stage signatures (op, version,
//! parameters): a result can only be found again for exactly the same computation.

use std::sync::Arc;
use std::time::Duration;

use image::DynamicImage;

use super::Engine;
use super::content::Detail;
use super::geom::{Rect, Size};
use super::plan::Plan;
use super::render::{RenderControl, RenderStats};
use super::source::{SharedTile, Source};
use super::tile::Tile;
use crate::cache::disk::{DiskCache, Kind};
use crate::cache::key::{KeyBuilder, stage_signature};
use crate::cache::memory::MemoryCache;
use crate::cache::{Key, LevelStats};
use crate::chain::Chain;
use crate::config::Performance;
use crate::error::Result;
use crate::io::decode::Orientation;

/// Render time per stage label.
type StageTimes = Vec<(String, Duration)>;

/// A finished preview: 8-bit RGBA.
pub struct Frame {
    /// Its size.
    pub size: Size,
    /// `size.width * size.height * 4` samples.
    pub rgba: Vec<u8>,
}

impl Frame {
    fn bytes(&self) -> u64 {
        self.rgba.len() as u64 + 16
    }

    /// The disk payload: width, height, pixels.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.rgba.len());
        out.extend_from_slice(&self.size.width.to_le_bytes());
        out.extend_from_slice(&self.size.height.to_le_bytes());
        out.extend_from_slice(&self.rgba);
        out
    }

    fn decode(mut payload: Vec<u8>) -> Option<Frame> {
        if payload.len() < 8 {
            return None;
        }
        let width = u32::from_le_bytes(payload[0..4].try_into().ok()?);
        let height = u32::from_le_bytes(payload[4..8].try_into().ok()?);
        let rgba = payload.split_off(8);
        (rgba.len() as u64 == u64::from(width) * u64::from(height) * 4).then_some(Frame {
            size: Size::new(width, height),
            rgba,
        })
    }
}

/// Where a frame came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// The in-memory result cache.
    Memory,
    /// The disk cache.
    Disk,
    /// Rendered; the first `reused` of `stages` plan stages came from the intermediate cache.
    Rendered {
        /// Stages whose output was cached.
        reused: usize,
        /// Stages in the plan.
        stages: usize,
    },
}

/// One preview to produce.
pub struct Request<'a> {
    /// Content hash of the source file.
    pub source: Key,
    /// The pyramid level's pixels.
    pub image: &'a DynamicImage,
    /// Its scale relative to full resolution.
    pub scale: f64,
    /// EXIF orientation of the source.
    pub orientation: Orientation,
    /// The chain.
    pub chain: &'a Chain,
    /// Only this part of the output (a zoomed-in refinement), or all of it.
    pub region: Option<Rect>,
    /// The full-resolution source's content measure ([`Pyramid::detail`]), so the preview
    /// picks the algorithms the export will.
    ///
    /// [`Pyramid::detail`]: super::pyramid::Pyramid::detail
    pub detail: Option<Detail>,
}

/// A produced preview.
pub struct Preview {
    /// The pixels.
    pub frame: Arc<Frame>,
    /// Its result key (for [`PreviewCaches::persist`]).
    pub key: Key,
    /// Where it came from.
    pub served: Served,
    /// Render time per stage (empty for a cached frame).
    pub stage_times: StageTimes,
    /// Where the output sits in the render at this scale (the region, or the whole output).
    pub rect: Rect,
    /// Algorithms the plan picked by image content.
    pub choices: Vec<String>,
}

/// Where a GPU-rendered frame of the result `key` is kept: apart from the CPU's frames, which
/// are the export's pixels (but for the 8-bit leading stages, see `engine::u8_lead`); the
/// GPU's are within 2·10⁻⁴ of the CPU's, not equal.
pub fn gpu_result_key(key: Key) -> Key {
    let mut builder = KeyBuilder::new("gpu-result");
    builder.key(key);
    builder.finish()
}

/// The preview worker's caches.
pub struct PreviewCaches {
    results: MemoryCache<Frame>,
    intermediates: MemoryCache<Tile>,
    disk: Option<Arc<DiskCache>>,
    /// Prefix keys of the last whole-level render, to find where the next request differs.
    previous: Vec<Key>,
}

impl PreviewCaches {
    /// Caches sized from the memory budget (results 1/16, intermediates 1/8; with the
    /// thumbnails' 1/8 the caches hold at most 5/16 of `max_memory_usage`) as the config
    /// enables them, with `cache_ttl`, and the shared disk cache if there is one.
    pub fn new(performance: &Performance, budget_bytes: u64, disk: Option<Arc<DiskCache>>) -> Self {
        let ttl = crate::cache::ttl(performance.cache_ttl);
        let cap = |on: bool, share: u64| if on { budget_bytes / share } else { 0 };
        Self {
            results: MemoryCache::new(cap(performance.enable_result_cache, 16), ttl),
            intermediates: MemoryCache::new(cap(performance.enable_intermediate_cache, 8), ttl),
            disk,
            previous: Vec::new(),
        }
    }

    /// Counters of each level (result, intermediate, disk).
    pub fn stats(&self) -> Vec<LevelStats> {
        let mut out = vec![
            self.results.counters().snapshot("result"),
            self.intermediates.counters().snapshot("intermediate"),
        ];
        if let Some(disk) = &self.disk {
            out.push(disk.counters().snapshot("disk"));
        }
        out
    }

    /// Drop what is held in memory (the disk cache stays).
    pub fn clear_memory(&mut self) {
        self.results.clear();
        self.intermediates.clear();
        self.previous.clear();
    }

    /// Keep `frame` on disk, so that reopening the image shows it at once (called for frames
    /// that stayed on screen, not for every step of a slider drag).
    pub fn persist(&self, key: Key, frame: &Frame) {
        if let Some(disk) = &self.disk {
            let _ = disk.put(Kind::Result, key, &frame.encode());
        }
    }

    /// The plan for `request`, the keys of its prefixes (`[s]`: the image after `s` stages),
    /// its result key and the output rectangle.
    fn keys(&self, engine: &Engine, request: &Request<'_>) -> Result<(Plan, Vec<Key>, Key, Rect)> {
        let level_size = Size::new(request.image.width(), request.image.height());
        let plan = Plan::for_content(
            request.chain,
            level_size,
            request.orientation,
            request.scale,
            engine.output_limits(),
            engine.quality_preset(),
            request.detail,
        )?;
        let rect = request
            .region
            .map_or(plan.output.rect(), |r| r.intersect(plan.output.rect()));
        let mut builder = KeyBuilder::new("prefix");
        builder
            .key(request.source)
            .num(u64::from(level_size.width))
            .num(u64::from(level_size.height))
            .num(request.scale.to_bits())
            .text(&format!("{:?}", engine.quality_preset()))
            // The measure picks algorithms; it follows from the content, but is kept explicit.
            .num(request.detail.map_or(u64::MAX, |d| {
                // No measured gradient: bits no finite gradient has.
                let gradient = d.gradient.map_or(u32::MAX, f32::to_bits);
                u64::from(gradient) | u64::from(d.opaque_8bit) << 32
            }))
            // Limits never change pixels, but a result refused under lower limits must not be
            // served from a cache.
            .text(&format!("{:?}", engine.output_limits()));
        let mut prefixes = vec![builder.finish()];
        for stage in &plan.stages {
            builder.text(&stage_signature(request.chain, stage, request.orientation));
            prefixes.push(builder.finish());
        }
        let mut key = KeyBuilder::new("result");
        key.key(prefixes[plan.stages.len()]);
        if request.region.is_some() {
            key.num(u64::from(rect.x))
                .num(u64::from(rect.y))
                .num(u64::from(rect.width))
                .num(u64::from(rect.height));
        }
        Ok((plan, prefixes, key.finish(), rect))
    }

    /// The finished frame for the first of `keys` found in memory, else (whole levels only)
    /// on disk; one lookup in each level's counters.
    fn find(&mut self, keys: &[Key], whole: bool) -> Option<(Arc<Frame>, Served)> {
        let in_memory = keys.iter().find_map(|&key| self.results.lookup(key));
        let counters = self.results.counters();
        if let Some(frame) = in_memory {
            counters.hit();
            return Some((frame, Served::Memory));
        }
        counters.miss();
        if whole
            && let Some(disk) = &self.disk
            && let Some((key, frame)) = disk
                .get_any(Kind::Result, keys)
                .and_then(|(key, payload)| Frame::decode(payload).map(|f| (key, f)))
        {
            let frame = Arc::new(frame);
            self.results.insert(key, frame.clone(), frame.bytes());
            disk.save_stats();
            return Some((frame, Served::Disk));
        }
        None
    }

    /// The preview for `request` if a cache has it (the GPU path asks before rendering: a
    /// frame rendered on the CPU is the export's pixels, but for an 8-bit leading resize).
    pub fn cached(&mut self, engine: &Engine, request: &Request<'_>) -> Result<Option<Preview>> {
        let (plan, _, key, rect) = self.keys(engine, request)?;
        Ok(self.hit(&[key], rect, request, &plan))
    }

    /// The GPU path's lookup: a frame the CPU rendered (the export's pixels, but for an 8-bit leading resize), else
    /// one the GPU path rendered and kept ([`gpu_result_key`]); with the result key, under
    /// which a new GPU frame is kept.
    pub fn cached_for_gpu(
        &mut self,
        engine: &Engine,
        request: &Request<'_>,
    ) -> Result<(Option<Preview>, Key)> {
        let (plan, _, key, rect) = self.keys(engine, request)?;
        let found = self.hit(&[key, gpu_result_key(key)], rect, request, &plan);
        Ok((found, key))
    }

    /// [`find`](Self::find) as a preview (under `keys[0]`).
    fn hit(
        &mut self,
        keys: &[Key],
        rect: Rect,
        request: &Request<'_>,
        plan: &Plan,
    ) -> Option<Preview> {
        let key = keys[0];
        self.find(keys, request.region.is_none())
            .map(|(frame, served)| Preview {
                frame,
                key,
                served,
                stage_times: Vec::new(),
                rect,
                choices: plan.choice_lines(),
            })
    }

    /// The preview for `request`: from memory, from disk, or rendered from the longest cached
    /// prefix.
    pub fn get_or_render(
        &mut self,
        engine: &Engine,
        request: &Request<'_>,
        control: &RenderControl<'_>,
    ) -> Result<Preview> {
        puffin::profile_function!();
        let keys = self.keys(engine, request)?;
        if let Some(found) = self.hit(&[keys.2], keys.3, request, &keys.0) {
            return Ok(found);
        }
        self.render(engine, request, keys, control)
    }

    /// Render the preview for `request` after [`cached`](Self::cached) found nothing (the
    /// GPU path's CPU fallback: looking again would count the miss twice), and keep it.
    pub fn render_missed(
        &mut self,
        engine: &Engine,
        request: &Request<'_>,
        control: &RenderControl<'_>,
    ) -> Result<Preview> {
        let keys = self.keys(engine, request)?;
        self.render(engine, request, keys, control)
    }

    /// Render `request` (whose [`keys`](Self::keys) are `keys`) from the longest cached prefix
    /// and keep the frame.
    fn render(
        &mut self,
        engine: &Engine,
        request: &Request<'_>,
        (plan, prefixes, key, rect): (Plan, Vec<Key>, Key, Rect),
        control: &RenderControl<'_>,
    ) -> Result<Preview> {
        puffin::profile_function!();
        let stages = plan.stages.len();
        let choices = plan.choice_lines();
        let (frame, stage_times, reused) =
            if request.region.is_none() && self.intermediates.enabled() {
                self.render_with_prefixes(engine, request.image, plan, &prefixes, control)?
            } else {
                let (image, stats) =
                    engine.render_plan(request.image, &plan, request.region, false, control)?;
                (
                    Frame {
                        size: image.size,
                        rgba: image.to_rgba8(),
                    },
                    stats.stage_times,
                    0,
                )
            };
        let frame = Arc::new(frame);
        self.results.insert(key, frame.clone(), frame.bytes());
        Ok(Preview {
            frame,
            key,
            served: Served::Rendered { reused, stages },
            stage_times,
            rect,
            choices,
        })
    }

    /// Render a whole level from the longest cached prefix, keeping the prefix up to where this
    /// request first differs from the previous one (the op being edited) for the next request.
    fn render_with_prefixes(
        &mut self,
        engine: &Engine,
        image: &DynamicImage,
        mut plan: Plan,
        prefixes: &[Key],
        control: &RenderControl<'_>,
    ) -> Result<(Frame, StageTimes, usize)> {
        let stages = plan.stages.len();
        // The longest prefix in memory (not the whole chain: that is the result cache's).
        let found = (1..stages)
            .rev()
            .find_map(|s| self.intermediates.lookup(prefixes[s]).map(|t| (s, t)));
        if stages > 1 {
            match found {
                Some(_) => self.intermediates.counters().hit(),
                None => self.intermediates.counters().miss(),
            }
        }
        let edit_point = prefixes
            .iter()
            .zip(&self.previous)
            .take_while(|(a, b)| a == b)
            .count()
            .saturating_sub(1);
        self.previous = prefixes.to_vec();
        let (start, mut input): (usize, Option<Arc<Tile>>) = match found {
            Some((s, tile)) => (s, Some(tile)),
            None => (0, None),
        };
        let mut times = Vec::new();
        let mut tail = plan.split_off(start);
        // A prefix image too large for the cache is not worth splitting the render for (and
        // as an f32 source it would weigh 4× the 8-bit level in the render's budget).
        let fits = |size: Size| size.pixels() * 16 <= self.intermediates.cap_bytes();
        if edit_point > start
            && edit_point < stages
            && fits(plan_stage_output(&tail, edit_point - start))
        {
            // Keep the stable prefix: later edits of the same op start from it.
            let rest = tail.split_off(edit_point - start);
            let (tile, stats) =
                engine.render_plan_to_tile(&source_of(image, &input), &tail, control)?;
            times.extend(stats.stage_times);
            let tile = Arc::new(tile);
            let bytes = tile.data.len() as u64 * 4;
            self.intermediates
                .insert(prefixes[edit_point], tile.clone(), bytes);
            input = Some(tile);
            tail = rest;
        }
        let (output, stats): (_, RenderStats) =
            engine.render_plan(&source_of(image, &input), &tail, None, false, control)?;
        times.extend(stats.stage_times);
        Ok((
            Frame {
                size: output.size,
                rgba: output.to_rgba8(),
            },
            times,
            start,
        ))
    }
}

/// The size of the image after the first `stages` stages of `plan`.
fn plan_stage_output(plan: &Plan, stages: usize) -> Size {
    match stages {
        0 => plan.input,
        n => plan.stages[n - 1].output,
    }
}

/// The level itself, or the cached intermediate when there is one.
enum Input<'a> {
    Level(&'a DynamicImage),
    Cached(SharedTile),
}

fn source_of<'a>(image: &'a DynamicImage, cached: &Option<Arc<Tile>>) -> Input<'a> {
    match cached {
        Some(t) => Input::Cached(SharedTile(t.clone())),
        None => Input::Level(image),
    }
}

impl Source for Input<'_> {
    fn size(&self) -> Size {
        match self {
            Input::Level(i) => i.size(),
            Input::Cached(t) => t.size(),
        }
    }

    fn read(&self, rect: Rect) -> Tile {
        match self {
            Input::Level(i) => i.read(rect),
            Input::Cached(t) => t.read(rect),
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Input::Level(i) => i.bytes(),
            Input::Cached(t) => t.bytes(),
        }
    }

    fn as_u8(&self) -> Option<(&[u8], usize)> {
        match self {
            Input::Level(i) => i.as_u8(),
            Input::Cached(_) => None,
        }
    }
}

/// The caches an app session shares between its loader and its preview workers: the disk
/// folder (when `persistent_cache_size` is not 0 and the folder can be created) and the
/// thumbnail level.
pub struct SessionCaches {
    /// The persistent cache, if on.
    pub disk: Option<Arc<DiskCache>>,
    /// Why there is no disk cache, when it could not be opened.
    pub disk_error: Option<String>,
    /// Decoded pyramids.
    pub thumbnails: Arc<super::thumbs::ThumbnailCache>,
}

impl SessionCaches {
    /// Open the caches of `performance` in `dir` (no disk cache when `None`), the memory ones
    /// sized from `budget_bytes`.
    pub fn open(
        performance: &Performance,
        budget_bytes: u64,
        dir: Option<&std::path::Path>,
    ) -> Self {
        let ttl = Duration::from_secs(performance.cache_ttl);
        let cap = performance.persistent_cache_size.0;
        let (disk, disk_error) = match dir {
            Some(dir) if cap > 0 => match DiskCache::open(dir, cap, ttl) {
                Ok(d) => (Some(Arc::new(d)), None),
                Err(e) => (None, Some(format!("cannot use {} ({e})", dir.display()))),
            },
            _ => (None, None),
        };
        Self {
            thumbnails: Arc::new(super::thumbs::ThumbnailCache::new(
                budget_bytes / 8,
                ttl,
                disk.clone(),
            )),
            disk,
            disk_error,
        }
    }

    /// Fresh preview caches on this session's disk folder.
    pub fn preview(&self, performance: &Performance, budget_bytes: u64) -> PreviewCaches {
        PreviewCaches::new(performance, budget_bytes, self.disk.clone())
    }
}
