//! `--profile`: collect the puffin scopes of one run (decode, plan, every op per tile, encode)
//! and turn them into a per-stage table (count, total, mean, max), optionally saving a
//! `.puffin` capture that `puffin_viewer` opens.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use puffin::{GlobalFrameView, GlobalProfiler, Reader, Stream};

use crate::error::{Error, Result};

/// Timing of one named scope over the run.
#[derive(Clone, Debug, PartialEq)]
pub struct StageStat {
    /// Scope name, with its data (e.g. `op gaussian_blur`).
    pub name: String,
    /// Times entered.
    pub count: u64,
    /// Total milliseconds (summed over threads, children included).
    pub total_ms: f64,
    /// Longest single entry, milliseconds.
    pub max_ms: f64,
}

impl StageStat {
    /// Mean milliseconds per entry.
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_ms / self.count as f64
        }
    }
}

/// Per-stage statistics of a run, sorted by total time, largest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileReport {
    /// One row per distinct scope.
    pub stages: Vec<StageStat>,
}

impl fmt::Display for ProfileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<40} {:>7} {:>11} {:>10} {:>10}",
            "stage", "count", "total ms", "mean ms", "max ms"
        )?;
        for s in &self.stages {
            writeln!(
                f,
                "{:<40} {:>7} {:>11.2} {:>10.3} {:>10.3}",
                s.name,
                s.count,
                s.total_ms,
                s.mean_ms(),
                s.max_ms
            )?;
        }
        Ok(())
    }
}

/// Records puffin scopes from construction until [`Profiler::finish`].
pub struct Profiler {
    view: GlobalFrameView,
}

impl Default for Profiler {
    fn default() -> Self {
        Self::start()
    }
}

impl Profiler {
    /// Turn scopes on and start collecting.
    pub fn start() -> Self {
        let view = GlobalFrameView::default();
        puffin::set_scopes_on(true);
        Self { view }
    }

    /// Close the current frame and summarise everything recorded.
    pub fn finish(&self) -> ProfileReport {
        GlobalProfiler::lock().new_frame();
        let view = self.view.lock();
        let scopes = view.scope_collection();
        let mut by_name: BTreeMap<String, StageStat> = BTreeMap::new();
        for frame in view.all_uniq() {
            let Ok(unpacked) = frame.unpacked() else {
                continue;
            };
            for stream_info in unpacked.thread_streams.values() {
                let mut visit = |name_id: &puffin::ScopeId, data: &str, duration_ns: i64| {
                    let base = scopes
                        .fetch_by_id(name_id)
                        .map_or_else(|| "?".to_owned(), |d| d.name().to_string());
                    let name = if data.is_empty() {
                        base
                    } else {
                        format!("{base} {data}")
                    };
                    let ms = duration_ns as f64 / 1e6;
                    let entry = by_name.entry(name.clone()).or_insert(StageStat {
                        name,
                        count: 0,
                        total_ms: 0.0,
                        max_ms: 0.0,
                    });
                    entry.count += 1;
                    entry.total_ms += ms;
                    entry.max_ms = entry.max_ms.max(ms);
                };
                walk(&stream_info.stream, 0, &mut visit);
            }
        }
        let mut stages: Vec<StageStat> = by_name.into_values().collect();
        stages.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        ProfileReport { stages }
    }

    /// Save everything recorded as a `.puffin` file (open it with `puffin_viewer`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let view = self.view.lock();
        let mut bytes = Vec::new();
        view.write(&mut bytes).map_err(|e| Error::Encode {
            reason: format!("cannot serialise the profile: {e}"),
            path: path.to_path_buf(),
        })?;
        crate::io::write_atomic(path, |w| w.write_all(&bytes))
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        puffin::set_scopes_on(false);
    }
}

/// Visit every scope of `stream` from `offset` down, depth first.
fn walk(stream: &Stream, offset: u64, visit: &mut impl FnMut(&puffin::ScopeId, &str, i64)) {
    let Ok(reader) = Reader::with_offset(stream, offset) else {
        return;
    };
    for scope in reader.flatten() {
        visit(&scope.id, scope.record.data, scope.record.duration_ns);
        walk(stream, scope.child_begin_position, visit);
    }
}
