//! Greyscale conversion and Sobel gradient magnitude on 8-bit samples, to one 8-bit channel:
//! the 8-bit working format of the quality presets for `grayscale` and `edge_detect` (mode
//! `sobel`), see [`super::u8_lead`].
//!
//! Both write one channel where the f32 path writes RGBA with R = G = B, so a grey chain reads
//! and writes a quarter of the bytes until its output is expanded. The arithmetic is the f32
//! path's on levels instead of unit values (f32 sums, rounded once), so a conversion alone is
//! the same bytes but for ties; Sobel after it sees grey rounded to levels, a level or two
//! from the f32 path where the gradient is steep (`tests/ops_contract.rs` bounds it).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::u8_filter::level;
use crate::ops::GreyMix;

/// Rows per parallel band.
const BAND_ROWS: usize = 64;

/// Grey of `src`, interleaved RGB, per `mix`, on the current rayon pool: one sample per
/// pixel.
pub fn grey_from_rgb8(src: &[u8], mix: GreyMix) -> Vec<u8> {
    let pixels = src.len() / 3;
    // Every sample is written below, so the buffer is not zeroed first (a memset of the
    // whole output, a tenth of the conversion's time).
    let mut out = Vec::with_capacity(pixels);
    let band = 16_384;
    out.spare_capacity_mut()[..pixels]
        .par_chunks_mut(band)
        .zip(src.par_chunks(band * 3))
        .for_each(|(dst, rgb)| match mix {
            GreyMix::Weights(w) => weighted(rgb, w, dst),
            GreyMix::Lightness => lightness(rgb, dst),
        });
    // SAFETY: the bands cover `out[..pixels]`, and each kernel writes every sample of its
    // band (one per pixel of `rgb`, which has as many pixels as `dst` has samples).
    unsafe { out.set_len(pixels) };
    out
}

/// `level(wr·r + wg·g + wb·b)` per pixel of `rgb` into `out`: in AVX-512 or AVX2 vectors
/// where the CPU has them, then the portable loop for the rest, which gives the same bytes
/// (the vectors do its f32 operations in its order, without fused multiply-adds). The
/// vectors run at about twice the speed of what the compiler makes of the portable loop.
fn weighted(rgb: &[u8], weights: [f32; 3], out: &mut [MaybeUninit<u8>]) {
    #[cfg(target_arch = "x86_64")]
    let done = x86::weighted(rgb, weights, out);
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    weighted_portable(&rgb[3 * done..], weights, &mut out[done..])
}

#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn weighted_portable(rgb: &[u8], [wr, wg, wb]: [f32; 3], out: &mut [MaybeUninit<u8>]) {
    // A plain loop: the compiler turns the stride-3 loads into vector shuffles (3× faster
    // than gathering fixed-size arrays of pixels first).
    for (px, o) in rgb.chunks_exact(3).zip(out) {
        o.write(level(
            wr * f32::from(px[0]) + wg * f32::from(px[1]) + wb * f32::from(px[2]),
        ));
    }
}

/// The vector loops of [`weighted`].
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// Which loops this CPU can run.
    pub(super) fn has_avx512() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi")
    }

    /// The leading pixels of `rgb` converted into `out` by the widest loop this CPU runs;
    /// returns how many.
    pub(super) fn weighted(rgb: &[u8], weights: [f32; 3], out: &mut [MaybeUninit<u8>]) -> usize {
        if has_avx512() {
            // SAFETY: the features are present.
            unsafe { weighted_avx512(rgb, weights, out) }
        } else if is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present.
            unsafe { weighted_avx2(rgb, weights, out) }
        } else {
            0
        }
    }

    /// Converts the leading pixels of `rgb` into `out`, 16 at a time: each channel's bytes
    /// moved to 32-bit lanes by one `vpermb`; returns how many pixels it did.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VBMI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn weighted_avx512(
        rgb: &[u8],
        [wr, wg, wb]: [f32; 3],
        out: &mut [MaybeUninit<u8>],
    ) -> usize {
        const BLOCK_PX: usize = 16;
        let blocks = (rgb.len() / (3 * BLOCK_PX)).min(out.len() / BLOCK_PX);
        // Byte 3i + c of the block to the low byte of lane i; the other bytes are zeroed by
        // the mask.
        let pick = |c: u8| {
            let mut index = [0u8; 64];
            for i in 0..BLOCK_PX {
                index[4 * i] = 3 * i as u8 + c;
            }
            // SAFETY: `index` is 64 bytes.
            unsafe { _mm512_loadu_si512(index.as_ptr().cast()) }
        };
        let low_bytes: __mmask64 = 0x1111_1111_1111_1111;
        let block_bytes: __mmask64 = (1 << (3 * BLOCK_PX)) - 1;
        let (pick_r, pick_g, pick_b) = (pick(0), pick(1), pick(2));
        let (wr, wg, wb) = (_mm512_set1_ps(wr), _mm512_set1_ps(wg), _mm512_set1_ps(wb));
        let (zero, top, half) = (
            _mm512_setzero_ps(),
            _mm512_set1_ps(255.0),
            _mm512_set1_ps(0.5),
        );
        let src = rgb.as_ptr();
        let dst = out.as_mut_ptr().cast::<u8>();
        for block in 0..blocks {
            // SAFETY: the mask reads the block's 48 bytes only, inside `rgb` by `blocks`.
            let bytes = unsafe {
                _mm512_maskz_loadu_epi8(block_bytes, src.add(3 * BLOCK_PX * block).cast())
            };
            let channel =
                |pick| _mm512_cvtepi32_ps(_mm512_maskz_permutexvar_epi8(low_bytes, pick, bytes));
            let (r, g, b) = (channel(pick_r), channel(pick_g), channel(pick_b));
            // (wr·r + wg·g) + wb·b, as the portable loop rounds it.
            let sum = _mm512_add_ps(
                _mm512_add_ps(_mm512_mul_ps(wr, r), _mm512_mul_ps(wg, g)),
                _mm512_mul_ps(wb, b),
            );
            let bounded = _mm512_min_ps(_mm512_max_ps(sum, zero), top);
            let levels = _mm512_cvttps_epi32(_mm512_add_ps(bounded, half));
            // SAFETY: `blocks` keeps these 16 samples inside `out`.
            unsafe {
                _mm_storeu_si128(
                    dst.add(BLOCK_PX * block).cast(),
                    _mm512_cvtepi32_epi8(levels),
                )
            };
        }
        blocks * BLOCK_PX
    }

    /// Converts the leading pixels of `rgb` into `out`, 32 at a time, while a block and the
    /// 8 bytes its last load reads past it lie inside `rgb`; returns how many pixels it did.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn weighted_avx2(
        rgb: &[u8],
        [wr, wg, wb]: [f32; 3],
        out: &mut [MaybeUninit<u8>],
    ) -> usize {
        const BLOCK_PX: usize = 32;
        let blocks = (rgb.len().saturating_sub(8) / (3 * BLOCK_PX)).min(out.len() / BLOCK_PX);
        // Pixels 0-3 to the low lane, 4-7 to the high one, 12 bytes each from its start.
        let spread = _mm256_setr_epi32(0, 1, 2, 3, 3, 4, 5, 6);
        // One channel's four bytes of a lane to four 32-bit lanes (-1: zero).
        let pick = |c: i8| {
            let z = -1i8;
            _mm256_setr_epi8(
                c,
                z,
                z,
                z,
                c + 3,
                z,
                z,
                z,
                c + 6,
                z,
                z,
                z,
                c + 9,
                z,
                z,
                z, //
                c,
                z,
                z,
                z,
                c + 3,
                z,
                z,
                z,
                c + 6,
                z,
                z,
                z,
                c + 9,
                z,
                z,
                z,
            )
        };
        let (pick_r, pick_g, pick_b) = (pick(0), pick(1), pick(2));
        let (wr, wg, wb) = (_mm256_set1_ps(wr), _mm256_set1_ps(wg), _mm256_set1_ps(wb));
        let (zero, top, half) = (
            _mm256_setzero_ps(),
            _mm256_set1_ps(255.0),
            _mm256_set1_ps(0.5),
        );
        // Bytes of the packed result back in pixel order (see the packs below).
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let src = rgb.as_ptr();
        let dst = out.as_mut_ptr().cast::<u8>();
        for block in 0..blocks {
            let mut levels = [_mm256_setzero_si256(); 4];
            for (k, level) in levels.iter_mut().enumerate() {
                // SAFETY: `blocks` keeps this 32-byte load inside `rgb` (24 bytes of 8
                // pixels, and 8 more within the next pixels or the slack left above).
                let bytes =
                    unsafe { _mm256_loadu_si256(src.add(3 * (block * BLOCK_PX + 8 * k)).cast()) };
                let lanes = _mm256_permutevar8x32_epi32(bytes, spread);
                let r = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(lanes, pick_r));
                let g = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(lanes, pick_g));
                let b = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(lanes, pick_b));
                // (wr·r + wg·g) + wb·b, as the portable loop rounds it.
                let sum = _mm256_add_ps(
                    _mm256_add_ps(_mm256_mul_ps(wr, r), _mm256_mul_ps(wg, g)),
                    _mm256_mul_ps(wb, b),
                );
                let bounded = _mm256_min_ps(_mm256_max_ps(sum, zero), top);
                *level = _mm256_cvttps_epi32(_mm256_add_ps(bounded, half));
            }
            // i32 → u8: per 128-bit lane, pixels 0-3 of each group then 4-7; `order` puts
            // the four-byte pieces back in sequence.
            let packed = _mm256_packus_epi16(
                _mm256_packs_epi32(levels[0], levels[1]),
                _mm256_packs_epi32(levels[2], levels[3]),
            );
            let packed = _mm256_permutevar8x32_epi32(packed, order);
            // SAFETY: `blocks` keeps these 32 samples inside `out`.
            unsafe { _mm256_storeu_si256(dst.add(block * BLOCK_PX).cast(), packed) };
        }
        blocks * BLOCK_PX
    }
}

fn lightness(rgb: &[u8], out: &mut [MaybeUninit<u8>]) {
    for (px, o) in rgb.chunks_exact(3).zip(out) {
        let (hi, lo) = (px[0].max(px[1]).max(px[2]), px[0].min(px[1]).min(px[2]));
        o.write(level(0.5 * (f32::from(hi) + f32::from(lo))));
    }
}

/// Memory [`sobel8`] allocates besides its output, for `threads` workers and rows
/// `width_px` wide.
pub fn sobel_scratch_bytes(width_px: u32, threads: usize) -> u64 {
    threads as u64 * 2 * (u64::from(width_px) + 2) * 4
}

/// Sobel gradient magnitude of `plane` (`width`×`height` grey levels) with clamped
/// neighbours, in levels (at most 255), on the current rayon pool: the `edge_detect` op's
/// `sqrt(gx² + gy²)` on grey input.
pub fn sobel8(plane: &[u8], width: usize, height: usize) -> Vec<u8> {
    debug_assert_eq!(plane.len(), width * height);
    let mut out = vec![0u8; plane.len()];
    if plane.is_empty() {
        return out;
    }
    out.par_chunks_mut(width * BAND_ROWS)
        .enumerate()
        .for_each_init(
            || (vec![0f32; width + 2], vec![0f32; width + 2]),
            |(sums, diffs), (band, dst)| {
                for (j, dst_row) in dst.chunks_exact_mut(width).enumerate() {
                    let y = band * BAND_ROWS + j;
                    let row = |y: usize| &plane[y * width..(y + 1) * width];
                    let (above, here, below) = (
                        row(y.saturating_sub(1)),
                        row(y),
                        row((y + 1).min(height - 1)),
                    );
                    sobel_row(above, here, below, sums, diffs, dst_row);
                }
            },
        );
    out
}

/// One output row from the rows above, at and below it. `sums` and `diffs` (`width + 2`
/// long) hold the vertical parts of the two kernels, padded by one replicated column a side.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn sobel_row(
    above: &[u8],
    here: &[u8],
    below: &[u8],
    sums: &mut [f32],
    diffs: &mut [f32],
    out: &mut [u8],
) {
    let w = out.len();
    for (x, ((&a, &b), &c)) in above.iter().zip(here).zip(below).enumerate() {
        let (a, b, c) = (f32::from(a), f32::from(b), f32::from(c));
        sums[x + 1] = a + 2.0 * b + c;
        diffs[x + 1] = c - a;
    }
    (sums[0], diffs[0]) = (sums[1], diffs[1]);
    (sums[w + 1], diffs[w + 1]) = (sums[w], diffs[w]);
    let (sums, diffs) = (&*sums, &*diffs);
    for (x, o) in out.iter_mut().enumerate() {
        let gx = sums[x + 2] - sums[x];
        let gy = diffs[x] + 2.0 * diffs[x + 1] + diffs[x + 2];
        *o = level((gx * gx + gy * gy).sqrt());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize) -> Vec<u8> {
        crate::engine::u8_filter::test_noise(len, 0x9e37_79b9)
    }

    #[test]
    fn grey_rounds_the_weighted_sum_and_lightness() {
        let rgb = noise(3 * 53);
        let weights = [0.2126, 0.7152, 0.0722];
        let got = grey_from_rgb8(&rgb, GreyMix::Weights(weights));
        for (px, &g) in rgb.chunks_exact(3).zip(&got) {
            let want: f64 = px
                .iter()
                .zip(weights)
                .map(|(&v, w)| f64::from(v) * f64::from(w))
                .sum();
            assert!(
                (f64::from(g) - want).abs() <= 0.5 + 1e-4,
                "{px:?}: {g} vs {want}"
            );
        }
        let got = grey_from_rgb8(&rgb, GreyMix::Lightness);
        for (px, &g) in rgb.chunks_exact(3).zip(&got) {
            let (hi, lo) = (*px.iter().max().unwrap(), *px.iter().min().unwrap());
            assert_eq!(u32::from(g), (u32::from(hi) + u32::from(lo)).div_ceil(2));
        }
        // Grey stays grey.
        let grey: Vec<u8> = (0..=255u8).flat_map(|v| [v; 3]).collect();
        let want: Vec<u8> = (0..=255u8).collect();
        for mix in [
            GreyMix::Weights(weights),
            GreyMix::Weights([0.299, 0.587, 0.114]),
            GreyMix::Weights([1.0 / 3.0; 3]),
            GreyMix::Lightness,
        ] {
            assert_eq!(grey_from_rgb8(&grey, mix), want, "{mix:?}");
        }
    }

    #[test]
    fn the_vector_loop_gives_the_portable_bytes() {
        let rgb = noise(3 * 517 + 2);
        let mixes = [
            [0.2126, 0.7152, 0.0722],
            [0.299, 0.587, 0.114],
            [1.0 / 3.0; 3],
            [1.5, -0.7, 0.9],
            [-2.0, 0.1, 0.05],
        ];
        for weights in mixes {
            // Every length up to three blocks and some, so each tail is met.
            for pixels in (0..110).chain([200, 517]) {
                let rgb = &rgb[..3 * pixels];
                let mut want = vec![MaybeUninit::new(0u8); pixels];
                weighted_portable(rgb, weights, &mut want);
                // SAFETY: both were filled from initialised values.
                let bytes = |v: &[MaybeUninit<u8>]| -> Vec<u8> {
                    v.iter().map(|b| unsafe { b.assume_init() }).collect()
                };
                let mut got = vec![MaybeUninit::new(7u8); pixels];
                weighted(rgb, weights, &mut got);
                assert_eq!(bytes(&got), bytes(&want), "{weights:?}, {pixels} px");
                // Each vector loop this CPU has, not only the widest.
                #[cfg(target_arch = "x86_64")]
                if is_x86_feature_detected!("avx2") {
                    let mut got = vec![MaybeUninit::new(7u8); pixels];
                    // SAFETY: AVX2 is present.
                    let done = unsafe { x86::weighted_avx2(rgb, weights, &mut got) };
                    weighted_portable(&rgb[3 * done..], weights, &mut got[done..]);
                    assert_eq!(bytes(&got), bytes(&want), "AVX2 {weights:?}, {pixels} px");
                }
            }
        }
    }

    #[test]
    fn sobel_matches_the_definition_with_clamped_neighbours() {
        for (w, h) in [(1, 1), (2, 3), (19, 1), (1, 7), (67, 130)] {
            let plane = noise(w * h);
            let got = sobel8(&plane, w, h);
            let at = |x: isize, y: isize| {
                let x = x.clamp(0, w as isize - 1) as usize;
                let y = y.clamp(0, h as isize - 1) as usize;
                f64::from(plane[y * w + x])
            };
            for y in 0..h as isize {
                for x in 0..w as isize {
                    let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                        - at(x - 1, y - 1)
                        - 2.0 * at(x - 1, y)
                        - at(x - 1, y + 1);
                    let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                        - at(x - 1, y - 1)
                        - 2.0 * at(x, y - 1)
                        - at(x + 1, y - 1);
                    let want = (gx * gx + gy * gy).sqrt().min(255.0);
                    let g = got[y as usize * w + x as usize];
                    assert!(
                        (f64::from(g) - want).abs() <= 0.5 + 1e-3,
                        "{w}x{h} at ({x}, {y}): {g} vs {want}"
                    );
                }
            }
        }
        assert_eq!(sobel8(&[90; 12], 4, 3), vec![0; 12]);
    }
}
