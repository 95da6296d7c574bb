//! Batch processing: one chain over many files, several images at a time on the engine's one
//! render pool, under one memory budget, continuing past failures, resumable after a crash.
//!
//! [`prepare`] gathers the inputs (folders, files, glob patterns; `--shard`), names the outputs,
//! opens the journal (which also locks the batch) and sets aside files an earlier run finished.
//! [`run`] renders the rest: `workers` tasks on the render pool each take the next file and
//! render it with its share of the memory budget, so images in parallel and tiles within each
//! image share the same threads (no oversubscription). Each output is written atomically and
//! then journaled. The [`BatchReport`] has a line per file and the summary figures.

pub mod inputs;
pub mod journal;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::chain::Chain;
use crate::engine::Engine;
use crate::engine::render::RenderControl;
use crate::error::{Error, Result};
use crate::io::encode::{EncodeOptions, OutputFormat};
use inputs::Input;
use journal::{Journal, Stamp};

/// The output format: fixed, or the input's own where Opossum can write it (else PNG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatChoice {
    /// Keep each input's format (GIF and BMP become PNG).
    Same,
    /// Always this format.
    Fixed(OutputFormat),
}

/// What to do after a file fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Record it and go on (the default).
    Continue,
    /// Start no new file.
    Stop,
}

/// Everything a batch needs besides the engine and chain.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Folders, files and glob patterns.
    pub inputs: Vec<PathBuf>,
    /// Where outputs go (created if missing; may be an input folder).
    pub output_dir: PathBuf,
    /// Output format.
    pub format: FormatChoice,
    /// JPEG / lossy WebP quality, 1..=100.
    pub quality: u8,
    /// WebP outputs lossless instead of lossy (other formats are lossless, or cannot be).
    pub lossless: bool,
    /// Images in parallel; 0 = `parallel_images` from the config, which 0 makes automatic.
    pub concurrency: usize,
    /// Continue or stop after a failure.
    pub on_error: OnError,
    /// Descend into sub-folders (outputs keep the relative folder).
    pub recursive: bool,
    /// Skip inputs whose output file already exists.
    pub skip_existing: bool,
    /// Output file name: `{stem}`, `{name}`, `{ext}` (output format), `{srcext}`.
    pub name_template: String,
    /// This machine's part of the inputs: shard K of N.
    pub shard: Option<(u32, u32)>,
}

/// One file to render.
#[derive(Clone, Debug)]
pub struct Job {
    /// The input.
    pub input: Input,
    /// Its output.
    pub output: PathBuf,
    /// Output format.
    pub format: OutputFormat,
    stamp: Stamp,
}

/// How one file ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Rendered and written.
    Done {
        /// Wall time for this file, ms.
        ms: f64,
        /// Output size, bytes.
        output_bytes: u64,
    },
    /// Not rendered, for this reason (finished by an earlier run, output exists).
    Skipped(&'static str),
    /// Failed; the batch went on.
    Failed {
        /// Error category (`corrupt`, `unsupported`, `io`, …).
        category: &'static str,
        /// The message, naming the file.
        message: String,
        /// What the user can do.
        hint: &'static str,
    },
    /// Not finished because the batch was cancelled.
    Cancelled,
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct FileResult {
    /// The input.
    pub input: PathBuf,
    /// Its output.
    pub output: PathBuf,
    /// What happened.
    pub outcome: Outcome,
}

/// A prepared batch.
pub struct Batch {
    /// Files to render.
    pub jobs: Vec<Job>,
    /// Files set aside (finished earlier, output exists).
    pub skipped: Vec<FileResult>,
    journal: Journal,
    /// Held (shared) until the batch ends.
    _folder_lock: std::fs::File,
    /// Temp files of interrupted runs removed from the output folder.
    pub stale_temp_files_removed: usize,
}

/// A stable hash (FNV-1a) of everything that shapes an output: the chain, format, quality,
/// name template and Opossum version.
pub(crate) fn settings_hash(
    chain: &Chain,
    format: FormatChoice,
    (quality, lossless): (u8, bool),
    template: &str,
) -> u64 {
    // Lossy settings hash as they did before `lossless` existed, so earlier journals stay
    // valid.
    let lossless = if lossless { "|lossless" } else { "" };
    let key = format!(
        "{}|{format:?}|{quality}{lossless}|{template}|{}",
        chain.to_toml_string(),
        env!("CARGO_PKG_VERSION")
    );
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The journal's file stem for this chain, these settings and this shard (shards of one batch
/// may share an output folder).
fn journal_name(chain: &Chain, options: &BatchOptions) -> String {
    let h = settings_hash(
        chain,
        options.format,
        (options.quality, options.lossless),
        &options.name_template,
    );
    match options.shard {
        Some((k, n)) => format!(".opossum-batch-{h:016x}-{k}of{n}"),
        None => format!(".opossum-batch-{h:016x}"),
    }
}

/// Remove temp files of ours under `dir` older than `max_age`.
fn clean_temp_files(dir: &Path, depth: usize, max_age: Duration) -> usize {
    let mut removed = crate::io::clean_stale_temp_files(dir, max_age);
    if depth > 0
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                removed += clean_temp_files(&entry.path(), depth - 1, max_age);
            }
        }
    }
    removed
}

/// Every batch writing to a folder holds a shared lock on its `.opossum-batch.lock` for its
/// whole run. At start, a batch that gets the lock exclusively knows no other batch is writing
/// there, so every temp file of ours is left over from an interrupted run and is removed; with
/// other batches running (shards sharing the folder), only temp files untouched for ten
/// minutes are.
fn lock_folder(out_dir: &Path) -> Result<(std::fs::File, usize)> {
    let path = out_dir.join(".opossum-batch.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("locking the output folder", &path, e))?;
    let removed = if file.try_lock().is_ok() {
        let removed = clean_temp_files(out_dir, 16, Duration::ZERO);
        let _ = file.unlock();
        removed
    } else {
        clean_temp_files(out_dir, 16, Duration::from_secs(600))
    };
    file.lock_shared()
        .map_err(|e| Error::io("locking the output folder", &path, e))?;
    Ok((file, removed))
}

/// Gather inputs, name outputs, open the journal and set aside finished files.
pub fn prepare(chain: &Chain, options: &BatchOptions) -> Result<Batch> {
    inputs::check_template(&options.name_template, options.format)?;
    // Inputs first: a mistyped --input leaves no output folder behind.
    let found = inputs::gather(&options.inputs, options.recursive)?;
    // Each input's format and output name; a name that says another format is refused
    // before the output folder is made.
    let named: Vec<(Input, OutputFormat, PathBuf)> = found
        .into_iter()
        .map(|i| {
            let format = inputs::output_format(&i.path, options.format);
            let name = inputs::output_name(&i, &options.name_template, format);
            (i, format, name)
        })
        .collect();
    for (input, format, name) in &named {
        inputs::check_output_name(&input.path, name, *format, &options.name_template)?;
    }
    let out_dir = &options.output_dir;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| Error::io("creating the output folder", out_dir, e))?;
    let journal = Journal::open(out_dir, &journal_name(chain, options))?;
    let (folder_lock, stale_temp_files_removed) = lock_folder(out_dir)?;
    let out_real = std::fs::canonicalize(out_dir).unwrap_or_else(|_| out_dir.clone());
    let named: Vec<(Input, OutputFormat, PathBuf)> = named
        .into_iter()
        .filter(|(i, ..)| {
            !journal.is_output(&i.path) && !inputs::inside_nested_output(i, &out_real)
        })
        .collect();
    let wanted: Vec<(&Input, PathBuf)> = named.iter().map(|(i, _, n)| (i, n.clone())).collect();
    let formats = named.iter().map(|(_, format, _)| *format);
    // Names are assigned over all inputs before sharding, so shards writing to one folder
    // agree on every name.
    // With --skip-existing, a finished file at an output's name (whoever wrote it) means that
    // input is done: the name is kept, and the input skipped below. An empty file is not a
    // finished output.
    let finished = |output: &Path| {
        options.skip_existing && std::fs::metadata(output).is_ok_and(|m| m.is_file() && m.len() > 0)
    };
    let outputs = inputs::assign_outputs(out_dir, &wanted, |output, input| {
        journal.may_write(output, input) || finished(output)
    });
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for (((input, _), output), format) in wanted.into_iter().zip(outputs).zip(formats) {
        if !inputs::in_shard(input, options.shard) {
            continue;
        }
        let stamp = Stamp::of(&input.path)?;
        let reason = if journal.is_done(&stamp, &output) {
            Some("finished by an earlier run")
        } else if finished(&output) {
            Some("the output exists (--skip-existing)")
        } else {
            None
        };
        match reason {
            Some(reason) => skipped.push(FileResult {
                input: input.path.clone(),
                output,
                outcome: Outcome::Skipped(reason),
            }),
            None => jobs.push(Job {
                input: input.clone(),
                output,
                format,
                stamp,
            }),
        }
    }
    Ok(Batch {
        jobs,
        skipped,
        journal,
        _folder_lock: folder_lock,
        stale_temp_files_removed,
    })
}

/// Images in parallel for `jobs` files: the option, else the config, else automatic (one per
/// render thread, as long as each gets at least 64 MiB of the memory budget).
pub fn workers(engine: &Engine, options: &BatchOptions, jobs: usize) -> usize {
    concurrency(engine, options.concurrency).clamp(1, jobs.max(1))
}

/// Images in parallel for a `requested` count (batch and watch): the request, else the
/// config's `parallel_images`, else one per render thread with at least 64 MiB each.
pub(crate) fn concurrency(engine: &Engine, requested: usize) -> usize {
    let configured = match requested {
        0 => engine.config().performance.parallel_images,
        n => n,
    };
    let auto = || {
        let threads = engine.pool().current_num_threads();
        let by_memory = (engine.budget_bytes() / (64 << 20)).max(1) as usize;
        threads.min(by_memory)
    };
    let n = if configured == 0 { auto() } else { configured };
    n.max(1)
}

/// Called after each file with its result and (files done, files to do).
pub type Progress<'a> = &'a (dyn Fn(&FileResult, usize, usize) + Sync);

/// Render the batch's jobs. Never fails as a whole: each file's failure is in the report.
pub fn run(
    engine: &Engine,
    chain: &Chain,
    batch: Batch,
    options: &BatchOptions,
    cancel: &AtomicBool,
    progress: Progress<'_>,
) -> BatchReport {
    let started = Instant::now();
    let Batch {
        jobs,
        skipped,
        journal,
        _folder_lock,
        ..
    } = batch;
    let workers = workers(engine, options, jobs.len());
    // One budget for the process: each image in flight gets its share.
    let share = engine.with_budget(engine.budget_bytes() / workers as u64);
    let journal = Mutex::new(journal);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results = Mutex::new(Vec::with_capacity(jobs.len()));
    let total = jobs.len();
    let worker = || {
        loop {
            if cancel.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
                return;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(i) else { return };
            let result = render_one(&share, chain, job, options, cancel, &journal);
            if matches!(result.outcome, Outcome::Failed { .. }) && options.on_error == OnError::Stop
            {
                stop.store(true, Ordering::Relaxed);
            }
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress(&result, n, total);
            results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((i, result));
        }
    };
    engine.pool().scope(|s| {
        for _ in 0..workers {
            s.spawn(|_| worker());
        }
    });
    let mut finished = results.into_inner().unwrap_or_else(|e| e.into_inner());
    // Files never started (cancel, --on-error stop) are reported as such, in input order.
    let started_ids: std::collections::HashSet<usize> = finished.iter().map(|(i, _)| *i).collect();
    for (i, job) in jobs.iter().enumerate() {
        if !started_ids.contains(&i) {
            finished.push((
                i,
                FileResult {
                    input: job.input.path.clone(),
                    output: job.output.clone(),
                    outcome: if cancel.load(Ordering::Relaxed) {
                        Outcome::Cancelled
                    } else {
                        Outcome::Skipped("not started after an earlier failure (--on-error stop)")
                    },
                },
            ));
        }
    }
    finished.sort_by_key(|(i, _)| *i);
    let mut files = skipped;
    files.extend(finished.into_iter().map(|(_, r)| r));
    BatchReport {
        files,
        elapsed: started.elapsed(),
        workers,
        cancelled: cancel.load(Ordering::Relaxed),
        peak_rss_bytes: peak_rss_bytes(),
    }
}

fn render_one(
    engine: &Engine,
    chain: &Chain,
    job: &Job,
    options: &BatchOptions,
    cancel: &AtomicBool,
    journal: &Mutex<Journal>,
) -> FileResult {
    let encode = EncodeOptions {
        format: job.format,
        quality: options.quality,
        lossless: options.lossless,
    };
    render_to(
        engine,
        chain,
        &job.input.path,
        &job.output,
        &encode,
        cancel,
        || {
            journal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .claim(&job.input.path, &job.output)
        },
        || {
            journal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(job.stamp.clone(), &job.output)
        },
    )
}

/// Render `input` into `output` (creating its folder) between `claim` (note the output as the
/// input's) and `commit` (journal the file); every error becomes the file's outcome. Shared by
/// batches and watch folders.
#[allow(clippy::too_many_arguments)]
pub(crate) fn render_to(
    engine: &Engine,
    chain: &Chain,
    input: &Path,
    output: &Path,
    encode: &EncodeOptions,
    cancel: &AtomicBool,
    claim: impl FnOnce() -> Result<()>,
    commit: impl FnOnce() -> Result<()>,
) -> FileResult {
    puffin::profile_function!();
    let t = Instant::now();
    let control = RenderControl {
        cancel: Some(cancel),
        progress: None,
    };
    let outcome = (|| {
        claim()?;
        if let Some(dir) = output.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io("creating the output folder", dir, e))?;
        }
        engine.render_file(input, chain, output, encode, false, &control)?;
        commit()?;
        Ok::<_, Error>(std::fs::metadata(output).map_or(0, |m| m.len()))
    })();
    FileResult {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        outcome: match outcome {
            Ok(output_bytes) => Outcome::Done {
                ms: t.elapsed().as_secs_f64() * 1000.0,
                output_bytes,
            },
            Err(Error::Cancelled) => Outcome::Cancelled,
            Err(e) => Outcome::Failed {
                category: e.category().name(),
                message: e.to_string(),
                hint: e.hint(),
            },
        },
    }
}

/// Peak resident memory of this process so far (Linux `VmHWM`), bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The outcome of a batch.
#[derive(Debug)]
pub struct BatchReport {
    /// Every input, in order: skipped ones first, then those rendered.
    pub files: Vec<FileResult>,
    /// Wall time.
    pub elapsed: Duration,
    /// Images in parallel.
    pub workers: usize,
    /// Whether the batch was cancelled.
    pub cancelled: bool,
    /// Peak RSS of the process, bytes.
    pub peak_rss_bytes: Option<u64>,
}

impl BatchReport {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.files.iter().filter(|r| f(&r.outcome)).count()
    }

    /// Files written.
    pub fn succeeded(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Done { .. }))
    }

    /// Files that failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed { .. }))
    }

    /// Failures per category.
    pub fn errors_by_category(&self) -> BTreeMap<&'static str, usize> {
        let mut map = BTreeMap::new();
        for r in &self.files {
            if let Outcome::Failed { category, .. } = r.outcome {
                *map.entry(category).or_insert(0) += 1;
            }
        }
        map
    }

    fn times_ms(&self) -> Vec<f64> {
        let mut t: Vec<f64> = self
            .files
            .iter()
            .filter_map(|r| match r.outcome {
                Outcome::Done { ms, .. } => Some(ms),
                _ => None,
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t
    }

    /// Mean and 95th percentile time per written image, ms.
    pub fn mean_p95_ms(&self) -> (f64, f64) {
        let t = self.times_ms();
        if t.is_empty() {
            return (0.0, 0.0);
        }
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        let p95 = t[((t.len() as f64 - 1.0) * 0.95).round() as usize];
        (mean, p95)
    }

    /// Images written per second of wall time.
    pub fn images_per_s(&self) -> f64 {
        self.succeeded() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Process exit code: 0 all succeeded, 1 some failed, 130 cancelled.
    pub fn exit_code(&self) -> i32 {
        if self.cancelled {
            130
        } else if self.failed() > 0 {
            1
        } else {
            0
        }
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let (mean, p95) = self.mean_p95_ms();
        let skipped = self.count(|o| matches!(o, Outcome::Skipped(_)));
        let cancelled = self.count(|o| matches!(o, Outcome::Cancelled));
        let mut s = format!(
            "{} written, {} failed, {} skipped{} in {:.1} s ({:.1} images/s, {} in parallel); per image mean {:.0} ms, p95 {:.0} ms",
            self.succeeded(),
            self.failed(),
            skipped,
            if cancelled > 0 {
                format!(", {cancelled} cancelled")
            } else {
                String::new()
            },
            self.elapsed.as_secs_f64(),
            self.images_per_s(),
            self.workers,
            mean,
            p95
        );
        if let Some(peak) = self.peak_rss_bytes {
            s.push_str(&format!(
                "; peak memory {}",
                crate::error::human_bytes(peak)
            ));
        }
        let by_category = self.errors_by_category();
        if !by_category.is_empty() {
            let parts: Vec<String> = by_category
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            s.push_str(&format!("\nerrors by category: {}", parts.join(", ")));
        }
        s
    }

    /// Write [`BatchReport::to_json`] to `path`, atomically (the CLI's `--report`, the app's
    /// report file).
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        crate::io::write_atomic(path, |w| w.write_all(text.as_bytes()))
    }

    /// The `--report` JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let (mean, p95) = self.mean_p95_ms();
        let files: Vec<serde_json::Value> = self
            .files
            .iter()
            .map(|r| {
                let mut v = serde_json::json!({
                    "input": r.input.to_string_lossy(),
                    "output": r.output.to_string_lossy(),
                });
                match &r.outcome {
                    Outcome::Done { ms, output_bytes } => {
                        v["status"] = "ok".into();
                        v["ms"] = (*ms).into();
                        v["output_bytes"] = (*output_bytes).into();
                    }
                    Outcome::Skipped(reason) => {
                        v["status"] = "skipped".into();
                        v["reason"] = (*reason).into();
                    }
                    Outcome::Failed {
                        category,
                        message,
                        hint,
                    } => {
                        v["status"] = "error".into();
                        v["category"] = (*category).into();
                        v["message"] = message.clone().into();
                        v["hint"] = (*hint).into();
                    }
                    Outcome::Cancelled => v["status"] = "cancelled".into(),
                }
                v
            })
            .collect();
        serde_json::json!({
            "succeeded": self.succeeded(),
            "failed": self.failed(),
            "skipped": self.count(|o| matches!(o, Outcome::Skipped(_))),
            "cancelled": self.cancelled,
            "errors_by_category": self.errors_by_category(),
            "mean_ms": mean,
            "p95_ms": p95,
            "images_per_s": self.images_per_s(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "workers": self.workers,
            "peak_rss_bytes": self.peak_rss_bytes,
            "files": files,
        })
    }
}
