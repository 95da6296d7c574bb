//! Background work for the app, so the UI thread never waits: loading an image (decode and
//! pyramid), rendering previews (latest request wins, stale renders are cancelled), and
//! full-resolution exports (progress, ETA, cancel). Each runs on a named thread and wakes the
//! UI with `request_repaint` when it has news.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::chain::Chain;
use crate::engine::Engine;
use crate::engine::pyramid::Pyramid;
use crate::engine::render::RenderControl;
use crate::io::decode::{self, Orientation};
use crate::io::encode::EncodeOptions;

/// A decoded image ready for previews.
pub struct LoadedImage {
    /// The file.
    pub path: PathBuf,
    /// Source pyramid.
    pub pyramid: Arc<Pyramid>,
    /// EXIF orientation.
    pub orientation: Orientation,
    /// Container format name.
    pub format: String,
    /// File size in bytes.
    pub file_bytes: u64,
    /// Time to decode and build the pyramid.
    pub load_time: Duration,
}

/// Decode `path` and build its pyramid on a background thread.
pub fn load_image(
    engine: Arc<Engine>,
    path: PathBuf,
    repaint: impl Fn() + Send + 'static,
) -> Receiver<Result<LoadedImage, String>> {
    let (tx, rx) = channel();
    let spawned = std::thread::Builder::new()
        .name("opossum-load".into())
        .spawn(move || {
            let t0 = Instant::now();
            let result = (|| {
                let decoded = decode::decode_file(&path, &engine.decode_limits())
                    .map_err(|e| format!("{e}\n{}", e.hint()))?;
                let pyramid = Pyramid::build(&decoded.image).map_err(|e| e.to_string())?;
                Ok(LoadedImage {
                    file_bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                    path: path.clone(),
                    pyramid: Arc::new(pyramid),
                    orientation: decoded.orientation,
                    format: format!("{:?}", decoded.format),
                    load_time: t0.elapsed(),
                })
            })();
            let _ = tx.send(result);
            repaint();
        });
    if let Err(e) = spawned {
        let (tx, rx) = channel();
        let _ = tx.send(Err(format!("cannot start the loader: {e}")));
        return rx;
    }
    rx
}

/// A finished preview.
pub struct PreviewFrame {
    /// Which request it answers.
    pub generation: u64,
    /// Rendered pixels, 8-bit RGBA.
    pub rgba: Vec<u8>,
    /// Their size.
    pub size: [usize; 2],
    /// Pyramid level rendered.
    pub level: usize,
    /// Scale of that level.
    pub scale: f64,
    /// From request to finished pixels.
    pub latency: Duration,
    /// Time per stage label.
    pub stage_ms: Vec<(String, f64)>,
    /// For a refinement: the part of the full-resolution output these pixels cover.
    pub region: Option<crate::engine::geom::Rect>,
}

/// What a preview request asks for.
struct PreviewRequest {
    generation: u64,
    chain: Chain,
    pyramid: Arc<Pyramid>,
    orientation: Orientation,
    level: usize,
    region: Option<crate::engine::geom::Rect>,
    cancel: Arc<AtomicBool>,
    submitted: Instant,
}

/// Renders previews on its own thread; a newer request cancels the one in flight.
pub struct PreviewWorker {
    requests: Sender<PreviewRequest>,
    /// Finished previews (or errors) for the UI.
    pub results: Receiver<(u64, Result<PreviewFrame, String>)>,
    in_flight: Option<Arc<AtomicBool>>,
    next_generation: u64,
}

impl PreviewWorker {
    /// Start the worker thread.
    pub fn start(engine: Arc<Engine>, repaint: impl Fn() + Send + 'static) -> Self {
        let (requests, inbox) = channel::<PreviewRequest>();
        let (outbox, results) = channel();
        let _ = std::thread::Builder::new()
            .name("opossum-preview".into())
            .spawn(move || {
                while let Ok(mut request) = inbox.recv() {
                    // Skip to the newest request: older ones are stale.
                    loop {
                        match inbox.try_recv() {
                            Ok(newer) => request = newer,
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => return,
                        }
                    }
                    if request.cancel.load(Ordering::Relaxed) {
                        continue;
                    }
                    let result = render_preview(&engine, &request);
                    if request.cancel.load(Ordering::Relaxed) {
                        continue;
                    }
                    if outbox.send((request.generation, result)).is_err() {
                        return;
                    }
                    repaint();
                }
            });
        Self {
            requests,
            results,
            in_flight: None,
            next_generation: 1,
        }
    }

    /// Ask for a preview of `chain` on pyramid `level` (only `region` of the full-resolution
    /// output when given, with level 0); cancels the previous request.
    pub fn request(
        &mut self,
        chain: &Chain,
        pyramid: &Arc<Pyramid>,
        orientation: Orientation,
        level: usize,
        region: Option<crate::engine::geom::Rect>,
    ) -> u64 {
        if let Some(previous) = self.in_flight.take() {
            previous.store(true, Ordering::Relaxed);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let generation = self.next_generation;
        self.next_generation += 1;
        self.in_flight = Some(cancel.clone());
        let _ = self.requests.send(PreviewRequest {
            generation,
            chain: chain.clone(),
            pyramid: pyramid.clone(),
            orientation,
            level,
            region,
            cancel,
            submitted: Instant::now(),
        });
        generation
    }
}

fn render_preview(engine: &Engine, request: &PreviewRequest) -> Result<PreviewFrame, String> {
    puffin::profile_function!();
    let level = &request.pyramid.levels[request.level];
    let control = RenderControl {
        cancel: Some(&request.cancel),
        progress: None,
    };
    let (image, stats) = match request.region {
        Some(region) => engine.render_region(
            &level.image,
            request.orientation,
            &request.chain,
            level.scale,
            region,
            &control,
        ),
        None => engine.render_source_scaled(
            &level.image,
            request.orientation,
            &request.chain,
            level.scale,
            false,
            &control,
        ),
    }
    .map_err(|e| e.to_string())?;
    let region = request
        .region
        .map(|r| crate::engine::geom::Rect::new(r.x, r.y, image.size.width, image.size.height));
    Ok(PreviewFrame {
        generation: request.generation,
        size: [image.size.width as usize, image.size.height as usize],
        rgba: image.to_rgba8(),
        level: request.level,
        scale: level.scale,
        latency: request.submitted.elapsed(),
        stage_ms: stats
            .stage_times
            .iter()
            .map(|(label, d)| (label.clone(), d.as_secs_f64() * 1000.0))
            .collect(),
        region,
    })
}

/// Shared progress of an export.
#[derive(Default)]
pub struct ExportProgress {
    /// Tiles done.
    pub done: AtomicUsize,
    /// Tiles in all.
    pub total: AtomicUsize,
    /// Set to stop.
    pub cancel: AtomicBool,
}

/// A full-resolution export running in the background.
pub struct ExportJob {
    /// Where it writes.
    pub output: PathBuf,
    /// Progress counters.
    pub progress: Arc<ExportProgress>,
    /// When it started.
    pub started: Instant,
    /// The outcome, once finished: a summary or an error.
    pub result: Receiver<Result<String, String>>,
    /// Megapixels of the source (for throughput).
    pub megapixels: f64,
}

impl ExportJob {
    /// Start rendering `input` through `chain` into `output`.
    pub fn start(
        engine: Arc<Engine>,
        input: PathBuf,
        chain: Chain,
        output: PathBuf,
        options: EncodeOptions,
        megapixels: f64,
        repaint: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let progress = Arc::new(ExportProgress::default());
        let (tx, result) = channel();
        let shared = progress.clone();
        let out = output.clone();
        let repaint = Arc::new(Mutex::new(repaint));
        let spawned = std::thread::Builder::new()
            .name("opossum-export".into())
            .spawn(move || {
                puffin::profile_scope!("export");
                let last_repaint = Mutex::new(Instant::now());
                let on_progress = |done: usize, total: usize| {
                    shared.done.store(done, Ordering::Relaxed);
                    shared.total.store(total, Ordering::Relaxed);
                    let mut last = last_repaint.lock().unwrap_or_else(|e| e.into_inner());
                    if last.elapsed() > Duration::from_millis(50) {
                        *last = Instant::now();
                        (repaint.lock().unwrap_or_else(|e| e.into_inner()))();
                    }
                };
                let control = RenderControl {
                    cancel: Some(&shared.cancel),
                    progress: Some(&on_progress),
                };
                let t0 = Instant::now();
                let outcome = engine
                    .render_file(&input, &chain, &out, &options, false, &control)
                    .map(|report| {
                        format!(
                            "Exported {} ({}×{} px) in {:.1} s",
                            out.file_name()
                                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                            report.output_size.width,
                            report.output_size.height,
                            t0.elapsed().as_secs_f64()
                        )
                    })
                    .map_err(|e| format!("{e}\n{}", e.hint()));
                let _ = tx.send(outcome);
                (repaint.lock().unwrap_or_else(|e| e.into_inner()))();
            });
        if let Err(e) = spawned {
            let (tx, rx) = channel();
            let _ = tx.send(Err(format!("cannot start the export: {e}")));
            return Self {
                output,
                progress,
                started: Instant::now(),
                result: rx,
                megapixels,
            };
        }
        Self {
            output,
            progress,
            started: Instant::now(),
            result,
            megapixels,
        }
    }

    /// Fraction done and the estimated time left.
    pub fn fraction_and_eta(&self) -> (f32, Option<Duration>) {
        let done = self.progress.done.load(Ordering::Relaxed);
        let total = self.progress.total.load(Ordering::Relaxed);
        if total == 0 || done == 0 {
            return (0.0, None);
        }
        let fraction = done as f32 / total as f32;
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta =
            Duration::from_secs_f64(elapsed / f64::from(fraction) * (1.0 - f64::from(fraction)));
        (fraction, Some(eta))
    }
}
