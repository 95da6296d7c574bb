//! `adjust_colors`: exposure, brightness, contrast, saturation, hue and gamma in one pointwise pass.
//!
//! Order of application: exposure (×2^EV), brightness (×factor), contrast about mid-grey 0.5,
//! saturation and hue (a rotation/scale of chroma around the grey axis, as one 3×3 matrix),
//! gamma (`v^(1/gamma)`), then clamp to `0..=1`. Neutral values (1.0, 0 EV, 0°) leave the image
//! unchanged. Alpha is untouched.

use super::gpu::{GpuKernel, matrix_rows};
use super::{BuildCtx, BuildError, Grey, Kernel, OpDef, PointKernel, pointwise_footprint, unit};
use crate::params::{ParamKind, ParamSpec, Params, Unit};

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "adjust_colors",
    version: 1,
    label: "Adjust colours",
    category: "Colour",
    doc: "Exposure, brightness, contrast, saturation, hue and gamma; 1.0 (or 0) leaves a value unchanged",
    params: PARAMS,
    footprint: pointwise_footprint,
    validate: super::no_validate,
    build,
};

const fn factor(key: &'static str, label: &'static str, doc: &'static str) -> ParamSpec {
    ParamSpec {
        key,
        label,
        doc,
        kind: ParamKind::Float {
            min: 0.0,
            max: 4.0,
            default: 1.0,
            unit: Unit::None,
            spatial: false,
        },
    }
}

const PARAMS: &[ParamSpec] = &[
    factor(
        "brightness",
        "Brightness",
        "Multiplies every channel; 1.0 is unchanged",
    ),
    factor(
        "contrast",
        "Contrast",
        "Scales distance from mid-grey; 1.0 is unchanged",
    ),
    factor(
        "saturation",
        "Saturation",
        "Scales colourfulness; 0 is grey, 1.0 is unchanged",
    ),
    ParamSpec {
        key: "exposure",
        label: "Exposure",
        doc: "Exposure change in stops (×2 per EV)",
        kind: ParamKind::Float {
            min: -10.0,
            max: 10.0,
            default: 0.0,
            unit: Unit::Ev,
            spatial: false,
        },
    },
    ParamSpec {
        key: "gamma",
        label: "Gamma",
        doc: "Gamma correction; > 1 brightens mid-tones, 1.0 is unchanged",
        kind: ParamKind::Float {
            min: 0.1,
            max: 10.0,
            default: 1.0,
            unit: Unit::None,
            spatial: false,
        },
    },
    ParamSpec {
        key: "hue",
        label: "Hue",
        doc: "Rotates hues around the colour wheel",
        kind: ParamKind::Float {
            min: -180.0,
            max: 180.0,
            default: 0.0,
            unit: Unit::Deg,
            spatial: false,
        },
    },
];

/// The prepared adjustment: `v' = v * gain + offset`, then an optional chroma matrix and gamma.
struct AdjustColors {
    gain: f32,
    offset: f32,
    matrix: Option<[[f32; 3]; 3]>,
    inv_gamma: Option<f32>,
}

fn build(p: &Params, _ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    let exposure = 2f64.powf(p.float("exposure"));
    let contrast = p.float("contrast");
    let gain = exposure * p.float("brightness") * contrast;
    let offset = 0.5 * (1.0 - contrast);
    let saturation = p.float("saturation");
    let hue_rad = p.float("hue").to_radians();
    let matrix = (saturation != 1.0 || hue_rad != 0.0).then(|| chroma_matrix(saturation, hue_rad));
    let gamma = p.float("gamma");
    Ok(Kernel::Pointwise(Box::new(AdjustColors {
        gain: gain as f32,
        offset: offset as f32,
        matrix,
        inv_gamma: (gamma != 1.0).then_some((1.0 / gamma) as f32),
    })))
}

/// Scale chroma by `saturation` and rotate it by `hue_rad` around the grey axis, keeping
/// Rec. 709 luma: the matrix `L + s·R(θ)·(I − L)` where `L` projects onto luma.
fn chroma_matrix(saturation: f64, hue_rad: f64) -> [[f32; 3]; 3] {
    // Rotation about the (1,1,1) axis (Rodrigues), applied to the chroma part only.
    let (s, c) = hue_rad.sin_cos();
    let k = (1.0 - c) / 3.0;
    let q = s / 3f64.sqrt();
    let rot = [
        [c + k, k - q, k + q],
        [k + q, c + k, k - q],
        [k - q, k + q, c + k],
    ];
    let w = [0.2126, 0.7152, 0.0722];
    let mut m = [[0f32; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            // (I - L) has entries delta_ij - w_j; L has entries w_j.
            let mut chroma = 0.0;
            for (kk, rot_row) in rot[i].iter().enumerate() {
                let delta = if kk == j { 1.0 } else { 0.0 };
                chroma += rot_row * (delta - w[j]);
            }
            *cell = (w[j] + saturation * chroma) as f32;
        }
    }
    m
}

/// `v * gain + offset`, clamped, on the colour channels of RGBA pixels.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn gain_offset(row: &mut [f32], gain: f32, offset: f32) {
    for px in row.chunks_exact_mut(4) {
        px[0] = unit(px[0] * gain + offset);
        px[1] = unit(px[1] * gain + offset);
        px[2] = unit(px[2] * gain + offset);
    }
}

/// Mirrors `Params` in `shaders/adjust_colors.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GpuParams {
    /// Rows `m0`, `m1`, `m2` in the shader.
    matrix: [[f32; 4]; 3],
    gain: f32,
    offset: f32,
    inv_gamma: f32,
    /// Bit 0: gain/offset, bit 1: matrix, bit 2: gamma.
    flags: u32,
}

impl PointKernel for AdjustColors {
    /// Gain, offset and gamma treat the channels alike, and the chroma matrix keeps luma
    /// while scaling and turning chroma, which grey pixels have none of.
    fn grey(&self) -> Grey {
        Grey::Keeps
    }

    fn gpu(&self) -> GpuKernel {
        let m = self
            .matrix
            .unwrap_or([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let flags = u32::from(self.gain != 1.0 || self.offset != 0.0)
            | u32::from(self.matrix.is_some()) << 1
            | u32::from(self.inv_gamma.is_some()) << 2;
        GpuKernel::single(
            "adjust_colors",
            &GpuParams {
                matrix: matrix_rows(&m),
                gain: self.gain,
                offset: self.offset,
                inv_gamma: self.inv_gamma.unwrap_or(1.0),
                flags,
            },
            Vec::new(),
        )
    }

    /// Gain, offset and gamma treat channels alike; saturation and hue mix them.
    fn per_channel(&self) -> bool {
        self.matrix.is_none()
    }

    fn apply_row(&self, _x0: u32, _y: u32, row: &mut [f32]) {
        if self.gain != 1.0 || self.offset != 0.0 {
            gain_offset(row, self.gain, self.offset);
        }
        if let Some(m) = &self.matrix {
            for px in row.chunks_exact_mut(4) {
                let (r, g, b) = (px[0], px[1], px[2]);
                px[0] = unit(m[0][0] * r + m[0][1] * g + m[0][2] * b);
                px[1] = unit(m[1][0] * r + m[1][1] * g + m[1][2] * b);
                px[2] = unit(m[2][0] * r + m[2][1] * g + m[2][2] * b);
            }
        }
        if let Some(e) = self.inv_gamma {
            for px in row.chunks_exact_mut(4) {
                px[0] = px[0].powf(e);
                px[1] = px[1].powf(e);
                px[2] = px[2].powf(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::chain::raw::RawValue;
    use crate::ops::testutil::{apply_point, params};

    #[test]
    fn brightness_contrast_match_the_peer_definition() {
        // Brightness 1.1 then contrast 1.2 about mid-grey (0.5); the peers' 8-bit definition
        // (about 128: out = 1.32*in - 25.6) differs by 0.1 level.
        let p = params(
            &super::DEF,
            &[
                ("brightness", RawValue::Float(1.1)),
                ("contrast", RawValue::Float(1.2)),
            ],
        );
        let out = apply_point(&super::DEF, &p, [100.0 / 255.0, 0.0, 1.0, 0.5]);
        let expected = (100.0 / 255.0 * 1.1 - 0.5) * 1.2 + 0.5;
        assert!((out[0] - expected).abs() < 1e-6);
        assert!((out[0] * 255.0 - (1.32 * 100.0 - 25.6)).abs() < 0.11);
        assert_eq!(out[1], 0.0);
        assert_eq!(out[2], 1.0);
        assert_eq!(out[3], 0.5);
    }

    #[test]
    fn zero_saturation_gives_luma_and_hue_keeps_grey() {
        let p = params(&super::DEF, &[("saturation", RawValue::Float(0.0))]);
        let out = apply_point(&super::DEF, &p, [1.0, 0.0, 0.0, 1.0]);
        for c in &out[..3] {
            assert!((c - 0.2126).abs() < 1e-5, "{out:?}");
        }
        let p = params(&super::DEF, &[("hue", RawValue::Float(120.0))]);
        let grey = apply_point(&super::DEF, &p, [0.3, 0.3, 0.3, 1.0]);
        for c in &grey[..3] {
            assert!((c - 0.3).abs() < 1e-5, "{grey:?}");
        }
        // A 120° turn moves pure red towards green.
        let red = apply_point(&super::DEF, &p, [1.0, 0.0, 0.0, 1.0]);
        assert!(red[1] > red[0] && red[1] > red[2], "{red:?}");
    }

    #[test]
    fn exposure_and_gamma() {
        let p = params(&super::DEF, &[("exposure", RawValue::Float(1.0))]);
        let out = apply_point(&super::DEF, &p, [0.25, 0.5, 0.75, 1.0]);
        assert_eq!(&out[..3], &[0.5, 1.0, 1.0]);
        let p = params(&super::DEF, &[("gamma", RawValue::Float(2.0))]);
        let out = apply_point(&super::DEF, &p, [0.25, 0.0, 1.0, 1.0]);
        assert!((out[0] - 0.5).abs() < 1e-6);
    }
}
