//! `opossum cache stats|clear`: the persistent preview cache the app keeps (pyramids and
//! settled previews), seen and emptied from the command line; and `opossum bench cache`.

use std::time::Duration;

use super::args::{BenchCacheArgs, CacheCommand, GlobalArgs};
use super::load_config;
use crate::cache::disk::{self, DiskCache};
use crate::error::{Error, Result, human_bytes};

/// Run one cache command.
pub fn run(global: &GlobalArgs, what: &CacheCommand) -> Result<()> {
    let config = load_config(global)?;
    let dir = disk::default_dir().ok_or_else(|| Error::Usage {
        reason: "this platform has no cache folder; set OPOSSUM_CACHE_DIR".to_owned(),
        path: None,
    })?;
    // The folder, or the nearest part of its path that exists, must be a folder: a file
    // there (OPOSSUM_CACHE_DIR naming one) would read as an empty cache.
    if let Some(existing) = dir.ancestors().find(|a| a.exists())
        && !existing.is_dir()
    {
        return Err(Error::Usage {
            reason: format!(
                "the cache folder {} lies under a file, not a folder (check OPOSSUM_CACHE_DIR)",
                dir.display()
            ),
            path: Some(existing.to_path_buf()),
        });
    }
    let performance = &config.performance;
    let cache = DiskCache::inspect(
        &dir,
        performance.persistent_cache_size.0,
        Duration::from_secs(performance.cache_ttl),
    );
    match what {
        CacheCommand::Stats { json } => {
            let stats = cache.stats();
            if *json {
                let text = serde_json::to_string_pretty(&stats)
                    .map_err(|e| Error::Internal(format!("cache stats as JSON: {e}")))?;
                outln!("{text}");
                return Ok(());
            }
            let lookups = stats.lookups.hits + stats.lookups.misses;
            outln!("cache folder   {}", stats.dir.display());
            outln!(
                "entries        {} ({} pyramids, {}; {} previews, {})",
                stats.entries,
                stats.thumbnails.0,
                human_bytes(stats.thumbnails.1),
                stats.results.0,
                human_bytes(stats.results.1)
            );
            if stats.cap_bytes == 0 {
                outln!(
                    "size           {} (disk cache off: persistent_cache_size = 0)",
                    human_bytes(stats.bytes)
                );
            } else {
                outln!(
                    "size           {} of {} ({:.1} %)",
                    human_bytes(stats.bytes),
                    human_bytes(stats.cap_bytes),
                    stats.bytes as f64 * 100.0 / stats.cap_bytes as f64
                );
            }
            let ttl = if stats.ttl_s == 0 {
                "entries never expire (cache_ttl = 0)".to_owned()
            } else {
                format!("{} s since last use", stats.ttl_s)
            };
            outln!(
                "time to live   {ttl}{}",
                stats.oldest_use_s.map_or(String::new(), |s| format!(
                    "; least recently used {s} s ago"
                ))
            );
            if lookups == 0 {
                outln!("lookups        none yet");
            } else {
                outln!(
                    "lookups        {} hits, {} misses: {:.1} % hit rate (all app runs)",
                    stats.lookups.hits,
                    stats.lookups.misses,
                    stats.lookups.hits as f64 * 100.0 / lookups as f64
                );
            }
            outln!(
                "The in-memory levels (result, intermediate, thumbnail) live in the app: see its profiler panel."
            );
        }
        CacheCommand::Clear => {
            let (files, bytes) = cache.clear();
            outln!(
                "removed {files} cache entries ({}) from {}",
                human_bytes(bytes),
                dir.display()
            );
        }
    }
    Ok(())
}

/// `opossum bench cache`.
pub fn bench(global: &GlobalArgs, args: &BenchCacheArgs) -> Result<()> {
    use crate::bench::cache;
    let engine = crate::engine::Engine::new(load_config(global)?)?;
    let chain = match &args.chain {
        Some(path) => super::load_chain(path, &engine)?,
        None => cache::default_chain(),
    };
    let folder = tempfile::tempdir()
        .map_err(|e| Error::io("create a temporary folder", std::env::temp_dir(), e))?;
    let path = match &args.image {
        Some(path) => path.clone(),
        None => {
            let path = folder.path().join("synthetic-6000x4000.jpg");
            let photo = crate::bench::synthetic_photo(6000)
                .crop_imm(0, 0, 6000, 4000)
                .to_rgb8();
            photo
                .save_with_format(&path, image::ImageFormat::Jpeg)
                .map_err(|e| Error::Internal(format!("writing the synthetic photo: {e}")))?;
            path
        }
    };
    outln!(
        "opossum bench cache: {} with {} ops, {} runs per figure",
        path.display(),
        chain.ops.len(),
        args.runs
    );
    let report = cache::run(&engine, &path, &chain, args.view, args.runs)?;
    out!("{}", report.text());
    if let Some(json) = &args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Internal(format!("report as JSON: {e}")))?;
        crate::io::write_atomic(json, |w| w.write_all(text.as_bytes()))?;
    }
    Ok(())
}
