//! The preview caches never change a result: for every registered op, frames served from the
//! intermediate (chain-prefix) cache, the in-memory result cache and the disk cache equal an
//! uncached render byte for byte, keys follow content and parameters, and damaged disk entries
//! are re-rendered.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Rng, random_op, test_image};
use opossum::cache::Key;
use opossum::cache::disk::DiskCache;
use opossum::chain::Chain;
use opossum::config::Config;
use opossum::engine::Engine;
use opossum::engine::cached::{PreviewCaches, Request, Served};
use opossum::engine::content::Detail;
use opossum::engine::render::RenderControl;
use opossum::io::decode::Orientation;
use opossum::ops;

fn engine() -> Engine {
    let mut config = Config::default();
    config.performance.max_cpu_cores = 2;
    Engine::new(config).unwrap()
}

fn caches(engine: &Engine, disk: Option<Arc<DiskCache>>) -> PreviewCaches {
    PreviewCaches::new(&engine.config().performance, 1 << 30, disk)
}

/// The uncached render, or `None` when the chain cannot be built for the image.
fn reference(
    engine: &Engine,
    image: &image::DynamicImage,
    orientation: Orientation,
    chain: &Chain,
    scale: f64,
) -> Option<Vec<u8>> {
    // A preview's render: the plan rendered as built (previews never take the 8-bit resize
    // of `Engine::render_source*`, which the GPU could not match), measured like the caches'
    // requests below.
    let plan = opossum::engine::plan::Plan::for_content(
        chain,
        opossum::engine::geom::Size::new(image.width(), image.height()),
        orientation,
        scale,
        engine.output_limits(),
        engine.quality_preset(),
        (scale == 1.0).then(|| Detail::measure(image)),
    )
    .ok()?;
    let (out, _) = engine
        .render_plan(image, &plan, None, false, &RenderControl::default())
        .ok()?;
    Some(out.to_rgba8())
}

#[test]
fn every_op_gives_the_same_pixels_from_each_cache_level() {
    let engine = engine();
    let image = test_image(150, 110, 3, true);
    let scale = 0.5;
    let control = RenderControl::default();
    let mut checked_reuse = 0;
    for (n, def) in ops::registry().iter().enumerate() {
        let mut rng = Rng::new(n as u64 + 11);
        let orientation = if n % 2 == 0 {
            Orientation::NoTransforms
        } else {
            Orientation::Rotate90
        };
        let mut chain = Chain {
            name: None,
            vectorize: None,
            ops: vec![
                random_op(ops::find("gaussian_blur").unwrap(), &mut rng),
                random_op(def, &mut rng),
                random_op(def, &mut rng),
            ],
        };
        let mut caches = caches(&engine, None);
        let mut request = |chain: &Chain| -> (Vec<u8>, Served) {
            let p = caches_render(
                &mut caches,
                &engine,
                &image,
                orientation,
                chain,
                scale,
                &control,
            );
            (p.0, p.1)
        };
        // A first render, then three edits of the last op: from the second rendered edit on,
        // the stable prefix (everything before the last op) comes from the intermediate cache.
        let mut first = None;
        let mut prefix_kept = false;
        for edit in 0..4 {
            if edit > 0 {
                chain.ops[2] = random_op(def, &mut rng);
            }
            let Some(expected) = reference(&engine, &image, orientation, &chain, scale) else {
                continue;
            };
            let (got, served) = request(&chain);
            assert_eq!(got, expected, "{} edit {edit}: {served:?}", def.id);
            // The first rendered edit keeps the prefix; every later one starts from it (an
            // edit back to earlier parameters is a result-cache hit instead).
            if edit >= 1
                && let Served::Rendered { reused, stages } = served
            {
                if prefix_kept {
                    assert_eq!(
                        reused,
                        stages - 1,
                        "{} edit {edit} reuses the prefix",
                        def.id
                    );
                    checked_reuse += 1;
                }
                prefix_kept = true;
            }
            first.get_or_insert((chain.clone(), expected));
        }
        // Going back to the first chain (an undo) is a result-cache hit with the same pixels.
        if let Some((chain, expected)) = first {
            let (got, served) = request(&chain);
            assert_eq!(served, Served::Memory, "{}", def.id);
            assert_eq!(got, expected, "{}", def.id);
        }
    }
    assert!(
        checked_reuse >= ops::registry().len(),
        "prefix reuse was exercised"
    );
}

fn caches_render(
    caches: &mut PreviewCaches,
    engine: &Engine,
    image: &image::DynamicImage,
    orientation: Orientation,
    chain: &Chain,
    scale: f64,
    control: &RenderControl<'_>,
) -> (Vec<u8>, Served, Key) {
    let p = caches
        .get_or_render(
            engine,
            &Request {
                source: Key(42),
                image,
                scale,
                orientation,
                chain,
                region: None,
                // What the engine's own render measures (full-resolution sources only).
                detail: (scale == 1.0).then(|| Detail::measure(image)),
            },
            control,
        )
        .unwrap();
    (p.frame.rgba.clone(), p.served, p.key)
}

fn sample_chain() -> Chain {
    Chain::parse_bytes(
        b"version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 3.0\n[[ops]]\nop = \"grayscale\"\n",
        opossum::chain::Format::Toml,
        opossum::chain::OutputLimits::default(),
    )
    .unwrap()
}

#[test]
fn results_are_keyed_by_content_level_and_parameters() {
    let engine = engine();
    let image = test_image(120, 90, 5, false);
    let chain = sample_chain();
    let mut caches = caches(&engine, None);
    let control = RenderControl::default();
    let mut render = |source: u128, image: &image::DynamicImage, chain: &Chain| {
        caches
            .get_or_render(
                &engine,
                &Request {
                    source: Key(source),
                    image,
                    scale: 1.0,
                    orientation: Orientation::NoTransforms,
                    chain,
                    region: None,
                    detail: None,
                },
                &control,
            )
            .unwrap()
            .served
    };
    assert!(matches!(render(1, &image, &chain), Served::Rendered { .. }));
    assert_eq!(render(1, &image, &chain), Served::Memory);
    // Another file's content, another level size, another sigma: not the same result.
    assert!(matches!(render(2, &image, &chain), Served::Rendered { .. }));
    let smaller = image.resize_exact(60, 45, image::imageops::FilterType::Triangle);
    assert!(matches!(
        render(1, &smaller, &chain),
        Served::Rendered { .. }
    ));
    let mut sharper = chain.clone();
    sharper.ops[0] = opossum::chain::ChainOp::new(ops::find("gaussian_blur").unwrap());
    assert!(matches!(
        render(1, &image, &sharper),
        Served::Rendered { .. }
    ));
    let stats = caches.stats();
    assert_eq!(stats[0].name, "result");
    assert_eq!((stats[0].hits, stats[0].misses), (1, 4));
}

#[test]
fn settled_previews_survive_a_restart_and_damaged_entries_are_rendered_again() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let image = test_image(120, 90, 6, true);
    let chain = sample_chain();
    let control = RenderControl::default();
    let open = || {
        Some(Arc::new(
            DiskCache::open(dir.path(), 1 << 30, Duration::from_secs(3600)).unwrap(),
        ))
    };
    let expected = reference(&engine, &image, Orientation::NoTransforms, &chain, 1.0).unwrap();
    let render = |caches: &mut PreviewCaches| {
        caches_render(
            caches,
            &engine,
            &image,
            Orientation::NoTransforms,
            &chain,
            1.0,
            &control,
        )
    };
    let key = {
        let mut first = caches(&engine, open());
        let (got, served, key) = render(&mut first);
        assert!(matches!(served, Served::Rendered { .. }));
        assert_eq!(got, expected);
        let frame = opossum::engine::cached::Frame {
            size: opossum::engine::geom::Size::new(120, 90),
            rgba: got,
        };
        first.persist(key, &frame);
        key
    };
    // A new process: empty memory, the disk entry answers.
    let mut second = caches(&engine, open());
    let (got, served, _) = render(&mut second);
    assert_eq!(served, Served::Disk);
    assert_eq!(got, expected);
    // Flip one byte of the stored entry: a miss, rendered again, same pixels.
    let entry = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains(&key.to_string()))
        .expect("the entry file");
    let mut bytes = std::fs::read(&entry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&entry, bytes).unwrap();
    let mut third = caches(&engine, open());
    let (got, served, _) = render(&mut third);
    assert!(matches!(served, Served::Rendered { .. }));
    assert_eq!(got, expected);
}
