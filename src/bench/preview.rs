//! `opossum bench preview`: the time from a parameter change to a finished preview frame, on
//! the GPU path and the CPU path, for the 5-op chain (resize, adjust_colors,
//! gaussian_blur, sharpen, watermark) on a large source at a viewport size.
//!
//! Both paths do what the app's preview worker does: the level that fits the viewport is
//! chosen from the pyramid, spatial parameters are scaled to it, and a run ends when the
//! frame is ready to draw (CPU: 8-bit pixels and their histogram; GPU: display textures and
//! the histogram read back, with the GPU idle). The GPU path keeps its stage cache between
//! runs, as in the app, so a change to op 2 re-runs ops 2..5.

use std::sync::Arc;
use std::time::Instant;

use image::DynamicImage;

use super::{chain, step};
use crate::chain::Chain;
use crate::chain::raw::RawValue;
use crate::engine::Engine;
use crate::engine::geom::Size;
use crate::engine::pyramid::Pyramid;
use crate::error::Result;
use crate::io::decode::Orientation;

/// The prepared source, pyramid and chain.
pub struct PreviewBench {
    pyramid: Arc<Pyramid>,
    /// Pyramid level the viewport needs.
    pub level: usize,
    /// Its size.
    pub level_size: Size,
    chain: Chain,
}

/// Latencies of one path.
pub struct PathResult {
    /// `cpu` or `gpu (adapter)`.
    pub path: String,
    /// The first frame (uploads, pipeline creation), ms.
    pub first_ms: f64,
    /// Per-run latencies, ms, sorted.
    pub runs_ms: Vec<f64>,
    /// Per-stage times of the last frame.
    pub stages: Vec<(String, f64)>,
}

impl PathResult {
    /// Median latency, ms.
    pub fn p50(&self) -> f64 {
        self.quantile(0.5)
    }

    fn quantile(&self, q: f64) -> f64 {
        let i = ((self.runs_ms.len() as f64 - 1.0) * q).round() as usize;
        self.runs_ms.get(i).copied().unwrap_or(f64::NAN)
    }

    /// One line: p50, p95, first frame.
    pub fn line(&self) -> String {
        format!(
            "{:<5} p50 {:>8.1} ms   p95 {:>8.1} ms   first frame {:>8.1} ms   ({} runs; {})",
            self.path.split(' ').next().unwrap_or(""),
            self.quantile(0.5),
            self.quantile(0.95),
            self.first_ms,
            self.runs_ms.len(),
            self.path
        )
    }

    /// As JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path,
            "p50_ms": self.quantile(0.5),
            "p95_ms": self.quantile(0.95),
            "first_ms": self.first_ms,
            "runs_ms": self.runs_ms,
            "stages_ms": self.stages,
        })
    }
}

/// A synthetic photo-like image of `width`×`height` (gradients, waves, a disc, noise).
pub fn synthetic(width: u32, height: u32) -> DynamicImage {
    let side = width.max(height);
    let square = super::synthetic_photo(side.min(4096));
    square.resize_exact(width, height, image::imageops::FilterType::Triangle)
}

impl PreviewBench {
    /// Build the source (`image` resized, or synthetic), its pyramid, and the
    /// chain, and pick the level for `viewport`.
    pub fn new(
        image: Option<&DynamicImage>,
        (width, height): (u32, u32),
        viewport: (u32, u32),
    ) -> Result<Self> {
        let source = match image {
            Some(img) => img.resize_exact(width, height, image::imageops::FilterType::Lanczos3),
            None => synthetic(width, height),
        };
        let pyramid = Arc::new(Pyramid::build(&source)?);
        let fit = (f64::from(viewport.0) / f64::from(width))
            .min(f64::from(viewport.1) / f64::from(height))
            .min(1.0);
        let level = pyramid.level_for(fit);
        let l = &pyramid.levels[level].image;
        let level_size = Size::new(l.width(), l.height());
        let chain = chain(vec![
            step(
                "resize",
                &[
                    ("width", RawValue::Int(i64::from(width * 2 / 3))),
                    ("height", RawValue::Int(0)),
                ],
            ),
            step("adjust_colors", &[("brightness", RawValue::Float(1.05))]),
            step("gaussian_blur", &[("sigma", RawValue::Float(3.0))]),
            step("sharpen", &[("amount", RawValue::Float(0.6))]),
            step(
                "watermark",
                &[
                    ("text", RawValue::String("© Opossum bench".into())),
                    ("font_size", RawValue::Float(f64::from(height) / 20.0)),
                ],
            ),
        ]);
        Ok(Self {
            pyramid,
            level,
            level_size,
            chain,
        })
    }

    /// The chain, one op per entry.
    pub fn describe(&self) -> String {
        self.chain
            .ops
            .iter()
            .map(|op| op.def.id)
            .collect::<Vec<_>>()
            .join(" → ")
    }

    /// The chain with run `i`'s brightness (every run is a real change).
    fn edited(&self, i: usize) -> Chain {
        let mut chain = self.chain.clone();
        let op = &mut chain.ops[1];
        let value = 0.8 + 0.4 * ((i % 40) as f64 / 40.0);
        op.params
            .set(op.def.params, "brightness", &RawValue::Float(value))
            .ok();
        chain
    }

    /// One first frame of the unedited chain, then `runs` frames each after a change.
    fn measure<E>(
        &self,
        path: String,
        runs: usize,
        mut frame: impl FnMut(&Chain) -> std::result::Result<(f64, Vec<(String, f64)>), E>,
    ) -> std::result::Result<PathResult, E> {
        let (first_ms, _) = frame(&self.chain)?;
        let mut runs_ms = Vec::with_capacity(runs);
        let mut stages = Vec::new();
        for i in 0..runs.max(1) {
            let (ms, s) = frame(&self.edited(i))?;
            runs_ms.push(ms);
            stages = s;
        }
        runs_ms.sort_by(f64::total_cmp);
        Ok(PathResult {
            path,
            first_ms,
            runs_ms,
            stages,
        })
    }

    /// The CPU path: the engine renders the level, then 8-bit pixels and the histogram.
    pub fn run_cpu(&self, engine: &Engine, runs: usize) -> Result<PathResult> {
        let level = &self.pyramid.levels[self.level];
        let frame = |chain: &Chain| -> Result<(f64, Vec<(String, f64)>)> {
            let t = Instant::now();
            let (out, stats) = engine.render_source_scaled(
                &level.image,
                Orientation::NoTransforms,
                chain,
                level.scale,
                Some(self.pyramid.detail),
                false,
                &Default::default(),
            )?;
            let rgba = out.to_rgba8();
            let mut histogram = [0u32; 256];
            for px in rgba.chunks_exact(4) {
                histogram[px[0] as usize] += 1;
            }
            std::hint::black_box(histogram);
            let stages = stats
                .stage_times
                .iter()
                .map(|(l, d)| (l.clone(), d.as_secs_f64() * 1000.0))
                .collect();
            Ok((t.elapsed().as_secs_f64() * 1000.0, stages))
        };
        self.measure(
            format!("cpu ({} threads)", engine.pool().current_num_threads()),
            runs,
            frame,
        )
    }

    /// The GPU path on a headless device (the app uses eframe's). `Err` says why it could not
    /// run (no adapter, or built without the `gpu` feature).
    #[cfg(feature = "gpu")]
    pub fn run_gpu(&self, engine: &Engine, runs: usize) -> std::result::Result<PathResult, String> {
        use crate::gpu::{GpuContext, GpuRenderer, GpuRequest};
        let ctx = GpuContext::headless()?;
        let cancel = std::sync::atomic::AtomicBool::new(false);
        let adapter = ctx.adapter.clone();
        let mut renderer = GpuRenderer::new(ctx);
        let frame = |chain: &Chain| -> std::result::Result<(f64, Vec<(String, f64)>), String> {
            let t = Instant::now();
            let f = renderer
                .render(
                    &GpuRequest {
                        chain,
                        pyramid: &self.pyramid,
                        orientation: Orientation::NoTransforms,
                        level: self.level,
                        region: None,
                        limits: engine.output_limits(),
                        quality: engine.quality_preset(),
                    },
                    &cancel,
                )
                .map_err(|e| e.to_string())?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let stages = f.stages.iter().map(|s| (s.display_label(), s.ms)).collect();
            Ok((ms, stages))
        };
        self.measure(format!("gpu ({adapter})"), runs, frame)
    }

    /// Without the `gpu` feature there is no GPU path to measure.
    #[cfg(not(feature = "gpu"))]
    pub fn run_gpu(
        &self,
        _engine: &Engine,
        _runs: usize,
    ) -> std::result::Result<PathResult, String> {
        Err("this build has no GPU path (cargo feature `gpu`)".to_owned())
    }
}
