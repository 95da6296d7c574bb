//! The leading stages of a plan that an opaque 8-bit image may run on 8-bit kernels: the
//! `f32 vs 8-bit working format` choice of the quality presets, where the 8-bit kernels are
//! much faster than converting every sample to f32 RGBA first.
//!
//! - a resize on `fast_image_resize` (4096² → 1024² Lanczos3 on 2 threads: 20 ms against 35
//!   ms on f32), when it has no crop ([`crate::ops::SpatialKernel::u8_resize`]);
//! - the Gaussian blur and the unsharp mask (`sharpen`), exact with f32 sums
//!   ([`super::u8_filter`]) or as a box cascade with integer sums ([`super::u8_box`]), see
//!   [`crate::ops::SpatialKernel::u8_area`]; and a run of per-channel
//!   pointwise ops right before an 8-bit step, or ending the plan, as lookup tables
//!   ([`super::lut`]);
//! - greyscale conversion and Sobel edges to one channel ([`super::u8_grey`]), after which
//!   the steps above run on that one channel;
//! - crops, flips and quarter turns, the ops' and the EXIF orientation's, as pixel copies
//!   ([`crate::ops::remap::Remap::remap_u8`]), so a phone photo's turn does not send the rest
//!   of its chain to the f32 path.
//!
//! Every preset but `ultra` allows them; tables and pixel copies, whose bytes are the f32
//! path's, run at `ultra` too. They run only on whole full-resolution renders of
//! files and in-memory images (`Engine::render_source`, `render_file`; not regions, scaled or
//! 16-bit outputs), from the plan's first stage on (the EXIF turn included), while the
//! image is 8-bit RGB or grey in memory (`render_file` decodes such files whole rather than
//! row by row when they fit a quarter of the budget, so the pixels do not depend on the output
//! format). The first stage these kernels cannot run, and everything after it, renders as
//! usual from the 8-bit result (a grey one reads as R = G = B). Each differs from the f32 path
//! by rounding (a level or two; `tests/ops_contract.rs` bounds it), so previews, which the GPU
//! must match to 2·10⁻⁴, keep the f32 path.

use std::time::{Duration, Instant};

use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, GrayImage, RgbImage};

use super::content::Choice;
use super::geom::Size;
use super::lut::ChannelTables;
use super::plan::Plan;
use super::source::Source;
use super::{u8_box, u8_filter, u8_grey};
use crate::error::{Error, Result};
use crate::ops::remap::Remap;
use crate::ops::{GreyMix, Kernel, PointKernel, U8Area, U8Filter, U8Resize};

/// Profile label of the 8-bit resize.
pub const RESIZE_LABEL: &str = "resize (8-bit)";

/// The next leading stage the 8-bit kernels may run.
enum Step<'p> {
    Resize(U8Resize),
    /// A crop, flip or turn (an op's or the EXIF orientation's), to this size.
    Remap(&'p Remap, Size),
    /// These leading per-channel pointwise kernels, followed by another 8-bit step or nothing.
    Tables(Vec<&'p dyn PointKernel>),
    Area(&'p U8Area),
    /// To one channel (on one channel already: the identity).
    Grey(GreyMix),
    /// Sobel magnitude (of the Rec. 709 luma, on RGB), to one channel.
    Sobel,
}

/// The first stage of `plan` the 8-bit kernels may run on `channels` (3: RGB, 1: grey)
/// samples per pixel.
fn first_step(plan: &Plan, channels: usize) -> Option<Step<'_>> {
    match &plan.stages.first()?.kernel {
        Kernel::Geometry { kernel, output } => (kernel.u8_resize().map(Step::Resize))
            .or_else(|| kernel.u8_remap().map(|remap| Step::Remap(remap, *output))),
        Kernel::Area(kernel) if kernel.u8_sobel() => Some(Step::Sobel),
        Kernel::Area(kernel) => kernel.u8_area().map(Step::Area),
        Kernel::Pointwise(kernel) if kernel.u8_grey().is_some() => kernel.u8_grey().map(Step::Grey),
        // Per-channel tables may make grey samples colour: RGB only.
        Kernel::Pointwise(_) if channels == 3 => {
            let mut run = Vec::new();
            for stage in &plan.stages {
                match &stage.kernel {
                    Kernel::Pointwise(k) if k.u8_grey().is_some() && !run.is_empty() => {
                        return Some(Step::Tables(run));
                    }
                    Kernel::Pointwise(k) if k.per_channel() => run.push(k.as_ref()),
                    Kernel::Area(k)
                        if (k.u8_area().is_some() || k.u8_sobel()) && !run.is_empty() =>
                    {
                        return Some(Step::Tables(run));
                    }
                    _ => return None,
                }
            }
            // The run is the rest of the plan: it ends the 8-bit stages (RGB out).
            Some(Step::Tables(run))
        }
        Kernel::Pointwise(_) | Kernel::Global(_) => None,
    }
}

/// Whether `plan` starts with a stage the 8-bit kernels may run (for an opaque 8-bit RGB or
/// grey source).
pub fn leading(plan: &Plan) -> bool {
    first_step(plan, 3).is_some() || first_step(plan, 1).is_some()
}

/// The 8-bit result of the leading stages (RGB or grey), the rest of the plan (reading it)
/// and each stage's profile label and time.
pub type Lead = (DynamicImage, Plan, Vec<(String, Duration)>);

/// If `plan` starts with stages the 8-bit kernels may run and `source` is 8-bit RGB or grey
/// in memory: run them on `pool` while each result (and its scratch) fits in `spare_bytes`,
/// and return the last result, the rest of the plan and the times. Otherwise `None`, `plan`
/// untouched.
pub fn run_leading(
    pool: &rayon::ThreadPool,
    source: &dyn Source,
    plan: &mut Plan,
    spare_bytes: u64,
) -> Result<Option<Lead>> {
    let mut current: Option<DynamicImage> = None;
    let mut times = Vec::new();
    let mut tail: Option<Plan> = None;
    loop {
        let rest = tail.as_mut().unwrap_or(plan);
        let input: &dyn Source = match &current {
            Some(image) => image,
            None => source,
        };
        let size = input.size();
        let (samples, channels) = match input.as_u8() {
            Some((samples, channels @ (1 | 3))) => (samples, channels),
            _ => break,
        };
        let Some(step) = first_step(rest, channels) else {
            break;
        };
        let held = current.as_ref().map_or(0, |i| i.as_bytes().len() as u64);
        let spare = spare_bytes.saturating_sub(held);
        let (w, h) = (size.width as usize, size.height as usize);
        let pixels = size.pixels();
        let label = |suffix: &str| format!("{} ({suffix})", rest.stages[0].label);
        let t = Instant::now();
        let (image, stages, label, choice) = match step {
            Step::Resize(spec) => {
                let out = spec.output;
                // The result, and the intermediate of the first pass (whichever axis goes
                // first).
                let first_pass = (u64::from(size.width) * u64::from(out.height))
                    .max(u64::from(out.width) * u64::from(size.height));
                if (out.pixels() + first_pass) * channels as u64 > spare || out.is_empty() {
                    break;
                }
                puffin::profile_scope!("op", RESIZE_LABEL);
                let image = resize(pool, (samples, channels), size, spec)?;
                let choice = format!("resize on 8-bit samples ({:?})", spec.filter);
                (image, 1, RESIZE_LABEL.to_owned(), choice)
            }
            Step::Tables(kernels) => {
                let tables = ChannelTables::new(&kernels);
                if samples.len() as u64 > spare || !tables.keeps_opaque() {
                    break;
                }
                let n = kernels.len();
                let labels: Vec<&str> = rest.stages[..n].iter().map(|s| s.label).collect();
                let label = format!("{} (8-bit tables)", labels.join(" + "));
                puffin::profile_scope!("op", &label);
                let mut out = vec![0; samples.len()];
                pool.install(|| {
                    use rayon::prelude::*;
                    const CHUNK: usize = 3 * 16_384;
                    out.par_chunks_mut(CHUNK)
                        .zip(samples.par_chunks(CHUNK))
                        .for_each(|(o, s)| tables.map_rgb_to_rgb(s, o));
                });
                let choice = format!("{} as 8-bit tables", labels.join(", "));
                (image(size, 3, out)?, n, label, choice)
            }
            Step::Remap(remap, out) => {
                // (A map planned for another size than the image's is left to the f32 path,
                // which clips its reads.)
                if out.pixels() * channels as u64 > spare || out.is_empty() || remap.input != size {
                    break;
                }
                let label = label("8-bit");
                puffin::profile_scope!("op", &label);
                let out_samples = pool.install(|| match channels {
                    1 => remap.remap_u8::<1>(samples, out),
                    _ => remap.remap_u8::<3>(samples, out),
                });
                let choice = format!("{} on 8-bit samples", rest.stages[0].label);
                (image(out, channels, out_samples)?, 1, label, choice)
            }
            Step::Area(spec) => {
                let threads = pool.current_num_threads();
                let scratch = if spec.boxes.is_empty() {
                    u8_filter::scratch_bytes(size.width, channels, spec.weights.len(), threads)
                } else {
                    let size = (size.width, size.height);
                    u8_box::scratch_bytes(size, channels, &spec.boxes, threads)
                };
                if samples.len() as u64 + scratch > spare {
                    break;
                }
                let label = label("8-bit");
                puffin::profile_scope!("op", &label);
                let out = pool.install(|| {
                    let layout = (w, h, channels);
                    if spec.boxes.is_empty() {
                        u8_filter::filter_u8(samples, layout, &spec.weights, spec.mode)
                    } else {
                        u8_box::box_u8(samples, layout, &spec.boxes, spec.mode)
                    }
                });
                let choice = format!("{} on 8-bit samples", rest.stages[0].label);
                (image(size, channels, out)?, 1, label, choice)
            }
            Step::Grey(mix) => {
                if pixels > spare {
                    break;
                }
                let label = label("8-bit");
                puffin::profile_scope!("op", &label);
                // On grey samples the conversion is the identity (the weights sum to 1).
                let out = match channels {
                    3 => pool.install(|| u8_grey::grey_from_rgb8(samples, mix)),
                    _ => samples.to_vec(),
                };
                let choice = format!("{} to one 8-bit channel", rest.stages[0].label);
                (image(size, 1, out)?, 1, label, choice)
            }
            Step::Sobel => {
                let luma = if channels == 3 { pixels } else { 0 };
                let scratch = u8_grey::sobel_scratch_bytes(size.width, pool.current_num_threads());
                if luma + pixels + scratch > spare {
                    break;
                }
                let label = label("8-bit");
                puffin::profile_scope!("op", &label);
                let out = pool.install(|| {
                    let rec709 = GreyMix::Weights(crate::ops::LUMA_WEIGHTS);
                    match channels {
                        3 => u8_grey::sobel8(&u8_grey::grey_from_rgb8(samples, rec709), w, h),
                        _ => u8_grey::sobel8(samples, w, h),
                    }
                });
                let choice = format!("{} (Sobel) on one 8-bit channel", rest.stages[0].label);
                (image(size, 1, out)?, 1, label, choice)
            }
        };
        let op_index = rest.stages[0].op_index;
        let mut next = rest.split_off(stages);
        next.choices.push(Choice {
            op_index,
            line: choice,
        });
        // In chain order (lines for the whole render last).
        next.choices
            .sort_by_key(|c| c.op_index.unwrap_or(usize::MAX));
        times.push((label, t.elapsed()));
        current = Some(image);
        tail = Some(next);
    }
    Ok(match (current, tail) {
        (Some(image), Some(tail)) => Some((image, tail, times)),
        _ => None,
    })
}

/// `samples` (`channels` = 1 or 3 per pixel) as an image of `size`.
fn image(size: Size, channels: usize, samples: Vec<u8>) -> Result<DynamicImage> {
    let bad = || Error::Internal("8-bit kernel buffer size".to_owned());
    Ok(match channels {
        1 => DynamicImage::ImageLuma8(
            GrayImage::from_raw(size.width, size.height, samples).ok_or_else(bad)?,
        ),
        _ => DynamicImage::ImageRgb8(
            RgbImage::from_raw(size.width, size.height, samples).ok_or_else(bad)?,
        ),
    })
}

fn resize(
    pool: &rayon::ThreadPool,
    (samples, channels): (&[u8], usize),
    size: Size,
    spec: U8Resize,
) -> Result<DynamicImage> {
    let out = spec.output;
    let fir_err = |e: &dyn std::fmt::Display| Error::Internal(format!("8-bit resize: {e}"));
    let pixel = if channels == 1 {
        PixelType::U8
    } else {
        PixelType::U8x3
    };
    let src = ImageRef::new(size.width, size.height, samples, pixel).map_err(|e| fir_err(&e))?;
    let mut dst = FirImage::new(out.width, out.height, pixel);
    let filter = match spec.filter {
        U8Filter::Lanczos3 => FilterType::Lanczos3,
        U8Filter::CatmullRom => FilterType::CatmullRom,
        U8Filter::Bilinear => FilterType::Bilinear,
    };
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    pool.install(|| Resizer::new().resize(&src, &mut dst, &options))
        .map_err(|e| fir_err(&e))?;
    image(out, channels, dst.into_vec())
}
