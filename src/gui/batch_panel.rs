//! The Batch panel: pick input files and folders and an output folder, run the chain over all of
//! them on a background thread with [`crate::batch`] (the code `opossum batch` runs), follow the
//! progress, read the per-file results, open the JSON report. The job runs a snapshot of the
//! chain taken when it starts, so editing the chain meanwhile never changes it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::dialogs::FileDialogs;
use super::output_ui::{OutputSettings, file_stamp, panel_window};
use crate::batch::{self, BatchOptions, BatchReport, FileResult, OnError, Outcome};
use crate::chain::Chain;
use crate::engine::Engine;

/// What the panel remembers between runs and sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchSettings {
    /// Files and folders to process.
    pub inputs: Vec<PathBuf>,
    /// Descend into sub-folders of input folders.
    pub recursive: bool,
    /// Skip inputs whose output exists.
    pub skip_existing: bool,
    /// Start no new file after a failure.
    pub stop_on_error: bool,
    /// Images in parallel (0 = from the settings, automatic there).
    pub concurrency: usize,
    /// Write the JSON report into the output folder when the batch ends.
    pub write_report: bool,
    /// Output folder, format, quality, names.
    pub output: OutputSettings,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            inputs: Vec::new(),
            recursive: false,
            skip_existing: false,
            stop_on_error: false,
            concurrency: 0,
            write_report: true,
            output: OutputSettings::default(),
        }
    }
}

impl BatchSettings {
    /// Why the batch cannot start, if it cannot.
    fn problem(&self) -> Option<String> {
        if self.inputs.is_empty() {
            return Some("Add images or folders to process.".to_owned());
        }
        self.output.problem()
    }

    fn options(&self) -> BatchOptions {
        BatchOptions {
            inputs: self.inputs.clone(),
            output_dir: self.output.output_dir.clone().unwrap_or_default(),
            format: self.output.format.choice(),
            quality: self.output.quality,
            lossless: self.output.lossless(),
            concurrency: self.concurrency,
            on_error: if self.stop_on_error {
                OnError::Stop
            } else {
                OnError::Continue
            },
            recursive: self.recursive,
            skip_existing: self.skip_existing,
            name_template: self.output.name_template.clone(),
            shard: None,
        }
    }
}

/// What the panel asks the app to do (the app owns the chain and the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchAction {
    /// Start a batch with a snapshot of the current chain.
    Start,
    /// Cancel the running batch.
    Cancel,
}

enum BatchMsg {
    Prepared {
        to_render: usize,
        skipped: Vec<FileResult>,
    },
    File(FileResult),
    Finished(Result<Finished, String>),
}

/// A batch that ended.
pub struct Finished {
    /// Every file's result and the summary figures.
    pub report: BatchReport,
    /// Where the JSON report was written.
    pub report_path: Option<PathBuf>,
    /// Why it could not be written.
    pub report_error: Option<String>,
    output_dir: PathBuf,
}

struct BatchJob {
    rx: Receiver<BatchMsg>,
    cancel: Arc<AtomicBool>,
    started: Instant,
    chain_ops: usize,
    /// Files to render (known once the inputs are gathered).
    to_render: Option<usize>,
    rendered: usize,
    results: Vec<FileResult>,
}

impl Drop for BatchJob {
    fn drop(&mut self) {
        // Closing the app cancels a batch in flight; its temp files are removed.
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// The panel's state.
#[derive(Default)]
pub struct BatchPanel {
    /// Whether the window is shown.
    pub open: bool,
    /// The settings being edited (persisted).
    pub settings: BatchSettings,
    job: Option<BatchJob>,
    finished: Option<Finished>,
    /// Why the last start failed (bad folder, busy journal…).
    error: Option<String>,
    only_failures: bool,
}

impl BatchPanel {
    /// A closed panel with these settings (restored from the last session).
    pub fn new(settings: BatchSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// Add inputs (files or folders), each once.
    pub fn add_inputs(&mut self, paths: impl IntoIterator<Item = PathBuf>) {
        add(&mut self.settings.inputs, paths);
    }

    /// The inputs chosen so far.
    pub fn inputs(&self) -> &[PathBuf] {
        &self.settings.inputs
    }

    /// Whether a batch is running.
    pub fn running(&self) -> bool {
        self.job.is_some()
    }

    /// The last finished batch.
    pub fn finished(&self) -> Option<&Finished> {
        self.finished.as_ref()
    }

    /// Why the last batch could not start.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Start a batch of `chain` (a snapshot) on `engine`'s pool; `repaint` wakes the UI.
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
        let write_report = self.settings.write_report;
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let chain_ops = chain.ops.iter().filter(|op| op.enabled).count();
        let job_cancel = cancel.clone();
        let spawned = std::thread::Builder::new()
            .name("opossum-batch".into())
            .spawn(move || {
                let result = (|| {
                    let prepared = batch::prepare(&chain, &options)
                        .map_err(|e| format!("{e}\n{}", e.hint()))?;
                    let _ = tx.send(BatchMsg::Prepared {
                        to_render: prepared.jobs.len(),
                        skipped: prepared.skipped.clone(),
                    });
                    repaint();
                    let progress = |r: &FileResult, _: usize, _: usize| {
                        let _ = tx.send(BatchMsg::File(r.clone()));
                        repaint();
                    };
                    let report =
                        batch::run(&engine, &chain, prepared, &options, &job_cancel, &progress);
                    let (report_path, report_error) = if write_report {
                        let path = options.output_dir.join(format!(
                            "opossum-report-{}.json",
                            file_stamp(SystemTime::now())
                        ));
                        match report.write_json(&path) {
                            Ok(()) => (Some(path), None),
                            Err(e) => (None, Some(e.to_string())),
                        }
                    } else {
                        (None, None)
                    };
                    Ok(Finished {
                        report,
                        report_path,
                        report_error,
                        output_dir: options.output_dir.clone(),
                    })
                })();
                let _ = tx.send(BatchMsg::Finished(result));
                repaint();
            });
        match spawned {
            Ok(_) => {
                self.error = None;
                self.finished = None;
                self.job = Some(BatchJob {
                    rx,
                    cancel,
                    started: Instant::now(),
                    chain_ops,
                    to_render: None,
                    rendered: 0,
                    results: Vec::new(),
                });
            }
            Err(e) => self.error = Some(format!("cannot start the batch: {e}")),
        }
    }

    /// Cancel the running batch (files in flight are abandoned and cleaned up).
    pub fn cancel(&mut self) {
        if let Some(job) = &self.job {
            job.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Take in the job's news; true while it runs (the caller keeps repainting for the ETA).
    pub fn poll(&mut self) -> bool {
        let Some(job) = &mut self.job else {
            return false;
        };
        while let Ok(msg) = job.rx.try_recv() {
            match msg {
                BatchMsg::Prepared { to_render, skipped } => {
                    job.to_render = Some(to_render);
                    job.results.extend(skipped);
                }
                BatchMsg::File(r) => {
                    job.rendered += 1;
                    job.results.push(r);
                }
                BatchMsg::Finished(result) => {
                    match result {
                        Ok(finished) => self.finished = Some(finished),
                        Err(message) => self.error = Some(message),
                    }
                    self.job = None;
                    return false;
                }
            }
        }
        true
    }

    /// The window; returns what the app should do.
    pub fn ui(
        &mut self,
        ctx: &egui::Context,
        dialogs: &mut dyn FileDialogs,
        chain_ops: usize,
    ) -> Option<BatchAction> {
        let mut open = self.open;
        let action = panel_window(ctx, "Batch", [640.0, 560.0], &mut open, |ui| {
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
    ) -> Option<BatchAction> {
        let mut action = None;
        let running = self.job.is_some();
        ui.label(format!(
            "Runs the current chain ({chain_ops} active ops) over every input. A batch keeps \
             the chain as it was when it started."
        ));
        ui.add_enabled_ui(!running, |ui| self.settings_ui(ui, dialogs));
        ui.separator();
        ui.horizontal(|ui| {
            if running {
                if ui.button("Cancel batch").clicked() {
                    action = Some(BatchAction::Cancel);
                }
            } else {
                let problem = self.settings.problem();
                let run = ui.add_enabled(problem.is_none(), egui::Button::new("Run batch"));
                if run.clicked() {
                    action = Some(BatchAction::Start);
                }
                if let Some(problem) = problem {
                    ui.weak(problem);
                }
            }
        });
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        if let Some(job) = &self.job {
            progress_ui(ui, job);
        }
        if let Some(finished) = &self.finished {
            ui.label(finished.report.summary());
            ui.horizontal(|ui| {
                if let Some(path) = &finished.report_path
                    && ui.button("Open report").clicked()
                {
                    self.error = dialogs.open_path(path).err();
                }
                if ui.button("Open output folder").clicked() {
                    self.error = dialogs.open_path(&finished.output_dir).err();
                }
            });
            if let Some(e) = &finished.report_error {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The report could not be written: {e}"),
                );
            }
        }
        let results: &[FileResult] = match (&self.job, &self.finished) {
            (Some(job), _) => &job.results,
            (None, Some(f)) => &f.report.files,
            (None, None) => &[],
        };
        if !results.is_empty() {
            ui.separator();
            ui.checkbox(&mut self.only_failures, "Only failures");
            let shown: Vec<&FileResult> = results
                .iter()
                .filter(|r| !self.only_failures || matches!(r.outcome, Outcome::Failed { .. }))
                .collect();
            results_table(ui, &shown);
        }
        action
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui, dialogs: &mut dyn FileDialogs) {
        let s = &mut self.settings;
        ui.horizontal(|ui| {
            ui.strong("Inputs")
                .on_hover_text("Or drop files and folders on the window");
            if ui.button("Add images…").clicked() {
                let picked = dialogs.pick_images();
                add(&mut s.inputs, picked);
            }
            if ui.button("Add folder…").clicked()
                && let Some(dir) = dialogs.pick_folder("Folder of images")
            {
                add(&mut s.inputs, [dir]);
            }
            if ui
                .add_enabled(!s.inputs.is_empty(), egui::Button::new("Clear"))
                .clicked()
            {
                s.inputs.clear();
            }
        });
        egui::ScrollArea::vertical()
            .id_salt("batch_inputs")
            .max_height(110.0)
            .show(ui, |ui| {
                let mut remove = None;
                for (i, path) in s.inputs.iter().enumerate() {
                    ui.horizontal(|ui| {
                        if ui.small_button("🗙").on_hover_text("Remove").clicked() {
                            remove = Some(i);
                        }
                        let kind = if path.is_dir() { "folder" } else { "file" };
                        ui.label(format!("{} ({kind})", path.display()));
                    });
                }
                if let Some(i) = remove {
                    s.inputs.remove(i);
                }
            });
        ui.checkbox(&mut s.recursive, "Include sub-folders");
        ui.separator();
        s.output.ui(ui, "batch", dialogs);
        ui.horizontal(|ui| {
            ui.checkbox(&mut s.skip_existing, "Skip files whose output exists");
            ui.checkbox(&mut s.stop_on_error, "Stop at the first failure");
        });
        ui.horizontal(|ui| {
            let l = ui.label("Images in parallel (0 = automatic)");
            ui.add(egui::DragValue::new(&mut s.concurrency).range(0..=64))
                .labelled_by(l.id);
            ui.checkbox(
                &mut s.write_report,
                "Write a JSON report to the output folder",
            );
        });
    }
}

/// Append `paths` to `inputs`, skipping those already there.
fn add(inputs: &mut Vec<PathBuf>, paths: impl IntoIterator<Item = PathBuf>) {
    for path in paths {
        if !inputs.contains(&path) {
            inputs.push(path);
        }
    }
}

fn progress_ui(ui: &mut egui::Ui, job: &BatchJob) {
    let secs = job.started.elapsed().as_secs_f64().max(1e-3);
    let text = match job.to_render {
        None => "Gathering inputs…".to_owned(),
        Some(total) => {
            let rate = job.rendered as f64 / secs;
            let eta = if job.rendered > 0 && total > job.rendered {
                format!(
                    " · about {:.0} s left",
                    (total - job.rendered) as f64 / rate
                )
            } else {
                String::new()
            };
            format!(
                "{} of {total} files · {rate:.1} images/s{eta} · chain of {} ops",
                job.rendered, job.chain_ops
            )
        }
    };
    let fraction = job
        .to_render
        .map_or(0.0, |t| job.rendered as f32 / t.max(1) as f32);
    ui.add(egui::ProgressBar::new(fraction).text(text).animate(true));
}

fn results_table(ui: &mut egui::Ui, rows: &[&FileResult]) {
    use egui_extras::{Column, TableBuilder};
    let error_color = ui.visuals().error_fg_color;
    TableBuilder::new(ui)
        .id_salt("batch_results")
        .striped(true)
        .resizable(true)
        .max_scroll_height(260.0)
        .column(Column::auto().at_least(160.0))
        .column(Column::auto().at_least(60.0))
        .column(Column::auto().at_least(60.0))
        .column(Column::auto().at_least(70.0))
        .column(Column::remainder())
        .header(20.0, |mut header| {
            for title in ["File", "Result", "Time", "Output", "Details"] {
                header.col(|ui| {
                    ui.strong(title);
                });
            }
        })
        .body(|body| {
            body.rows(18.0, rows.len(), |mut row| {
                let r = rows[row.index()];
                let name = r.input.file_name().map_or_else(
                    || r.input.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                row.col(|ui| {
                    ui.label(name).on_hover_text(r.input.display().to_string());
                });
                let (result, ms, size, details) = match &r.outcome {
                    Outcome::Done { ms, output_bytes } => (
                        "ok",
                        format!("{ms:.0} ms"),
                        crate::error::human_bytes(*output_bytes),
                        r.output.display().to_string(),
                    ),
                    Outcome::Skipped(reason) => (
                        "skipped",
                        String::new(),
                        String::new(),
                        (*reason).to_owned(),
                    ),
                    Outcome::Failed {
                        category,
                        message,
                        hint,
                    } => (
                        "failed",
                        String::new(),
                        String::new(),
                        format!("{category}: {message} — {hint}"),
                    ),
                    Outcome::Cancelled => {
                        ("cancelled", String::new(), String::new(), String::new())
                    }
                };
                row.col(|ui| {
                    if result == "failed" {
                        ui.colored_label(error_color, result);
                    } else {
                        ui.label(result);
                    }
                });
                row.col(|ui| {
                    ui.label(ms);
                });
                row.col(|ui| {
                    ui.label(size);
                });
                row.col(|ui| {
                    ui.label(details.clone()).on_hover_text(details);
                });
            });
        });
}
