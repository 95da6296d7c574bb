//! `opossum.toml`: performance and safety settings, read from the config folder that
//! `directories` gives (e.g. `~/.config/opossum/opossum.toml` on Linux), or from `--config`.
//! A missing file means defaults; unknown keys and bad values are errors that name the key.
//!
//! ```toml
//! [performance]
//! max_cpu_cores = 0            # 0 = all cores
//! max_memory_usage = "1GiB"    # shared budget for decode, tiles and output
//! tile_size = 512              # px, largest tile edge
//! min_tile_size = 128          # px, smallest tile edge (`opossum tune` measures it)
//! parallel_images = 0          # 0 = automatic
//! quality = "balanced"         # ultra | high | balanced | fast | draft
//! gpu_enabled = true
//! enable_result_cache = true
//! enable_intermediate_cache = true
//! cache_ttl = 604800           # s; a week since last use
//! persistent_cache_size = "10GB"  # 0 = no disk cache
//!
//! [limits]
//! max_image_pixels = 1073741824
//! max_image_side_px = 65535
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A byte count, written in files as an integer or a string like `"4GB"` or `"512 MiB"`.
/// Decimal and binary suffixes both mean powers of 1024, as in most imaging tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parse `"4GB"`, `"512 MiB"`, `"1.5G"`, `"1048576"`.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num.parse().ok()?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => return None,
        };
        let bytes = value * mult as f64;
        (0.0..1.8e19).contains(&bytes).then_some(Self(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::error::human_bytes(self.0))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(v) => Ok(ByteSize(v)),
            Raw::Text(t) => ByteSize::parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{t:?} is not a size; write e.g. \"512MiB\", \"4GB\" or a number of bytes"
                ))
            }),
        }
    }
}

/// Quality presets: which algorithm variants ops and encoders use (the table is in
/// `crate::quality`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QualityPreset {
    /// Maximum quality.
    Ultra,
    /// Visually indistinguishable from ultra.
    High,
    /// The default trade-off.
    #[default]
    Balanced,
    /// Prefer speed.
    Fast,
    /// Maximum speed.
    Draft,
}

/// `[performance]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Performance {
    /// Worker threads for rendering; 0 = all cores.
    pub max_cpu_cores: usize,
    /// One memory budget for the whole process: decoded images, tiles in flight, outputs.
    pub max_memory_usage: ByteSize,
    /// Largest edge of a render tile in pixels (16..=8192); tiles follow the chain's halo.
    pub tile_size: u32,
    /// Smallest edge of a render tile in pixels (16..=8192; `opossum tune` measures it).
    pub min_tile_size: u32,
    /// Images processed at once in batch and watch; 0 = automatic.
    pub parallel_images: usize,
    /// Quality preset.
    pub quality: QualityPreset,
    /// Shortcut for the preset: 0 = fastest (draft) … 1 = highest quality (ultra).
    pub quality_vs_speed: Option<f64>,
    /// Use the GPU for previews when one is available.
    pub gpu_enabled: bool,
    /// GPU memory the preview may use.
    pub gpu_memory_limit: ByteSize,
    /// Frame budget of an interactive preview in ms: while editing, slower previews render
    /// from a coarser pyramid level and refine when the edits pause (0 = off).
    pub preview_frame_budget_ms: u64,
    /// Track memory use and report it.
    pub enable_memory_monitoring: bool,
    /// Keep finished previews in memory (undo, before/after and repeated states are instant).
    pub enable_result_cache: bool,
    /// Keep chain-prefix results in memory, so editing op k re-runs only ops k..n.
    pub enable_intermediate_cache: bool,
    /// Seconds a cache entry stays valid: since insertion in memory, since last use on disk.
    /// The default is a week (the spec's example, 3600, would forget yesterday's previews);
    /// 0 = entries never expire (only the size caps evict them).
    pub cache_ttl: u64,
    /// Size cap of the on-disk cache (pyramids and settled previews); 0 turns it off.
    pub persistent_cache_size: ByteSize,
}

impl Default for Performance {
    fn default() -> Self {
        Self {
            max_cpu_cores: 0,
            max_memory_usage: ByteSize(default_memory_bytes()),
            tile_size: 512,
            min_tile_size: crate::engine::render::MIN_AUTO_TILE_PX,
            parallel_images: 0,
            quality: QualityPreset::Balanced,
            quality_vs_speed: None,
            gpu_enabled: true,
            gpu_memory_limit: ByteSize(2 << 30),
            preview_frame_budget_ms: 100,
            enable_memory_monitoring: true,
            enable_result_cache: true,
            enable_intermediate_cache: true,
            cache_ttl: 7 * 24 * 3600,
            persistent_cache_size: ByteSize(10 << 30),
        }
    }
}

/// `[limits]`: caps on input images (decompression-bomb protection).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Images with more pixels are refused before decoding.
    pub max_image_pixels: u64,
    /// Images with a longer side are refused before decoding.
    pub max_image_side_px: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_image_pixels: 1 << 30,
            max_image_side_px: 65_535,
        }
    }
}

/// The whole config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[performance]`.
    pub performance: Performance,
    /// `[limits]`.
    pub limits: Limits,
    /// `[tuning]`: what `opossum tune` measured and chose (informational).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuning: Option<crate::tune::Tuning>,
}

/// 1 GiB, or half the RAM if that is less.
fn default_memory_bytes() -> u64 {
    const GIB: u64 = 1 << 30;
    total_ram_bytes().map_or(GIB, |ram| GIB.min(ram / 2))
}

/// Physical memory from `/proc/meminfo` (Linux); `None` elsewhere.
pub fn total_ram_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Config {
    /// The default config file location (`<config dir>/opossum.toml`), if the platform has one.
    pub fn default_path() -> Option<PathBuf> {
        directories::ProjectDirs::from("org", "Opossum", "opossum")
            .map(|d| d.config_dir().join("opossum.toml"))
    }

    /// Load `explicit` (which must exist), else the default location (missing = defaults).
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>)> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => match Self::default_path() {
                Some(p) if p.exists() => p,
                _ => return Ok((Config::default(), None)),
            },
        };
        let config_err = |reason: String| Error::Config {
            reason,
            path: Some(path.clone()),
        };
        let meta = std::fs::metadata(&path)
            .map_err(|e| config_err(format!("cannot read the config file ({e})")))?;
        if !meta.is_file() || meta.len() > 1 << 20 {
            return Err(config_err(
                "the config must be a regular file of at most 1 MiB".to_owned(),
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| config_err(format!("cannot read the config file ({e})")))?;
        let config = Self::parse(&text).map_err(|e| match e {
            Error::Config { reason, .. } => config_err(reason),
            other => other,
        })?;
        Ok((config, Some(path)))
    }

    /// Parse and validate config text.
    pub fn parse(text: &str) -> Result<Config> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let toml_err = |e: toml::de::Error, key: Option<String>| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            Error::Config {
                reason: format!(
                    "{}{}{}",
                    key.map(|k| format!("{k}: ")).unwrap_or_default(),
                    line.map(|l| format!("line {l}: ")).unwrap_or_default(),
                    crate::error::plain_serde_text(e.message().trim())
                ),
                path: None,
            }
        };
        // The key at fault (`performance.max_cpu_cores`), which serde's message lacks.
        let config: Config = serde_path_to_error::deserialize(
            toml::de::Deserializer::parse(text).map_err(|e| toml_err(e, None))?,
        )
        .map_err(|e| {
            let key = e.path().to_string();
            toml_err(e.into_inner(), (key != ".").then_some(key))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Check ranges that serde cannot.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, reason: String| {
            Err(Error::Config {
                reason: format!("{key}: {reason}"),
                path: None,
            })
        };
        let p = &self.performance;
        for (key, px) in [
            ("performance.tile_size", p.tile_size),
            ("performance.min_tile_size", p.min_tile_size),
        ] {
            if !(16..=8192).contains(&px) {
                return bad(key, format!("{px} is out of range; allowed: 16..=8192 px"));
            }
        }
        if p.max_memory_usage.0 < 16 << 20 {
            return bad(
                "performance.max_memory_usage",
                format!("{} is too small; at least 16 MiB", p.max_memory_usage),
            );
        }
        if p.max_cpu_cores > 1024 {
            return bad(
                "performance.max_cpu_cores",
                "at most 1024 (0 = all)".to_owned(),
            );
        }
        if p.parallel_images > 1024 {
            return bad(
                "performance.parallel_images",
                "at most 1024 (0 = automatic)".to_owned(),
            );
        }
        if p.preview_frame_budget_ms > 10_000 {
            return bad(
                "performance.preview_frame_budget_ms",
                "at most 10000 ms (0 = off)".to_owned(),
            );
        }
        if let Some(q) = p.quality_vs_speed
            && !(0.0..=1.0).contains(&q)
        {
            return bad(
                "performance.quality_vs_speed",
                format!("{q} is not in 0..=1"),
            );
        }
        let l = &self.limits;
        if l.max_image_pixels == 0 || l.max_image_pixels > 1 << 34 {
            return bad(
                "limits.max_image_pixels",
                "allowed: 1..=17179869184".to_owned(),
            );
        }
        if !(1..=1 << 20).contains(&l.max_image_side_px) {
            return bad(
                "limits.max_image_side_px",
                "allowed: 1..=1048576".to_owned(),
            );
        }
        Ok(())
    }

    /// The preset in effect (`quality_vs_speed` overrides `quality` when set).
    pub fn quality_preset(&self) -> QualityPreset {
        match self.performance.quality_vs_speed {
            Some(q) if q < 0.2 => QualityPreset::Draft,
            Some(q) if q < 0.4 => QualityPreset::Fast,
            Some(q) if q < 0.75 => QualityPreset::Balanced,
            Some(q) if q < 0.95 => QualityPreset::High,
            Some(_) => QualityPreset::Ultra,
            None => self.performance.quality,
        }
    }

    /// Render threads: `max_cpu_cores`, or every core when 0.
    pub fn threads(&self) -> usize {
        match self.performance.max_cpu_cores {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(ByteSize::parse("4GB"), Some(ByteSize(4 << 30)));
        assert_eq!(ByteSize::parse("512 MiB"), Some(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("1.5G"), Some(ByteSize(3 << 29)));
        assert_eq!(ByteSize::parse("100"), Some(ByteSize(100)));
        assert_eq!(ByteSize::parse("lots"), None);
        assert_eq!(ByteSize::parse("4 parsecs"), None);
    }

    #[test]
    fn parses_spec_keys_and_rejects_unknown_or_bad() {
        let c = Config::parse(
            "[performance]\nmax_cpu_cores = 2\nmax_memory_usage = \"4GB\"\ntile_size = 256\nparallel_images = 4\nquality = \"fast\"\ngpu_enabled = false\ncache_ttl = 60\npersistent_cache_size = \"10GB\"\n",
        )
        .unwrap();
        assert_eq!(c.performance.max_memory_usage, ByteSize(4 << 30));
        assert_eq!(c.quality_preset(), QualityPreset::Fast);
        assert_eq!(c.threads(), 2);
        let e = Config::parse("[performance]\ntile_sise = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tile_sise"), "{e}");
        let e = Config::parse("[performance]\ntile_size = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("performance.tile_size"), "{e}");
        let e = Config::parse("[performance]\nmax_memory_usage = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a size"), "{e}");
        let e = Config::parse("[performance]\nquality = \"best\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ultra"), "{e}");
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }
}
