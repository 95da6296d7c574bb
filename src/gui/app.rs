//! The app: per frame it (1) takes in background results (loaded image, previews, export
//! progress), (2) draws the panels, which only emit [`Command`]s, and (3) applies the commands
//! (chain edits with undo, opening files, starting jobs). Nothing here blocks on rendering.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egui::{Color32, ColorImage, Key, KeyboardShortcut, Modifiers, TextureHandle, Vec2};
use serde::{Deserialize, Serialize};

use super::batch_panel::{BatchAction, BatchPanel, BatchSettings};
use super::deadline;
use super::dialogs::FileDialogs;
use super::history::History;
use super::jobs::{
    ExportJob, FramePixels, LoadedImage, PreviewFrame, PreviewWorker, RetiredWorkers, load_image,
};
use super::params_ui::params_ui;
use super::vectorize_panel::{TraceSource, VectorizePanel};
use super::watch_panel::{WatchAction, WatchPanel, WatchSettings};
use crate::chain::raw::RawValue;
use crate::chain::{Chain, ChainOp, Format, OutputLimits};
use crate::config::{ByteSize, Config, QualityPreset};
use crate::engine::Engine;
use crate::engine::cached::SessionCaches;
use crate::engine::geom::Rect as PxRect;
use crate::gpu::{GpuContext, GpuFrame};
use crate::io::encode::{EncodeOptions, OutputFormat};
use crate::ops;

/// How the app was started.
pub struct GuiOptions {
    /// Image to open at start (else the last one, else the bundled sample).
    pub image: Option<PathBuf>,
    /// Chain file to load at start.
    pub chain: Option<PathBuf>,
    /// Save a screenshot of the window here once the preview is shown, then quit.
    pub screenshot: Option<PathBuf>,
    /// The configuration in effect.
    pub config: Config,
    /// Where settings are saved (None: not saved).
    pub config_path: Option<PathBuf>,
    /// Ignore state persisted by an earlier session (tests, screenshots).
    pub fresh_state: bool,
    /// Leave timings out of the UI (for reproducible snapshots).
    pub hide_timings: bool,
    /// Folder of the persistent preview cache (`None`: no disk cache).
    pub cache_dir: Option<PathBuf>,
}

/// The bundled sample (CC0, see `assets/samples/SOURCES.md`), built into the binary so an
/// installed app has it too.
static SAMPLE_PNG: &[u8] = include_bytes!("../../assets/samples/coffee.png");

/// The bundled sample shown when nothing else is opened: the source tree's copy when it exists,
/// else the built-in copy written once to the cache folder.
pub fn sample_image_path() -> PathBuf {
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples/coffee.png");
    if in_tree.is_file() {
        return in_tree;
    }
    let dir = directories::ProjectDirs::from("org", "Opossum", "opossum")
        .map_or_else(std::env::temp_dir, |d| d.cache_dir().to_path_buf());
    let path = dir.join("sample-coffee.png");
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(SAMPLE_PNG.len() as u64) {
        let _ = std::fs::create_dir_all(&dir);
        let _ = crate::io::write_atomic(&path, |w| w.write_all(SAMPLE_PNG));
    }
    path
}

/// Built-in chains (name, TOML), from `assets/presets/`.
pub const PRESETS: &[(&str, &str)] = &[
    (
        "Web export",
        include_str!("../../assets/presets/web_export.toml"),
    ),
    (
        "Sharpen and border",
        include_str!("../../assets/presets/print_border.toml"),
    ),
    ("Vintage", include_str!("../../assets/presets/vintage.toml")),
    (
        "Line art",
        include_str!("../../assets/presets/line_art.toml"),
    ),
];

/// What survives a restart (eframe storage).
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct PersistedState {
    recent_files: Vec<PathBuf>,
    last_chain: Option<String>,
    last_image: Option<PathBuf>,
    batch: BatchSettings,
    watch: WatchSettings,
    vectorize: crate::vectorize::VectorizeOptions,
}

/// Everything a panel can ask for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Open an image (dialog when `None`).
    OpenImage(Option<PathBuf>),
    /// Load a chain file (dialog when `None`).
    LoadChain(Option<PathBuf>),
    /// Save the chain (dialog when `None`).
    SaveChain(Option<PathBuf>),
    /// Replace the chain with a preset.
    LoadPreset(usize),
    /// Export the full-resolution render (dialog when `None`).
    Export(Option<PathBuf>),
    /// Stop the running export.
    CancelExport,
    /// Add an op after the selection.
    AddOp(&'static str),
    /// Remove op `i`.
    RemoveOp(usize),
    /// Duplicate op `i`.
    DuplicateOp(usize),
    /// Move an op to another position.
    MoveOp {
        /// Current index.
        from: usize,
        /// New index.
        to: usize,
    },
    /// Enable or disable op `i`.
    ToggleOp(usize),
    /// Select op `i`.
    Select(Option<usize>),
    /// Set a parameter of op `i`.
    SetParam {
        /// Index of the op.
        index: usize,
        /// Parameter key.
        key: &'static str,
        /// New value.
        value: RawValue,
        /// Whether the gesture (a slider drag) continues, so undo merges it.
        dragging: bool,
    },
    /// Undo the last chain edit.
    Undo,
    /// Redo.
    Redo,
    /// Fit the image to the view.
    ZoomFit,
    /// Show pixels 1:1.
    Zoom100,
    /// Show the unprocessed image.
    ToggleBefore,
    /// Show or hide the profiler.
    ToggleProfiler,
    /// Empty the preview caches (memory and disk).
    ClearCaches,
    /// Show or hide the settings.
    ToggleSettings,
    /// Save the settings draft.
    SaveSettings,
    /// Dismiss the error banner.
    DismissError,
    /// Show or hide the Batch panel.
    ToggleBatch,
    /// Add files or folders to the Batch panel's inputs (and show it).
    AddBatchInputs(Vec<PathBuf>),
    /// Show or hide the Watch panel.
    ToggleWatch,
    /// Run the Batch panel's batch with a snapshot of the chain.
    StartBatch,
    /// Cancel the running batch.
    CancelBatch,
    /// Start watching with a snapshot of the chain.
    StartWatch,
    /// Stop watching.
    StopWatch,
    /// Show or hide the Vectorize panel.
    ToggleVectorize,
}

/// Runtime state of the preview.
#[derive(Default)]
struct PreviewState {
    shown: Option<Shown>,
    original: Option<(usize, TextureHandle)>,
    size: [usize; 2],
    scale: f64,
    level: usize,
    latency: Duration,
    stage_ms: Vec<(String, f64)>,
    /// Algorithms the shown frame's plan picked by image content.
    choices: Vec<String>,
    histogram: Option<[[u32; 256]; 4]>,
    requested: u64,
    /// Pyramid level of the last base request (`level` is the one shown).
    requested_level: usize,
    shown_generation: u64,
    error: Option<String>,
    /// 1:1 pixels of the visible part, rendered when the view is idle and zoomed in past the
    /// level shown.
    refined: Option<Refined>,
    /// The refinement asked for: its request and region.
    refine_requested: Option<(u64, crate::engine::geom::Rect)>,
    /// Coarsest-allowed level floor: raised when a render came out larger than the GPU's
    /// largest texture (a chain that enlarges), reset on every edit.
    min_level: usize,
    /// Levels coarser than the view needs while editing, because previews missed their frame
    /// budget (`deadline`); back to 0 when the edits pause.
    coarsening: usize,
    /// Largest texture side the renderer accepts, px.
    max_texture_side: usize,
    /// Whether the last base preview ran on the GPU.
    on_gpu: bool,
    /// GPU stage cache hits and lookups of the last preview.
    cache: Option<(usize, usize)>,
    /// Where the last CPU preview came from (a cache level or a render).
    served: Option<crate::engine::cached::Served>,
    /// Why previews no longer run on the GPU (shown once, in the status bar).
    gpu_warning: Option<String>,
}

/// Pixels on screen: textures tiling a rectangle of the rendered output.
struct Shown {
    /// The rectangle, in output pixels of the level (or of full resolution, for a refinement).
    region: PxRect,
    /// Each texture and the part of `region` it covers.
    tiles: Vec<(PxRect, egui::TextureId)>,
    owner: ShownOwner,
}

enum ShownOwner {
    /// An egui texture of CPU pixels (kept for tests).
    Cpu {
        _texture: TextureHandle,
        rgba: Vec<u8>,
    },
    /// Display textures of a GPU frame, registered with egui-wgpu (freed on drop).
    Gpu { frame: GpuFrame, gpu: GpuDisplay },
}

/// eframe's wgpu device and egui's renderer, where the GPU path draws.
#[derive(Clone)]
struct GpuDisplay {
    context: GpuContext,
    renderer: Arc<egui::mutex::RwLock<eframe::egui_wgpu::Renderer>>,
}

impl Shown {
    fn new(
        ctx: &egui::Context,
        frame: PreviewFrame,
        gpu: Option<&GpuDisplay>,
        name: &str,
        filter: egui::TextureOptions,
    ) -> Option<Self> {
        let region = frame.region.unwrap_or(PxRect::new(
            0,
            0,
            frame.size[0] as u32,
            frame.size[1] as u32,
        ));
        match frame.pixels {
            FramePixels::Cpu(rgba) => {
                let image = ColorImage::from_rgba_unmultiplied(frame.size, &rgba);
                let texture = ctx.load_texture(name, image, filter);
                Some(Shown {
                    region,
                    tiles: vec![(region, texture.id())],
                    owner: ShownOwner::Cpu {
                        _texture: texture,
                        rgba,
                    },
                })
            }
            FramePixels::Gpu(gpu_frame) => {
                let gpu = gpu?.clone();
                let mode = if filter.magnification == egui::TextureFilter::Nearest {
                    wgpu::FilterMode::Nearest
                } else {
                    wgpu::FilterMode::Linear
                };
                let tiles = {
                    let mut renderer = gpu.renderer.write();
                    gpu_frame
                        .tiles
                        .iter()
                        .map(|t| {
                            let id = renderer.register_native_texture(
                                &gpu.context.device,
                                &t.display_view,
                                mode,
                            );
                            (t.rect, id)
                        })
                        .collect()
                };
                Some(Shown {
                    region: gpu_frame.region,
                    tiles,
                    owner: ShownOwner::Gpu {
                        frame: gpu_frame,
                        gpu,
                    },
                })
            }
        }
    }

    /// The pixels as 8-bit RGBA (a GPU frame is read back: tests and diagnostics only).
    fn rgba(&self) -> Vec<u8> {
        match &self.owner {
            ShownOwner::Cpu { rgba, .. } => rgba.clone(),
            ShownOwner::Gpu { frame, gpu } => frame
                .read_back(&gpu.context)
                .map(|t| {
                    t.data
                        .iter()
                        .map(|&v| crate::engine::sink::to_u8(v))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Draw into `screen`, the on-screen rectangle of `self.region`, clipped to `clip`.
    fn paint(&self, painter: &egui::Painter, screen: egui::Rect, clip: egui::Rect) {
        let painter = painter.with_clip_rect(painter.clip_rect().intersect(clip));
        let sx = screen.width() / self.region.width.max(1) as f32;
        let sy = screen.height() / self.region.height.max(1) as f32;
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        for (r, id) in &self.tiles {
            let min = screen.min
                + Vec2::new(
                    (r.x - self.region.x) as f32 * sx,
                    (r.y - self.region.y) as f32 * sy,
                );
            let rect = egui::Rect::from_min_size(
                min,
                Vec2::new(r.width as f32 * sx, r.height as f32 * sy),
            );
            painter.image(*id, rect, uv, Color32::WHITE);
        }
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        if let ShownOwner::Gpu { gpu, .. } = &self.owner {
            let mut renderer = gpu.renderer.write();
            for (_, id) in &self.tiles {
                renderer.free_texture(id);
            }
        }
    }
}

/// A full-resolution render of the visible region.
struct Refined {
    shown: Shown,
    /// The base preview it belongs to (stale when the chain changed since).
    base: u64,
}

/// The Opossum desktop app.
pub struct OpossumApp {
    state: PersistedState,
    fresh_state: bool,
    hide_timings: bool,
    chain: Chain,
    chain_path: Option<PathBuf>,
    history: History,
    selected: Option<usize>,
    config: Config,
    config_path: Option<PathBuf>,
    preview_engine: Arc<Engine>,
    export_engine: Arc<Engine>,
    gpu: Option<GpuDisplay>,
    worker: PreviewWorker,
    /// Workers replaced by a settings change or Clear caches, still finishing.
    retired_workers: RetiredWorkers,
    caches: SessionCaches,
    cache_dir: Option<PathBuf>,
    cache_message: Option<String>,
    image: Option<LoadedImage>,
    loading: Option<(PathBuf, Receiver<Result<LoadedImage, String>>)>,
    preview: PreviewState,
    chain_changed: bool,
    zoom: Option<f32>,
    pan: Vec2,
    before: bool,
    split: Option<f32>,
    export: Option<ExportJob>,
    last_export: Option<String>,
    export_quality: u8,
    show_profiler: bool,
    show_settings: bool,
    batch: BatchPanel,
    watch: WatchPanel,
    vectorize: VectorizePanel,
    settings_draft: Config,
    settings_message: Option<String>,
    palette_query: String,
    error: Option<String>,
    dialogs: Box<dyn FileDialogs>,
    screenshot: Option<PathBuf>,
    screenshot_state: ScreenshotState,
    /// Outcome for `--screenshot` runs, read after the window closes.
    pub exit_error: Arc<Mutex<Option<String>>>,
    frame_times: VecDeque<f32>,
    last_frame: Option<Instant>,
    /// When the chain, zoom or pan last changed (refinement waits for a quiet moment).
    last_change: Instant,
    /// When the chain was last edited (deadline-aware previews).
    last_edit: Instant,
    started: Instant,
    commands: Vec<Command>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ScreenshotState {
    Waiting,
    Requested,
    Done,
}

fn engine_for(config: &Config) -> Arc<Engine> {
    Arc::new(Engine::new(config.clone()).unwrap_or_else(|_| {
        Engine::new(Config::default()).unwrap_or_else(|e| panic!("default engine: {e}"))
    }))
}

/// The engine for exports, batch and watch jobs: its threads run at the lowest OS priority,
/// so previews (on `engine_for`'s pool) pre-empt them.
fn background_engine_for(config: &Config) -> Arc<Engine> {
    Arc::new(Engine::background(config.clone()).unwrap_or_else(|_| {
        Engine::background(Config::default()).unwrap_or_else(|e| panic!("default engine: {e}"))
    }))
}

impl OpossumApp {
    /// Create the app (restoring persisted state from `storage`).
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        options: GuiOptions,
        dialogs: Box<dyn FileDialogs>,
    ) -> Self {
        let ctx = &cc.egui_ctx;
        let storage = cc.storage;
        // eframe's wgpu device runs the GPU previews (no second device).
        let gpu = cc.wgpu_render_state.as_ref().map(|rs| GpuDisplay {
            context: GpuContext::new(rs.device.clone(), rs.queue.clone(), &rs.adapter.get_info()),
            renderer: rs.renderer.clone(),
        });
        ctx.options_mut(|o| o.theme_preference = egui::ThemePreference::System);
        let state: PersistedState = if options.fresh_state {
            PersistedState::default()
        } else {
            storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .unwrap_or_default()
        };
        let repaint_ctx = ctx.clone();
        let preview_engine = engine_for(&options.config);
        let caches = SessionCaches::open(
            &options.config.performance,
            preview_engine.budget_bytes(),
            options.cache_dir.as_deref(),
        );
        let mut app = Self {
            fresh_state: options.fresh_state,
            hide_timings: options.hide_timings,
            chain: Chain::default(),
            chain_path: None,
            history: History::default(),
            selected: None,
            settings_draft: options.config.clone(),
            config: options.config.clone(),
            config_path: options.config_path,
            export_engine: background_engine_for(&options.config),
            worker: PreviewWorker::start(
                preview_engine.clone(),
                gpu.as_ref().map(|g| g.context.clone()),
                caches.preview(&options.config.performance, preview_engine.budget_bytes()),
                move || repaint_ctx.request_repaint(),
            ),
            retired_workers: RetiredWorkers::default(),
            caches,
            cache_dir: options.cache_dir,
            cache_message: None,
            gpu,
            preview_engine,
            image: None,
            loading: None,
            preview: PreviewState {
                gpu_warning: (cc.wgpu_render_state.is_none()
                    && options.config.performance.gpu_enabled)
                    .then(|| "no wgpu device: previews render on the CPU".to_owned()),
                ..PreviewState::default()
            },
            chain_changed: true,
            zoom: None,
            pan: Vec2::ZERO,
            before: false,
            split: None,
            export: None,
            last_export: None,
            export_quality: 90,
            show_profiler: false,
            show_settings: false,
            batch: BatchPanel::new(state.batch.clone()),
            watch: WatchPanel::new(state.watch.clone()),
            vectorize: VectorizePanel::new(state.vectorize.clone()),
            settings_message: None,
            palette_query: String::new(),
            error: None,
            dialogs,
            screenshot: options.screenshot,
            screenshot_state: ScreenshotState::Waiting,
            exit_error: Arc::new(Mutex::new(None)),
            frame_times: VecDeque::with_capacity(240),
            last_frame: None,
            last_change: Instant::now(),
            // Opening is not editing: start out of the deadline's quiet window.
            last_edit: Instant::now()
                .checked_sub(deadline::QUIET)
                .unwrap_or_else(Instant::now),
            started: Instant::now(),
            commands: Vec::new(),
            state,
        };
        // The chain: from the command line, else the last session's, else a starter preset.
        if let Some(path) = &options.chain {
            app.load_chain(path);
            app.history = History::default();
        } else if let Some(text) = app.state.last_chain.clone() {
            if let Ok(chain) =
                Chain::parse_bytes(text.as_bytes(), Format::Toml, OutputLimits::default())
            {
                app.chain = chain;
            }
        } else if let Ok(chain) = Chain::parse_bytes(
            PRESETS[0].1.as_bytes(),
            Format::Toml,
            OutputLimits::default(),
        ) {
            app.chain = chain;
        }
        let image = options
            .image
            .or_else(|| app.state.last_image.clone().filter(|p| p.is_file()))
            .unwrap_or_else(sample_image_path);
        app.open_image(ctx, image);
        app
    }

    /// The current chain (for tests).
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Queue a command, as a panel would (tests and benchmarks script the app with it).
    pub fn command(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// The Batch panel (for tests).
    pub fn batch_panel(&self) -> &BatchPanel {
        &self.batch
    }

    /// The Watch panel (for tests).
    pub fn watch_panel(&self) -> &WatchPanel {
        &self.watch
    }

    /// The Vectorize panel (for tests).
    pub fn vectorize_panel(&self) -> &VectorizePanel {
        &self.vectorize
    }

    /// UI frame times recorded so far (the last 240), ms.
    pub fn frame_times_ms(&self) -> Vec<f32> {
        self.frame_times.iter().copied().collect()
    }

    /// Time from the last chain edit to its preview on screen.
    pub fn preview_latency(&self) -> Duration {
        self.preview.latency
    }

    /// Pyramid level of the preview shown.
    pub fn preview_level(&self) -> usize {
        self.preview.level
    }

    /// Levels coarser than the view needs, because previews missed their frame budget while
    /// editing (0 when the edits pause).
    pub fn preview_coarsening(&self) -> usize {
        self.preview.coarsening
    }

    /// The last preview's pixels (8-bit RGBA) and size (for tests).
    pub fn preview_pixels(&self) -> Option<(Vec<u8>, [usize; 2])> {
        self.preview
            .shown
            .as_ref()
            .map(|shown| (shown.rgba(), self.preview.size))
    }

    /// Sizes of the textures showing the last preview, and the largest side the GPU allows
    /// (for tests).
    pub fn preview_texture_sizes(&self) -> (Vec<[u32; 2]>, usize) {
        let sizes = self.preview.shown.as_ref().map_or_else(Vec::new, |s| {
            s.tiles.iter().map(|(r, _)| [r.width, r.height]).collect()
        });
        let limit = match &self.gpu {
            Some(g) if self.preview.on_gpu => g.context.max_side_px as usize,
            _ => self.preview.max_texture_side,
        };
        (sizes, limit)
    }

    /// Whether the last preview ran on the GPU (for tests).
    pub fn preview_on_gpu(&self) -> bool {
        self.preview.on_gpu
    }

    /// The refined 1:1 region and its pixels, if one is shown (for tests).
    pub fn refined_pixels(&self) -> Option<(PxRect, Vec<u8>)> {
        self.preview
            .refined
            .as_ref()
            .filter(|r| r.base == self.preview.shown_generation)
            .map(|r| (r.shown.region, r.shown.rgba()))
    }

    /// Where the shown preview came from (`None` for a GPU render).
    pub fn preview_served(&self) -> Option<crate::engine::cached::Served> {
        self.preview.served
    }

    /// Whether the open image is complete (not yet the partial one from the disk cache).
    pub fn image_complete(&self) -> Option<bool> {
        self.image.as_ref().map(|i| i.complete)
    }

    /// Every cache level's counters: result, intermediate, thumbnail, disk.
    pub fn cache_stats(&self) -> Vec<crate::cache::LevelStats> {
        let mut levels = self
            .worker
            .cache_stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        levels.insert(2.min(levels.len()), self.caches.thumbnails.stats());
        levels
    }

    /// Whether the preview shows the latest chain (no render pending).
    pub fn preview_is_current(&self) -> bool {
        self.image.is_some()
            && !self.chain_changed
            && self.preview.requested != 0
            && self.preview.shown_generation == self.preview.requested
    }

    /// The error shown to the user, if any.
    pub fn error_message(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Whether an export is running.
    pub fn exporting(&self) -> bool {
        self.export.is_some()
    }

    /// Result line of the last export.
    pub fn last_export(&self) -> Option<&str> {
        self.last_export.as_deref()
    }

    fn open_image(&mut self, ctx: &egui::Context, path: PathBuf) {
        let repaint = ctx.clone();
        let rx = load_image(
            self.preview_engine.clone(),
            self.caches.thumbnails.clone(),
            path.clone(),
            move || repaint.request_repaint(),
        );
        self.loading = Some((path, rx));
    }

    fn load_chain(&mut self, path: &Path) {
        match Chain::load(path, self.preview_engine.output_limits()) {
            Ok(chain) => {
                self.history.record(&self.chain, None);
                self.chain = chain;
                self.chain_path = Some(path.to_path_buf());
                self.selected = None;
                self.chain_changed = true;
            }
            Err(e) => self.error = Some(format!("{e}\n{}", e.hint())),
        }
    }

    fn remember_recent(&mut self, path: &Path) {
        self.state.recent_files.retain(|p| p != path);
        self.state.recent_files.insert(0, path.to_path_buf());
        self.state.recent_files.truncate(10);
        self.state.last_image = Some(path.to_path_buf());
    }

    // ---------------------------------------------------------------- background results

    fn poll_jobs(&mut self, ctx: &egui::Context) {
        if let Some((path, rx)) = &self.loading {
            match rx.try_recv() {
                Ok(Ok(loaded)) => {
                    let path = path.clone();
                    // The complete image replacing the partial one from the disk cache keeps
                    // the view; a new image starts fitted.
                    let same = self
                        .image
                        .as_ref()
                        .is_some_and(|i| !i.complete && i.key == loaded.key);
                    if loaded.complete {
                        self.loading = None;
                    }
                    self.image = Some(loaded);
                    self.preview.original = None;
                    self.preview.min_level = 0;
                    if !same {
                        self.zoom = None;
                        self.pan = Vec2::ZERO;
                    }
                    self.chain_changed = true;
                    self.error = None;
                    self.remember_recent(&path);
                }
                Ok(Err(message)) => {
                    self.error = Some(format!("Could not open {}:\n{message}", path.display()));
                    self.loading = None;
                    // The partial image shown from the disk cache cannot be completed.
                    if self.image.as_ref().is_some_and(|i| !i.complete) {
                        self.image = None;
                    }
                }
                Err(_) => {}
            }
        }
        while let Ok((generation, result)) = self.worker.results.try_recv() {
            if generation < self.preview.shown_generation {
                continue;
            }
            // A frame of another pyramid (the partial one a complete load replaced, or the
            // previous image) would be read against the wrong levels.
            let current = match &result {
                Ok(frame) => self
                    .image
                    .as_ref()
                    .is_some_and(|i| Arc::ptr_eq(&i.pyramid, &frame.pyramid)),
                Err(_) => true,
            };
            match result {
                Ok(_) if !current => {}
                Ok(frame) if frame.region.is_some() => self.show_refined(ctx, frame),
                Ok(frame) => self.show_frame(ctx, frame),
                Err(message) => {
                    self.preview.shown_generation = generation;
                    self.preview.error = Some(message);
                }
            }
        }
        if self.batch.poll() {
            // Progress, rate and ETA move even between files.
            ctx.request_repaint_after(Duration::from_millis(250));
        }
        self.watch.poll();
        if let Some(job) = &self.export {
            if let Ok(result) = job.result.try_recv() {
                match result {
                    Ok(summary) => self.last_export = Some(summary),
                    Err(message) => {
                        if message.starts_with("cancelled") {
                            self.last_export = Some("Export cancelled".to_owned());
                        } else {
                            self.error = Some(format!("Export failed:\n{message}"));
                        }
                    }
                }
                self.export = None;
            } else {
                ctx.request_repaint_after(Duration::from_millis(100));
            }
        }
    }

    fn show_refined(&mut self, ctx: &egui::Context, frame: PreviewFrame) {
        if frame.region.is_none() {
            return;
        }
        if self.preview.refine_requested.map(|(g, _)| g) != Some(frame.generation) {
            return;
        }
        self.note_gpu_failure(&frame);
        let Some(shown) = Shown::new(
            ctx,
            frame,
            self.gpu.as_ref(),
            "refined",
            egui::TextureOptions::NEAREST,
        ) else {
            return;
        };
        self.preview.refined = Some(Refined {
            shown,
            base: self.preview.shown_generation,
        });
    }

    /// The GPU path failed and the worker fell back to the CPU: say so once.
    fn note_gpu_failure(&mut self, frame: &PreviewFrame) {
        if let Some(reason) = &frame.gpu_failure {
            self.preview.gpu_warning = Some(format!(
                "GPU preview failed ({reason}); previews now render on the CPU"
            ));
        }
    }

    fn show_frame(&mut self, ctx: &egui::Context, mut frame: PreviewFrame) {
        self.note_gpu_failure(&frame);
        let max_side = self.preview.max_texture_side.max(256);
        // GPU frames are tiled under the device's limit; CPU frames are one egui texture.
        if matches!(frame.pixels, FramePixels::Cpu(_))
            && frame.size[0].max(frame.size[1]) > max_side
        {
            // The chain enlarges the image past what the GPU can show: use a coarser level.
            let levels = self.image.as_ref().map_or(1, |i| i.pyramid.levels.len());
            self.preview.shown_generation = frame.generation;
            if frame.level + 1 < levels {
                self.preview.min_level = frame.level + 1;
                self.chain_changed = true;
            } else {
                self.preview.error = Some(format!(
                    "The result ({}×{} px) is larger than the largest texture the GPU can show ({max_side} px)",
                    frame.size[0], frame.size[1]
                ));
            }
            return;
        }
        self.preview.histogram = Some(frame.histogram);
        self.preview.on_gpu = matches!(frame.pixels, FramePixels::Gpu(_));
        self.preview.cache = frame.cache;
        self.preview.served = frame.served;
        self.preview.size = frame.size;
        self.preview.scale = frame.scale;
        self.preview.level = frame.level;
        self.preview.latency = frame.latency;
        // Deadline-aware: a frame asked for during edits that missed the budget makes the next
        // ones coarser until the edits pause.
        let editing = self.last_edit.elapsed() < frame.latency + deadline::QUIET;
        self.preview.coarsening = deadline::next_coarsening(
            self.preview.coarsening,
            frame.latency,
            self.config.performance.preview_frame_budget_ms,
            editing,
        );
        self.preview.stage_ms = std::mem::take(&mut frame.stage_ms);
        self.preview.choices = std::mem::take(&mut frame.choices);
        self.preview.shown_generation = frame.generation;
        self.preview.error = None;
        let level = frame.level;
        self.preview.shown = Shown::new(
            ctx,
            frame,
            self.gpu.as_ref(),
            "preview",
            egui::TextureOptions::LINEAR,
        );
        self.preview.refined = None;
        self.preview.refine_requested = None;
        if self.preview.original.as_ref().map(|(l, _)| *l) != Some(level)
            && let Some(img) = &self.image
        {
            let level_image = &img.pyramid.levels[level].image;
            let original = ColorImage::from_rgba_unmultiplied(
                [level_image.width() as usize, level_image.height() as usize],
                level_image.as_bytes(),
            );
            self.preview.original = Some((
                level,
                ctx.load_texture("original", original, egui::TextureOptions::LINEAR),
            ));
        }
    }

    /// Whether previews may use the GPU: enabled in the settings, a device exists and it has
    /// not failed.
    fn use_gpu(&self) -> bool {
        self.config.performance.gpu_enabled
            && self.gpu.is_some()
            && self.preview.gpu_warning.is_none()
    }

    /// Ask for a new preview when the chain or the needed level changed.
    fn request_preview(&mut self, view_px: Vec2, pixels_per_point: f32) {
        let Some(image) = &self.image else { return };
        let full = image.pyramid.full;
        let fit = (view_px.x / full.width as f32)
            .min(view_px.y / full.height as f32)
            .clamp(0.001, 1.0);
        // The base preview needs no more than twice the fit resolution: closer views get the
        // visible part refined at 1:1 instead (refine_ui), so edits stay fast on huge images.
        let zoom = self.zoom.unwrap_or(fit);
        let wanted = f64::from(zoom.min(2.0 * fit) * pixels_per_point);
        if self.preview.coarsening > 0 && self.last_edit.elapsed() >= deadline::QUIET {
            // The edits paused: render at the level the view needs again.
            self.preview.coarsening = 0;
        }
        let mut level = (image.pyramid.level_for(wanted).max(self.preview.min_level)
            + self.preview.coarsening)
            .min(image.pyramid.levels.len() - 1);
        // Never ask for a texture the GPU cannot hold.
        let max_side = self.preview.max_texture_side.max(256) as u32;
        while level + 1 < image.pyramid.levels.len() {
            let l = &image.pyramid.levels[level].image;
            if l.width().max(l.height()) <= max_side {
                break;
            }
            level += 1;
        }
        let level = level.min(image.pyramid.levels.len() - 1);
        if self.chain_changed
            || level != self.preview.requested_level
            || self.preview.requested == 0
        {
            self.preview.requested_level = level;
            let use_gpu = self.use_gpu();
            self.preview.requested = self
                .worker
                .request(&self.chain, image, level, None, use_gpu);
            self.chain_changed = false;
            self.last_change = Instant::now();
        }
    }

    // ---------------------------------------------------------------- commands

    fn apply(&mut self, ctx: &egui::Context, command: Command) {
        match command {
            Command::OpenImage(path) => {
                if let Some(path) = path.or_else(|| self.dialogs.open_image()) {
                    self.open_image(ctx, path);
                }
            }
            Command::LoadChain(path) => {
                if let Some(path) = path.or_else(|| self.dialogs.open_chain()) {
                    self.load_chain(&path);
                }
            }
            Command::SaveChain(path) => {
                let suggested = self
                    .chain_path
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .map_or_else(
                        || "chain.toml".to_owned(),
                        |n| n.to_string_lossy().into_owned(),
                    );
                if let Some(path) = path.or_else(|| self.dialogs.save_chain(&suggested)) {
                    match self.chain.save(&path) {
                        Ok(()) => self.chain_path = Some(path),
                        Err(e) => self.error = Some(format!("{e}\n{}", e.hint())),
                    }
                }
            }
            Command::LoadPreset(i) => {
                if let Some((_, text)) = PRESETS.get(i) {
                    match Chain::parse_bytes(text.as_bytes(), Format::Toml, OutputLimits::default())
                    {
                        Ok(chain) => self.edit(|c| *c = chain, None),
                        Err(e) => self.error = Some(e.to_string()),
                    }
                    self.selected = None;
                }
            }
            Command::Export(path) => self.start_export(ctx, path),
            Command::CancelExport => {
                if let Some(job) = &self.export {
                    job.progress
                        .cancel
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Command::AddOp(id) => {
                if let Some(def) = ops::find(id) {
                    let at = self.selected.map_or(self.chain.ops.len(), |s| s + 1);
                    self.edit(|c| c.ops.insert(at, ChainOp::new(def)), None);
                    self.selected = Some(at);
                    self.palette_query.clear();
                }
            }
            Command::RemoveOp(i) => {
                if i < self.chain.ops.len() {
                    self.edit(|c| drop(c.ops.remove(i)), None);
                    self.selected = match self.selected {
                        Some(s) if s == i => None,
                        Some(s) if s > i => Some(s - 1),
                        other => other,
                    };
                }
            }
            Command::DuplicateOp(i) => {
                if let Some(op) = self.chain.ops.get(i).cloned() {
                    self.edit(|c| c.ops.insert(i + 1, op), None);
                    self.selected = Some(i + 1);
                }
            }
            Command::MoveOp { from, to } => {
                let n = self.chain.ops.len();
                if from < n && to < n && from != to {
                    self.edit(
                        |c| {
                            let op = c.ops.remove(from);
                            c.ops.insert(to, op);
                        },
                        None,
                    );
                    self.selected = Some(to);
                }
            }
            Command::ToggleOp(i) => {
                if i < self.chain.ops.len() {
                    self.edit(|c| c.ops[i].enabled = !c.ops[i].enabled, None);
                }
            }
            Command::Select(i) => self.selected = i,
            Command::SetParam {
                index,
                key,
                value,
                dragging,
            } => {
                let Some(op) = self.chain.ops.get(index) else {
                    return;
                };
                let mut params = op.params.clone();
                match params.set(op.def.params, key, &value) {
                    Ok(()) if params != op.params => {
                        let gesture = format!("param:{index}:{key}");
                        self.edit(|c| c.ops[index].params = params, Some(&gesture));
                        if !dragging {
                            self.history.close_gesture();
                        }
                    }
                    Ok(()) => {
                        if !dragging {
                            self.history.close_gesture();
                        }
                    }
                    Err(e) => self.error = Some(e),
                }
            }
            Command::Undo => {
                if let Some(previous) = self.history.undo(&self.chain) {
                    self.chain = previous;
                    self.after_history_step();
                }
            }
            Command::Redo => {
                if let Some(next) = self.history.redo(&self.chain) {
                    self.chain = next;
                    self.after_history_step();
                }
            }
            Command::ZoomFit => {
                self.zoom = None;
                self.pan = Vec2::ZERO;
            }
            Command::Zoom100 => self.zoom = Some(1.0),
            Command::ToggleBefore => self.before = !self.before,
            Command::ToggleProfiler => {
                self.show_profiler = !self.show_profiler;
                puffin::set_scopes_on(self.show_profiler);
            }
            Command::ClearCaches => {
                // The old worker and a running loader keep their handles: close them first, so
                // nothing they finish lands in the emptied folder.
                let (files, bytes) = self.caches.disk.as_ref().map_or((0, 0), |d| {
                    d.close();
                    d.clear()
                });
                self.caches = SessionCaches::open(
                    &self.config.performance,
                    self.preview_engine.budget_bytes(),
                    self.cache_dir.as_deref(),
                );
                self.restart_worker(ctx);
                self.chain_changed = true;
                self.cache_message = Some(format!(
                    "Cleared the memory caches and {files} disk entries ({})",
                    crate::error::human_bytes(bytes)
                ));
            }
            Command::ToggleSettings => {
                self.show_settings = !self.show_settings;
                self.settings_draft = self.config.clone();
                self.settings_message = None;
            }
            Command::SaveSettings => self.save_settings(ctx),
            Command::DismissError => self.error = None,
            Command::ToggleBatch => self.batch.open = !self.batch.open,
            Command::AddBatchInputs(paths) => {
                self.batch.add_inputs(paths);
                self.batch.open = true;
            }
            Command::ToggleWatch => self.watch.open = !self.watch.open,
            Command::ToggleVectorize => self.vectorize.open = !self.vectorize.open,
            // Jobs get the export engine and a snapshot of the chain.
            Command::StartBatch => {
                let ctx = ctx.clone();
                let repaint = move || ctx.request_repaint();
                self.batch
                    .start(self.export_engine.clone(), self.chain.clone(), repaint);
            }
            Command::CancelBatch => self.batch.cancel(),
            Command::StartWatch => {
                let ctx = ctx.clone();
                let repaint = move || ctx.request_repaint();
                self.watch
                    .start(self.export_engine.clone(), self.chain.clone(), repaint);
            }
            Command::StopWatch => self.watch.stop(),
        }
    }

    fn after_history_step(&mut self) {
        self.chain_changed = true;
        self.preview.min_level = 0;
        if self.selected.is_some_and(|s| s >= self.chain.ops.len()) {
            self.selected = None;
        }
    }

    /// Change the chain, recording the previous state for undo.
    fn edit(&mut self, change: impl FnOnce(&mut Chain), gesture: Option<&str>) {
        let before = self.chain.clone();
        change(&mut self.chain);
        if self.chain != before {
            self.history.record(&before, gesture);
            self.chain_changed = true;
            self.last_change = Instant::now();
            self.last_edit = Instant::now();
            self.preview.min_level = 0;
        }
    }

    fn start_export(&mut self, ctx: &egui::Context, path: Option<PathBuf>) {
        if self.export.is_some() {
            return;
        }
        let Some(image) = &self.image else {
            self.error = Some("Open an image before exporting".to_owned());
            return;
        };
        let stem = image
            .path
            .file_stem()
            .map_or_else(|| "export".to_owned(), |s| s.to_string_lossy().into_owned());
        let Some(output) =
            path.or_else(|| self.dialogs.export_image(&format!("{stem}_opossum.png")))
        else {
            return;
        };
        let Some(format) = OutputFormat::from_path(&output) else {
            self.error = Some(format!(
                "Choose a .png, .jpg, .webp or .tif file name (got {})",
                output.display()
            ));
            return;
        };
        let options = EncodeOptions {
            format,
            quality: self.export_quality,
            lossless: false,
        };
        let repaint = ctx.clone();
        let megapixels = image.pyramid.full.pixels() as f64 / 1e6;
        self.last_export = None;
        self.export = Some(ExportJob::start(
            self.export_engine.clone(),
            image.path.clone(),
            (self.chain.clone(), Some(image.pyramid.detail)),
            output,
            options,
            megapixels,
            move || repaint.request_repaint(),
        ));
    }

    /// A new preview worker (with empty memory caches) for the current engine and caches.
    fn restart_worker(&mut self, ctx: &egui::Context) {
        let repaint_ctx = ctx.clone();
        let replaced = std::mem::replace(
            &mut self.worker,
            PreviewWorker::start(
                self.preview_engine.clone(),
                self.gpu.as_ref().map(|g| g.context.clone()),
                self.caches
                    .preview(&self.config.performance, self.preview_engine.budget_bytes()),
                move || repaint_ctx.request_repaint(),
            ),
        );
        // The old one may be finishing a frame: the UI does not wait for it.
        self.retired_workers.add(replaced);
    }

    fn save_settings(&mut self, ctx: &egui::Context) {
        if let Err(e) = self.settings_draft.validate() {
            self.settings_message = Some(e.to_string());
            return;
        }
        self.config = self.settings_draft.clone();
        self.preview_engine = engine_for(&self.config);
        self.export_engine = background_engine_for(&self.config);
        if let Some(old) = &self.caches.disk {
            old.close();
        }
        self.caches = SessionCaches::open(
            &self.config.performance,
            self.preview_engine.budget_bytes(),
            self.cache_dir.as_deref(),
        );
        self.restart_worker(ctx);
        // A new device attempt: a GPU failure is forgotten when the settings are applied.
        if self.gpu.is_some() {
            self.preview.gpu_warning = None;
        }
        self.chain_changed = true;
        match &self.config_path {
            Some(path) => {
                let text = toml::to_string_pretty(&self.config).unwrap_or_default();
                let written = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        crate::io::write_atomic(path, |w| w.write_all(text.as_bytes()))
                            .map_err(|e| e.to_string())
                    });
                self.settings_message = Some(match written {
                    Ok(()) => format!("Saved to {}", path.display()),
                    Err(e) => format!("Applied, but not saved: {e}"),
                });
            }
            None => self.settings_message = Some("Applied for this session".to_owned()),
        }
    }

    // ---------------------------------------------------------------- input

    fn shortcuts(&mut self, ctx: &egui::Context) {
        let typing = ctx.wants_keyboard_input();
        let mut commands = Vec::new();
        ctx.input_mut(|i| {
            let cmd = Modifiers::COMMAND;
            let cmd_shift = Modifiers::COMMAND | Modifiers::SHIFT;
            if i.consume_shortcut(&KeyboardShortcut::new(cmd_shift, Key::Z))
                || i.consume_shortcut(&KeyboardShortcut::new(cmd, Key::Y))
            {
                commands.push(Command::Redo);
            }
            if i.consume_shortcut(&KeyboardShortcut::new(cmd, Key::Z)) {
                commands.push(Command::Undo);
            }
            if i.consume_shortcut(&KeyboardShortcut::new(cmd_shift, Key::O)) {
                commands.push(Command::LoadChain(None));
            }
            if i.consume_shortcut(&KeyboardShortcut::new(cmd, Key::O)) {
                commands.push(Command::OpenImage(None));
            }
            if i.consume_shortcut(&KeyboardShortcut::new(cmd, Key::S)) {
                commands.push(Command::SaveChain(None));
            }
            if i.consume_shortcut(&KeyboardShortcut::new(cmd, Key::E)) {
                commands.push(Command::Export(None));
            }
            if !typing {
                if let Some(sel) = self.selected {
                    if i.consume_key(Modifiers::NONE, Key::Delete) {
                        commands.push(Command::RemoveOp(sel));
                    }
                    if i.consume_shortcut(&KeyboardShortcut::new(cmd, Key::D)) {
                        commands.push(Command::DuplicateOp(sel));
                    }
                }
                if i.consume_key(Modifiers::NONE, Key::F) {
                    commands.push(Command::ZoomFit);
                }
                if i.consume_key(Modifiers::NONE, Key::Num1) {
                    commands.push(Command::Zoom100);
                }
                if i.consume_key(Modifiers::NONE, Key::B) {
                    commands.push(Command::ToggleBefore);
                }
            }
            // Folders go to the Batch panel; so do images while it is open and idle.
            let to_batch = self.batch.open && !self.batch.running();
            let mut batch_inputs = Vec::new();
            for file in &i.raw.dropped_files {
                if let Some(path) = &file.path {
                    let is_chain = matches!(
                        path.extension().and_then(|e| e.to_str()),
                        Some("toml" | "json")
                    );
                    if is_chain {
                        commands.push(Command::LoadChain(Some(path.clone())));
                    } else if path.is_dir() || to_batch {
                        batch_inputs.push(path.clone());
                    } else {
                        commands.push(Command::OpenImage(Some(path.clone())));
                    }
                }
            }
            if !batch_inputs.is_empty() {
                commands.push(Command::AddBatchInputs(batch_inputs));
            }
        });
        self.commands.extend(commands);
    }

    fn handle_screenshot(&mut self, ctx: &egui::Context) {
        let Some(path) = self.screenshot.clone() else {
            return;
        };
        match self.screenshot_state {
            ScreenshotState::Waiting => {
                let ready = self.preview_is_current() || self.error.is_some();
                let timed_out = self.started.elapsed() > Duration::from_secs(120);
                if ready || timed_out {
                    if timed_out {
                        *self.exit_error.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some("the preview did not finish within 120 s".to_owned());
                    }
                    if let Some(error) = &self.error {
                        *self.exit_error.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(error.clone());
                    }
                    ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(Default::default()));
                    self.screenshot_state = ScreenshotState::Requested;
                }
                ctx.request_repaint_after(Duration::from_millis(50));
            }
            ScreenshotState::Requested => {
                let shot = ctx.input(|i| {
                    i.events.iter().find_map(|e| match e {
                        egui::Event::Screenshot { image, .. } => Some(image.clone()),
                        _ => None,
                    })
                });
                if let Some(image) = shot {
                    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
                    let saved = image::RgbaImage::from_raw(
                        image.size[0] as u32,
                        image.size[1] as u32,
                        rgba,
                    )
                    .ok_or_else(|| "screenshot buffer size".to_owned())
                    .and_then(|img| {
                        let mut bytes = std::io::Cursor::new(Vec::new());
                        img.write_to(&mut bytes, image::ImageFormat::Png)
                            .map_err(|e| e.to_string())?;
                        crate::io::write_atomic(&path, |w| w.write_all(bytes.get_ref()))
                            .map_err(|e| e.to_string())
                    });
                    if let Err(e) = saved {
                        *self.exit_error.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(format!("could not save the screenshot: {e}"));
                    }
                    self.screenshot_state = ScreenshotState::Done;
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                } else {
                    ctx.request_repaint_after(Duration::from_millis(50));
                }
            }
            ScreenshotState::Done => {}
        }
    }

    /// One frame: take in results, draw, apply commands.
    pub fn frame(&mut self, ctx: &egui::Context) {
        puffin::GlobalProfiler::lock().new_frame();
        puffin::profile_function!();
        if self.preview.coarsening > 0 {
            // Wake up when the edits have paused, to refine the coarse preview.
            ctx.request_repaint_after(deadline::QUIET);
        }
        let now = Instant::now();
        if let Some(last) = self.last_frame.replace(now) {
            if self.frame_times.len() == 240 {
                self.frame_times.pop_front();
            }
            self.frame_times
                .push_back((now - last).as_secs_f32() * 1000.0);
        }
        self.preview.max_texture_side = ctx.input(|i| i.max_texture_side);
        self.poll_jobs(ctx);
        self.shortcuts(ctx);
        self.menu_ui(ctx);
        self.status_ui(ctx);
        self.chain_panel_ui(ctx);
        self.inspector_ui(ctx);
        self.preview_ui(ctx);
        self.windows_ui(ctx);
        for command in std::mem::take(&mut self.commands) {
            self.apply(ctx, command);
        }
        if self.chain_changed && self.image.is_some() {
            ctx.request_repaint();
        }
        self.handle_screenshot(ctx);
        if !self.fresh_state {
            self.state.last_chain = Some(self.chain.to_toml_string());
        }
    }

    // ---------------------------------------------------------------- panels

    fn menu_ui(&mut self, ctx: &egui::Context) {
        egui::TopBottomPanel::top("menu_bar").show(ctx, |ui| {
            egui::MenuBar::new().ui(ui, |ui| {
                ui.menu_button("File", |ui| {
                    if ui.button("Open image…").on_hover_text("Ctrl+O").clicked() {
                        self.commands.push(Command::OpenImage(None));
                    }
                    ui.menu_button("Open recent", |ui| {
                        if self.state.recent_files.is_empty() {
                            ui.label("No recent files");
                        }
                        for path in self.state.recent_files.clone() {
                            if ui.button(path.display().to_string()).clicked() {
                                self.commands.push(Command::OpenImage(Some(path)));
                            }
                        }
                    });
                    ui.separator();
                    if ui
                        .button("Load chain…")
                        .on_hover_text("Ctrl+Shift+O")
                        .clicked()
                    {
                        self.commands.push(Command::LoadChain(None));
                    }
                    if ui.button("Save chain…").on_hover_text("Ctrl+S").clicked() {
                        self.commands.push(Command::SaveChain(None));
                    }
                    ui.menu_button("Presets", |ui| {
                        for (i, (name, _)) in PRESETS.iter().enumerate() {
                            if ui.button(*name).clicked() {
                                self.commands.push(Command::LoadPreset(i));
                            }
                        }
                    });
                    ui.separator();
                    let can_export = self.image.is_some() && self.export.is_none();
                    if ui
                        .add_enabled(can_export, egui::Button::new("Export…"))
                        .on_hover_text("Ctrl+E")
                        .clicked()
                    {
                        self.commands.push(Command::Export(None));
                    }
                    ui.separator();
                    if ui.button("Quit").clicked() {
                        ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                    }
                });
                ui.menu_button("Process", |ui| {
                    let mut batch = self.batch.open;
                    if ui.checkbox(&mut batch, "Batch…").changed() {
                        self.commands.push(Command::ToggleBatch);
                    }
                    let mut watch = self.watch.open;
                    if ui.checkbox(&mut watch, "Watch folder…").changed() {
                        self.commands.push(Command::ToggleWatch);
                    }
                    let mut vectorize = self.vectorize.open;
                    if ui.checkbox(&mut vectorize, "Vectorize…").changed() {
                        self.commands.push(Command::ToggleVectorize);
                    }
                });
                ui.menu_button("Edit", |ui| {
                    if ui
                        .add_enabled(self.history.can_undo(), egui::Button::new("Undo"))
                        .on_hover_text("Ctrl+Z")
                        .clicked()
                    {
                        self.commands.push(Command::Undo);
                    }
                    if ui
                        .add_enabled(self.history.can_redo(), egui::Button::new("Redo"))
                        .on_hover_text("Ctrl+Shift+Z")
                        .clicked()
                    {
                        self.commands.push(Command::Redo);
                    }
                    ui.separator();
                    if ui.button("Settings…").clicked() {
                        self.commands.push(Command::ToggleSettings);
                    }
                });
                ui.menu_button("View", |ui| {
                    if ui.button("Fit to window").on_hover_text("F").clicked() {
                        self.commands.push(Command::ZoomFit);
                    }
                    if ui
                        .button("Actual pixels (100%)")
                        .on_hover_text("1")
                        .clicked()
                    {
                        self.commands.push(Command::Zoom100);
                    }
                    let mut before = self.before;
                    if ui.checkbox(&mut before, "Show original (before)").changed() {
                        self.commands.push(Command::ToggleBefore);
                    }
                    let mut split = self.split.is_some();
                    if ui.checkbox(&mut split, "Before/after split").changed() {
                        self.split = split.then_some(0.5);
                    }
                    ui.separator();
                    let mut profiler = self.show_profiler;
                    if ui.checkbox(&mut profiler, "Profiler").changed() {
                        self.commands.push(Command::ToggleProfiler);
                    }
                });
            });
        });
    }

    fn status_ui(&mut self, ctx: &egui::Context) {
        egui::TopBottomPanel::bottom("status_bar").show(ctx, |ui| {
            ui.horizontal(|ui| {
                if let Some((path, _)) = &self.loading {
                    ui.spinner();
                    ui.label(format!("Opening {}", file_name(path)));
                    ui.separator();
                }
                if let Some(job) = &self.export {
                    let (fraction, eta) = job.fraction_and_eta();
                    let text = match eta {
                        Some(eta) => format!(
                            "Exporting {:.0}% · {:.0} s left",
                            fraction * 100.0,
                            eta.as_secs_f32().ceil()
                        ),
                        None => "Exporting…".to_owned(),
                    };
                    ui.add(
                        egui::ProgressBar::new(fraction)
                            .desired_width(200.0)
                            .text(text),
                    );
                    if ui.button("Cancel export").clicked() {
                        self.commands.push(Command::CancelExport);
                    }
                    ui.separator();
                } else if let Some(summary) = &self.last_export {
                    ui.label(summary);
                    ui.separator();
                }
                if self.batch.running() {
                    ui.spinner();
                    if ui.link("Batch running").clicked() {
                        self.batch.open = true;
                    }
                    ui.separator();
                }
                if self.watch.running() {
                    let c = self.watch.counters();
                    if ui
                        .link(format!(
                            "Watching: {} written, {} failed",
                            c.written, c.failed
                        ))
                        .clicked()
                    {
                        self.watch.open = true;
                    }
                    ui.separator();
                }
                if self.image.is_some() && !self.hide_timings {
                    ui.label(format!(
                        "Preview {:.0} ms on the {} at {:.0}% (level {})",
                        self.preview.latency.as_secs_f64() * 1000.0,
                        if self.preview.on_gpu { "GPU" } else { "CPU" },
                        self.preview.scale * 100.0,
                        self.preview.level
                    ));
                    ui.separator();
                }
                if let Some(warning) = &self.preview.gpu_warning
                    && self.config.performance.gpu_enabled
                {
                    ui.colored_label(ui.visuals().warn_fg_color, warning);
                    ui.separator();
                }
                let pyramid_bytes = self.image.as_ref().map_or(0, |i| i.pyramid.bytes());
                ui.label(format!(
                    "Memory: images {} of {} limit",
                    crate::error::human_bytes(pyramid_bytes),
                    ByteSize(self.config.performance.max_memory_usage.0)
                ));
            });
        });
    }

    fn chain_panel_ui(&mut self, ctx: &egui::Context) {
        egui::SidePanel::left("chain_panel")
            .resizable(true)
            .default_width(250.0)
            .show(ctx, |ui| {
                ui.heading("Chain");
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(self.history.can_undo(), egui::Button::new("Undo"))
                        .clicked()
                    {
                        self.commands.push(Command::Undo);
                    }
                    if ui
                        .add_enabled(self.history.can_redo(), egui::Button::new("Redo"))
                        .clicked()
                    {
                        self.commands.push(Command::Redo);
                    }
                });
                ui.separator();
                let n = self.chain.ops.len();
                let mut drop_target = None;
                egui::ScrollArea::vertical()
                    .max_height(ui.available_height() * 0.55)
                    .show(ui, |ui| {
                        if n == 0 {
                            ui.label("No operations yet: add one below");
                        }
                        for i in 0..n {
                            let op = &self.chain.ops[i];
                            let row = ui.horizontal(|ui| {
                                // The grip is the drag handle; drop onto any row to move there.
                                ui.dnd_drag_source(egui::Id::new(("chain_grip", i)), i, |ui| {
                                    ui.label("↕").on_hover_text("Drag to reorder");
                                });
                                let mut enabled = op.enabled;
                                let toggle = ui
                                    .checkbox(&mut enabled, "")
                                    .on_hover_text("Enable or disable this step");
                                let name = format!("Enable {}. {}", i + 1, op.def.label);
                                toggle.widget_info(|| {
                                    egui::WidgetInfo::selected(
                                        egui::WidgetType::Checkbox,
                                        true,
                                        enabled,
                                        &name,
                                    )
                                });
                                if toggle.changed() {
                                    self.commands.push(Command::ToggleOp(i));
                                }
                                let name = format!("{}. {}", i + 1, op.def.label);
                                let label = ui
                                    .add(egui::Button::selectable(self.selected == Some(i), name));
                                if label.clicked() {
                                    self.commands.push(Command::Select(Some(i)));
                                }
                            });
                            if let Some(from) = row.response.dnd_release_payload::<usize>() {
                                drop_target = Some((*from, i));
                            }
                        }
                    });
                if let Some((from, to)) = drop_target {
                    self.commands.push(Command::MoveOp { from, to });
                }
                if let Some(i) = self.selected.filter(|&i| i < n) {
                    ui.horizontal_wrapped(|ui| {
                        if ui
                            .add_enabled(i > 0, egui::Button::new("Move up"))
                            .clicked()
                        {
                            self.commands.push(Command::MoveOp { from: i, to: i - 1 });
                        }
                        if ui
                            .add_enabled(i + 1 < n, egui::Button::new("Move down"))
                            .clicked()
                        {
                            self.commands.push(Command::MoveOp { from: i, to: i + 1 });
                        }
                        if ui.button("Duplicate").on_hover_text("Ctrl+D").clicked() {
                            self.commands.push(Command::DuplicateOp(i));
                        }
                        if ui.button("Remove").on_hover_text("Delete").clicked() {
                            self.commands.push(Command::RemoveOp(i));
                        }
                    });
                }
                ui.separator();
                ui.label("Add operation");
                let search = ui.add(
                    egui::TextEdit::singleline(&mut self.palette_query)
                        .hint_text("Search operations"),
                );
                let search = search.on_hover_text("Type to filter, Enter adds the first match");
                let query = self.palette_query.to_lowercase();
                let matches: Vec<&'static ops::OpDef> = ops::registry()
                    .iter()
                    .copied()
                    .filter(|d| {
                        query.is_empty()
                            || d.label.to_lowercase().contains(&query)
                            || d.id.contains(&query)
                            || d.category.to_lowercase().contains(&query)
                    })
                    .collect();
                if search.lost_focus()
                    && ui.input(|i| i.key_pressed(Key::Enter))
                    && let Some(first) = matches.first()
                {
                    self.commands.push(Command::AddOp(first.id));
                }
                egui::ScrollArea::vertical()
                    .id_salt("palette")
                    .show(ui, |ui| {
                        for def in matches {
                            if ui
                                .button(format!("+ {}", def.label))
                                .on_hover_text(def.doc)
                                .clicked()
                            {
                                self.commands.push(Command::AddOp(def.id));
                            }
                        }
                    });
            });
    }

    fn inspector_ui(&mut self, ctx: &egui::Context) {
        egui::SidePanel::right("inspector")
            .resizable(true)
            .default_width(320.0)
            .show(ctx, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    match self
                        .selected
                        .and_then(|i| self.chain.ops.get(i).map(|op| (i, op)))
                    {
                        Some((index, op)) => {
                            ui.heading(op.def.label);
                            ui.label(op.def.doc);
                            ui.add_space(4.0);
                            if let Some(edit) = params_ui(ui, op.def.params, &op.params) {
                                self.commands.push(Command::SetParam {
                                    index,
                                    key: edit.key,
                                    value: edit.value,
                                    dragging: edit.dragging,
                                });
                            }
                        }
                        None => {
                            ui.heading("Inspector");
                            ui.label("Select a step in the chain to edit its parameters");
                        }
                    }
                    ui.separator();
                    ui.heading("Image");
                    match &self.image {
                        Some(img) => {
                            ui.label(file_name(&img.path));
                            ui.label(format!(
                                "{} × {} px · {} · {}",
                                img.pyramid.full.width,
                                img.pyramid.full.height,
                                img.format,
                                crate::error::human_bytes(img.file_bytes)
                            ));
                            if !self.hide_timings {
                                ui.label(format!(
                                    "Opened in {:.0} ms ({} pyramid levels)",
                                    img.load_time.as_secs_f64() * 1000.0,
                                    img.pyramid.levels.len()
                                ));
                            }
                        }
                        None => {
                            ui.label("No image");
                        }
                    }
                    if let Some(error) = &self.preview.error {
                        ui.colored_label(ui.visuals().error_fg_color, error);
                    }
                    ui.separator();
                    ui.heading("Histogram");
                    if let Some(h) = &self.preview.histogram {
                        histogram_ui(ui, h);
                    }
                    ui.separator();
                    ui.heading("Render times (last preview)");
                    if self.preview.coarsening > 0 {
                        ui.label(format!(
                            "While editing: {} level(s) coarser (frames over the {} ms budget); refines when you pause",
                            self.preview.coarsening,
                            self.config.performance.preview_frame_budget_ms
                        ));
                    }
                    if let Some((hits, lookups)) = self.preview.cache {
                        ui.label(format!(
                            "GPU stage cache: {hits} of {lookups} stages reused"
                        ));
                    }
                    egui::Grid::new("stage_times").striped(true).show(ui, |ui| {
                        for (label, ms) in &self.preview.stage_ms {
                            ui.label(label);
                            if self.hide_timings {
                                ui.label("… ms");
                            } else {
                                ui.label(format!("{ms:.1} ms"));
                            }
                            ui.end_row();
                        }
                    });
                    ui.separator();
                    ui.heading("Export");
                    ui.horizontal(|ui| {
                        let label = ui.label("Quality");
                        ui.add(egui::Slider::new(&mut self.export_quality, 1..=100))
                            .labelled_by(label.id);
                    });
                    let can_export = self.image.is_some() && self.export.is_none();
                    if ui
                        .add_enabled(can_export, egui::Button::new("Export full resolution…"))
                        .clicked()
                    {
                        self.commands.push(Command::Export(None));
                    }
                });
            });
    }

    fn preview_ui(&mut self, ctx: &egui::Context) {
        egui::CentralPanel::default().show(ctx, |ui| {
            if let Some(error) = self.error.clone() {
                egui::Frame::new()
                    .fill(ui.visuals().error_fg_color.gamma_multiply(0.15))
                    .inner_margin(8.0)
                    .show(ui, |ui| {
                        if ui.button("Dismiss").clicked() {
                            self.commands.push(Command::DismissError);
                        }
                        ui.colored_label(ui.visuals().error_fg_color, error);
                    });
            }
            ui.horizontal(|ui| {
                if ui.button("Fit").clicked() {
                    self.commands.push(Command::ZoomFit);
                }
                if ui.button("100%").clicked() {
                    self.commands.push(Command::Zoom100);
                }
                let mut before = self.before;
                if ui.toggle_value(&mut before, "Before").clicked() {
                    self.commands.push(Command::ToggleBefore);
                }
                let mut split = self.split.is_some();
                if ui.toggle_value(&mut split, "Split").clicked() {
                    self.split = split.then_some(0.5);
                }
                if let Some(s) = &mut self.split {
                    let label = ui.label("Split position");
                    ui.add(egui::Slider::new(s, 0.0..=1.0).show_value(false))
                        .labelled_by(label.id);
                }
                let zoom_text = match self.zoom {
                    Some(z) => format!("{:.0}%", z * 100.0),
                    None => "Fit".to_owned(),
                };
                ui.label(zoom_text);
            });
            let (rect, response) =
                ui.allocate_exact_size(ui.available_size(), egui::Sense::click_and_drag());
            let ppp = ctx.pixels_per_point();
            self.request_preview(rect.size() * ppp, 1.0);
            let painter = ui.painter_at(rect);
            painter.rect_filled(rect, 0.0, ui.visuals().extreme_bg_color);
            if self.preview.shown.is_none() {
                if self.loading.is_some() || self.image.is_some() {
                    painter.text(
                        rect.center(),
                        egui::Align2::CENTER_CENTER,
                        "Rendering preview…",
                        egui::FontId::proportional(16.0),
                        ui.visuals().text_color(),
                    );
                }
                return;
            }
            // Full-resolution size of what is shown, and the zoom that fits it.
            // Full-resolution size of what is shown: the preview scaled back per axis by the
            // ratio between the full image and the pyramid level it was rendered from.
            let (sx, sy) = self.image.as_ref().map_or((1.0, 1.0), |img| {
                let level =
                    &img.pyramid.levels[self.preview.level.min(img.pyramid.levels.len() - 1)].image;
                (
                    img.pyramid.full.width as f32 / level.width().max(1) as f32,
                    img.pyramid.full.height as f32 / level.height().max(1) as f32,
                )
            });
            let full = Vec2::new(
                self.preview.size[0] as f32 * sx,
                self.preview.size[1] as f32 * sy,
            );
            let fit = (rect.width() / full.x)
                .min(rect.height() / full.y)
                .min(1.0 / ppp);
            // Mouse wheel zooms about the pointer; dragging pans.
            if response.hovered() {
                let scroll = ui.input(|i| i.smooth_scroll_delta.y);
                if scroll != 0.0 {
                    let old = self.zoom.unwrap_or(fit);
                    let new = (old * (scroll / 200.0).exp()).clamp(0.01, 16.0);
                    if let Some(pointer) = response.hover_pos() {
                        let from_center = pointer - rect.center() - self.pan;
                        self.pan -= from_center * (new / old - 1.0);
                    }
                    self.zoom = Some(new);
                    self.last_change = Instant::now();
                }
            }
            if response.dragged() {
                self.pan += response.drag_delta();
                self.last_change = Instant::now();
            }
            let zoom = self.zoom.unwrap_or(fit);
            let shown = full * zoom;
            let centred = egui::Rect::from_center_size(rect.center() + self.pan, shown);
            // Snap to whole physical pixels so a 1:1 view samples texels exactly (no blur).
            let snapped_min = (centred.min.to_vec2() * ppp).round() / ppp;
            let image_rect = egui::Rect::from_min_size(snapped_min.to_pos2(), shown);
            let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
            let original = self.preview.original.as_ref().map(|(_, t)| t.id());
            let shown = self.preview.shown.as_ref();
            if self.before
                && let Some(orig) = original
            {
                painter.image(orig, image_rect, uv, Color32::WHITE);
            } else if let (Some(split), Some(orig), Some(shown)) = (self.split, original, shown) {
                let x = image_rect.left() + image_rect.width() * split;
                let left =
                    egui::Rect::from_min_max(image_rect.min, egui::pos2(x, image_rect.bottom()));
                let right =
                    egui::Rect::from_min_max(egui::pos2(x, image_rect.top()), image_rect.max);
                let uv_left =
                    egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(split, 1.0));
                painter.image(orig, left, uv_left, Color32::WHITE);
                shown.paint(&painter, image_rect, right);
                painter.vline(
                    x,
                    image_rect.y_range(),
                    egui::Stroke::new(2.0, Color32::WHITE),
                );
            } else if let Some(shown) = shown {
                shown.paint(&painter, image_rect, rect);
                self.refine_ui(ctx, &painter, rect, image_rect, zoom, full);
            }
            if response.double_clicked() {
                self.commands.push(if self.zoom.is_some() {
                    Command::ZoomFit
                } else {
                    Command::Zoom100
                });
            }
        });
    }

    /// When the view is zoomed in past the level shown and has been still for a moment, render
    /// the visible part at full resolution and draw it over the preview.
    fn refine_ui(
        &mut self,
        ctx: &egui::Context,
        painter: &egui::Painter,
        view: egui::Rect,
        image_rect: egui::Rect,
        zoom: f32,
        full: Vec2,
    ) {
        let ppp = ctx.pixels_per_point();
        let upscaled = f64::from(zoom * ppp) > self.preview.scale * 1.05 && self.preview.level != 0;
        if let Some(refined) = &self.preview.refined
            && refined.base == self.preview.shown_generation
            && upscaled
        {
            let r = refined.shown.region;
            let min = image_rect.min + Vec2::new(r.x as f32, r.y as f32) * zoom;
            let size = Vec2::new(r.width as f32, r.height as f32) * zoom;
            refined
                .shown
                .paint(painter, egui::Rect::from_min_size(min, size), view);
        }
        if !upscaled || !self.preview_is_current() {
            return;
        }
        if self.last_change.elapsed() < Duration::from_millis(150) {
            ctx.request_repaint_after(Duration::from_millis(160));
            return;
        }
        let visible = view.intersect(image_rect);
        if !visible.is_positive() {
            return;
        }
        let a = (visible.min - image_rect.min) / zoom;
        let b = (visible.max - image_rect.min) / zoom;
        let clamp = |v: f32, max: f32| v.clamp(0.0, max.max(0.0)) as u32;
        let region = PxRect::from_bounds(
            clamp(a.x.floor(), full.x),
            clamp(a.y.floor(), full.y),
            clamp(b.x.ceil(), full.x),
            clamp(b.y.ceil(), full.y),
        );
        if region.is_empty() {
            return;
        }
        let shown = self.preview.shown_generation;
        let already = self
            .preview
            .refine_requested
            .is_some_and(|(_, r)| r == region)
            || self
                .preview
                .refined
                .as_ref()
                .is_some_and(|r| r.shown.region == region && r.base == shown);
        if already {
            return;
        }
        let max_side = self.preview.max_texture_side.max(256) as u32;
        let region = PxRect::new(
            region.x,
            region.y,
            region.width.min(max_side),
            region.height.min(max_side),
        );
        // Refinements render from full resolution: wait for it after a partial load.
        if let Some(image) = self.image.as_ref().filter(|i| i.complete) {
            let use_gpu = self.use_gpu();
            let generation = self
                .worker
                .request(&self.chain, image, 0, Some(region), use_gpu);
            self.preview.refine_requested = Some((generation, region));
        }
    }

    /// The image's content measure and what it chose in the shown preview's plan.
    fn content_choices_ui(&self, ui: &mut egui::Ui) {
        let Some(img) = &self.image else {
            return;
        };
        let detail = img.pyramid.detail;
        let measured = detail.gradient.map_or_else(
            || "Image detail not measured".to_owned(),
            |g| format!("Image detail {g:.3} (measured at full resolution)"),
        );
        ui.label(format!(
            "{measured}{}",
            if detail.opaque_8bit {
                "; opaque 8-bit source"
            } else {
                ""
            }
        ));
        if self.preview.choices.is_empty() {
            ui.label(format!(
                "No op of this chain picks its algorithm by content at the {} preset",
                self.config.quality_preset().name()
            ));
        }
        for choice in &self.preview.choices {
            ui.label(format!("By content: {choice}"));
        }
    }

    /// Hit rates and sizes of every cache level, with a button to empty them.
    fn caches_ui(&mut self, ui: &mut egui::Ui) {
        ui.separator();
        ui.heading("Caches");
        let levels = self.cache_stats();
        egui::Grid::new("cache_levels")
            .striped(true)
            .show(ui, |ui| {
                for head in ["level", "hits", "misses", "hit rate", "entries", "size"] {
                    ui.strong(head);
                }
                ui.end_row();
                for l in &levels {
                    ui.label(l.name);
                    ui.label(l.hits.to_string());
                    ui.label(l.misses.to_string());
                    ui.label(
                        l.hit_rate()
                            .map_or("–".to_owned(), |r| format!("{:.0} %", r * 100.0)),
                    );
                    ui.label(l.entries.to_string());
                    ui.label(crate::error::human_bytes(l.bytes));
                    ui.end_row();
                }
            });
        match (&self.caches.disk, &self.caches.disk_error) {
            (Some(disk), _) => ui.label(format!("Disk cache: {}", disk.dir().display())),
            (None, Some(e)) => ui.label(format!("Disk cache off: {e}")),
            (None, None) => ui.label("Disk cache off"),
        };
        if ui.button("Clear caches").clicked() {
            self.commands.push(Command::ClearCaches);
        }
        if let Some(message) = &self.cache_message {
            ui.label(message);
        }
    }

    fn windows_ui(&mut self, ctx: &egui::Context) {
        let active_ops = self.chain.ops.iter().filter(|op| op.enabled).count();
        if self.batch.open {
            match self.batch.ui(ctx, self.dialogs.as_mut(), active_ops) {
                Some(BatchAction::Start) => self.commands.push(Command::StartBatch),
                Some(BatchAction::Cancel) => self.commands.push(Command::CancelBatch),
                None => {}
            }
        }
        if self.watch.open {
            match self.watch.ui(ctx, self.dialogs.as_mut(), active_ops) {
                Some(WatchAction::Start) => self.commands.push(Command::StartWatch),
                Some(WatchAction::Stop) => self.commands.push(Command::StopWatch),
                None => {}
            }
        }
        if self.vectorize.open {
            // Tracing needs full resolution: not offered while a partial load completes.
            let source = self
                .image
                .as_ref()
                .filter(|i| i.complete)
                .map(|image| TraceSource {
                    pyramid: image.pyramid.clone(),
                    orientation: image.orientation,
                    chain: self.chain.clone(),
                    engine: self.export_engine.clone(),
                    stem: image
                        .path
                        .file_stem()
                        .map_or_else(|| "traced".to_owned(), |s| s.to_string_lossy().into_owned()),
                });
            self.vectorize.ui(ctx, self.dialogs.as_mut(), source);
        }
        if self.show_profiler {
            let mut open = true;
            egui::Window::new("Profiler")
                .open(&mut open)
                .default_size([900.0, 500.0])
                .show(ctx, |ui| {
                    let frames: Vec<f32> = self.frame_times.iter().copied().collect();
                    let mut sorted = frames.clone();
                    sorted.sort_by(f32::total_cmp);
                    let p = |q: f32| {
                        sorted
                            .get(((sorted.len() as f32 - 1.0) * q) as usize)
                            .copied()
                            .unwrap_or(0.0)
                    };
                    ui.label(format!(
                        "UI frame time p50 {:.1} ms · p99 {:.1} ms · last preview {:.0} ms",
                        p(0.5),
                        p(0.99),
                        self.preview.latency.as_secs_f64() * 1000.0
                    ));
                    if let Some(job) = &self.export {
                        let (fraction, _) = job.fraction_and_eta();
                        let secs = job.started.elapsed().as_secs_f64().max(1e-3);
                        ui.label(format!(
                            "Export throughput {:.1} Mpx/s",
                            job.megapixels * f64::from(fraction) / secs
                        ));
                    }
                    if let Some(summary) = &self.last_export {
                        // Includes the resolution-aware choice it made (shrink-on-load).
                        ui.label(format!("Last export: {summary}"));
                    }
                    ui.separator();
                    ui.label(match (&self.gpu, self.preview.on_gpu) {
                        (Some(gpu), true) => format!("Preview path: GPU ({})", gpu.context.adapter),
                        (Some(_), false) => "Preview path: CPU (GPU off or failed)".to_owned(),
                        (None, _) => "Preview path: CPU (no wgpu device)".to_owned(),
                    });
                    if let Some((hits, lookups)) = self.preview.cache {
                        ui.label(format!("Stage cache: {hits} of {lookups} stages reused"));
                    }
                    self.caches_ui(ui);
                    self.content_choices_ui(ui);
                    egui::Grid::new("profiler_stages")
                        .striped(true)
                        .show(ui, |ui| {
                            for (label, ms) in &self.preview.stage_ms {
                                ui.label(label);
                                ui.label(format!("{ms:.2} ms"));
                                ui.end_row();
                            }
                        });
                    ui.separator();
                    puffin_egui::profiler_ui(ui);
                });
            if !open {
                self.commands.push(Command::ToggleProfiler);
            }
        }
        if self.show_settings {
            let mut open = true;
            egui::Window::new("Settings").open(&mut open).show(ctx, |ui| {
                let p = &mut self.settings_draft.performance;
                egui::Grid::new("settings_grid").num_columns(2).show(ui, |ui| {
                    let l = ui.label("CPU cores (0 = all)");
                    ui.add(egui::DragValue::new(&mut p.max_cpu_cores).range(0..=256)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("Memory limit (MiB)");
                    let mut mib = p.max_memory_usage.0 >> 20;
                    if ui.add(egui::DragValue::new(&mut mib).range(16..=1 << 20)).labelled_by(l.id).changed() {
                        p.max_memory_usage = ByteSize(mib << 20);
                    }
                    ui.end_row();
                    let l = ui.label("Tile size (px)");
                    ui.add(egui::DragValue::new(&mut p.tile_size).range(16..=8192)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("Smallest tile (px)");
                    ui.add(egui::DragValue::new(&mut p.min_tile_size).range(16..=8192)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("Images in parallel (0 = auto)");
                    ui.add(egui::DragValue::new(&mut p.parallel_images).range(0..=64)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("Quality preset");
                    let before = p.quality;
                    egui::ComboBox::from_id_salt("quality_preset")
                        .selected_text(p.quality.name())
                        .show_ui(ui, |ui| {
                            for q in QualityPreset::ALL {
                                ui.selectable_value(&mut p.quality, q, q.name())
                                    .on_hover_text(q.changes().join("\n"));
                            }
                        })
                        .response
                        .labelled_by(l.id);
                    if p.quality != before {
                        // Picking a preset here is the user's choice; the numeric shortcut
                        // from the config file would otherwise override it.
                        p.quality_vs_speed = None;
                    }
                    ui.end_row();
                    ui.label("Preview renderer");
                    ui.checkbox(&mut p.gpu_enabled, "GPU previews");
                    ui.end_row();
                    let l = ui.label("Result cache");
                    ui.checkbox(&mut p.enable_result_cache, "").labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("Intermediate cache");
                    ui.checkbox(&mut p.enable_intermediate_cache, "").labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("Cache lifetime (s)");
                    ui.add(egui::DragValue::new(&mut p.cache_ttl).range(0..=31_536_000)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("Disk cache (MiB, 0 = off)");
                    let mut mib = p.persistent_cache_size.0 >> 20;
                    if ui.add(egui::DragValue::new(&mut mib).range(0..=1 << 24)).labelled_by(l.id).changed() {
                        p.persistent_cache_size = ByteSize(mib << 20);
                    }
                    ui.end_row();
                });
                if let Some(tuning) = &self.settings_draft.tuning {
                    ui.add(egui::Label::new(egui::RichText::new(tuning.summary()).small()).wrap());
                } else {
                    ui.add(egui::Label::new(egui::RichText::new("Not tuned for this machine yet: run `opossum tune` to measure it.").small()).wrap());
                }
                let p = &self.settings_draft.performance;
                let mut what = format!("Quality preset {}: {}.", p.quality.name(), p.quality.changes().join("; "));
                if let Some(q) = p.quality_vs_speed {
                    what.push_str(&format!(" (quality_vs_speed = {q} in the config file picks the preset until you choose one here.)"));
                }
                ui.add(egui::Label::new(egui::RichText::new(what).small()).wrap());
                ui.add(egui::Label::new(match (&self.caches.disk, &self.caches.disk_error) {
                    (Some(disk), _) => format!("Disk cache: {}. Hit rates are in the profiler.", disk.dir().display()),
                    (None, Some(e)) => format!("Disk cache off: {e}"),
                    (None, None) => "Disk cache off.".to_owned(),
                }).wrap());
                if let Some(path) = &self.config_path {
                    ui.label(format!("Config file: {}", path.display()));
                }
                if ui.button("Save settings").clicked() {
                    self.commands.push(Command::SaveSettings);
                }
                if let Some(message) = &self.settings_message {
                    ui.label(message);
                }
            });
            if !open {
                self.commands.push(Command::ToggleSettings);
            }
        }
    }
}

impl eframe::App for OpossumApp {
    fn update(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.frame(ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if !self.fresh_state {
            self.state.batch = self.batch.settings.clone();
            self.state.watch = self.watch.settings.clone();
            self.state.vectorize = self.vectorize.options.clone();
            eframe::set_value(storage, eframe::APP_KEY, &self.state);
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Per-channel (R, G, B, luma) histograms of 8-bit RGBA pixels.
fn histogram_ui(ui: &mut egui::Ui, h: &[[u32; 256]; 4]) {
    let (rect, _) =
        ui.allocate_exact_size(Vec2::new(ui.available_width(), 90.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let max = h
        .iter()
        .flat_map(|c| c.iter())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f32;
    let colors = [
        Color32::from_rgb(230, 80, 80),
        Color32::from_rgb(80, 200, 80),
        Color32::from_rgb(90, 130, 240),
        ui.visuals().text_color(),
    ];
    for (channel, color) in h.iter().zip(colors) {
        let points: Vec<egui::Pos2> = channel
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let x = rect.left() + rect.width() * i as f32 / 255.0;
                let y = rect.bottom() - rect.height() * (v as f32 / max).sqrt();
                egui::pos2(x, y)
            })
            .collect();
        painter.add(egui::Shape::line(points, egui::Stroke::new(1.0, color)));
    }
}
