//! The tiled executor. The output is cut into a grid; for each tile the input rectangle of every
//! stage is derived backwards from the footprints (halos and geometry maps, not hand-kept), the
//! source rectangle is read, and the stages run forwards: runs of pointwise ops fused into one
//! pass per row, area and geometry ops from tile to tile. At most as many tiles are in flight as
//! the memory budget allows; workers pull tiles in row-major order from a shared counter on the
//! engine's rayon pool. Global ops (Canny) split the plan: the part before is rendered into a
//! full working image, the op runs on it, and rendering continues from its result.
//!
//! Every output pixel is computed from the same values in the same order whatever the tiling,
//! so tiled and single-tile renders are bit-identical (tests/tiling.rs).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::geom::{Rect, Size};
use super::plan::{Plan, Stage};
use super::sink::{FullSink, TileSink};
use super::source::{SharedTile, Source};
use super::tile::Tile;
use crate::error::{Error, Result};
use crate::ops::{Kernel, PointKernel};

/// Cancellation and progress for one render.
#[derive(Default, Clone, Copy)]
pub struct RenderControl<'a> {
    /// Set to stop the render as soon as the tiles in flight finish.
    pub cancel: Option<&'a AtomicBool>,
    /// Called with (tiles done, tiles total) after each tile.
    pub progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
}

impl RenderControl<'_> {
    /// Whether the render was asked to stop.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// Memory and tiling settings for one render.
#[derive(Clone, Copy, Debug)]
pub struct TileSettings {
    /// Preferred tile edge in output pixels (shrunk automatically when a tile would not fit).
    pub tile_px: u32,
    /// Bytes the tiles in flight may use together.
    pub budget_bytes: u64,
}

/// Statistics of a finished render.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderStats {
    /// Tiles rendered.
    pub tiles: usize,
    /// Most tiles in flight at once.
    pub tiles_in_flight: usize,
    /// Tile edge used in the last segment, px.
    pub tile_px: u32,
    /// Estimated peak bytes of the tiles in flight.
    pub peak_tile_bytes: u64,
    /// CPU time per stage (summed over tiles and threads), in plan order; fused pointwise runs
    /// are one entry labelled `a+b`, reading the source is `read`.
    pub stage_times: Vec<(String, Duration)>,
    /// Algorithms picked by image content ([`Plan::choices`]).
    pub choices: Vec<String>,
}

/// Add `(label, time)` pairs into a running per-label total, keeping first-seen order.
fn merge_times(into: &Mutex<Vec<(String, Duration)>>, times: Vec<(String, Duration)>) {
    let mut all = into.lock().unwrap_or_else(|e| e.into_inner());
    for (label, d) in times {
        match all.iter_mut().find(|(l, _)| *l == label) {
            Some((_, total)) => *total += d,
            None => all.push((label, d)),
        }
    }
}

/// Default smallest tile edge [`tile_px_for`] picks (config `min_tile_size`), px.
pub const MIN_AUTO_TILE_PX: u32 = 128;

/// The tile edge for `plan`, at most `configured`: about 8× the chain's summed halo (what the
/// area ops read around each pixel), in steps of 64 px and at least `min_px` (config
/// `min_tile_size`, [`MIN_AUTO_TILE_PX`] unless `opossum tune` chose another).
/// Small tiles keep each op's working set in the CPU caches (128² px of f32 RGBA is 256 KiB);
/// a chain that reads far around each pixel gets larger tiles so that re-reading the halo
/// stays a small part of the work. Measured in a batch of 1024-px JPEGs (fit 800×600 +
/// colour + sharpen): 128-px tiles 12% faster and 25% less peak memory than 512-px ones.
pub fn tile_px_for(plan: &Plan, min_px: u32, configured: u32) -> u32 {
    let centre = Rect::new(plan.output.width / 2, plan.output.height / 2, 1, 1);
    let rects = stage_rects(&plan.stages, centre);
    let halo_px: u32 = plan
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.kernel, Kernel::Area(_)))
        .map(|(i, _)| {
            let (input, output) = (rects[i], rects[i + 1]);
            input
                .width
                .max(input.height)
                .saturating_sub(output.width.max(output.height))
                / 2
        })
        .sum();
    let wanted = (8 * halo_px).div_ceil(64) * 64;
    wanted.max(min_px).min(configured.max(1))
}

/// The input rectangle of every stage for output `out`: `rects[i]` is stage `i`'s input,
/// `rects[n]` the output.
pub fn stage_rects(stages: &[Stage], out: Rect) -> Vec<Rect> {
    let mut rects = vec![Rect::EMPTY; stages.len() + 1];
    rects[stages.len()] = out;
    for (i, stage) in stages.iter().enumerate().rev() {
        rects[i] = match &stage.kernel {
            Kernel::Pointwise(_) => rects[i + 1],
            Kernel::Area(k) | Kernel::Geometry { kernel: k, .. } => k.input_rect(rects[i + 1]),
            Kernel::Global(_) => stage.input.rect(),
        };
    }
    rects
}

/// Bytes the buffers of one tile need, at most (all stage buffers plus the largest scratch).
fn tile_bytes(stages: &[Stage], out: Rect) -> u64 {
    let rects = stage_rects(stages, out);
    let buffers: u64 = rects.iter().map(|r| r.pixels() * 16).sum();
    let scratch = stages
        .iter()
        .enumerate()
        .map(|(i, s)| match &s.kernel {
            Kernel::Area(k) | Kernel::Geometry { kernel: k, .. } | Kernel::Global(k) => {
                k.scratch_bytes(rects[i + 1])
            }
            Kernel::Pointwise(_) => 0,
        })
        .max()
        .unwrap_or(0);
    buffers + scratch
}

/// Apply consecutive pointwise kernels to `tile`, row by row (one pass over memory).
fn apply_fused(kernels: &[&dyn PointKernel], tile: &mut Tile) {
    let (x0, y0) = (tile.rect.x, tile.rect.y);
    for y in 0..tile.rect.height as usize {
        let row = tile.row_mut(y);
        for k in kernels {
            k.apply_row(x0, y0 + y as u32, row);
        }
    }
}

/// Render one output tile of `stages` (no global stage among them), with the time each
/// stage took.
fn render_tile(
    source: &dyn Source,
    stages: &[Stage],
    out: Rect,
) -> (Tile, Vec<(String, Duration)>) {
    puffin::profile_scope!("tile");
    let mut times = Vec::with_capacity(stages.len() + 1);
    let rects = stage_rects(stages, out);
    let t = Instant::now();
    let mut tile = if rects[0].is_empty() {
        Tile::new(Rect::EMPTY)
    } else {
        source.read(rects[0])
    };
    times.push(("read".to_owned(), t.elapsed()));
    let mut i = 0;
    while i < stages.len() {
        if let Kernel::Pointwise(_) = stages[i].kernel {
            let mut run: Vec<&dyn PointKernel> = Vec::new();
            let start = i;
            while let Some(Stage {
                kernel: Kernel::Pointwise(k),
                ..
            }) = stages.get(i)
            {
                run.push(k.as_ref());
                i += 1;
            }
            let label = fused_label(&stages[start..i]);
            let t = Instant::now();
            {
                puffin::profile_scope!("pointwise", &label);
                apply_fused(&run, &mut tile);
            }
            times.push((label, t.elapsed()));
            continue;
        }
        let stage = &stages[i];
        let t = Instant::now();
        {
            puffin::profile_scope!("op", stage.label);
            tile = match &stage.kernel {
                Kernel::Area(k) | Kernel::Geometry { kernel: k, .. } => {
                    let rect = rects[i + 1];
                    let mut dst = if k.writes_every_value() {
                        Tile::scratch(rect)
                    } else {
                        Tile::new(rect)
                    };
                    if !rect.is_empty() {
                        k.run(&tile, &mut dst);
                    }
                    dst
                }
                Kernel::Global(_) | Kernel::Pointwise(_) => Tile::new(rects[i + 1]),
            };
        }
        times.push((stage.label.to_owned(), t.elapsed()));
        i += 1;
    }
    (tile, times)
}

/// The kernels of `stages` if every one is pointwise.
fn all_pointwise(stages: &[Stage]) -> Option<Vec<&dyn PointKernel>> {
    stages
        .iter()
        .map(|s| match &s.kernel {
            Kernel::Pointwise(k) => Some(k.as_ref()),
            _ => None,
        })
        .collect()
}

fn fused_label(stages: &[Stage]) -> String {
    stages.iter().map(|s| s.label).collect::<Vec<_>>().join("+")
}

/// Render `stages` over the whole `out_size` into `sink`, tiled.
#[allow(clippy::too_many_arguments)]
fn run_tiled(
    pool: &rayon::ThreadPool,
    source: &dyn Source,
    stages: &[Stage],
    region: Rect,
    settings: TileSettings,
    control: &RenderControl<'_>,
    progress_base: (usize, usize),
    sink: &dyn TileSink,
) -> Result<RenderStats> {
    puffin::profile_function!();
    let threads = pool.current_num_threads().max(1);
    let mut tile_px = settings.tile_px.max(1);
    let (tiles, per_tile, in_flight) = loop {
        let tiles: Vec<Rect> = Rect::grid(Size::new(region.width, region.height), tile_px)
            .into_iter()
            .map(|t| Rect::new(t.x + region.x, t.y + region.y, t.width, t.height))
            .collect();
        let per_tile = tiles
            .iter()
            .map(|t| tile_bytes(stages, *t))
            .max()
            .unwrap_or(0)
            .max(1);
        let fit = (settings.budget_bytes / per_tile) as usize;
        if fit >= 1 {
            break (tiles, per_tile, fit.min(threads));
        }
        if tile_px <= 16 {
            return Err(Error::Budget {
                what: format!("rendering one {tile_px}x{tile_px} px tile of this chain"),
                needed_bytes: per_tile,
                limit_bytes: settings.budget_bytes,
            });
        }
        tile_px = (tile_px / 2).max(16);
    };

    let total = tiles.len();
    // Per-channel pointwise runs from 8-bit pixels to an 8-bit output: tables, no f32. An
    // empty run (what is left after `u8_lead` ran the whole chain) is the identity table.
    let tables = match (all_pointwise(stages), source.as_u8(), sink.as_output_u8()) {
        (Some(kernels), Some(samples), Some(out)) if kernels.iter().all(|k| k.per_channel()) => {
            let label = if stages.is_empty() {
                "8-bit copy".to_owned()
            } else {
                fused_label(stages) + " (tables)"
            };
            Some((
                super::lut::ChannelTables::new(&kernels),
                samples,
                out,
                label,
            ))
        }
        _ => None,
    };
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let times = Mutex::new(Vec::new());
    pool.scope(|scope| {
        for _ in 0..in_flight {
            scope.spawn(|_| {
                loop {
                    if control.cancelled() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(rect) = tiles.get(i) else {
                        break;
                    };
                    let tile_times = match &tables {
                        Some((tables, samples, out, label)) => {
                            let t = Instant::now();
                            tables.render(*samples, source.size().width, *rect, out);
                            vec![(label.clone(), t.elapsed())]
                        }
                        None => {
                            let (tile, tile_times) = render_tile(source, stages, *rect);
                            sink.put(&tile);
                            tile_times
                        }
                    };
                    merge_times(&times, tile_times);
                    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Some(progress) = control.progress {
                        progress(progress_base.0 + finished, progress_base.1);
                    }
                }
            });
        }
    });
    if control.cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(RenderStats {
        tiles: total,
        tiles_in_flight: in_flight,
        tile_px,
        peak_tile_bytes: per_tile * in_flight as u64,
        stage_times: times.into_inner().unwrap_or_else(|e| e.into_inner()),
        choices: Vec::new(),
    })
}

/// Render `plan` from `source` into `sink`: the whole output, or only `region` of it (tiles of
/// a region are computed exactly as in a whole render). `reserved_bytes` is memory already spoken for
/// (decoded source, output buffer); the rest of `settings.budget_bytes` is for tiles and
/// intermediates.
#[allow(clippy::too_many_arguments)] // Each is a separate concern of one render call.
pub fn render(
    pool: &rayon::ThreadPool,
    source: &dyn Source,
    plan: &Plan,
    region: Option<Rect>,
    settings: TileSettings,
    reserved_bytes: u64,
    control: &RenderControl<'_>,
    sink: &dyn TileSink,
) -> Result<RenderStats> {
    puffin::profile_function!();
    let over_budget = |what: String, needed: u64| Error::Budget {
        what,
        needed_bytes: needed,
        limit_bytes: settings.budget_bytes,
    };
    if reserved_bytes > settings.budget_bytes {
        return Err(over_budget(
            format!(
                "holding the {}x{} px source and the {}x{} px output",
                plan.input.width, plan.input.height, plan.output.width, plan.output.height
            ),
            reserved_bytes,
        ));
    }
    let globals: Vec<usize> = plan
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.kernel, Kernel::Global(_)))
        .map(|(i, _)| i)
        .collect();

    // Progress counts the tiles of every segment.
    let tile_count = |size: Size| Rect::grid(size, settings.tile_px.max(1)).len();
    let mut segment_sizes: Vec<Size> = globals.iter().map(|&g| plan.stages[g].input).collect();
    segment_sizes.push(plan.output);
    let total: usize = segment_sizes.iter().map(|s| tile_count(*s)).sum();
    let mut done = 0;

    let mut intermediate: Option<SharedTile> = None;
    let mut start = 0;
    let mut stats = RenderStats::default();
    let mut earlier_times: Vec<(String, Duration)> = Vec::new();
    for &g in &globals {
        let stage = &plan.stages[g];
        let Kernel::Global(kernel) = &stage.kernel else {
            continue;
        };
        let held = intermediate.as_ref().map_or(0, |s| s.bytes());
        let input_bytes = stage.input.pixels() * 16;
        // Live while tiling the segment: the previous intermediate and the collected input.
        let tiling_live = reserved_bytes + held + input_bytes;
        // Live while the global op runs: its input, its output and its scratch.
        let op_live = reserved_bytes
            + input_bytes
            + stage.output.pixels() * 16
            + kernel.scratch_bytes(stage.output.rect());
        let needed = tiling_live.max(op_live);
        if needed > settings.budget_bytes {
            return Err(over_budget(
                format!(
                    "op {} on the whole {}x{} px image",
                    stage.label, stage.input.width, stage.input.height
                ),
                needed,
            ));
        }
        let collected = FullSink::new(stage.input);
        {
            let src: &dyn Source = intermediate.as_ref().map_or(source, |s| s as &dyn Source);
            let segment_settings = TileSettings {
                tile_px: settings.tile_px,
                budget_bytes: settings.budget_bytes - tiling_live,
            };
            earlier_times.append(&mut stats.stage_times);
            stats = run_tiled(
                pool,
                src,
                &plan.stages[start..g],
                stage.input.rect(),
                segment_settings,
                control,
                (done, total),
                &collected,
            )?;
            done += tile_count(stage.input);
        }
        let input = collected.finish();
        // The previous intermediate is no longer needed; free it before the op allocates.
        drop(intermediate.take());
        let mut output = Tile::new(stage.output.rect());
        {
            puffin::profile_scope!("op", stage.label);
            if control.cancelled() {
                return Err(Error::Cancelled);
            }
            let t = Instant::now();
            kernel.run(&input, &mut output);
            stats
                .stage_times
                .push((stage.label.to_owned(), t.elapsed()));
        }
        intermediate = Some(SharedTile(std::sync::Arc::new(output)));
        start = g + 1;
    }
    let held = intermediate.as_ref().map_or(0, |s| s.bytes());
    let src: &dyn Source = intermediate.as_ref().map_or(source, |s| s as &dyn Source);
    let last = run_tiled(
        pool,
        src,
        &plan.stages[start..],
        region.unwrap_or_else(|| plan.output.rect()),
        TileSettings {
            tile_px: settings.tile_px,
            budget_bytes: settings.budget_bytes.saturating_sub(reserved_bytes + held),
        },
        control,
        (done, total),
        sink,
    )?;
    earlier_times.append(&mut stats.stage_times);
    let all_times = Mutex::new(earlier_times);
    merge_times(&all_times, last.stage_times);
    Ok(RenderStats {
        tiles: stats.tiles + last.tiles,
        tiles_in_flight: last.tiles_in_flight.max(stats.tiles_in_flight),
        tile_px: last.tile_px,
        peak_tile_bytes: last.peak_tile_bytes.max(stats.peak_tile_bytes),
        stage_times: all_times.into_inner().unwrap_or_else(|e| e.into_inner()),
        choices: plan.choice_lines(),
    })
}

/// One horizontal band of output tiles.
pub struct Band {
    /// The band: full width, one tile high.
    pub rect: Rect,
    /// Its tiles, left to right.
    pub tiles: Vec<Rect>,
    /// Source rows `lo..hi` its tiles read.
    pub source_rows: (u32, u32),
}

/// Cut `plan`'s output into bands of `tile_px` rows, each split into at least `threads` tiles
/// (so a narrow image still uses every core), with the source rows each band reads.
pub fn bands(plan: &Plan, tile_px: u32, threads: usize) -> Vec<Band> {
    let size = plan.output;
    let tile_px = tile_px.max(1);
    let tile_w = tile_px
        .min(size.width.div_ceil(threads.max(1) as u32))
        .max(1);
    let mut out = Vec::new();
    let mut y = 0;
    while y < size.height {
        let h = tile_px.min(size.height - y);
        let rect = Rect::new(0, y, size.width, h);
        let mut tiles = Vec::new();
        let mut x = 0;
        while x < size.width {
            let w = tile_w.min(size.width - x);
            tiles.push(Rect::new(x, y, w, h));
            x += w;
        }
        let (mut lo, mut hi) = (u32::MAX, 0);
        for t in &tiles {
            let need = stage_rects(&plan.stages, *t)[0];
            if !need.is_empty() {
                lo = lo.min(need.y);
                hi = hi.max(need.bottom());
            }
        }
        if lo > hi {
            lo = hi;
        }
        out.push(Band {
            rect,
            tiles,
            source_rows: (lo, hi),
        });
        y += h;
    }
    out
}

/// Whether bands read the source top to bottom (never going back up), so the source can be
/// decoded row by row. False for vertical flips, quarter turns and global ops.
pub fn reads_in_order(plan: &Plan, bands: &[Band]) -> bool {
    if plan
        .stages
        .iter()
        .any(|s| matches!(s.kernel, Kernel::Global(_)))
    {
        return false;
    }
    bands.windows(2).all(|w| {
        let (a, b) = (w[0].source_rows, w[1].source_rows);
        b.0 >= a.0 && b.1 >= a.1
    })
}

/// Whether the plan can make the image more transparent than its source.
pub fn may_add_transparency(plan: &Plan) -> bool {
    plan.stages.iter().any(|s| match &s.kernel {
        Kernel::Area(k) | Kernel::Geometry { kernel: k, .. } | Kernel::Global(k) => {
            k.may_add_transparency()
        }
        Kernel::Pointwise(_) => false,
    })
}

/// Whether the plan's output is grey in every pixel, given whether its source is.
pub fn grey_after(plan: &Plan, source_grey: bool) -> bool {
    plan.stages
        .iter()
        .fold(source_grey, |grey, stage| match stage.kernel.grey() {
            crate::ops::Grey::Makes => true,
            crate::ops::Grey::Keeps => grey,
            crate::ops::Grey::MayColour => false,
        })
}

/// The narrowest bands a render shrinks its tile size to when a tile does not fit the budget.
pub const MIN_BAND_ROWS: u32 = 8;

/// Whether the largest tile of `bands` fits in `budget_bytes` beside `reserved_bytes`.
pub fn fits(plan: &Plan, bands: &[Band], budget_bytes: u64, reserved_bytes: u64) -> bool {
    reserved_bytes.saturating_add(largest_tile_bytes(plan, bands)) <= budget_bytes
}

/// The working memory of the largest tile of `bands` (at least 1 byte).
fn largest_tile_bytes(plan: &Plan, bands: &[Band]) -> u64 {
    bands
        .iter()
        .flat_map(|b| b.tiles.iter())
        .map(|t| tile_bytes(&plan.stages, *t))
        .max()
        .unwrap_or(0)
        .max(1)
}

/// Render `plan` band by band, top to bottom: `before_band(lo, hi)` makes source rows `lo..hi`
/// readable (a streaming source decodes them), the band's tiles render in parallel, and
/// `after_band` receives the band's finished rows (a streaming encoder writes them). Only the
/// tiles of one band are in flight; `reserved_bytes` covers the source window and band buffer.
#[allow(clippy::too_many_arguments)]
pub fn render_banded(
    pool: &rayon::ThreadPool,
    source: &dyn Source,
    plan: &Plan,
    bands: &[Band],
    settings: TileSettings,
    reserved_bytes: u64,
    high_bit_depth: bool,
    control: &RenderControl<'_>,
    before_band: &mut dyn FnMut(u32, u32) -> Result<()>,
    after_band: &mut dyn FnMut(Rect, crate::io::encode::Pixels) -> Result<()>,
) -> Result<RenderStats> {
    puffin::profile_function!();
    let stages = &plan.stages;
    let per_tile = largest_tile_bytes(plan, bands);
    let available = settings.budget_bytes.saturating_sub(reserved_bytes);
    let fit = (available / per_tile) as usize;
    if fit == 0 {
        return Err(Error::Budget {
            what: format!(
                "streaming the {}x{} px output in bands of {} rows",
                plan.output.width, plan.output.height, settings.tile_px
            ),
            needed_bytes: reserved_bytes + per_tile,
            limit_bytes: settings.budget_bytes,
        });
    }
    let in_flight = fit.min(pool.current_num_threads().max(1));
    let total: usize = bands.iter().map(|b| b.tiles.len()).sum();
    let done = AtomicUsize::new(0);
    let times = Mutex::new(Vec::new());
    for band in bands {
        if control.cancelled() {
            return Err(Error::Cancelled);
        }
        before_band(band.source_rows.0, band.source_rows.1)?;
        let sink = super::sink::OutputSink::for_region(band.rect, high_bit_depth);
        let next = AtomicUsize::new(0);
        pool.scope(|scope| {
            for _ in 0..in_flight.min(band.tiles.len()) {
                scope.spawn(|_| {
                    loop {
                        if control.cancelled() {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(rect) = band.tiles.get(i) else {
                            break;
                        };
                        let (tile, tile_times) = render_tile(source, stages, *rect);
                        sink.put(&tile);
                        merge_times(&times, tile_times);
                        let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if let Some(progress) = control.progress {
                            progress(finished, total);
                        }
                    }
                });
            }
        });
        if control.cancelled() {
            return Err(Error::Cancelled);
        }
        puffin::profile_scope!("write_band");
        after_band(band.rect, sink.finish().pixels)?;
    }
    Ok(RenderStats {
        tiles: total,
        tiles_in_flight: in_flight,
        tile_px: settings.tile_px,
        peak_tile_bytes: per_tile * in_flight as u64,
        stage_times: times.into_inner().unwrap_or_else(|e| e.into_inner()),
        choices: plan.choice_lines(),
    })
}
