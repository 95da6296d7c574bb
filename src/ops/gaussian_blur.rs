//! `gaussian_blur`: separable Gaussian blur with edge replication, alpha-correct (colours are
//! premultiplied by alpha while blurring, so transparent pixels do not bleed dark fringes).

use super::gpu::GpuKernel;
use super::{BuildCtx, BuildError, Footprint, Grey, Kernel, OpDef, SpatialKernel, U8Area};
use crate::engine::box_blur::BlurKernel;
use crate::engine::convolve::gaussian_radius;
use crate::engine::geom::{Rect, Size};
use crate::engine::tile::Tile;
use crate::engine::u8_filter::Mode;
use crate::params::{ParamKind, ParamSpec, Params, Unit};

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "gaussian_blur",
    version: 1,
    label: "Gaussian blur",
    category: "Filter",
    doc: "Blur with a Gaussian of the given standard deviation (sigma, in pixels)",
    params: PARAMS,
    footprint,
    validate: super::no_validate,
    build,
};

const PARAMS: &[ParamSpec] = &[ParamSpec {
    key: "sigma",
    label: "Sigma",
    doc: "Standard deviation of the Gaussian; the blur reaches about 3 sigma",
    kind: ParamKind::Float {
        min: 0.0,
        max: 500.0,
        default: 2.0,
        unit: Unit::Px,
        spatial: true,
    },
}];

fn footprint(p: &Params, scale: f64) -> Footprint {
    Footprint::Area {
        halo_px: gaussian_radius(p.scaled(PARAMS, scale).float("sigma")),
    }
}

struct GaussianBlur {
    input: Size,
    blur: BlurKernel,
    u8: Option<U8Area>,
}

/// The quality preset picks the algorithm: exact, or a box cascade for large sigmas
/// (`QualityPreset::blur_algorithm`), or for smaller ones on images with little detail
/// (`QualityPreset::smooth_blur`); exact below sigma 8 on opaque 8-bit sources
/// ([`BuildCtx::blur_algorithm`]).
fn build(p: &Params, ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    let sigma = p.scaled(PARAMS, ctx.scale).float("sigma");
    let blur = BlurKernel::new(sigma, ctx.blur_algorithm(sigma));
    Ok(Kernel::Area(Box::new(GaussianBlur {
        input: ctx.input,
        u8: U8Area::for_blur(ctx.quality, &blur, Mode::Blur),
        blur,
    })))
}

/// Multiply colour by alpha, in place.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
pub(crate) fn premultiply(data: &mut [f32]) {
    for px in data.chunks_exact_mut(4) {
        let a = px[3];
        px[0] *= a;
        px[1] *= a;
        px[2] *= a;
    }
}

/// Filtered alpha below this (2⁻¹⁷, half a 16-bit level) is zero in every output format, and
/// the colour under it (a premultiplied sum divided by it) is ill-conditioned: weights that
/// should cancel leave 10⁻²⁶ on a GPU that fuses multiply-adds where the CPU gets exactly 0,
/// and the division turns that into full-scale colour (seen on an H100). Such pixels are
/// transparent black on both paths (`unpremultiply` in `shaders/common.wgsl`).
pub(crate) const ALPHA_FLOOR: f32 = 1.0 / 131_072.0;

/// Divide colour by alpha where alpha is at least [`ALPHA_FLOOR`], in place; other pixels
/// become transparent black.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
pub(crate) fn unpremultiply(data: &mut [f32]) {
    for px in data.chunks_exact_mut(4) {
        let a = px[3];
        if a >= ALPHA_FLOOR {
            let inv = 1.0 / a;
            px[0] = (px[0] * inv).min(1.0);
            px[1] = (px[1] * inv).min(1.0);
            px[2] = (px[2] * inv).min(1.0);
        } else {
            px.fill(0.0);
        }
    }
}

impl SpatialKernel for GaussianBlur {
    fn grey(&self) -> Grey {
        Grey::Keeps
    }

    fn gpu(&self) -> GpuKernel {
        crate::engine::convolve::gpu_separable("gaussian_blur", &self.blur.weights, true, [0.0; 2])
    }

    fn input_rect(&self, out: Rect) -> Rect {
        out.expand_clip(self.blur.radius(), self.input)
    }

    /// Both blur algorithms write every value.
    fn writes_every_value(&self) -> bool {
        true
    }

    fn run(&self, src: &Tile, dst: &mut Tile) {
        if self.blur.weights.len() == 1 {
            dst.copy_from(src);
            return;
        }
        // Opaque pixels are their own premultiplied form (x · 1.0 = x exactly): no copy. The
        // division by the blurred alpha stays, so results match the GPU's bit for bit.
        if src.data.chunks_exact(4).all(|px| px[3] == 1.0) {
            self.blur.run(src, dst);
        } else {
            let mut pre = src.clone();
            premultiply(&mut pre.data);
            self.blur.run(&pre, dst);
        }
        unpremultiply(&mut dst.data);
    }

    fn scratch_bytes(&self, out: Rect) -> u64 {
        let src = self.input_rect(out);
        self.blur.scratch_bytes(out, src) + src.pixels() * 16
    }

    fn u8_area(&self) -> Option<&U8Area> {
        self.u8.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use crate::chain::raw::RawValue;
    use crate::engine::geom::Rect;
    use crate::engine::tile::Tile;
    use crate::ops::testutil::{params, pattern, run_whole};

    #[test]
    fn alpha_below_the_floor_is_transparent_black() {
        // What fused multiply-adds left of weights that cancel: full-scale colour if divided.
        let mut px = [1e-26f32, 0.0, 2.5e-26, 2.5e-26, 0.25, 0.5, 0.0, 0.5];
        super::unpremultiply(&mut px);
        assert_eq!(px, [0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 0.0, 0.5]);
        let mut at_floor = [super::ALPHA_FLOOR * 0.5, 0.0, 0.0, super::ALPHA_FLOOR];
        super::unpremultiply(&mut at_floor);
        assert_eq!(at_floor, [0.5, 0.0, 0.0, super::ALPHA_FLOOR]);
    }

    #[test]
    fn sigma_zero_is_identity_and_flat_stays_flat() {
        let img = pattern(13, 9);
        let p = params(&super::DEF, &[("sigma", RawValue::Float(0.0))]);
        assert_eq!(run_whole(&super::DEF, &p, &img), img);
        let mut flat = Tile::new(Rect::new(0, 0, 8, 8));
        flat.data
            .chunks_exact_mut(4)
            .for_each(|px| px.copy_from_slice(&[0.2, 0.4, 0.6, 1.0]));
        let p = params(&super::DEF, &[("sigma", RawValue::Float(3.0))]);
        let out = run_whole(&super::DEF, &p, &flat);
        for (a, b) in out.data.iter().zip(&flat.data) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn impulse_spreads_as_a_gaussian() {
        let mut img = Tile::new(Rect::new(0, 0, 21, 21));
        img.data.chunks_exact_mut(4).for_each(|px| px[3] = 1.0);
        img.data[(10 * 21 + 10) * 4] = 1.0;
        let p = params(&super::DEF, &[("sigma", RawValue::Float(2.0))]);
        let out = run_whole(&super::DEF, &p, &img);
        let at = |x: usize, y: usize| out.data[(y * 21 + x) * 4];
        let total: f32 = (0..21 * 21).map(|i| out.data[i * 4]).sum();
        assert!((total - 1.0).abs() < 1e-4, "mass is kept: {total}");
        // Ratio between neighbours follows exp(-(x²)/(2σ²)).
        let expected = (-1.0f32 / 8.0).exp();
        assert!((at(11, 10) / at(10, 10) - expected).abs() < 1e-3);
        assert_eq!(at(11, 10), at(9, 10));
        assert_eq!(at(10, 11), at(10, 9));
    }

    #[test]
    fn transparent_pixels_do_not_darken_edges() {
        // A red opaque half next to a fully transparent black half: blurred colour stays red.
        let mut img = Tile::new(Rect::new(0, 0, 10, 4));
        for (i, px) in img.data.chunks_exact_mut(4).enumerate() {
            if i % 10 < 5 {
                px.copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
            }
        }
        let p = params(&super::DEF, &[("sigma", RawValue::Float(1.5))]);
        let out = run_whole(&super::DEF, &p, &img);
        let px = &out.data[5 * 4..6 * 4];
        assert!(px[3] > 0.0 && px[3] < 1.0);
        assert!((px[0] - 1.0).abs() < 1e-5, "{px:?}");
    }
}
