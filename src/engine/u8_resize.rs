//! A leading resize of an opaque 8-bit image on `fast_image_resize`'s integer kernels: the
//! `f32 vs 8-bit working format` choice of the quality presets, for the one op where the 8-bit
//! kernels are much faster (4096² → 1024² Lanczos3 on 2 threads: 20 ms against 35 ms for the
//! f32 path, which converts every sample to f32 RGBA first).
//!
//! Every preset but `ultra` allows it ([`crate::ops::SpatialKernel::u8_resize`]); it runs only
//! on full-resolution renders of files and in-memory images (`Engine::render_source*`,
//! `render_file`), when the resize is the plan's first stage, has no crop, and the source is
//! 8-bit RGB in memory. The result differs from the f32 path by rounding (at most a level or
//! two; `tests/ops_contract.rs` bounds it), so previews, which the GPU must match to 2·10⁻⁴,
//! keep the f32 path.

use std::time::{Duration, Instant};

use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage};

use super::plan::Plan;
use super::source::Source;
use crate::error::{Error, Result};
use crate::ops::{Kernel, U8Filter};

/// Profile label of the 8-bit resize.
pub const LABEL: &str = "resize (8-bit)";

/// If `plan` starts with a resize the 8-bit kernels may run and `source` is 8-bit RGB in
/// memory, whose result fits in `spare_bytes`: run it on `pool` and return the resized image,
/// the rest of the plan (reading it) and the time it took. Otherwise `None`, `plan` untouched.
pub fn resize_first(
    pool: &rayon::ThreadPool,
    source: &dyn Source,
    plan: &mut Plan,
    spare_bytes: u64,
) -> Result<Option<(DynamicImage, Plan, Duration)>> {
    let Some(Kernel::Geometry { kernel, .. }) = plan.stages.first().map(|s| &s.kernel) else {
        return Ok(None);
    };
    let (Some(spec), Some((samples, 3))) = (kernel.u8_resize(), source.as_u8()) else {
        return Ok(None);
    };
    let out = spec.output;
    if out.pixels() * 3 > spare_bytes || out.is_empty() {
        return Ok(None);
    }
    puffin::profile_scope!("op", LABEL);
    let t = Instant::now();
    let size = source.size();
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
