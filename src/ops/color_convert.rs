//! `color_convert`: sepia toning, inversion or a free 3×3 channel mixer. Alpha is kept.

use super::gpu::{GpuKernel, matrix_rows};
use super::{BuildCtx, BuildError, Grey, Kernel, OpDef, PointKernel, pointwise_footprint, unit};
use crate::params::{ParamKind, ParamSpec, Params, Unit};

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "color_convert",
    version: 1,
    label: "Colour convert",
    category: "Colour",
    doc: "Sepia tone, invert, or mix channels with a 3×3 matrix (out_red = red_from_red·R + red_from_green·G + red_from_blue·B, …)",
    params: PARAMS,
    footprint: pointwise_footprint,
    validate: super::no_validate,
    build,
};

const fn mix(key: &'static str, label: &'static str, default: f64) -> ParamSpec {
    ParamSpec {
        key,
        label,
        doc: "Channel mixer weight (mode channel_mixer)",
        kind: ParamKind::Float {
            min: -2.0,
            max: 2.0,
            default,
            unit: Unit::None,
            spatial: false,
        },
    }
}

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        key: "mode",
        label: "Mode",
        doc: "Which conversion to apply",
        kind: ParamKind::Choice {
            choices: &["sepia", "invert", "channel_mixer"],
            default: "sepia",
        },
    },
    ParamSpec {
        key: "strength",
        label: "Strength",
        doc: "Blend between the original (0) and the converted colour (1)",
        kind: ParamKind::Float {
            min: 0.0,
            max: 1.0,
            default: 1.0,
            unit: Unit::None,
            spatial: false,
        },
    },
    mix("red_from_red", "Red from red", 1.0),
    mix("red_from_green", "Red from green", 0.0),
    mix("red_from_blue", "Red from blue", 0.0),
    mix("green_from_red", "Green from red", 0.0),
    mix("green_from_green", "Green from green", 1.0),
    mix("green_from_blue", "Green from blue", 0.0),
    mix("blue_from_red", "Blue from red", 0.0),
    mix("blue_from_green", "Blue from green", 0.0),
    mix("blue_from_blue", "Blue from blue", 1.0),
];

/// The classic sepia matrix (Microsoft's, as used by CSS `sepia()`).
const SEPIA: [[f64; 3]; 3] = [
    [0.393, 0.769, 0.189],
    [0.349, 0.686, 0.168],
    [0.272, 0.534, 0.131],
];

/// Every mode is `out = M·rgb + offset`, blended with the input by `strength`, folded into one
/// affine map at build time.
struct ColorConvert {
    matrix: [[f32; 3]; 3],
    offset: f32,
}

fn build(p: &Params, _ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    let (m, offset) = match p.choice("mode") {
        "invert" => ([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]], 1.0),
        "channel_mixer" => (
            [
                [
                    p.float("red_from_red"),
                    p.float("red_from_green"),
                    p.float("red_from_blue"),
                ],
                [
                    p.float("green_from_red"),
                    p.float("green_from_green"),
                    p.float("green_from_blue"),
                ],
                [
                    p.float("blue_from_red"),
                    p.float("blue_from_green"),
                    p.float("blue_from_blue"),
                ],
            ],
            0.0,
        ),
        _ => (SEPIA, 0.0),
    };
    let s = p.float("strength");
    let mut matrix = [[0f32; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            let identity = if i == j { 1.0 } else { 0.0 };
            matrix[i][j] = (s * m[i][j] + (1.0 - s) * identity) as f32;
        }
    }
    Ok(Kernel::Pointwise(Box::new(ColorConvert {
        matrix,
        offset: (s * offset) as f32,
    })))
}

/// Mirrors `Params` in `shaders/color_convert.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GpuParams {
    /// Rows `m0`, `m1`, `m2` in the shader.
    matrix: [[f32; 4]; 3],
    offset: f32,
    _pad: [f32; 3],
}

impl PointKernel for ColorConvert {
    /// Invert keeps grey, sepia colours it, a channel mixer depends on its rows.
    fn grey(&self) -> Grey {
        Grey::of_matrix(&self.matrix)
    }

    fn gpu(&self) -> GpuKernel {
        GpuKernel::single(
            "color_convert",
            &GpuParams {
                matrix: matrix_rows(&self.matrix),
                offset: self.offset,
                _pad: [0.0; 3],
            },
            Vec::new(),
        )
    }

    /// A diagonal matrix (invert, or a mixer that keeps each channel to itself).
    fn per_channel(&self) -> bool {
        (0..3).all(|r| (0..3).all(|c| r == c || self.matrix[r][c] == 0.0))
    }

    fn apply_row(&self, _x0: u32, _y: u32, row: &mut [f32]) {
        let m = &self.matrix;
        let o = self.offset;
        for px in row.chunks_exact_mut(4) {
            let (r, g, b) = (px[0], px[1], px[2]);
            px[0] = unit(m[0][0] * r + m[0][1] * g + m[0][2] * b + o);
            px[1] = unit(m[1][0] * r + m[1][1] * g + m[1][2] * b + o);
            px[2] = unit(m[2][0] * r + m[2][1] * g + m[2][2] * b + o);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::chain::raw::RawValue;
    use crate::ops::testutil::{apply_point, params};

    #[test]
    fn invert_sepia_and_mixer() {
        let p = params(&super::DEF, &[("mode", RawValue::String("invert".into()))]);
        assert_eq!(
            apply_point(&super::DEF, &p, [0.25, 1.0, 0.0, 0.5]),
            [0.75, 0.0, 1.0, 0.5]
        );
        let p = params(&super::DEF, &[]);
        let out = apply_point(&super::DEF, &p, [0.5, 0.5, 0.5, 1.0]);
        assert!((out[0] - 0.6755).abs() < 1e-5, "{out:?}");
        assert!(out[0] > out[1] && out[1] > out[2]);
        let p = params(
            &super::DEF,
            &[
                ("mode", RawValue::String("channel_mixer".into())),
                ("red_from_red", RawValue::Float(0.0)),
                ("red_from_blue", RawValue::Float(1.0)),
            ],
        );
        let out = apply_point(&super::DEF, &p, [0.1, 0.2, 0.3, 1.0]);
        assert!((out[0] - 0.3).abs() < 1e-6 && (out[1] - 0.2).abs() < 1e-6);
        let p = params(
            &super::DEF,
            &[
                ("mode", RawValue::String("invert".into())),
                ("strength", RawValue::Float(0.0)),
            ],
        );
        assert_eq!(
            apply_point(&super::DEF, &p, [0.25, 1.0, 0.0, 0.5]),
            [0.25, 1.0, 0.0, 0.5]
        );
    }
}
