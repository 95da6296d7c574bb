//! The passes' inner loops on x86-64 vectors (AVX-512 BW, with or without VNNI, and AVX2):
//! the symmetric taps' samples added in `i16`, then two terms multiplied and summed into
//! `i32` per `vpmaddwd` (`vpdpwssd` with VNNI), the samples of two terms interleaved by
//! `vpunpck[lh]wd`, whose order `vpackssdw` undoes. Four vectors at a time, so that eight
//! sums are in flight. The integers are the portable loops' ones, so the bytes are too.
//!
//! One generic body per pass over a [`Simd`] vector type; the entry points at the bottom
//! compile it for each instruction set (the bodies are `#[inline(always)]`, so the
//! intrinsics inline into the entry points, which have the target features).

use super::{H_SHIFT, Mode, STRIP, V_FRAC_SHIFT, V_SHIFT, blur_levels, finish};
use std::arch::x86_64::*;

/// Vectors computed together.
const BLOCK: usize = 4;

/// The vector operations the passes use, on `i16` samples and `i32` sums.
trait Simd {
    /// A vector.
    type V: Copy;
    /// `i16` samples per vector.
    const N: usize;
    unsafe fn load(p: *const i16) -> Self::V;
    unsafe fn store(p: *mut i16, v: Self::V);
    /// Samples (within 0..=255) stored as bytes.
    unsafe fn store_u8(p: *mut u8, v: Self::V);
    unsafe fn zero() -> Self::V;
    unsafe fn splat32(v: i32) -> Self::V;
    unsafe fn add16(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn add32(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn unpack_lo16(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn unpack_hi16(a: Self::V, b: Self::V) -> Self::V;
    /// `acc` plus the pairwise products of `a` and `w` summed.
    unsafe fn dot(acc: Self::V, a: Self::V, w: Self::V) -> Self::V;
    unsafe fn shift_right32<const S: u32>(v: Self::V) -> Self::V;
    /// `i32`s to `i16` (saturating), `lo`'s then `hi`'s per 128-bit lane.
    unsafe fn pack32(lo: Self::V, hi: Self::V) -> Self::V;
}

/// AVX-512 BW (`VNNI`: with `vpdpwssd`).
struct Avx512<const VNNI: bool>;

impl<const VNNI: bool> Simd for Avx512<VNNI> {
    type V = __m512i;
    const N: usize = 32;
    #[inline(always)]
    unsafe fn load(p: *const i16) -> __m512i {
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut i16, v: __m512i) {
        unsafe { _mm512_storeu_si512(p.cast(), v) }
    }
    #[inline(always)]
    unsafe fn store_u8(p: *mut u8, v: __m512i) {
        unsafe { _mm256_storeu_si256(p.cast(), _mm512_cvtusepi16_epi8(v)) }
    }
    #[inline(always)]
    unsafe fn zero() -> __m512i {
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    unsafe fn splat32(v: i32) -> __m512i {
        unsafe { _mm512_set1_epi32(v) }
    }
    #[inline(always)]
    unsafe fn add16(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_add_epi16(a, b) }
    }
    #[inline(always)]
    unsafe fn add32(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_add_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn unpack_lo16(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_unpacklo_epi16(a, b) }
    }
    #[inline(always)]
    unsafe fn unpack_hi16(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_unpackhi_epi16(a, b) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m512i, a: __m512i, w: __m512i) -> __m512i {
        unsafe {
            if VNNI {
                _mm512_dpwssd_epi32(acc, a, w)
            } else {
                _mm512_add_epi32(acc, _mm512_madd_epi16(a, w))
            }
        }
    }
    #[inline(always)]
    unsafe fn shift_right32<const S: u32>(v: __m512i) -> __m512i {
        unsafe { _mm512_srai_epi32::<S>(v) }
    }
    #[inline(always)]
    unsafe fn pack32(lo: __m512i, hi: __m512i) -> __m512i {
        unsafe { _mm512_packs_epi32(lo, hi) }
    }
}

/// AVX2.
struct Avx2;

impl Simd for Avx2 {
    type V = __m256i;
    const N: usize = 16;
    #[inline(always)]
    unsafe fn load(p: *const i16) -> __m256i {
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut i16, v: __m256i) {
        unsafe { _mm256_storeu_si256(p.cast(), v) }
    }
    #[inline(always)]
    unsafe fn store_u8(p: *mut u8, v: __m256i) {
        unsafe {
            // Bytes 0..8 and 16..24 hold the samples; gather them in the low half.
            let bytes = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi16(v, v));
            _mm_storeu_si128(p.cast(), _mm256_castsi256_si128(bytes));
        }
    }
    #[inline(always)]
    unsafe fn zero() -> __m256i {
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn splat32(v: i32) -> __m256i {
        unsafe { _mm256_set1_epi32(v) }
    }
    #[inline(always)]
    unsafe fn add16(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_add_epi16(a, b) }
    }
    #[inline(always)]
    unsafe fn add32(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_add_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn unpack_lo16(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_unpacklo_epi16(a, b) }
    }
    #[inline(always)]
    unsafe fn unpack_hi16(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_unpackhi_epi16(a, b) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, a: __m256i, w: __m256i) -> __m256i {
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(a, w)) }
    }
    #[inline(always)]
    unsafe fn shift_right32<const S: u32>(v: __m256i) -> __m256i {
        // `vpsrad` by a register: the immediate form takes an `i32` count.
        unsafe { _mm256_sra_epi32(v, _mm_cvtsi32_si128(S as i32)) }
    }
    #[inline(always)]
    unsafe fn pack32(lo: __m256i, hi: __m256i) -> __m256i {
        unsafe { _mm256_packs_epi32(lo, hi) }
    }
}

/// The sums over the terms of `B` vectors (`term(k, v)`: term k's samples of vector v), each
/// in two vectors of `i32` (`vpunpck[lh]wd` order); `pairs` are the terms' weights two by two.
#[inline(always)]
unsafe fn sums<S: Simd, const B: usize>(
    pairs: &[i32],
    terms: usize,
    term: impl Fn(usize, usize) -> S::V,
) -> [(S::V, S::V); B] {
    unsafe {
        let mut acc = [(S::zero(), S::zero()); B];
        for (j, &w) in pairs.iter().enumerate() {
            let w = S::splat32(w);
            for (v, (lo, hi)) in acc.iter_mut().enumerate() {
                let a = term(2 * j, v);
                // An odd count's last term pairs with itself, under a zero weight.
                let b = if 2 * j + 1 < terms {
                    term(2 * j + 1, v)
                } else {
                    a
                };
                *lo = S::dot(*lo, S::unpack_lo16(a, b), w);
                *hi = S::dot(*hi, S::unpack_hi16(a, b), w);
            }
        }
        acc
    }
}

/// `(lo, hi)` rounded and shifted right by `SHIFT`, as `i16` in sample order.
#[inline(always)]
unsafe fn narrow<S: Simd, const SHIFT: u32>((lo, hi): (S::V, S::V)) -> S::V {
    unsafe {
        let round = S::splat32(1 << (SHIFT - 1));
        let lo = S::shift_right32::<SHIFT>(S::add32(lo, round));
        let hi = S::shift_right32::<SHIFT>(S::add32(hi, round));
        S::pack32(lo, hi)
    }
}

/// `B` vectors of the horizontal pass from sample `i` on.
#[inline(always)]
unsafe fn horizontal_block<S: Simd, const B: usize>(
    padded: &[i16],
    c: usize,
    (pairs, terms): (&[i32], usize),
    out: &mut [i16],
    i: usize,
) {
    let radius = terms - 1;
    debug_assert!(i + S::N * B + 2 * radius * c <= padded.len() && i + S::N * B <= out.len());
    // SAFETY: `padded` holds `out.len() + 2r·c` samples, so every load is inside it.
    unsafe {
        let p = padded.as_ptr().add(i);
        let load = |at: usize| S::load(p.add(at));
        let acc = sums::<S, B>(pairs, terms, |k, v| {
            let at = S::N * v + c * radius;
            if k == 0 {
                load(at)
            } else {
                S::add16(load(at - c * k), load(at + c * k))
            }
        });
        for (v, acc) in acc.into_iter().enumerate() {
            S::store(
                out.as_mut_ptr().add(i + S::N * v),
                narrow::<S, H_SHIFT>(acc),
            );
        }
    }
}

/// The horizontal pass of `out` from `padded` (`out.len() + 2r·c` samples); returns the
/// samples done (a multiple of the vector).
#[inline(always)]
unsafe fn horizontal<S: Simd>(
    padded: &[i16],
    c: usize,
    weights: (&[i32], usize),
    out: &mut [i16],
) -> usize {
    let mut i = 0;
    unsafe {
        while i + S::N * BLOCK <= out.len() {
            horizontal_block::<S, BLOCK>(padded, c, weights, out, i);
            i += S::N * BLOCK;
        }
        while i + S::N <= out.len() {
            horizontal_block::<S, 1>(padded, c, weights, out, i);
            i += S::N;
        }
    }
    i
}

/// `B` vectors of an output row from sample `i` on; `rows[k]` points at the horizontal row
/// `k − r` rows from it.
#[inline(always)]
unsafe fn vertical_block<S: Simd, const B: usize>(
    rows: &[*const i16],
    pairs: &[i32],
    (orig, mode, out): (&[u8], Mode, &mut [u8]),
    i: usize,
) {
    let terms = rows.len() / 2 + 1;
    let radius = terms - 1;
    // SAFETY: every row holds at least `out.len()` ≥ `i + N·B` samples.
    unsafe {
        let load = |r: usize, v: usize| S::load(rows[r].add(i + S::N * v));
        let acc = sums::<S, B>(pairs, terms, |k, v| {
            if k == 0 {
                load(radius, v)
            } else {
                S::add16(load(radius - k, v), load(radius + k, v))
            }
        });
        for (v, acc) in acc.into_iter().enumerate() {
            let at = i + S::N * v;
            match mode {
                Mode::Blur => S::store_u8(out.as_mut_ptr().add(at), narrow::<S, V_SHIFT>(acc)),
                Mode::Unsharp { .. } => {
                    let mut fixed = [0i16; 32];
                    S::store(fixed.as_mut_ptr(), narrow::<S, V_FRAC_SHIFT>(acc));
                    let mut blur = [0f32; 32];
                    for (b, &f) in blur.iter_mut().zip(&fixed[..S::N]) {
                        *b = blur_levels(f);
                    }
                    let n = S::N;
                    finish(&blur[..n], &orig[at..at + n], mode, &mut out[at..at + n]);
                }
            }
        }
    }
}

/// Output rows (as many as `orig`'s rows) from the `2r` more horizontal rows around them;
/// column strip by column strip. Returns the samples done at the start of every row.
#[inline(always)]
unsafe fn vertical<S: Simd>(
    rows: &[&[i16]],
    (pairs, terms): (&[i32], usize),
    orig: &[u8],
    mode: Mode,
    out: &mut [u8],
) -> usize {
    let row_len = rows[0].len();
    let done = row_len / S::N * S::N;
    let group = out.len() / row_len;
    let taps = 2 * terms - 1;
    let ptrs: Vec<*const i16> = rows.iter().map(|row| row.as_ptr()).collect();
    for start in (0..done).step_by(STRIP) {
        let end = (start + STRIP).min(done);
        for g in 0..group {
            let rows = &ptrs[g..g + taps];
            let orig = &orig[g * row_len..][..end];
            let out = &mut out[g * row_len..][..end];
            let mut i = start;
            unsafe {
                while i + S::N * BLOCK <= end {
                    vertical_block::<S, BLOCK>(rows, pairs, (orig, mode, out), i);
                    i += S::N * BLOCK;
                }
                while i < end {
                    vertical_block::<S, 1>(rows, pairs, (orig, mode, out), i);
                    i += S::N;
                }
            }
        }
    }
    done
}

/// An instruction set with vector passes that this CPU has: only [`Isa::detect`] and
/// [`Isa::all`] make one (the field is private), which is what makes the passes safe to call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Isa(Kind);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Avx512Vnni,
    Avx512,
    Avx2,
}

impl Isa {
    /// The best this CPU has.
    pub(super) fn detect() -> Option<Isa> {
        Self::all().into_iter().next()
    }

    /// Every one this CPU has, best first.
    pub(super) fn all() -> Vec<Isa> {
        let mut all = vec![];
        if is_x86_feature_detected!("avx512bw") {
            if is_x86_feature_detected!("avx512vnni") {
                all.push(Isa(Kind::Avx512Vnni));
            }
            all.push(Isa(Kind::Avx512));
        }
        if is_x86_feature_detected!("avx2") {
            all.push(Isa(Kind::Avx2));
        }
        all
    }

    /// The horizontal pass of `out` from `padded` (`out.len() + 2r·c` samples, `c` a pixel);
    /// returns the samples done, from the first.
    pub(super) fn horizontal(
        self,
        padded: &[i16],
        c: usize,
        weights: (&[i32], usize),
        out: &mut [i16],
    ) -> usize {
        assert!(padded.len() >= out.len() + 2 * (weights.1 - 1) * c);
        // SAFETY: the CPU has the instruction set (`self` comes only from `all`), and the
        // loads stay in `padded` (checked above).
        unsafe {
            match self.0 {
                Kind::Avx512Vnni => horizontal_avx512_vnni(padded, c, weights, out),
                Kind::Avx512 => horizontal_avx512(padded, c, weights, out),
                Kind::Avx2 => horizontal_avx2(padded, c, weights, out),
            }
        }
    }

    /// Output rows (`out`, as many as `orig`'s rows) from the horizontal rows around them
    /// (`rows`, `2r` more); returns the samples done at the start of every row.
    pub(super) fn vertical(
        self,
        rows: &[&[i16]],
        weights: (&[i32], usize),
        orig: &[u8],
        mode: Mode,
        out: &mut [u8],
    ) -> usize {
        let row_len = rows[0].len();
        assert!(
            rows.iter().all(|r| r.len() == row_len)
                && orig.len() == out.len()
                && rows.len() == out.len() / row_len + 2 * (weights.1 - 1)
        );
        // SAFETY: as in `horizontal`; every row holds `row_len` samples (checked above).
        unsafe {
            match self.0 {
                Kind::Avx512Vnni => vertical_avx512_vnni(rows, weights, orig, mode, out),
                Kind::Avx512 => vertical_avx512(rows, weights, orig, mode, out),
                Kind::Avx2 => vertical_avx2(rows, weights, orig, mode, out),
            }
        }
    }
}

/// The pass bodies compiled for each instruction set.
macro_rules! entry_points {
    ($($features:literal: $simd:ty => $horizontal:ident, $vertical:ident;)*) => {$(
        #[target_feature(enable = $features)]
        unsafe fn $horizontal(p: &[i16], c: usize, w: (&[i32], usize), out: &mut [i16]) -> usize {
            unsafe { horizontal::<$simd>(p, c, w, out) }
        }

        #[target_feature(enable = $features)]
        unsafe fn $vertical(
            rows: &[&[i16]],
            w: (&[i32], usize),
            orig: &[u8],
            mode: Mode,
            out: &mut [u8],
        ) -> usize {
            unsafe { vertical::<$simd>(rows, w, orig, mode, out) }
        }
    )*};
}

entry_points! {
    "avx512f,avx512bw,avx512vnni": Avx512<true> => horizontal_avx512_vnni, vertical_avx512_vnni;
    "avx512f,avx512bw": Avx512<false> => horizontal_avx512, vertical_avx512;
    "avx2": Avx2 => horizontal_avx2, vertical_avx2;
}
