//! What each quality preset (`ultra | high | balanced | fast | draft`, config `quality`, CLI
//! `--quality-preset`, the app's settings) changes: one table, read by the ops when they are
//! built, by the encoders, by the app (which shows [`QualityPreset::changes`]) and by
//! `opossum bench quality`, which measures the cost and quality of each.
//!
//! The choices only swap algorithms whose difference is hard to see at that level; measured
//! figures are in the README ("Quality presets"). The working format is f32 RGBA at every
//! preset, except that below `ultra` a leading resize, exact blur, unsharp mask, greyscale
//! conversion or Sobel of 8-bit RGB or grey runs on 8-bit kernels (`engine::u8_lead`).

pub use crate::config::QualityPreset;
use crate::engine::box_blur::BlurAlgorithm;

impl QualityPreset {
    /// Every preset, best quality first.
    pub const ALL: [QualityPreset; 5] = [
        QualityPreset::Ultra,
        QualityPreset::High,
        QualityPreset::Balanced,
        QualityPreset::Fast,
        QualityPreset::Draft,
    ];

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            QualityPreset::Ultra => "ultra",
            QualityPreset::High => "high",
            QualityPreset::Balanced => "balanced",
            QualityPreset::Fast => "fast",
            QualityPreset::Draft => "draft",
        }
    }

    /// Parse a preset name.
    pub fn parse(name: &str) -> Option<QualityPreset> {
        Self::ALL.into_iter().find(|q| q.name() == name)
    }

    /// How Gaussian blurs (the `gaussian_blur` op and `sharpen`'s blur) of `sigma_px` are
    /// computed. Boxes cost the same at any sigma; below the thresholds the exact blur is
    /// cheap anyway and the boxes' error is largest.
    pub fn blur_algorithm(self, sigma_px: f64) -> BlurAlgorithm {
        match self {
            QualityPreset::Ultra => BlurAlgorithm::Exact,
            QualityPreset::High if sigma_px >= 8.0 => BlurAlgorithm::Boxes(3),
            QualityPreset::Balanced if sigma_px >= 3.0 => BlurAlgorithm::Boxes(3),
            QualityPreset::Fast if sigma_px >= 1.5 => BlurAlgorithm::Boxes(3),
            QualityPreset::Draft if sigma_px >= 1.5 => BlurAlgorithm::Boxes(2),
            _ => BlurAlgorithm::Exact,
        }
    }

    /// The resampling filter of a `resize` whose `filter` is `auto`.
    pub fn resize_filter(self) -> &'static str {
        match self {
            QualityPreset::Ultra | QualityPreset::High | QualityPreset::Balanced => "lanczos3",
            QualityPreset::Fast => "bicubic",
            QualityPreset::Draft => "bilinear",
        }
    }

    /// The cheaper blur this preset allows for `sigma_px` on images whose measured
    /// [`Detail`](crate::engine::content::Detail) is under the returned bound (`None`: the preset's choice stands).
    ///
    /// Measured on the bench corpus (24 photos and crops, 341–4096 px, plus synthetic smooth,
    /// noisy and line images), PSNR of the 3-box blur against the exact one at sigma 1.5, 3
    /// and 5 px: at least 56.6 dB on every image under detail 0.02 (`high` asks for 50),
    /// at least 50.8 dB under 0.1 (`balanced` asks for 45), and 44 dB on line art (0.39).
    pub fn smooth_blur(self, sigma_px: f64) -> Option<(BlurAlgorithm, f32)> {
        match self {
            QualityPreset::High if sigma_px >= 1.5 => Some((BlurAlgorithm::Boxes(3), 0.02)),
            QualityPreset::Balanced if sigma_px >= 1.5 => Some((BlurAlgorithm::Boxes(3), 0.1)),
            _ => None,
        }
    }

    /// The cheaper filter this preset allows for `auto` resizes that shrink, on images whose
    /// measured [`Detail`](crate::engine::content::Detail) is under the returned bound (`None`: the preset's filter stands).
    ///
    /// Measured on the same corpus, shrinking to 1/4, 1/2 and 1/1.28 of the width, PSNR
    /// against Lanczos3: bicubic at least 54.0 dB under detail 0.01 (`high` asks for 50) and
    /// 49.8 dB under 0.02 (`balanced`, 45); bilinear at least 41.2 dB under 0.02 (`fast`, 40).
    /// Busy images (detail 0.04–0.4) drop to 37–47 dB with bicubic.
    pub fn smooth_resize_filter(self) -> Option<(&'static str, f32)> {
        match self {
            QualityPreset::High => Some(("bicubic", 0.01)),
            QualityPreset::Balanced => Some(("bicubic", 0.02)),
            QualityPreset::Fast => Some(("bilinear", 0.02)),
            _ => None,
        }
    }

    /// Whether the leading ops of a full-resolution render over 8-bit pixels may run on 8-bit
    /// kernels (`engine::u8_lead`): every preset but `ultra`, which keeps f32 throughout.
    pub fn eight_bit_kernels(self) -> bool {
        self != QualityPreset::Ultra
    }

    /// libwebp's `method` (0 = fastest … 6 = smallest files at the same quality).
    pub fn webp_method(self) -> i32 {
        match self {
            QualityPreset::Ultra => 6,
            QualityPreset::High => 5,
            QualityPreset::Balanced => 4,
            QualityPreset::Fast => 2,
            QualityPreset::Draft => 0,
        }
    }

    /// Whether JPEG outputs keep colour at full resolution (4:4:4): at `ultra` and `high`,
    /// where halved chroma (4:2:0, the others' and most tools' default) could show on saturated
    /// edges. Costs encode time and bytes; the only streaming-compatible JPEG effort knob
    /// (Huffman optimisation and progressive scans buffer the whole image).
    pub fn jpeg_full_chroma(self) -> bool {
        matches!(self, QualityPreset::Ultra | QualityPreset::High)
    }

    /// zlib effort of PNG outputs.
    pub fn png_compression(self) -> png::Compression {
        match self {
            QualityPreset::Ultra => png::Compression::High,
            QualityPreset::High => png::Compression::Balanced,
            QualityPreset::Balanced => png::Compression::Fast,
            QualityPreset::Fast | QualityPreset::Draft => png::Compression::Fastest,
        }
    }

    /// What this preset does, one line per choice, for the app and `opossum bench quality`.
    pub fn changes(self) -> Vec<String> {
        let blur = match self {
            QualityPreset::Ultra => "blur and sharpen exact",
            QualityPreset::High => "blur and sharpen exact below sigma 8 px, else 3 box passes",
            QualityPreset::Balanced => "blur and sharpen exact below sigma 3 px, else 3 box passes",
            QualityPreset::Fast => "blur and sharpen as 3 box passes from sigma 1.5 px",
            QualityPreset::Draft => "blur and sharpen as 2 box passes from sigma 1.5 px",
        }
        .to_owned();
        let mut by_content = Vec::new();
        if let Some((BlurAlgorithm::Boxes(n), max)) = self.smooth_blur(8.0) {
            by_content.push(format!(
                "blurs from sigma 1.5 px as {n} box passes below detail {max}"
            ));
        }
        if let Some((filter, max)) = self.smooth_resize_filter() {
            by_content.push(format!(
                "shrinking \"auto\" resizes {filter} below detail {max}"
            ));
        }
        let by_content = if by_content.is_empty() {
            "no choices by image content".to_owned()
        } else {
            format!("by image content: {}", by_content.join("; "))
        };
        let working = if self.eight_bit_kernels() {
            "leading resize, blur, sharpen, greyscale and Sobel of 8-bit images on 8-bit kernels; \
             blurs of opaque 8-bit images exact below sigma 8 px (faster than boxes at 8 bits)"
        } else {
            "f32 working format throughout"
        };
        vec![
            blur,
            format!("resize filter \"auto\" = {}", self.resize_filter()),
            by_content,
            working.to_owned(),
            format!("WebP effort {} of 6", self.webp_method()),
            format!(
                "JPEG colour {}",
                if self.jpeg_full_chroma() {
                    "full resolution (4:4:4)"
                } else {
                    "halved (4:2:0)"
                }
            ),
            format!(
                "PNG compression {}",
                match self.png_compression() {
                    png::Compression::High => "high",
                    png::Compression::Balanced => "balanced",
                    png::Compression::Fast => "fast",
                    _ => "fastest",
                }
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_presets_only_get_cheaper() {
        for q in QualityPreset::ALL {
            assert_eq!(QualityPreset::parse(q.name()), Some(q));
            assert_eq!(q.changes().len(), 7);
        }
        assert_eq!(QualityPreset::parse("best"), None);
        // A lower preset never picks a slower blur or a higher effort.
        for pair in QualityPreset::ALL.windows(2) {
            assert!(pair[0].webp_method() >= pair[1].webp_method());
            assert!(pair[0].jpeg_full_chroma() >= pair[1].jpeg_full_chroma());
            for sigma in [0.5, 1.5, 3.0, 8.0, 40.0] {
                let passes = |q: QualityPreset| match q.blur_algorithm(sigma) {
                    BlurAlgorithm::Exact => 99,
                    BlurAlgorithm::Boxes(n) => n,
                };
                assert!(passes(pair[0]) >= passes(pair[1]), "{sigma}");
            }
        }
    }
}
