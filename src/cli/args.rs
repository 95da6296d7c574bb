//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Build image-processing filter chains and run them fast, at any resolution.
#[derive(Debug, Parser)]
#[command(name = "opossum", version, about, propagate_version = true)]
pub struct Cli {
    /// Settings that apply to every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Without a command: the image to open in the app (default: the last one, or a sample).
    #[arg(value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// Without a command: a chain file to load in the app.
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// Without a command: save a screenshot of the app window once the preview is ready, then
    /// quit (for tests and documentation).
    #[arg(long, value_name = "PNG")]
    pub screenshot: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options shared by all commands; each overrides the config file.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file (default: opossum.toml in the user config folder).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Render threads (0 = all cores); overrides max_cpu_cores.
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Memory budget, e.g. 512MiB or 4GB; overrides max_memory_usage.
    #[arg(long, global = true, value_name = "SIZE")]
    pub max_memory: Option<String>,
    /// Tile edge in pixels (16..=8192); overrides tile_size.
    #[arg(long, global = true, value_name = "PX")]
    pub tile_size: Option<u32>,
    /// Quality preset: which algorithm variants ops and encoders use (see `opossum bench
    /// quality`); overrides quality and quality_vs_speed.
    #[arg(long, global = true, value_name = "PRESET",
          value_parser = ["ultra", "high", "balanced", "fast", "draft"])]
    pub quality_preset: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply a chain file to one image and write the result.
    Render(RenderArgs),
    /// Apply a chain file to many images (folders, files, glob patterns); resumable.
    Batch(BatchArgs),
    /// Watch a folder and render every image that arrives or changes, exactly once (also
    /// across restarts); stop with Ctrl-C or SIGTERM.
    Watch(WatchArgs),
    /// Trace an image into an SVG (colour regions or black-and-white line art).
    Vectorize(VectorizeArgs),
    /// Calibrate this machine (about ten seconds): pick the smallest tile edge, images at
    /// once in batches and GPU or CPU previews, and save them with the measurements in the
    /// config file (`--config`, else the default one).
    Tune {
        /// A few-second calibration on small images (less exact).
        #[arg(long)]
        quick: bool,
        /// Print the results without saving them.
        #[arg(long)]
        dry_run: bool,
    },
    /// List every operation with its parameters, ranges and defaults.
    Ops {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show or empty the preview cache: the pyramids and settled previews the app keeps on
    /// disk (folder from `directories`, or `OPOSSUM_CACHE_DIR`).
    Cache {
        /// What to do.
        #[command(subcommand)]
        what: CacheCommand,
    },
    /// Measure performance.
    Bench {
        /// What to measure.
        #[command(subcommand)]
        what: BenchCommand,
    },
}

/// `opossum render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The input image (JPEG, PNG, WebP, TIFF, GIF or BMP; detected by content).
    pub input: PathBuf,
    /// The chain file (TOML or JSON).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub chain: PathBuf,
    /// Where to write the result.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Output format: png, jpeg, webp, tiff or svg (default: from the output's extension).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Quality for JPEG and lossy WebP, 1..=100 [default: 85].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: Option<u8>,
    /// Lossless WebP.
    #[arg(long)]
    pub lossless: bool,
    /// Allow the output to replace the input file.
    #[arg(long)]
    pub overwrite: bool,
    /// Print a per-stage timing report.
    #[arg(long)]
    pub profile: bool,
    /// Also save the profile as a .puffin capture (implies --profile).
    #[arg(long, value_name = "FILE")]
    pub profile_out: Option<PathBuf>,
}

/// Output options shared by `batch` and `watch`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format: webp, jpeg, png, tiff, svg (traced with the chain's [vectorize]
    /// settings), or same (each input's own; GIF and BMP become PNG).
    #[arg(long, default_value = "same", value_name = "FORMAT")]
    pub format: String,
    /// Quality for JPEG and lossy WebP, 1..=100 [default: 85].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: Option<u8>,
    /// WebP outputs lossless instead of lossy (with --format same: the WebP inputs' outputs).
    #[arg(long)]
    pub lossless: bool,
    /// Output file name: {stem}, {name}, {ext} (output format), {srcext}.
    #[arg(long, default_value = "{stem}.{ext}", value_name = "TEMPLATE")]
    pub name_template: String,
}

/// `opossum batch`.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The chain file (TOML or JSON).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub chain: PathBuf,
    /// Input folders, files or glob patterns (quote patterns: "photos/*.jpg").
    #[arg(long, short = 'i', value_name = "DIR|FILE|GLOB", required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Output folder (created if missing; may be an input folder: inputs are never
    /// overwritten).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: PathBuf,
    /// Output format, quality and names.
    #[command(flatten)]
    pub out: OutputArgs,
    /// Images in parallel (0 = parallel_images from the config; 0 there = automatic).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub concurrency: usize,
    /// After a failed file: continue (record it and go on) or stop (start no new file).
    #[arg(long, default_value = "continue", value_parser = ["continue", "stop"])]
    pub on_error: String,
    /// Descend into sub-folders; outputs keep each input's relative folder.
    #[arg(long)]
    pub recursive: bool,
    /// Skip inputs whose output already exists.
    #[arg(long)]
    pub skip_existing: bool,
    /// Also write a JSON report: every file's result and the summary figures.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Take only shard K of N of the inputs (stable split by relative path): run N machines
    /// with 1/N … N/N to share one batch.
    #[arg(long, value_name = "K/N", value_parser = crate::batch::inputs::parse_shard)]
    pub shard: Option<(u32, u32)>,
}

/// `opossum watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The chain file (TOML or JSON), read once at start.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub chain: PathBuf,
    /// The folder to watch.
    #[arg(long, short = 'i', value_name = "DIR")]
    pub input: PathBuf,
    /// Output folder (may be inside the watched folder; outputs are never taken as inputs).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: PathBuf,
    /// Output format, quality and names.
    #[command(flatten)]
    pub out: OutputArgs,
    /// Watch sub-folders too (outputs keep the relative folder).
    #[arg(long)]
    pub recursive: bool,
    /// Files rendered at once (0 = automatic).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub concurrency: usize,
    /// A file is taken once its size and mtime have not changed for this long, ms.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub settle_ms: u64,
    /// Poll the folder every MS instead of using inotify (network or FUSE file systems).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..))]
    pub poll_ms: Option<u64>,
    /// Move inputs that fail into this folder (else they stay; failures are logged either way).
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,
    /// Write a JSON report (as batch's) when the watch stops.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// `opossum cache …`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Folder, entries, size against the cap, time to live, and hits and misses of all runs.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove every entry (only cache entries: nothing else in or outside the folder).
    Clear,
}

/// `opossum bench …`.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time the peer-comparison operations at several sizes and print an op × size table.
    Ops(BenchOpsArgs),
    /// Time from a parameter change to a finished preview frame, GPU vs CPU path (p50, p95).
    Preview(BenchPreviewArgs),
    /// Time the vectorizer per image size (512, 1024, 2048, 4096 px) with its figures.
    Vectorize(BenchVectorizeArgs),
    /// Per quality preset: speed-up over ultra and quality against ultra (PSNR, SSIM).
    Quality(BenchQualityArgs),
    /// Per cache level: latency of a miss and of a hit, and hit rates of a scripted session.
    Cache(BenchCacheArgs),
}

/// `opossum bench cache`.
#[derive(Debug, Args)]
pub struct BenchCacheArgs {
    /// Photo to open (default: a synthetic 6000x4000 JPEG).
    #[arg(value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// Chain of at least two ops (default: blur, colour, sharpen; edits change its last op).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// Long side of the viewport in px (picks the preview's pyramid level, as the app does).
    #[arg(long, default_value_t = 1600)]
    pub view: u32,
    /// Timed runs per figure (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    pub runs: usize,
    /// Also write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `opossum bench quality`.
#[derive(Debug, Args)]
pub struct BenchQualityArgs {
    /// Photos (files or folders; default: the bundled sample photos).
    #[arg(value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Chain to measure (default: fit 1600 px, blur sigma 4, sharpen radius 2, colour).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// Output format the encoder effort is measured with.
    #[arg(long, default_value = "webp")]
    pub format: String,
    /// Encoder quality (JPEG, lossy WebP).
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    /// Timed runs per image and preset (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    pub runs: usize,
    /// Also write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `opossum vectorize`.
#[derive(Debug, Args)]
pub struct VectorizeArgs {
    /// The input image (any supported format; transparency is kept).
    pub input: PathBuf,
    /// Where to write the SVG.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Starting settings; the options below override them.
    #[arg(long, value_enum, default_value = "logo")]
    pub preset: crate::vectorize::Preset,
    /// Colour regions or black-and-white (default: from the preset).
    #[arg(long, value_enum)]
    pub mode: Option<crate::vectorize::Mode>,
    /// Palette size, 2..=256 (default: chosen from the image).
    #[arg(long, value_name = "N")]
    pub colors: Option<usize>,
    /// Merge regions smaller than a square of this side, in pixels.
    #[arg(long, value_name = "PX")]
    pub speckle: Option<f64>,
    /// Smoothing passes over the outlines, 0..=10.
    #[arg(long, value_name = "N")]
    pub smoothness: Option<usize>,
    /// Turns sharper than this many degrees stay corners.
    #[arg(long, value_name = "DEG")]
    pub corner_threshold: Option<f64>,
    /// Largest distance between outline and curve, in pixels.
    #[arg(long, value_name = "PX")]
    pub max_error: Option<f64>,
    /// Binary mode: luma level (0..255, on white) below which a pixel is ink.
    #[arg(long, value_name = "LEVEL")]
    pub threshold: Option<u8>,
    /// Size budget in KiB per megapixel (photo preset: 280; 0 = none): coarser until it fits.
    #[arg(long, value_name = "KIB")]
    pub max_kib_per_mpx: Option<f64>,
    /// Print the figures: paths, nodes, bytes, colours, time, and PSNR/SSIM of the SVG
    /// rendered back against the input (composited on white).
    #[arg(long)]
    pub stats: bool,
    /// Print the figures as JSON instead (implies --stats).
    #[arg(long)]
    pub json: bool,
}

/// `opossum bench vectorize`.
#[derive(Debug, Args)]
pub struct BenchVectorizeArgs {
    /// Image to trace (resized to each size); default: a synthetic flat-colour drawing.
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// Sizes (longest side, px).
    #[arg(long, num_args = 1.., default_values_t = [512, 1024, 2048, 4096], value_parser = clap::value_parser!(u32).range(1..=16384))]
    pub sizes: Vec<u32>,
    /// Preset.
    #[arg(long, value_enum, default_value = "logo")]
    pub preset: crate::vectorize::Preset,
    /// Runs per size (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    pub runs: usize,
}

/// `opossum bench preview`.
#[derive(Debug, Args)]
pub struct BenchPreviewArgs {
    /// Source size WIDTHxHEIGHT in px (default 24 megapixels).
    #[arg(long, default_value = "6000x4000", value_parser = parse_size)]
    pub source: (u32, u32),
    /// Viewport WIDTHxHEIGHT in physical px; picks the pyramid level, as the app does.
    #[arg(long, default_value = "1600x1000", value_parser = parse_size)]
    pub viewport: (u32, u32),
    /// Parameter changes timed per path (after one warm-up frame).
    #[arg(long, default_value_t = 30, value_parser = at_least_one)]
    pub runs: usize,
    /// Source photo (resized to --source); default: a synthetic image.
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// Also write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// A count of runs: at least one (a median of none is no figure).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{text}: expected a whole number of runs, at least 1"
        )),
    }
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{text}: expected WIDTHxHEIGHT, e.g. 1600x1000"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| (1..=65_535).contains(&n))
            .ok_or_else(|| format!("{text}: sides must be 1..=65535 px"))
    };
    Ok((parse(w)?, parse(h)?))
}

/// `opossum bench ops`.
#[derive(Debug, Args)]
pub struct BenchOpsArgs {
    /// Square image sides to test, in px.
    #[arg(long, value_delimiter = ',', default_values_t = [512u32, 1024, 2048, 4096], value_parser = clap::value_parser!(u32).range(1..=16384))]
    pub sizes: Vec<u32>,
    /// Timed runs per cell (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    pub runs: usize,
    /// Source photo (cropped square and resized to each size); default: a synthetic image.
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// Only these cases (blur3, blur20, bc, sobel, grey, resize, unsharp).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Also write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}
