//! From a staircase of pixel corners to lines and cubic Béziers.
//!
//! 1. Corners: a point where the directions `corner_scale_px` steps back and ahead differ by
//!    more than the threshold, the sharpest in its neighbourhood. Corners and the chain's ends
//!    are pinned: curves pass through them exactly.
//! 2. Samples: the midpoints of the unit cracks (they lie on the true edge of an aliased shape
//!    far better than the staircase corners), smoothed `smoothing_passes` times with a
//!    [1 2 1] kernel between pinned points.
//! 3. Fitting (Schneider, "An algorithm for automatically fitting digitized curves", Graphics
//!    Gems 1990): a straight line where every sample is within `max_error_px` of the chord,
//!    else a least-squares cubic with end tangents from the samples, reparameterised by Newton
//!    steps, split at the worst sample until within `max_error_px`.

/// A point in pixels.
pub type Pt = [f64; 2];

/// One piece of a fitted curve; its start is the previous piece's end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Seg {
    /// A straight line to the point.
    Line(Pt),
    /// A cubic Bézier: two control points and the end.
    Cubic(Pt, Pt, Pt),
}

impl Seg {
    /// Where the piece ends.
    pub fn end(&self) -> Pt {
        match *self {
            Seg::Line(p) | Seg::Cubic(_, _, p) => p,
        }
    }
}

/// A fitted chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    /// Where it starts.
    pub start: Pt,
    /// The pieces.
    pub segs: Vec<Seg>,
}

impl Curve {
    /// The same curve run backwards.
    pub fn reversed(&self) -> Curve {
        let mut segs = Vec::with_capacity(self.segs.len());
        let mut end = self.start;
        let mut starts = Vec::with_capacity(self.segs.len());
        for s in &self.segs {
            starts.push(end);
            end = s.end();
        }
        for (s, from) in self.segs.iter().zip(starts).rev() {
            segs.push(match *s {
                Seg::Line(_) => Seg::Line(from),
                Seg::Cubic(c1, c2, _) => Seg::Cubic(c2, c1, from),
            });
        }
        Curve { start: end, segs }
    }
}

/// How chains are fitted.
#[derive(Clone, Debug, PartialEq)]
pub struct FitConfig {
    /// A turn sharper than this (radians) is a corner.
    pub corner_threshold_rad: f64,
    /// How far back and ahead (in cracks) the direction is measured for corners.
    pub corner_scale_px: usize,
    /// [1 2 1] smoothing passes over the samples.
    pub smoothing_passes: usize,
    /// Largest distance from a sample to the fitted curve.
    pub max_error_px: f64,
}

fn sub(a: Pt, b: Pt) -> Pt {
    [a[0] - b[0], a[1] - b[1]]
}
fn add(a: Pt, b: Pt) -> Pt {
    [a[0] + b[0], a[1] + b[1]]
}
fn mul(a: Pt, k: f64) -> Pt {
    [a[0] * k, a[1] * k]
}
fn dot(a: Pt, b: Pt) -> f64 {
    a[0] * b[0] + a[1] * b[1]
}
fn len(a: Pt) -> f64 {
    dot(a, a).sqrt()
}
fn unit(a: Pt) -> Pt {
    let l = len(a);
    if l > 1e-12 {
        mul(a, 1.0 / l)
    } else {
        [0.0, 0.0]
    }
}

/// Fits one chain (`closed`: a loop whose last point joins the first). `offsets_px`, when
/// given, holds one sub-pixel shift per crack (towards the right-hand side of the chain's
/// direction) of where the edge really lies; see `edge_offsets` in the parent module.
pub fn fit_chain(
    points: &[(u32, u32)],
    closed: bool,
    offsets_px: Option<&[f64]>,
    config: &FitConfig,
) -> Curve {
    let v: Vec<Pt> = points
        .iter()
        .map(|&(x, y)| [f64::from(x), f64::from(y)])
        .collect();
    let n = v.len();
    if n < 2 {
        return Curve {
            start: v.first().copied().unwrap_or([0.0, 0.0]),
            segs: Vec::new(),
        };
    }
    let corners = find_corners(&v, closed, config);
    // Samples: crack midpoints, with corner points (and open chains' ends) in place.
    let mut samples = Vec::with_capacity(n + corners.len() + 2);
    let mut pinned = Vec::new();
    let cracks = if closed { n } else { n - 1 };
    let mut is_corner = vec![false; n];
    for &c in &corners {
        is_corner[c] = true;
    }
    // The right-hand normal of crack i, scaled by its offset.
    let shift = |i: usize| -> Pt {
        let Some(off) = offsets_px else {
            return [0.0, 0.0];
        };
        let d = sub(v[(i + 1) % n], v[i]);
        mul([-d[1], d[0]], off[i])
    };
    for i in 0..cracks {
        if !closed && i == 0 {
            pinned.push((samples.len(), true));
            samples.push(v[i]);
        } else if is_corner[i] {
            // A corner moves with both edges meeting there.
            pinned.push((samples.len(), true));
            samples.push(add(v[i], add(shift((i + n - 1) % n), shift(i))));
        }
        samples.push(add(mul(add(v[i], v[(i + 1) % n]), 0.5), shift(i)));
    }
    if !closed {
        pinned.push((samples.len(), true));
        samples.push(v[n - 1]);
    } else if pinned.is_empty() {
        // A smooth loop: split it in two at opposite samples with shared tangents.
        pinned.push((0, false));
        pinned.push((samples.len() / 2, false));
    }
    smooth(&mut samples, &pinned, closed, config.smoothing_passes);

    let m = samples.len();
    let tol2 = config.max_error_px * config.max_error_px;
    let tangent_span = 3usize;
    let centre_tangent = |i: usize| -> Pt {
        let a = samples[(i + m - tangent_span.min(m - 1)) % m];
        let b = samples[(i + tangent_span.min(m - 1)) % m];
        unit(sub(b, a))
    };
    let start = samples[pinned[0].0];
    let mut segs = Vec::new();
    let pieces = if closed {
        pinned.len()
    } else {
        pinned.len() - 1
    };
    let mut piece = Vec::new();
    for k in 0..pieces {
        let (a, a_corner) = pinned[k];
        let (b, b_corner) = pinned[(k + 1) % pinned.len()];
        piece.clear();
        let count = if b > a { b - a } else { b + m - a };
        piece.extend((0..=count).map(|i| samples[(a + i) % m]));
        let span = tangent_span.min(piece.len() - 1);
        let t1 = if a_corner {
            unit(sub(piece[span], piece[0]))
        } else {
            centre_tangent(a)
        };
        let t2 = if b_corner {
            unit(sub(piece[piece.len() - 1 - span], piece[piece.len() - 1]))
        } else {
            mul(centre_tangent(b), -1.0)
        };
        fit_piece(&piece, t1, t2, tol2, &mut segs);
    }
    Curve { start, segs }
}

fn find_corners(v: &[Pt], closed: bool, config: &FitConfig) -> Vec<usize> {
    let n = v.len();
    let k = config.corner_scale_px.max(1);
    if n < 3 || (closed && n < 2 * k + 1) {
        return Vec::new();
    }
    let at = |i: isize| -> Pt {
        if closed {
            v[i.rem_euclid(n as isize) as usize]
        } else {
            v[i.clamp(0, n as isize - 1) as usize]
        }
    };
    // On an open chain, only points with k steps on both sides can be corners (clamping at the
    // ends would see a false turn next to every junction).
    let range = if closed { 0..n } else { k..n.saturating_sub(k) };
    let angle: Vec<f64> = (0..n)
        .map(|i| {
            if !range.contains(&i) {
                return 0.0;
            }
            let i = i as isize;
            let a = sub(at(i), at(i - k as isize));
            let b = sub(at(i + k as isize), at(i));
            let (la, lb) = (len(a), len(b));
            if la < 1e-9 || lb < 1e-9 {
                return 0.0;
            }
            (dot(a, b) / (la * lb)).clamp(-1.0, 1.0).acos()
        })
        .collect();
    let mut corners = Vec::new();
    for i in range {
        if angle[i] <= config.corner_threshold_rad {
            continue;
        }
        // Keep the sharpest point within ±k/2 (the first of equals): close enough to merge
        // one rounded corner, not so far that both ends of a 2-px side would merge.
        let sharpest = (1..=(k as isize / 2).max(1)).all(|d| {
            let back = if closed {
                Some((i as isize - d).rem_euclid(n as isize) as usize)
            } else {
                usize::try_from(i as isize - d).ok()
            };
            let ahead = if closed {
                Some((i + d as usize) % n)
            } else {
                Some(i + d as usize).filter(|&j| j < n)
            };
            back.is_none_or(|j| angle[j] < angle[i]) && ahead.is_none_or(|j| angle[j] <= angle[i])
        });
        if !sharpest {
            continue;
        }
        // At the pixel scale the corner is where the staircase turns: a side shorter than the
        // scale (a 2-px bar's end) has a turn at each end, and both are corners.
        let (a, b) = (
            sub(at(i as isize), at(i as isize - k as isize)),
            sub(at(i as isize + k as isize), at(i as isize)),
        );
        let sense = (a[0] * b[1] - a[1] * b[0]).signum();
        let reach = k as isize - 1;
        let mut turns = Vec::new();
        let mut mixed = false;
        for d in -reach..=reach {
            let j = i as isize + d;
            if !closed && (j <= 0 || j >= n as isize - 1) {
                continue;
            }
            let (p, q) = (sub(at(j), at(j - 1)), sub(at(j + 1), at(j)));
            let turn = p[0] * q[1] - p[1] * q[0];
            if turn != 0.0 {
                mixed |= turn.signum() != sense;
                turns.push(if closed {
                    j.rem_euclid(n as isize) as usize
                } else {
                    j as usize
                });
            }
        }
        if !mixed && (1..=2).contains(&turns.len()) {
            corners.extend(turns);
        } else {
            corners.push(i);
        }
    }
    corners.sort_unstable();
    corners.dedup();
    corners
}

fn smooth(samples: &mut [Pt], pinned: &[(usize, bool)], closed: bool, passes: usize) {
    let m = samples.len();
    if m < 3 {
        return;
    }
    let mut fixed = vec![false; m];
    for &(i, corner) in pinned {
        fixed[i] = corner;
    }
    if !closed {
        fixed[0] = true;
        fixed[m - 1] = true;
    }
    let mut prev = samples.to_vec();
    for _ in 0..passes {
        prev.copy_from_slice(samples);
        for i in 0..m {
            if fixed[i] || (!closed && (i == 0 || i == m - 1)) {
                continue;
            }
            let a = prev[(i + m - 1) % m];
            let b = prev[(i + 1) % m];
            samples[i] = [
                0.25 * a[0] + 0.5 * prev[i][0] + 0.25 * b[0],
                0.25 * a[1] + 0.5 * prev[i][1] + 0.25 * b[1],
            ];
        }
    }
}

fn distance2_to_segment(p: Pt, a: Pt, b: Pt) -> f64 {
    let ab = sub(b, a);
    let l2 = dot(ab, ab);
    let t = if l2 > 0.0 {
        (dot(sub(p, a), ab) / l2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let q = add(a, mul(ab, t));
    dot(sub(p, q), sub(p, q))
}

fn bezier(b: &[Pt; 4], t: f64) -> Pt {
    let s = 1.0 - t;
    let (b0, b1, b2, b3) = (s * s * s, 3.0 * s * s * t, 3.0 * s * t * t, t * t * t);
    [
        b0 * b[0][0] + b1 * b[1][0] + b2 * b[2][0] + b3 * b[3][0],
        b0 * b[0][1] + b1 * b[1][1] + b2 * b[2][1] + b3 * b[3][1],
    ]
}

fn fit_piece(p: &[Pt], t1: Pt, t2: Pt, tol2: f64, out: &mut Vec<Seg>) {
    let first = p[0];
    let last = p[p.len() - 1];
    if p[1..p.len() - 1]
        .iter()
        .all(|&q| distance2_to_segment(q, first, last) <= tol2)
    {
        out.push(Seg::Line(last));
        return;
    }
    if p.len() == 3 {
        // Too few samples for a cubic: two lines through the middle sample.
        out.push(Seg::Line(p[1]));
        out.push(Seg::Line(last));
        return;
    }
    let mut u = chord_lengths(p);
    let mut bez = generate(p, &u, t1, t2);
    let (mut err, mut split) = max_error(p, &bez, &u);
    if err <= tol2 {
        out.push(Seg::Cubic(bez[1], bez[2], last));
        return;
    }
    if err <= tol2 * 4.0 {
        for _ in 0..4 {
            reparameterize(p, &bez, &mut u);
            bez = generate(p, &u, t1, t2);
            (err, split) = max_error(p, &bez, &u);
            if err <= tol2 {
                out.push(Seg::Cubic(bez[1], bez[2], last));
                return;
            }
        }
    }
    let split = split.clamp(1, p.len() - 2);
    let tc = unit(sub(p[split - 1], p[split + 1]));
    fit_piece(&p[..=split], t1, tc, tol2, out);
    fit_piece(&p[split..], mul(tc, -1.0), t2, tol2, out);
}

fn chord_lengths(p: &[Pt]) -> Vec<f64> {
    let mut u = Vec::with_capacity(p.len());
    u.push(0.0);
    for i in 1..p.len() {
        u.push(u[i - 1] + len(sub(p[i], p[i - 1])));
    }
    let total = u[p.len() - 1].max(1e-12);
    for x in &mut u {
        *x /= total;
    }
    u
}

fn generate(p: &[Pt], u: &[f64], t1: Pt, t2: Pt) -> [Pt; 4] {
    let first = p[0];
    let last = p[p.len() - 1];
    let mut c = [[0.0; 2]; 2];
    let mut x = [0.0; 2];
    for (&q, &t) in p.iter().zip(u) {
        let s = 1.0 - t;
        let (b0, b1, b2, b3) = (s * s * s, 3.0 * s * s * t, 3.0 * s * t * t, t * t * t);
        let a0 = mul(t1, b1);
        let a1 = mul(t2, b2);
        c[0][0] += dot(a0, a0);
        c[0][1] += dot(a0, a1);
        c[1][1] += dot(a1, a1);
        let tmp = sub(q, add(mul(first, b0 + b1), mul(last, b2 + b3)));
        x[0] += dot(a0, tmp);
        x[1] += dot(a1, tmp);
    }
    c[1][0] = c[0][1];
    let det = c[0][0] * c[1][1] - c[1][0] * c[0][1];
    let (mut al, mut ar) = if det.abs() > 1e-12 {
        (
            (x[0] * c[1][1] - x[1] * c[0][1]) / det,
            (c[0][0] * x[1] - c[1][0] * x[0]) / det,
        )
    } else {
        (0.0, 0.0)
    };
    let seg = len(sub(last, first));
    let eps = 1e-6 * seg;
    if al < eps || ar < eps || al > 2.0 * seg || ar > 2.0 * seg {
        al = seg / 3.0;
        ar = seg / 3.0;
    }
    [first, add(first, mul(t1, al)), add(last, mul(t2, ar)), last]
}

fn max_error(p: &[Pt], bez: &[Pt; 4], u: &[f64]) -> (f64, usize) {
    let mut worst = (0.0, p.len() / 2);
    for i in 1..p.len() - 1 {
        let d = sub(bezier(bez, u[i]), p[i]);
        let e = dot(d, d);
        if e >= worst.0 {
            worst = (e, i);
        }
    }
    worst
}

fn reparameterize(p: &[Pt], bez: &[Pt; 4], u: &mut [f64]) {
    let d1 = [
        mul(sub(bez[1], bez[0]), 3.0),
        mul(sub(bez[2], bez[1]), 3.0),
        mul(sub(bez[3], bez[2]), 3.0),
    ];
    let d2 = [mul(sub(d1[1], d1[0]), 2.0), mul(sub(d1[2], d1[1]), 2.0)];
    for (t, &q) in u.iter_mut().zip(p) {
        let s = 1.0 - *t;
        let qt = bezier(bez, *t);
        let q1 = add(
            add(mul(d1[0], s * s), mul(d1[1], 2.0 * s * *t)),
            mul(d1[2], *t * *t),
        );
        let q2 = add(mul(d2[0], s), mul(d2[1], *t));
        let diff = sub(qt, q);
        let den = dot(q1, q1) + dot(diff, q2);
        if den.abs() > 1e-12 {
            *t = (*t - dot(diff, q1) / den).clamp(0.0, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> FitConfig {
        FitConfig {
            corner_threshold_rad: 60f64.to_radians(),
            corner_scale_px: 3,
            smoothing_passes: 1,
            max_error_px: 0.5,
        }
    }

    #[test]
    fn a_square_outline_is_four_lines_through_its_corners() {
        let mut pts = Vec::new();
        for x in 0..10 {
            pts.push((x, 0));
        }
        for y in 0..10 {
            pts.push((10, y));
        }
        for x in (1..=10).rev() {
            pts.push((x, 10));
        }
        for y in (1..=10).rev() {
            pts.push((0, y));
        }
        let c = fit_chain(&pts, true, None, &config());
        assert_eq!(c.segs.len(), 4, "{c:?}");
        assert!(c.segs.iter().all(|s| matches!(s, Seg::Line(_))));
        let ends: Vec<Pt> = c.segs.iter().map(Seg::end).collect();
        for corner in [[10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [0.0, 0.0]] {
            assert!(ends.contains(&corner), "{corner:?} in {ends:?}");
        }
    }

    #[test]
    fn a_diagonal_staircase_becomes_one_straight_line() {
        let mut pts = vec![(0, 0)];
        for i in 0..20 {
            pts.push((i + 1, i));
            pts.push((i + 1, i + 1));
        }
        let c = fit_chain(&pts, false, None, &config());
        assert_eq!(c.segs, vec![Seg::Line([20.0, 20.0])]);
        assert_eq!(c.start, [0.0, 0.0]);
    }

    #[test]
    fn reversing_twice_is_the_identity_and_keeps_the_path() {
        let c = Curve {
            start: [0.0, 0.0],
            segs: vec![
                Seg::Line([1.0, 0.0]),
                Seg::Cubic([2.0, 0.0], [3.0, 1.0], [3.0, 2.0]),
            ],
        };
        let r = c.reversed();
        assert_eq!(r.start, [3.0, 2.0]);
        assert_eq!(
            r.segs,
            vec![
                Seg::Cubic([3.0, 1.0], [2.0, 0.0], [1.0, 0.0]),
                Seg::Line([0.0, 0.0])
            ]
        );
        assert_eq!(r.reversed(), c);
    }
}
