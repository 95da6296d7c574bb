//! The engine: plans a chain for an image and renders it, tiled, on a dedicated rayon pool under
//! one memory budget. It knows nothing about any UI; the CLI (and later the app, batch and
//! watch) call it.
//!
//! Data flow: `io::decode` → [`source::Source`] → [`plan::Plan`] (kernels from `ops`) →
//! [`render::render`] (tiles) → [`sink::OutputSink`] → `io::encode` (atomic write).

pub mod box_blur;
pub mod cached;
pub mod content;
pub mod convolve;
pub mod geom;
pub mod lut;
pub mod plan;
pub mod pyramid;
pub mod render;
pub mod shrink;
pub mod sink;
pub mod source;
pub mod stream;
pub mod thumbs;
pub mod tile;
pub mod u8_box;
pub mod u8_filter;
pub mod u8_grey;
pub mod u8_lead;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::chain::{Chain, OutputLimits};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::AtomicFile;
use crate::io::decode::{self, DecodeLimits, Decoded, Orientation};
use crate::io::encode::{self, EncodeOptions, OutputFormat, OutputImage};
use crate::io::rows::{JpegRows, PngRows, RowDecoder, RowsIn};
use geom::Size;
use image::ImageFormat;
use plan::Plan;
use render::{RenderControl, RenderStats, TileSettings};
use sink::OutputSink;
use source::Source;
use stream::StreamSource;
use tile::Tile;

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
    /// The source was decoded row by row.
    pub streamed_input: bool,
    /// The output was encoded band by band as it was rendered.
    pub streamed_output: bool,
    /// The JPEG was decoded at this many eighths of its size (8 = full; shrink-on-load).
    pub decode_eighths: u8,
}

impl RenderReport {
    /// The resolution-aware (shrink-on-load) and content-based choices made, for reports
    /// (`None`: none).
    pub fn choices(&self) -> Option<String> {
        let shrink = (self.decode_eighths < 8)
            .then(|| format!("JPEG decoded at {}/8 size", self.decode_eighths));
        // The same choice for many ops (a chain of 1000 blurs) is said once, with a count,
        // and a long list is cut: this is one line of the CLI's output.
        let mut distinct: Vec<(String, usize)> = Vec::new();
        for choice in shrink.into_iter().chain(self.stats.choices.iter().cloned()) {
            match distinct.iter_mut().find(|(c, _)| *c == choice) {
                Some((_, n)) => *n += 1,
                None => distinct.push((choice, 1)),
            }
        }
        let shown: Vec<String> = distinct
            .iter()
            .take(MAX_CHOICES_SHOWN)
            .map(|(c, n)| match n {
                1 => c.clone(),
                n => format!("{c} (x{n})"),
            })
            .collect();
        let more = distinct.len().saturating_sub(MAX_CHOICES_SHOWN);
        (!shown.is_empty()).then(|| match more {
            0 => shown.join(", "),
            more => format!("{} and {more} more", shown.join(", ")),
        })
    }
}

/// Whether any pixel of `image` is less than fully opaque (an image without alpha has none).
fn any_transparent(image: &image::DynamicImage) -> bool {
    use image::DynamicImage as D;
    match image {
        D::ImageLumaA8(i) => i.pixels().any(|p| p.0[1] != u8::MAX),
        D::ImageRgba8(i) => i.pixels().any(|p| p.0[3] != u8::MAX),
        D::ImageLumaA16(i) => i.pixels().any(|p| p.0[1] != u16::MAX),
        D::ImageRgba16(i) => i.pixels().any(|p| p.0[3] != u16::MAX),
        D::ImageRgba32F(i) => i.pixels().any(|p| p.0[3] < 1.0),
        other => other.color().has_alpha(),
    }
}

/// Whether every pixel of an 8-bit RGB or RGBA `image` is grey (R = G = B), as a whole render
/// of it is checked when encoded ([`OutputImage::is_grey`]); `false` for other layouts.
fn all_grey(image: &image::DynamicImage) -> bool {
    use image::DynamicImage as D;
    match image {
        D::ImageRgb8(i) => i.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]),
        D::ImageRgba8(i) => i.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]),
        _ => false,
    }
}

/// How many distinct algorithm choices [`RenderReport::choices`] lists.
const MAX_CHOICES_SHOWN: usize = 6;

/// The image engine: configuration plus a render thread pool.
pub struct Engine {
    config: Config,
    pool: std::sync::Arc<rayon::ThreadPool>,
}

impl Engine {
    /// An engine with `config` (threads from `max_cpu_cores`).
    pub fn new(config: Config) -> Result<Engine> {
        Self::with_pool(config, "opossum-render", false)
    }

    /// An engine whose render threads run at the lowest OS priority: the app's exports, batch
    /// and watch jobs, so that preview renders (normal priority) pre-empt them on a busy
    /// machine. Lowering the priority is best effort (a platform that refuses it keeps the
    /// normal one).
    pub fn background(config: Config) -> Result<Engine> {
        Self::with_pool(config, "opossum-background", true)
    }

    fn with_pool(config: Config, name: &'static str, low_priority: bool) -> Result<Engine> {
        config.validate()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads())
            .thread_name(move |i| format!("{name}-{i}"))
            .start_handler(move |_| {
                if low_priority {
                    let _ = thread_priority::set_current_thread_priority(
                        thread_priority::ThreadPriority::Min,
                    );
                }
            })
            .build()
            .map_err(|e| Error::Internal(format!("cannot start render threads: {e}")))?;
        Ok(Engine {
            config,
            pool: std::sync::Arc::new(pool),
        })
    }

    /// The same engine (sharing its render pool) with a memory budget of `budget_bytes`: one
    /// image's share when several render at once.
    pub fn with_budget(&self, budget_bytes: u64) -> Engine {
        let mut config = self.config.clone();
        config.performance.max_memory_usage = crate::config::ByteSize(budget_bytes);
        self.sharing_pool(config)
    }

    /// An engine with `config` on this engine's render pool.
    fn sharing_pool(&self, config: Config) -> Engine {
        Engine {
            config,
            pool: self.pool.clone(),
        }
    }

    /// The same engine (sharing its render pool) with the algorithms of `preset`.
    pub fn with_quality(&self, preset: crate::quality::QualityPreset) -> Engine {
        let mut config = self.config.clone();
        config.performance.quality = preset;
        config.performance.quality_vs_speed = None;
        self.sharing_pool(config)
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

    /// The quality preset in effect (config `quality` or `quality_vs_speed`).
    pub fn quality_preset(&self) -> crate::quality::QualityPreset {
        self.config.quality_preset()
    }

    /// Limits for what ops may produce.
    pub fn output_limits(&self) -> OutputLimits {
        OutputLimits {
            max_pixels: self.config.limits.max_image_pixels,
            max_side_px: self.config.limits.max_image_side_px,
        }
    }

    /// Tile settings for `plan`: the tile edge follows the chain's halo, up to `tile_size`
    /// ([`render::tile_px_for`]).
    pub fn tile_settings_for(&self, plan: &Plan) -> TileSettings {
        TileSettings {
            tile_px: render::tile_px_for(
                plan,
                self.config.performance.min_tile_size,
                self.config.performance.tile_size,
            ),
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
        self.render_source_scaled(
            source,
            orientation,
            chain,
            1.0,
            None,
            high_bit_depth,
            control,
        )
    }

    /// Render `chain` over `source`, a copy of the image at `scale` × full resolution (a
    /// pyramid level): spatial parameters are scaled the same way, so the result is the
    /// full-resolution render at that scale. `detail` is the full-resolution image's content
    /// measure (a pyramid's); `None` measures `source` when `scale` is 1 and otherwise keeps
    /// the preset's algorithms.
    #[allow(clippy::too_many_arguments)] // Previews pass them all; `render_source` fixes most.
    pub fn render_source_scaled(
        &self,
        source: &dyn Source,
        orientation: Orientation,
        chain: &Chain,
        scale: f64,
        detail: Option<content::Detail>,
        high_bit_depth: bool,
        control: &RenderControl<'_>,
    ) -> Result<(OutputImage, RenderStats)> {
        puffin::profile_function!();
        self.render_part(
            source,
            (orientation, chain, scale, detail),
            None,
            high_bit_depth,
            control,
        )
    }

    /// Render only `region` (in output pixels of the render at `scale`) of `chain` over
    /// `source`: the visible part of a zoomed-in preview. The pixels equal the same part of a
    /// whole render.
    pub fn render_region(
        &self,
        source: &dyn Source,
        orientation: Orientation,
        chain: &Chain,
        scale: f64,
        region: geom::Rect,
        control: &RenderControl<'_>,
    ) -> Result<(OutputImage, RenderStats)> {
        puffin::profile_function!();
        self.render_part(
            source,
            (orientation, chain, scale, None),
            Some(region),
            false,
            control,
        )
    }

    /// The whole output, or `region` of it, into an in-memory image under the budget.
    fn render_part(
        &self,
        source: &dyn Source,
        (orientation, chain, scale, detail): (Orientation, &Chain, f64, Option<content::Detail>),
        region: Option<geom::Rect>,
        high_bit_depth: bool,
        control: &RenderControl<'_>,
    ) -> Result<(OutputImage, RenderStats)> {
        let build = |detail| {
            Plan::for_content(
                chain,
                source.size(),
                orientation,
                scale,
                self.output_limits(),
                self.quality_preset(),
                detail,
            )
        };
        let mut plan = build(detail)?;
        // A full-resolution source is measured when some op's algorithm depends on content
        // (or on the source being opaque 8-bit, and it is); a pyramid level is not (previews
        // pass the full image's measure).
        let sensitive = plan.content_sensitive || plan.kind_sensitive && source.is_opaque_8bit();
        if sensitive && detail.is_none() && scale == 1.0 {
            plan = build(Some(content::Detail::measure(source)))?;
        }
        let spare = self
            .budget_bytes()
            .saturating_sub(source.bytes() + OutputSink::bytes_for(plan.output, high_bit_depth));
        // Whole 8-bit full-resolution renders only: a region would pay for the whole resize.
        let fast = region.is_none() && scale == 1.0 && !high_bit_depth;
        if fast
            && let Some((lead, tail, times)) =
                u8_lead::run_leading(&self.pool, source, &mut plan, spare)?
        {
            // A chain that the 8-bit kernels finish: their grey or RGB samples are the output.
            if tail.stages.is_empty() {
                let pixels = match lead {
                    image::DynamicImage::ImageLuma8(grey) => encode::Pixels::Grey8(grey.into_raw()),
                    image::DynamicImage::ImageRgb8(rgb) => encode::Pixels::Rgb8(rgb.into_raw()),
                    _ => return Err(Error::Internal("8-bit lead of 2 or 4 channels".to_owned())),
                };
                if control.cancelled() {
                    return Err(Error::Cancelled);
                }
                if let Some(progress) = control.progress {
                    progress(1, 1);
                }
                let image = OutputImage {
                    size: tail.output,
                    pixels,
                };
                return Ok((image, lead_stats(&tail, times)));
            }
            let (image, mut stats) = self.render_plan_holding(
                &lead,
                &tail,
                region,
                high_bit_depth,
                control,
                source.bytes(),
            )?;
            stats.stage_times.splice(0..0, times);
            return Ok((image, stats));
        }
        self.render_plan(source, &plan, region, high_bit_depth, control)
    }

    /// Render a built `plan` (or a part of one, see [`Plan::split_off`]) over `source`: the
    /// whole output, or `region` of it, into an in-memory image under the budget.
    pub fn render_plan(
        &self,
        source: &dyn Source,
        plan: &Plan,
        region: Option<geom::Rect>,
        high_bit_depth: bool,
        control: &RenderControl<'_>,
    ) -> Result<(OutputImage, RenderStats)> {
        self.render_plan_holding(source, plan, region, high_bit_depth, control, 0)
    }

    /// [`Engine::render_plan`] while `held_bytes` more (an earlier source) stay in memory.
    fn render_plan_holding(
        &self,
        source: &dyn Source,
        plan: &Plan,
        region: Option<geom::Rect>,
        high_bit_depth: bool,
        control: &RenderControl<'_>,
        held_bytes: u64,
    ) -> Result<(OutputImage, RenderStats)> {
        let region = region.map_or(plan.output.rect(), |r| r.intersect(plan.output.rect()));
        if region.is_empty() {
            return Err(Error::Internal(
                "the region lies outside the image".to_owned(),
            ));
        }
        let out_size = Size::new(region.width, region.height);
        let reserved =
            held_bytes + source.bytes() + OutputSink::bytes_for(out_size, high_bit_depth);
        if reserved > self.budget_bytes() {
            return Err(Error::Budget {
                what: format!(
                    "holding the {}x{} px source and the {}x{} px output",
                    plan.input.width, plan.input.height, out_size.width, out_size.height
                ),
                needed_bytes: reserved,
                limit_bytes: self.budget_bytes(),
            });
        }
        let sink = OutputSink::for_region(region, high_bit_depth);
        let stats = self.render_into(source, plan, Some(region), reserved, control, &sink)?;
        Ok((sink.finish(), stats))
    }

    /// [`render::render`] on this engine's pool and tile settings, panics caught.
    fn render_into(
        &self,
        source: &dyn Source,
        plan: &Plan,
        region: Option<geom::Rect>,
        reserved_bytes: u64,
        control: &RenderControl<'_>,
        sink: &dyn sink::TileSink,
    ) -> Result<RenderStats> {
        catch_panics(|| {
            render::render(
                &self.pool,
                source,
                plan,
                region,
                self.tile_settings_for(plan),
                reserved_bytes,
                control,
                sink,
            )
        })
    }

    /// Render all of `plan` over `source` into a working-format image (a chain prefix kept by
    /// the intermediate cache). Pixels equal what a whole render computes at that stage.
    pub fn render_plan_to_tile(
        &self,
        source: &dyn Source,
        plan: &Plan,
        control: &RenderControl<'_>,
    ) -> Result<(Tile, RenderStats)> {
        let reserved = source.bytes() + plan.output.pixels() * 16;
        let sink = sink::FullSink::new(plan.output);
        let stats = self.render_into(source, plan, None, reserved, control, &sink)?;
        Ok((sink.finish(), stats))
    }

    /// Decode `input`, render `chain`, encode and write `output` atomically. Refuses to write
    /// over the input unless `overwrite_input`.
    ///
    /// PNG and JPEG outputs are streamed: bands of rows are rendered top to bottom and written
    /// as they finish. When the chain reads its source top to bottom as well, PNG inputs (and
    /// JPEG inputs too large to decode comfortably, over a quarter of the memory budget) are
    /// decoded row by row too, so memory depends on the width, not the height. Everything else
    /// decodes the source whole and, for WebP and TIFF, encodes the output whole.
    pub fn render_file(
        &self,
        input: &Path,
        chain: &Chain,
        output: &Path,
        options: &EncodeOptions,
        overwrite_input: bool,
        control: &RenderControl<'_>,
    ) -> Result<RenderReport> {
        self.render_file_with(
            input,
            (chain, None),
            output,
            options,
            overwrite_input,
            control,
        )
    }

    /// [`Engine::render_file`] for a file whose content measure is known (the app exports
    /// with its pyramid's, so the export picks the algorithms its preview showed, also where
    /// the file is streamed or decoded reduced). `None` measures the decoded image.
    pub fn render_file_with(
        &self,
        input: &Path,
        (chain, detail): (&Chain, Option<content::Detail>),
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
        catch_panics(|| {
            let t0 = Instant::now();
            let probe = decode::probe_details(input, &self.decode_limits())?;
            let plan = Plan::for_content(
                chain,
                probe.size,
                probe.orientation,
                1.0,
                self.output_limits(),
                self.quality_preset(),
                detail,
            )?;
            options.format.check_size(plan.output, output)?;
            let streams_out = matches!(options.format, OutputFormat::Png | OutputFormat::Jpeg)
                && !plan
                    .stages
                    .iter()
                    .any(|s| matches!(s.kernel, crate::ops::Kernel::Global(_)));
            // Resolution-aware: a JPEG the chain starts by shrinking is decoded reduced.
            if let Some(s) = shrink::plan(chain, &probe, &plan, self.quality_preset())
                && let Some(rows) = JpegRows::open_scaled(input, s.numerator)?
            {
                let reduced = decode::Probe {
                    size: rows.size(),
                    ..probe.clone()
                };
                let plan = Plan::for_content(
                    &s.chain,
                    reduced.size,
                    reduced.orientation,
                    1.0,
                    self.output_limits(),
                    self.quality_preset(),
                    detail,
                )?;
                let mut report = if streams_out {
                    let rows: Box<dyn RowDecoder> = Box::new(rows);
                    self.render_streaming(
                        input,
                        &reduced,
                        (&s.chain, plan, detail),
                        output,
                        options,
                        control,
                        t0,
                        Some(rows),
                    )?
                } else {
                    let mut rows = rows;
                    let decoded = Decoded {
                        image: crate::io::rows::read_all(&mut rows)?,
                        format: ImageFormat::Jpeg,
                        orientation: probe.orientation,
                        icc_profile: probe.icc_profile.clone(),
                    };
                    self.render_whole(
                        input,
                        (&s.chain, detail),
                        output,
                        options,
                        control,
                        t0,
                        Some(decoded),
                    )?
                };
                report.input_size = probe.size;
                report.decode_eighths = s.numerator;
                return Ok(report);
            }
            if streams_out {
                self.render_streaming(
                    input,
                    &probe,
                    (chain, plan, detail),
                    output,
                    options,
                    control,
                    t0,
                    None,
                )
            } else {
                self.render_whole(input, (chain, detail), output, options, control, t0, None)
            }
        })
        .map_err(|e| match e {
            // Say which file: a batch prints the message alone.
            Error::Budget {
                what,
                needed_bytes,
                limit_bytes,
            } => Error::Budget {
                what: format!("{}: {what}", input.display()),
                needed_bytes,
                limit_bytes,
            },
            // A chain that does not fit this image (a crop outside it): name the image.
            Error::Chain {
                location,
                reason,
                path: None,
            } => Error::Chain {
                location,
                reason: format!("{reason} (input {})", input.display()),
                path: None,
            },
            e => e,
        })
    }

    /// Traces a finished render into SVG on this engine's pool (the vectorize sink, the app's
    /// Vectorize panel). `progress` gets the share done, 0..=1.
    pub fn trace(
        &self,
        image: &OutputImage,
        options: &crate::vectorize::VectorizeOptions,
        measure: bool,
        cancel: &std::sync::atomic::AtomicBool,
        progress: &(dyn Fn(f32) + Sync),
    ) -> Result<crate::vectorize::Vectorized> {
        puffin::profile_function!();
        let rgba = image.to_rgba8();
        let pixels: &[[u8; 4]] = bytemuck::cast_slice(&rgba);
        self.pool().install(|| {
            crate::vectorize::vectorize_with_progress(
                pixels,
                image.size.width,
                image.size.height,
                options,
                measure,
                cancel,
                progress,
            )
        })
    }

    /// The vectorize sink: traces the finished render with the chain's `[vectorize]` settings
    /// (the logo preset when it has none) and writes the SVG atomically.
    fn write_svg(&self, output: &Path, image: &OutputImage, chain: &Chain) -> Result<()> {
        let options = chain.vectorize.clone().unwrap_or_default();
        let cancel = std::sync::atomic::AtomicBool::new(false);
        let traced = self.trace(image, &options, false, &cancel, &|_| {})?;
        crate::io::write_atomic(output, |w| w.write_all(traced.svg.as_bytes()))
    }

    #[allow(clippy::too_many_arguments)] // render_file's state, passed through once.
    fn render_whole(
        &self,
        input: &Path,
        (chain, detail): (&Chain, Option<content::Detail>),
        output: &Path,
        options: &EncodeOptions,
        control: &RenderControl<'_>,
        t0: Instant,
        decoded: Option<Decoded>,
    ) -> Result<RenderReport> {
        let decoded: Decoded = match decoded {
            Some(decoded) => decoded,
            None => decode::decode_file(input, &self.decode_limits())?,
        };
        let t1 = Instant::now();
        let high = decoded.is_high_bit_depth() && options.format.supports_16_bit();
        let (image, stats) = self.render_source_scaled(
            &decoded.image,
            decoded.orientation,
            chain,
            1.0,
            detail,
            high,
            control,
        )?;
        let input_size = decoded.size();
        let icc = decoded.icc_profile.clone();
        // A grey source whose chain keeps it grey (or a chain that makes it grey) is written
        // with one channel, as a streamed render is: its R = G = B is made exact first, since
        // a colour matrix over grey can leave the channels a rounding apart (the encoder
        // still keeps alpha where a pixel is transparent).
        let mut image = image;
        if icc.is_none() {
            let plan = Plan::for_content(
                chain,
                input_size,
                decoded.orientation,
                1.0,
                self.output_limits(),
                self.quality_preset(),
                detail,
            )?;
            let source_grey = decoded.image.color().channel_count() <= 2;
            if render::grey_after(&plan, source_grey) {
                image.make_grey();
            }
        }
        drop(decoded);
        let t2 = Instant::now();
        if options.format == OutputFormat::Svg {
            self.write_svg(output, &image, chain)?;
        } else {
            encode::write_image(
                output,
                &image,
                options,
                icc.as_deref(),
                self.quality_preset(),
            )?;
        }
        let t3 = Instant::now();
        Ok(RenderReport {
            input_size,
            output_size: image.size,
            decode: t1 - t0,
            render: t2 - t1,
            encode: t3 - t2,
            stats,
            streamed_input: false,
            streamed_output: false,
            decode_eighths: 8,
        })
    }

    /// Render `plan` (built from `chain` with the content measure `detail`, if known) band by
    /// band into a streaming encoder. Without a measure, a source decoded whole is measured
    /// first when the plan's algorithms depend on content; one streamed row by row keeps the
    /// preset's choices.
    #[allow(clippy::too_many_arguments)]
    fn render_streaming(
        &self,
        input: &Path,
        probe: &decode::Probe,
        (chain, plan, detail): (&Chain, Plan, Option<content::Detail>),
        output: &Path,
        options: &EncodeOptions,
        control: &RenderControl<'_>,
        t0: Instant,
        opened: Option<Box<dyn RowDecoder>>,
    ) -> Result<RenderReport> {
        let mut plan = plan;
        let settings = self.tile_settings_for(&plan);
        let bands = render::bands(&plan, settings.tile_px, self.pool.current_num_threads());
        let whole_bytes = probe.size.pixels() * probe.bytes_per_pixel;
        // A chain whose algorithms depend on content needs the image measured first, and one
        // that starts with stages the 8-bit kernels may run (opaque 8-bit sources) reads it
        // whole, so that the pixels do not depend on how the file is read: such images are
        // decoded whole when that takes no more memory than a JPEG small enough to decode whole.
        let opaque_8bit = probe.is_opaque_8bit();
        let measure =
            (plan.content_sensitive || plan.kind_sensitive && opaque_8bit) && detail.is_none();
        let u8_candidate = u8_lead::leading(&plan) && opaque_8bit;
        let stream = render::reads_in_order(&plan, &bands)
            && !((measure || u8_candidate) && whole_bytes <= self.budget_bytes() / 4);
        let mut rows: Option<Box<dyn RowDecoder>> = None;
        let mut whole: Option<image::DynamicImage> = None;
        if let Some(mut opened) = opened {
            // A reduced JPEG decode: row by row when the chain reads that way, else whole.
            if stream {
                rows = Some(opened);
            } else {
                whole = Some(crate::io::rows::read_all(opened.as_mut())?);
            }
        } else if stream {
            rows = match probe.format {
                ImageFormat::Png => PngRows::open(input, self.budget_bytes())?
                    .map(|r| Box::new(r) as Box<dyn RowDecoder>),
                ImageFormat::Jpeg if whole_bytes > self.budget_bytes() / 4 => {
                    JpegRows::open(input)?.map(|r| Box::new(r) as Box<dyn RowDecoder>)
                }
                _ => None,
            };
        }
        if rows.is_none() && whole.is_none() {
            whole = Some(decode::decode_file(input, &self.decode_limits())?.image);
        }
        if measure {
            // A streamed image is not measured; its header still says whether it is opaque
            // 8-bit, which is what the previews (measured) agree on below sigma 8.
            let found = match &whole {
                Some(image) => content::Detail::measure(image),
                None => content::Detail::kind_only(opaque_8bit),
            };
            let streamed_sensitive = whole.is_none() && plan.content_sensitive;
            plan = Plan::for_content(
                chain,
                plan.input,
                probe.orientation,
                1.0,
                self.output_limits(),
                self.quality_preset(),
                Some(found),
            )?;
            if streamed_sensitive {
                plan.choices.push(content::Choice::general(
                    "detail not measured (input streamed row by row): the preset's choices kept",
                ));
            }
        }
        // The leading stages of a whole 8-bit image may run on 8-bit kernels (`u8_lead`); the
        // rest of the plan then reads their result, and the decoded image is freed.
        let mut lead_times = Vec::new();
        let decoded_at = Instant::now();
        if let Some(image) = whole.take() {
            let spare = self.budget_bytes().saturating_sub(image.bytes());
            whole = Some(
                match u8_lead::run_leading(&self.pool, &image, &mut plan, spare)? {
                    Some((lead, tail, times)) => {
                        plan = tail;
                        lead_times = times;
                        lead
                    }
                    None => image,
                },
            );
        }
        let plan = &plan;
        let high = probe.high_bit_depth && options.format.supports_16_bit();
        let threads = self.pool.current_num_threads();
        let mut settings = self.tile_settings_for(plan);
        let mut bands = render::bands(plan, settings.tile_px, threads);
        // What the bands hold besides their tiles: two output bands, and the decoded image or
        // the streamed source's window of rows.
        let band_bytes = |tile_px: u32| {
            2 * OutputSink::bytes_for(
                Size::new(plan.output.width, tile_px.min(plan.output.height)),
                high,
            )
        };
        let reserved = |bands: &[render::Band], tile_px: u32| {
            band_bytes(tile_px)
                + match (&rows, &whole) {
                    (Some(decoder), _) => {
                        let window_rows = bands
                            .iter()
                            .map(|b| b.source_rows.1 - b.source_rows.0)
                            .max()
                            .unwrap_or(0);
                        StreamSource::window_bytes(probe.size, decoder.layout(), window_rows)
                    }
                    (None, Some(image)) => image.bytes(),
                    (None, None) => 0,
                }
        };
        // A strong reduction (a 12000-px PNG resized to 200 px) reads many source rows per
        // output row: narrower bands until a tile fits the budget, before giving up.
        while settings.tile_px > render::MIN_BAND_ROWS
            && !render::fits(
                plan,
                &bands,
                settings.budget_bytes,
                reserved(&bands, settings.tile_px),
            )
        {
            settings.tile_px = (settings.tile_px / 2).max(render::MIN_BAND_ROWS);
            bands = render::bands(plan, settings.tile_px, threads);
        }
        let reserved_bytes = reserved(&bands, settings.tile_px);
        // The encoder's channels are chosen before the first row: alpha if the source has
        // transparent pixels (a decoded image is looked at; a streamed one's header decides)
        // or the chain may add some; one grey channel if the source is grey and the chain
        // keeps it so, unless an ICC profile (which describes RGB) is to be kept.
        let (source_alpha, source_grey) = match &whole {
            Some(image) => (
                image.color().has_alpha() && any_transparent(image),
                image.color().channel_count() <= 2 || all_grey(image),
            ),
            None => (probe.has_alpha, probe.grey),
        };
        let alpha = source_alpha || render::may_add_transparency(plan);
        let grey = probe.icc_profile.is_none() && render::grey_after(plan, source_grey);
        // What the 8-bit kernels finished (or an empty plan over an opaque 8-bit image) is
        // written from its grey or RGB samples as they are.
        let direct = match &whole {
            _ if !plan.stages.is_empty() => None,
            Some(image::DynamicImage::ImageLuma8(_)) if probe.icc_profile.is_none() => {
                Some(encode::Layout::Grey)
            }
            Some(image::DynamicImage::ImageRgb8(_)) => Some(encode::Layout::PackedRgb),
            _ => None,
        };
        let layout = match (direct, alpha, grey) {
            (Some(layout), _, _) => layout,
            (None, true, true) => encode::Layout::GreyAlpha,
            (None, true, false) => encode::Layout::Rgba,
            (None, false, true) => encode::Layout::Grey,
            (None, false, false) => encode::Layout::Rgb,
        };
        let encode_err = |reason: String| Error::Encode {
            reason,
            path: output.to_path_buf(),
        };
        let file = AtomicFile::create(output)?;
        let mut encoder = encode::stream_encoder(
            Box::new(file.writer()?),
            plan.output,
            options,
            layout,
            high,
            probe.icc_profile.as_deref(),
            self.quality_preset(),
        )
        .map_err(encode_err)?;
        let mut write_band = |_: geom::Rect, pixels: encode::Pixels| {
            encoder.write_rows((&pixels).into()).map_err(encode_err)
        };
        let t1;
        let streamed_input = rows.is_some();
        let stats = match (rows.as_mut(), whole) {
            (None, Some(image)) if direct.is_some() => {
                // Nothing left to render: the rows go to the encoder as they are.
                t1 = decoded_at;
                let row_bytes =
                    plan.output.width as usize * usize::from(image.color().channel_count());
                let bands = image.as_bytes().chunks((row_bytes * 256).max(1));
                let total = bands.len();
                for (i, band) in bands.enumerate() {
                    if control.cancelled() {
                        return Err(Error::Cancelled);
                    }
                    let rows = match direct {
                        Some(encode::Layout::Grey) => RowsIn::Grey8(band),
                        _ => RowsIn::Rgb8(band),
                    };
                    encoder.write_rows(rows).map_err(encode_err)?;
                    if let Some(progress) = control.progress {
                        progress(i + 1, total);
                    }
                }
                lead_stats(plan, Vec::new())
            }
            (Some(decoder), _) => {
                let layout = decoder.layout();
                let source = StreamSource::new(probe.size, layout);
                t1 = Instant::now();
                render::render_banded(
                    &self.pool,
                    &source,
                    plan,
                    &bands,
                    settings,
                    reserved_bytes,
                    high,
                    control,
                    &mut |lo, hi| source.advance(decoder.as_mut(), lo, hi),
                    &mut write_band,
                )?
            }
            (None, whole) => {
                let image = whole.ok_or_else(|| {
                    Error::Internal("a whole-image render without the image".to_owned())
                })?;
                // The 8-bit leading stages, if they ran, are render time.
                t1 = decoded_at;
                render::render_banded(
                    &self.pool,
                    &image,
                    plan,
                    &bands,
                    settings,
                    reserved_bytes,
                    high,
                    control,
                    &mut |_, _| Ok(()),
                    &mut write_band,
                )?
            }
        };
        let mut stats = stats;
        stats.stage_times.splice(0..0, lead_times);
        let t2 = Instant::now();
        encoder.finish().map_err(encode_err)?;
        file.commit()?;
        let t3 = Instant::now();
        Ok(RenderReport {
            input_size: probe.size,
            output_size: plan.output,
            decode: t1 - t0,
            render: t2 - t1,
            encode: t3 - t2,
            stats,
            streamed_input,
            streamed_output: true,
            decode_eighths: 8,
        })
    }
}

/// Statistics of a render that the 8-bit leading stages finished (no tiles): their `times`
/// and the choices of `plan`.
fn lead_stats(plan: &Plan, times: Vec<(String, Duration)>) -> RenderStats {
    RenderStats {
        stage_times: times,
        choices: plan.choice_lines(),
        ..RenderStats::default()
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

#[cfg(test)]
mod tests {
    use super::Engine;
    use crate::config::Config;

    /// The nice value of the calling thread (field 19 of `/proc/thread-self/stat`).
    #[cfg(target_os = "linux")]
    fn nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command name in parentheses start at field 3 (state).
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn background_engines_render_at_a_lower_priority() {
        let normal = Engine::new(Config::default()).unwrap();
        let background = Engine::background(Config::default()).unwrap();
        let (n, b) = (normal.pool().install(nice), background.pool().install(nice));
        assert!(b > n, "background nice {b}, normal {n}");
    }
}
