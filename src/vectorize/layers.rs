//! Draw order: which outlines go into which `<path>`, and in what order.
//!
//! Colour mode stacks: a region is drawn as its outer outline only (its holes are covered by
//! what lies in them, drawn later), so the edge between a region and what it encloses is
//! drawn over a solid underlay and shows no anti-aliasing seam. Regions are grouped by nesting
//! depth (regions side by side in the same hole share a depth and never overlap), and all
//! regions of one colour at one depth become one path. A hole is cut out only where
//! transparency lies somewhere inside it, so transparent areas stay transparent. When nothing is
//! transparent, the largest outermost region becomes a background rectangle.
//!
//! Where transparency leaves nothing under a group of side-by-side regions, the group's largest
//! member is drawn as an underlay covering the whole group, so shared edges never show through.
//!
//! Binary mode draws only the ink regions, each with all its holes cut (nonzero fill,
//! holes run the other way), like potrace.

use super::quantize::TRANSPARENT;
use super::segment::Segmentation;
use super::trace::Tracing;

/// One `<path>`: a fill and its outlines.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Palette label.
    pub label: u16,
    /// Rings (indices into [`Tracing::rings`]).
    pub rings: Vec<u32>,
}

/// What to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct Drawing {
    /// A full-canvas rectangle under everything, in this palette colour.
    pub background: Option<u16>,
    /// Paths, bottom first.
    pub layers: Vec<Layer>,
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let p = parent[parent[i as usize] as usize];
        parent[i as usize] = p;
        i = p;
    }
    i
}

/// The rings gathered under `key`, in first-seen order of keys (a few dozen at most).
fn entry<K: PartialEq>(groups: &mut Vec<(K, Vec<u32>)>, key: K) -> &mut Vec<u32> {
    let i = match groups.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            groups.push((key, Vec::new()));
            groups.len() - 1
        }
    };
    &mut groups[i].1
}

/// Binary mode: every region labelled `ink`, holes cut.
pub fn ink_only(seg: &Segmentation, tracing: &Tracing, ink: u16) -> Drawing {
    let rings = seg
        .regions
        .iter()
        .enumerate()
        .filter(|(_, r)| r.label == ink)
        .flat_map(|(i, _)| tracing.region_rings[i].iter().copied())
        .collect::<Vec<_>>();
    Drawing {
        background: None,
        layers: if rings.is_empty() {
            Vec::new()
        } else {
            vec![Layer { label: ink, rings }]
        },
    }
}

/// Colour mode: stacked by nesting depth, one path per colour and depth.
pub fn stacked(seg: &Segmentation, tracing: &Tracing) -> Drawing {
    puffin::profile_function!();
    let n = seg.regions.len();
    // Siblings (outer outline against outer outline) share a group; a group lies in the hole
    // of a container region, or touches the image border (top level).
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let mut top = vec![false; n];
    let mut container: Vec<Option<(u32, u32)>> = vec![None; n];
    for users in &tracing.chain_rings {
        match *users {
            [Some(a), Some(b)] => {
                let (ra, rb) = (&tracing.rings[a as usize], &tracing.rings[b as usize]);
                match (ra.outer, rb.outer) {
                    (true, true) => {
                        let (x, y) = (find(&mut parent, ra.region), find(&mut parent, rb.region));
                        if x != y {
                            parent[x as usize] = y;
                        }
                    }
                    (false, true) => container[rb.region as usize] = Some((ra.region, a)),
                    (true, false) => container[ra.region as usize] = Some((rb.region, b)),
                    (false, false) => {}
                }
            }
            [Some(a), None] | [None, Some(a)] => {
                top[tracing.rings[a as usize].region as usize] = true
            }
            [None, None] => {}
        }
    }
    let mut group_top = vec![false; n];
    let mut group_container: Vec<Option<(u32, u32)>> = vec![None; n];
    for r in 0..n {
        let g = find(&mut parent, r as u32) as usize;
        group_top[g] |= top[r];
        if group_container[g].is_none() {
            group_container[g] = container[r];
        }
    }
    // Depth of each group: one more than its container's group.
    let mut depth: Vec<Option<u32>> = vec![None; n];
    for r in 0..n as u32 {
        let mut stack = vec![find(&mut parent, r)];
        while let Some(&g) = stack.last() {
            if depth[g as usize].is_some() {
                stack.pop();
                continue;
            }
            let holder = if group_top[g as usize] {
                None
            } else {
                group_container[g as usize].map(|(c, _)| find(&mut parent, c))
            };
            match holder {
                None => {
                    depth[g as usize] = Some(0);
                    stack.pop();
                }
                Some(h) if h == g || stack.contains(&h) => {
                    // Cannot happen for a valid tracing; stay safe.
                    depth[g as usize] = Some(0);
                    stack.pop();
                }
                Some(h) => match depth[h as usize] {
                    Some(d) => {
                        depth[g as usize] = Some(d + 1);
                        stack.pop();
                    }
                    None => stack.push(h),
                },
            }
        }
    }
    let region_depth: Vec<u32> = (0..n as u32)
        .map(|r| depth[find(&mut parent, r) as usize].unwrap_or(0))
        .collect();

    // Holes with transparency somewhere inside must be cut: flags bubble up, deepest first.
    let any_transparent = seg.regions.iter().any(|r| r.label == TRANSPARENT);
    let mut cut = vec![false; tracing.rings.len()];
    if any_transparent {
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); n];
        for r in 0..n as u32 {
            members[find(&mut parent, r) as usize].push(r);
        }
        let mut groups: Vec<u32> = (0..n as u32)
            .filter(|&g| !members[g as usize].is_empty())
            .collect();
        groups.sort_by_key(|&g| std::cmp::Reverse(depth[g as usize].unwrap_or(0)));
        for g in groups {
            let flag = members[g as usize].iter().any(|&r| {
                seg.regions[r as usize].label == TRANSPARENT
                    || tracing.region_rings[r as usize][1..]
                        .iter()
                        .any(|&h| cut[h as usize])
            });
            if flag && let Some((_, hole)) = group_container[g as usize] {
                cut[hole as usize] = true;
            }
        }
    }

    // The background: the largest top-level region when the image is opaque.
    let background_region = if any_transparent {
        None
    } else {
        (0..n)
            .filter(|&r| region_depth[r] == 0)
            .max_by_key(|&r| (seg.regions[r].area_px, std::cmp::Reverse(r)))
    };
    let max_depth = region_depth.iter().copied().max().unwrap_or(0);
    let mut by_depth: Vec<Vec<u32>> = vec![Vec::new(); max_depth as usize + 1];
    for r in 0..n as u32 {
        if seg.regions[r as usize].label != TRANSPARENT && Some(r as usize) != background_region {
            by_depth[region_depth[r as usize] as usize].push(r);
        }
    }
    // Where nothing lies underneath (top level beside transparency, or a hole cut out for
    // transparency), siblings' shared edges would let the background through their
    // anti-aliasing. There the group's largest member is drawn as the union of all members
    // (an underlay in its colour) and the others on top of it.
    let mut underlay_of: Vec<Option<u32>> = vec![None; n];
    if any_transparent {
        for r in 0..n as u32 {
            if seg.regions[r as usize].label == TRANSPARENT {
                continue;
            }
            let g = find(&mut parent, r) as usize;
            let exposed =
                group_top[g] || group_container[g].is_some_and(|(_, hole)| cut[hole as usize]);
            if !exposed {
                continue;
            }
            let area = seg.regions[r as usize].area_px;
            if underlay_of[g].is_none_or(|m| seg.regions[m as usize].area_px < area) {
                underlay_of[g] = Some(r);
            }
        }
    }
    let own_rings = |r: u32| {
        let rings = &tracing.region_rings[r as usize];
        std::iter::once(rings[0]).chain(rings[1..].iter().copied().filter(|&h| cut[h as usize]))
    };
    let mut layers = Vec::new();
    for regions in by_depth {
        let mut underlays: Vec<(u32, Vec<u32>)> = Vec::new();
        let mut by_label: Vec<(u16, Vec<u32>)> = Vec::new();
        for r in regions {
            let g = find(&mut parent, r) as usize;
            if let Some(m) = underlay_of[g] {
                entry(&mut underlays, m).extend(own_rings(r));
                if m == r {
                    continue;
                }
            }
            let label = seg.regions[r as usize].label;
            entry(&mut by_label, label).extend(own_rings(r));
        }
        layers.extend(underlays.into_iter().map(|(m, rings)| Layer {
            label: seg.regions[m as usize].label,
            rings,
        }));
        layers.extend(
            by_label
                .into_iter()
                .map(|(label, rings)| Layer { label, rings }),
        );
    }
    Drawing {
        background: background_region.map(|r| seg.regions[r].label),
        layers,
    }
}
