//! Region segmentation: 4-connected components of equal palette labels, then a speckle filter
//! that merges every region smaller than `min_area_px` into the neighbour of the closest colour
//! (ties: the longest shared border), smallest regions first. Closest colour rather than longest
//! border: in noisy areas speckles merge in cascades, and by border length the cascade would
//! paint large areas in whatever colour happened to win first.

use std::collections::HashMap;

use super::quantize::TRANSPARENT;

/// One region after segmentation.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    /// Palette label (or `TRANSPARENT`).
    pub label: u16,
    /// Pixels.
    pub area_px: u64,
}

/// Pixels labelled by region.
#[derive(Clone, Debug)]
pub struct Segmentation {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Region index per pixel, row-major.
    pub region_of: Vec<u32>,
    /// The regions.
    pub regions: Vec<Region>,
}

/// The pixels left, right, above and below pixel `i` that lie inside the image.
fn neighbours4(i: usize, width: usize, height: usize) -> impl Iterator<Item = usize> {
    let (x, y) = (i % width, i / width);
    [
        (x > 0).then(|| i - 1),
        (x + 1 < width).then(|| i + 1),
        (y > 0).then(|| i - width),
        (y + 1 < height).then(|| i + width),
    ]
    .into_iter()
    .flatten()
}

/// Labels 4-connected components of equal `labels`.
fn components(labels: &[u16], width: usize, height: usize) -> (Vec<u32>, Vec<Region>) {
    const NONE: u32 = u32::MAX;
    let mut region_of = vec![NONE; labels.len()];
    let mut regions = Vec::new();
    let mut stack = Vec::new();
    for start in 0..labels.len() {
        if region_of[start] != NONE {
            continue;
        }
        let id = regions.len() as u32;
        let label = labels[start];
        let mut area = 0u64;
        region_of[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            area += 1;
            for j in neighbours4(i, width, height) {
                if region_of[j] == NONE && labels[j] == label {
                    region_of[j] = id;
                    stack.push(j);
                }
            }
        }
        regions.push(Region {
            label,
            area_px: area,
        });
    }
    (region_of, regions)
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let p = parent[parent[i as usize] as usize];
        parent[i as usize] = p;
        i = p;
    }
    i
}

/// Segments `labels` (row-major, `width` × `height`) and merges regions smaller than
/// `min_area_px`. `colour_distance(a, b)` breaks ties between neighbours.
pub fn segment(
    labels: &[u16],
    width: usize,
    height: usize,
    min_area_px: u64,
    colour_distance: impl Fn(u16, u16) -> f32,
) -> Segmentation {
    puffin::profile_function!();
    let (region_of, regions) = components(labels, width, height);
    let mut seg = Segmentation {
        width,
        height,
        region_of,
        regions,
    };
    if min_area_px <= 1 || seg.regions.len() <= 1 {
        return seg;
    }
    // Pixels of each region (counting sort by region).
    let n = seg.regions.len();
    let mut start = vec![0usize; n + 1];
    for &r in &seg.region_of {
        start[r as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut pixels = vec![0u32; seg.region_of.len()];
    for (i, &r) in seg.region_of.iter().enumerate() {
        pixels[fill[r as usize]] = i as u32;
        fill[r as usize] += 1;
    }
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let mut area: Vec<u64> = seg.regions.iter().map(|r| r.area_px).collect();
    let mut label: Vec<u16> = seg.regions.iter().map(|r| r.label).collect();
    // Members of each merged set as an intrusive list (first = the root itself, `next`,
    // `tail`), so a grown region is scanned whole without one allocation per region.
    const END: u32 = u32::MAX;
    let mut next: Vec<u32> = vec![END; n];
    let mut tail: Vec<u32> = (0..n as u32).collect();
    let mut order: Vec<u32> = (0..n as u32)
        .filter(|&r| seg.regions[r as usize].area_px < min_area_px)
        .collect();
    order.sort_by_key(|&r| (seg.regions[r as usize].area_px, r));
    let mut border: HashMap<u32, u32> = HashMap::new();
    for r in order {
        let root = find(&mut parent, r);
        if area[root as usize] >= min_area_px {
            continue;
        }
        border.clear();
        let mut member = root;
        while member != END {
            let m = member as usize;
            for &p in &pixels[start[m]..start[m + 1]] {
                for q in neighbours4(p as usize, width, height) {
                    let other = find(&mut parent, seg.region_of[q]);
                    if other != root {
                        *border.entry(other).or_insert(0) += 1;
                    }
                }
            }
            member = next[m];
        }
        let own = label[root as usize];
        // The closest colour among the neighbours; the longer shared border among equals.
        let Some((&into, _)) = border.iter().max_by(|a, b| {
            colour_distance(own, label[*b.0 as usize])
                .total_cmp(&colour_distance(own, label[*a.0 as usize]))
                .then_with(|| a.1.cmp(b.1))
                .then_with(|| b.0.cmp(a.0))
        }) else {
            continue;
        };
        parent[root as usize] = into;
        area[into as usize] += area[root as usize];
        next[tail[into as usize] as usize] = root;
        tail[into as usize] = tail[root as usize];
        label[root as usize] = label[into as usize];
    }
    // Renumber the surviving sets densely.
    let mut new_id = vec![u32::MAX; n];
    let mut regions = Vec::new();
    for r in 0..n as u32 {
        let root = find(&mut parent, r);
        if new_id[root as usize] == u32::MAX {
            new_id[root as usize] = regions.len() as u32;
            regions.push(Region {
                label: label[root as usize],
                area_px: area[root as usize],
            });
        }
        new_id[r as usize] = new_id[root as usize];
    }
    for r in &mut seg.region_of {
        *r = new_id[*r as usize];
    }
    seg.regions = regions;
    seg
}

/// Whether any region is transparent.
pub fn has_transparency(seg: &Segmentation) -> bool {
    seg.regions.iter().any(|r| r.label == TRANSPARENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels from ASCII art: one letter per pixel.
    pub fn ascii(rows: &[&str]) -> (Vec<u16>, usize, usize) {
        let width = rows[0].len();
        let labels = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| u16::from(b - b'a')))
            .collect();
        (labels, width, rows.len())
    }

    #[test]
    fn components_are_four_connected() {
        let (labels, w, h) = ascii(&["ab", "ba"]);
        let seg = segment(&labels, w, h, 0, |_, _| 0.0);
        assert_eq!(seg.regions.len(), 4, "diagonal pixels are separate regions");
    }

    #[test]
    fn speckles_merge_into_their_neighbour() {
        let (labels, w, h) = ascii(&["aaaabbbb", "aacabbbb", "aaaabbbb", "aaaabbbb"]);
        let seg = segment(&labels, w, h, 2, |_, _| 0.0);
        assert_eq!(seg.regions.len(), 2);
        assert_eq!(seg.region_of[w + 2], seg.region_of[0]);
        assert_eq!(seg.regions[seg.region_of[0] as usize].area_px, 16);
    }

    #[test]
    fn a_speckle_goes_to_the_closest_colour_then_the_longest_border() {
        let (labels, w, h) = ascii(&["aaab", "aacb", "aaab"]);
        let seg = segment(&labels, w, h, 2, |_, _| 0.0);
        assert_eq!(seg.region_of[w + 2], seg.region_of[0]);
        let closer_to_b = |x: u16, y: u16| {
            if x.min(y) == 1 && x.max(y) == 2 {
                0.1
            } else {
                1.0
            }
        };
        let seg = segment(&labels, w, h, 2, closer_to_b);
        assert_eq!(seg.region_of[w + 2], seg.region_of[3]);
    }
}
