//! `grayscale`: replace colour by a grey value computed with a chosen formula. Alpha is kept.

use super::gpu::GpuKernel;
use super::{BuildCtx, BuildError, Grey, GreyMix, Kernel, OpDef, PointKernel, pointwise_footprint};
use crate::params::{ParamKind, ParamSpec, Params};

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "grayscale",
    version: 1,
    label: "Greyscale",
    category: "Colour",
    doc: "Convert to grey with Rec. 709 luma (default), Rec. 601 luma, the channel average or lightness",
    params: PARAMS,
    footprint: pointwise_footprint,
    validate: super::no_validate,
    build,
};

const PARAMS: &[ParamSpec] = &[ParamSpec {
    key: "method",
    label: "Method",
    doc: "How grey is computed from red, green and blue",
    kind: ParamKind::Choice {
        choices: &["rec709", "rec601", "average", "lightness"],
        default: "rec709",
    },
}];

struct Grayscale {
    /// Weights of R, G, B; `None` means lightness `(max + min) / 2`.
    weights: Option<[f32; 3]>,
    /// Whether the preset allows the 8-bit kernel (all but `ultra`).
    u8: bool,
}

fn build(p: &Params, ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    let weights = match p.choice("method") {
        "rec601" => Some([0.299, 0.587, 0.114]),
        "average" => Some([1.0 / 3.0; 3]),
        "lightness" => None,
        _ => Some([0.2126, 0.7152, 0.0722]),
    };
    Ok(Kernel::Pointwise(Box::new(Grayscale {
        weights,
        u8: ctx.quality.eight_bit_kernels(),
    })))
}

/// Weighted sum of R, G, B written to all three.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn weighted_grey(row: &mut [f32], wr: f32, wg: f32, wb: f32) {
    for px in row.chunks_exact_mut(4) {
        let y = wr * px[0] + wg * px[1] + wb * px[2];
        px[0] = y;
        px[1] = y;
        px[2] = y;
    }
}

/// Mirrors `Params` in `shaders/grayscale.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GpuParams {
    weights: [f32; 4],
    /// 1: lightness (mean of max and min) instead of weights.
    lightness: u32,
    _pad: [u32; 3],
}

impl PointKernel for Grayscale {
    fn grey(&self) -> Grey {
        Grey::Makes
    }

    fn gpu(&self) -> GpuKernel {
        let [r, g, b] = self.weights.unwrap_or([0.0; 3]);
        GpuKernel::single(
            "grayscale",
            &GpuParams {
                weights: [r, g, b, 0.0],
                lightness: u32::from(self.weights.is_none()),
                _pad: [0; 3],
            },
            Vec::new(),
        )
    }

    fn u8_grey(&self) -> Option<GreyMix> {
        self.u8
            .then(|| self.weights.map_or(GreyMix::Lightness, GreyMix::Weights))
    }

    fn apply_row(&self, _x0: u32, _y: u32, row: &mut [f32]) {
        match self.weights {
            Some([wr, wg, wb]) => weighted_grey(row, wr, wg, wb),
            None => {
                for px in row.chunks_exact_mut(4) {
                    let y = 0.5 * (px[0].max(px[1]).max(px[2]) + px[0].min(px[1]).min(px[2]));
                    px[0] = y;
                    px[1] = y;
                    px[2] = y;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::chain::raw::RawValue;
    use crate::ops::testutil::{apply_point, params};

    #[test]
    fn known_answers() {
        let p = params(&super::DEF, &[]);
        let out = apply_point(&super::DEF, &p, [1.0, 0.0, 0.0, 0.25]);
        assert_eq!(out, [0.2126, 0.2126, 0.2126, 0.25]);
        let p = params(
            &super::DEF,
            &[("method", RawValue::String("lightness".into()))],
        );
        let out = apply_point(&super::DEF, &p, [1.0, 0.5, 0.0, 1.0]);
        assert_eq!(out, [0.5, 0.5, 0.5, 1.0]);
        let p = params(
            &super::DEF,
            &[("method", RawValue::String("average".into()))],
        );
        let out = apply_point(&super::DEF, &p, [0.3, 0.6, 0.9, 1.0]);
        assert!((out[0] - 0.6).abs() < 1e-6);
    }
}
