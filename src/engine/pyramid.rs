//! Thumbnail pyramid: the source decoded once, then halved repeatedly (Lanczos3, alpha-aware,
//! with `fast_image_resize`) down to about 256 px on the long side. Previews render the chain
//! on the level that matches the zoom, with spatial parameters scaled to that level.

use fast_image_resize::images::Image as FirImage;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbaImage};

use super::content::Detail;
use super::geom::Size;
use crate::error::{Error, Result};

/// Long side at which halving stops.
pub const SMALLEST_LEVEL_PX: u32 = 256;

/// One level of the pyramid.
pub struct Level {
    /// The pixels (8-bit RGBA, stored orientation).
    pub image: DynamicImage,
    /// Its scale relative to full resolution along the long side (1.0 for level 0).
    pub scale: f64,
}

/// The source at full resolution and at successive halvings.
pub struct Pyramid {
    /// Full-resolution stored size.
    pub full: Size,
    /// Level 0 is full resolution; each next level is half the previous.
    pub levels: Vec<Level>,
    /// How much detail the full-resolution source has: previews pick the same content-based
    /// algorithms as a full-resolution render of the file ([`super::content`]).
    pub detail: Detail,
}

impl Pyramid {
    /// Build from a decoded source (converted to 8-bit RGBA).
    pub fn build(source: &DynamicImage) -> Result<Pyramid> {
        puffin::profile_function!();
        let full = Size::new(source.width(), source.height());
        let detail = Detail::measure(source);
        let base = source.to_rgba8();
        let mut levels = vec![Level {
            image: DynamicImage::ImageRgba8(base),
            scale: 1.0,
        }];
        let mut resizer = Resizer::new();
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .use_alpha(true);
        while let Some(last) = levels.last() {
            let (w, h) = (last.image.width(), last.image.height());
            if w.max(h) <= SMALLEST_LEVEL_PX {
                break;
            }
            // Halve both sides; a 1-px side stays 1 px (a 1×20000 strip still shrinks).
            let (nw, nh) = (w.div_ceil(2).max(1), h.div_ceil(2).max(1));
            let src = FirImage::from_vec_u8(w, h, last.image.as_bytes().to_vec(), PixelType::U8x4)
                .map_err(|e| Error::Internal(format!("pyramid level: {e}")))?;
            let mut dst = FirImage::new(nw, nh, PixelType::U8x4);
            resizer
                .resize(&src, &mut dst, &options)
                .map_err(|e| Error::Internal(format!("pyramid level: {e}")))?;
            let image = RgbaImage::from_raw(nw, nh, dst.into_vec())
                .ok_or_else(|| Error::Internal("pyramid buffer size".to_owned()))?;
            // The scale of the long side (the short one may have stopped at 1 px).
            let scale = if full.width >= full.height {
                f64::from(nw) / f64::from(full.width)
            } else {
                f64::from(nh) / f64::from(full.height)
            };
            levels.push(Level {
                image: DynamicImage::ImageRgba8(image),
                scale,
            });
        }
        Ok(Pyramid {
            full,
            levels,
            detail,
        })
    }

    /// The smallest level still at least `scale` (so it is shrunk, never enlarged, on screen);
    /// level 0 when `scale >= 1`.
    pub fn level_for(&self, scale: f64) -> usize {
        let mut best = 0;
        for (i, level) in self.levels.iter().enumerate() {
            if level.scale + 1e-9 >= scale {
                best = i;
            }
        }
        best
    }

    /// Bytes held by all levels.
    pub fn bytes(&self) -> u64 {
        self.levels
            .iter()
            .map(|l| l.image.as_bytes().len() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_down_to_the_smallest_level_and_picks_levels() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            1500,
            1000,
            image::Rgb([10, 200, 30]),
        ));
        let p = Pyramid::build(&img).unwrap();
        let sizes: Vec<(u32, u32)> = p
            .levels
            .iter()
            .map(|l| (l.image.width(), l.image.height()))
            .collect();
        assert_eq!(
            sizes,
            vec![(1500, 1000), (750, 500), (375, 250), (188, 125)]
        );
        assert_eq!(p.level_for(1.0), 0);
        assert_eq!(p.level_for(0.5), 1);
        assert_eq!(p.level_for(0.3), 1);
        assert_eq!(p.level_for(0.01), 3);
        // Flat colour stays flat through the filter.
        let px = p.levels[3].image.to_rgba8().get_pixel(60, 60).0;
        assert_eq!(px, [10, 200, 30, 255]);
    }
}
