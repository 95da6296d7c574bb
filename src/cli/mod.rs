//! The command line: parses arguments, loads config and chain, calls the engine, prints results
//! and maps errors to exit codes (0 success, 1 an input failed, 2 usage or config error).
//! `anyhow`-style context lives only here; the engine returns typed errors.

/// Print to stdout, ignoring write errors: a closed pipe (`opossum batch … | head`) must not
/// stop a batch or turn into a panic; the files and the `--report` are what matter.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Print a line to stderr, ignoring write errors (as [`out!`]).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod args;
mod cache;
mod checks;
mod vectorize;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser as _;

use crate::bench;
use crate::chain::Chain;
use crate::config::{ByteSize, Config};
use crate::engine::{Engine, catch_panics};
use crate::error::{Category, Error, Result};
use crate::io::decode::{self};
use crate::io::encode::{EncodeOptions, OutputFormat};
use crate::ops::{self};
use crate::params::ParamKind;
use crate::profile::Profiler;
use args::{
    BatchArgs, BenchCommand, BenchOpsArgs, BenchPreviewArgs, BenchQualityArgs, Cli, Command,
    GlobalArgs, RenderArgs, WatchArgs,
};

/// Exit code for a failed input.
const EXIT_INPUT: u8 = 1;
/// Exit code for a usage or configuration error.
const EXIT_USAGE: u8 = 2;
/// Exit code after Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// Run the CLI with the process arguments.
pub fn main() -> ExitCode {
    // Panics are bugs; they are caught and reported as internal errors, without a backtrace dump.
    std::panic::set_hook(Box::new(|_| {}));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match catch_panics(|| run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report_error(&e);
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Which exit code an error maps to.
pub fn exit_code(e: &Error) -> u8 {
    match e.category() {
        Category::Config | Category::Chain | Category::Usage | Category::App => EXIT_USAGE,
        Category::Cancelled => EXIT_INTERRUPTED,
        _ => EXIT_INPUT,
    }
}

/// Ctrl-C / SIGTERM during a single render or tracing: the first sets the returned flag (the
/// work stops within a tile and its temp file is removed), a second exits at once.
pub(crate) fn cancel_on_signal() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    cancel
}

fn report_error(e: &Error) {
    errln!("error: {e}");
    errln!("  category: {}", e.category().name());
    errln!("  hint: {}", e.hint());
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        None => check_app_image(&cli)
            .and_then(|()| open_app(&cli))
            .map(|()| 0),
        Some(Command::Cache { what }) => cache::run(&cli.global, &what).map(|()| 0),
        Some(Command::Tune { quick, dry_run }) => tune(&cli.global, quick, dry_run).map(|()| 0),
        Some(Command::Ops { json }) => {
            out!("{}", if json { ops_json() } else { ops_text() });
            Ok(0)
        }
        Some(Command::Render(args)) => render(&cli.global, &args).map(|()| 0),
        Some(Command::Batch(args)) => batch(&cli.global, &args),
        Some(Command::Watch(args)) => watch(&cli.global, &args),
        Some(Command::Bench {
            what: BenchCommand::Ops(args),
        }) => bench_ops(&cli.global, &args).map(|()| 0),
        Some(Command::Bench {
            what: BenchCommand::Preview(args),
        }) => bench_preview(&cli.global, &args).map(|()| 0),
        Some(Command::Bench {
            what: BenchCommand::Vectorize(args),
        }) => vectorize::bench(&cli.global, &args).map(|()| 0),
        Some(Command::Bench {
            what: BenchCommand::Quality(args),
        }) => bench_quality(&cli.global, &args).map(|()| 0),
        Some(Command::Bench {
            what: BenchCommand::Cache(args),
        }) => cache::bench(&cli.global, &args).map(|()| 0),
        Some(Command::Vectorize(args)) => vectorize::run(&cli.global, &args).map(|()| 0),
    }
}

fn format_choice(name: &str) -> Result<crate::batch::FormatChoice> {
    use crate::batch::FormatChoice;
    match name.to_ascii_lowercase().as_str() {
        "same" => Ok(FormatChoice::Same),
        name => OutputFormat::from_name(name)
            .map(FormatChoice::Fixed)
            .ok_or_else(|| Error::Usage {
                reason: format!("--format {name:?} is not one of webp, jpeg, png, tiff, svg, same"),
                path: None,
            }),
    }
}

/// Batch and watch output options checked before any file: a template whose extension
/// contradicts `--format`, a `--quality` the format ignores (noted), a `--report` that could
/// not be written at the end.
fn check_output_args(
    global: &GlobalArgs,
    (out, format): (&args::OutputArgs, crate::batch::FormatChoice),
    (chain, output_dir, report): (&Path, &Path, Option<&Path>),
) -> Result<()> {
    crate::batch::inputs::check_template(&out.name_template, format)?;
    if let crate::batch::FormatChoice::Fixed(format) = format {
        for note in checks::encoder_options(format, out.quality, out.lossless)? {
            errln!("note: {note}");
        }
    }
    if let Some(path) = report {
        let config = config_path(global);
        let mut protected = vec![chain];
        protected.extend(config.as_deref());
        checks::later_output("--report", path, Some(output_dir), &protected)?;
    }
    Ok(())
}

/// The config file in use (`--config`, else the default place).
fn config_path(global: &GlobalArgs) -> Option<std::path::PathBuf> {
    global.config.clone().or_else(Config::default_path)
}

/// A batch or watch that could not start (unusable output folder, no input, a bad name
/// template, a journal in use): nothing was processed, so it exits like a usage error.
fn setup_failed(e: &Error) -> u8 {
    report_error(e);
    EXIT_USAGE
}

/// `opossum watch`: runs until Ctrl-C or SIGTERM, printing a line per file; exit 0 after a
/// clean stop, 2 for usage and config errors and a watch that cannot start.
fn watch(global: &GlobalArgs, args: &WatchArgs) -> Result<u8> {
    use crate::watch::{self, WatchEvent, WatchOptions};
    use std::time::Duration;

    let engine = Engine::new(load_config(global)?)?;
    let chain = load_chain(&args.chain, &engine)?;
    let format = format_choice(&args.out.format)?;
    check_output_args(
        global,
        (&args.out, format),
        (&args.chain, &args.output, args.report.as_deref()),
    )?;
    let options = WatchOptions {
        input_dir: args.input.clone(),
        output_dir: args.output.clone(),
        format,
        quality: args.out.quality.unwrap_or(checks::DEFAULT_QUALITY),
        lossless: args.out.lossless,
        name_template: args.out.name_template.clone(),
        recursive: args.recursive,
        concurrency: args.concurrency,
        settle: Duration::from_millis(args.settle_ms),
        poll: args.poll_ms.map(Duration::from_millis),
        quarantine: args.quarantine.clone(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let on_event = |event: WatchEvent| {
        let now = std::time::SystemTime::now();
        match event {
            WatchEvent::Status(message) => outln!("{} {message}", watch::clock(now)),
            WatchEvent::File(r) => outln!("{}", watch::log_line(&r, now)),
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    };
    let report = match watch::run(&engine, &chain, &options, &stop, &on_event) {
        Ok(report) => report,
        Err(e) => return Ok(setup_failed(&e)),
    };
    outln!("stopped: {}", report.summary());
    if let Some(path) = &args.report {
        report.write_json(path)?;
    }
    Ok(0)
}

/// `opossum batch`: exit 0 when every file succeeded, 1 when some failed, 130 when
/// interrupted (Ctrl-C, SIGTERM), 2 for usage and config errors and a batch that cannot start.
fn batch(global: &GlobalArgs, args: &BatchArgs) -> Result<u8> {
    use crate::batch::{self, BatchOptions, OnError, Outcome};

    let engine = Engine::new(load_config(global)?)?;
    let chain = load_chain(&args.chain, &engine)?;
    let format = format_choice(&args.out.format)?;
    check_output_args(
        global,
        (&args.out, format),
        (&args.chain, &args.output, args.report.as_deref()),
    )?;
    let options = BatchOptions {
        inputs: args.input.clone(),
        output_dir: args.output.clone(),
        format,
        quality: args.out.quality.unwrap_or(checks::DEFAULT_QUALITY),
        lossless: args.out.lossless,
        concurrency: args.concurrency,
        on_error: if args.on_error == "stop" {
            OnError::Stop
        } else {
            OnError::Continue
        },
        recursive: args.recursive,
        skip_existing: args.skip_existing,
        name_template: args.out.name_template.clone(),
        shard: args.shard,
    };
    let prepared = match batch::prepare(&chain, &options) {
        Ok(prepared) => prepared,
        Err(e) => return Ok(setup_failed(&e)),
    };
    // The report must not land on an input or an output either (which exist only now).
    if let Some(path) = &args.report {
        let files: Vec<&Path> = prepared
            .jobs
            .iter()
            .flat_map(|j| [j.input.path.as_path(), j.output.as_path()])
            .chain(
                prepared
                    .skipped
                    .iter()
                    .flat_map(|f| [f.input.as_path(), f.output.as_path()]),
            )
            .collect();
        if let Err(e) = checks::later_output("--report", path, Some(&args.output), &files) {
            return Ok(setup_failed(&e));
        }
    }
    let cancel = Arc::new(AtomicBool::new(false));
    {
        // Ctrl-C / SIGTERM: stop starting files, cancel renders in flight (their temp files
        // are removed); a second signal exits at once.
        let cancel = cancel.clone();
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            errln!("\ninterrupted: finishing nothing new, cleaning up (again to quit now)");
        });
    }
    let total = prepared.jobs.len();
    errln!(
        "opossum batch: {total} to render, {} already done or skipped, {} in parallel{}",
        prepared.skipped.len(),
        batch::workers(&engine, &options, total),
        match args.shard {
            Some((k, n)) => format!(", shard {k}/{n}"),
            None => String::new(),
        }
    );
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} files · {per_sec} · ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let on_file = |result: &batch::FileResult, _done: usize, _total: usize| {
        if let Outcome::Failed {
            category,
            message,
            hint,
        } = &result.outcome
        {
            bar.suspend(|| errln!("error: {message}\n  category: {category}\n  hint: {hint}"));
        }
        bar.inc(1);
    };
    let report = batch::run(&engine, &chain, prepared, &options, &cancel, &on_file);
    bar.finish_and_clear();
    outln!("{}", report.summary());
    if let Some(path) = &args.report {
        report.write_json(path)?;
    }
    Ok(match report.exit_code() {
        0 => 0,
        130 => 130,
        _ => EXIT_INPUT,
    })
}

/// Start the desktop app (feature `gui`).
#[cfg(feature = "gui")]
fn open_app(cli: &Cli) -> Result<()> {
    let config = load_config(&cli.global)?;
    let config_path = cli.global.config.clone().or_else(Config::default_path);
    let options = crate::gui::GuiOptions {
        image: cli.image.clone(),
        chain: cli.chain.clone(),
        screenshot: cli.screenshot.clone(),
        config,
        config_path,
        fresh_state: cli.screenshot.is_some(),
        hide_timings: false,
        // A screenshot shows a fresh session: nothing read from or left in the cache folder.
        cache_dir: cli
            .screenshot
            .is_none()
            .then(crate::cache::disk::default_dir)
            .flatten(),
    };
    crate::gui::run(options).map_err(Error::App)
}

/// Without the `gui` feature there is no app: say how to use the command line.
#[cfg(not(feature = "gui"))]
fn open_app(cli: &Cli) -> Result<()> {
    if cli.image.is_some() || cli.chain.is_some() || cli.screenshot.is_some() {
        return Err(Error::Usage {
            reason: "this build has no desktop app (built without the `gui` feature); use the \
                     commands (`opossum --help`)"
                .to_owned(),
            path: None,
        });
    }
    outln!(
        "Opossum {} (built without the desktop app)\nRun `opossum --help` for the commands, e.g. `opossum render photo.jpg --chain chain.toml -o out.webp`.",
        env!("CARGO_PKG_VERSION")
    );
    Ok(())
}

/// The chain file `--chain` names: a path that cannot be read (missing, a folder, no
/// permission) is a command-line mistake (exit 2), like an invalid chain.
pub(crate) fn load_chain(path: &Path, engine: &Engine) -> Result<Chain> {
    Chain::load(path, engine.output_limits()).map_err(|e| match e {
        Error::Io { source, .. } => Error::Usage {
            reason: format!("-c/--chain: cannot read the chain file ({source})"),
            path: Some(path.to_path_buf()),
        },
        Error::NotAFile { kind, .. } => Error::Usage {
            reason: format!("-c/--chain: the chain file is {kind}"),
            path: Some(path.to_path_buf()),
        },
        e => e,
    })
}

/// `opossum bach …`: a mistyped command arrives as the image to open in the app.
fn check_app_image(cli: &Cli) -> Result<()> {
    match &cli.image {
        Some(image) if std::fs::metadata(image).is_err() => Err(Error::Usage {
            reason: "no such image, and not a command (render, batch, watch, vectorize, bench, \
                     cache, tune, ops)"
                .to_owned(),
            path: Some(image.clone()),
        }),
        _ => Ok(()),
    }
}

/// Config from file plus command-line overrides.
fn load_config(global: &GlobalArgs) -> Result<Config> {
    let (mut config, _) = Config::load(global.config.as_deref())?;
    if let Some(n) = global.threads {
        config.performance.max_cpu_cores = n;
    }
    if let Some(text) = &global.max_memory {
        config.performance.max_memory_usage =
            ByteSize::parse(text).ok_or_else(|| Error::Usage {
                reason: format!("--max-memory {text:?} is not a size; write e.g. 512MiB or 4GB"),
                path: None,
            })?;
    }
    if let Some(px) = global.tile_size {
        config.performance.tile_size = px;
    }
    if let Some(name) = &global.quality_preset {
        // clap admits only the preset names.
        if let Some(preset) = crate::quality::QualityPreset::parse(name) {
            config.performance.quality = preset;
            config.performance.quality_vs_speed = None;
        }
    }
    config.validate()?;
    Ok(config)
}

fn render(global: &GlobalArgs, args: &RenderArgs) -> Result<()> {
    let profiler = (args.profile || args.profile_out.is_some()).then(Profiler::start);
    let engine = Engine::new(load_config(global)?)?;
    let chain = load_chain(&args.chain, &engine)?;
    checks::output_file(&args.output)?;
    let format = checks::output_format(args.format.as_deref(), &args.output)?;
    for note in checks::encoder_options(format, args.quality, args.lossless)? {
        errln!("note: {note}");
    }
    if let Some(path) = &args.profile_out {
        let config = config_path(global);
        let mut protected = vec![args.input.as_path(), &args.output, &args.chain];
        protected.extend(config.as_deref());
        checks::later_output("--profile-out", path, None, &protected)?;
    }
    let options = EncodeOptions {
        format,
        quality: args.quality.unwrap_or(checks::DEFAULT_QUALITY),
        lossless: args.lossless,
    };
    let cancel = cancel_on_signal();
    let report = engine
        .render_file(
            &args.input,
            &chain,
            &args.output,
            &options,
            args.overwrite,
            &crate::engine::render::RenderControl {
                cancel: Some(&cancel),
                progress: None,
            },
        )
        // The chain does not fit this image: name the chain file too.
        .map_err(|e| crate::chain::with_path(e, &args.chain))?;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let mut streamed = match (report.streamed_input, report.streamed_output) {
        (true, true) => ", streamed in and out",
        (false, true) => ", streamed out",
        _ => "",
    }
    .to_owned();
    if let Some(choices) = report.choices() {
        streamed.push_str(&format!(", {choices}"));
    }
    // The 8-bit leading stages run whole images; a chain they finish has no tiles.
    let tiles = match report.stats.tiles {
        0 => "whole image".to_owned(),
        n => format!("{n} tiles"),
    };
    outln!(
        "wrote {} ({}x{} px, {}{streamed}) in {:.0} ms: decode {:.0}, render {:.0} ({tiles}), encode {:.0}",
        args.output.display(),
        report.output_size.width,
        report.output_size.height,
        format.extension(),
        ms(report.decode + report.render + report.encode),
        ms(report.decode),
        ms(report.render),
        ms(report.encode),
    );
    if let Some(profiler) = profiler {
        out!("\n{}", profiler.finish());
        if let Some(path) = &args.profile_out {
            profiler.save(path)?;
            outln!(
                "profile saved to {} (open with puffin_viewer)",
                path.display()
            );
        }
    }
    Ok(())
}

/// `opossum ops` as text.
pub fn ops_text() -> String {
    let mut out = String::new();
    for def in ops::registry() {
        out.push_str(&format!(
            "{} (v{}, {}) - {}\n",
            def.id, def.version, def.category, def.doc
        ));
        for spec in def.params {
            let default = spec.default_value();
            let spatial = if spec.is_spatial() {
                ", scales with resolution"
            } else {
                ""
            };
            out.push_str(&format!(
                "    {:<18} {} (default {}{})\n",
                spec.key,
                spec.range_text(),
                default,
                spatial
            ));
        }
    }
    out
}

/// `opossum ops --json`.
pub fn ops_json() -> String {
    let ops: Vec<serde_json::Value> = ops::registry()
        .iter()
        .map(|def| {
            let params: Vec<serde_json::Value> = def
                .params
                .iter()
                .map(|spec| {
                    let mut p = serde_json::json!({
                        "key": spec.key,
                        "label": spec.label,
                        "doc": spec.doc,
                        "default": spec.default_value().to_raw().to_json(),
                        "range": spec.range_text(),
                        "spatial": spec.is_spatial(),
                    });
                    if let ParamKind::Choice { choices, .. } = spec.kind {
                        p["choices"] = serde_json::json!(choices);
                    }
                    p
                })
                .collect();
            serde_json::json!({
                "id": def.id,
                "version": def.version,
                "label": def.label,
                "category": def.category,
                "doc": def.doc,
                "params": params,
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&ops).unwrap_or_default();
    text.push('\n');
    text
}

fn tune(global: &GlobalArgs, quick: bool, dry_run: bool) -> Result<()> {
    use crate::tune::{Workload, calibrate};
    let path = match &global.config {
        Some(p) => Some(p.clone()),
        None => Config::default_path(),
    };
    // Start from the file being tuned (missing = defaults), then the command-line overrides.
    let mut config = match &path {
        Some(p) if p.exists() => Config::load(Some(p))?.0,
        _ => Config::default(),
    };
    let measured = load_config(global)?;
    let workload = if quick {
        Workload::QUICK
    } else {
        Workload::FULL
    };
    outln!(
        "opossum tune: {} calibration on {} threads",
        if quick { "quick" } else { "full" },
        measured.threads()
    );
    let tuning = calibrate(&measured, workload, |step| outln!("  measuring {step}…"))?;
    outln!("operation cost, ms per megapixel:");
    for (op, ms) in &tuning.op_ms_per_mpx {
        outln!("  {op:<10} {ms:>8.2}");
    }
    let mut tiles: Vec<(u32, f64)> = tuning
        .tile_ms
        .iter()
        .map(|(edge, ms)| (edge.parse().unwrap_or(0), *ms))
        .collect();
    tiles.sort_by_key(|t| t.0);
    let tiles: Vec<String> = tiles
        .iter()
        .map(|(edge, ms)| format!("{edge} px {ms:.1} ms"))
        .collect();
    outln!("tile edge: {}", tiles.join(", "));
    let rates: Vec<String> = tuning
        .images_per_s
        .iter()
        .map(|(n, r)| format!("{n} at once {r:.1}/s"))
        .collect();
    outln!("images: {}", rates.join(", "));
    outln!("{}", tuning.summary());
    tuning.apply(&mut config);
    config.validate()?;
    match (&path, dry_run) {
        (_, true) => outln!("not saved (--dry-run)"),
        (None, false) => {
            outln!("not saved: this platform has no config folder; use --config FILE")
        }
        (Some(path), false) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io("create the config folder", dir, e))?;
            }
            let text = toml::to_string_pretty(&config)
                .map_err(|e| Error::Internal(format!("config to TOML: {e}")))?;
            crate::io::write_atomic(path, |w| w.write_all(text.as_bytes()))?;
            outln!(
                "saved to {} (min_tile_size, parallel_images{}, [tuning]); change them in Settings or the file",
                path.display(),
                if tuning.gpu_previews.is_some() {
                    ", gpu_enabled"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

fn bench_quality(global: &GlobalArgs, args: &BenchQualityArgs) -> Result<()> {
    use bench::quality;
    let engine = Engine::new(load_config(global)?)?;
    let format = OutputFormat::from_name(&args.format).ok_or_else(|| Error::Usage {
        reason: format!(
            "--format {:?} is not a format; use webp, jpeg, png or tiff",
            args.format
        ),
        path: None,
    })?;
    let chain = match &args.chain {
        Some(path) => load_chain(path, &engine)?,
        None => quality::default_chain(),
    };
    let mut names = Vec::new();
    let mut images = Vec::new();
    if args.images.is_empty() {
        for (name, bytes) in quality::SAMPLES {
            let image = image::load_from_memory(bytes)
                .map_err(|e| Error::Internal(format!("bundled sample {name}: {e}")))?;
            names.push((*name).to_owned());
            images.push(image);
        }
    } else {
        let mut files = Vec::new();
        for path in &args.images {
            if path.is_dir() {
                let mut found: Vec<_> = std::fs::read_dir(path)
                    .map_err(|e| Error::io("read the folder", path, e))?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.is_file()
                            && p.extension()
                                .and_then(|e| e.to_str())
                                .and_then(OutputFormat::from_name)
                                .is_some_and(|f| f != OutputFormat::Svg)
                    })
                    .collect();
                found.sort();
                files.extend(found);
            } else {
                files.push(path.clone());
            }
        }
        for path in files {
            images.push(decode::decode_file(&path, &engine.decode_limits())?.image);
            names.push(path.display().to_string());
        }
    }
    if images.is_empty() {
        return Err(Error::Usage {
            reason: "no images to measure (give files or folders of JPEG/PNG/WebP/TIFF)".into(),
            path: None,
        });
    }
    let options = EncodeOptions {
        format,
        quality: args.quality,
        lossless: false,
    };
    outln!(
        "opossum bench quality: {} image(s) ({}), {} threads, median of {} runs, output {} q{}",
        images.len(),
        names.join(", "),
        engine.pool().current_num_threads(),
        args.runs,
        format.extension(),
        args.quality
    );
    for preset in crate::quality::QualityPreset::ALL {
        outln!("  {:<9} {}", preset.name(), preset.changes().join("; "));
    }
    let figures = quality::measure(&engine, &images, &chain, &options, args.runs, |_| {})?;
    outln!("quality against ultra: of the rendered pixels, and of the encoded file");
    outln!(
        "{:<9} {:>10} {:>10} {:>9} {:>11} {:>12} {:>9} {:>14} {:>10}",
        "preset",
        "render ms",
        "encode ms",
        "speed-up",
        "min PSNR",
        "mean PSNR",
        "min SSIM",
        "file min PSNR",
        "KiB"
    );
    for f in &figures {
        outln!(
            "{:<9} {:>10.1} {:>10.1} {:>8.2}x {:>8.1} dB {:>9.1} dB {:>9.4} {:>11.1} dB {:>10.1}",
            f.preset,
            f.render_ms,
            f.encode_ms,
            f.speedup,
            f.min_psnr_db,
            f.mean_psnr_db,
            f.min_ssim,
            f.file_min_psnr_db,
            f.bytes as f64 / 1024.0
        );
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&figures).unwrap_or_default();
        crate::io::write_atomic(path, |w| w.write_all(text.as_bytes()))?;
    }
    Ok(())
}

fn bench_preview(global: &GlobalArgs, args: &BenchPreviewArgs) -> Result<()> {
    let engine = Engine::new(load_config(global)?)?;
    let photo = match &args.image {
        Some(path) => Some(decode::decode_file(path, &engine.decode_limits())?.image),
        None => None,
    };
    let setup = bench::PreviewBench::new(photo.as_ref(), args.source, args.viewport)?;
    outln!(
        "opossum bench preview: {}x{} px source ({:.1} Mpx), {}x{} viewport -> pyramid level {} ({}x{} px)",
        args.source.0,
        args.source.1,
        f64::from(args.source.0) * f64::from(args.source.1) / 1e6,
        args.viewport.0,
        args.viewport.1,
        setup.level,
        setup.level_size.width,
        setup.level_size.height,
    );
    outln!("chain: {}", setup.describe());
    outln!(
        "each run changes adjust_colors.brightness (op 2 of 5) and waits for the finished frame"
    );
    let mut report = Vec::new();
    let cpu = setup.run_cpu(&engine, args.runs)?;
    outln!("{}", cpu.line());
    report.push(cpu.json());
    match setup.run_gpu(&engine, args.runs) {
        Ok(gpu) => {
            outln!("{}", gpu.line());
            for (label, ms) in &gpu.stages {
                outln!("    {label:<28} {ms:>8.2} ms (last frame)");
            }
            report.push(gpu.json());
        }
        Err(reason) => outln!("gpu   not measured: {reason}"),
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        crate::io::write_atomic(path, |w| w.write_all(text.as_bytes()))?;
    }
    Ok(())
}

fn bench_ops(global: &GlobalArgs, args: &BenchOpsArgs) -> Result<()> {
    let engine = Engine::new(load_config(global)?)?;
    let photo = match &args.image {
        Some(path) => Some(decode::decode_file(path, &engine.decode_limits())?.image),
        None => None,
    };
    let cases: Vec<bench::BenchCase> = bench::peer_cases()
        .into_iter()
        .filter(|c| args.only.is_empty() || args.only.iter().any(|o| o == c.name))
        .collect();
    if cases.is_empty() {
        return Err(Error::Usage {
            reason: "--only names no known case (blur3, blur20, bc, sobel, grey, resize, unsharp)"
                .to_owned(),
            path: None,
        });
    }
    outln!(
        "opossum bench ops: median of {} runs, ms, {} threads, source {}, quality preset {}",
        args.runs,
        engine.pool().current_num_threads(),
        args.image
            .as_deref()
            .map_or("synthetic".to_owned(), |p: &Path| p.display().to_string()),
        engine.quality_preset().name()
    );
    out!("{:<10}", "op");
    for s in &args.sizes {
        out!(" {:>9}", format!("{s}px"));
    }
    outln!(" {:>13}  description", "PSNR v ultra");
    let mut results = Vec::new();
    let sources: Vec<_> = args
        .sizes
        .iter()
        .map(|&s| bench::source_for(&engine, photo.as_ref(), s))
        .collect::<Result<_>>()?;
    for case in &cases {
        out!("{:<10}", case.name);
        let mut worst_psnr_db = 100f64;
        for (side, source) in args.sizes.iter().zip(&sources) {
            let chain = (case.chain)(*side);
            let (median, min) = bench::time_chain(&engine, source, &chain, args.runs)?;
            out!(" {:>9.1}", median.as_secs_f64() * 1000.0);
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            let psnr_db = bench::psnr_vs_ultra(&engine, source, &chain)?;
            worst_psnr_db = worst_psnr_db.min(psnr_db);
            results.push(serde_json::json!({
                "op": case.name, "size": side,
                "median_ms": median.as_secs_f64() * 1000.0,
                "min_ms": min.as_secs_f64() * 1000.0,
                "preset": engine.quality_preset().name(),
                "psnr_vs_ultra_db": psnr_db,
            }));
        }
        outln!(" {:>10.1} dB  {}", worst_psnr_db, case.description);
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results).unwrap_or_default();
        crate::io::write_atomic(path, |w| w.write_all(text.as_bytes()))?;
    }
    Ok(())
}
