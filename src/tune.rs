//! `opossum tune`: a short calibration of this machine (about ten seconds) that picks the settings whose best
//! value depends on the hardware, and stores both the choice and the measurements in
//! `opossum.toml` (`[performance]` and `[tuning]`), where Settings shows them and the user can
//! change them.
//!
//! - `min_tile_size`: the smallest tile edge the renderer uses (tiles grow with the chain's
//!   halo): the edge at which a representative chain renders fastest here (cache sizes).
//! - `parallel_images`: batch and watch render one image at a time on all threads (tiles in
//!   parallel) or one image per thread, whichever finishes a set of small images sooner.
//! - `gpu_enabled`: previews on the GPU only when its frame time beats the CPU path (a
//!   software Vulkan such as lavapipe is slower than the CPU path).
//!
//! Also recorded: memory bandwidth and each benchmarked op's cost per megapixel.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use image::DynamicImage;
use serde::{Deserialize, Serialize};

use crate::bench::{self, BenchCase};
use crate::chain::Chain;
use crate::chain::raw::RawValue;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::Result;
use crate::io::decode::Orientation;

/// What a calibration measured and chose (`[tuning]` in opossum.toml).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuning {
    /// When it ran (UTC, `YYYY-MM-DD`).
    pub date: String,
    /// Render threads during the calibration.
    pub threads: usize,
    /// Memory copy bandwidth, GiB/s.
    pub memory_gib_per_s: f64,
    /// Each benchmarked op's render time per megapixel (1024² source), ms.
    pub op_ms_per_mpx: BTreeMap<String, f64>,
    /// Representative chain at each tile edge (2048² source in a full run), ms.
    pub tile_ms: BTreeMap<String, f64>,
    /// Small images per second, one at a time on all threads (`"1"`) and one per thread.
    pub images_per_s: BTreeMap<String, f64>,
    /// Preview frame on the CPU path, ms (p50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_cpu_ms: Option<f64>,
    /// Preview frame on the GPU path, ms (p50), when a GPU could be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_gpu_ms: Option<f64>,
    /// Chosen `min_tile_size`.
    pub min_tile_size: u32,
    /// Chosen `parallel_images`.
    pub parallel_images: usize,
    /// Chosen `gpu_enabled` (absent when the GPU could not be measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_previews: Option<bool>,
}

impl Tuning {
    /// One line for the settings window.
    pub fn summary(&self) -> String {
        let previews = match (self.gpu_previews, self.preview_gpu_ms, self.preview_cpu_ms) {
            (Some(gpu), Some(g), Some(c)) => format!(
                "previews on the {} (GPU {g:.0} ms, CPU {c:.0} ms a frame)",
                if gpu { "GPU" } else { "CPU" }
            ),
            _ => "previews: GPU not measured".to_owned(),
        };
        format!(
            "Tuned {} on {} threads: min tile {} px, {} image(s) at once, {previews}, memory {:.1} GiB/s",
            self.date,
            self.threads,
            self.min_tile_size,
            self.parallel_images,
            self.memory_gib_per_s
        )
    }

    /// Apply the choices to `config`'s `[performance]` and record this calibration.
    pub fn apply(&self, config: &mut Config) {
        config.performance.min_tile_size = self.min_tile_size;
        config.performance.parallel_images = self.parallel_images;
        if let Some(gpu) = self.gpu_previews {
            config.performance.gpu_enabled = gpu;
        }
        config.tuning = Some(self.clone());
    }
}

/// Workload sizes: the full calibration, or a quick one (tests, slow machines).
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Side of the tile-test source, px.
    pub tile_side: u32,
    /// Side of the per-op source, px.
    pub op_side: u32,
    /// Small images for the images-vs-tiles test, and their long side.
    pub images: usize,
    /// Long side of those images, px.
    pub image_side: u32,
    /// Timed runs per measurement (the median counts).
    pub runs: usize,
    /// Preview source (WxH) and viewport.
    pub preview: ((u32, u32), (u32, u32)),
}

impl Workload {
    /// About 20–40 s on two cores.
    pub const FULL: Workload = Workload {
        tile_side: 2048,
        op_side: 1024,
        images: 8,
        image_side: 1024,
        runs: 3,
        preview: ((3000, 2000), (1600, 1000)),
    };
    /// A few seconds.
    pub const QUICK: Workload = Workload {
        tile_side: 512,
        op_side: 256,
        images: 4,
        image_side: 256,
        runs: 1,
        preview: ((600, 400), (400, 300)),
    };
}

/// Tile edges tried.
const TILE_EDGES: [u32; 4] = [64, 128, 256, 512];

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Memory copy bandwidth in GiB/s (best of three 64-MiB copies).
fn memory_bandwidth() -> f64 {
    const BYTES: usize = 64 << 20;
    let src = vec![1u8; BYTES];
    let mut dst = vec![0u8; BYTES];
    let best = (0..3)
        .map(|_| {
            let t = Instant::now();
            dst.copy_from_slice(&src);
            std::hint::black_box(&dst);
            t.elapsed()
        })
        .min()
        .unwrap_or(Duration::from_secs(1));
    (BYTES as f64 / f64::from(1u32 << 30)) / best.as_secs_f64().max(1e-9)
}

/// `first`, then brightness 1.1 / contrast 1.2 and an unsharp mask: the tile test's chain
/// (after a blur) and the batch issue's (after a fit).
fn then_colour_and_sharpen(first: crate::chain::ChainOp) -> Chain {
    Chain {
        name: None,
        ops: vec![
            first,
            bench::step(
                "adjust_colors",
                &[
                    ("brightness", RawValue::Float(1.1)),
                    ("contrast", RawValue::Float(1.2)),
                ],
            ),
            bench::step("sharpen", &[("amount", RawValue::Float(1.0))]),
        ],
        vectorize: None,
    }
}

/// Blur, colour and sharpen: the representative chain of the tile test.
fn probe_chain() -> Chain {
    then_colour_and_sharpen(bench::step(
        "gaussian_blur",
        &[("sigma", RawValue::Float(2.0))],
    ))
}

/// The batch issue's chain, scaled to `side`: fit 800×600 (at 1024), colour, sharpen.
fn batch_chain(side: u32) -> Chain {
    let (w, h) = (side * 25 / 32, side * 75 / 128);
    then_colour_and_sharpen(bench::step(
        "resize",
        &[
            ("width", RawValue::Int(i64::from(w))),
            ("height", RawValue::Int(i64::from(h))),
        ],
    ))
}

fn render_once(engine: &Engine, source: &DynamicImage, chain: &Chain) -> Result<()> {
    engine
        .render_source(
            source,
            Orientation::NoTransforms,
            chain,
            false,
            &Default::default(),
        )
        .map(drop)
}

/// Run the calibration with `config`'s threads and memory limit. `progress` gets a line per
/// step.
pub fn calibrate(
    config: &Config,
    workload: Workload,
    mut progress: impl FnMut(&str),
) -> Result<Tuning> {
    let engine = Engine::new(config.clone())?;
    let threads = engine.pool().current_num_threads();

    progress("memory bandwidth");
    let memory_gib_per_s = memory_bandwidth();

    progress("cost of each operation");
    let op_source = bench::synthetic_photo(workload.op_side);
    let mpx = f64::from(workload.op_side).powi(2) / 1e6;
    let mut op_ms_per_mpx = BTreeMap::new();
    for case in bench::peer_cases() {
        let BenchCase { name, chain, .. } = case;
        let (m, _) =
            bench::time_chain(&engine, &op_source, &chain(workload.op_side), workload.runs)?;
        op_ms_per_mpx.insert(name.to_owned(), m.as_secs_f64() * 1e3 / mpx);
    }

    progress("tile size");
    let tile_source = bench::synthetic_photo(workload.tile_side);
    let chain = probe_chain();
    let mut tile_ms = BTreeMap::new();
    let mut timed = Vec::new();
    for edge in TILE_EDGES {
        let mut c = config.clone();
        c.performance.min_tile_size = edge;
        c.performance.tile_size = edge;
        let tiled = Engine::new(c)?;
        let (m, _) = bench::time_chain(&tiled, &tile_source, &chain, workload.runs)?;
        tile_ms.insert(edge.to_string(), m.as_secs_f64() * 1e3);
        timed.push((m, edge));
    }
    let min_tile_size = pick_tile(&timed);

    progress("images at once or tiles in parallel");
    let images: Vec<DynamicImage> = (0..workload.images)
        .map(|i| {
            bench::preview::synthetic(workload.image_side, workload.image_side * 3 / 4 + i as u32)
        })
        .collect();
    let chain = batch_chain(workload.image_side);
    let one_at_a_time = |engine: &Engine| -> Result<Duration> {
        let t = Instant::now();
        for image in &images {
            render_once(engine, image, &chain)?;
        }
        Ok(t.elapsed())
    };
    let per_thread = |engine: &Engine| -> Result<Duration> {
        let t = Instant::now();
        let share = engine.with_budget(engine.budget_bytes() / threads.max(1) as u64);
        let results: Vec<Result<()>> = engine.pool().install(|| {
            use rayon::prelude::*;
            images
                .par_iter()
                .map(|image| render_once(&share, image, &chain))
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(t.elapsed())
    };
    let mut sequential = Vec::new();
    let mut parallel = Vec::new();
    for _ in 0..workload.runs.max(1) {
        sequential.push(one_at_a_time(&engine)?);
        parallel.push(per_thread(&engine)?);
    }
    let (sequential, parallel) = (median(sequential), median(parallel));
    let rate = |d: Duration| images.len() as f64 / d.as_secs_f64().max(1e-9);
    let mut images_per_s = BTreeMap::new();
    images_per_s.insert("1".to_owned(), rate(sequential));
    images_per_s.insert(threads.to_string(), rate(parallel));
    let parallel_images = if parallel < sequential { threads } else { 1 };

    progress("preview frame, CPU and GPU");
    let (source, viewport) = workload.preview;
    let preview = bench::PreviewBench::new(None, source, viewport)?;
    let runs = workload.runs.max(3);
    let preview_cpu_ms = Some(preview.run_cpu(&engine, runs)?.p50());
    let preview_gpu_ms = preview.run_gpu(&engine, runs).ok().map(|r| r.p50());
    let gpu_previews = match (preview_gpu_ms, preview_cpu_ms) {
        (Some(g), Some(c)) => Some(g <= c),
        _ => None,
    };

    Ok(Tuning {
        date: crate::clock::utc_date(std::time::SystemTime::now()),
        threads,
        memory_gib_per_s,
        op_ms_per_mpx,
        tile_ms,
        images_per_s,
        preview_cpu_ms,
        preview_gpu_ms,
        min_tile_size,
        parallel_images,
        gpu_previews,
    })
}

/// The fastest tile edge, unless the default is within 3% of it (differences that small are
/// noise on a shared machine, and the default is what the rest was measured with).
fn pick_tile(timed: &[(Duration, u32)]) -> u32 {
    let default = crate::engine::render::MIN_AUTO_TILE_PX;
    let Some(&(best, edge)) = timed.iter().min() else {
        return default;
    };
    match timed.iter().find(|(_, e)| *e == default) {
        Some(&(d, _)) if d.as_secs_f64() <= best.as_secs_f64() * 1.03 => default,
        _ => edge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quick_calibration_picks_valid_settings_that_round_trip_through_the_config() {
        let mut config = Config::default();
        config.performance.max_cpu_cores = 2;
        let tuning = calibrate(&config, Workload::QUICK, |_| {}).unwrap();
        assert!(TILE_EDGES.contains(&tuning.min_tile_size));
        assert!([1, 2].contains(&tuning.parallel_images));
        assert_eq!(tuning.tile_ms.len(), TILE_EDGES.len());
        assert_eq!(tuning.op_ms_per_mpx.len(), bench::peer_cases().len());
        assert!(tuning.op_ms_per_mpx.values().all(|&ms| ms > 0.0));
        assert!(tuning.memory_gib_per_s > 0.0);
        assert_eq!(tuning.date.len(), 10);
        tuning.apply(&mut config);
        let text = toml::to_string_pretty(&config).unwrap();
        let back = Config::parse(&text).unwrap();
        assert_eq!(back, config);
        assert_eq!(back.performance.min_tile_size, tuning.min_tile_size);
        assert!(tuning.summary().contains("min tile"));
    }

    #[test]
    fn the_default_tile_wins_ties() {
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(
            pick_tile(&[(ms(100), 64), (ms(101), 128), (ms(99), 256)]),
            128
        );
        assert_eq!(
            pick_tile(&[(ms(100), 64), (ms(120), 128), (ms(90), 256)]),
            256
        );
    }
}
