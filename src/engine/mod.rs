//! The engine: plans a chain for an image and renders it, tiled, on a dedicated rayon pool under
//! one memory budget. It knows nothing about any UI; the CLI (and later the app, batch and
//! watch) call it.
//!
//! Data flow: `io::decode` → [`source::Source`] → [`plan::Plan`] (kernels from `ops`) →
//! [`render::render`] (tiles) → [`sink::OutputSink`] → `io::encode` (atomic write).

pub mod convolve;
pub mod geom;
pub mod plan;
pub mod render;
pub mod sink;
pub mod source;
pub mod tile;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::chain::{Chain, OutputLimits};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::decode::{self, DecodeLimits, Decoded, Orientation};
use crate::io::encode::{self, EncodeOptions, OutputImage};
use geom::Size;
use plan::Plan;
use render::{RenderControl, RenderStats, TileSettings};
use sink::OutputSink;
use source::Source;

/// Timings and sizes of one `render_file`.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderReport {
    /// Stored size of the input.
    pub input_size: Size,
    /// Size of the output.
    pub output_size: Size,
    /// Time spent decoding.
    pub decode: Duration,
    /// Time spent rendering tiles.
    pub render: Duration,
    /// Time spent encoding and writing.
    pub encode: Duration,
    /// Tiling statistics.
    pub stats: RenderStats,
}

/// The image engine: configuration plus a render thread pool.
pub struct Engine {
    config: Config,
    pool: rayon::ThreadPool,
}

impl Engine {
    /// An engine with `config` (threads from `max_cpu_cores`).
    pub fn new(config: Config) -> Result<Engine> {
        config.validate()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads())
            .thread_name(|i| format!("opossum-render-{i}"))
            .build()
            .map_err(|e| Error::Internal(format!("cannot start render threads: {e}")))?;
        Ok(Engine { config, pool })
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The render pool.
    pub fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
    }

    /// Memory budget in bytes.
    pub fn budget_bytes(&self) -> u64 {
        self.config.performance.max_memory_usage.0
    }

    /// Limits for decoding inputs.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_pixels: self.config.limits.max_image_pixels,
            max_side_px: self.config.limits.max_image_side_px,
            max_alloc_bytes: self.budget_bytes(),
            ..DecodeLimits::default()
        }
    }

    /// Limits for what ops may produce.
    pub fn output_limits(&self) -> OutputLimits {
        OutputLimits {
            max_pixels: self.config.limits.max_image_pixels,
            max_side_px: self.config.limits.max_image_side_px,
        }
    }

    /// Tile settings from the config.
    pub fn tile_settings(&self) -> TileSettings {
        TileSettings {
            tile_px: self.config.performance.tile_size,
            budget_bytes: self.budget_bytes(),
        }
    }

    /// Render `chain` over `source` (stored with `orientation`) at full resolution into an
    /// 8- or 16-bit image.
    pub fn render_source(
        &self,
        source: &dyn Source,
        orientation: Orientation,
        chain: &Chain,
        high_bit_depth: bool,
        control: &RenderControl<'_>,
    ) -> Result<(OutputImage, RenderStats)> {
        puffin::profile_function!();
        let plan = Plan::new(chain, source.size(), orientation, 1.0, self.output_limits())?;
        let reserved = source.bytes() + OutputSink::bytes_for(plan.output, high_bit_depth);
        if reserved > self.budget_bytes() {
            return Err(Error::Budget {
                what: format!(
                    "holding the {}x{} px source and the {}x{} px output",
                    plan.input.width, plan.input.height, plan.output.width, plan.output.height
                ),
                needed_bytes: reserved,
                limit_bytes: self.budget_bytes(),
            });
        }
        let sink = OutputSink::new(plan.output, high_bit_depth);
        let stats = catch_panics(|| {
            render::render(
                &self.pool,
                source,
                &plan,
                self.tile_settings(),
                reserved,
                control,
                &sink,
            )
        })?;
        Ok((sink.finish(), stats))
    }

    /// Decode `input`, render `chain`, encode and write `output` atomically. Refuses to write
    /// over the input unless `overwrite_input`.
    pub fn render_file(
        &self,
        input: &Path,
        chain: &Chain,
        output: &Path,
        options: &EncodeOptions,
        overwrite_input: bool,
        control: &RenderControl<'_>,
    ) -> Result<RenderReport> {
        puffin::profile_function!();
        if !overwrite_input && crate::io::same_file(input, output) {
            return Err(Error::WouldOverwriteInput {
                path: output.to_path_buf(),
            });
        }
        let t0 = Instant::now();
        let decoded: Decoded = decode::decode_file(input, &self.decode_limits())?;
        let t1 = Instant::now();
        let high = decoded.is_high_bit_depth() && options.format.supports_16_bit();
        let (image, stats) =
            self.render_source(&decoded.image, decoded.orientation, chain, high, control)?;
        let input_size = decoded.size();
        let icc = decoded.icc_profile.clone();
        drop(decoded);
        let t2 = Instant::now();
        encode::write_image(output, &image, options, icc.as_deref())?;
        let t3 = Instant::now();
        Ok(RenderReport {
            input_size,
            output_size: image.size,
            decode: t1 - t0,
            render: t2 - t1,
            encode: t3 - t2,
            stats,
        })
    }
}

/// Run `f`, turning a panic (a bug) into [`Error::Internal`] so callers report it like any
/// other failure instead of crashing.
pub fn catch_panics<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(Error::Internal(message))
    })
}
