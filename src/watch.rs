//! Watch folders: every image that arrives in (or changes in) a folder is rendered through the
//! chain, exactly once, also across restarts.
//!
//! - Events come from `notify` through `notify-debouncer-full` (recursive, rename-aware); they
//!   only nominate paths. A file is taken when it is complete: not empty, and its size and mtime
//!   unchanged for the settle window, checked here, never trusting a "created" event. Hidden and partial names
//!   (`.*`, `*.tmp`, `*.part`, `*.crdownload`, `*~`) are never taken; a temp-then-rename writer
//!   is seen at the rename.
//! - The ledger is the batch journal (`.opossum-watch-<settings>.journal` in the output folder):
//!   a file is skipped when its path, size and mtime match a record, or, when only the mtime
//!   changed, its content checksum does. Failures are recorded too, and retried only when the
//!   file changes. At start, and whenever the event queue overflows, the folder is rescanned, so
//!   what arrived or changed while Opossum was not running is processed and nothing else.
//! - Memory is bounded: nominated paths are a set, and ready files wait in a bounded queue for
//!   the workers (`concurrency` tasks on the engine's pool, one memory budget).
//! - Outputs written inside the watched tree are never taken as inputs (the output folder is
//!   skipped, and every path the ledger wrote is known).
//! - A watched folder that disappears is reported and watched for again every two seconds; on
//!   file systems without inotify (or with `poll`), a polling watcher is used.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use notify_debouncer_full::notify::{self, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, NoCache, RecommendedCache};

use crate::batch::inputs::{has_image_extension, ignored_name};
use crate::batch::journal::{Journal, Record, Stamp, path_key};
use crate::batch::{BatchReport, FileResult, FormatChoice, Outcome, render_to, settings_hash};
use crate::chain::Chain;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::io::encode::EncodeOptions;

/// What a watch needs besides the engine and chain.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// The folder to watch.
    pub input_dir: PathBuf,
    /// Where outputs go (may be inside the watched folder).
    pub output_dir: PathBuf,
    /// Output format.
    pub format: FormatChoice,
    /// JPEG / lossy WebP quality.
    pub quality: u8,
    /// WebP outputs lossless instead of lossy.
    pub lossless: bool,
    /// Output file name template (as for batch).
    pub name_template: String,
    /// Watch sub-folders too.
    pub recursive: bool,
    /// Files rendered at once (0 = automatic, as for batch).
    pub concurrency: usize,
    /// How long size and mtime must stay unchanged before a file is taken.
    pub settle: Duration,
    /// Poll at this interval instead of using inotify (network and FUSE file systems).
    pub poll: Option<Duration>,
    /// Move inputs that fail here (the user asked for it); else they stay where they are.
    pub quarantine: Option<PathBuf>,
}

/// Failures are appended here, in the output folder (not an image name, so never an input).
pub const ERROR_LOG: &str = "opossum-watch-errors.log";

/// `HH:MM:SS` (UTC) of `t`, for log lines.
pub fn clock(t: SystemTime) -> String {
    let s = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The log line for one file: `HH:MM:SS result file …` (the CLI prints it; the app lists it).
pub fn log_line(result: &FileResult, at: SystemTime) -> String {
    let now = clock(at);
    match &result.outcome {
        Outcome::Done { ms, .. } => format!(
            "{now} ok     {} -> {} ({ms:.0} ms)",
            result.input.display(),
            result.output.display()
        ),
        Outcome::Failed {
            category,
            message,
            hint,
        } => format!(
            "{now} error  {} [{category}; {hint}]",
            message.replace('\n', " ")
        ),
        Outcome::Skipped(reason) => {
            format!("{now} skip   {} ({reason})", result.input.display())
        }
        Outcome::Cancelled => format!("{now} cancel {}", result.input.display()),
    }
}

/// What the watch reports as it goes (the CLI prints it; the app shows it).
#[derive(Clone, Debug)]
pub enum WatchEvent {
    /// A file was rendered, skipped or failed.
    File(FileResult),
    /// Something about the watch itself (started, rescanned, folder lost or back).
    Status(String),
}

struct Pending {
    size: u64,
    mtime: Option<SystemTime>,
    stable_since: Instant,
}

/// The running watcher (held so it keeps watching; dropped to stop).
enum Watcher {
    Native {
        _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    },
    Poll {
        _debouncer: Debouncer<notify::PollWatcher, NoCache>,
    },
}

fn start_watcher(
    options: &WatchOptions,
    tx: std::sync::mpsc::Sender<DebounceEventResult>,
) -> std::result::Result<Watcher, String> {
    let mode = if options.recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    let debounce = Duration::from_millis(100);
    let native = || -> notify::Result<Watcher> {
        let mut d = notify_debouncer_full::new_debouncer(debounce, None, tx.clone())?;
        d.watch(&options.input_dir, mode)?;
        Ok(Watcher::Native { _debouncer: d })
    };
    let polling = |interval: Duration| -> notify::Result<Watcher> {
        let mut d = notify_debouncer_full::new_debouncer_opt::<_, notify::PollWatcher, NoCache>(
            debounce,
            None,
            tx.clone(),
            NoCache,
            notify::Config::default().with_poll_interval(interval),
        )?;
        d.watch(&options.input_dir, mode)?;
        Ok(Watcher::Poll { _debouncer: d })
    };
    match options.poll {
        Some(interval) => polling(interval).map_err(|e| e.to_string()),
        // No inotify (or out of watches): fall back to polling once a second.
        None => native()
            .or_else(|_| polling(Duration::from_secs(1)))
            .map_err(|e| e.to_string()),
    }
}

fn is_candidate(path: &Path, options: &WatchOptions, out_dir: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if ignored_name(&name) || path.starts_with(out_dir) && out_dir != options.input_dir {
        return false;
    }
    if !options.recursive && path.parent() != Some(options.input_dir.as_path()) {
        return false;
    }
    has_image_extension(path)
}

/// Every candidate file under the input folder (start-up and overflow rescans).
fn scan(options: &WatchOptions, out_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![options.input_dir.clone()];
    let mut seen = std::collections::HashSet::new();
    while let Some(dir) = stack.pop() {
        // A symlink loop is entered once.
        let Ok(real) = std::fs::canonicalize(&dir) else {
            continue;
        };
        if !seen.insert(real) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if options.recursive && !ignored_name(&name) && !path.starts_with(out_dir) {
                    stack.push(path);
                }
            } else if meta.is_file() && is_candidate(&path, options, out_dir) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn crc_of(path: &Path) -> Result<u32> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

struct Shared<'a> {
    engine: &'a Engine,
    chain: &'a Chain,
    options: &'a WatchOptions,
    journal: Mutex<Journal>,
    cancel: &'a AtomicBool,
    results: Mutex<Vec<FileResult>>,
    on_event: &'a (dyn Fn(WatchEvent) + Sync),
    /// Paths a worker is processing: a path nominated again meanwhile waits its turn.
    in_flight: Mutex<std::collections::HashSet<PathBuf>>,
}

impl Shared<'_> {
    /// Process one ready file: skip it if the ledger has it, else render it.
    fn process(&self, path: &Path) {
        // The same path nominated again while a worker renders it (it changed meanwhile):
        // wait for that render, then look at the file again.
        while !self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let result = self.process_inner(path);
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
        if let Some(result) = result {
            (self.on_event)(WatchEvent::File(result.clone()));
            self.results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(result);
        }
    }

    fn process_inner(&self, path: &Path) -> Option<FileResult> {
        // Deleted or replaced since it was found ready: the next event nominates it again.
        let stamp = Stamp::of(path).ok()?;
        let crc = crc_of(path).ok()?;
        let rel = path.strip_prefix(&self.options.input_dir).unwrap_or(path);
        let format = crate::batch::inputs::output_format(path, self.options.format);
        let input = crate::batch::inputs::Input {
            path: path.to_path_buf(),
            rel: rel.to_path_buf(),
        };
        let wanted = crate::batch::inputs::output_name(&input, &self.options.name_template, format);
        let output = {
            let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
            // What a render wrote (into the watched tree, with any settings) is not an input.
            if journal.is_output(path) {
                return None;
            }
            if let Some(prev) = journal.get(&stamp.key) {
                let same = prev.stamp == stamp
                    || (prev.stamp.size == stamp.size && prev.crc32 == Some(crc));
                if same {
                    return None;
                }
            }
            let output = self.free_output(&journal, &self.options.output_dir.join(&wanted), path);
            // Failing to note it only means a kill before the record leaves a `-2` next time.
            let _ = journal.claim(path, &output);
            output
        };
        let encode = EncodeOptions {
            format,
            quality: self.options.quality,
            lossless: self.options.lossless,
        };
        let commit_stamp = stamp.clone();
        let mut result = render_to(
            self.engine,
            self.chain,
            path,
            &output,
            &encode,
            self.cancel,
            // A name that says another format (`{name}` of a GIF, written as PNG) fails the
            // file; batch refuses such a run before it starts.
            || {
                crate::batch::inputs::check_output_name(
                    path,
                    &output,
                    format,
                    &self.options.name_template,
                )
            },
            || {
                self.journal
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .append(Record {
                        stamp: commit_stamp,
                        output_key: path_key(&output),
                        crc32: Some(crc),
                        failed: false,
                        claim: false,
                    })
            },
        );
        if let Outcome::Failed { .. } = result.outcome {
            let _ = self
                .journal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .append(Record {
                    stamp,
                    output_key: String::new(),
                    crc32: Some(crc),
                    failed: true,
                    claim: false,
                });
            if let Outcome::Failed {
                category,
                message,
                hint,
            } = &result.outcome
            {
                let line = format!(
                    "{} UTC\t{}\t{category}\t{message}\t{hint}\n",
                    clock(SystemTime::now()),
                    path.display()
                );
                let log = self.options.output_dir.join(ERROR_LOG);
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
            }
            if let Some(dir) = &self.options.quarantine {
                let target = dir.join(path.file_name().unwrap_or_default());
                let moved =
                    std::fs::create_dir_all(dir).and_then(|()| std::fs::rename(path, &target));
                if let (Ok(()), Outcome::Failed { message, .. }) = (&moved, &mut result.outcome) {
                    message.push_str(&format!(" (moved to {})", target.display()));
                }
            }
        }
        Some(result)
    }

    /// `wanted`, or the first `-2`, `-3`… variant that is neither the input, nor a file this
    /// input's earlier renders did not write (another input's output, a file of the user's).
    fn free_output(&self, journal: &Journal, wanted: &Path, input: &Path) -> PathBuf {
        let mut candidate = wanted.to_path_buf();
        let mut n = 2;
        loop {
            if candidate != input && journal.may_write(&candidate, input) {
                return candidate;
            }
            let stem = wanted.file_stem().unwrap_or_default().to_string_lossy();
            let file = match wanted.extension() {
                Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
                None => format!("{stem}-{n}"),
            };
            candidate = wanted.with_file_name(file);
            n += 1;
        }
    }
}

/// Watch until `stop` is set; returns the report of what was processed.
pub fn run(
    engine: &Engine,
    chain: &Chain,
    options: &WatchOptions,
    stop: &AtomicBool,
    on_event: &(dyn Fn(WatchEvent) + Sync),
) -> Result<BatchReport> {
    crate::batch::inputs::check_template(&options.name_template, options.format)?;
    if !options.input_dir.is_dir() {
        return Err(Error::Usage {
            reason: "--input must be an existing folder".to_owned(),
            path: Some(options.input_dir.clone()),
        });
    }
    std::fs::create_dir_all(&options.output_dir)
        .map_err(|e| Error::io("creating the output folder", &options.output_dir, e))?;
    let out_dir = std::fs::canonicalize(&options.output_dir)
        .map_err(|e| Error::io("opening the output folder", &options.output_dir, e))?;
    let mut options = options.clone();
    options.input_dir = std::fs::canonicalize(&options.input_dir)
        .map_err(|e| Error::io("opening the watched folder", &options.input_dir, e))?;
    options.output_dir = out_dir.clone();
    let h = settings_hash(
        chain,
        options.format,
        (options.quality, options.lossless),
        &options.name_template,
    );
    let journal = Journal::open(&out_dir, &format!(".opossum-watch-{h:016x}"))?;
    crate::io::clean_stale_temp_files(&out_dir, Duration::ZERO);
    let workers = crate::batch::concurrency(engine, options.concurrency);
    let share = engine.with_budget(engine.budget_bytes() / workers as u64);
    let started = Instant::now();
    let shared = Shared {
        engine: &share,
        chain,
        options: &options,
        journal: Mutex::new(journal),
        cancel: stop,
        results: Mutex::new(Vec::new()),
        on_event,
        in_flight: Mutex::new(std::collections::HashSet::new()),
    };
    // Ready files wait here; a full queue leaves them nominated (bounded memory).
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<PathBuf>(workers * 2);
    let ready_rx = Arc::new(Mutex::new(ready_rx));
    // Workers wait on the queue in threads of their own and render inside the engine's pool
    // (`install`), so decoding, tiles and encoding all run on the pool's threads.
    std::thread::scope(|s| {
        for _ in 0..workers {
            let rx = ready_rx.clone();
            let shared = &shared;
            s.spawn(move || worker(shared, &rx));
        }
        watch_loop(&shared, &out_dir, ready_tx, stop);
    });
    let files = shared
        .results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Ok(BatchReport {
        files,
        elapsed: started.elapsed(),
        workers,
        cancelled: false,
        peak_rss_bytes: crate::batch::peak_rss_bytes(),
    })
}

fn worker(shared: &Shared<'_>, rx: &Mutex<Receiver<PathBuf>>) {
    loop {
        let next = rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv_timeout(Duration::from_millis(200));
        match next {
            Ok(path) => shared.engine.pool().install(|| shared.process(&path)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn watch_loop(shared: &Shared<'_>, out_dir: &Path, ready: SyncSender<PathBuf>, stop: &AtomicBool) {
    let options = shared.options;
    let status = |m: String| (shared.on_event)(WatchEvent::Status(m));
    let (tx, events) = std::sync::mpsc::channel::<DebounceEventResult>();
    let mut watcher = None;
    let mut pending: HashMap<PathBuf, Pending> = HashMap::new();
    // Settled files the workers have not taken yet (paths only: memory stays small).
    let mut backlog: std::collections::VecDeque<PathBuf> = std::collections::VecDeque::new();
    let mut rescan = true;
    let mut last_attempt = Instant::now() - Duration::from_secs(10);
    while !stop.load(Ordering::Relaxed) {
        if watcher.is_none() && last_attempt.elapsed() >= Duration::from_secs(2) {
            last_attempt = Instant::now();
            if options.input_dir.is_dir() {
                match start_watcher(options, tx.clone()) {
                    Ok(w) => {
                        status(format!(
                            "watching {} ({})",
                            options.input_dir.display(),
                            if matches!(w, Watcher::Poll { .. }) {
                                "polling"
                            } else {
                                "inotify"
                            }
                        ));
                        watcher = Some(w);
                        rescan = true;
                    }
                    Err(e) => status(format!(
                        "cannot watch {}: {e}; retrying",
                        options.input_dir.display()
                    )),
                }
            }
        }
        if watcher.is_some() && !options.input_dir.is_dir() {
            status(format!(
                "the watched folder {} is gone; waiting for it to come back",
                options.input_dir.display()
            ));
            watcher = None;
            pending.clear();
        }
        if rescan && watcher.is_some() {
            rescan = false;
            for path in scan(options, out_dir) {
                nominate(&mut pending, path);
            }
        }
        // Events only nominate paths.
        let mut overflowed = false;
        while let Ok(result) = events.try_recv() {
            match result {
                Ok(batch) => {
                    for event in batch {
                        if event.need_rescan() {
                            overflowed = true;
                        }
                        for path in &event.paths {
                            if path.is_dir() && options.recursive {
                                rescan = true;
                            } else if is_candidate(path, options, out_dir) {
                                nominate(&mut pending, path.clone());
                            }
                        }
                    }
                }
                // Queue overflow and watcher errors: look at everything again.
                Err(_) => overflowed = true,
            }
        }
        if overflowed && watcher.is_some() {
            status("events were lost (queue overflow); rescanning the folder".to_owned());
            rescan = true;
        }
        // Settle: a nominated file is ready when its size and mtime held still long enough.
        let now = Instant::now();
        let mut ready_now = Vec::new();
        pending.retain(|path, p| {
            let Ok(meta) = std::fs::metadata(path) else {
                return false; // deleted while settling
            };
            if !meta.is_file() {
                return false;
            }
            let mtime = meta.modified().ok();
            if meta.len() != p.size || mtime != p.mtime {
                p.size = meta.len();
                p.mtime = mtime;
                p.stable_since = now;
                return true;
            }
            // An empty file is a writer that has created it and not written yet (a copy that
            // pre-creates its target): it waits, however long, until it has bytes.
            if now.duration_since(p.stable_since) >= options.settle && meta.len() > 0 {
                ready_now.push(path.clone());
                return false;
            }
            true
        });
        ready_now.sort();
        backlog.extend(ready_now);
        while let Some(path) = backlog.pop_front() {
            match ready.try_send(path) {
                Ok(()) => {}
                // Workers busy: offer it again next round.
                Err(TrySendError::Full(path)) => {
                    backlog.push_front(path);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        std::thread::sleep(Duration::from_millis(if backlog.is_empty() {
            50
        } else {
            5
        }));
    }
    drop(watcher);
}

fn nominate(pending: &mut HashMap<PathBuf, Pending>, path: PathBuf) {
    pending.entry(path).or_insert_with(|| Pending {
        size: u64::MAX,
        mtime: None,
        stable_since: Instant::now(),
    });
}
