//! `resize`: scale to fit inside, fill (cover and centre-crop) or exactly match a target size,
//! with Lanczos3, bicubic (Catmull-Rom), bilinear or nearest resampling. Colour is premultiplied
//! by alpha while resampling, so transparent pixels do not bleed.
//!
//! Why not `fast_image_resize` here: the renderer needs every output tile of a resize to be
//! bit-identical to the same pixels of a whole-image resize. That requires the filter weights of
//! each output column and row to be computed once, from absolute image coordinates, and reused
//! by every tile; fast_image_resize recomputes weights per call from a (fractional) crop, whose
//! floating-point offsets differ per tile. The weights here are computed in f64 once per build;
//! the passes below are plain separable loops over RGBA f32.

use std::sync::{Arc, Mutex};

use super::gpu::{GpuKernel, PassExtent, uniform_bytes};
use super::{
    BuildCtx, BuildError, Kernel, OpDef, SpatialKernel, U8Filter, U8Resize, geometry_footprint,
    unit,
};
use crate::chain::OutputLimits;
use crate::engine::geom::{Rect, Size};
use crate::engine::tile::{CHANNELS, Tile};
use crate::ops::gaussian_blur::{premultiply, unpremultiply};
use crate::params::{ParamKind, ParamSpec, Params, Unit, px_param};

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "resize",
    version: 1,
    label: "Resize",
    category: "Geometry",
    doc: "Scale to fit within width×height, fill it (cover, then centre-crop) or match it exactly; 0 keeps the aspect ratio",
    params: PARAMS,
    footprint: geometry_footprint,
    validate,
    build,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        key: "width",
        label: "Width",
        doc: "Target width; 0 follows the aspect ratio",
        kind: ParamKind::Int {
            min: 0,
            max: 65_535,
            default: 1024,
            unit: Unit::Px,
            spatial: true,
        },
    },
    px_param(
        "height",
        "Height",
        "Target height; 0 follows the aspect ratio",
    ),
    ParamSpec {
        key: "mode",
        label: "Mode",
        doc: "fit: inside the box; fill: cover the box and crop the overflow; exact: stretch",
        kind: ParamKind::Choice {
            choices: &["fit", "fill", "exact"],
            default: "fit",
        },
    },
    ParamSpec {
        key: "filter",
        label: "Filter",
        doc: "Resampling filter, sharpest and slowest first; auto follows the quality preset (Lanczos3 up to balanced, bicubic when fast, bilinear for drafts)",
        kind: ParamKind::Choice {
            choices: &["auto", "lanczos3", "bicubic", "bilinear", "nearest"],
            default: "auto",
        },
    },
    ParamSpec {
        key: "upscale",
        label: "Allow enlarging",
        doc: "When off, images smaller than the target are left at their size",
        kind: ParamKind::Bool { default: true },
    },
];

/// Resampling filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    Lanczos3,
    Bicubic,
    Bilinear,
    Nearest,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Lanczos3 => 3.0,
            Filter::Bicubic => 2.0,
            Filter::Bilinear => 1.0,
            Filter::Nearest => 0.5,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Lanczos3 => {
                if x < 1e-9 {
                    1.0
                } else if x < 3.0 {
                    let px = std::f64::consts::PI * x;
                    3.0 * px.sin() * (px / 3.0).sin() / (px * px)
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                // Catmull-Rom (a = -0.5).
                if x < 1.0 {
                    1.5 * x * x * x - 2.5 * x * x + 1.0
                } else if x < 2.0 {
                    -0.5 * x * x * x + 2.5 * x * x - 4.0 * x + 2.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Nearest => 1.0,
        }
    }
}

/// The filter taps of every output column (or row): `start[i]..start[i]+len[i]` in the input,
/// weights at `weights[i*stride..]`.
#[derive(Debug)]
struct Axis {
    start: Vec<u32>,
    len: Vec<u32>,
    stride: usize,
    weights: Vec<f32>,
}

impl Axis {
    /// Taps for `out_len` outputs starting at `offset` in a virtual axis of `virtual_len` samples
    /// spanning the `in_len` input samples.
    fn new(filter: Filter, in_len: u32, virtual_len: u32, offset: u32, out_len: u32) -> Axis {
        let scale = f64::from(in_len) / f64::from(virtual_len);
        let filter_scale = scale.max(1.0);
        let support = filter.support() * filter_scale;
        let stride = (2.0 * support).ceil() as usize + 2;
        let mut axis = Axis {
            start: Vec::with_capacity(out_len as usize),
            len: Vec::with_capacity(out_len as usize),
            stride,
            weights: vec![0.0; stride * out_len as usize],
        };
        for i in 0..out_len {
            let center = (f64::from(i + offset) + 0.5) * scale;
            if filter == Filter::Nearest {
                let src = (center.floor() as u32).min(in_len - 1);
                axis.start.push(src);
                axis.len.push(1);
                axis.weights[i as usize * stride] = 1.0;
                continue;
            }
            let lo = ((center - support).floor().max(0.0) as u32).min(in_len - 1);
            let hi = ((center + support).ceil() as u32).clamp(lo + 1, in_len);
            let raw: Vec<f64> = (lo..hi)
                .map(|s| filter.weight((f64::from(s) + 0.5 - center) / filter_scale))
                .collect();
            let sum: f64 = raw.iter().sum();
            let row = &mut axis.weights[i as usize * stride..];
            for (k, w) in raw.iter().enumerate() {
                row[k] = if sum.abs() > 1e-12 {
                    (w / sum) as f32
                } else {
                    0.0
                };
            }
            axis.start.push(lo);
            axis.len.push(hi - lo);
        }
        axis
    }

    /// The taps of [`Axis::new`], shared with earlier resizes of the same geometry: a batch of
    /// same-sized photos (and the two plans a shrink-on-load render builds) computes them once
    /// (Lanczos weights cost two sines per tap: about 1% of a small image's render).
    fn shared(
        filter: Filter,
        in_len: u32,
        virtual_len: u32,
        offset: u32,
        out_len: u32,
    ) -> Arc<Axis> {
        type Entry = ((Filter, u32, u32, u32, u32), Arc<Axis>);
        /// Most recently used first; a few geometries cover a batch's both axes.
        static RECENT: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
        const KEEP: usize = 8;
        let key = (filter, in_len, virtual_len, offset, out_len);
        let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = recent.iter().position(|(k, _)| *k == key) {
            let entry = recent.remove(i);
            let axis = entry.1.clone();
            recent.insert(0, entry);
            return axis;
        }
        drop(recent);
        let axis = Arc::new(Axis::new(filter, in_len, virtual_len, offset, out_len));
        // Keep small tables only (a photo's are tens of KiB), so the memory stays negligible.
        if axis.weights.len() > (256 << 10) {
            return axis;
        }
        let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
        recent.insert(0, (key, axis.clone()));
        recent.truncate(KEEP);
        axis
    }

    /// Whether every output sample is its own input sample (a resize to the same size
    /// without a crop: Lanczos, Catmull-Rom and the triangle are 1 at 0 and 0 at the other
    /// integers, up to rounding far below an 8-bit or 16-bit level).
    fn is_identity(&self) -> bool {
        (0..self.len.len()).all(|i| {
            let (start, weights) = self.taps(i);
            weights.iter().enumerate().all(|(k, &w)| {
                let target = if start + k == i { 1.0 } else { 0.0 };
                (w - target).abs() <= 1e-6
            })
        })
    }

    /// The input range needed for outputs `from..to`.
    fn span(&self, from: u32, to: u32) -> (u32, u32) {
        let lo = (from..to)
            .map(|i| self.start[i as usize])
            .min()
            .unwrap_or(0);
        let hi = (from..to)
            .map(|i| self.start[i as usize] + self.len[i as usize])
            .max()
            .unwrap_or(0);
        (lo, hi)
    }

    /// The taps as GPU words: per output index `start, len, weights[stride]` (floats as bits).
    fn push_words(&self, words: &mut Vec<u32>) {
        for (i, (&start, &len)) in self.start.iter().zip(&self.len).enumerate() {
            words.push(start);
            words.push(len);
            words.extend(
                self.weights[i * self.stride..(i + 1) * self.stride]
                    .iter()
                    .map(|w| w.to_bits()),
            );
        }
    }

    fn taps(&self, i: usize) -> (usize, &[f32]) {
        let len = self.len[i] as usize;
        (
            self.start[i] as usize,
            &self.weights[i * self.stride..i * self.stride + len],
        )
    }
}

struct Resize {
    horizontal: Arc<Axis>,
    vertical: Arc<Axis>,
    /// The same resize on 8-bit kernels, where the preset allows it.
    u8: Option<U8Resize>,
}

/// `acc += w · line`, vectorised where the CPU allows.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn add_scaled(acc: &mut [f32], line: &[f32], w: f32) {
    for (o, v) in acc.iter_mut().zip(line) {
        *o += w * v;
    }
}

/// One row of the horizontal pass: output pixel `ox` of `acc` (at `out_x + ox`) is the weighted
/// sum of its taps in `src_row` (which starts at `src_x`). Compiled for AVX2+FMA where the CPU
/// has it: a pixel's four channels are one vector, so each tap is one multiply-add (measured:
/// the scalar build was a third of a batch's time).
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn horizontal_row(src_row: &[f32], acc: &mut [f32], axis: &Axis, out_x: u32, src_x: u32) {
    for (ox, px_out) in acc.chunks_exact_mut(CHANNELS).enumerate() {
        let (start, weights) = axis.taps(out_x as usize + ox);
        let base = (start - src_x as usize) * CHANNELS;
        let taps = &src_row[base..base + weights.len() * CHANNELS];
        let mut sum = [0f32; 4];
        for (w, px) in weights.iter().zip(taps.chunks_exact(CHANNELS)) {
            sum[0] += w * px[0];
            sum[1] += w * px[1];
            sum[2] += w * px[2];
            sum[3] += w * px[3];
        }
        px_out.copy_from_slice(&sum);
    }
}

/// The output size and the virtual (pre-crop) size for these params and input.
fn plan_size(p: &Params, input: Size) -> Result<(Size, Size), BuildError> {
    let (w, h) = (p.int("width") as f64, p.int("height") as f64);
    let (iw, ih) = (f64::from(input.width), f64::from(input.height));
    if w == 0.0 && h == 0.0 {
        return Err(BuildError::field("width", "set width, height or both"));
    }
    let upscale = p.bool("upscale");
    let limit = |s: f64| if upscale { s } else { s.min(1.0) };
    let round = |v: f64| (v.round().max(1.0)).min(f64::from(u32::MAX)) as u32;
    let mode = p.choice("mode");
    let (sx, sy) = match mode {
        "exact" => {
            let sx = if w > 0.0 { w / iw } else { h / ih };
            let sy = if h > 0.0 { h / ih } else { w / iw };
            (limit(sx), limit(sy))
        }
        _ => {
            let fx = if w > 0.0 { w / iw } else { f64::INFINITY };
            let fy = if h > 0.0 { h / ih } else { f64::INFINITY };
            let s = if mode == "fill" && w > 0.0 && h > 0.0 {
                fx.max(fy)
            } else {
                fx.min(fy)
            };
            (limit(s), limit(s))
        }
    };
    let virtual_size = Size::new(round(iw * sx), round(ih * sy));
    let output = if mode == "fill" && w > 0.0 && h > 0.0 {
        Size::new(
            virtual_size.width.min(w as u32),
            virtual_size.height.min(h as u32),
        )
    } else {
        virtual_size
    };
    Ok((output, virtual_size))
}

fn validate(p: &Params, limits: OutputLimits) -> Result<(), BuildError> {
    let (w, h) = (p.int("width") as u64, p.int("height") as u64);
    if w == 0 && h == 0 {
        return Err(BuildError::field("width", "set width, height or both"));
    }
    if w > 0 && h > 0 && w * h > limits.max_pixels {
        return Err(BuildError::field(
            "width",
            format!(
                "{w}x{h} is {}; at most {} allowed",
                crate::error::human_pixels(w * h),
                crate::error::human_pixels(limits.max_pixels)
            ),
        ));
    }
    if w > u64::from(limits.max_side_px) || h > u64::from(limits.max_side_px) {
        return Err(BuildError::field(
            if w > h { "width" } else { "height" },
            format!("the longest side allowed is {} px", limits.max_side_px),
        ));
    }
    Ok(())
}

fn build(p: &Params, ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    let p = p.scaled(PARAMS, ctx.scale);
    let (output, virtual_size) = plan_size(&p, ctx.input)?;
    // Check the virtual size too: weights are allocated for the output only, but a fill
    // rescale must not overflow.
    ctx.check_output(
        output,
        if p.int("width") > 0 {
            "width"
        } else {
            "height"
        },
    )?;
    let filter = match p.choice("filter") {
        "auto" => ctx.resize_filter(
            virtual_size.width <= ctx.input.width
                && virtual_size.height <= ctx.input.height
                && virtual_size != ctx.input,
        ),
        chosen => chosen,
    };
    let filter = match filter {
        "bicubic" => Filter::Bicubic,
        "bilinear" => Filter::Bilinear,
        "nearest" => Filter::Nearest,
        _ => Filter::Lanczos3,
    };
    let off_x = (virtual_size.width - output.width) / 2;
    let off_y = (virtual_size.height - output.height) / 2;
    // Below `ultra`, an uncropped resize may run on 8-bit samples (engine::u8_lead).
    let u8_filter = match filter {
        Filter::Lanczos3 => Some(U8Filter::Lanczos3),
        Filter::Bicubic => Some(U8Filter::CatmullRom),
        Filter::Bilinear => Some(U8Filter::Bilinear),
        Filter::Nearest => None,
    };
    let u8 = u8_filter
        .filter(|_| {
            ctx.quality.eight_bit_kernels() && virtual_size == output && output != ctx.input
        })
        .map(|filter| U8Resize { filter, output });
    Ok(Kernel::Geometry {
        output,
        kernel: Box::new(Resize {
            horizontal: Axis::shared(
                filter,
                ctx.input.width,
                virtual_size.width,
                off_x,
                output.width,
            ),
            vertical: Axis::shared(
                filter,
                ctx.input.height,
                virtual_size.height,
                off_y,
                output.height,
            ),
            u8,
        }),
    })
}

/// Mirrors `Params` in `shaders/resize.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GpuParams {
    /// Word offset of the horizontal taps and words per output column.
    h_offset: u32,
    h_record: u32,
    /// Word offset of the vertical taps and words per output row.
    v_offset: u32,
    v_record: u32,
}

impl SpatialKernel for Resize {
    fn grey(&self) -> super::Grey {
        super::Grey::Keeps
    }

    /// The same taps as the CPU, uploaded as tables: a horizontal pass over the output's
    /// columns and the input's rows, then a vertical pass.
    fn gpu(&self) -> GpuKernel {
        let mut data = Vec::new();
        self.horizontal.push_words(&mut data);
        let v_offset = data.len() as u32;
        self.vertical.push_words(&mut data);
        let params = uniform_bytes(&GpuParams {
            h_offset: 0,
            h_record: self.horizontal.stride as u32 + 2,
            v_offset,
            v_record: self.vertical.stride as u32 + 2,
        });
        GpuKernel::two_pass(
            "resize",
            "horizontal",
            PassExtent::OutputColumnsInputRows,
            params,
            data,
        )
    }

    fn input_rect(&self, out: Rect) -> Rect {
        if out.is_empty() {
            return Rect::EMPTY;
        }
        let (x0, x1) = self.horizontal.span(out.x, out.right());
        let (y0, y1) = self.vertical.span(out.y, out.bottom());
        Rect::from_bounds(x0, y0, x1, y1)
    }

    fn run(&self, src: &Tile, dst: &mut Tile) {
        let out = dst.rect;
        if out.is_empty() {
            return;
        }
        let s = src.rect;
        // Colour is filtered premultiplied by alpha, so transparent pixels do not bleed their
        // colour; an opaque source (the usual photo) is its own premultiplied form (x · 1.0 = x
        // exactly), so it is not copied. The division by the filtered alpha stays, so results
        // match the GPU's (which premultiplies every pixel) bit for bit.
        let opaque = src.data.chunks_exact(CHANNELS).all(|px| px[3] == 1.0);
        let premultiplied;
        let pre = if opaque {
            src
        } else {
            let mut copy = src.clone();
            premultiply(&mut copy.data);
            premultiplied = copy;
            &premultiplied
        };

        // Horizontal: every source row, output columns only.
        let out_stride = out.width as usize * CHANNELS;
        // Every value is written by `horizontal_row`.
        let mut rows = Tile::scratch(Rect::new(out.x, s.y, out.width, s.height));
        let horizontal = &mut rows.data;
        for (row_y, acc_row) in horizontal.chunks_exact_mut(out_stride).enumerate() {
            horizontal_row(pre.row(row_y), acc_row, &self.horizontal, out.x, s.x);
        }

        // Vertical: each output row from its source rows.
        for oy in 0..out.height as usize {
            let (start, weights) = self.vertical.taps(out.y as usize + oy);
            let acc = dst.row_mut(oy);
            // `dst` is not zeroed (see `writes_every_value`): every row is cleared here.
            acc.fill(0.0);
            for (k, w) in weights.iter().enumerate() {
                let r = start + k - s.y as usize;
                add_scaled(acc, &horizontal[r * out_stride..(r + 1) * out_stride], *w);
            }
            for px in acc.chunks_exact_mut(CHANNELS) {
                px[3] = unit(px[3]);
            }
        }
        unpremultiply(&mut dst.data);
        for v in &mut dst.data {
            *v = unit(*v);
        }
    }

    fn writes_every_value(&self) -> bool {
        true
    }

    fn is_identity(&self) -> bool {
        self.horizontal.is_identity() && self.vertical.is_identity()
    }

    fn u8_resize(&self) -> Option<U8Resize> {
        self.u8
    }

    fn scratch_bytes(&self, out: Rect) -> u64 {
        let src = self.input_rect(out);
        src.pixels() * 16 + u64::from(out.width) * u64::from(src.height) * 16
    }
}

#[cfg(test)]
mod tests {
    use super::{Filter, plan_size};
    use crate::chain::raw::RawValue;
    use crate::engine::geom::{Rect, Size};
    use crate::engine::tile::Tile;
    use crate::ops::testutil::{params, pattern, run_whole};

    fn p(pairs: &[(&str, RawValue)]) -> crate::params::Params {
        params(&super::DEF, pairs)
    }

    #[test]
    fn sizes_for_each_mode() {
        let input = Size::new(4000, 3000);
        let box_ = [
            ("width", RawValue::Int(800)),
            ("height", RawValue::Int(800)),
        ];
        assert_eq!(plan_size(&p(&box_), input).unwrap().0, Size::new(800, 600));
        let mut fill = box_.to_vec();
        fill.push(("mode", RawValue::String("fill".into())));
        assert_eq!(
            plan_size(&p(&fill), input).unwrap(),
            (Size::new(800, 800), Size::new(1067, 800))
        );
        let mut exact = box_.to_vec();
        exact.push(("mode", RawValue::String("exact".into())));
        assert_eq!(plan_size(&p(&exact), input).unwrap().0, Size::new(800, 800));
        let only_w = [("width", RawValue::Int(1000))];
        assert_eq!(
            plan_size(&p(&only_w), input).unwrap().0,
            Size::new(1000, 750)
        );
        let no_up = [
            ("width", RawValue::Int(8000)),
            ("upscale", RawValue::Bool(false)),
        ];
        assert_eq!(plan_size(&p(&no_up), input).unwrap().0, input);
        let neither = [("width", RawValue::Int(0))];
        assert_eq!(
            plan_size(&p(&neither), input).unwrap_err().field,
            Some("width")
        );
    }

    #[test]
    fn filters_are_normalised_interpolators() {
        for f in [Filter::Lanczos3, Filter::Bicubic, Filter::Bilinear] {
            assert!((f.weight(0.0) - 1.0).abs() < 1e-12);
            assert!(f.weight(1.0).abs() < 1e-12, "{f:?}");
        }
    }

    /// Slow reference: direct 2-D evaluation of the same separable filter, premultiplied.
    fn reference(img: &Tile, out: Size, filter: Filter) -> Vec<f32> {
        let (iw, ih) = (img.rect.width, img.rect.height);
        let sx = f64::from(iw) / f64::from(out.width);
        let sy = f64::from(ih) / f64::from(out.height);
        let mut res = vec![0f32; out.pixels() as usize * 4];
        for oy in 0..out.height {
            for ox in 0..out.width {
                let (cx, cy) = ((f64::from(ox) + 0.5) * sx, (f64::from(oy) + 0.5) * sy);
                let (fsx, fsy) = (sx.max(1.0), sy.max(1.0));
                let mut acc = [0f64; 4];
                let mut wsum = 0f64;
                for y in 0..ih {
                    let wy = filter.weight((f64::from(y) + 0.5 - cy) / fsy);
                    if (f64::from(y) + 0.5 - cy).abs() >= filter.support() * fsy {
                        continue;
                    }
                    for x in 0..iw {
                        if (f64::from(x) + 0.5 - cx).abs() >= filter.support() * fsx {
                            continue;
                        }
                        let w = wy * filter.weight((f64::from(x) + 0.5 - cx) / fsx);
                        let px = img.clamped(i64::from(x), i64::from(y));
                        for c in 0..3 {
                            acc[c] += w * f64::from(px[c] * px[3]);
                        }
                        acc[3] += w * f64::from(px[3]);
                        wsum += w;
                    }
                }
                let a = (acc[3] / wsum).clamp(0.0, 1.0);
                let i = ((oy * out.width + ox) * 4) as usize;
                for c in 0..3 {
                    res[i + c] = if a > 0.0 {
                        ((acc[c] / wsum) / a).clamp(0.0, 1.0) as f32
                    } else {
                        0.0
                    };
                }
                res[i + 3] = a as f32;
            }
        }
        res
    }

    #[test]
    fn a_resize_to_the_same_size_changes_nothing_and_is_left_out_of_the_plan() {
        use crate::engine::plan::Plan;
        let img = pattern(23, 17);
        let fit = |width: i64, upscale: bool, filter: &str| {
            p(&[
                ("width", RawValue::Int(width)),
                ("height", RawValue::Int(100)),
                ("mode", RawValue::String("fit".into())),
                ("upscale", RawValue::Bool(upscale)),
                ("filter", RawValue::String(filter.into())),
            ])
        };
        for filter in ["lanczos3", "bicubic", "bilinear", "nearest"] {
            // The kernel the plan leaves out gives back its input.
            let same = fit(80, false, filter);
            let out = run_whole(&super::DEF, &same, &img);
            assert_eq!(out.rect, img.rect);
            for (a, b) in out.data.iter().zip(&img.data) {
                assert!((a - b).abs() < 1e-6, "{filter}: {a} vs {b}");
            }
            let plan = |params: crate::params::Params| {
                let chain = crate::chain::Chain {
                    name: None,
                    vectorize: None,
                    ops: vec![crate::chain::ChainOp {
                        def: &super::DEF,
                        params,
                        enabled: true,
                    }],
                };
                Plan::new(
                    &chain,
                    Size::new(23, 17),
                    crate::io::decode::Orientation::NoTransforms,
                    1.0,
                    Default::default(),
                    crate::quality::QualityPreset::High,
                )
                .unwrap()
            };
            assert!(plan(same).stages.is_empty(), "{filter}");
            // One pixel more is a resize.
            assert_eq!(plan(fit(24, true, filter)).stages.len(), 1, "{filter}");
        }
    }

    #[test]
    fn matches_the_slow_reference_down_and_up() {
        let img = pattern(23, 17);
        for (w, h) in [(7u32, 5u32), (41, 30)] {
            for (name, f) in [
                ("lanczos3", Filter::Lanczos3),
                ("bilinear", Filter::Bilinear),
            ] {
                let params = p(&[
                    ("width", RawValue::Int(i64::from(w))),
                    ("height", RawValue::Int(i64::from(h))),
                    ("mode", RawValue::String("exact".into())),
                    ("filter", RawValue::String(name.into())),
                ]);
                let out = run_whole(&super::DEF, &params, &img);
                let expected = reference(&img, Size::new(w, h), f);
                for (a, b) in out.data.iter().zip(&expected) {
                    assert!((a - b).abs() < 2e-4, "{name} {w}x{h}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn transparent_neighbours_do_not_bleed() {
        let mut img = Tile::new(Rect::new(0, 0, 8, 8));
        for (i, px) in img.data.chunks_exact_mut(4).enumerate() {
            if i % 8 < 4 {
                px.copy_from_slice(&[0.0, 1.0, 0.0, 1.0]);
            }
        }
        let params = p(&[("width", RawValue::Int(4))]);
        let out = run_whole(&super::DEF, &params, &img);
        for px in out.data.chunks_exact(4).filter(|px| px[3] > 0.01) {
            assert!((px[1] - 1.0).abs() < 1e-4 && px[0] < 1e-4, "{px:?}");
        }
    }
}
