//! Boundary extraction on the pixel-crack grid, with boundaries shared between regions.
//!
//! Every region's outline is followed along pixel edges ("cracks") with the region on the
//! left, turning left first so that regions stay 4-connected. Outlines are cut at junctions
//! (pixel corners where three or more regions meet, or two meet diagonally) into chains; a chain
//! is stored once and used by the two regions on its sides in opposite directions. Fitting a
//! chain once and drawing both sides from the same curve is what leaves no gap and no overlap
//! between adjacent shapes.

use std::collections::HashMap;

use super::segment::Segmentation;

/// A cell outside the image.
const OUTSIDE: u32 = u32::MAX;

/// A direction along the crack grid (y grows downwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// +x.
    E,
    /// +y.
    S,
    /// −x.
    W,
    /// −y.
    N,
}

impl Dir {
    fn left(self) -> Dir {
        match self {
            Dir::E => Dir::N,
            Dir::N => Dir::W,
            Dir::W => Dir::S,
            Dir::S => Dir::E,
        }
    }

    fn right(self) -> Dir {
        self.left().reverse()
    }

    fn reverse(self) -> Dir {
        match self {
            Dir::E => Dir::W,
            Dir::W => Dir::E,
            Dir::S => Dir::N,
            Dir::N => Dir::S,
        }
    }

    fn step(self, (x, y): (u32, u32)) -> (u32, u32) {
        match self {
            Dir::E => (x + 1, y),
            Dir::S => (x, y + 1),
            Dir::W => (x - 1, y),
            Dir::N => (x, y - 1),
        }
    }
}

/// A boundary between two regions (or a region and the outside), as pixel-corner points.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Corner points; for a closed chain the first point is not repeated at the end.
    pub points: Vec<(u32, u32)>,
    /// A loop with no junction on it.
    pub closed: bool,
}

/// One use of a chain in a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainUse {
    /// Index into [`Tracing::chains`].
    pub chain: u32,
    /// Whether the ring runs the chain backwards.
    pub reversed: bool,
}

/// A closed outline of one region.
#[derive(Clone, Debug)]
pub struct Ring {
    /// The region it bounds.
    pub region: u32,
    /// The chains, in order, each starting where the previous one ends.
    pub uses: Vec<ChainUse>,
    /// Whether this is the region's outer outline (else a hole).
    pub outer: bool,
    /// Enclosed area in pixels (absolute).
    pub area_px: u64,
}

/// All outlines of a segmentation.
#[derive(Clone, Debug, Default)]
pub struct Tracing {
    /// Shared boundaries.
    pub chains: Vec<Chain>,
    /// Outlines.
    pub rings: Vec<Ring>,
    /// Rings of each region (the outer one first).
    pub region_rings: Vec<Vec<u32>>,
    /// For each chain, the ring running it forwards and the one running it backwards (none:
    /// the image border or a transparent region's side is not traced twice).
    pub chain_rings: Vec<[Option<u32>; 2]>,
}

struct Grid<'a> {
    seg: &'a Segmentation,
    width: u32,
    height: u32,
}

impl Grid<'_> {
    fn cell(&self, x: i64, y: i64) -> u32 {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            OUTSIDE
        } else {
            self.seg.region_of[y as usize * self.width as usize + x as usize]
        }
    }

    /// The cells left and right of the crack leaving `(x, y)` in direction `d`.
    fn sides(&self, (x, y): (u32, u32), d: Dir) -> (u32, u32) {
        let (x, y) = (i64::from(x), i64::from(y));
        match d {
            Dir::E => (self.cell(x, y - 1), self.cell(x, y)),
            Dir::S => (self.cell(x, y), self.cell(x - 1, y)),
            Dir::W => (self.cell(x - 1, y), self.cell(x - 1, y - 1)),
            Dir::N => (self.cell(x - 1, y - 1), self.cell(x, y - 1)),
        }
    }

    fn is_junction(&self, (x, y): (u32, u32)) -> bool {
        let (x, y) = (i64::from(x), i64::from(y));
        let c = [
            self.cell(x - 1, y - 1),
            self.cell(x, y - 1),
            self.cell(x - 1, y),
            self.cell(x, y),
        ];
        let mut distinct = 1;
        for i in 1..4 {
            if !c[..i].contains(&c[i]) {
                distinct += 1;
            }
        }
        distinct >= 3 || (distinct == 2 && c[0] == c[3] && c[1] == c[2] && c[0] != c[1])
    }

    fn vertex_id(&self, (x, y): (u32, u32)) -> u64 {
        u64::from(y) * (u64::from(self.width) + 1) + u64::from(x)
    }
}

/// Follows every region's outlines and cuts them into shared chains.
pub fn trace(seg: &Segmentation) -> Tracing {
    puffin::profile_function!();
    let grid = Grid {
        seg,
        width: seg.width as u32,
        height: seg.height as u32,
    };
    let (w, h) = (seg.width, seg.height);
    // Directed top cracks already followed (a region's rings each contain a crack on top of
    // one of its pixels, run westwards with the region on the left).
    let mut seen_top = vec![false; w * h];
    let mut out = Tracing {
        region_rings: vec![Vec::new(); seg.regions.len()],
        ..Tracing::default()
    };
    let mut keys: HashMap<(u64, Dir), ChainUse> = HashMap::new();
    let mut points = Vec::new();
    let mut dirs = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let r = seg.region_of[y * w + x];
            if seen_top[y * w + x] || (y > 0 && seg.region_of[(y - 1) * w + x] == r) {
                continue;
            }
            // Follow the ring from the top crack of (x, y), westwards.
            points.clear();
            dirs.clear();
            let start = (x as u32 + 1, y as u32);
            let mut at = start;
            let mut d = Dir::W;
            loop {
                if d == Dir::W {
                    // The crack on top of cell (at.x - 1, at.y).
                    seen_top[at.1 as usize * w + at.0 as usize - 1] = true;
                }
                points.push(at);
                dirs.push(d);
                at = d.step(at);
                d = next_dir(&grid, at, d, r);
                // Following is deterministic and reversible, so it comes back to the first
                // directed crack.
                if at == start && d == Dir::W {
                    break;
                }
            }
            let ring = out.rings.len() as u32;
            let uses = split_into_chains(&grid, &points, &dirs, ring, &mut out, &mut keys);
            let twice_area: i64 = points
                .iter()
                .zip(points.iter().cycle().skip(1))
                .map(|(a, b)| i64::from(a.0) * i64::from(b.1) - i64::from(b.0) * i64::from(a.1))
                .sum();
            // Outer outlines run clockwise on screen (negative shoelace sum with y down).
            let outer = twice_area < 0;
            out.rings.push(Ring {
                region: r,
                uses,
                outer,
                area_px: twice_area.unsigned_abs() / 2,
            });
            if outer {
                out.region_rings[r as usize].insert(0, ring);
            } else {
                out.region_rings[r as usize].push(ring);
            }
        }
    }
    out
}

fn next_dir(grid: &Grid, at: (u32, u32), d: Dir, r: u32) -> Dir {
    for cand in [d.left(), d, d.right()] {
        let (l, rt) = grid.sides(at, cand);
        if l == r && rt != r {
            return cand;
        }
    }
    d.reverse()
}

/// Cuts a ring at its junctions and finds or creates the chains between them.
fn split_into_chains(
    grid: &Grid,
    points: &[(u32, u32)],
    dirs: &[Dir],
    ring: u32,
    out: &mut Tracing,
    keys: &mut HashMap<(u64, Dir), ChainUse>,
) -> Vec<ChainUse> {
    let n = points.len();
    let junctions: Vec<usize> = (0..n).filter(|&i| grid.is_junction(points[i])).collect();
    if junctions.is_empty() {
        // A loop: canonical start at the smallest vertex.
        let first = (0..n)
            .min_by_key(|&i| grid.vertex_id(points[i]))
            .unwrap_or(0);
        let v = grid.vertex_id(points[first]);
        let into_first = dirs[(first + n - 1) % n];
        let pts = || (0..n).map(|k| points[(first + k) % n]).collect();
        let keys_pair = ((v, dirs[first]), (v, into_first.reverse()));
        return vec![find_or_add(out, keys, ring, keys_pair, true, pts)];
    }
    let mut uses = Vec::with_capacity(junctions.len());
    for (k, &a) in junctions.iter().enumerate() {
        let b = junctions[(k + 1) % junctions.len()];
        let len = if b > a { b - a } else { b + n - a };
        let last = dirs[(a + len - 1) % n];
        let pts = || (0..=len).map(|i| points[(a + i) % n]).collect();
        let keys_pair = (
            (grid.vertex_id(points[a]), dirs[a]),
            (grid.vertex_id(points[b]), last.reverse()),
        );
        uses.push(find_or_add(out, keys, ring, keys_pair, false, pts));
    }
    uses
}

/// The chain that starts with the directed crack `key` (created by the region on the other
/// side, which runs it backwards), or a new chain of `points()` whose reverse starts with
/// `reverse_key`.
fn find_or_add(
    out: &mut Tracing,
    keys: &mut HashMap<(u64, Dir), ChainUse>,
    ring: u32,
    (key, reverse_key): ((u64, Dir), (u64, Dir)),
    closed: bool,
    points: impl FnOnce() -> Vec<(u32, u32)>,
) -> ChainUse {
    let chain_use = *keys.entry(key).or_insert_with(|| {
        let id = out.chains.len() as u32;
        out.chains.push(Chain {
            points: points(),
            closed,
        });
        out.chain_rings.push([None, None]);
        ChainUse {
            chain: id,
            reversed: false,
        }
    });
    if !chain_use.reversed {
        keys.insert(
            reverse_key,
            ChainUse {
                chain: chain_use.chain,
                reversed: true,
            },
        );
    }
    record_use(out, chain_use, ring);
    chain_use
}

fn record_use(out: &mut Tracing, chain_use: ChainUse, ring: u32) {
    out.chain_rings[chain_use.chain as usize][usize::from(chain_use.reversed)] = Some(ring);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectorize::segment::segment;

    fn traced(rows: &[&str]) -> (Segmentation, Tracing) {
        let width = rows[0].len();
        let labels: Vec<u16> = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| u16::from(b - b'a')))
            .collect();
        let seg = segment(&labels, width, rows.len(), 0, |_, _| 0.0);
        let t = trace(&seg);
        (seg, t)
    }

    /// The ring's corner points, in order, chain after chain.
    fn ring_points(t: &Tracing, ring: u32) -> Vec<(u32, u32)> {
        let mut pts = Vec::new();
        for u in &t.rings[ring as usize].uses {
            let c = &t.chains[u.chain as usize];
            let mut p = c.points.clone();
            if u.reversed {
                p.reverse();
                if c.closed {
                    p.rotate_right(1);
                }
            }
            if !c.closed {
                p.pop();
            }
            pts.extend(p);
        }
        pts
    }

    #[test]
    fn a_single_pixel_is_one_closed_ring() {
        let (_, t) = traced(&["a"]);
        assert_eq!(t.rings.len(), 1);
        assert!(t.rings[0].outer);
        assert_eq!(t.rings[0].area_px, 1);
        assert_eq!(ring_points(&t, 0).len(), 4);
    }

    #[test]
    fn a_square_with_a_hole_has_an_outer_ring_and_a_hole_sharing_one_chain() {
        let (seg, t) = traced(&["aaaa", "abba", "abba", "aaaa"]);
        let a = seg.region_of[0];
        let b = seg.region_of[5];
        assert_eq!(t.region_rings[a as usize].len(), 2);
        let hole = t.region_rings[a as usize][1];
        assert!(!t.rings[hole as usize].outer);
        assert_eq!(t.rings[hole as usize].area_px, 4);
        let b_outer = t.region_rings[b as usize][0];
        let hu = t.rings[hole as usize].uses[0];
        let bu = t.rings[b_outer as usize].uses[0];
        assert_eq!(hu.chain, bu.chain, "one shared chain");
        assert_ne!(hu.reversed, bu.reversed, "run in opposite directions");
        assert_eq!(t.rings[t.region_rings[a as usize][0] as usize].area_px, 16);
    }

    #[test]
    fn touching_regions_share_their_boundary_chain() {
        let (seg, t) = traced(&["aab", "aab"]);
        let a = seg.region_of[0] as usize;
        let b = seg.region_of[2] as usize;
        let ua: Vec<_> = t.rings[t.region_rings[a][0] as usize].uses.clone();
        let ub: Vec<_> = t.rings[t.region_rings[b][0] as usize].uses.clone();
        let shared: Vec<_> = ua
            .iter()
            .filter(|x| {
                ub.iter()
                    .any(|y| y.chain == x.chain && y.reversed != x.reversed)
            })
            .collect();
        assert_eq!(shared.len(), 1);
        assert_eq!(t.chains[shared[0].chain as usize].points.len(), 3);
    }

    #[test]
    fn a_checkerboard_traces_every_cell_as_its_own_square() {
        let (seg, t) = traced(&["ab", "ba"]);
        assert_eq!(seg.regions.len(), 4);
        for r in 0..4 {
            let rings = &t.region_rings[r];
            assert_eq!(rings.len(), 1);
            assert_eq!(t.rings[rings[0] as usize].area_px, 1);
            assert_eq!(ring_points(&t, rings[0]).len(), 4);
        }
    }

    #[test]
    fn a_ring_touching_itself_diagonally_stays_one_region_outline() {
        // The 'a' pixels form a 4-connected ring around 'b' that touches itself at a corner.
        let (seg, t) = traced(&["aaa", "aba", "aab"]);
        let a = seg.region_of[0] as usize;
        let total: u64 = t.region_rings[a]
            .iter()
            .map(|&r| t.rings[r as usize].area_px)
            .sum();
        assert!(t.rings[t.region_rings[a][0] as usize].outer);
        assert!(total >= 7);
    }
}
