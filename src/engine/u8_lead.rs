//! The leading stages of a plan that an opaque 8-bit image may run on 8-bit kernels: the
//! `f32 vs 8-bit working format` choice of the quality presets, where the 8-bit kernels are
//! much faster than converting every sample to f32 RGBA first.
//!
//! - a resize on `fast_image_resize` (4096² → 1024² Lanczos3 on 2 threads: 20 ms against 35
//!   ms on f32), when it has no crop ([`crate::ops::SpatialKernel::u8_resize`]);
//! - the exact Gaussian blur and the unsharp mask (`sharpen`) in fixed point
//!   ([`super::u8_filter`], [`crate::ops::SpatialKernel::u8_area`]), and a run of per-channel
//!   pointwise ops right before one of them as lookup tables ([`super::lut`]).
//!
//! Every preset but `ultra` allows them. They run only on whole full-resolution renders of
//! files and in-memory images (`Engine::render_source`, `render_file`; not regions, scaled or
//! 16-bit outputs), from the plan's first stage on (so not after an EXIF rotation), while the
//! image is 8-bit RGB in memory (`render_file` decodes such files whole rather than row by row
//! when they fit a quarter of the budget, so the pixels do not depend on the output format).
//! The first stage these kernels cannot run, and everything after it, renders as usual from
//! the 8-bit result. Each differs from the f32 path by rounding (a level or two;
//! `tests/ops_contract.rs` bounds it), so previews, which the GPU must match to 2·10⁻⁴, keep
//! the f32 path.

use std::time::{Duration, Instant};

use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage};

use super::lut::ChannelTables;
use super::plan::Plan;
use super::source::Source;
use super::u8_filter;
use crate::error::{Error, Result};
use crate::ops::{Kernel, PointKernel, U8Area, U8Filter, U8Resize};

/// Profile label of the 8-bit resize.
pub const RESIZE_LABEL: &str = "resize (8-bit)";

/// The next leading stage the 8-bit kernels may run.
enum Step<'p> {
    Resize(U8Resize),
    /// These leading per-channel pointwise kernels, followed by an 8-bit area op.
    Tables(Vec<&'p dyn PointKernel>),
    Area(&'p U8Area),
}

fn first_step(plan: &Plan) -> Option<Step<'_>> {
    match &plan.stages.first()?.kernel {
        Kernel::Geometry { kernel, .. } => kernel.u8_resize().map(Step::Resize),
        Kernel::Area(kernel) => kernel.u8_area().map(Step::Area),
        Kernel::Pointwise(_) => {
            let mut run = Vec::new();
            for stage in &plan.stages {
                match &stage.kernel {
                    Kernel::Pointwise(k) if k.per_channel() => run.push(k.as_ref()),
                    Kernel::Area(k) if k.u8_area().is_some() && !run.is_empty() => {
                        return Some(Step::Tables(run));
                    }
                    _ => return None,
                }
            }
            None
        }
        Kernel::Global(_) => None,
    }
}

/// Whether `plan` starts with a stage the 8-bit kernels may run (for an opaque 8-bit source).
pub fn leading(plan: &Plan) -> bool {
    first_step(plan).is_some()
}

/// The 8-bit result of the leading stages, the rest of the plan (reading it) and each
/// stage's profile label and time.
pub type Lead = (DynamicImage, Plan, Vec<(String, Duration)>);

/// If `plan` starts with stages the 8-bit kernels may run and `source` is 8-bit RGB in memory:
/// run them on `pool` while each result (and its scratch) fits in `spare_bytes`, and return
/// the last result, the rest of the plan and the times. Otherwise `None`, `plan` untouched.
pub fn run_leading(
    pool: &rayon::ThreadPool,
    source: &dyn Source,
    plan: &mut Plan,
    spare_bytes: u64,
) -> Result<Option<Lead>> {
    let mut current: Option<RgbImage> = None;
    let mut times = Vec::new();
    let mut tail: Option<Plan> = None;
    loop {
        let rest = tail.as_mut().unwrap_or(plan);
        let (samples, size) = match &current {
            Some(image) => (
                image.as_raw().as_slice(),
                super::geom::Size::new(image.width(), image.height()),
            ),
            None => match source.as_u8() {
                Some((samples, 3)) => (samples, source.size()),
                _ => break,
            },
        };
        let Some(step) = first_step(rest) else { break };
        let held = current.as_ref().map_or(0, |i| i.as_raw().len() as u64);
        let spare = spare_bytes.saturating_sub(held);
        let t = Instant::now();
        let (image, stages, label, choice) = match step {
            Step::Resize(spec) => {
                let out = spec.output;
                // The result, and the intermediate of the first pass (whichever axis goes
                // first).
                let first_pass = (u64::from(size.width) * u64::from(out.height))
                    .max(u64::from(out.width) * u64::from(size.height));
                if (out.pixels() + first_pass) * 3 > spare || out.is_empty() {
                    break;
                }
                puffin::profile_scope!("op", RESIZE_LABEL);
                let image = resize(pool, samples, size, spec)?;
                let choice = format!("resize on 8-bit samples ({:?})", spec.filter);
                (image, 1, RESIZE_LABEL.to_owned(), choice)
            }
            Step::Tables(kernels) => {
                if samples.len() as u64 > spare {
                    break;
                }
                let n = kernels.len();
                let labels: Vec<&str> = rest.stages[..n].iter().map(|s| s.label).collect();
                let label = format!("{} (8-bit tables)", labels.join(" + "));
                puffin::profile_scope!("op", &label);
                let tables = ChannelTables::new(&kernels);
                let mut out = samples.to_vec();
                pool.install(|| {
                    use rayon::prelude::*;
                    out.par_chunks_mut(3 * 16_384)
                        .for_each(|chunk| tables.map_rgb_in_place(chunk));
                });
                let image = RgbImage::from_raw(size.width, size.height, out)
                    .ok_or_else(|| Error::Internal("8-bit table buffer size".to_owned()))?;
                let choice = format!("{} as 8-bit tables", labels.join(", "));
                (image, n, label, choice)
            }
            Step::Area(spec) => {
                let scratch = u8_filter::scratch_bytes(
                    size.width,
                    spec.weights.len(),
                    pool.current_num_threads(),
                );
                if samples.len() as u64 + scratch > spare {
                    break;
                }
                let label = format!("{} (8-bit)", rest.stages[0].label);
                puffin::profile_scope!("op", &label);
                let (w, h) = (size.width as usize, size.height as usize);
                let out = pool
                    .install(|| u8_filter::filter_rgb8(samples, w, h, &spec.weights, spec.mode));
                let image = RgbImage::from_raw(size.width, size.height, out)
                    .ok_or_else(|| Error::Internal("8-bit filter buffer size".to_owned()))?;
                let choice = format!("{} on 8-bit samples", rest.stages[0].label);
                (image, 1, label, choice)
            }
        };
        let mut next = rest.split_off(stages);
        next.choices.push(choice);
        times.push((label, t.elapsed()));
        current = Some(image);
        tail = Some(next);
    }
    Ok(match (current, tail) {
        (Some(image), Some(tail)) => Some((DynamicImage::ImageRgb8(image), tail, times)),
        _ => None,
    })
}

fn resize(
    pool: &rayon::ThreadPool,
    samples: &[u8],
    size: super::geom::Size,
    spec: U8Resize,
) -> Result<RgbImage> {
    let out = spec.output;
    let fir_err = |e: &dyn std::fmt::Display| Error::Internal(format!("8-bit resize: {e}"));
    let src = ImageRef::new(size.width, size.height, samples, PixelType::U8x3)
        .map_err(|e| fir_err(&e))?;
    let mut dst = FirImage::new(out.width, out.height, PixelType::U8x3);
    let filter = match spec.filter {
        U8Filter::Lanczos3 => FilterType::Lanczos3,
        U8Filter::CatmullRom => FilterType::CatmullRom,
        U8Filter::Bilinear => FilterType::Bilinear,
    };
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    pool.install(|| Resizer::new().resize(&src, &mut dst, &options))
        .map_err(|e| fir_err(&e))?;
    RgbImage::from_raw(out.width, out.height, dst.into_vec())
        .ok_or_else(|| Error::Internal("8-bit resize buffer size".to_owned()))
}
