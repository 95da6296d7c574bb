//! Tiled renders are bit-identical to single-tile renders, for random chains over every op,
//! odd image sizes and tile sizes down to 1 px (smaller than any halo).

mod common;

use common::{Rng, random_chain, render_tiled, test_image};
use opossum::chain::{Chain, ChainOp};
use opossum::ops;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_chains_tile_exactly(
        seed in any::<u64>(),
        width in 1u32..48,
        height in 1u32..48,
        tile_px in 1u32..24,
        len in 1usize..5,
        alpha in any::<bool>(),
    ) {
        let mut rng = Rng::new(seed);
        let chain = random_chain(&mut rng, len);
        let image = test_image(width, height, seed, alpha);
        let whole = render_tiled(&image, &chain, 1 << 16);
        let tiled = render_tiled(&image, &chain, tile_px);
        prop_assert_eq!(whole.is_some(), tiled.is_some());
        if let (Some(whole), Some(tiled)) = (whole, tiled) {
            prop_assert_eq!(whole.rect, tiled.rect);
            let first_diff = whole.data.iter().zip(&tiled.data).position(|(a, b)| a.to_bits() != b.to_bits());
            prop_assert!(first_diff.is_none(), "chain {:?} differs at sample {:?}",
                chain.ops.iter().map(|o| o.def.id).collect::<Vec<_>>(), first_diff);
        }
    }
}

/// Every op alone, at its defaults and at random params, on a 2-Mpx-like odd shape scaled down,
/// with 64 px and prime tile sizes.
#[test]
fn every_op_tiles_exactly() {
    let image = test_image(157, 93, 7, true);
    let mut rng = Rng::new(42);
    for def in ops::registry() {
        for variant in 0..4 {
            let op = if variant == 0 {
                ChainOp::new(def)
            } else {
                common::random_op(def, &mut rng)
            };
            let chain = Chain {
                name: None,
                vectorize: None,
                ops: vec![op],
            };
            let Some(whole) = render_tiled(&image, &chain, 4096) else {
                continue;
            };
            for tile_px in [64, 17, 5] {
                let tiled = render_tiled(&image, &chain, tile_px).unwrap();
                assert!(
                    whole
                        .data
                        .iter()
                        .zip(&tiled.data)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{} variant {variant} differs with {tile_px} px tiles",
                    def.id
                );
            }
        }
    }
}
