//! `sharpen`: unsharp mask. `out = in + amount·(in − blur(in, radius))` wherever the difference
//! exceeds `threshold` (in 8-bit levels); alpha is kept.

use super::gpu::GpuKernel;
use super::{BuildCtx, BuildError, Footprint, Grey, Kernel, OpDef, SpatialKernel, U8Area, unit};
use crate::engine::box_blur::BlurKernel;
use crate::engine::convolve::gaussian_radius;
use crate::engine::geom::{Rect, Size};
use crate::engine::tile::Tile;
use crate::engine::u8_filter::Mode;
use crate::params::{ParamKind, ParamSpec, Params, Unit};

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "sharpen",
    version: 1,
    label: "Sharpen",
    category: "Filter",
    doc: "Unsharp mask: adds back the difference from a Gaussian blur of the given radius (sigma)",
    params: PARAMS,
    footprint,
    validate: super::no_validate,
    build,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        key: "amount",
        label: "Amount",
        doc: "How much of the detail to add back; 0 is unchanged",
        kind: ParamKind::Float {
            min: 0.0,
            max: 10.0,
            default: 0.5,
            unit: Unit::None,
            spatial: false,
        },
    },
    ParamSpec {
        key: "radius",
        label: "Radius",
        doc: "Sigma of the blur that defines detail",
        kind: ParamKind::Float {
            min: 0.0,
            max: 100.0,
            default: 1.0,
            unit: Unit::Px,
            spatial: true,
        },
    },
    ParamSpec {
        key: "threshold",
        label: "Threshold",
        doc: "Differences smaller than this are left alone (protects smooth areas from noise)",
        kind: ParamKind::Float {
            min: 0.0,
            max: 255.0,
            default: 0.0,
            unit: Unit::Levels,
            spatial: false,
        },
    },
];

fn footprint(p: &Params, scale: f64) -> Footprint {
    Footprint::Area {
        halo_px: gaussian_radius(p.scaled(PARAMS, scale).float("radius")),
    }
}

struct Sharpen {
    input: Size,
    blur: BlurKernel,
    amount: f32,
    threshold: f32,
    u8: Option<U8Area>,
}

fn build(p: &Params, ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    let p = p.scaled(PARAMS, ctx.scale);
    let blur = BlurKernel::new(
        p.float("radius"),
        ctx.sharpen_blur_algorithm(p.float("radius")),
    );
    let amount = p.float("amount") as f32;
    let threshold_levels = p.float("threshold") as f32;
    let mode = Mode::Unsharp {
        amount,
        threshold_levels,
    };
    Ok(Kernel::Area(Box::new(Sharpen {
        input: ctx.input,
        u8: U8Area::for_blur(ctx.quality, &blur, mode),
        blur,
        amount,
        threshold: (p.float("threshold") / 255.0) as f32,
    })))
}

/// `blurred` becomes the sharpened row: each colour moves away from its blur by `amount` times
/// the difference, where the difference exceeds `threshold`; alpha is the original's.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn unsharp_row(blurred: &mut [f32], original: &[f32], amount: f32, threshold: f32) {
    for (b, orig) in blurred.chunks_exact_mut(4).zip(original.chunks_exact(4)) {
        for c in 0..3 {
            let diff = orig[c] - b[c];
            b[c] = if diff.abs() > threshold || threshold == 0.0 {
                unit(orig[c] + amount * diff)
            } else {
                orig[c]
            };
        }
        b[3] = orig[3];
    }
}

impl SpatialKernel for Sharpen {
    fn grey(&self) -> Grey {
        Grey::Keeps
    }

    fn gpu(&self) -> GpuKernel {
        crate::engine::convolve::gpu_separable(
            "sharpen",
            &self.blur.weights,
            false,
            [self.amount, self.threshold],
        )
    }

    fn input_rect(&self, out: Rect) -> Rect {
        out.expand_clip(self.blur.radius(), self.input)
    }

    /// Both blur algorithms write every value.
    fn writes_every_value(&self) -> bool {
        true
    }

    fn run(&self, src: &Tile, dst: &mut Tile) {
        self.blur.run(src, dst);
        let out = dst.rect;
        if out.is_empty() {
            return;
        }
        // The original pixels are read in place from `src` (the output grown by the halo),
        // row by row, rather than copied out first.
        let (dx, dy) = ((out.x - src.rect.x) as usize, (out.y - src.rect.y) as usize);
        let row_len = out.width as usize * 4;
        for y in 0..out.height as usize {
            let orig_row = &src.row(dy + y)[dx * 4..dx * 4 + row_len];
            unsharp_row(dst.row_mut(y), orig_row, self.amount, self.threshold);
        }
    }

    fn scratch_bytes(&self, out: Rect) -> u64 {
        self.blur.scratch_bytes(out, self.input_rect(out))
    }

    fn u8_area(&self) -> Option<&U8Area> {
        self.u8.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use crate::chain::raw::RawValue;
    use crate::engine::convolve::gaussian_weights;
    use crate::ops::testutil::{params, pattern, run_whole};

    #[test]
    fn matches_the_definition_and_zero_amount_is_identity() {
        let img = pattern(17, 11);
        let p = params(&super::DEF, &[("amount", RawValue::Float(0.0))]);
        assert_eq!(run_whole(&super::DEF, &p, &img), img);

        let p = params(
            &super::DEF,
            &[
                ("amount", RawValue::Float(1.5)),
                ("radius", RawValue::Float(2.0)),
            ],
        );
        let out = run_whole(&super::DEF, &p, &img);
        // Reference at one interior pixel, computed directly.
        let w = gaussian_weights(2.0);
        let r = (w.len() / 2) as i64;
        let (x, y) = (8i64, 5i64);
        let mut blurred = 0f64;
        for ky in -r..=r {
            for kx in -r..=r {
                blurred += f64::from(w[(ky + r) as usize])
                    * f64::from(w[(kx + r) as usize])
                    * f64::from(img.clamped(x + kx, y + ky)[0]);
            }
        }
        let orig = f64::from(img.clamped(x, y)[0]);
        let expected = (orig + 1.5 * (orig - blurred)).clamp(0.0, 1.0);
        let got = f64::from(out.clamped(x, y)[0]);
        assert!((got - expected).abs() < 1e-4, "{got} vs {expected}");
    }

    #[test]
    fn threshold_protects_small_differences() {
        let img = pattern(9, 9);
        let p = params(
            &super::DEF,
            &[
                ("amount", RawValue::Float(2.0)),
                ("threshold", RawValue::Float(255.0)),
            ],
        );
        assert_eq!(run_whole(&super::DEF, &p, &img), img);
    }
}
