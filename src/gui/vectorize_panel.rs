//! The Vectorize panel: trace the current chain's output into SVG with a live preview and
//! honest figures, then export the SVG at full resolution.
//!
//! The preview runs on a background thread: the chain is rendered on the CPU at the pyramid
//! level that fits the panel's view, traced with the options scaled to that level
//! ([`VectorizeOptions::scaled`], so lengths stay in full-resolution pixels), and the SVG is
//! rendered back with resvg. Any edit (options, chain, image) cancels the run in flight and
//! starts a new one; the UI never waits. The view shows the SVG beside the raster, over it
//! (with an opacity), or as outlines with their nodes. Export renders the chain at full
//! resolution, traces it with the options as set, and writes the file atomically, with
//! progress and Cancel.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use egui::{Color32, Pos2, Rect, Sense, Stroke, TextureHandle, Vec2};
use resvg::usvg;

use super::dialogs::FileDialogs;
use super::output_ui::panel_window;
use crate::chain::Chain;
use crate::engine::Engine;
use crate::engine::pyramid::Pyramid;
use crate::engine::render::RenderControl;
use crate::io::decode::Orientation;
use crate::vectorize::{self, Mode, Preset, VectorStats, VectorizeOptions};

/// How the SVG is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SvgView {
    /// The raster on the left, the SVG on the right.
    SideBySide,
    /// The SVG over the raster, with an opacity.
    Overlay,
    /// The raster with the SVG's outlines and nodes drawn over it.
    Outline,
}

/// What the panel traces: the app's current image, chain and engine.
pub struct TraceSource {
    /// The image's pyramid.
    pub pyramid: Arc<Pyramid>,
    /// Its EXIF orientation.
    pub orientation: Orientation,
    /// A snapshot of the chain.
    pub chain: Chain,
    /// Renders (the export engine: its own pool).
    pub engine: Arc<Engine>,
    /// The image's file name without extension (for the suggested SVG name).
    pub stem: String,
}

/// One path of the outline view: segments in image pixels of the preview level.
enum OutlineSeg {
    Move(Pos2),
    Line(Pos2),
    Cubic(Pos2, Pos2, Pos2),
}

struct Shown {
    raster: TextureHandle,
    svg: TextureHandle,
    outline: Vec<OutlineSeg>,
    stats: VectorStats,
    size: [usize; 2],
    level_scale: f64,
}

struct PreviewDone {
    raster: egui::ColorImage,
    svg: egui::ColorImage,
    outline: Vec<OutlineSeg>,
    stats: VectorStats,
    level_scale: f64,
}

struct Running {
    key: String,
    cancel: Arc<AtomicBool>,
    result: Receiver<Result<PreviewDone, String>>,
}

struct Export {
    output: PathBuf,
    cancel: Arc<AtomicBool>,
    /// Share done × 1000.
    progress: Arc<AtomicU32>,
    started: Instant,
    result: Receiver<Result<String, String>>,
}

/// The panel.
pub struct VectorizePanel {
    /// Whether the window is shown.
    pub open: bool,
    /// The options being edited.
    pub options: VectorizeOptions,
    /// How the SVG is shown.
    pub view: SvgView,
    overlay_opacity: f32,
    running: Option<Running>,
    shown_key: Option<String>,
    shown: Option<Shown>,
    error: Option<String>,
    export: Option<Export>,
    last_export: Option<String>,
}

impl Default for VectorizePanel {
    fn default() -> Self {
        Self::new(VectorizeOptions::default())
    }
}

/// The outline view marks nodes only up to this many.
const MAX_NODE_DOTS: usize = 4000;

/// The longest side the preview traces at most (the pyramid level at or above it).
const PREVIEW_SIDE_PX: f64 = 720.0;

impl VectorizePanel {
    /// A closed panel with these options.
    pub fn new(options: VectorizeOptions) -> Self {
        Self {
            open: false,
            options,
            view: SvgView::SideBySide,
            overlay_opacity: 0.8,
            running: None,
            shown_key: None,
            shown: None,
            error: None,
            export: None,
            last_export: None,
        }
    }

    /// The figures of the preview shown, if any (for tests).
    pub fn figures(&self) -> Option<&VectorStats> {
        self.shown.as_ref().map(|s| &s.stats)
    }

    /// Whether a preview is being traced.
    pub fn is_tracing(&self) -> bool {
        self.running.is_some()
    }

    /// The last export's outcome line.
    pub fn last_export(&self) -> Option<&str> {
        self.last_export.as_deref()
    }

    /// Whether an export is running.
    pub fn is_exporting(&self) -> bool {
        self.export.is_some()
    }

    fn key(&self, source: &TraceSource) -> String {
        format!(
            "{:p}|{}|{:?}",
            Arc::as_ptr(&source.pyramid),
            source.chain.to_toml_string(),
            self.options
        )
    }

    /// Starts a preview when something changed; collects finished work.
    fn poll(&mut self, ctx: &egui::Context, source: Option<&TraceSource>) {
        if let Some(run) = &self.running
            && let Ok(result) = run.result.try_recv()
        {
            let key = run.key.clone();
            self.running = None;
            match result {
                Ok(done) => {
                    let size = done.raster.size;
                    let raster =
                        ctx.load_texture("vectorize-raster", done.raster, Default::default());
                    let svg = ctx.load_texture("vectorize-svg", done.svg, Default::default());
                    self.shown = Some(Shown {
                        raster,
                        svg,
                        outline: done.outline,
                        stats: done.stats,
                        size,
                        level_scale: done.level_scale,
                    });
                    self.error = None;
                }
                Err(e) if e == "cancelled" => {}
                Err(e) => self.error = Some(e),
            }
            self.shown_key = Some(key);
        }
        if let Some(export) = &self.export
            && let Ok(result) = export.result.try_recv()
        {
            self.last_export = Some(match result {
                Ok(line) => line,
                Err(e) => format!("Export failed: {e}"),
            });
            self.export = None;
        }
        let Some(source) = source else { return };
        let key = self.key(source);
        let wanted = self.running.as_ref().map(|r| &r.key) != Some(&key)
            && self.shown_key.as_ref() != Some(&key);
        if wanted {
            if let Some(run) = self.running.take() {
                run.cancel.store(true, Ordering::Relaxed);
            }
            if let Err(e) = self.options.validate() {
                self.error = Some(e.to_string());
                self.shown_key = Some(key);
                return;
            }
            self.running = Some(start_preview(ctx, source, &self.options, key));
        }
    }

    /// Draws the window; `source` is `None` while no image is loaded.
    pub fn ui(
        &mut self,
        ctx: &egui::Context,
        dialogs: &mut dyn FileDialogs,
        source: Option<TraceSource>,
    ) {
        self.poll(ctx, source.as_ref());
        let mut open = self.open;
        panel_window(ctx, "Vectorize", [980.0, 620.0], &mut open, |ui| {
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.set_width(250.0);
                    self.settings_ui(ui);
                    ui.separator();
                    self.figures_ui(ui);
                    ui.separator();
                    self.export_ui(ui, dialogs, source.as_ref());
                });
                ui.separator();
                ui.vertical(|ui| self.view_ui(ui));
            });
            None::<()>
        });
        self.open = open;
        if !self.open
            && let Some(run) = self.running.take()
        {
            run.cancel.store(true, Ordering::Relaxed);
            self.shown_key = None;
        }
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        let o = &mut self.options;
        let defaults = vectorize::PresetDefaults::of(o.preset);
        egui::Grid::new("vectorize-settings")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("Preset");
                egui::ComboBox::from_id_salt("vectorize-preset")
                    .selected_text(o.preset.name())
                    .show_ui(ui, |ui| {
                        for p in [Preset::Logo, Preset::Poster, Preset::Photo, Preset::Lineart] {
                            ui.selectable_value(&mut o.preset, p, p.name());
                        }
                    });
                ui.end_row();
                ui.label("Mode");
                let mut mode = o.mode.unwrap_or(defaults.mode);
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut mode, Mode::Color, "Colour");
                    ui.selectable_value(&mut mode, Mode::Binary, "Binary");
                });
                o.mode = (mode != defaults.mode).then_some(mode);
                ui.end_row();
                if mode == Mode::Color {
                    ui.label("Colours");
                    ui.horizontal(|ui| {
                        let mut auto = o.colors.is_none();
                        ui.checkbox(&mut auto, "auto");
                        let mut n = o.colors.unwrap_or(16);
                        ui.add_enabled(!auto, egui::DragValue::new(&mut n).range(2..=256));
                        o.colors = (!auto).then_some(n);
                    });
                } else {
                    ui.label("Threshold");
                    let mut level = o.threshold_level.unwrap_or(128);
                    ui.add(egui::Slider::new(&mut level, 1..=254).suffix(" levels"));
                    o.threshold_level = (level != 128).then_some(level);
                }
                ui.end_row();
                let f64_row = |ui: &mut egui::Ui,
                               label: &str,
                               value: &mut Option<f64>,
                               default: f64,
                               range: std::ops::RangeInclusive<f64>,
                               suffix: &str| {
                    ui.label(label);
                    let mut v = value.unwrap_or(default);
                    ui.add(egui::Slider::new(&mut v, range).suffix(suffix));
                    *value = ((v - default).abs() > 1e-9).then_some(v);
                    ui.end_row();
                };
                f64_row(
                    ui,
                    "Speckle",
                    &mut o.speckle_px,
                    defaults.speckle_px,
                    0.0..=64.0,
                    " px",
                );
                f64_row(
                    ui,
                    "Max error",
                    &mut o.max_error_px,
                    defaults.max_error_px,
                    0.05..=8.0,
                    " px",
                );
                f64_row(
                    ui,
                    "Corners",
                    &mut o.corner_threshold_deg,
                    defaults.corner_threshold_deg,
                    0.0..=180.0,
                    "°",
                );
                ui.label("Smoothness");
                let mut s = o.smoothness.unwrap_or(defaults.smoothness);
                ui.add(egui::Slider::new(&mut s, 0..=10).suffix(" passes"));
                o.smoothness = (s != defaults.smoothness).then_some(s);
                ui.end_row();
            });
        if ui.button("Reset to preset").clicked() {
            self.options = VectorizeOptions::preset(self.options.preset);
        }
    }

    fn figures_ui(&self, ui: &mut egui::Ui) {
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        match &self.shown {
            Some(s) => {
                let st = &s.stats;
                egui::Grid::new("vectorize-figures")
                    .num_columns(2)
                    .show(ui, |ui| {
                        let mut row = |k: &str, v: String| {
                            ui.label(k);
                            ui.label(v);
                            ui.end_row();
                        };
                        row(
                            "Preview",
                            format!(
                                "{}×{} px ({:.0} %)",
                                s.size[0],
                                s.size[1],
                                100.0 * s.level_scale
                            ),
                        );
                        row("Paths", st.paths.to_string());
                        row("Nodes", st.nodes.to_string());
                        row("Colours", st.colors.to_string());
                        row(
                            "SVG size",
                            format!("{:.1} KiB", st.svg_bytes as f64 / 1024.0),
                        );
                        row("Time", format!("{:.0} ms", st.time_ms));
                        if let Some(f) = st.fidelity {
                            row("PSNR", format!("{:.2} dB", f.psnr_db));
                            row("SSIM", format!("{:.4}", f.ssim));
                            row(
                                "Uncovered",
                                format!("{:.3} %", 100.0 * f.uncovered_fraction),
                            );
                        }
                    });
            }
            None if self.running.is_none() && self.error.is_none() => {
                ui.label("Open an image to trace it.");
            }
            None => {}
        }
        if self.running.is_some() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Tracing…");
            });
        }
    }

    fn export_ui(
        &mut self,
        ui: &mut egui::Ui,
        dialogs: &mut dyn FileDialogs,
        source: Option<&TraceSource>,
    ) {
        if let Some(export) = &self.export {
            let share = export.progress.load(Ordering::Relaxed) as f32 / 1000.0;
            ui.add(egui::ProgressBar::new(share).show_percentage());
            ui.label(format!(
                "Exporting {} ({:.1} s)",
                export.output.display(),
                export.started.elapsed().as_secs_f64()
            ));
            if ui.button("Cancel export").clicked() {
                export.cancel.store(true, Ordering::Relaxed);
            }
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        } else {
            let can = source.is_some() && self.options.validate().is_ok();
            if ui
                .add_enabled(can, egui::Button::new("Export SVG…"))
                .on_hover_text("Trace the full-resolution render of the chain and save it")
                .clicked()
                && let Some(source) = source
                && let Some(path) = dialogs.export_svg(&format!("{}.svg", source.stem))
            {
                self.export = Some(start_export(ui.ctx(), source, &self.options, path));
            }
        }
        if let Some(line) = &self.last_export {
            ui.label(line);
        }
    }

    fn view_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.view, SvgView::SideBySide, "Side by side");
            ui.selectable_value(&mut self.view, SvgView::Overlay, "Overlay");
            ui.selectable_value(&mut self.view, SvgView::Outline, "Outline");
            if self.view == SvgView::Overlay {
                ui.add(egui::Slider::new(&mut self.overlay_opacity, 0.0..=1.0).text("opacity"));
            }
        });
        let Some(shown) = &self.shown else {
            return;
        };
        let avail = ui.available_size().max(Vec2::splat(64.0));
        let (w, h) = (shown.size[0] as f32, shown.size[1] as f32);
        let panes = if self.view == SvgView::SideBySide {
            2.0
        } else {
            1.0
        };
        let scale = ((avail.x - 8.0 * (panes - 1.0)) / panes / w).min(avail.y / h);
        let size = Vec2::new(w, h) * scale;
        let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
        match self.view {
            SvgView::SideBySide => {
                ui.horizontal(|ui| {
                    ui.add(egui::Image::new((shown.raster.id(), size)));
                    ui.add(egui::Image::new((shown.svg.id(), size)));
                });
            }
            SvgView::Overlay => {
                let (rect, _) = ui.allocate_exact_size(size, Sense::hover());
                let p = ui.painter_at(rect);
                p.image(shown.raster.id(), rect, uv, Color32::WHITE);
                p.image(
                    shown.svg.id(),
                    rect,
                    uv,
                    Color32::WHITE.gamma_multiply(self.overlay_opacity),
                );
            }
            SvgView::Outline => {
                let (rect, _) = ui.allocate_exact_size(size, Sense::hover());
                let p = ui.painter_at(rect);
                p.image(shown.raster.id(), rect, uv, Color32::from_gray(150));
                let to = |q: Pos2| rect.min + q.to_vec2() * scale;
                let line = Stroke::new(1.0, Color32::from_rgb(255, 40, 160));
                let mut at = Pos2::ZERO;
                let mut nodes = Vec::new();
                for seg in &shown.outline {
                    match *seg {
                        OutlineSeg::Move(q) => at = q,
                        OutlineSeg::Line(q) => {
                            p.line_segment([to(at), to(q)], line);
                            at = q;
                        }
                        OutlineSeg::Cubic(a, b, q) => {
                            p.add(egui::epaint::CubicBezierShape::from_points_stroke(
                                [to(at), to(a), to(b), to(q)],
                                false,
                                Color32::TRANSPARENT,
                                line,
                            ));
                            at = q;
                        }
                    }
                    nodes.push(to(at));
                }
                // Thousands of dots would hide the picture: nodes are drawn up to a limit.
                if nodes.len() <= MAX_NODE_DOTS {
                    for n in nodes {
                        p.circle_filled(n, 1.8, Color32::from_rgb(40, 220, 255));
                    }
                } else {
                    ui.label(format!(
                        "{} nodes: too many to mark; outlines only",
                        nodes.len()
                    ));
                }
            }
        }
    }
}

/// Renders the chain at the level that fits the preview and traces it, on a thread.
fn start_preview(
    ctx: &egui::Context,
    source: &TraceSource,
    options: &VectorizeOptions,
    key: String,
) -> Running {
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, result) = channel();
    let pyramid = source.pyramid.clone();
    let orientation = source.orientation;
    let chain = source.chain.clone();
    let engine = source.engine.clone();
    let options = options.clone();
    let flag = cancel.clone();
    let ctx = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("opossum-vectorize-preview".into())
        .spawn(move || {
            puffin::profile_scope!("vectorize preview");
            let long = f64::from(pyramid.full.width.max(pyramid.full.height));
            let level = &pyramid.levels[pyramid.level_for(PREVIEW_SIDE_PX / long)];
            let outcome = (|| {
                let control = RenderControl {
                    cancel: Some(&flag),
                    progress: None,
                };
                let (image, _) = engine
                    .render_source_scaled(
                        &level.image,
                        orientation,
                        &chain,
                        level.scale,
                        Some(pyramid.detail),
                        false,
                        &control,
                    )
                    .map_err(|e| e.to_string())?;
                let (w, h) = (image.size.width, image.size.height);
                let traced = engine
                    .trace(&image, &options.scaled(level.scale), true, &flag, &|_| {})
                    .map_err(|e| e.to_string())?;
                let rgba = image.to_rgba8();
                let rendered =
                    vectorize::metrics::render(&traced.svg, w, h).map_err(|e| e.to_string())?;
                let size = [w as usize, h as usize];
                Ok(PreviewDone {
                    raster: egui::ColorImage::from_rgba_unmultiplied(size, &rgba),
                    svg: egui::ColorImage::from_rgba_premultiplied(size, rendered.data()),
                    outline: outline(&traced.svg),
                    stats: traced.stats,
                    level_scale: level.scale,
                })
            })();
            let _ = tx.send(outcome);
            ctx.request_repaint();
        });
    if let Err(e) = spawned {
        let (tx, rx) = channel();
        let _ = tx.send(Err(format!("cannot start tracing: {e}")));
        return Running {
            key,
            cancel,
            result: rx,
        };
    }
    Running {
        key,
        cancel,
        result,
    }
}

/// The SVG's paths as segments, for the outline view.
fn outline(svg: &str) -> Vec<OutlineSeg> {
    let Ok(tree) = usvg::Tree::from_str(svg, &usvg::Options::default()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let pos = |p: usvg::tiny_skia_path::Point| Pos2::new(p.x, p.y);
    for node in tree.root().children() {
        let usvg::Node::Path(path) = node else {
            continue;
        };
        let mut start = Pos2::ZERO;
        for seg in path.data().segments() {
            use usvg::tiny_skia_path::PathSegment as S;
            match seg {
                S::MoveTo(p) => {
                    start = pos(p);
                    out.push(OutlineSeg::Move(start));
                }
                S::LineTo(p) => out.push(OutlineSeg::Line(pos(p))),
                S::CubicTo(a, b, p) => out.push(OutlineSeg::Cubic(pos(a), pos(b), pos(p))),
                S::QuadTo(a, p) => out.push(OutlineSeg::Cubic(pos(a), pos(a), pos(p))),
                S::Close => out.push(OutlineSeg::Line(start)),
            }
        }
    }
    out
}

/// Renders at full resolution, traces and writes the SVG, on a thread.
fn start_export(
    ctx: &egui::Context,
    source: &TraceSource,
    options: &VectorizeOptions,
    output: PathBuf,
) -> Export {
    let cancel = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU32::new(0));
    let (tx, result) = channel();
    let pyramid = source.pyramid.clone();
    let orientation = source.orientation;
    let chain = source.chain.clone();
    let engine = source.engine.clone();
    let options = options.clone();
    let (flag, shared, out) = (cancel.clone(), progress.clone(), output.clone());
    let repaint = Mutex::new(ctx.clone());
    let spawned = std::thread::Builder::new()
        .name("opossum-vectorize-export".into())
        .spawn(move || {
            puffin::profile_scope!("vectorize export");
            let t0 = Instant::now();
            let set = |share: f32| {
                shared.store((share.clamp(0.0, 1.0) * 1000.0) as u32, Ordering::Relaxed);
                repaint
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .request_repaint();
            };
            let outcome = (|| {
                // Rendering is the first half, tracing the second.
                let on_tiles = |done: usize, total: usize| {
                    set(0.5 * done as f32 / total.max(1) as f32);
                };
                let control = RenderControl {
                    cancel: Some(&flag),
                    progress: Some(&on_tiles),
                };
                let (image, _) = engine
                    .render_source_scaled(
                        &pyramid.levels[0].image,
                        orientation,
                        &chain,
                        1.0,
                        Some(pyramid.detail),
                        false,
                        &control,
                    )
                    .map_err(|e| format!("{e}\n{}", e.hint()))?;
                let (w, h) = (image.size.width, image.size.height);
                let traced = engine
                    .trace(&image, &options, false, &flag, &|share| {
                        set(0.5 + 0.5 * share)
                    })
                    .map_err(|e| format!("{e}\n{}", e.hint()))?;
                crate::io::write_atomic(&out, |f| f.write_all(traced.svg.as_bytes()))
                    .map_err(|e| format!("{e}\n{}", e.hint()))?;
                let s = traced.stats;
                Ok(format!(
                    "Exported {} ({w}×{h} px, {} paths, {} nodes, {:.1} KiB) in {:.1} s",
                    out.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                    s.paths,
                    s.nodes,
                    s.svg_bytes as f64 / 1024.0,
                    t0.elapsed().as_secs_f64()
                ))
            })();
            set(1.0);
            let _ = tx.send(outcome);
        });
    if let Err(e) = spawned {
        let (tx, rx) = channel();
        let _ = tx.send(Err(format!("cannot start the export: {e}")));
        return Export {
            output,
            cancel,
            progress,
            started: Instant::now(),
            result: rx,
        };
    }
    Export {
        output,
        cancel,
        progress,
        started: Instant::now(),
        result,
    }
}
