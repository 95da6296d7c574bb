//! `opossum bench cache`: what each cache level saves, measured on one image with the app's
//! own code paths (thumbnail loader, preview caches, disk folder):
//!
//! - latency of a miss and of a hit per level (medians): the thumbnail level against decoding
//!   and building the pyramid, the disk's partial pyramid against the same, the result level
//!   (memory and disk) against rendering the preview, the intermediate level against
//!   rendering the whole chain when only its last op changed;
//! - hit rates of a scripted editing session (slider drags on two ops, undo and redo back
//!   over them, switching presets): what the levels answer in that session, not a claim
//!   about every user.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{chain, step};
use crate::cache::LevelStats;
use crate::cache::disk::DiskCache;
use crate::chain::Chain;
use crate::chain::raw::RawValue;
use crate::config::Performance;
use crate::engine::Engine;
use crate::engine::cached::{PreviewCaches, Request};
use crate::engine::pyramid::Level;
use crate::engine::render::RenderControl;
use crate::engine::thumbs::{LoadedSource, ThumbnailCache};
use crate::error::{Error, Result};

/// One level's miss and hit latency.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LevelLatency {
    /// Level.
    pub level: &'static str,
    /// What a miss costs (what the level saves).
    pub miss: &'static str,
    /// Median miss latency, ms.
    pub miss_ms: f64,
    /// Median hit latency, ms.
    pub hit_ms: f64,
    /// The spec's claimed latency reduction.
    pub spec_claim: &'static str,
}

impl LevelLatency {
    /// `1 - hit / miss`, percent.
    pub fn reduction_pct(&self) -> f64 {
        100.0 * (1.0 - self.hit_ms / self.miss_ms.max(1e-9))
    }
}

/// Everything `opossum bench cache` measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CacheReport {
    /// Source size, px.
    pub source_px: (u32, u32),
    /// Preview level size, px.
    pub level_px: (u32, u32),
    /// Per level.
    pub latencies: Vec<LevelLatency>,
    /// Requests in the scripted session.
    pub session_requests: usize,
    /// Counters after the session.
    pub session: Vec<LevelStats>,
}

/// The default chain: blur, colour, sharpen (the edits change the sharpen amount).
pub fn default_chain() -> Chain {
    chain(vec![
        step("gaussian_blur", &[("sigma", RawValue::Float(4.0))]),
        step("adjust_colors", &[("saturation", RawValue::Float(1.2))]),
        step("sharpen", &[("amount", RawValue::Float(0.6))]),
    ])
}

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms.get(ms.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `chain` with the first numeric parameter of op `index` set to `fraction` of its range.
fn edited(chain: &Chain, index: usize, fraction: f64) -> Chain {
    use crate::params::ParamKind;
    let mut out = chain.clone();
    let op = &mut out.ops[index];
    for spec in op.def.params {
        let raw = match spec.kind {
            ParamKind::Float { min, max, .. } => RawValue::Float(min + (max - min) * fraction),
            ParamKind::Int { min, max, .. } => {
                RawValue::Int(min + ((max - min) as f64 * fraction).round() as i64)
            }
            _ => continue,
        };
        if op.params.set(op.def.params, spec.key, &raw).is_ok() {
            break;
        }
    }
    out
}

/// Measure on `path` with `chain` (at least two ops), previews for a `view_px` viewport,
/// `runs` timings per figure, the disk level in a temporary folder.
pub fn run(
    engine: &Engine,
    path: &Path,
    chain: &Chain,
    view_px: u32,
    runs: usize,
) -> Result<CacheReport> {
    if chain.ops.iter().filter(|o| o.enabled).count() < 2 {
        return Err(Error::Config {
            reason: "the cache benchmark needs a chain of at least two enabled ops".to_owned(),
            path: None,
        });
    }
    let runs = runs.max(1);
    let folder = tempfile::tempdir()
        .map_err(|e| Error::io("create a temporary folder", std::env::temp_dir(), e))?;
    let performance = Performance {
        enable_result_cache: true,
        enable_intermediate_cache: true,
        ..engine.config().performance.clone()
    };
    let ttl = Duration::from_secs(3600);
    let budget = engine.budget_bytes();
    let disk = || -> Result<Arc<DiskCache>> {
        DiskCache::open(folder.path(), 10 << 30, ttl)
            .map(Arc::new)
            .map_err(|e| Error::io("open the cache folder", folder.path(), e))
    };
    let mut latencies = Vec::new();

    // Thumbnail level: decode + pyramid, against the memory hit and the disk's first levels.
    let (mut decode_ms, mut memory_ms, mut disk_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut loaded: Option<Arc<LoadedSource>> = None;
    for _ in 0..runs {
        let cache = ThumbnailCache::new(budget, ttl, Some(disk()?));
        let t = Instant::now();
        let source = cache.load(engine, path, |_| {})?;
        decode_ms.push(ms(t.elapsed()));
        let t = Instant::now();
        cache.load(engine, path, |_| {})?;
        memory_ms.push(ms(t.elapsed()));
        loaded = Some(source);
        // A new session: the time until the first pyramid to preview from.
        let fresh = ThumbnailCache::new(budget, ttl, Some(disk()?));
        let t = Instant::now();
        let mut first = None;
        fresh.load(engine, path, |_| first = Some(t.elapsed()))?;
        disk_ms.push(ms(first.unwrap_or_else(|| t.elapsed())));
        disk()?.clear();
    }
    let loaded = loaded.ok_or_else(|| Error::Internal("no load measured".to_owned()))?;
    let decode = median(decode_ms);
    latencies.push(LevelLatency {
        level: "thumbnail (memory)",
        miss: "decode + pyramid",
        miss_ms: decode,
        hit_ms: median(memory_ms),
        spec_claim: "70–90 %",
    });
    latencies.push(LevelLatency {
        level: "thumbnail (disk)",
        miss: "decode + pyramid",
        miss_ms: decode,
        hit_ms: median(disk_ms),
        spec_claim: "80–95 %",
    });

    // The preview level the app would show in the viewport.
    let pyramid = &loaded.pyramid;
    let long = f64::from(pyramid.full.width.max(pyramid.full.height));
    let level = &pyramid.levels[pyramid.level_for(f64::from(view_px) / long)];
    let control = RenderControl::default();

    // Result level: a render against a memory hit and a disk hit (a new session).
    let (mut render_ms, mut hit_ms, mut disk_hit_ms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut caches = PreviewCaches::new(&performance, budget, Some(disk()?));
        let t = Instant::now();
        let preview =
            caches.get_or_render(engine, &preview_request(&loaded, level, chain), &control)?;
        render_ms.push(ms(t.elapsed()));
        let t = Instant::now();
        caches.get_or_render(engine, &preview_request(&loaded, level, chain), &control)?;
        hit_ms.push(ms(t.elapsed()));
        caches.persist(preview.key, &preview.frame);
        let mut next_session = PreviewCaches::new(&performance, budget, Some(disk()?));
        let t = Instant::now();
        next_session.get_or_render(engine, &preview_request(&loaded, level, chain), &control)?;
        disk_hit_ms.push(ms(t.elapsed()));
        disk()?.clear();
    }
    let render = median(render_ms);
    latencies.push(LevelLatency {
        level: "result (memory)",
        miss: "render the preview",
        miss_ms: render,
        hit_ms: median(hit_ms),
        spec_claim: "95–100 %",
    });
    latencies.push(LevelLatency {
        level: "result (disk)",
        miss: "render the preview",
        miss_ms: render,
        hit_ms: median(disk_hit_ms),
        spec_claim: "80–95 %",
    });

    // Intermediate level: editing the last op, with and without the prefix cache.
    let last = chain.ops.len() - 1;
    let edit_times = |performance: &Performance| -> Result<f64> {
        let mut caches = PreviewCaches::new(performance, budget, None);
        let mut times = Vec::new();
        for i in 0..runs + 2 {
            let edit = edited(chain, last, 0.05 + 0.9 * (i as f64 / (runs + 2) as f64));
            let t = Instant::now();
            caches.get_or_render(engine, &preview_request(&loaded, level, &edit), &control)?;
            // The first two edits find the edit point and keep the prefix.
            if i >= 2 {
                times.push(ms(t.elapsed()));
            }
        }
        Ok(median(times))
    };
    let without = edit_times(&Performance {
        enable_intermediate_cache: false,
        ..performance.clone()
    })?;
    latencies.push(LevelLatency {
        level: "intermediate (memory)",
        miss: "render the whole chain",
        miss_ms: without,
        hit_ms: edit_times(&performance)?,
        spec_claim: "40–60 %",
    });

    // A scripted session: drag the last op (12 steps), drag the first (12), undo 12 steps,
    // redo 6, then toggle the middle op off and on three times.
    let mut caches = PreviewCaches::new(&performance, budget, None);
    let mut history: Vec<Chain> = vec![chain.clone()];
    for (op, steps) in [(last, 12), (0, 12)] {
        for s in 0..steps {
            let next = edited(history.last().unwrap_or(chain), op, 0.1 + 0.06 * s as f64);
            history.push(next);
        }
    }
    let mut script: Vec<Chain> = history.clone();
    script.extend(history.iter().rev().skip(1).take(12).cloned());
    script.extend(history.iter().rev().skip(12 - 6).take(6).cloned());
    let middle = chain.ops.len() / 2;
    for _ in 0..3 {
        let mut off = script.last().cloned().unwrap_or_else(|| chain.clone());
        off.ops[middle].enabled = false;
        script.push(off.clone());
        off.ops[middle].enabled = true;
        script.push(off);
    }
    for c in &script {
        caches.get_or_render(engine, &preview_request(&loaded, level, c), &control)?;
    }
    Ok(CacheReport {
        source_px: (pyramid.full.width, pyramid.full.height),
        level_px: (level.image.width(), level.image.height()),
        latencies,
        session_requests: script.len(),
        session: caches.stats(),
    })
}

fn preview_request<'a>(loaded: &LoadedSource, level: &'a Level, chain: &'a Chain) -> Request<'a> {
    Request {
        source: loaded.key,
        image: &level.image,
        scale: level.scale,
        orientation: loaded.orientation,
        chain,
        region: None,
        detail: Some(loaded.pyramid.detail),
    }
}

impl CacheReport {
    /// The report as text.
    pub fn text(&self) -> String {
        let mut out = format!(
            "source {}x{} px, preview level {}x{} px\n{:<22} {:<24} {:>10} {:>10} {:>10}  spec\n",
            self.source_px.0,
            self.source_px.1,
            self.level_px.0,
            self.level_px.1,
            "level",
            "a miss means",
            "miss ms",
            "hit ms",
            "saved"
        );
        for l in &self.latencies {
            out.push_str(&format!(
                "{:<22} {:<24} {:>10.1} {:>10.1} {:>9.1}%  {}\n",
                l.level,
                l.miss,
                l.miss_ms,
                l.hit_ms,
                l.reduction_pct(),
                l.spec_claim
            ));
        }
        out.push_str(&format!(
            "scripted session ({} previews: two slider drags, undo, redo, toggles):\n",
            self.session_requests
        ));
        for l in &self.session {
            out.push_str(&format!(
                "  {:<13} {:>4} hits {:>4} misses  {}\n",
                l.name,
                l.hits,
                l.misses,
                l.hit_rate()
                    .map_or("–".to_owned(), |r| format!("{:.0} % hit rate", r * 100.0))
            ));
        }
        out.push_str("(spec: result 15–25 %, intermediate 20–30 % hit rates; the disk thumbnail figure is the\n time to the first pyramid to preview from: its levels up to 2048 px)\n");
        out
    }
}
