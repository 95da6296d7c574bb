//! Pixel-exact integer geometry shared by `crop`, `flip`, `rotate` and `add_border` (not an op).
//!
//! Every output pixel `(x, y)` reads input pixel `(ax·x + bx·y + cx, ay·x + by·y + cy)` with
//! coefficients in {-1, 0, 1}, or a fill colour where that falls outside the input. Such maps
//! send rectangles to rectangles, so tile input rectangles are exact.

use super::SpatialKernel;
use super::gpu::GpuKernel;
use crate::engine::geom::{Rect, Size};
use crate::engine::tile::{CHANNELS, Tile};

/// An integer affine pixel map with optional fill outside the input.
pub struct Remap {
    /// The op's WGSL file (each includes `remap.wgsl`).
    pub shader: &'static str,
    /// Input image size.
    pub input: Size,
    /// Input x = `ax·x + bx·y + cx`.
    pub x_coeffs: [i64; 3],
    /// Input y = `ay·x + by·y + cy`.
    pub y_coeffs: [i64; 3],
    /// Colour for output pixels that map outside the input (straight RGBA, 0..=1); `None`
    /// when every output pixel maps inside (pure rearrangements).
    pub fill: Option<[f32; 4]>,
}

impl Remap {
    /// This map of `samples` (`C` interleaved 8-bit samples per pixel, an image of
    /// `self.input`) into a new image of `output` px, on the current rayon pool: bands of 64
    /// output rows, each copied in 64-px blocks so that a turn's reads down the source columns
    /// stay in cache. Only for maps without fill (every output pixel reads an input pixel).
    pub fn remap_u8<const C: usize>(&self, samples: &[u8], output: Size) -> Vec<u8> {
        use rayon::prelude::*;
        const BLOCK_PX: usize = 64;
        debug_assert!(self.fill.is_none());
        debug_assert_eq!(samples.len(), self.input.pixels() as usize * C);
        let out_row = output.width as usize * C;
        let in_row = self.input.width as usize * C;
        let mut out = vec![0u8; out_row * output.height as usize];
        if out.is_empty() {
            return out;
        }
        out.par_chunks_mut(out_row * BLOCK_PX)
            .enumerate()
            .for_each(|(band, rows)| {
                for x0 in (0..output.width as usize).step_by(BLOCK_PX) {
                    let x1 = (x0 + BLOCK_PX).min(output.width as usize);
                    for (j, row) in rows.chunks_exact_mut(out_row).enumerate() {
                        let y = (band * BLOCK_PX + j) as i64;
                        let dst = row[x0 * C..x1 * C].chunks_exact_mut(C);
                        for (x, px) in (x0..x1).zip(dst) {
                            let (sx, sy) = self.map(x as i64, y);
                            let at = sy as usize * in_row + sx as usize * C;
                            px.copy_from_slice(&samples[at..at + C]);
                        }
                    }
                }
            });
        out
    }

    #[inline]
    fn map(&self, x: i64, y: i64) -> (i64, i64) {
        let [ax, bx, cx] = self.x_coeffs;
        let [ay, by, cy] = self.y_coeffs;
        (ax * x + bx * y + cx, ay * x + by * y + cy)
    }
}

/// Mirrors `Params` in `shaders/remap.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GpuParams {
    x_coeffs: [i32; 4],
    y_coeffs: [i32; 4],
    /// Transparent black where the op has no fill (as on the CPU).
    fill: [f32; 4],
}

impl SpatialKernel for Remap {
    /// Pixel moves keep grey; a fill keeps it when its colour is grey.
    fn grey(&self) -> super::Grey {
        self.fill.map_or(super::Grey::Keeps, super::Grey::of_fill)
    }

    fn gpu(&self) -> GpuKernel {
        // Coefficients are sizes and offsets of images under 2^31 px (capped by the limits).
        let c = |v: [i64; 3]| [v[0] as i32, v[1] as i32, v[2] as i32, 0];
        GpuKernel::single(
            self.shader,
            &GpuParams {
                x_coeffs: c(self.x_coeffs),
                y_coeffs: c(self.y_coeffs),
                fill: self.fill.unwrap_or_default(),
            },
            Vec::new(),
        )
    }

    fn may_add_transparency(&self) -> bool {
        self.fill.is_some_and(|f| f[3] < 1.0)
    }

    fn u8_remap(&self) -> Option<&Remap> {
        self.fill.is_none().then_some(self)
    }

    fn input_rect(&self, out: Rect) -> Rect {
        if out.is_empty() {
            return Rect::EMPTY;
        }
        let (x0, y0) = self.map(i64::from(out.x), i64::from(out.y));
        let (x1, y1) = self.map(i64::from(out.right()) - 1, i64::from(out.bottom()) - 1);
        let clip = |v: i64, max: u32| v.clamp(0, i64::from(max)) as u32;
        Rect::from_bounds(
            clip(x0.min(x1), self.input.width),
            clip(y0.min(y1), self.input.height),
            clip(x0.max(x1) + 1, self.input.width),
            clip(y0.max(y1) + 1, self.input.height),
        )
    }

    fn run(&self, src: &Tile, dst: &mut Tile) {
        let out = dst.rect;
        let s = src.rect;
        let inside = |x: i64, y: i64| {
            x >= i64::from(s.x)
                && y >= i64::from(s.y)
                && x < i64::from(s.right())
                && y < i64::from(s.bottom())
        };
        let row_preserving =
            self.x_coeffs[0] == 1 && self.x_coeffs[1] == 0 && self.y_coeffs[0] == 0;
        for oy in 0..out.height as usize {
            let y = i64::from(out.y) + oy as i64;
            let row = dst.row_mut(oy);
            if row_preserving {
                // Whole runs of the row copy contiguously (crop, border, vertical flip).
                let (sx0, sy) = self.map(i64::from(out.x), y);
                for (ox, px) in row.chunks_exact_mut(CHANNELS).enumerate() {
                    let sx = sx0 + ox as i64;
                    if inside(sx, sy) {
                        let i = ((sy - i64::from(s.y)) as usize * s.width as usize
                            + (sx - i64::from(s.x)) as usize)
                            * CHANNELS;
                        px.copy_from_slice(&src.data[i..i + CHANNELS]);
                    } else {
                        px.copy_from_slice(&self.fill.unwrap_or_default());
                    }
                }
            } else {
                for (ox, px) in row.chunks_exact_mut(CHANNELS).enumerate() {
                    let (sx, sy) = self.map(i64::from(out.x) + ox as i64, y);
                    if inside(sx, sy) {
                        let i = ((sy - i64::from(s.y)) as usize * s.width as usize
                            + (sx - i64::from(s.x)) as usize)
                            * CHANNELS;
                        px.copy_from_slice(&src.data[i..i + CHANNELS]);
                    } else {
                        px.copy_from_slice(&self.fill.unwrap_or_default());
                    }
                }
            }
        }
    }
}

/// Straight RGBA 0..=1 from 8-bit RGBA.
pub fn rgba_f32(c: [u8; 4]) -> [f32; 4] {
    c.map(|v| f32::from(v) / 255.0)
}
