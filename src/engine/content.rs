//! Algorithm selection by image content: a cheap measure of how much detail an image has, and
//! the log of what it changed in a plan (shown by `--profile`, `opossum render` and the app's
//! profiler panel).
//!
//! The measure ([`Detail`]) is the mean absolute luma difference between neighbours of a grid
//! of at most 256 points on the long side, point-sampled from the full-resolution image:
//! roughly the gradient energy at the scale of the smallest pyramid level, but computed from
//! full resolution so that a CLI render (which builds no pyramid) and the app's previews (which
//! keep it with the thumbnail pyramid) get the same number and pick the same algorithms.
//! It reads 256 × 256 pixels (whole rows when the source is not 8-bit in memory).
//!
//! What the measure switches, and the PSNR measured on the corpus behind each threshold, is in
//! [`crate::quality`]: approximate variants (box-cascade blurs, cheaper resampling filters)
//! whose difference from the precise one stays under the preset's tolerance on images with
//! little detail, and shows on busy ones.

use std::cell::{Cell, RefCell};

use super::geom::Rect;
use super::source::{Source, u8_to_unit};

/// Points on the long side of the sampling grid.
pub const GRID_POINTS: u32 = 256;

/// What the content measure found about a full-resolution source.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detail {
    /// How much detail the image has: mean absolute difference of luma (0..1 units) between
    /// neighbouring points of the sampling grid. Smooth skies and soft-focus photos measure
    /// below 0.02, typical photos 0.02–0.08, text, line art and noise above 0.1. `None` when
    /// only the file's header was read ([`Detail::kind_only`]).
    pub gradient: Option<f32>,
    /// The source is stored as opaque 8-bit RGB or grey, so an export may run its leading ops
    /// on the 8-bit kernels, where the exact blur is faster than boxes below sigma 8 px: every
    /// render of it (previews too) then blurs exactly there
    /// ([`crate::ops::U8_EXACT_BELOW_SIGMA_PX`]).
    pub opaque_8bit: bool,
}

impl Detail {
    /// What a file's header tells without its pixels: whether the source is opaque 8-bit, not
    /// its detail (an input too large to decode whole, streamed row by row). Ops that choose by
    /// detail keep the preset's choice.
    pub fn kind_only(opaque_8bit: bool) -> Detail {
        Detail {
            gradient: None,
            opaque_8bit,
        }
    }

    /// Measure `source` (at full resolution): reads one row every `stride` rows.
    pub fn measure(source: &dyn Source) -> Detail {
        puffin::profile_function!();
        let size = source.size();
        let samples = source.as_u8();
        let opaque_8bit = source.is_opaque_8bit();
        if size.is_empty() {
            return Detail {
                gradient: Some(0.0),
                opaque_8bit,
            };
        }
        let stride = size.width.max(size.height).div_ceil(GRID_POINTS).max(1);
        let columns: Vec<usize> = (0..size.width)
            .step_by(stride as usize)
            .map(|x| x as usize)
            .collect();
        let luma = |r: f32, g: f32, b: f32| {
            0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b)
        };
        let luma_row = |y: u32| -> Vec<f64> {
            match samples {
                // 8-bit images in memory: only the sampled pixels are read, converted exactly
                // as `read` converts them.
                Some((data, channels)) => {
                    let row = y as usize * size.width as usize * channels;
                    columns
                        .iter()
                        .map(|&x| {
                            let at = row + x * channels;
                            let (r, g, b) = if channels == 1 {
                                (data[at], data[at], data[at])
                            } else {
                                (data[at], data[at + 1], data[at + 2])
                            };
                            luma(u8_to_unit(r), u8_to_unit(g), u8_to_unit(b))
                        })
                        .collect()
                }
                None => {
                    let row = source.read(Rect::new(0, y, size.width, 1));
                    let pixels = row.row(0);
                    columns
                        .iter()
                        .map(|&x| luma(pixels[x * 4], pixels[x * 4 + 1], pixels[x * 4 + 2]))
                        .collect()
                }
            }
        };
        let (mut sum, mut pairs) = (0.0f64, 0u64);
        let mut above: Option<Vec<f64>> = None;
        for y in (0..size.height).step_by(stride as usize) {
            let row = luma_row(y);
            for pair in row.windows(2) {
                sum += (pair[1] - pair[0]).abs();
                pairs += 1;
            }
            if let Some(above) = &above {
                for (a, b) in above.iter().zip(&row) {
                    sum += (b - a).abs();
                    pairs += 1;
                }
            }
            above = Some(row);
        }
        Detail {
            gradient: Some(if pairs == 0 {
                0.0
            } else {
                (sum / pairs as f64) as f32
            }),
            opaque_8bit,
        }
    }
}

/// One algorithm choice, as a line for reports, and the chain op it concerns.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// Index of the op in the chain (`None`: the whole render).
    pub op_index: Option<usize>,
    /// What was chosen and why, e.g. `resize: bicubic instead of lanczos3 (detail …)`.
    pub line: String,
}

impl Choice {
    /// A choice that concerns the whole render rather than one op.
    pub fn general(line: impl Into<String>) -> Choice {
        Choice {
            op_index: None,
            line: line.into(),
        }
    }
}

/// What building a plan learned about content-based choices.
#[derive(Default, Debug)]
pub struct ContentLog {
    /// Some op would pick another algorithm on other content: measuring the image may pay.
    sensitive: Cell<bool>,
    /// Some op's algorithm depends only on whether the source is opaque 8-bit
    /// ([`Detail::opaque_8bit`]).
    kind_sensitive: Cell<bool>,
    /// The chain op being built (its index), to which recorded choices belong.
    op_index: Cell<Option<usize>>,
    /// The choices the measure made, e.g. `gaussian_blur: 3 box passes (detail 0.012 < 0.02)`.
    choices: RefCell<Vec<Choice>>,
}

impl ContentLog {
    /// Note that an op's algorithm depends on the content.
    pub fn mark_sensitive(&self) {
        self.sensitive.set(true);
    }

    /// Note that an op's algorithm depends on whether the source is opaque 8-bit (and not on
    /// its detail).
    pub fn mark_kind_sensitive(&self) {
        self.kind_sensitive.set(true);
    }

    /// Choices recorded from now on concern the chain op at `op_index`.
    pub fn building(&self, op_index: Option<usize>) {
        self.op_index.set(op_index);
    }

    /// Record a choice the measure made (for the op being built).
    pub fn record(&self, line: String) {
        let op_index = self.op_index.get();
        self.choices.borrow_mut().push(Choice { op_index, line });
    }

    /// Whether some op's algorithm depends on the content.
    pub fn is_sensitive(&self) -> bool {
        self.sensitive.get()
    }

    /// Whether some op's algorithm depends on the source being opaque 8-bit.
    pub fn is_kind_sensitive(&self) -> bool {
        self.kind_sensitive.get()
    }

    /// The recorded choices.
    pub fn into_choices(self) -> Vec<Choice> {
        self.choices.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, RgbImage};

    #[test]
    fn flat_images_measure_zero_and_detail_grows_with_contrast() {
        let flat =
            DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 200, image::Rgb([90, 90, 90])));
        assert_eq!(Detail::measure(&flat).gradient.unwrap(), 0.0);
        assert!(Detail::measure(&flat).opaque_8bit);
        let stripes = |contrast: u8| {
            DynamicImage::ImageRgb8(RgbImage::from_fn(512, 512, |x, _| {
                image::Rgb([if (x / 2) % 2 == 0 { contrast } else { 0 }; 3])
            }))
        };
        // Grid stride 2 on 512 px: every sampled pair differs by the full contrast horizontally.
        let low = Detail::measure(&stripes(51)).gradient.unwrap();
        let high = Detail::measure(&stripes(255)).gradient.unwrap();
        assert!((high - 0.5).abs() < 1e-3, "{high}");
        assert!((low - 0.1).abs() < 1e-3, "{low}");
    }

    #[test]
    fn eight_bit_samples_measure_like_their_working_values() {
        let mut state = 7u32;
        let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(700, 300, |x, y| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            image::Rgb([(x % 256) as u8, (y % 256) as u8, (state >> 24) as u8])
        }));
        let working = super::super::source::SharedTile(std::sync::Arc::new(
            photo.read(Rect::new(0, 0, 700, 300)),
        ));
        assert!(photo.as_u8().is_some() && working.as_u8().is_none());
        let (eight_bit, f32) = (Detail::measure(&photo), Detail::measure(&working));
        assert_eq!(eight_bit.gradient, f32.gradient);
        assert!(eight_bit.gradient.unwrap() > 0.01);
        // Only the 8-bit storage is (opaque) 8-bit.
        assert!(eight_bit.opaque_8bit && !f32.opaque_8bit);
        let rgba = DynamicImage::ImageRgba8(photo.to_rgba8());
        assert!(!Detail::measure(&rgba).opaque_8bit);
    }

    #[test]
    fn tiny_and_one_pixel_images_are_measured() {
        let one = DynamicImage::ImageRgb8(RgbImage::from_pixel(1, 1, image::Rgb([255, 0, 0])));
        assert_eq!(Detail::measure(&one).gradient.unwrap(), 0.0);
        let strip = DynamicImage::ImageRgb8(RgbImage::from_fn(1, 40, |_, y| {
            image::Rgb([if y % 2 == 0 { 255 } else { 0 }; 3])
        }));
        assert!((Detail::measure(&strip).gradient.unwrap() - 1.0).abs() < 1e-6);
    }
}
