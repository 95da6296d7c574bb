//! Background work for the app, so the UI thread never waits: loading an image (decode and
//! pyramid), rendering previews (on the GPU, else the CPU; latest request wins, stale renders
//! are cancelled), and full-resolution exports (progress, ETA, cancel). Each runs on a named
//! thread and wakes the UI with `request_repaint` when it has news.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cache::{Key, LevelStats};
use crate::chain::Chain;
use crate::engine::Engine;
use crate::engine::cached::{Frame, PreviewCaches, Request, Served, gpu_result_key};
use crate::engine::geom::Rect;
use crate::engine::pyramid::Pyramid;
use crate::engine::render::RenderControl;
use crate::engine::sink::quantize_u8;
use crate::engine::thumbs::{LoadedSource, ThumbnailCache};
use crate::engine::tile::Tile;
use crate::gpu::{GpuContext, GpuError, GpuFrame, GpuImage, GpuRenderer, GpuRequest, read_working};
use crate::io::decode::Orientation;
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
    /// Time to decode and build the pyramid (or to find it in a cache).
    pub load_time: Duration,
    /// Content hash of the file (the caches' source key).
    pub key: Key,
    /// False for the first, partial answer from the disk cache: the levels up to 2048 px,
    /// level 0 not full resolution; the complete image follows.
    pub complete: bool,
}

impl LoadedImage {
    fn new(path: &std::path::Path, source: &LoadedSource, load_time: Duration) -> Self {
        LoadedImage {
            file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            path: path.to_path_buf(),
            pyramid: source.pyramid.clone(),
            orientation: source.orientation,
            format: source.format.clone(),
            load_time,
            key: source.key,
            complete: source.complete,
        }
    }
}

/// Load `path` for previews on a background thread: from the thumbnail cache, else decoded
/// into a pyramid. When the disk cache has the smaller levels of a large image, a partial
/// image (`complete: false`) is sent first, then the complete one.
pub fn load_image(
    engine: Arc<Engine>,
    thumbnails: Arc<ThumbnailCache>,
    path: PathBuf,
    repaint: impl Fn() + Send + 'static,
) -> Receiver<Result<LoadedImage, String>> {
    let (tx, rx) = channel();
    let spawned = std::thread::Builder::new()
        .name("opossum-load".into())
        .spawn(move || {
            let t0 = Instant::now();
            let result = thumbnails.load(&engine, &path, |partial| {
                let _ = tx.send(Ok(LoadedImage::new(&path, &partial, t0.elapsed())));
                repaint();
            });
            let _ = tx.send(
                result
                    .map(|source| LoadedImage::new(&path, &source, t0.elapsed()))
                    .map_err(|e| format!("{e}\n{}", e.hint())),
            );
            repaint();
        });
    if let Err(e) = spawned {
        let (tx, rx) = channel();
        let _ = tx.send(Err(format!("cannot start the loader: {e}")));
        return rx;
    }
    rx
}

/// The pixels of a finished preview.
pub enum FramePixels {
    /// Rendered on the CPU: 8-bit RGBA, uploaded by the UI as an egui texture.
    Cpu(Vec<u8>),
    /// Rendered on the GPU: display textures that stay on the GPU.
    Gpu(GpuFrame),
}

/// A finished preview.
pub struct PreviewFrame {
    /// Which request it answers.
    pub generation: u64,
    /// The pixels.
    pub pixels: FramePixels,
    /// Their size.
    pub size: [usize; 2],
    /// Pyramid level rendered.
    pub level: usize,
    /// Scale of that level.
    pub scale: f64,
    /// From request to finished pixels.
    pub latency: Duration,
    /// Time per stage label (GPU stages say where they ran: GPU, CPU or cached).
    pub stage_ms: Vec<(String, f64)>,
    /// 8-bit histogram of the result (R, G, B, luma).
    pub histogram: [[u32; 256]; 4],
    /// For a refinement: the part of the full-resolution output these pixels cover.
    pub region: Option<Rect>,
    /// Set when the GPU path failed and this frame was rendered on the CPU instead.
    pub gpu_failure: Option<String>,
    /// GPU stage cache: hits and lookups for this frame.
    pub cache: Option<(usize, usize)>,
    /// Where a CPU frame came from (result cache, disk, or rendered reusing cached stages).
    pub served: Option<Served>,
    /// The pyramid it was rendered from (the app drops frames of a replaced one).
    pub pyramid: Arc<Pyramid>,
    /// Algorithms picked by image content (the profiler panel shows them).
    pub choices: Vec<String>,
}

/// What a preview request asks for.
struct PreviewRequest {
    generation: u64,
    source: Key,
    chain: Chain,
    pyramid: Arc<Pyramid>,
    orientation: Orientation,
    level: usize,
    region: Option<Rect>,
    use_gpu: bool,
    cancel: Arc<AtomicBool>,
    submitted: Instant,
}

/// Renders previews on its own thread (on the GPU when it has one and is allowed to, else on
/// the CPU); a newer request cancels the one in flight.
pub struct PreviewWorker {
    requests: Sender<PreviewRequest>,
    /// Finished previews (or errors) for the UI.
    pub results: Receiver<(u64, Result<PreviewFrame, String>)>,
    /// Counters of the worker's caches (result, intermediate, disk), updated after each frame.
    pub cache_stats: Arc<Mutex<Vec<LevelStats>>>,
    in_flight: Option<Arc<AtomicBool>>,
    /// Joined on drop: the thread owns GPU objects, which must be released before the process
    /// exits (a Vulkan driver torn down under a live thread crashes the process).
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A rendered frame is written to the disk cache once no newer request came for this long
/// (so a slider drag writes only where it stops).
const SETTLE_BEFORE_PERSIST: Duration = Duration::from_millis(800);

/// Request numbers, increasing across workers (a new worker after a settings change must not
/// reuse the numbers of the one it replaces).
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

impl PreviewWorker {
    /// Start the worker thread; `gpu` is the app's wgpu device, if it has one.
    pub fn start(
        engine: Arc<Engine>,
        gpu: Option<GpuContext>,
        mut caches: PreviewCaches,
        repaint: impl Fn() + Send + 'static,
    ) -> Self {
        let (requests, inbox) = channel::<PreviewRequest>();
        let (outbox, results) = channel();
        let cache_stats = Arc::new(Mutex::new(caches.stats()));
        let stats_out = cache_stats.clone();
        let thread = std::thread::Builder::new()
            .name("opossum-preview".into())
            .spawn(move || {
                let cache_budget = engine.config().performance.gpu_memory_limit.0 / 2;
                let mut gpu = gpu.map(|ctx| {
                    let mut renderer = GpuRenderer::new(ctx);
                    renderer.cache_budget_bytes = cache_budget;
                    renderer
                });
                let publish = |caches: &PreviewCaches| {
                    *stats_out.lock().unwrap_or_else(|e| e.into_inner()) = caches.stats();
                };
                // The last rendered frame, written to disk when it has stayed current.
                let mut unsaved: Rendered = None;
                loop {
                    let mut request = match inbox.recv_timeout(SETTLE_BEFORE_PERSIST) {
                        Ok(request) => request,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Some(frame) = unsaved.take() {
                                persist(&mut caches, gpu.as_ref(), frame);
                                publish(&caches);
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
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
                    let result = render_preview(&engine, &mut gpu, &mut caches, &request);
                    publish(&caches);
                    if request.cancel.load(Ordering::Relaxed) {
                        continue;
                    }
                    let base = request.region.is_none();
                    let result = result.map(|(frame, rendered)| {
                        // What stays on screen is the newest base frame: keep it only if it was
                        // rendered now (a cache hit is already kept; refinements are not).
                        if base {
                            unsaved = rendered;
                        }
                        frame
                    });
                    if outbox.send((request.generation, result)).is_err() {
                        break;
                    }
                    repaint();
                }
                // The app is closing (or the settings changed): keep what is on screen.
                if let Some(frame) = unsaved.take() {
                    persist(&mut caches, gpu.as_ref(), frame);
                }
            })
            .ok();
        Self {
            requests,
            results,
            cache_stats,
            in_flight: None,
            thread,
        }
    }

    /// Ask for a preview of `chain` over `image` on pyramid `level` (only `region` of the
    /// output when given), on the GPU when `use_gpu`; cancels the previous request.
    pub fn request(
        &mut self,
        chain: &Chain,
        image: &LoadedImage,
        level: usize,
        region: Option<Rect>,
        use_gpu: bool,
    ) -> u64 {
        if let Some(previous) = self.in_flight.take() {
            previous.store(true, Ordering::Relaxed);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        self.in_flight = Some(cancel.clone());
        let _ = self.requests.send(PreviewRequest {
            generation,
            source: image.key,
            chain: chain.clone(),
            pyramid: image.pyramid.clone(),
            orientation: image.orientation,
            level,
            region,
            use_gpu,
            cancel,
            submitted: Instant::now(),
        });
        generation
    }
}

impl PreviewWorker {
    /// Cancel the request in flight and close the queue: the thread ends after at most the
    /// current frame (cancelled) and writing the frame on screen to the disk cache.
    fn stop(&mut self) {
        if let Some(previous) = self.in_flight.take() {
            previous.store(true, Ordering::Relaxed);
        }
        // Replacing the sender disconnects the worker's inbox.
        self.requests = channel().0;
    }

    /// Stop without waiting (a settings change replaces the worker while the UI runs): the
    /// returned thread finishes on its own; join it before the process exits.
    pub fn retire(mut self) -> Option<std::thread::JoinHandle<()>> {
        self.stop();
        self.thread.take()
    }
}

impl Drop for PreviewWorker {
    /// Stops the worker and waits for its thread.
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Threads of replaced preview workers, joined when the app closes (they hold GPU objects,
/// which must be released before the process exits).
#[derive(Default)]
pub struct RetiredWorkers(Vec<std::thread::JoinHandle<()>>);

impl RetiredWorkers {
    /// Retire `worker` without blocking the caller.
    pub fn add(&mut self, worker: PreviewWorker) {
        self.0.retain(|t| !t.is_finished());
        self.0.extend(worker.retire());
    }
}

impl Drop for RetiredWorkers {
    fn drop(&mut self) {
        for thread in self.0.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A frame worth writing to the disk cache once it settles.
type Rendered = Option<Unsaved>;

/// A rendered base frame not yet on disk.
enum Unsaved {
    /// CPU pixels under their result key.
    Cpu(Key, Arc<Frame>),
    /// A GPU frame's working tiles (read back only if it settles), covering `region`, under
    /// the GPU result key.
    Gpu(Key, Rect, Vec<Arc<GpuImage>>),
}

/// Write a settled frame to the disk cache; a GPU frame is read back first (skipped when the
/// GPU has failed since).
fn persist(caches: &mut PreviewCaches, gpu: Option<&GpuRenderer>, frame: Unsaved) {
    puffin::profile_function!();
    match frame {
        Unsaved::Cpu(key, frame) => caches.persist(key, &frame),
        Unsaved::Gpu(key, region, tiles) => {
            let Some(ctx) = gpu.map(GpuRenderer::context) else {
                return;
            };
            let mut working = Tile::new(region);
            for image in &tiles {
                match read_working(&ctx.device, &ctx.queue, image) {
                    Ok(tile) => working.copy_from(&tile),
                    Err(_) => return,
                }
            }
            let mut rgba = vec![0; working.data.len()];
            quantize_u8(&working.data, &mut rgba);
            let size = crate::engine::geom::Size::new(region.width, region.height);
            caches.persist(key, &Frame { size, rgba });
        }
    }
}

fn render_preview(
    engine: &Engine,
    gpu: &mut Option<GpuRenderer>,
    caches: &mut PreviewCaches,
    request: &PreviewRequest,
) -> Result<(PreviewFrame, Rendered), String> {
    puffin::profile_function!();
    let level = &request.pyramid.levels[request.level];
    let cache_request = Request {
        source: request.source,
        image: &level.image,
        scale: level.scale,
        orientation: request.orientation,
        chain: &request.chain,
        region: request.region,
        detail: Some(request.pyramid.detail),
    };
    let mut gpu_failure = None;
    let mut looked_up = false;
    if request.use_gpu
        && let Some(renderer) = gpu
    {
        looked_up = true;
        // A frame the CPU made earlier (the export's pixels, but for the 8-bit leading ops), or one this path kept,
        // beats rendering again.
        let (found, key) = caches
            .cached_for_gpu(engine, &cache_request)
            .map_err(|e| e.to_string())?;
        if let Some(found) = found {
            return Ok((cpu_frame(request, found), None));
        }
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            renderer.render(
                &GpuRequest {
                    chain: &request.chain,
                    pyramid: &request.pyramid,
                    orientation: request.orientation,
                    level: request.level,
                    region: request.region,
                    limits: engine.output_limits(),
                    quality: engine.quality_preset(),
                },
                &request.cancel,
            )
        }));
        match attempt {
            Ok(Ok(frame)) => {
                let unsaved = request.region.is_none().then(|| {
                    Unsaved::Gpu(
                        gpu_result_key(key),
                        frame.region,
                        frame.tiles.iter().map(|t| t.working.clone()).collect(),
                    )
                });
                return Ok((gpu_frame(request, frame), unsaved));
            }
            Ok(Err(GpuError::Chain(e))) => return Err(e.to_string()),
            Ok(Err(GpuError::Cancelled)) => return Err("cancelled".to_owned()),
            Ok(Err(GpuError::Device(message))) => gpu_failure = Some(message),
            Err(_) => gpu_failure = Some("the GPU renderer panicked".to_owned()),
        }
        // A failed device stays failed: previews continue on the CPU.
        *gpu = None;
    }
    let control = RenderControl {
        cancel: Some(&request.cancel),
        progress: None,
    };
    let preview = if looked_up {
        caches.render_missed(engine, &cache_request, &control)
    } else {
        caches.get_or_render(engine, &cache_request, &control)
    }
    .map_err(|e| e.to_string())?;
    let rendered = (matches!(preview.served, Served::Rendered { .. }) && request.region.is_none())
        .then(|| Unsaved::Cpu(preview.key, preview.frame.clone()));
    let mut frame = cpu_frame(request, preview);
    frame.gpu_failure = gpu_failure;
    Ok((frame, rendered))
}

fn gpu_frame(request: &PreviewRequest, frame: GpuFrame) -> PreviewFrame {
    let stage_ms = frame
        .stages
        .iter()
        .map(|s| (s.display_label(), s.ms))
        .collect();
    PreviewFrame {
        generation: request.generation,
        size: [frame.region.width as usize, frame.region.height as usize],
        level: request.level,
        scale: request.pyramid.levels[request.level].scale,
        latency: request.submitted.elapsed(),
        stage_ms,
        histogram: *frame.histogram,
        region: request.region.map(|_| frame.region),
        gpu_failure: None,
        cache: Some((frame.cache_hits, frame.stage_count)),
        served: None,
        pyramid: request.pyramid.clone(),
        choices: frame.choices.clone(),
        pixels: FramePixels::Gpu(frame),
    }
}

fn cpu_frame(request: &PreviewRequest, preview: crate::engine::cached::Preview) -> PreviewFrame {
    let latency = request.submitted.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let stage_ms = match preview.served {
        Served::Memory => vec![("result · cached (memory)".to_owned(), ms(latency))],
        Served::Disk => vec![("result · cached (disk)".to_owned(), ms(latency))],
        Served::Rendered { reused, .. } => {
            let mut rows: Vec<(String, f64)> = Vec::new();
            if reused > 0 {
                rows.push((format!("first {reused} stage(s) · cached"), 0.0));
            }
            rows.extend(
                preview
                    .stage_times
                    .iter()
                    .map(|(label, d)| (format!("{label} · CPU"), ms(*d))),
            );
            rows
        }
    };
    let frame = &preview.frame;
    PreviewFrame {
        generation: request.generation,
        size: [frame.size.width as usize, frame.size.height as usize],
        histogram: histogram(&frame.rgba),
        pixels: FramePixels::Cpu(frame.rgba.clone()),
        level: request.level,
        scale: request.pyramid.levels[request.level].scale,
        latency,
        stage_ms,
        region: request.region.map(|_| preview.rect),
        gpu_failure: None,
        cache: None,
        served: Some(preview.served),
        pyramid: request.pyramid.clone(),
        choices: preview.choices,
    }
}

/// 8-bit histogram of RGBA pixels: R, G, B and luma (the same rule as `shaders/present.wgsl`).
pub fn histogram(rgba: &[u8]) -> [[u32; 256]; 4] {
    let mut h = [[0u32; 256]; 4];
    for px in rgba.chunks_exact(4) {
        h[0][px[0] as usize] += 1;
        h[1][px[1] as usize] += 1;
        h[2][px[2] as usize] += 1;
        let y = (u32::from(px[0]) * 54 + u32::from(px[1]) * 183 + u32::from(px[2]) * 19) >> 8;
        h[3][y.min(255) as usize] += 1;
    }
    h
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
    /// Start rendering `input` through `chain` into `output`, with the content measure of the
    /// image's pyramid (so the export picks the algorithms the preview showed).
    pub fn start(
        engine: Arc<Engine>,
        input: PathBuf,
        (chain, detail): (Chain, Option<crate::engine::content::Detail>),
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
                    .render_file_with(&input, (&chain, detail), &out, &options, false, &control)
                    .map(|report| {
                        let mut summary = format!(
                            "Exported {} ({}×{} px) in {:.1} s",
                            out.file_name()
                                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                            report.output_size.width,
                            report.output_size.height,
                            t0.elapsed().as_secs_f64()
                        );
                        if let Some(choices) = report.choices() {
                            summary.push_str(&format!(" ({choices})"));
                        }
                        summary
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A GPU that cannot run the request (here: a texture limit no stage fits) is dropped and
    /// the preview is rendered on the CPU, with the reason reported once.
    #[test]
    fn a_failing_gpu_falls_back_to_the_cpu_with_a_reason() {
        let mut ctx = GpuContext::headless().expect("the tests need a Vulkan adapter (lavapipe)");
        ctx.max_side_px = 8;
        let engine = Engine::new(Config::default()).unwrap();
        let source = image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            40,
            30,
            image::Rgba([10, 200, 30, 255]),
        ));
        let pyramid = Arc::new(Pyramid::build(&source).unwrap());
        let chain = Chain::parse_bytes(
            b"version = 1\n[[ops]]\nop = \"gaussian_blur\"\n",
            crate::chain::Format::Toml,
            engine.output_limits(),
        )
        .unwrap();
        let request = PreviewRequest {
            generation: 1,
            source: Key(1),
            chain,
            pyramid,
            orientation: Orientation::NoTransforms,
            level: 0,
            region: None,
            use_gpu: true,
            cancel: Arc::new(AtomicBool::new(false)),
            submitted: Instant::now(),
        };
        let mut gpu = Some(GpuRenderer::new(ctx));
        let mut caches = PreviewCaches::new(&engine.config().performance, 1 << 28, None);
        let (frame, rendered) = render_preview(&engine, &mut gpu, &mut caches, &request).unwrap();
        assert!(rendered.is_some(), "a CPU frame to keep once it settles");
        assert!(matches!(frame.pixels, FramePixels::Cpu(_)));
        assert!(frame.gpu_failure.unwrap().contains("8 px"));
        assert!(gpu.is_none(), "a failed GPU is not tried again");
        assert_eq!(frame.size, [40, 30]);
        // One request, one lookup: the fallback does not count the miss again.
        let result = &caches.stats()[0];
        assert_eq!((result.hits, result.misses), (0, 1));
    }
}
