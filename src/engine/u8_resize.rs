//! A leading resize of an opaque 8-bit image on `fast_image_resize`'s integer kernels: the
//! `f32 vs 8-bit working format` choice of the quality presets, for the one op where the 8-bit
//! kernels are much faster (4096² → 1024² Lanczos3 on 2 threads: 20 ms against 35 ms for the
//! f32 path, which converts every sample to f32 RGBA first).
//!
//! Every preset but `ultra` allows it ([`crate::ops::SpatialKernel::u8_resize`]); it runs only
//! on whole full-resolution renders of files and in-memory images (`Engine::render_source`,
//! `render_file`; not regions, scaled or 16-bit outputs), when the resize is the plan's first
//! stage (so not after an EXIF rotation), has no crop, and the source is 8-bit RGB in memory
//! (`render_file` decodes such files whole rather than row by row when they fit a quarter of
//! the budget, so the pixels do not depend on the output format). The result differs from the f32 path by rounding (at most a level or
//! two; `tests/ops_contract.rs` bounds it), so previews, which the GPU must match to 2·10⁻⁴,
//! keep the f32 path.

use std::time::{Duration, Instant};

use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage};

use super::plan::Plan;
use super::source::Source;
use crate::error::{Error, Result};
use crate::ops::{Kernel, U8Filter, U8Resize};

/// Profile label of the 8-bit resize.
pub const LABEL: &str = "resize (8-bit)";

/// The 8-bit resize `plan` starts with, if the preset and the resize allow one.
pub fn leading(plan: &Plan) -> Option<U8Resize> {
    match plan.stages.first().map(|s| &s.kernel) {
        Some(Kernel::Geometry { kernel, .. }) => kernel.u8_resize(),
        _ => None,
    }
}

/// If `plan` starts with a resize the 8-bit kernels may run and `source` is 8-bit RGB in
/// memory, whose result fits in `spare_bytes`: run it on `pool` and return the resized image,
/// the rest of the plan (reading it) and the time it took. Otherwise `None`, `plan` untouched.
pub fn resize_first(
    pool: &rayon::ThreadPool,
    source: &dyn Source,
    plan: &mut Plan,
    spare_bytes: u64,
) -> Result<Option<(DynamicImage, Plan, Duration)>> {
    let (Some(spec), Some((samples, 3))) = (leading(plan), source.as_u8()) else {
        return Ok(None);
    };
    let out = spec.output;
    let size = source.size();
    // The result, and the intermediate of the first pass (whichever axis goes first).
    let first_pass = (u64::from(size.width) * u64::from(out.height))
        .max(u64::from(out.width) * u64::from(size.height));
    if (out.pixels() + first_pass) * 3 > spare_bytes || out.is_empty() {
        return Ok(None);
    }
    puffin::profile_scope!("op", LABEL);
    let t = Instant::now();
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
    let image = RgbImage::from_raw(out.width, out.height, dst.into_vec())
        .ok_or_else(|| Error::Internal("8-bit resize buffer size".to_owned()))?;
    let mut tail = plan.split_off(1);
    tail.choices
        .push(format!("resize on 8-bit samples ({:?})", spec.filter));
    Ok(Some((DynamicImage::ImageRgb8(image), tail, t.elapsed())))
}
