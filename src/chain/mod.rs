//! Chains: an ordered list of operations with their parameters, and the versioned chain file
//! format (TOML, JSON accepted) that the CLI, batch, watch and the app all share.
//!
//! ```toml
//! version = 1
//! name = "Web export"          # optional
//!
//! [[ops]]
//! op = "resize"
//! width = 800
//! height = 600
//!
//! [[ops]]
//! op = "adjust_colors"
//! enabled = false              # optional, default true
//! brightness = 1.1
//! ```
//!
//! Loading checks everything and fails with an error naming the op index, the op, the field and
//! what is allowed. Guards: file size (1 MiB, checked before reading), op count (1,000), nesting
//! depth (32), NaN and infinities, duplicate keys, output sizes over the pixel cap. A UTF-8 BOM
//! and CRLF line ends are accepted. Older versions are migrated on load ([`migrate`]).

pub mod raw;

use std::collections::BTreeMap;
use std::io::Read as _;

use std::path::Path;

use crate::error::{Error, Result};
use crate::ops::{self, OpDef};
use crate::params::Params;
use raw::RawValue;

/// The chain file version this build writes.
pub const CURRENT_VERSION: i64 = 1;
/// Largest chain file accepted, in bytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Most operations in one chain.
pub const MAX_OPS: usize = 1000;
/// Deepest nesting of tables and arrays accepted.
pub const MAX_DEPTH: usize = 32;

/// Caps that op parameters are checked against when a chain is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimits {
    /// Most pixels an op may produce.
    pub max_pixels: u64,
    /// Longest side an op may produce.
    pub max_side_px: u32,
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self {
            max_pixels: 1 << 30,
            max_side_px: 65_535,
        }
    }
}

/// One step of a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainOp {
    /// The operation.
    pub def: &'static OpDef,
    /// Disabled steps are kept in the file but skipped when rendering.
    pub enabled: bool,
    /// Validated parameters, in full-resolution units.
    pub params: Params,
}

impl PartialEq for OpDef {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl ChainOp {
    /// A step with default parameters.
    pub fn new(def: &'static OpDef) -> Self {
        Self {
            def,
            enabled: true,
            params: Params::defaults(def.params),
        }
    }
}

/// An ordered list of operations.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Chain {
    /// Optional display name.
    pub name: Option<String>,
    /// The steps, applied first to last.
    pub ops: Vec<ChainOp>,
    /// How an SVG output traces the result (`[vectorize]`; used when the output format is SVG).
    pub vectorize: Option<crate::vectorize::VectorizeOptions>,
}

/// Chain file syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TOML (the default).
    Toml,
    /// JSON.
    Json,
}

impl Format {
    /// JSON for a `.json` extension, else TOML.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Toml,
        }
    }
}

fn chain_err(location: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Chain {
        location: location.into(),
        reason: reason.into(),
        path: None,
    }
}

/// A chain's `[vectorize]` table: errors name the key (`vectorize.colors`) in our words.
fn vectorize_options(value: &RawValue) -> Result<crate::vectorize::VectorizeOptions> {
    use crate::vectorize::VectorizeOptions;
    let RawValue::Table(table) = value else {
        return Err(chain_err(
            "vectorize",
            format!("expected a table, found {}", value.type_name()),
        ));
    };
    if let Some(key) = table
        .keys()
        .find(|k| !VectorizeOptions::KEYS.contains(&k.as_str()))
    {
        return Err(chain_err(
            format!("vectorize.{key}"),
            format!(
                "unknown key; allowed: {}",
                VectorizeOptions::KEYS.join(", ")
            ),
        ));
    }
    let options: VectorizeOptions =
        serde_path_to_error::deserialize(value.to_json()).map_err(|e| {
            let key = e.path().to_string();
            chain_err(
                format!("vectorize.{key}"),
                crate::error::plain_serde_text(&e.into_inner().to_string()),
            )
        })?;
    options
        .check()
        .map_err(|e| chain_err(format!("vectorize.{}", e.field), e.reason))?;
    Ok(options)
}

/// `err` naming the chain file `path`, if it is a chain error (one found while rendering, for
/// an image the chain does not fit, carries no file).
pub fn with_path(err: Error, path: &Path) -> Error {
    match err {
        Error::Chain {
            location, reason, ..
        } => Error::Chain {
            location,
            reason,
            path: Some(path.to_path_buf()),
        },
        other => other,
    }
}

impl Chain {
    /// Load and validate a chain file.
    pub fn load(path: &Path, limits: OutputLimits) -> Result<Chain> {
        let meta =
            std::fs::metadata(path).map_err(|e| Error::io("reading the chain file", path, e))?;
        if !meta.is_file() {
            return Err(Error::NotAFile {
                kind: crate::io::file_kind(&meta),
                path: path.to_path_buf(),
            });
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(with_path(
                chain_err(
                    "file",
                    format!(
                        "the chain file is {} bytes; at most {MAX_FILE_BYTES} bytes are accepted",
                        meta.len()
                    ),
                ),
                path,
            ));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| Error::io("reading the chain file", path, e))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(with_path(
                chain_err(
                    "file",
                    format!("the chain file is over {MAX_FILE_BYTES} bytes"),
                ),
                path,
            ));
        }
        Self::parse_bytes(&bytes, Format::from_path(path), limits).map_err(|e| with_path(e, path))
    }

    /// Parse and validate chain file contents. `hint` picks the syntax unless the content
    /// clearly is JSON (starts with `{`).
    pub fn parse_bytes(bytes: &[u8], hint: Format, limits: OutputLimits) -> Result<Chain> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            chain_err(
                "file",
                format!(
                    "not valid UTF-8 (first bad byte at offset {})",
                    e.valid_up_to()
                ),
            )
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let format = if text.trim_start().starts_with('{') {
            Format::Json
        } else {
            hint
        };
        let raw: RawValue = match format {
            Format::Json => serde_json::from_str(text)
                .map_err(|e| chain_err("file", format!("invalid JSON: {e}")))?,
            Format::Toml => {
                let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                    let line = e
                        .span()
                        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
                    let location = line.map_or_else(|| "file".to_owned(), |l| format!("line {l}"));
                    chain_err(location, format!("invalid TOML: {}", e.message().trim()))
                })?;
                RawValue::from_toml(toml::Value::Table(table)).map_err(|e| chain_err("file", e))?
            }
        };
        Self::from_raw(&raw, limits)
    }

    /// Validate a parsed tree.
    pub fn from_raw(raw: &RawValue, limits: OutputLimits) -> Result<Chain> {
        if raw.depth() > MAX_DEPTH {
            return Err(chain_err(
                "file",
                format!("nesting is deeper than {MAX_DEPTH} levels"),
            ));
        }
        let RawValue::Table(top) = raw else {
            return Err(chain_err("file", "the top level must be a table"));
        };
        let top = migrate(top)?;
        let mut chain = Chain::default();
        for (key, value) in &top {
            match key.as_str() {
                "version" | "ops" => {}
                "vectorize" => chain.vectorize = Some(vectorize_options(value)?),
                "name" => match value {
                    RawValue::String(s) if s.chars().count() <= 200 => chain.name = Some(s.clone()),
                    RawValue::String(_) => {
                        return Err(chain_err("name", "at most 200 characters"));
                    }
                    other => {
                        return Err(chain_err(
                            "name",
                            format!("expected a string, found {}", other.type_name()),
                        ));
                    }
                },
                other => {
                    return Err(chain_err(
                        other,
                        "unknown top-level key; allowed: version, name, ops, vectorize",
                    ));
                }
            }
        }
        let ops_raw = match top.get("ops") {
            None => &Vec::new(),
            Some(RawValue::Array(items)) => items,
            Some(other) => {
                return Err(chain_err(
                    "ops",
                    format!(
                        "expected an array of tables ([[ops]]), found {}",
                        other.type_name()
                    ),
                ));
            }
        };
        if ops_raw.len() > MAX_OPS {
            return Err(chain_err(
                "ops",
                format!(
                    "{} operations; at most {MAX_OPS} are allowed",
                    ops_raw.len()
                ),
            ));
        }
        for (index, item) in ops_raw.iter().enumerate() {
            chain.ops.push(parse_op(index, item, limits)?);
        }
        Ok(chain)
    }

    /// The chain as TOML text (every parameter written, so files are self-describing).
    pub fn to_toml_string(&self) -> String {
        let mut out = format!("version = {CURRENT_VERSION}\n");
        if let Some(name) = &self.name {
            out.push_str(&format!("name = {}\n", toml::Value::String(name.clone())));
        }
        for op in &self.ops {
            out.push_str(&format!("\n[[ops]]\nop = \"{}\"\n", op.def.id));
            if !op.enabled {
                out.push_str("enabled = false\n");
            }
            for spec in op.def.params {
                if let Some(v) = op.params.get(spec.key) {
                    out.push_str(&format!("{} = {}\n", spec.key, v.to_raw().to_toml()));
                }
            }
        }
        if let Some(v) = &self.vectorize {
            out.push_str("\n[vectorize]\n");
            out.push_str(&toml::to_string(v).unwrap_or_default());
        }
        out
    }

    /// The chain as pretty JSON.
    pub fn to_json_string(&self) -> String {
        let ops: Vec<serde_json::Value> = self
            .ops
            .iter()
            .map(|op| {
                let mut map = serde_json::Map::new();
                map.insert("op".into(), op.def.id.into());
                map.insert("enabled".into(), op.enabled.into());
                for (k, v) in op.params.iter() {
                    map.insert(k.into(), v.to_raw().to_json());
                }
                serde_json::Value::Object(map)
            })
            .collect();
        let mut top = serde_json::Map::new();
        top.insert("version".into(), CURRENT_VERSION.into());
        if let Some(name) = &self.name {
            top.insert("name".into(), name.clone().into());
        }
        top.insert("ops".into(), ops.into());
        if let Some(v) = &self.vectorize {
            top.insert(
                "vectorize".into(),
                serde_json::to_value(v).unwrap_or_default(),
            );
        }
        serde_json::to_string_pretty(&serde_json::Value::Object(top)).unwrap_or_default()
    }

    /// Save atomically, as JSON for a `.json` path and TOML otherwise.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = match Format::from_path(path) {
            Format::Json => self.to_json_string(),
            Format::Toml => self.to_toml_string(),
        };
        crate::io::write_atomic(path, |w| w.write_all(text.as_bytes()))
    }
}

/// Upgrade an older chain table to the current version. Version 1 is the first; future
/// versions add a step here (e.g. renaming a parameter) so old files keep loading.
pub fn migrate(top: &BTreeMap<String, RawValue>) -> Result<BTreeMap<String, RawValue>> {
    let version = match top.get("version") {
        Some(RawValue::Int(v)) => *v,
        Some(other) => {
            return Err(chain_err(
                "version",
                format!("expected a whole number, found {}", other.type_name()),
            ));
        }
        None => {
            return Err(chain_err(
                "version",
                "missing; add `version = 1` at the top",
            ));
        }
    };
    if version < 1 {
        return Err(chain_err(
            "version",
            format!("{version} is not a chain file version"),
        ));
    }
    if version > CURRENT_VERSION {
        return Err(chain_err(
            "version",
            format!(
                "version {version} is newer than this Opossum understands (up to {CURRENT_VERSION}); update Opossum"
            ),
        ));
    }
    // Only version 1 exists today: nothing to rewrite.
    Ok(top.clone())
}

fn parse_op(index: usize, item: &RawValue, limits: OutputLimits) -> Result<ChainOp> {
    let at = format!("ops[{index}]");
    let RawValue::Table(table) = item else {
        return Err(chain_err(
            at,
            format!("expected a table, found {}", item.type_name()),
        ));
    };
    let id = match table.get("op") {
        Some(RawValue::String(s)) => s.as_str(),
        Some(other) => {
            return Err(chain_err(
                format!("{at}.op"),
                format!("expected an op name, found {}", other.type_name()),
            ));
        }
        None => {
            return Err(chain_err(
                at,
                format!("missing `op`; known ops: {}", ops::known_ids()),
            ));
        }
    };
    let Some(def) = ops::find(id) else {
        return Err(chain_err(
            format!("{at}.op"),
            format!("unknown op {id:?}; known ops: {}", ops::known_ids()),
        ));
    };
    let at = format!("ops[{index}] ({id})");
    let enabled = match table.get("enabled") {
        None => true,
        Some(RawValue::Bool(b)) => *b,
        Some(other) => {
            return Err(chain_err(
                format!("{at}.enabled"),
                format!("expected true or false, found {}", other.type_name()),
            ));
        }
    };
    let params = Params::from_raw(
        def.params,
        table
            .iter()
            .filter(|(k, _)| k.as_str() != "op" && k.as_str() != "enabled")
            .map(|(k, v)| (k.as_str(), v)),
    )
    .map_err(|(field, reason)| chain_err(format!("{at}.{field}"), reason))?;
    (def.validate)(&params, limits).map_err(|e| {
        chain_err(
            match e.field {
                Some(f) => format!("{at}.{f}"),
                None => at.clone(),
            },
            e.reason,
        )
    })?;
    Ok(ChainOp {
        def,
        enabled,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Chain> {
        Chain::parse_bytes(text.as_bytes(), Format::Toml, OutputLimits::default())
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn vectorize_errors_name_the_key_in_our_words() {
        let table = |body: &str| message(&format!("version = 1\n[vectorize]\n{body}\n"));
        let m = table("colours = 3");
        assert!(
            m.starts_with("vectorize.colours: unknown key; allowed: preset, mode, colors,"),
            "{m}"
        );
        let m = table("colors = 1");
        assert!(
            m.starts_with("vectorize.colors: 1 is outside 2..=256"),
            "{m}"
        );
        let m = table("colors = \"many\"");
        assert!(
            m.starts_with(
                "vectorize.colors: invalid type: string \"many\", expected a whole number"
            ),
            "{m}"
        );
        let m = message("version = 1\nvectorize = 3\n");
        assert!(m.starts_with("vectorize: expected a table"), "{m}");
        // KEYS lists exactly the fields serde reads.
        let every = crate::vectorize::VectorizeOptions {
            mode: Some(crate::vectorize::Mode::Color),
            colors: Some(8),
            speckle_px: Some(2.0),
            smoothness: Some(1),
            corner_threshold_deg: Some(60.0),
            max_error_px: Some(1.0),
            threshold_level: Some(128),
            max_kib_per_mpx: Some(0.0),
            ..Default::default()
        };
        let json = serde_json::to_value(&every).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut ours = crate::vectorize::VectorizeOptions::KEYS.to_vec();
        keys.sort_unstable();
        ours.sort_unstable();
        assert_eq!(keys, ours);
    }

    #[test]
    fn round_trips_toml_and_json() {
        let text = "version = 1\nname = \"web\"\n[[ops]]\nop = \"resize\"\nwidth = 800\nheight = 600\n\n[[ops]]\nop = \"adjust_colors\"\nenabled = false\nbrightness = 1.1\n";
        let chain = parse(text).unwrap();
        assert_eq!(chain.ops.len(), 2);
        assert!(!chain.ops[1].enabled);
        assert_eq!(chain.ops[1].params.float("brightness"), 1.1);
        let again = parse(&chain.to_toml_string()).unwrap();
        assert_eq!(again, chain);
        let json = chain.to_json_string();
        let from_json =
            Chain::parse_bytes(json.as_bytes(), Format::Toml, OutputLimits::default()).unwrap();
        assert_eq!(from_json, chain);
    }

    #[test]
    fn accepts_bom_and_crlf() {
        let text = "\u{feff}version = 1\r\n[[ops]]\r\nop = \"grayscale\"\r\n";
        assert_eq!(parse(text).unwrap().ops.len(), 1);
    }

    #[test]
    fn errors_name_index_op_field_and_range() {
        let m = message(
            "version = 1\n[[ops]]\nop = \"grayscale\"\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 9000\n",
        );
        assert!(m.contains("ops[1] (gaussian_blur).sigma"), "{m}");
        assert!(m.contains("0..=500 px"), "{m}");
        let m = message("version = 1\n[[ops]]\nop = \"blurr\"\n");
        assert!(
            m.contains("ops[0].op") && m.contains("gaussian_blur"),
            "{m}"
        );
        let m = message("version = 1\n[[ops]]\nop = \"resize\"\nwidht = 3\n");
        assert!(
            m.contains("ops[0] (resize).widht") && m.contains("known fields"),
            "{m}"
        );
        let m = message("version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = nan\n");
        assert!(m.contains("finite"), "{m}");
        let m = message("version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = inf\n");
        assert!(m.contains("finite"), "{m}");
        let m = message("version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = \"3\"\n");
        assert!(m.contains("expected a number"), "{m}");
    }

    #[test]
    fn rejects_bad_structure() {
        assert!(message("[[ops]]\nop = \"grayscale\"\n").contains("version"));
        assert!(message("version = 99\n").contains("newer"));
        assert!(message("version = 1\nextra = 1\n").contains("unknown top-level key"));
        assert!(message("version = 1\nops = 3\n").contains("array"));
        assert!(message("version = 1\nversion = 1\n").contains("invalid TOML"));
        let dup = br#"{"version": 1, "ops": [{"op": "grayscale", "op": "crop"}]}"#;
        let m = Chain::parse_bytes(dup, Format::Json, OutputLimits::default())
            .unwrap_err()
            .to_string();
        assert!(m.contains("duplicate"), "{m}");
        let m = Chain::parse_bytes(&[0xff, 0xfe, 0x00], Format::Toml, OutputLimits::default())
            .unwrap_err()
            .to_string();
        assert!(m.contains("UTF-8"), "{m}");
    }

    #[test]
    fn rejects_too_many_ops_deep_nesting_and_huge_outputs() {
        let mut text = String::from("version = 1\n");
        for _ in 0..=MAX_OPS {
            text.push_str("[[ops]]\nop = \"grayscale\"\n");
        }
        assert!(message(&text).contains("at most 1000"));
        let deep = format!("version = 1\nx = {}1{}\n", "[".repeat(40), "]".repeat(40));
        let m = message(&deep);
        assert!(m.contains("nesting") || m.contains("invalid TOML"), "{m}");
        let deep_json = format!(
            "{{\"version\": 1, \"x\": {}1{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(
            Chain::parse_bytes(deep_json.as_bytes(), Format::Json, OutputLimits::default())
                .is_err()
        );
        let m = message(
            "version = 1\n[[ops]]\nop = \"resize\"\nwidth = 65535\nheight = 65535\nmode = \"exact\"\n",
        );
        assert!(
            m.contains("ops[0] (resize).width") && m.contains("Mpx"),
            "{m}"
        );
    }
}
