//! The Watch panel: watch a folder with [`crate::watch`] (the code `opossum watch` runs) on a
//! background thread, rendering every image that arrives with a snapshot of the chain taken at
//! start; a live log line per file, counters, stop. Failures also go to the error log in the
//! output folder (and the quarantine folder, when one is set).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::dialogs::FileDialogs;
use super::output_ui::{OutputSettings, folder_row, panel_window};
use crate::batch::{BatchReport, Outcome};
use crate::chain::Chain;
use crate::engine::Engine;
use crate::watch::{self, WatchEvent, WatchOptions};

/// Log lines kept on screen (older ones are in the error log / report).
const LOG_LINES: usize = 1000;

/// What the panel remembers between sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchSettings {
    /// The folder to watch.
    pub input_dir: Option<PathBuf>,
    /// Watch sub-folders too.
    pub recursive: bool,
    /// How long size and mtime must stay unchanged before a file is taken, ms.
    pub settle_ms: u64,
    /// Move failing inputs here.
    pub quarantine: Option<PathBuf>,
    /// Output folder, format, quality, names.
    pub output: OutputSettings,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            input_dir: None,
            recursive: false,
            settle_ms: 1000,
            quarantine: None,
            output: OutputSettings::default(),
        }
    }
}

impl WatchSettings {
    fn problem(&self) -> Option<String> {
        if self.input_dir.is_none() {
            return Some("Choose the folder to watch.".to_owned());
        }
        self.output.problem()
    }

    fn options(&self) -> WatchOptions {
        WatchOptions {
            input_dir: self.input_dir.clone().unwrap_or_default(),
            output_dir: self.output.output_dir.clone().unwrap_or_default(),
            format: self.output.format.choice(),
            quality: self.output.quality,
            lossless: self.output.lossless(),
            name_template: self.output.name_template.clone(),
            recursive: self.recursive,
            concurrency: 0,
            settle: Duration::from_millis(self.settle_ms),
            poll: None,
            quarantine: self.quarantine.clone(),
        }
    }
}

/// What the panel asks the app to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchAction {
    /// Start watching with a snapshot of the current chain.
    Start,
    /// Stop watching.
    Stop,
}

enum WatchMsg {
    Event(WatchEvent, SystemTime),
    Ended(Result<BatchReport, String>),
}

struct WatchJob {
    rx: Receiver<WatchMsg>,
    stop: Arc<AtomicBool>,
    input_dir: PathBuf,
    chain_ops: usize,
}

impl Drop for WatchJob {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Files seen by the running (or last) watch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Rendered and written.
    pub written: usize,
    /// Failed (logged, maybe quarantined).
    pub failed: usize,
    /// Skipped (unchanged since an earlier run, …).
    pub skipped: usize,
}

/// The panel's state.
#[derive(Default)]
pub struct WatchPanel {
    /// Whether the window is shown.
    pub open: bool,
    /// The settings being edited (persisted).
    pub settings: WatchSettings,
    job: Option<WatchJob>,
    log: VecDeque<String>,
    counters: Counters,
    summary: Option<String>,
    error: Option<String>,
}

impl WatchPanel {
    /// A closed panel with these settings (restored from the last session).
    pub fn new(settings: WatchSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// Whether a watch is running.
    pub fn running(&self) -> bool {
        self.job.is_some()
    }

    /// The counters of the running or last watch.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The live log, oldest first.
    pub fn log(&self) -> impl Iterator<Item = &str> {
        self.log.iter().map(String::as_str)
    }

    /// Why the watch could not start or stopped with an error.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Start watching with `chain` (a snapshot) on `engine`'s pool.
    pub fn start(
        &mut self,
        engine: Arc<Engine>,
        chain: Chain,
        repaint: impl Fn() + Send + Sync + 'static,
    ) {
        if self.job.is_some() {
            return;
        }
        if let Some(problem) = self.settings.problem() {
            self.error = Some(problem);
            return;
        }
        let options = self.settings.options();
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let job_stop = stop.clone();
        let chain_ops = chain.ops.iter().filter(|op| op.enabled).count();
        let spawned = std::thread::Builder::new()
            .name("opossum-watch".into())
            .spawn(move || {
                let on_event = |event: WatchEvent| {
                    let _ = tx.send(WatchMsg::Event(event, SystemTime::now()));
                    repaint();
                };
                let result = watch::run(&engine, &chain, &options, &job_stop, &on_event)
                    .map_err(|e| format!("{e}\n{}", e.hint()));
                let _ = tx.send(WatchMsg::Ended(result));
                repaint();
            });
        match spawned {
            Ok(_) => {
                self.error = None;
                self.summary = None;
                self.counters = Counters::default();
                self.log.clear();
                self.job = Some(WatchJob {
                    rx,
                    stop,
                    input_dir: self.settings.input_dir.clone().unwrap_or_default(),
                    chain_ops,
                });
            }
            Err(e) => self.error = Some(format!("cannot start watching: {e}")),
        }
    }

    /// Ask the watch to stop (it finishes the files in flight).
    pub fn stop(&mut self) {
        if let Some(job) = &self.job {
            job.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Take in the watcher's news.
    pub fn poll(&mut self) {
        let Some(job) = &self.job else { return };
        let news: Vec<WatchMsg> = job.rx.try_iter().collect();
        for msg in news {
            match msg {
                WatchMsg::Event(WatchEvent::Status(message), at) => {
                    self.push_line(format!("{} {message}", watch::clock(at)));
                }
                WatchMsg::Event(WatchEvent::File(r), at) => {
                    match r.outcome {
                        Outcome::Done { .. } => self.counters.written += 1,
                        Outcome::Failed { .. } => self.counters.failed += 1,
                        Outcome::Skipped(_) => self.counters.skipped += 1,
                        Outcome::Cancelled => {}
                    }
                    self.push_line(watch::log_line(&r, at));
                }
                WatchMsg::Ended(result) => {
                    match result {
                        Ok(report) => self.summary = Some(report.summary()),
                        Err(message) => self.error = Some(message),
                    }
                    self.job = None;
                    return;
                }
            }
        }
    }

    fn push_line(&mut self, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    /// The window; returns what the app should do.
    pub fn ui(
        &mut self,
        ctx: &egui::Context,
        dialogs: &mut dyn FileDialogs,
        chain_ops: usize,
    ) -> Option<WatchAction> {
        let mut open = self.open;
        let action = panel_window(ctx, "Watch folder", [640.0, 520.0], &mut open, |ui| {
            self.contents(ui, dialogs, chain_ops)
        });
        self.open = open;
        action
    }

    fn contents(
        &mut self,
        ui: &mut egui::Ui,
        dialogs: &mut dyn FileDialogs,
        chain_ops: usize,
    ) -> Option<WatchAction> {
        let mut action = None;
        let running = self.job.is_some();
        ui.label(format!(
            "Renders every image that arrives in a folder with the current chain ({chain_ops} \
             active ops), each exactly once, also across restarts. A watch keeps the chain as \
             it was when it started."
        ));
        ui.add_enabled_ui(!running, |ui| {
            let s = &mut self.settings;
            egui::Grid::new("watch_grid").num_columns(2).show(ui, |ui| {
                ui.label("Watched folder");
                folder_row(ui, dialogs, "Choose watched folder…", &mut s.input_dir, None);
                ui.end_row();
                ui.label("Quarantine");
                folder_row(
                    ui,
                    dialogs,
                    "Choose quarantine folder…",
                    &mut s.quarantine,
                    Some("none: failing files stay where they are"),
                );
                ui.end_row();
                let l = ui.label("Settle time (ms)");
                ui.add(egui::DragValue::new(&mut s.settle_ms).range(0..=60_000))
                    .on_hover_text("A file is taken once its size and time stamp have not changed for this long")
                    .labelled_by(l.id);
                ui.end_row();
            });
            ui.checkbox(&mut s.recursive, "Include sub-folders");
            ui.separator();
            s.output.ui(ui, "watch", dialogs);
        });
        ui.separator();
        ui.horizontal(|ui| match &self.job {
            Some(job) if job.stop.load(Ordering::Relaxed) => {
                ui.spinner();
                ui.label("Stopping after the files in flight…");
            }
            Some(job) => {
                if ui.button("Stop watching").clicked() {
                    action = Some(WatchAction::Stop);
                }
                ui.spinner();
                ui.label(format!(
                    "Watching {} (chain of {} ops)",
                    job.input_dir.display(),
                    job.chain_ops
                ));
            }
            None => {
                let problem = self.settings.problem();
                if ui
                    .add_enabled(problem.is_none(), egui::Button::new("Start watching"))
                    .clicked()
                {
                    action = Some(WatchAction::Start);
                }
                if let Some(problem) = problem {
                    ui.weak(problem);
                }
            }
        });
        let c = self.counters;
        ui.label(format!(
            "{} written · {} failed · {} skipped",
            c.written, c.failed, c.skipped
        ));
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        if let Some(summary) = &self.summary {
            ui.label(format!("Stopped: {summary}"));
        }
        if let Some(out) = &self.settings.output.output_dir {
            ui.horizontal(|ui| {
                if ui.button("Open output folder").clicked() {
                    self.error = dialogs.open_path(out).err();
                }
                let log = out.join(watch::ERROR_LOG);
                if log.is_file() && ui.button("Open error log").clicked() {
                    self.error = dialogs.open_path(&log).err();
                }
            });
        }
        ui.separator();
        egui::ScrollArea::vertical()
            .id_salt("watch_log")
            .stick_to_bottom(true)
            .auto_shrink([false, false])
            .max_height(240.0)
            .show(ui, |ui| {
                for line in &self.log {
                    if line.contains(" error ") {
                        ui.colored_label(ui.visuals().error_fg_color, line);
                    } else {
                        ui.monospace(line);
                    }
                }
            });
        action
    }
}
