//! `watermark`: draw text onto the image with the bundled DejaVu Sans font, rasterised with
//! `ab_glyph` (real outlines, anti-aliased coverage), at one of nine positions.
//!
//! The text is rasterised once per build into a coverage mask in image coordinates (clipped to
//! the image); the kernel is pointwise with position, so it fuses with colour ops and tiles
//! exactly.

use ab_glyph::{Font as _, FontRef, PxScale, ScaleFont as _, point};

use super::gpu::{GpuKernel, f32_words};
use super::remap::rgba_f32;
use super::{BuildCtx, BuildError, Kernel, OpDef, PointKernel, pointwise_footprint};
use crate::engine::geom::Rect;
use crate::params::{ParamKind, ParamSpec, Params, Unit};

/// The bundled font (DejaVu Sans; licence in `assets/fonts/`).
pub static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "watermark",
    version: 1,
    label: "Watermark",
    category: "Overlay",
    doc: "Draw text (DejaVu Sans) at a corner, edge or the centre, with opacity",
    params: PARAMS,
    footprint: pointwise_footprint,
    validate: super::no_validate,
    build,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        key: "text",
        label: "Text",
        doc: "The text to draw; new lines start new lines",
        kind: ParamKind::Text {
            default: "© Opossum",
            max_chars: 500,
        },
    },
    ParamSpec {
        key: "font_size",
        label: "Font size",
        doc: "Height of a line of text",
        kind: ParamKind::Float {
            min: 1.0,
            max: 2000.0,
            default: 32.0,
            unit: Unit::Px,
            spatial: true,
        },
    },
    ParamSpec {
        key: "position",
        label: "Position",
        doc: "Where the text is anchored",
        kind: ParamKind::Choice {
            choices: &[
                "top_left",
                "top",
                "top_right",
                "left",
                "center",
                "right",
                "bottom_left",
                "bottom",
                "bottom_right",
            ],
            default: "bottom_right",
        },
    },
    ParamSpec {
        key: "margin",
        label: "Margin",
        doc: "Distance from the image edge",
        kind: ParamKind::Float {
            min: 0.0,
            max: 10_000.0,
            default: 16.0,
            unit: Unit::Px,
            spatial: true,
        },
    },
    ParamSpec {
        key: "opacity",
        label: "Opacity",
        doc: "0 is invisible, 1 is solid",
        kind: ParamKind::Float {
            min: 0.0,
            max: 1.0,
            default: 0.6,
            unit: Unit::None,
            spatial: false,
        },
    },
    ParamSpec {
        key: "color",
        label: "Colour",
        doc: "Text colour",
        kind: ParamKind::Color {
            default: [255, 255, 255, 255],
        },
    },
];

/// Coverage of the text, clipped to the image, and the colour to blend.
struct Watermark {
    /// Where `coverage` sits in the image.
    rect: Rect,
    /// Per-pixel opacity (coverage × opacity × colour alpha), row-major.
    coverage: Vec<f32>,
    color: [f32; 3],
}

fn build(p: &Params, ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    let p = p.scaled(PARAMS, ctx.scale);
    let font = FontRef::try_from_slice(FONT_BYTES)
        .map_err(|e| BuildError::field("text", format!("bundled font unreadable: {e}")))?;
    let scale = PxScale::from(p.float("font_size") as f32);
    let scaled = font.as_scaled(scale);
    let line_height = scaled.height() + scaled.line_gap();

    // Lay out glyphs at origin (0, 0) = top-left of the text block.
    let mut glyphs = Vec::new();
    let mut block_w = 0f32;
    let lines: Vec<&str> = p.text("text").split('\n').collect();
    for (li, line) in lines.iter().enumerate() {
        let mut x = 0f32;
        let mut prev = None;
        for ch in line.chars() {
            let id = font.glyph_id(ch);
            if let Some(prev) = prev {
                x += scaled.kern(prev, id);
            }
            glyphs.push(id.with_scale_and_position(
                scale,
                point(x, li as f32 * line_height + scaled.ascent()),
            ));
            x += scaled.h_advance(id);
            prev = Some(id);
        }
        block_w = block_w.max(x);
    }
    let block_h = line_height * lines.len() as f32;

    let (iw, ih) = (ctx.input.width as f32, ctx.input.height as f32);
    let margin = p.float("margin") as f32;
    let position = p.choice("position");
    let ox = if position.ends_with("left") || position == "left" {
        margin
    } else if position.ends_with("right") {
        iw - margin - block_w
    } else {
        (iw - block_w) / 2.0
    };
    let oy = if position.starts_with("top") {
        margin
    } else if position.starts_with("bottom") {
        ih - margin - block_h
    } else {
        (ih - block_h) / 2.0
    };
    let ox = ox.round();
    let oy = oy.round();

    // The mask covers the text block clipped to the image.
    let x0 = ox.max(0.0) as u32;
    let y0 = oy.max(0.0) as u32;
    let x1 = (ox + block_w.ceil() + 2.0).clamp(0.0, iw) as u32;
    let y1 = (oy + block_h.ceil() + 2.0).clamp(0.0, ih) as u32;
    let rect = Rect::from_bounds(x0, y0, x1, y1);
    let mut coverage = vec![0f32; rect.pixels() as usize];
    let color = p.color("color");
    let strength = p.float("opacity") as f32 * f32::from(color[3]) / 255.0;
    if !rect.is_empty() {
        for glyph in glyphs {
            let Some(outline) = font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, c| {
                let x = ox + bounds.min.x + gx as f32;
                let y = oy + bounds.min.y + gy as f32;
                if x < rect.x as f32 || y < rect.y as f32 {
                    return;
                }
                let (x, y) = (x as u32, y as u32);
                if x < rect.right() && y < rect.bottom() {
                    let i = ((y - rect.y) * rect.width + (x - rect.x)) as usize;
                    coverage[i] = (coverage[i] + c).min(1.0);
                }
            });
        }
        for c in &mut coverage {
            *c *= strength;
        }
    }
    let [r, g, b, _] = rgba_f32(color);
    Ok(Kernel::Pointwise(Box::new(Watermark {
        rect,
        coverage,
        color: [r, g, b],
    })))
}

/// Mirrors `Params` in `shaders/watermark.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GpuParams {
    /// The mask's rectangle: x, y, width, height.
    rect: [u32; 4],
    color: [f32; 4],
}

impl PointKernel for Watermark {
    /// Text in a grey colour keeps a grey image grey.
    fn grey(&self) -> super::Grey {
        let [r, g, b] = self.color;
        super::Grey::of_fill([r, g, b, 1.0])
    }

    /// The glyphs are rasterised on the CPU at build time (ab_glyph); the GPU blends the same
    /// coverage mask.
    fn gpu(&self) -> GpuKernel {
        let r = self.rect;
        let [cr, cg, cb] = self.color;
        GpuKernel::single(
            "watermark",
            &GpuParams {
                rect: [r.x, r.y, r.width, r.height],
                color: [cr, cg, cb, 1.0],
            },
            f32_words(&self.coverage),
        )
    }

    fn apply_row(&self, x0: u32, y: u32, row: &mut [f32]) {
        let r = self.rect;
        if y < r.y || y >= r.bottom() {
            return;
        }
        let width = (row.len() / 4) as u32;
        let from = x0.max(r.x);
        let to = (x0 + width).min(r.right());
        let cov_row = &self.coverage[((y - r.y) * r.width) as usize..];
        for x in from..to {
            let a = cov_row[(x - r.x) as usize];
            if a <= 0.0 {
                continue;
            }
            let px = &mut row[((x - x0) * 4) as usize..((x - x0) * 4 + 4) as usize];
            let dst_a = px[3];
            let out_a = a + dst_a * (1.0 - a);
            for (v, color) in px.iter_mut().zip(self.color) {
                let premul = color * a + *v * dst_a * (1.0 - a);
                *v = if out_a > 0.0 { premul / out_a } else { 0.0 };
            }
            px[3] = out_a;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::chain::raw::RawValue;
    use crate::engine::geom::Rect;
    use crate::engine::tile::Tile;
    use crate::ops::testutil::{params, run_whole};

    fn black(w: u32, h: u32) -> Tile {
        let mut t = Tile::new(Rect::new(0, 0, w, h));
        t.data.chunks_exact_mut(4).for_each(|px| px[3] = 1.0);
        t
    }

    #[test]
    fn draws_text_in_the_chosen_corner() {
        let img = black(200, 100);
        let p = params(
            &super::DEF,
            &[
                ("text", RawValue::String("Hi".into())),
                ("font_size", RawValue::Float(40.0)),
                ("opacity", RawValue::Float(1.0)),
                ("position", RawValue::String("top_left".into())),
                ("margin", RawValue::Float(0.0)),
            ],
        );
        let out = run_whole(&super::DEF, &p, &img);
        let lit = |x0: u32, x1: u32, y0: u32, y1: u32| {
            let mut n = 0;
            for y in y0..y1 {
                for x in x0..x1 {
                    if out.clamped(i64::from(x), i64::from(y))[0] > 0.5 {
                        n += 1;
                    }
                }
            }
            n
        };
        assert!(lit(0, 60, 0, 50) > 100, "text drawn top-left");
        assert_eq!(lit(100, 200, 50, 100), 0, "nothing bottom-right");
        // Some pixels are partially covered: anti-aliased, not a bitmap font.
        assert!(
            out.data
                .chunks_exact(4)
                .any(|px| px[0] > 0.05 && px[0] < 0.95)
        );
        assert!(out.data.chunks_exact(4).all(|px| px[3] == 1.0));
    }

    #[test]
    fn zero_opacity_is_identity_and_text_off_image_is_clipped() {
        let img = black(50, 20);
        let p = params(&super::DEF, &[("opacity", RawValue::Float(0.0))]);
        assert_eq!(run_whole(&super::DEF, &p, &img), img);
        let p = params(
            &super::DEF,
            &[
                ("font_size", RawValue::Float(500.0)),
                ("text", RawValue::String("Huge".into())),
            ],
        );
        let out = run_whole(&super::DEF, &p, &img);
        assert_eq!(out.rect, img.rect);
    }
}
