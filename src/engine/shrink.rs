//! Shrink-on-load for JPEG inputs (resolution-aware processing). When a chain starts by making
//! the image smaller, libjpeg-turbo decodes it at 1/2, 1/4 or 1/8 of its size straight from
//! the DCT coefficients, which costs a fraction of decoding every pixel and resampling most of
//! them away. The chain's first resize then resamples the reduced image to the same output
//! size as before (its mode becomes `exact` with the size the full-resolution plan computed).
//!
//! How far to shrink is the quality preset's tolerance: `ultra` and `high` never shrink;
//! `balanced` keeps at least twice the target resolution, so the resize still averages 2×2
//! or more decoded pixels per output pixel and the result is nearly the same; `fast` keeps
//! 1.5× and `draft` 1×. Figures: README, "Resolution-aware processing".

use crate::chain::Chain;
use crate::chain::raw::RawValue;
use crate::engine::plan::Plan;
use crate::io::decode::Probe;
use crate::quality::QualityPreset;

/// A reduced JPEG decode and the chain that renders it.
pub struct Shrink {
    /// Decode at `numerator / 8` of the stored size (1, 2 or 4).
    pub numerator: u8,
    /// The chain with its first resize fixed to the full-resolution plan's output size.
    pub chain: Chain,
}

/// Resolution the preset keeps above the first resize's output, or `None` for no shrinking.
fn margin(preset: QualityPreset) -> Option<f64> {
    match preset {
        QualityPreset::Ultra | QualityPreset::High => None,
        QualityPreset::Balanced => Some(2.0),
        QualityPreset::Fast => Some(1.5),
        QualityPreset::Draft => Some(1.0),
    }
}

/// The shrink for rendering `chain` (planned at full resolution as `plan`) from the JPEG
/// described by `probe`, or `None` when the chain does not start with a downscale that allows
/// one under `preset`.
pub fn plan(chain: &Chain, probe: &Probe, plan: &Plan, preset: QualityPreset) -> Option<Shrink> {
    if probe.format != image::ImageFormat::Jpeg || probe.high_bit_depth {
        return None;
    }
    let margin = margin(preset)?;
    let (index, op) = chain.ops.iter().enumerate().find(|(_, op)| op.enabled)?;
    if op.def.id != "resize" || !matches!(op.params.choice("mode"), "fit" | "exact") {
        return None;
    }
    let stage = plan.stages.iter().find(|s| s.op_index == Some(index))?;
    let ratio = (f64::from(stage.output.width) / f64::from(stage.input.width))
        .max(f64::from(stage.output.height) / f64::from(stage.input.height));
    let numerator = [1u8, 2, 4]
        .into_iter()
        .find(|&n| f64::from(n) / 8.0 >= margin * ratio)?;
    let mut chain = chain.clone();
    let params = &mut chain.ops[index].params;
    let specs = op.def.params;
    params
        .set(specs, "mode", &RawValue::String("exact".into()))
        .ok()?;
    params
        .set(
            specs,
            "width",
            &RawValue::Int(i64::from(stage.output.width)),
        )
        .ok()?;
    params
        .set(
            specs,
            "height",
            &RawValue::Int(i64::from(stage.output.height)),
        )
        .ok()?;
    Some(Shrink { numerator, chain })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::step;
    use crate::chain::OutputLimits;
    use crate::engine::geom::Size;
    use crate::io::decode::Orientation;

    fn probe(size: Size) -> Probe {
        Probe {
            format: image::ImageFormat::Jpeg,
            size,
            orientation: Orientation::NoTransforms,
            icc_profile: None,
            has_alpha: false,
            grey: false,
            high_bit_depth: false,
            bytes_per_pixel: 3,
        }
    }

    fn fit(w: i64, h: i64) -> Chain {
        Chain {
            name: None,
            ops: vec![
                step(
                    "resize",
                    &[("width", RawValue::Int(w)), ("height", RawValue::Int(h))],
                ),
                step("sharpen", &[]),
            ],
            vectorize: None,
        }
    }

    fn shrink_of(chain: &Chain, size: Size, preset: QualityPreset) -> Option<Shrink> {
        let p = probe(size);
        let full = Plan::new(
            chain,
            size,
            p.orientation,
            1.0,
            OutputLimits::default(),
            preset,
        )
        .unwrap();
        plan(chain, &p, &full, preset)
    }

    #[test]
    fn shrinks_only_as_far_as_the_preset_allows() {
        let big = Size::new(6000, 4000);
        let chain = fit(1500, 1500); // ratio 1/4
        assert!(shrink_of(&chain, big, QualityPreset::Ultra).is_none());
        assert!(shrink_of(&chain, big, QualityPreset::High).is_none());
        assert_eq!(
            shrink_of(&chain, big, QualityPreset::Balanced).map(|s| s.numerator),
            Some(4)
        );
        assert_eq!(
            shrink_of(&chain, big, QualityPreset::Draft).map(|s| s.numerator),
            Some(2)
        );
        // A small reduction leaves nothing to gain at balanced.
        assert!(shrink_of(&fit(4000, 4000), big, QualityPreset::Balanced).is_none());
    }

    #[test]
    fn the_shrunk_chain_keeps_the_output_size() {
        let size = Size::new(6001, 3999);
        let chain = fit(800, 600);
        let s = shrink_of(&chain, size, QualityPreset::Fast).unwrap();
        let scaled = Size::new(
            (6001 * u32::from(s.numerator)).div_ceil(8),
            (3999 * u32::from(s.numerator)).div_ceil(8),
        );
        let full = Plan::new(
            &chain,
            size,
            Orientation::NoTransforms,
            1.0,
            OutputLimits::default(),
            QualityPreset::Fast,
        )
        .unwrap();
        let reduced = Plan::new(
            &s.chain,
            scaled,
            Orientation::NoTransforms,
            1.0,
            OutputLimits::default(),
            QualityPreset::Fast,
        )
        .unwrap();
        assert_eq!(reduced.output, full.output);
    }

    #[test]
    fn other_first_ops_and_other_formats_do_not_shrink() {
        let size = Size::new(4000, 3000);
        let mut chain = fit(500, 500);
        chain.ops.swap(0, 1);
        assert!(shrink_of(&chain, size, QualityPreset::Draft).is_none());
        let chain = fit(500, 500);
        let mut p = probe(size);
        p.format = image::ImageFormat::Png;
        let full = Plan::new(
            &chain,
            size,
            p.orientation,
            1.0,
            OutputLimits::default(),
            QualityPreset::Draft,
        )
        .unwrap();
        assert!(plan(&chain, &p, &full, QualityPreset::Draft).is_none());
    }
}
