//! The box-cascade Gaussian (what `high` and below run for large sigmas, see
//! [`super::box_blur`]) straight from opaque 8-bit RGB (or grey) to the same: the 8-bit
//! working format of the quality presets for `gaussian_blur` and `sharpen` (see
//! [`super::u8_lead`]).
//!
//! The same boxes over the same edge-replicated line as the f32 path, so the result is the
//! same composite kernel: samples enter as 8.8 fixed point (`u16`, level × 256), each window
//! sum is exact in a `u32`, and each pass rounds its mean back to 8.8 (1/512 of a level);
//! the last pass hands its mean to the blur or unsharp mask in f32, rounded once to a level.
//! Bands of 256 output rows run in parallel on the current rayon pool, each in buffers its
//! worker reuses (no image-sized intermediate). A band's vertical passes go first, on strips
//! 16 px wide over the rows the band needs (grown by the boxes' total radius): each row of a
//! strip is a few SIMD vectors of running sums, one add, one subtract and one multiply per
//! sample and pass. Their result is stored in blocks of 16 rows turned column-major, so that
//! the horizontal passes run the same vector code down the columns of 16 rows at once instead
//! of a serial running sum along each row.

use rayon::prelude::*;

use super::u8_filter::{Mode, finish};

/// Columns per vertical strip and rows per horizontal group: a strip's rows and a group's
/// columns are 16·C samples, whole SIMD vectors.
const BLOCK_PX: usize = 16;

/// Output rows per parallel band (a multiple of [`BLOCK_PX`]).
const BAND_ROWS: usize = 256;

/// Widest box (px) whose sums stay exact in f32 (`width · 65 535 < 2²⁴`).
pub const MAX_BOX_PX: u32 = 255;

/// Memory [`box_u8`] allocates besides its output, per worker (`threads`): a band's 16-bit
/// intermediate, two strip or column buffers, and a group's f32 means and row.
pub fn scratch_bytes(
    (width_px, height_px): (u32, u32),
    channels: usize,
    radii: &[u32],
    threads: usize,
) -> u64 {
    let pad = 2 * u64::from(radii.iter().sum::<u32>()) + 1;
    let (c, lanes) = (channels as u64, (BLOCK_PX * channels) as u64);
    let band_rows = u64::from(height_px).min(BAND_ROWS as u64);
    let band = band_rows * u64::from(width_px) * c * 2;
    let strip = 2 * (band_rows + pad) * lanes * 2;
    let group = 2 * (u64::from(width_px) + pad) * lanes * 2 + u64::from(width_px) * lanes * 4;
    let row = u64::from(width_px) * c * 4;
    threads as u64 * (band + strip.max(group) + row + lanes * 4)
}

/// Blur (or sharpen, per `mode`) `src`, `width`×`height` px of `channels` (1 or 3)
/// interleaved samples, with the boxes of `radii` (each `2r + 1` ≤ [`MAX_BOX_PX`]) along both
/// axes. Returns the new samples.
pub fn box_u8(
    src: &[u8],
    (width, height, channels): (usize, usize, usize),
    radii: &[u32],
    mode: Mode,
) -> Vec<u8> {
    debug_assert_eq!(src.len(), width * height * channels);
    debug_assert!(radii.iter().all(|&r| 2 * r < MAX_BOX_PX));
    let mut out = vec![0u8; src.len()];
    if src.is_empty() || radii.is_empty() {
        out.copy_from_slice(src);
        return out;
    }
    let radii: Vec<usize> = radii.iter().map(|&r| r as usize).collect();
    // The channel count is a constant in the per-pixel copies (no `memmove` calls).
    if channels == 1 {
        bands::<1>(src, (width, height), &radii, mode, &mut out);
    } else {
        bands::<3>(src, (width, height), &radii, mode, &mut out);
    }
    out
}

/// A worker's buffers, reused from band to band (fresh ones would be page-faulted in). They
/// are resized, not cleared: every sample is written before it is read but the slack rows,
/// whose (stale) values only update a running sum after its last mean, and zeroing them was
/// 7% of a σ 20 blur.
#[derive(Default)]
struct Scratch {
    mid: Vec<u16>,
    a: Vec<u16>,
    b: Vec<u16>,
    sums: Vec<u32>,
    means: Vec<f32>,
    row: Vec<f32>,
}

/// Each band of [`BAND_ROWS`] output rows in parallel: its vertical passes into a band-sized
/// intermediate (the rows it needs, grown by the boxes' total radius), then its horizontal
/// passes and the output.
fn bands<const C: usize>(
    src: &[u8],
    (width, height): (usize, usize),
    radii: &[usize],
    mode: Mode,
    out: &mut [u8],
) {
    let row_len = width * C;
    out.par_chunks_mut(BAND_ROWS * row_len)
        .enumerate()
        .for_each_init(Scratch::default, |scratch, (band, dst)| {
            let y0 = band * BAND_ROWS;
            vertical::<C>(
                src,
                (width, height),
                y0,
                dst.len() / row_len,
                radii,
                scratch,
            );
            let orig = &src[y0 * row_len..y0 * row_len + dst.len()];
            horizontal::<C>(width, radii, mode, orig, dst, scratch);
        });
}

/// The vertical passes for output rows `y0 .. y0 + rows`, strip by strip (`BLOCK_PX` columns),
/// into `scratch.mid`, laid out for the horizontal passes: strip after strip, and in a strip,
/// block after block of up to `BLOCK_PX` rows, each block column-major (`[x][row][channel]`).
fn vertical<const C: usize>(
    src: &[u8],
    (width, height): (usize, usize),
    y0: usize,
    rows: usize,
    radii: &[usize],
    scratch: &mut Scratch,
) {
    let pad: usize = radii.iter().sum();
    let row_len = width * C;
    let Scratch {
        mid, a, b, sums, ..
    } = scratch;
    mid.resize(rows * row_len, 0u16);
    for (s, strip) in mid.chunks_mut(BLOCK_PX * C * rows).enumerate() {
        let x0 = s * BLOCK_PX;
        let lanes = strip.len() / rows;
        // The strip's rows, edge-replicated `pad` rows beyond the image, one slack row.
        load(a, rows + 2 * pad, lanes, |i| {
            let y = (y0 + i).saturating_sub(pad).min(height - 1);
            &src[y * row_len + x0 * C..][..lanes]
        });
        all_but_last(a, b, sums, lanes, rows + 2 * pad, radii);
        // The last pass, written block-wise column-major.
        let r = radii[radii.len() - 1];
        b.resize(rows * lanes, 0u16);
        pass_u16(a, lanes, rows, r, sums, b);
        for (block, block_in) in strip
            .chunks_mut(BLOCK_PX * lanes)
            .zip(b.chunks(BLOCK_PX * lanes))
        {
            let block_rows = block_in.len() / lanes;
            for (j, row) in block_in.chunks_exact(lanes).enumerate() {
                for (x, px) in row.chunks_exact(C).enumerate() {
                    let at = (x * block_rows + j) * C;
                    block[at..at + C].copy_from_slice(px);
                }
            }
        }
    }
}

/// The horizontal passes over `scratch.mid` (see [`vertical`]), a group of `BLOCK_PX` rows at
/// a time (each column of the group one row of SIMD lanes), then the blur or unsharp mask of
/// the band's original rows `orig` into `dst`.
fn horizontal<const C: usize>(
    width: usize,
    radii: &[usize],
    mode: Mode,
    orig: &[u8],
    dst: &mut [u8],
    scratch: &mut Scratch,
) {
    let pad: usize = radii.iter().sum();
    let row_len = width * C;
    let band_rows = dst.len() / row_len;
    let Scratch {
        mid,
        a,
        b,
        sums,
        means,
        row,
    } = scratch;
    for (g, group) in dst.chunks_mut(BLOCK_PX * row_len).enumerate() {
        let group_rows = group.len() / row_len;
        let lanes = group_rows * C;
        // Column x of the group is row x of `a`, after `pad` replicated columns.
        a.resize((width + 2 * pad + 1) * lanes, 0u16);
        for x0 in (0..width).step_by(BLOCK_PX) {
            let strip_px = (width - x0).min(BLOCK_PX);
            let block = x0 * C * band_rows + g * BLOCK_PX * strip_px * C;
            let at = (pad + x0) * lanes;
            a[at..at + strip_px * lanes].copy_from_slice(&mid[block..block + strip_px * lanes]);
        }
        let (first, last) = (pad * lanes, (pad + width - 1) * lanes);
        for x in 0..pad {
            a.copy_within(first..first + lanes, x * lanes);
            a.copy_within(last..last + lanes, (pad + width + x) * lanes);
        }
        all_but_last(a, b, sums, lanes, width + 2 * pad, radii);
        let r = radii[radii.len() - 1];
        means.resize(width * lanes, 0f32);
        pass_f32(a, lanes, width, r, sums, means);
        // Back to rows, then the output.
        row.resize(row_len, 0f32);
        for (j, out_row) in group.chunks_exact_mut(row_len).enumerate() {
            for (x, px) in row.chunks_exact_mut(C).enumerate() {
                let at = x * lanes + j * C;
                px.copy_from_slice(&means[at..at + C]);
            }
            let y = g * BLOCK_PX + j;
            finish_rows(row, &orig[y * row_len..(y + 1) * row_len], mode, out_row);
        }
    }
}

/// Every box pass of `radii` but the last down `a` (`rows` rows of `lanes` samples and a slack
/// row), through `b`; the result is left in `a`.
fn all_but_last(
    a: &mut Vec<u16>,
    b: &mut Vec<u16>,
    sums: &mut Vec<u32>,
    lanes: usize,
    rows: usize,
    radii: &[usize],
) {
    let mut rows = rows;
    for &r in &radii[..radii.len() - 1] {
        rows -= 2 * r;
        b.resize((rows + 1) * lanes, 0u16);
        pass_u16(a, lanes, rows, r, sums, b);
        std::mem::swap(a, b);
    }
}

/// [`finish`] over whole rows, compiled for the machine's vector width.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn finish_rows(blur: &[f32], orig: &[u8], mode: Mode, out: &mut [u8]) {
    finish(blur, orig, mode, out);
}

/// Fill `buffer` with `rows` rows of `lanes` samples from `row(i)` as 8.8 fixed point, and
/// one slack row.
fn load<'s>(buffer: &mut Vec<u16>, rows: usize, lanes: usize, row: impl Fn(usize) -> &'s [u8]) {
    buffer.resize((rows + 1) * lanes, 0u16);
    for (i, out) in buffer.chunks_exact_mut(lanes).take(rows).enumerate() {
        for (o, &v) in out.iter_mut().zip(row(i)) {
            *o = u16::from(v) << 8;
        }
    }
}

/// How a box's mean is stored.
trait Mean: Copy {
    /// The mean `sum · scale`, where `scale` is one over the box width (`u16`: in 8.8, rounded)
    /// or over the width times 256 (`f32`: in levels).
    fn mean(sum: u32, scale: f32) -> Self;
}

impl Mean for u16 {
    #[inline(always)]
    fn mean(sum: u32, scale: f32) -> u16 {
        // SAFETY: a mean of 8.8 samples plus one half lies in 0.5..=65 535.5, which an i32
        // represents (a saturating `as` would not vectorise).
        unsafe { (sum as f32 * scale + 0.5).to_int_unchecked::<i32>() as u16 }
    }
}

impl Mean for f32 {
    #[inline(always)]
    fn mean(sum: u32, scale: f32) -> f32 {
        sum as f32 * scale
    }
}

/// One box pass of radius `r` down `src` (`lanes` samples per row, at least `out_rows + 2r + 1`
/// rows, the last a slack row): `out_rows` rows of means into `dst`, each lane on its own.
#[inline(always)]
fn box_pass<T: Mean>(
    src: &[u16],
    lanes: usize,
    out_rows: usize,
    r: usize,
    scale: f32,
    sums: &mut Vec<u32>,
    dst: &mut [T],
) {
    let window = 2 * r + 1;
    sums.clear();
    sums.resize(lanes, 0);
    for row in src[..window * lanes].chunks_exact(lanes) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += u32::from(v);
        }
    }
    for (i, out) in dst.chunks_exact_mut(lanes).take(out_rows).enumerate() {
        let add = &src[(i + window) * lanes..(i + window + 1) * lanes];
        let sub = &src[i * lanes..(i + 1) * lanes];
        for (((o, s), &a), &d) in out.iter_mut().zip(sums.iter_mut()).zip(add).zip(sub) {
            *o = T::mean(*s, scale);
            // The window holds `d`, so the sum never goes below zero.
            *s = *s + u32::from(a) - u32::from(d);
        }
    }
}

/// [`box_pass`] to 8.8 means.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn pass_u16(
    src: &[u16],
    lanes: usize,
    out_rows: usize,
    r: usize,
    sums: &mut Vec<u32>,
    dst: &mut [u16],
) {
    let scale = 1.0 / (2 * r + 1) as f32;
    box_pass(src, lanes, out_rows, r, scale, sums, dst);
}

/// [`box_pass`] to means in levels.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn pass_f32(
    src: &[u16],
    lanes: usize,
    out_rows: usize,
    r: usize,
    sums: &mut Vec<u32>,
    dst: &mut [f32],
) {
    let scale = 1.0 / ((2 * r + 1) * 256) as f32;
    box_pass(src, lanes, out_rows, r, scale, sums, dst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::box_blur::{box_radii, composite_weights};
    use crate::engine::u8_filter::{separable_reference, test_noise};

    /// The composite kernel of `radii` over edge-replicated samples, in f64.
    fn reference(src: &[u8], layout: (usize, usize, usize), radii: &[u32]) -> Vec<f64> {
        separable_reference(src, layout, &composite_weights(radii))
    }

    #[test]
    fn boxes_are_the_composite_kernel_within_rounding_at_every_size() {
        for channels in [3, 1] {
            for (w, h, sigma, passes) in [
                (1, 1, 2.0, 3),
                (5, 3, 3.0, 3),
                (70, 37, 2.0, 2),
                (23, 90, 5.0, 3),
                (130, 67, 8.0, 3),
                // Several bands, the last a partial one.
                (7, 530, 4.0, 3),
                (19, 300, 2.0, 2),
            ] {
                let radii = box_radii(sigma, passes);
                assert!(!radii.is_empty());
                let src = test_noise(w * h * channels, 0x9e37_79b9);
                let got = box_u8(&src, (w, h, channels), &radii, Mode::Blur);
                let want = reference(&src, (w, h, channels), &radii);
                for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
                    // Rounding to a level, plus 1/512 of a level per pass.
                    assert!(
                        (f64::from(g) - e).abs() <= 0.52,
                        "{w}x{h}x{channels} σ{sigma} {radii:?} at {i}: {g} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn flat_stays_flat_and_unsharp_follows_the_definition() {
        let radii = box_radii(4.0, 3);
        let flat = vec![201u8; 33 * 17 * 3];
        assert_eq!(box_u8(&flat, (33, 17, 3), &radii, Mode::Blur), flat);
        let (w, h) = (48, 29);
        let src = test_noise(w * h * 3, 7);
        let mode = Mode::Unsharp {
            amount: 0.8,
            threshold_levels: 0.0,
        };
        let got = box_u8(&src, (w, h, 3), &radii, mode);
        let blur = reference(&src, (w, h, 3), &radii);
        for (i, ((&g, &b), &v)) in got.iter().zip(&blur).zip(&src).enumerate() {
            let e = (f64::from(v) + 0.8 * (f64::from(v) - b)).clamp(0.0, 255.0);
            assert!((f64::from(g) - e).abs() <= 0.52, "at {i}: {g} vs {e}");
        }
    }
}
