//! Separable Gaussian blur and unsharp mask straight from opaque 8-bit RGB (or grey) to the same: the
//! 8-bit working format of the quality presets for `gaussian_blur` and `sharpen` (see
//! [`super::u8_lead`]).
//!
//! The weights are the f32 path's (`gaussian_weights`, the same truncation and edge
//! replication) and the sums are f32, so the result is the exact blur within rounding (a level
//! at most from the f32 path; tests/ops_contract.rs bounds it). What it saves is the f32 RGBA
//! working image: three channels instead of four, no conversion or quantisation passes, no
//! alpha premultiplication, and symmetric taps summed in pairs. Fixed-point sums were tried
//! first and were slower: without `pmaddwd` (which auto-vectorisation does not reach) a 32-bit
//! integer multiply costs more than an f32 fused multiply-add. Each band of output rows runs
//! its horizontal pass over the rows it needs (grown by the radius) in a band-local buffer, so
//! bands run in parallel and the working set stays small.

use rayon::prelude::*;

/// Output rows per parallel band.
const BAND_ROWS: usize = 64;
/// Outputs computed at once in the inner loops (a few SIMD registers).
const LANES: usize = 32;

/// What to do with the blur.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Write the blur.
    Blur,
    /// Unsharp mask: `out = in + amount·(in − blur)` where `|in − blur|` exceeds `threshold`
    /// (in 8-bit levels; 0 = everywhere), as the `sharpen` op.
    Unsharp {
        /// How much of the difference to add.
        amount: f32,
        /// Smallest difference changed, in levels.
        threshold_levels: f32,
    },
}

/// Memory [`filter_u8`] allocates besides its output, for `threads` workers, an image
/// `width_px` wide with `channels` samples per pixel and `taps` weights.
pub fn scratch_bytes(width_px: u32, channels: usize, taps: usize, threads: usize) -> u64 {
    let band_rows = (BAND_ROWS + taps) as u64;
    let row_floats = (u64::from(width_px) + taps as u64) * channels as u64;
    threads as u64 * (band_rows + 1) * row_floats * 4
}

/// Blur (or sharpen, per `mode`) `src`, `width`×`height` px of `channels` interleaved samples
/// (each channel on its own), with the normalised symmetric `weights` (odd length), on the
/// current rayon pool. Returns the new samples.
pub fn filter_u8(
    src: &[u8],
    (width, height, channels): (usize, usize, usize),
    weights: &[f32],
    mode: Mode,
) -> Vec<u8> {
    let row_len = width * channels;
    debug_assert_eq!(src.len(), row_len * height);
    debug_assert!(weights.len() % 2 == 1);
    let mut out = vec![0u8; src.len()];
    if src.is_empty() {
        return out;
    }
    let radius = weights.len() / 2;
    // Band buffers are reused by each worker (fresh ones would be page-faulted in per band).
    out.par_chunks_mut(row_len * BAND_ROWS)
        .enumerate()
        .for_each_init(
            || (Vec::new(), vec![0f32; (width + 2 * radius) * channels]),
            |(mid, padded), (band, dst)| {
                let y0 = band * BAND_ROWS;
                let rows = dst.len() / row_len;
                // Horizontal pass over rows y0 - r .. y0 + rows + r (clamped to the image).
                let first = y0 as isize - radius as isize;
                mid.resize((rows + 2 * radius) * row_len, 0f32);
                for (i, mid_row) in mid.chunks_exact_mut(row_len).enumerate() {
                    let y = (first + i as isize).clamp(0, height as isize - 1) as usize;
                    horizontal(
                        &src[y * row_len..(y + 1) * row_len],
                        channels,
                        padded,
                        weights,
                        mid_row,
                    );
                }
                for (j, dst_row) in dst.chunks_exact_mut(row_len).enumerate() {
                    let y = y0 + j;
                    vertical(
                        &mid[j * row_len..(j + 2 * radius + 1) * row_len],
                        row_len,
                        weights,
                        &src[y * row_len..(y + 1) * row_len],
                        mode,
                        dst_row,
                    );
                }
            },
        );
    out
}

/// One row: `row` (`channels` samples per pixel) padded by edge replication into `padded`,
/// filtered into `out`. The weights are symmetric, so each pair of taps costs one multiply.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn horizontal(row: &[u8], channels: usize, padded: &mut [f32], weights: &[f32], out: &mut [f32]) {
    let radius = weights.len() / 2;
    let n = row.len();
    let c = channels;
    let (left, rest) = padded.split_at_mut(radius * c);
    let (middle, right) = rest.split_at_mut(n);
    for px in left.chunks_exact_mut(c) {
        for (p, &v) in px.iter_mut().zip(&row[..c]) {
            *p = v.into();
        }
    }
    for (p, &v) in middle.iter_mut().zip(row) {
        *p = v.into();
    }
    for px in right.chunks_exact_mut(c) {
        for (p, &v) in px.iter_mut().zip(&row[n - c..]) {
            *p = v.into();
        }
    }
    let padded = &*padded;
    let centre = weights[radius];
    let mut i = 0;
    while i + LANES <= n {
        let mut acc = [0f32; LANES];
        let mid = &padded[i + c * radius..i + c * radius + LANES];
        for (a, &s) in acc.iter_mut().zip(mid) {
            *a = centre * s;
        }
        for k in 0..radius {
            let w = weights[k];
            let lo = &padded[i + c * k..i + c * k + LANES];
            let hi = &padded[i + c * (2 * radius - k)..i + c * (2 * radius - k) + LANES];
            for ((a, &l), &h) in acc.iter_mut().zip(lo).zip(hi) {
                *a += w * (l + h);
            }
        }
        out[i..i + LANES].copy_from_slice(&acc);
        i += LANES;
    }
    for (j, o) in out.iter_mut().enumerate().skip(i) {
        *o = weights
            .iter()
            .enumerate()
            .map(|(k, &w)| w * padded[j + c * k])
            .sum();
    }
}

/// One output row from the `2r + 1` horizontal rows around it (`mid`, `row_len` samples
/// each), combined with the original row per `mode`.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn vertical(mid: &[f32], row_len: usize, weights: &[f32], orig: &[u8], mode: Mode, out: &mut [u8]) {
    let radius = weights.len() / 2;
    let centre = weights[radius];
    let mut i = 0;
    while i + LANES <= row_len {
        let mut acc = [0f32; LANES];
        let m = &mid[radius * row_len + i..radius * row_len + i + LANES];
        for (a, &s) in acc.iter_mut().zip(m) {
            *a = centre * s;
        }
        for k in 0..radius {
            let w = weights[k];
            let lo = &mid[k * row_len + i..k * row_len + i + LANES];
            let hi = &mid[(2 * radius - k) * row_len + i..(2 * radius - k) * row_len + i + LANES];
            for ((a, &l), &h) in acc.iter_mut().zip(lo).zip(hi) {
                *a += w * (l + h);
            }
        }
        finish(&acc, &orig[i..i + LANES], mode, &mut out[i..i + LANES]);
        i += LANES;
    }
    for j in i..row_len {
        let acc: f32 = weights
            .iter()
            .enumerate()
            .map(|(k, &w)| w * mid[k * row_len + j])
            .sum();
        finish(&[acc], &orig[j..=j], mode, &mut out[j..=j]);
    }
}

/// Output samples from the blur `acc` (in levels).
#[inline(always)]
pub(crate) fn finish(acc: &[f32], orig: &[u8], mode: Mode, out: &mut [u8]) {
    match mode {
        Mode::Blur => {
            for (o, &a) in out.iter_mut().zip(acc) {
                *o = level(a);
            }
        }
        Mode::Unsharp {
            amount,
            threshold_levels,
        } => {
            // No difference is below a negative threshold: one select, no branch.
            let threshold = if threshold_levels == 0.0 {
                -1.0
            } else {
                threshold_levels
            };
            for ((o, &a), &v) in out.iter_mut().zip(acc).zip(orig) {
                let v = f32::from(v);
                let diff = v - a;
                let sharp = v + amount * diff;
                *o = level(if diff.abs() > threshold { sharp } else { v });
            }
        }
    }
}

/// Round to the nearest level, saturating (NaN to 0), in one vector conversion.
#[inline(always)]
pub(crate) fn level(v: f32) -> u8 {
    #[allow(clippy::manual_clamp)] // `clamp` keeps NaN; this maps it to 0.
    let bounded = v.max(0.0).min(255.0);
    // SAFETY: `bounded + 0.5` lies in 0.5..=255.5, which an i32 represents.
    unsafe { (bounded + 0.5).to_int_unchecked::<i32>() as u8 }
}

/// `len` pseudo-random bytes from `seed` (xorshift), for the 8-bit kernels' tests.
#[cfg(test)]
pub(crate) fn test_noise(len: usize, seed: u32) -> Vec<u8> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        })
        .collect()
}

/// `weights` along both axes over edge-replicated samples, in f64: the 8-bit kernels' tests'
/// reference.
#[cfg(test)]
pub(crate) fn separable_reference(
    src: &[u8],
    (w, h, channels): (usize, usize, usize),
    weights: &[f32],
) -> Vec<f64> {
    let r = (weights.len() / 2) as isize;
    let at = |x: isize, y: isize, c: usize| {
        let x = x.clamp(0, w as isize - 1) as usize;
        let y = y.clamp(0, h as isize - 1) as usize;
        f64::from(src[(y * w + x) * channels + c])
    };
    let mut out = vec![0f64; w * h * channels];
    for y in 0..h as isize {
        for x in 0..w as isize {
            for c in 0..channels {
                let mut acc = 0.0;
                for (ky, wy) in weights.iter().enumerate() {
                    for (kx, wx) in weights.iter().enumerate() {
                        acc += f64::from(*wy)
                            * f64::from(*wx)
                            * at(x + kx as isize - r, y + ky as isize - r, c);
                    }
                }
                out[((y as usize) * w + x as usize) * channels + c] = acc;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::convolve::gaussian_weights;

    fn noise(w: usize, h: usize, channels: usize) -> Vec<u8> {
        test_noise(w * h * channels, 0x1234_5678)
    }

    #[test]
    fn blur_is_the_exact_blur_within_a_level_at_every_size() {
        for channels in [3, 1] {
            for (w, h, sigma) in [(1, 1, 1.0), (5, 3, 2.0), (37, 70, 1.0), (130, 67, 3.0)] {
                let src = noise(w, h, channels);
                let weights = gaussian_weights(sigma);
                let got = filter_u8(&src, (w, h, channels), &weights, Mode::Blur);
                let want = separable_reference(&src, (w, h, channels), &weights);
                for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(g) - e).abs() <= 1.0,
                        "{w}x{h}x{channels} σ{sigma} at {i}: {g} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn unsharp_follows_the_definition_and_flat_stays_flat() {
        let (w, h) = (41, 66);
        let src = noise(w, h, 3);
        let weights = gaussian_weights(1.5);
        let mode = Mode::Unsharp {
            amount: 1.5,
            threshold_levels: 0.0,
        };
        let got = filter_u8(&src, (w, h, 3), &weights, mode);
        let blur = separable_reference(&src, (w, h, 3), &weights);
        for (i, ((&g, &b), &v)) in got.iter().zip(&blur).zip(&src).enumerate() {
            let e = (f64::from(v) + 1.5 * (f64::from(v) - b)).clamp(0.0, 255.0);
            assert!((f64::from(g) - e).abs() <= 1.0, "at {i}: {g} vs {e}");
        }
        let flat = vec![77u8; 20 * 9 * 3];
        assert_eq!(filter_u8(&flat, (20, 9, 3), &weights, mode), flat);
        assert_eq!(filter_u8(&flat, (20, 9, 3), &weights, Mode::Blur), flat);
        let protect = Mode::Unsharp {
            amount: 2.0,
            threshold_levels: 255.0,
        };
        assert_eq!(filter_u8(&src, (w, h, 3), &weights, protect), src);
    }
}
