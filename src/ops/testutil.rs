//! Helpers for the per-op unit tests: build params, run one op on a small image.

use super::{BuildCtx, Kernel, OpDef};
use crate::chain::raw::RawValue;
use crate::engine::geom::{Rect, Size};
use crate::engine::tile::Tile;
use crate::params::Params;

/// Validated params for `def` from (key, value) pairs.
pub fn params(def: &OpDef, pairs: &[(&str, RawValue)]) -> Params {
    Params::from_raw(def.params, pairs.iter().map(|(k, v)| (*k, v))).expect("valid test params")
}

/// A build context at full resolution with generous caps.
pub fn ctx(input: Size) -> BuildCtx<'static> {
    BuildCtx {
        input,
        scale: 1.0,
        max_pixels: 1 << 30,
        max_side_px: 65_535,
        quality: crate::quality::QualityPreset::default(),
        detail: None,
        content: None,
    }
}

/// Apply a pointwise op to one pixel.
pub fn apply_point(def: &OpDef, p: &Params, px: [f32; 4]) -> [f32; 4] {
    let Ok(Kernel::Pointwise(k)) = (def.build)(p, &ctx(Size::new(1, 1))) else {
        panic!("{} is not pointwise", def.id);
    };
    let mut row = px;
    k.apply_row(0, 0, &mut row);
    row
}

/// Run one op on a whole image (a single tile).
pub fn run_whole(def: &OpDef, p: &Params, src: &Tile) -> Tile {
    let input = Size::new(src.rect.width, src.rect.height);
    let kernel = (def.build)(p, &ctx(input)).expect("build");
    match kernel {
        Kernel::Pointwise(k) => {
            let mut out = src.clone();
            for y in 0..input.height {
                k.apply_row(0, y, out.row_mut(y as usize));
            }
            out
        }
        Kernel::Area(k) | Kernel::Global(k) => {
            let mut dst = Tile::new(input.rect());
            k.run(src, &mut dst);
            dst
        }
        Kernel::Geometry { output, kernel } => {
            let mut dst = Tile::new(output.rect());
            let need = kernel.input_rect(output.rect());
            let mut part = Tile::new(need);
            part.copy_from(src);
            kernel.run(&part, &mut dst);
            dst
        }
    }
}

/// A `width`×`height` image with a deterministic pattern (values in 0..=1, alpha 1).
pub fn pattern(width: u32, height: u32) -> Tile {
    let mut t = Tile::new(Rect::new(0, 0, width, height));
    for (i, px) in t.data.chunks_exact_mut(4).enumerate() {
        let (x, y) = ((i as u32 % width) as f32, (i as u32 / width) as f32);
        px[0] = (x * 0.37 + y * 0.11).sin() * 0.5 + 0.5;
        px[1] = ((x + y) * 0.05).fract();
        px[2] = if (x as u32 + y as u32).is_multiple_of(3) {
            0.9
        } else {
            0.1
        };
        px[3] = 1.0;
    }
    t
}
