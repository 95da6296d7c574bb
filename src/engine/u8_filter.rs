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
//! integer multiply costs more than an f32 multiply and add. Fusing them (FMA where the CPU has
//! it) was measured too: no faster here, and it would make results depend on the CPU. Bands of
//! output rows run in parallel, each keeping the horizontal pass of the rows around its current
//! row in a small ring (see [`filter_u8`]).

use rayon::prelude::*;

/// Output rows per parallel band, at most (fewer on short images, so that every worker gets
/// bands); each band recomputes the horizontal pass of the `2r` rows around it.
const BAND_ROWS: usize = 256;
/// Outputs computed at once in the inner loops: enough independent sums (8 AVX-512 or 16 AVX2
/// registers) that the adds' latency is hidden.
const LANES: usize = 128;
/// Output rows the vertical pass makes per strip of `LANES` columns: the strip's
/// `2r + ROW_GROUP` input rows are read from L2 once and then from L1 for each output row.
const ROW_GROUP: usize = 8;
/// Samples of a row the horizontal pass converts and filters at a time (a multiple of
/// `LANES` and of 3: whole pixels of RGB or grey).
const CHUNK: usize = 12 * LANES;

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
    // The ring of horizontal rows and a padded chunk of a source row.
    let ring_rows = (taps - 1 + ROW_GROUP) as u64;
    let ring_floats = ring_rows * ring_stride(width_px as usize * channels) as u64 + 16;
    let chunk_floats = (CHUNK + (taps - 1) * channels) as u64;
    threads as u64 * (ring_floats + chunk_floats) * 4
}

/// Floats from one ring row to the next for rows of `row_len` floats: whole cache lines, and
/// an odd number of them so that rows fall in different cache sets.
fn ring_stride(row_len: usize) -> usize {
    let lines = row_len.div_ceil(16);
    16 * (lines | 1)
}

/// Blur (or sharpen, per `mode`) `src`, `width`×`height` px of `channels` interleaved samples
/// (each channel on its own), with the normalised symmetric `weights` (odd length), on the
/// current rayon pool. Returns the new samples.
///
/// Each band of output rows keeps the horizontal pass of the `2r + ROW_GROUP` rows that its
/// next `ROW_GROUP` output rows need in a ring (1.2 MB per worker for a 4096-px RGB row and
/// σ 3, so the vertical pass reads from L2, not L3), computing each row once as the band moves
/// down. A first version held the whole band's horizontal rows (64 output rows and their
/// halo, 4 MB): half the speed. (Advising the output for huge pages was tried too: 10% in a
/// standalone test on the system allocator, nothing measurable under this program's mimalloc.)
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
    let taps = weights.len();
    let radius = (taps / 2) as isize;
    let ring_rows = taps - 1 + ROW_GROUP;
    // Ring rows one cache line apart from a multiple of 4 KiB: at 4096 px RGB a row is 48 KiB
    // (L1's size), and rows that far apart would all fall in the same L1 set.
    let stride = ring_stride(row_len);
    let band_rows = height
        .div_ceil(4 * rayon::current_num_threads())
        .clamp(16, BAND_ROWS);
    let source_row = |y: isize| {
        let y = y.clamp(0, height as isize - 1) as usize;
        &src[y * row_len..(y + 1) * row_len]
    };
    // Rings and padded rows are reused by each worker (fresh ones would be page-faulted in per
    // band).
    out.par_chunks_mut(row_len * band_rows)
        .enumerate()
        .for_each_init(
            || {
                (
                    vec![0f32; ring_rows * stride + 16],
                    vec![0f32; CHUNK.min(row_len) + (taps - 1) * channels],
                )
            },
            |(ring, padded), (band, dst)| {
                // Rows start on cache lines: vector loads that straddle two lines cost more.
                let skip = ring.as_ptr().align_offset(64).min(16);
                let ring = &mut ring[skip..];
                let y0 = (band * band_rows) as isize;
                // Ring slot of the horizontal pass of source row `y` (y0 - r ..).
                let slot = |y: isize| (y - y0 + radius) as usize % ring_rows;
                let mut filter_row = |y: isize, ring: &mut [f32]| {
                    let s = slot(y);
                    let row = &mut ring[s * stride..s * stride + row_len];
                    horizontal(source_row(y), channels, padded, weights, row);
                };
                for y in y0 - radius..y0 + radius {
                    filter_row(y, ring);
                }
                for (g, dst_rows) in dst.chunks_mut(row_len * ROW_GROUP).enumerate() {
                    let y = y0 + (g * ROW_GROUP) as isize;
                    let group = (dst_rows.len() / row_len) as isize;
                    for yy in y + radius..y + radius + group {
                        filter_row(yy, ring);
                    }
                    let rows: Vec<&[f32]> = (y - radius..y + radius + group)
                        .map(|yy| &ring[slot(yy) * stride..slot(yy) * stride + row_len])
                        .collect();
                    let orig = &src[y as usize * row_len..(y + group) as usize * row_len];
                    vertical(&rows, weights, orig, mode, dst_rows);
                }
            },
        );
    out
}

/// One row: `row` (`channels` samples per pixel) filtered into `out`, `CHUNK` samples at a
/// time: each chunk and its halo (edge pixels replicated past the row's ends) is converted to
/// f32 in `padded` (at least `CHUNK + 2r·channels` long), small enough to stay in L1 while its
/// taps read it. A whole padded 4096-px row (48 KiB) did not, and cost a fifth more. The
/// weights are symmetric, so each pair of taps costs one multiply.
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
    let halo = radius * c;
    let centre = weights[radius];
    for start in (0..n).step_by(CHUNK) {
        let len = CHUNK.min(n - start);
        let padded = &mut padded[..len + 2 * halo];
        // padded[p] is sample `first + p` of the row.
        let first = start as isize - halo as isize;
        let row_start = (-first).max(0) as usize;
        let row_end = ((n as isize - first) as usize).min(padded.len());
        let (left, rest) = padded.split_at_mut(row_start);
        let (middle, right) = rest.split_at_mut(row_end - row_start);
        for (p, v) in left.iter_mut().enumerate() {
            *v = row[(first + p as isize).rem_euclid(c as isize) as usize].into();
        }
        for (v, &s) in middle
            .iter_mut()
            .zip(&row[(first + row_start as isize) as usize..])
        {
            *v = s.into();
        }
        for (p, v) in right.iter_mut().enumerate() {
            *v = row[n - c + p % c].into();
        }
        let padded = &*padded;
        let out = &mut out[start..start + len];
        let mut i = 0;
        while i + LANES <= len {
            let mut acc = [0f32; LANES];
            let mid = &padded[i + halo..i + halo + LANES];
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
}

/// Output rows (`out`, as many as `orig`'s rows) from the horizontal rows around them
/// (`rows`, top to bottom: `2r` more than the output rows), combined with the original rows
/// per `mode`; column strip by column strip, so that a strip's input rows stay in L1.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn vertical(rows: &[&[f32]], weights: &[f32], orig: &[u8], mode: Mode, out: &mut [u8]) {
    let radius = weights.len() / 2;
    let centre = weights[radius];
    let row_len = rows[0].len();
    let mut i = 0;
    while i + LANES <= row_len {
        for (g, (out, orig)) in out
            .chunks_exact_mut(row_len)
            .zip(orig.chunks_exact(row_len))
            .enumerate()
        {
            let rows = &rows[g..];
            let mut acc = [0f32; LANES];
            let m = &rows[radius][i..i + LANES];
            for (a, &s) in acc.iter_mut().zip(m) {
                *a = centre * s;
            }
            for k in 0..radius {
                let w = weights[k];
                let lo = &rows[k][i..i + LANES];
                let hi = &rows[2 * radius - k][i..i + LANES];
                for ((a, &l), &h) in acc.iter_mut().zip(lo).zip(hi) {
                    *a += w * (l + h);
                }
            }
            finish(&acc, &orig[i..i + LANES], mode, &mut out[i..i + LANES]);
        }
        i += LANES;
    }
    for (g, (out, orig)) in out
        .chunks_exact_mut(row_len)
        .zip(orig.chunks_exact(row_len))
        .enumerate()
    {
        for j in i..row_len {
            let acc: f32 = weights
                .iter()
                .zip(&rows[g..])
                .map(|(&w, row)| w * row[j])
                .sum();
            finish(&[acc], &orig[j..=j], mode, &mut out[j..=j]);
        }
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
            // Rows longer than a horizontal chunk (600 RGB px, 1700 grey px), heights over
            // several row groups and bands, and widths that leave a tail after the vectors.
            for (w, h, sigma) in [
                (1, 1, 1.0),
                (5, 3, 2.0),
                (37, 70, 1.0),
                (130, 67, 3.0),
                (600, 45, 3.0),
                (1700, 21, 2.0),
            ] {
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
