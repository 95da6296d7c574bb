//! Separable convolution with edge replication, shared by the blur, sharpen and edge ops.
//!
//! The kernel is symmetric with `2r+1` taps. Each output pixel is summed in a fixed order
//! (outer pairs first, centre last) from values that do not depend on the tile layout, so a
//! tiled render is bit-identical to a single-tile one. Loops run over whole rows of interleaved
//! RGBA floats, tap by tap, which the compiler vectorises.

use super::geom::Rect;
use super::tile::{CHANNELS, Tile};
use crate::ops::gpu::{GpuKernel, PassExtent, f32_words, uniform_bytes};

/// A normalised, symmetric Gaussian of standard deviation `sigma_px`, truncated at
/// `ceil(3·sigma)`. Returns `[1.0]` for `sigma_px <= 0`.
pub fn gaussian_weights(sigma_px: f64) -> Vec<f32> {
    let radius = gaussian_radius(sigma_px) as i64;
    if radius == 0 {
        return vec![1.0];
    }
    let two_s2 = 2.0 * sigma_px * sigma_px;
    let raw: Vec<f64> = (-radius..=radius)
        .map(|k| (-((k * k) as f64) / two_s2).exp())
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|w| (w / sum) as f32).collect()
}

/// Radius in pixels of [`gaussian_weights`] for `sigma_px`.
pub fn gaussian_radius(sigma_px: f64) -> u32 {
    if sigma_px <= 0.0 || !sigma_px.is_finite() {
        0
    } else {
        (3.0 * sigma_px).ceil().clamp(1.0, 10_000.0) as u32
    }
}

/// Convolve `src` with the symmetric `weights` horizontally then vertically, writing `dst`
/// (`dst.rect` must lie in `src.rect`, and `src.rect` must be `dst.rect` grown by the radius
/// and clipped to the image). Edges replicate the nearest pixel of `src`, which is the image
/// edge wherever the halo was clipped.
pub fn convolve_separable(src: &Tile, dst: &mut Tile, weights: &[f32]) {
    let out = dst.rect;
    if out.is_empty() {
        return;
    }
    let radius = weights.len() / 2;
    let s = src.rect;
    let out_stride = out.width as usize * CHANNELS;

    // Horizontal pass over every source row, only for the output columns.
    // `convolve_line` writes every value.
    let mut rows = Tile::scratch(Rect::new(out.x, s.y, out.width, s.height));
    let horizontal = &mut rows.data;
    let mut padded = vec![0f32; (out.width as usize + 2 * radius) * CHANNELS];
    let taps = weights.len();
    for row_y in 0..s.height as usize {
        let src_row = src.row(row_y);
        for (i, px) in padded.chunks_exact_mut(CHANNELS).enumerate() {
            let x = i64::from(out.x) + i as i64 - radius as i64;
            let cx = x.clamp(i64::from(s.x), i64::from(s.right()) - 1) as usize - s.x as usize;
            px.copy_from_slice(&src_row[cx * CHANNELS..cx * CHANNELS + CHANNELS]);
        }
        let lines: Vec<&[f32]> = (0..taps)
            .map(|k| &padded[k * CHANNELS..k * CHANNELS + out_stride])
            .collect();
        convolve_line(
            &mut horizontal[row_y * out_stride..(row_y + 1) * out_stride],
            weights,
            &lines,
        );
    }

    // Vertical pass: each output row from the horizontal rows around it, clamped to `src`.
    for oy in 0..out.height as usize {
        let y = i64::from(out.y) + oy as i64;
        let lines: Vec<&[f32]> = (0..taps)
            .map(|k| {
                let sy = (y + k as i64 - radius as i64)
                    .clamp(i64::from(s.y), i64::from(s.bottom()) - 1)
                    as usize
                    - s.y as usize;
                &horizontal[sy * out_stride..(sy + 1) * out_stride]
            })
            .collect();
        convolve_line(dst.row_mut(oy), weights, &lines);
    }
}

/// `acc = Σ_k weights[k] · lines[k]`, summing symmetric pairs first (one multiply per pair).
/// Compiled for several instruction sets (chosen at run time); every element is computed with
/// the same operations in the same order on each, so results are bit-identical.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
#[allow(clippy::needless_range_loop)] // Index loops over pre-sliced rows vectorise cleanly.
fn convolve_line(acc: &mut [f32], weights: &[f32], lines: &[&[f32]]) {
    let taps = weights.len();
    let radius = taps / 2;
    let n = acc.len();
    acc.fill(0.0);
    for k in 0..radius {
        let w = weights[k];
        let a = &lines[k][..n];
        let b = &lines[taps - 1 - k][..n];
        for i in 0..n {
            acc[i] += w * (a[i] + b[i]);
        }
    }
    let w = weights[radius];
    let c = &lines[radius][..n];
    for i in 0..n {
        acc[i] += w * c[i];
    }
}

/// Mirrors `Params` in `shaders/convolve.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GpuParams {
    radius: u32,
    /// Op-specific values (sharpen: amount, threshold).
    extra: [f32; 2],
    _pad: u32,
}

/// The GPU form of a separable convolution with `weights` in `shader` (which includes
/// `shaders/convolve.wgsl`): a horizontal pass over the input rectangle, on premultiplied colour
/// when `premultiplied`, then the op's `main` (vertical) pass, with the same weights and
/// summation order as [`convolve_separable`].
pub fn gpu_separable(
    shader: &'static str,
    weights: &[f32],
    premultiplied: bool,
    extra: [f32; 2],
) -> GpuKernel {
    let params = uniform_bytes(&GpuParams {
        radius: (weights.len() / 2) as u32,
        extra,
        _pad: 0,
    });
    let horizontal = if premultiplied {
        "horizontal_premultiplied"
    } else {
        "horizontal"
    };
    GpuKernel::two_pass(
        shader,
        horizontal,
        PassExtent::Input,
        params,
        f32_words(weights),
    )
}

/// Scratch bytes [`convolve_separable`] allocates for an output `out` with source `src`.
pub fn convolve_scratch_bytes(out: Rect, src: Rect, radius: u32) -> u64 {
    (u64::from(out.width) * u64::from(src.height) + u64::from(out.width) + 2 * u64::from(radius))
        * CHANNELS as u64
        * 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::geom::Size;

    #[test]
    fn weights_are_normalised_and_symmetric() {
        let w = gaussian_weights(2.0);
        assert_eq!(w.len(), 13);
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(w[0], w[12]);
        assert_eq!(gaussian_weights(0.0), vec![1.0]);
    }

    /// Slow, obviously correct 2-D convolution with edge clamping.
    fn reference(src: &Tile, w: &[f32]) -> Vec<f32> {
        let r = (w.len() / 2) as i64;
        let (width, height) = (src.rect.width as i64, src.rect.height as i64);
        let mut out = vec![0f32; src.data.len()];
        for y in 0..height {
            for x in 0..width {
                for c in 0..4 {
                    let mut sum = 0f64;
                    for ky in -r..=r {
                        for kx in -r..=r {
                            let px = src.clamped(x + kx, y + ky);
                            sum += f64::from(w[(ky + r) as usize])
                                * f64::from(w[(kx + r) as usize])
                                * f64::from(px[c]);
                        }
                    }
                    out[((y * width + x) * 4 + c as i64) as usize] = sum as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_slow_reference() {
        let size = Size::new(9, 7);
        let mut src = Tile::new(size.rect());
        for (i, v) in src.data.iter_mut().enumerate() {
            *v = ((i * 37) % 101) as f32 / 100.0;
        }
        let w = gaussian_weights(1.3);
        let mut dst = Tile::new(size.rect());
        convolve_separable(&src, &mut dst, &w);
        let expected = reference(&src, &w);
        for (a, b) in dst.data.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
