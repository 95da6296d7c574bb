//! `edge_detect`: Sobel gradient magnitude (an area op, halo 1) or Canny edges (a global op:
//! hysteresis follows edges across the whole image). Output is grey; alpha is kept.

use super::gpu::GpuKernel;
use super::{BuildCtx, BuildError, Footprint, Kernel, OpDef, SpatialKernel, luma};
use crate::chain::OutputLimits;
use crate::engine::convolve::{convolve_separable, gaussian_weights};
use crate::engine::geom::{Rect, Size};
use crate::engine::tile::Tile;
use crate::params::{ParamKind, ParamSpec, Params, Unit};

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "edge_detect",
    version: 1,
    label: "Edge detect",
    category: "Filter",
    doc: "Sobel gradient magnitude of the luma, or Canny edges (thin, connected, thresholded)",
    params: PARAMS,
    footprint,
    validate,
    build,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        key: "mode",
        label: "Mode",
        doc: "sobel: gradient strength; canny: thin binary edges",
        kind: ParamKind::Choice {
            choices: &["sobel", "canny"],
            default: "sobel",
        },
    },
    ParamSpec {
        key: "sigma",
        label: "Smoothing",
        doc: "Canny: sigma of the Gaussian applied before the gradient",
        kind: ParamKind::Float {
            min: 0.0,
            max: 20.0,
            default: 1.4,
            unit: Unit::Px,
            spatial: true,
        },
    },
    ParamSpec {
        key: "low_threshold",
        label: "Low threshold",
        doc: "Canny: weak edges above this are kept when connected to a strong edge",
        kind: ParamKind::Float {
            min: 0.0,
            max: 1020.0,
            default: 40.0,
            unit: Unit::Levels,
            spatial: false,
        },
    },
    ParamSpec {
        key: "high_threshold",
        label: "High threshold",
        doc: "Canny: gradients above this are strong edges",
        kind: ParamKind::Float {
            min: 0.0,
            max: 1020.0,
            default: 100.0,
            unit: Unit::Levels,
            spatial: false,
        },
    },
];

fn footprint(p: &Params, _scale: f64) -> Footprint {
    if p.choice("mode") == "canny" {
        Footprint::Global
    } else {
        Footprint::Area { halo_px: 1 }
    }
}

fn validate(p: &Params, _limits: OutputLimits) -> Result<(), BuildError> {
    let (low, high) = (p.float("low_threshold"), p.float("high_threshold"));
    if p.choice("mode") == "canny" && low > high {
        return Err(BuildError::field(
            "low_threshold",
            format!("low threshold {low} is above the high threshold {high}"),
        ));
    }
    Ok(())
}

fn build(p: &Params, ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    if p.choice("mode") != "canny" {
        return Ok(Kernel::Area(Box::new(Sobel {
            input: ctx.input,
            u8: ctx.quality.eight_bit_kernels(),
        })));
    }
    validate(p, OutputLimits::default())?;
    let p = p.scaled(PARAMS, ctx.scale);
    let (low, high) = (p.float("low_threshold"), p.float("high_threshold"));
    Ok(Kernel::Global(Box::new(Canny {
        weights: gaussian_weights(p.float("sigma")),
        low: (low / 255.0) as f32,
        high: (high / 255.0) as f32,
    })))
}

/// Luma of every pixel of `src`, row-major.
fn luma_plane(src: &Tile) -> Vec<f32> {
    src.data
        .chunks_exact(4)
        .map(|px| luma(px[0], px[1], px[2]))
        .collect()
}

/// Sobel `(gx, gy)` at `(x, y)` of a plane of size `w×h`, with clamped neighbours; `x`, `y`
/// relative to the plane.
#[inline]
fn sobel_at(plane: &[f32], w: usize, h: usize, x: usize, y: usize) -> (f32, f32) {
    let xm = x.saturating_sub(1);
    let xp = (x + 1).min(w - 1);
    let rows = [y.saturating_sub(1) * w, y * w, (y + 1).min(h - 1) * w];
    let p = |r: usize, c: usize| plane[rows[r] + c];
    let gx = (p(0, xp) + 2.0 * p(1, xp) + p(2, xp)) - (p(0, xm) + 2.0 * p(1, xm) + p(2, xm));
    let gy = (p(2, xm) + 2.0 * p(2, x) + p(2, xp)) - (p(0, xm) + 2.0 * p(0, x) + p(0, xp));
    (gx, gy)
}

struct Sobel {
    input: Size,
    /// Whether the preset allows the 8-bit kernel (all but `ultra`).
    u8: bool,
}

impl SpatialKernel for Sobel {
    fn grey(&self) -> super::Grey {
        super::Grey::Makes
    }

    fn gpu(&self) -> GpuKernel {
        GpuKernel::single("edge_detect", &[0u32; 4], Vec::new())
    }

    fn input_rect(&self, out: Rect) -> Rect {
        out.expand_clip(1, self.input)
    }

    fn run(&self, src: &Tile, dst: &mut Tile) {
        let plane = luma_plane(src);
        let (w, h) = (src.rect.width as usize, src.rect.height as usize);
        let (ox, oy) = (
            (dst.rect.x - src.rect.x) as usize,
            (dst.rect.y - src.rect.y) as usize,
        );
        let out_w = dst.rect.width as usize;
        for y in 0..dst.rect.height as usize {
            let src_row = src.row(y + oy);
            let row = dst.row_mut(y);
            for x in 0..out_w {
                let (gx, gy) = sobel_at(&plane, w, h, x + ox, y + oy);
                let m = (gx * gx + gy * gy).sqrt().min(1.0);
                row[x * 4..x * 4 + 3].fill(m);
                row[x * 4 + 3] = src_row[(x + ox) * 4 + 3];
            }
        }
    }

    fn scratch_bytes(&self, out: Rect) -> u64 {
        self.input_rect(out).pixels() * 4
    }

    fn u8_sobel(&self) -> bool {
        self.u8
    }
}

struct Canny {
    weights: Vec<f32>,
    low: f32,
    high: f32,
}

impl SpatialKernel for Canny {
    fn grey(&self) -> super::Grey {
        super::Grey::Makes
    }

    fn gpu(&self) -> GpuKernel {
        GpuKernel::Cpu {
            reason: "Canny's hysteresis follows edges across the whole image (a sequential flood \
                     fill); the GPU reads its input back and uploads the CPU result",
        }
    }

    fn input_rect(&self, _out: Rect) -> Rect {
        // Global: the renderer always passes the whole input.
        Rect::EMPTY
    }

    fn run(&self, src: &Tile, dst: &mut Tile) {
        let (w, h) = (src.rect.width as usize, src.rect.height as usize);
        let mut smooth = Tile::new(src.rect);
        convolve_separable(src, &mut smooth, &self.weights);
        let plane = luma_plane(&smooth);
        drop(smooth);

        // Gradient magnitude and direction sector (0: horizontal, 1: 45°, 2: vertical, 3: 135°).
        let mut mag = vec![0f32; w * h];
        let mut sector = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let (gx, gy) = sobel_at(&plane, w, h, x, y);
                mag[y * w + x] = (gx * gx + gy * gy).sqrt();
                let angle = gy.atan2(gx).to_degrees().rem_euclid(180.0);
                sector[y * w + x] = (((angle + 22.5) / 45.0) as u8) % 4;
            }
        }

        // Non-maximum suppression, then classify: 2 strong, 1 weak, 0 none.
        let mut class = vec![0u8; w * h];
        let at = |x: i64, y: i64| -> f32 {
            if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
                0.0
            } else {
                mag[y as usize * w + x as usize]
            }
        };
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let m = mag[i];
                if m < self.low || m == 0.0 {
                    continue;
                }
                let (dx, dy) = match sector[i] {
                    0 => (1, 0),
                    1 => (1, 1),
                    2 => (0, 1),
                    _ => (-1, 1),
                };
                let (xi, yi) = (x as i64, y as i64);
                if m >= at(xi + dx, yi + dy) && m > at(xi - dx, yi - dy) {
                    class[i] = if m >= self.high { 2 } else { 1 };
                }
            }
        }

        // Hysteresis: keep weak pixels 8-connected to a strong one.
        let mut stack: Vec<usize> = (0..w * h).filter(|&i| class[i] == 2).collect();
        while let Some(i) = stack.pop() {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            for ny in y - 1..=y + 1 {
                for nx in x - 1..=x + 1 {
                    if nx >= 0 && ny >= 0 && nx < w as i64 && ny < h as i64 {
                        let j = ny as usize * w + nx as usize;
                        if class[j] == 1 {
                            class[j] = 2;
                            stack.push(j);
                        }
                    }
                }
            }
        }

        for ((px, c), s) in dst
            .data
            .chunks_exact_mut(4)
            .zip(&class)
            .zip(src.data.chunks_exact(4))
        {
            let v = if *c == 2 { 1.0 } else { 0.0 };
            px[0] = v;
            px[1] = v;
            px[2] = v;
            px[3] = s[3];
        }
    }

    fn scratch_bytes(&self, out: Rect) -> u64 {
        out.pixels() * (16 + 4 + 4 + 2)
    }
}

#[cfg(test)]
mod tests {
    use crate::chain::raw::RawValue;
    use crate::engine::geom::Rect;
    use crate::engine::tile::Tile;
    use crate::ops::testutil::{params, run_whole};

    /// A vertical step edge: left half black, right half white.
    fn step(w: u32, h: u32) -> Tile {
        let mut t = Tile::new(Rect::new(0, 0, w, h));
        for (i, px) in t.data.chunks_exact_mut(4).enumerate() {
            let v = if (i as u32 % w) >= w / 2 { 1.0 } else { 0.0 };
            px.copy_from_slice(&[v, v, v, 1.0]);
        }
        t
    }

    #[test]
    fn sobel_known_answer() {
        let img = step(8, 5);
        let out = run_whole(&super::DEF, &params(&super::DEF, &[]), &img);
        let at = |x: usize, y: usize| out.data[(y * 8 + x) * 4];
        // |gx| = 4 at the two columns beside the step (clamped to 1), 0 elsewhere.
        assert_eq!(at(3, 2), 1.0);
        assert_eq!(at(4, 2), 1.0);
        assert_eq!(at(1, 2), 0.0);
        assert_eq!(at(6, 0), 0.0);
        assert_eq!(out.data[3], 1.0);
    }

    #[test]
    fn canny_gives_a_thin_connected_line() {
        let img = step(16, 12);
        let p = params(
            &super::DEF,
            &[
                ("mode", RawValue::String("canny".into())),
                ("sigma", RawValue::Float(1.0)),
            ],
        );
        let out = run_whole(&super::DEF, &p, &img);
        for y in 0..12 {
            let edges: Vec<usize> = (0..16)
                .filter(|&x| out.data[(y * 16 + x) * 4] == 1.0)
                .collect();
            assert_eq!(edges.len(), 1, "row {y}: {edges:?}");
            assert!((7..=8).contains(&edges[0]));
        }
    }

    #[test]
    fn canny_rejects_inverted_thresholds() {
        let p = params(
            &super::DEF,
            &[
                ("mode", RawValue::String("canny".into())),
                ("low_threshold", RawValue::Float(200.0)),
                ("high_threshold", RawValue::Float(100.0)),
            ],
        );
        let err = (super::DEF.build)(
            &p,
            &crate::ops::testutil::ctx(crate::engine::geom::Size::new(4, 4)),
        );
        assert_eq!(err.err().and_then(|e| e.field), Some("low_threshold"));
    }
}
