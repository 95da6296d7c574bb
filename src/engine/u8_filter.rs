//! Separable Gaussian blur and unsharp mask straight from opaque 8-bit RGB (or grey) to the same: the
//! 8-bit working format of the quality presets for `gaussian_blur` and `sharpen` (see
//! [`super::u8_lead`]).
//!
//! Fixed point, as libvips' 8-bit convolutions: the weights are the f32 path's
//! (`gaussian_weights`, the same truncation and edge replication) rounded to 1/16384 (their
//! rounding error moved to the centre weight, so they still sum to one and a flat image stays
//! flat), the horizontal pass keeps its sums to 1/64 of a level in `i16`, and every sum is an
//! exact integer: the result is the exact blur within a level, and the same bytes on every CPU
//! whatever code computes it. On x86-64 the passes run on AVX-512 BW or AVX2 vectors with
//! `vpmaddwd` (`vpdpwssd` with VNNI), two taps of a vector of samples per instruction
//! ([`x86`]); elsewhere portable code that the compiler vectorises. The f32 sums this replaced
//! took 48–53 ms for σ 3 on a 4096² RGB image here (2 threads, AVX-512); these take 24–28
//! (`opossum bench ops --only blur3`, binaries alternated), 76 dB from `ultra` instead of 97.
//! Bands of output rows run in parallel, each keeping the horizontal pass of the rows around
//! its current row in a small ring (see [`filter_u8`]).

use rayon::prelude::*;

/// Output rows per parallel band, at most (fewer on short images, so that every worker gets
/// bands); each band recomputes the horizontal pass of the `2r` rows around it.
const BAND_ROWS: usize = 256;
/// Outputs computed at once in the portable inner loops: enough independent sums that the
/// adds' latency is hidden. The AVX-512 loops take 32 at a time.
const LANES: usize = 64;
/// Columns of a vertical strip: the strip's `2r + ROW_GROUP` input rows are read from L2 once
/// and then from L1 for each output row.
const STRIP: usize = 256;
/// Output rows the vertical pass makes per strip.
const ROW_GROUP: usize = 8;
/// Samples of a row the horizontal pass widens and filters at a time (a multiple of `STRIP`
/// and of 3: whole pixels of RGB or grey).
const CHUNK: usize = 6 * STRIP;
/// Weights are multiples of 2^-WEIGHT_BITS.
const WEIGHT_BITS: u32 = 14;
/// The horizontal pass keeps levels × 2^H_FRAC (at most 16320: a symmetric pair's sum still
/// fits an `i16`).
const H_FRAC: u32 = 6;
/// Right shift (after rounding) from a horizontal sum to the ring's fixed point.
const H_SHIFT: u32 = WEIGHT_BITS - H_FRAC;
/// Right shift from a vertical sum to levels.
const V_SHIFT: u32 = WEIGHT_BITS + H_FRAC;
/// Right shift from a vertical sum to levels × 2^H_FRAC (the unsharp mask's blur).
const V_FRAC_SHIFT: u32 = WEIGHT_BITS;

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
    // The ring of horizontal rows and a padded chunk of a source row, 2 bytes a sample.
    let ring_rows = (taps - 1 + ROW_GROUP) as u64;
    let ring_samples = ring_rows * ring_stride(width_px as usize * channels) as u64 + 32;
    let chunk_samples = (CHUNK + (taps - 1) * channels) as u64;
    threads as u64 * (ring_samples + chunk_samples) * 2
}

/// Samples from one ring row to the next for rows of `row_len` samples: whole cache lines, and
/// an odd number of them so that rows fall in different cache sets.
fn ring_stride(row_len: usize) -> usize {
    let lines = row_len.div_ceil(32);
    32 * (lines | 1)
}

/// The symmetric `weights` (odd length, summing to one) as fixed-point terms: the centre's,
/// then the weight at distance 1, 2, … r (each applied to the sum of the two samples there).
fn fixed_terms(weights: &[f32]) -> Vec<i16> {
    let r = weights.len() / 2;
    let one = 1i32 << WEIGHT_BITS;
    let mut terms: Vec<i32> = weights[r..]
        .iter()
        .map(|&w| (f64::from(w) * f64::from(one)).round() as i32)
        .collect();
    terms[0] = one - 2 * terms[1..].iter().sum::<i32>();
    terms.into_iter().map(|t| t as i16).collect()
}

/// The terms' weights two by two as `i32`s (the second of an odd count's last pair is 0).
fn pair_weights(terms: &[i16]) -> Vec<i32> {
    terms
        .chunks(2)
        .map(|p| {
            let hi = p.get(1).copied().unwrap_or(0);
            (i32::from(hi) << 16) | i32::from(p[0] as u16)
        })
        .collect()
}

/// Blur (or sharpen, per `mode`) `src`, `width`×`height` px of `channels` interleaved samples
/// (each channel on its own), with the normalised symmetric `weights` (odd length), on the
/// current rayon pool. Returns the new samples.
///
/// Each band of output rows keeps the horizontal pass of the `2r + ROW_GROUP` rows that its
/// next `ROW_GROUP` output rows need in a ring (0.6 MB per worker for a 4096-px RGB row and
/// σ 3, so the vertical pass reads from L2, not L3), computing each row once as the band moves
/// down. A first version held the whole band's horizontal rows (64 output rows and their
/// halo): half the speed.
pub fn filter_u8(
    src: &[u8],
    layout: (usize, usize, usize),
    weights: &[f32],
    mode: Mode,
) -> Vec<u8> {
    filter_with(src, layout, weights, mode, Passes::detect())
}

/// [`filter_u8`] with the inner loops of `passes`.
fn filter_with(
    src: &[u8],
    (width, height, channels): (usize, usize, usize),
    weights: &[f32],
    mode: Mode,
    passes: Passes,
) -> Vec<u8> {
    let row_len = width * channels;
    debug_assert_eq!(src.len(), row_len * height);
    debug_assert!(weights.len() % 2 == 1);
    let mut out = vec![0u8; src.len()];
    if src.is_empty() {
        return out;
    }
    let terms = fixed_terms(weights);
    let pairs = pair_weights(&terms);
    let taps = weights.len();
    let radius = (taps / 2) as isize;
    let ring_rows = taps - 1 + ROW_GROUP;
    // Ring rows one cache line apart from a multiple of 4 KiB: at 4096 px RGB a row is 24 KiB,
    // and rows a multiple of 4 KiB apart would all fall in the same L1 sets.
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
                    vec![0i16; ring_rows * stride + 32],
                    vec![0i16; CHUNK.min(row_len) + (taps - 1) * channels],
                )
            },
            |(ring, padded), (band, dst)| {
                // Rows start on cache lines: vector loads that straddle two lines cost more.
                let skip = ring.as_ptr().align_offset(64).min(32);
                let ring = &mut ring[skip..];
                let y0 = (band * band_rows) as isize;
                // Ring slot of the horizontal pass of source row `y` (y0 - r ..).
                let slot = |y: isize| (y - y0 + radius) as usize % ring_rows;
                let mut filter_row = |y: isize, ring: &mut [i16]| {
                    let s = slot(y);
                    let row = &mut ring[s * stride..s * stride + row_len];
                    let next = (y + 1 < height as isize).then(|| source_row(y + 1));
                    horizontal(
                        source_row(y),
                        next,
                        channels,
                        padded,
                        (&terms, &pairs),
                        passes,
                        row,
                    );
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
                    let rows: Vec<&[i16]> = (y - radius..y + radius + group)
                        .map(|yy| &ring[slot(yy) * stride..slot(yy) * stride + row_len])
                        .collect();
                    let orig = &src[y as usize * row_len..(y + group) as usize * row_len];
                    vertical(&rows, (&terms, &pairs), passes, orig, mode, dst_rows);
                }
            },
        );
    out
}

/// Which code runs the passes' inner loops (all give the same integers).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Passes {
    /// Portable code (for whatever the compiler vectorises it to).
    Portable,
    /// Vectors of an x86-64 instruction set.
    #[cfg(target_arch = "x86_64")]
    Vector(x86::Isa),
}

impl Passes {
    /// The fastest this CPU runs.
    fn detect() -> Passes {
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = x86::Isa::detect() {
            return Passes::Vector(isa);
        }
        Passes::Portable
    }
}

/// One row: `row` (`channels` samples per pixel) filtered into `out`, `CHUNK` samples at a
/// time: each chunk and its halo (edge pixels replicated past the row's ends) is widened to
/// `i16` in `padded` (at least `CHUNK + 2r·channels` long), small enough to stay in L1 while
/// its taps read it.
fn horizontal(
    row: &[u8],
    next: Option<&[u8]>,
    channels: usize,
    padded: &mut [i16],
    (terms, pairs): (&[i16], &[i32]),
    passes: Passes,
    out: &mut [i16],
) {
    let radius = terms.len() - 1;
    let n = row.len();
    let c = channels;
    let halo = radius * c;
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
        widen(
            &row[(first + row_start as isize) as usize..][..middle.len()],
            middle,
        );
        for (p, v) in right.iter_mut().enumerate() {
            *v = row[n - c + p % c].into();
        }
        if let Some(next) = next {
            prefetch(&next[start..start + len]);
        }
        let out = &mut out[start..start + len];
        let done = match passes {
            Passes::Portable => 0,
            #[cfg(target_arch = "x86_64")]
            Passes::Vector(isa) => isa.horizontal(padded, c, (pairs, terms.len()), out),
        };
        horizontal_portable(padded, c, terms, &mut out[done..], done);
    }
}

/// Ask for `bytes` to be brought into the caches.
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch has no effect on memory.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
}

/// `src` widened to `i16`.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn widen(src: &[u8], out: &mut [i16]) {
    for (v, &s) in out.iter_mut().zip(src) {
        *v = s.into();
    }
}

/// The horizontal pass of `out`'s samples, which start at `first` of `padded`'s outputs.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn horizontal_portable(padded: &[i16], c: usize, terms: &[i16], out: &mut [i16], first: usize) {
    let radius = terms.len() - 1;
    let mut blocks = out.chunks_exact_mut(LANES);
    let mut i = first;
    for out in &mut blocks {
        let mut acc = [0i32; LANES];
        let mid = &padded[i + c * radius..][..LANES];
        for (a, &s) in acc.iter_mut().zip(mid) {
            *a = i32::from(terms[0]) * i32::from(s);
        }
        for (k, &t) in terms.iter().enumerate().skip(1) {
            let lo = &padded[i + c * (radius - k)..][..LANES];
            let hi = &padded[i + c * (radius + k)..][..LANES];
            for ((a, &l), &h) in acc.iter_mut().zip(lo).zip(hi) {
                // At most 510: no overflow, and `i16` lets the compiler use 16-bit multiplies.
                *a += i32::from(t) * i32::from(l.wrapping_add(h));
            }
        }
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = ((a + (1 << (H_SHIFT - 1))) >> H_SHIFT) as i16;
        }
        i += LANES;
    }
    for (j, o) in blocks.into_remainder().iter_mut().enumerate() {
        let j = i + j;
        let mut a = i32::from(terms[0]) * i32::from(padded[j + c * radius]);
        for (k, &t) in terms.iter().enumerate().skip(1) {
            a += i32::from(t)
                * (i32::from(padded[j + c * (radius - k)])
                    + i32::from(padded[j + c * (radius + k)]));
        }
        *o = ((a + (1 << (H_SHIFT - 1))) >> H_SHIFT) as i16;
    }
}

/// Output rows (`out`, as many as `orig`'s rows) from the horizontal rows around them
/// (`rows`, top to bottom: `2r` more than the output rows), combined with the original rows
/// per `mode`; column strip by column strip, so that a strip's input rows stay in L1.
fn vertical(
    rows: &[&[i16]],
    (terms, pairs): (&[i16], &[i32]),
    passes: Passes,
    orig: &[u8],
    mode: Mode,
    out: &mut [u8],
) {
    let row_len = rows[0].len();
    let done = match passes {
        Passes::Portable => 0,
        #[cfg(target_arch = "x86_64")]
        Passes::Vector(isa) => isa.vertical(rows, (pairs, terms.len()), orig, mode, out),
    };
    for start in (done..row_len).step_by(STRIP) {
        let end = (start + STRIP).min(row_len);
        for (g, (out, orig)) in out
            .chunks_exact_mut(row_len)
            .zip(orig.chunks_exact(row_len))
            .enumerate()
        {
            vertical_portable(
                &rows[g..],
                start,
                terms,
                &orig[start..end],
                mode,
                &mut out[start..end],
            );
        }
    }
}

/// One output row's samples `first..first + out.len()` from the `2r + 1` horizontal rows
/// around it.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn vertical_portable(
    rows: &[&[i16]],
    first: usize,
    terms: &[i16],
    orig: &[u8],
    mode: Mode,
    out: &mut [u8],
) {
    let radius = terms.len() - 1;
    for (b, (out, orig)) in out.chunks_mut(LANES).zip(orig.chunks(LANES)).enumerate() {
        let i = first + b * LANES;
        let n = out.len();
        let mut acc = [0i32; LANES];
        let acc = &mut acc[..n];
        for (a, &s) in acc.iter_mut().zip(&rows[radius][i..i + n]) {
            *a = i32::from(terms[0]) * i32::from(s);
        }
        for (k, &t) in terms.iter().enumerate().skip(1) {
            let lo = &rows[radius - k][i..i + n];
            let hi = &rows[radius + k][i..i + n];
            for ((a, &l), &h) in acc.iter_mut().zip(lo).zip(hi) {
                // At most 32640: no overflow.
                *a += i32::from(t) * i32::from(l.wrapping_add(h));
            }
        }
        finish_sums(acc, orig, mode, out);
    }
}

/// Output samples from vertical sums.
#[inline(always)]
fn finish_sums(acc: &[i32], orig: &[u8], mode: Mode, out: &mut [u8]) {
    match mode {
        Mode::Blur => {
            for (o, &a) in out.iter_mut().zip(acc) {
                *o = ((a + (1 << (V_SHIFT - 1))) >> V_SHIFT) as u8;
            }
        }
        Mode::Unsharp { .. } => {
            let mut blur = [0f32; LANES];
            let blur = &mut blur[..acc.len()];
            for (b, &a) in blur.iter_mut().zip(acc) {
                *b = blur_levels(((a + (1 << (V_FRAC_SHIFT - 1))) >> V_FRAC_SHIFT) as i16);
            }
            finish(blur, orig, mode, out);
        }
    }
}

/// The blur in levels from its fixed point (levels × 2^H_FRAC).
#[inline(always)]
fn blur_levels(fixed: i16) -> f32 {
    f32::from(fixed) * (1.0 / (1 << H_FRAC) as f32)
}

#[cfg(target_arch = "x86_64")]
mod x86;

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
    fn every_kind_of_inner_loop_gives_the_same_bytes() {
        let portable = Passes::Portable;
        #[cfg(target_arch = "x86_64")]
        let kinds: Vec<Passes> = x86::Isa::all().into_iter().map(Passes::Vector).collect();
        #[cfg(not(target_arch = "x86_64"))]
        let kinds: Vec<Passes> = vec![];
        let unsharp = Mode::Unsharp {
            amount: 1.5,
            threshold_levels: 2.0,
        };
        for (w, h, channels, sigma) in [(700, 40, 3, 3.0), (333, 19, 1, 1.2), (31, 9, 3, 7.5)] {
            let src = noise(w, h, channels);
            let weights = gaussian_weights(sigma);
            for mode in [Mode::Blur, unsharp] {
                let want = filter_with(&src, (w, h, channels), &weights, mode, portable);
                for &kind in &kinds {
                    let got = filter_with(&src, (w, h, channels), &weights, mode, kind);
                    assert!(got == want, "{kind:?} {w}x{h}x{channels} σ{sigma} {mode:?}");
                }
            }
        }
    }

    #[test]
    fn fixed_weights_sum_to_one() {
        for sigma in [0.5, 1.0, 3.0, 7.9, 40.0] {
            let terms = fixed_terms(&gaussian_weights(sigma));
            let sum: i32 = terms[0] as i32 + 2 * terms[1..].iter().map(|&t| t as i32).sum::<i32>();
            assert_eq!(sum, 1 << WEIGHT_BITS, "σ{sigma}");
            assert!(terms.iter().all(|&t| t >= 0), "σ{sigma}");
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
