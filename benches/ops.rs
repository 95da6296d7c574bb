//! Criterion benchmarks: every registered op (a representative setting, see
//! `opossum::bench::op_chain`) at 512, 1024, 2048 and 4096 px, plus the peer-comparison cases,
//! as full tiled renders from an in-memory 8-bit RGB image. `cargo bench --bench ops`;
//! filter with e.g. `cargo bench --bench ops -- gaussian_blur/2048`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use opossum::bench::{op_chain, peer_cases, synthetic_photo};
use opossum::config::Config;
use opossum::engine::Engine;
use opossum::io::decode::Orientation;
use opossum::ops;

const SIZES: [u32; 4] = [512, 1024, 2048, 4096];

/// The same allocator as the `opossum` binary, so figures match `opossum bench ops`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn engine() -> Engine {
    let mut config = Config::default();
    config.performance.max_memory_usage = opossum::config::ByteSize(4 << 30);
    Engine::new(config).expect("engine")
}

fn every_op(c: &mut Criterion) {
    let engine = engine();
    for def in ops::registry() {
        let mut group = c.benchmark_group(def.id);
        group.sample_size(10);
        for side in SIZES {
            let source = synthetic_photo(side);
            let chain = op_chain(def, side);
            group.bench_with_input(BenchmarkId::from_parameter(side), &side, |b, _| {
                b.iter(|| {
                    engine
                        .render_source(
                            &source,
                            Orientation::NoTransforms,
                            &chain,
                            false,
                            &Default::default(),
                        )
                        .expect("render")
                });
            });
        }
        group.finish();
    }
}

fn peer_set(c: &mut Criterion) {
    let engine = engine();
    let mut group = c.benchmark_group("peer");
    group.sample_size(10);
    for side in SIZES {
        let source = synthetic_photo(side);
        for case in peer_cases() {
            let chain = (case.chain)(side);
            group.bench_with_input(BenchmarkId::new(case.name, side), &side, |b, _| {
                b.iter(|| {
                    engine
                        .render_source(
                            &source,
                            Orientation::NoTransforms,
                            &chain,
                            false,
                            &Default::default(),
                        )
                        .expect("render")
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, every_op, peer_set);
criterion_main!(benches);
