//! Raster to SVG.
//!
//! The pipeline, one module per stage, each with its own small config:
//! [`quantize`] (Oklab palette) → [`segment`] (regions, speckle filter) → [`trace`] (outlines
//! cut into chains shared by the regions on both sides) → [`fit`] (corners, lines and cubic
//! Béziers within an error bound; in parallel per chain) → [`layers`] (draw order) → [`svg`]
//! (compact output). [`metrics`] renders the result back with resvg for honest figures.
//!
//! Users set one [`VectorizeOptions`] (a preset plus overrides, units in the names); it is
//! turned once into the stages' configs by [`VectorizeOptions::stage_configs`].

pub mod fit;
pub mod layers;
pub mod metrics;
pub mod quantize;
pub mod segment;
pub mod svg;
pub mod trace;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use metrics::Fidelity;

/// Colour regions, or black and white (line art).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A palette of colours, stacked shapes.
    Color,
    /// Ink on paper: dark shapes with holes, from a threshold.
    Binary,
}

/// Starting points for the settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Flat colours, crisp corners, small files (icons, logos, flags).
    Logo,
    /// More colours and detail (illustrations, posters).
    Poster,
    /// Photographs: a bounded palette, larger speckles and looser curves to keep files small.
    Photo,
    /// Black-and-white drawings (binary mode).
    Lineart,
}

impl Preset {
    /// Stable lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Logo => "logo",
            Preset::Poster => "poster",
            Preset::Photo => "photo",
            Preset::Lineart => "lineart",
        }
    }
}

/// A [`VectorizeOptions`] field out of range.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidOption {
    /// The field (its key in a chain's `[vectorize]` table).
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// What the user sets. `None` fields take the preset's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VectorizeOptions {
    /// The preset the other fields override.
    pub preset: Preset,
    /// Colour or binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Palette size (colour mode); automatic when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colors: Option<usize>,
    /// Regions smaller than a square of this side (in pixels) are merged into a neighbour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speckle_px: Option<f64>,
    /// Smoothing passes over the outline samples (0 = none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoothness: Option<usize>,
    /// Turns sharper than this (degrees) are kept as corners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corner_threshold_deg: Option<f64>,
    /// Largest distance between the outline and its curves, in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_error_px: Option<f64>,
    /// Binary mode: luma (on white, 0..255) below which a pixel is ink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_level: Option<u8>,
    /// Size budget in KiB per megapixel: while the SVG is larger, speckles and the error bound
    /// grow by steps of 1.5× in area (up to 8 tries). The photo preset sets 280; 0 = no budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_kib_per_mpx: Option<f64>,
}

impl Default for VectorizeOptions {
    fn default() -> Self {
        VectorizeOptions {
            preset: Preset::Logo,
            mode: None,
            colors: None,
            speckle_px: None,
            smoothness: None,
            corner_threshold_deg: None,
            max_error_px: None,
            threshold_level: None,
            max_kib_per_mpx: None,
        }
    }
}

/// What a preset sets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PresetDefaults {
    /// Colour or binary.
    pub mode: Mode,
    /// Largest automatic palette.
    pub max_colors: usize,
    /// Oklab distance that makes a new palette colour.
    pub delta_e: f32,
    /// Whether edge blends are told from new colours.
    pub ignore_blends: bool,
    /// Speckle side, px.
    pub speckle_px: f64,
    /// Smoothing passes.
    pub smoothness: usize,
    /// Corner threshold, degrees.
    pub corner_threshold_deg: f64,
    /// Curve error bound, px.
    pub max_error_px: f64,
}

impl PresetDefaults {
    /// The table.
    pub fn of(preset: Preset) -> Self {
        let (mode, max_colors, delta_e, ignore_blends, speckle_px, smoothness, corner, error) =
            match preset {
                Preset::Logo => (Mode::Color, 24, 0.04, true, 2.0, 1, 60.0, 0.5),
                Preset::Poster => (Mode::Color, 48, 0.03, true, 3.0, 1, 60.0, 0.6),
                Preset::Photo => (Mode::Color, 20, 0.07, false, 8.0, 2, 75.0, 1.2),
                Preset::Lineart => (Mode::Binary, 2, 0.0, false, 2.0, 1, 60.0, 0.5),
            };
        PresetDefaults {
            mode,
            max_colors,
            delta_e,
            ignore_blends,
            speckle_px,
            smoothness,
            corner_threshold_deg: corner,
            max_error_px: error,
        }
    }
}

/// The stages' configs, derived once from [`VectorizeOptions`].
#[derive(Clone, Debug, PartialEq)]
pub struct StageConfigs {
    /// Colour or binary.
    pub mode: Mode,
    /// Binary threshold (luma on white).
    pub threshold_level: u8,
    /// Palette.
    pub quantize: quantize::QuantizeConfig,
    /// Regions smaller than this are merged.
    pub speckle_area_px: u64,
    /// Curves.
    pub fit: fit::FitConfig,
    /// Decimals written in the SVG.
    pub decimals: u32,
    /// Largest SVG wanted, if any.
    pub max_bytes: Option<usize>,
    /// Recolour regions by their mean, quantized to this many colours (photos).
    pub recolor_colors: Option<usize>,
}

impl VectorizeOptions {
    /// Options for a preset.
    pub fn preset(preset: Preset) -> Self {
        VectorizeOptions {
            preset,
            ..VectorizeOptions::default()
        }
    }

    /// The same options for a copy of the image at `scale` × full resolution (a preview on a
    /// pyramid level): lengths in pixels shrink with it, so the preview shows what the
    /// full-resolution export will give.
    pub fn scaled(&self, scale: f64) -> VectorizeOptions {
        let d = PresetDefaults::of(self.preset);
        VectorizeOptions {
            speckle_px: Some(self.speckle_px.unwrap_or(d.speckle_px) * scale),
            max_error_px: Some((self.max_error_px.unwrap_or(d.max_error_px) * scale).max(0.05)),
            ..self.clone()
        }
    }

    /// The keys of a chain's `[vectorize]` table (the serde names of the fields).
    pub const KEYS: [&'static str; 9] = [
        "preset",
        "mode",
        "colors",
        "speckle_px",
        "smoothness",
        "corner_threshold_deg",
        "max_error_px",
        "threshold_level",
        "max_kib_per_mpx",
    ];

    /// Checks the ranges; errors name the field (`vectorize.colors: …`).
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(|e| Error::Config {
            reason: format!("vectorize.{}: {}", e.field, e.reason),
            path: None,
        })
    }

    /// Checks the ranges: the first field out of range, and why. Callers name it as their
    /// users know it (a chain key, a command-line flag).
    pub fn check(&self) -> std::result::Result<(), InvalidOption> {
        let bad = |field: &'static str, reason: String| Err(InvalidOption { field, reason });
        if let Some(c) = self.colors
            && !(2..=256).contains(&c)
        {
            return bad("colors", format!("{c} is outside 2..=256"));
        }
        if let Some(s) = self.speckle_px
            && !(0.0..=256.0).contains(&s)
        {
            return bad("speckle_px", format!("{s} is outside 0..=256"));
        }
        if let Some(s) = self.smoothness
            && s > 10
        {
            return bad("smoothness", format!("{s} is outside 0..=10"));
        }
        if let Some(d) = self.corner_threshold_deg
            && !(0.0..=180.0).contains(&d)
        {
            return bad("corner_threshold_deg", format!("{d} is outside 0..=180"));
        }
        if let Some(e) = self.max_error_px
            && !(0.05..=16.0).contains(&e)
        {
            return bad("max_error_px", format!("{e} is outside 0.05..=16"));
        }
        if let Some(b) = self.max_kib_per_mpx
            && !(b >= 0.0 && b.is_finite())
        {
            return bad(
                "max_kib_per_mpx",
                format!("{b} is not a size (0 = no budget)"),
            );
        }
        Ok(())
    }

    /// The stages' configs for an image of `width` × `height`.
    pub fn stage_configs(&self, width: u32, height: u32) -> StageConfigs {
        let d = PresetDefaults::of(self.preset);
        let (mode, max_colors, delta_e, blends) =
            (d.mode, d.max_colors, d.delta_e, d.ignore_blends);
        let (smooth, corner, error) = (d.smoothness, d.corner_threshold_deg, d.max_error_px);
        let speckle_px = self.speckle_px.unwrap_or(d.speckle_px);
        let speckle_area_px = (speckle_px * speckle_px).round() as u64;
        let pixels = u64::from(width) * u64::from(height);
        StageConfigs {
            mode: self.mode.unwrap_or(mode),
            threshold_level: self.threshold_level.unwrap_or(128),
            quantize: quantize::QuantizeConfig {
                colors: self.colors,
                max_colors,
                max_delta_e: delta_e,
                // A colour needs a few speckles' worth of pixels (and 1 in 20 000) to count.
                min_area_px: (speckle_area_px * 4).max(pixels / 20_000).max(1),
                ignore_blends: blends,
                alpha_threshold: 128,
            },
            speckle_area_px,
            fit: fit::FitConfig {
                corner_threshold_rad: self.corner_threshold_deg.unwrap_or(corner).to_radians(),
                corner_scale_px: 3,
                smoothing_passes: self.smoothness.unwrap_or(smooth),
                max_error_px: self.max_error_px.unwrap_or(error),
            },
            // Coordinates are rounded to half a unit of the last decimal: whole pixels when
            // the error bound is a pixel or more, tenths on larger images, hundredths on small.
            decimals: if self.max_error_px.unwrap_or(error) >= 1.0 {
                0
            } else if width.max(height) >= 256 {
                1
            } else {
                2
            },
            recolor_colors: (self.preset == Preset::Photo && self.mode != Some(Mode::Binary))
                .then(|| self.colors.unwrap_or(64).max(max_colors)),
            max_bytes: self
                .max_kib_per_mpx
                .or((self.preset == Preset::Photo).then_some(280.0))
                .filter(|&b| b > 0.0)
                .map(|b| (b * 1024.0 * pixels as f64 / 1e6).max(4096.0) as usize),
        }
    }
}

/// What a run produced, besides the SVG.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VectorStats {
    /// `<path>` elements.
    pub paths: usize,
    /// Path segments (lines and curves).
    pub nodes: usize,
    /// Size of the SVG.
    pub svg_bytes: usize,
    /// Fill colours used (background included).
    pub colors: usize,
    /// Regions after the speckle filter.
    pub regions: usize,
    /// Wall time of the tracing, in milliseconds.
    pub time_ms: f64,
    /// Rendered back and compared, when asked for.
    pub fidelity: Option<Fidelity>,
}

/// An SVG and its figures.
#[derive(Clone, Debug)]
pub struct Vectorized {
    /// The document.
    pub svg: String,
    /// Its figures.
    pub stats: VectorStats,
}

fn check(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}

/// Traces straight-alpha RGBA pixels (row-major). `measure` renders the result back for
/// PSNR/SSIM (costs about as much as the tracing).
pub fn vectorize(
    pixels: &[[u8; 4]],
    width: u32,
    height: u32,
    options: &VectorizeOptions,
    measure: bool,
    cancel: &AtomicBool,
) -> Result<Vectorized> {
    vectorize_with_progress(pixels, width, height, options, measure, cancel, &|_| {})
}

/// [`vectorize`], calling `progress` with the share done (0..=1) as the stages advance.
pub fn vectorize_with_progress(
    pixels: &[[u8; 4]],
    width: u32,
    height: u32,
    options: &VectorizeOptions,
    measure: bool,
    cancel: &AtomicBool,
    progress: &(dyn Fn(f32) + Sync),
) -> Result<Vectorized> {
    puffin::profile_function!();
    options.validate()?;
    if pixels.len() != width as usize * height as usize || width == 0 || height == 0 {
        return Err(Error::Internal(format!(
            "{} pixels for a {width}x{height} image",
            pixels.len()
        )));
    }
    let started = Instant::now();
    let mut config = options.stage_configs(width, height);
    let mut tries = 0;
    let traced = loop {
        let traced = trace_once(pixels, width, height, &config, cancel, progress)?;
        tries += 1;
        match config.max_bytes {
            Some(max) if traced.svg.len() > max && tries < 8 => {
                // Coarser: bigger speckles, looser curves.
                config.speckle_area_px = (config.speckle_area_px * 3 / 2).max(4);
                config.fit.max_error_px *= 1.15;
            }
            _ => break traced,
        }
    };
    let time_ms = started.elapsed().as_secs_f64() * 1000.0;
    let fidelity = if measure {
        check(cancel)?;
        Some(metrics::fidelity(&traced.svg, pixels, width, height)?)
    } else {
        None
    };
    Ok(Vectorized {
        stats: VectorStats {
            paths: traced.written.paths,
            nodes: traced.written.nodes,
            svg_bytes: traced.svg.len(),
            colors: traced.colors,
            regions: traced.regions,
            time_ms,
            fidelity,
        },
        svg: traced.svg,
    })
}

struct Traced {
    svg: String,
    written: svg::Written,
    colors: usize,
    regions: usize,
}

fn trace_once(
    pixels: &[[u8; 4]],
    width: u32,
    height: u32,
    config: &StageConfigs,
    cancel: &AtomicBool,
    progress: &(dyn Fn(f32) + Sync),
) -> Result<Traced> {
    progress(0.0);
    let (w, h) = (width as usize, height as usize);
    let (palette, labels) = match config.mode {
        Mode::Color => quantize::quantize(pixels, &config.quantize),
        Mode::Binary => binary_labels(pixels, config.threshold_level),
    };
    check(cancel)?;
    let labels = if config.mode == Mode::Color && config.quantize.ignore_blends {
        quantize::relabel_blends(pixels, &labels, &palette, w, h)
    } else {
        labels
    };
    check(cancel)?;
    let lab: Vec<[f32; 3]> = palette
        .srgb
        .iter()
        .map(|c| quantize::oklab(c.map(f32::from)))
        .collect();
    let distance = |a: u16, b: u16| match (lab.get(usize::from(a)), lab.get(usize::from(b))) {
        (Some(x), Some(y)) => (0..3).map(|i| (x[i] - y[i]).powi(2)).sum(),
        _ => f32::INFINITY,
    };
    progress(0.2);
    let mut seg = segment::segment(&labels, w, h, config.speckle_area_px, distance);
    drop(labels);
    let palette = match config.recolor_colors {
        Some(k) => quantize::recolor_regions(pixels, &mut seg, k),
        None => palette,
    };
    check(cancel)?;
    progress(0.35);
    let tracing = trace::trace(&seg);
    check(cancel)?;
    progress(0.5);
    let fitted = std::sync::atomic::AtomicUsize::new(0);
    let chains = tracing.chains.len().max(1);
    let curves: Vec<fit::Curve> = {
        puffin::profile_scope!("fit");
        tracing
            .chains
            .par_iter()
            .map(|c| {
                if cancel.load(Ordering::Relaxed) {
                    return fit::Curve {
                        start: [0.0, 0.0],
                        segs: Vec::new(),
                    };
                }
                let offsets = edge_offsets(&c.points, c.closed, pixels, &seg, &palette.srgb);
                let curve = fit::fit_chain(&c.points, c.closed, Some(&offsets), &config.fit);
                let done = fitted.fetch_add(1, Ordering::Relaxed) + 1;
                if done.is_multiple_of(512) {
                    progress(0.5 + 0.45 * done as f32 / chains as f32);
                }
                curve
            })
            .collect()
    };
    check(cancel)?;
    let drawing = match config.mode {
        Mode::Color => layers::stacked(&seg, &tracing),
        Mode::Binary => layers::ink_only(&seg, &tracing, 0),
    };
    let (svg, written) = svg::write(
        w,
        h,
        &tracing,
        &curves,
        &drawing,
        &palette.srgb,
        config.decimals,
    );
    let mut colors: Vec<u16> = drawing.layers.iter().map(|l| l.label).collect();
    colors.extend(drawing.background);
    colors.sort_unstable();
    colors.dedup();
    progress(1.0);
    Ok(Traced {
        svg,
        written,
        colors: colors.len(),
        regions: seg.regions.len(),
    })
}

/// Where each crack's edge really lies, from anti-aliasing: for the crack between pixel P
/// (left of the chain, colour A) and Q (right, colour B), with `t` the share of B in a pixel's
/// colour (its position on the sRGB line from A to B), a straight edge at offset `e` along the
/// right-hand normal gives `t(P) = max(0, -e)` and `1 - t(Q) = max(0, e)`; so
/// `e = (1 - t(Q)) - t(P)`, limited to ±0.75 px. Sides outside the image or transparent give 0.
fn edge_offsets(
    points: &[(u32, u32)],
    closed: bool,
    pixels: &[[u8; 4]],
    seg: &segment::Segmentation,
    palette: &[[u8; 3]],
) -> Vec<f64> {
    let n = points.len();
    let cracks = if closed { n } else { n.saturating_sub(1) };
    let (w, h) = (seg.width as i64, seg.height as i64);
    let cell = |x: i64, y: i64| -> Option<(usize, [f64; 3])> {
        if x < 0 || y < 0 || x >= w || y >= h {
            return None;
        }
        let i = (y * w + x) as usize;
        let label = seg.regions[seg.region_of[i] as usize].label;
        let colour = palette.get(usize::from(label))?;
        if pixels[i][3] < 255 {
            return None;
        }
        Some((i, colour.map(f64::from)))
    };
    let share = |i: usize, a: [f64; 3], b: [f64; 3]| -> f64 {
        let p = pixels[i];
        let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let len2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
        if len2 < 1.0 {
            return 0.0;
        }
        let ap = [
            f64::from(p[0]) - a[0],
            f64::from(p[1]) - a[1],
            f64::from(p[2]) - a[2],
        ];
        ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / len2).clamp(0.0, 1.0)
    };
    (0..cracks)
        .map(|i| {
            let (x0, y0) = (i64::from(points[i].0), i64::from(points[i].1));
            let (x1, y1) = (
                i64::from(points[(i + 1) % n].0),
                i64::from(points[(i + 1) % n].1),
            );
            // Left and right cells of the unit crack from (x0, y0) to (x1, y1).
            let (left, right) = match (x1 - x0, y1 - y0) {
                (1, 0) => ((x0, y0 - 1), (x0, y0)),
                (-1, 0) => ((x1, y0), (x1, y0 - 1)),
                (0, 1) => ((x0, y0), (x0 - 1, y0)),
                _ => ((x0 - 1, y1), (x0, y1)),
            };
            match (cell(left.0, left.1), cell(right.0, right.1)) {
                (Some((p, a)), Some((q, b))) => {
                    let e = (1.0 - share(q, a, b)) - share(p, a, b);
                    e.clamp(-0.75, 0.75)
                }
                _ => 0.0,
            }
        })
        .collect()
}

/// Binary mode's labels: 0 = ink (luma on white below the threshold), 1 = paper; transparent
/// pixels are paper too.
fn binary_labels(pixels: &[[u8; 4]], threshold: u8) -> (quantize::Palette, Vec<u16>) {
    let labels = pixels
        .par_iter()
        .map(|p| {
            let a = f32::from(p[3]) / 255.0;
            let luma = 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
            let on_white = luma * a + 255.0 * (1.0 - a);
            u16::from(on_white >= f32::from(threshold))
        })
        .collect();
    (
        quantize::Palette {
            srgb: vec![[0, 0, 0], [255, 255, 255]],
            area_px: vec![0, 0],
        },
        labels,
    )
}

/// Decodes `input` (any supported format, EXIF orientation applied) to straight RGBA.
pub fn load_rgba(
    input: &Path,
    limits: &crate::io::decode::DecodeLimits,
) -> Result<(Vec<[u8; 4]>, u32, u32)> {
    let decoded = crate::io::decode::decode_file(input, limits)?;
    let mut image = decoded.image;
    image.apply_orientation(decoded.orientation);
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let pixels = bytemuck::cast_slice::<u8, [u8; 4]>(rgba.as_raw()).to_vec();
    Ok((pixels, w, h))
}
