//! Cache keys: 128-bit XXH3 hashes of everything that determines a result. A source is
//! identified by its content (the file's bytes), so a renamed or copied file still hits and
//! an edited one never does; the app version is part of every key, so a new build never reads
//! an old build's pixels.

use std::fmt;
use std::io::Read;
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

use crate::chain::Chain;
use crate::engine::plan::Stage;
use crate::io::decode::Orientation;

/// A content-addressed cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub u128);

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Key {
    /// Parse the 32 hex digits [`Display`](fmt::Display) writes.
    pub fn parse(hex: &str) -> Option<Key> {
        (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u128::from_str_radix(hex, 16).ok().map(Key))
            .flatten()
    }
}

/// Builds a key from parts; each part is length-prefixed so `("ab", "c")` ≠ `("a", "bc")`.
pub struct KeyBuilder(Xxh3);

impl KeyBuilder {
    /// A key of kind `domain` (e.g. `"result"`), for this app version.
    pub fn new(domain: &str) -> Self {
        let mut b = Self(Xxh3::new());
        b.add(env!("CARGO_PKG_VERSION").as_bytes());
        b.add(domain.as_bytes());
        b
    }

    /// Add bytes.
    pub fn add(&mut self, part: &[u8]) -> &mut Self {
        self.0.update(&(part.len() as u64).to_le_bytes());
        self.0.update(part);
        self
    }

    /// Add a string.
    pub fn text(&mut self, part: &str) -> &mut Self {
        self.add(part.as_bytes())
    }

    /// Add another key.
    pub fn key(&mut self, part: Key) -> &mut Self {
        self.add(&part.0.to_le_bytes())
    }

    /// Add a number.
    pub fn num(&mut self, part: u64) -> &mut Self {
        self.add(&part.to_le_bytes())
    }

    /// The key.
    pub fn finish(&self) -> Key {
        Key(self.0.digest128())
    }
}

/// The content hash of a file (streamed; about 10 GB/s, so a 20 MB photo costs ~2 ms once it
/// is in the page cache).
pub fn file_content(path: &Path) -> std::io::Result<Key> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Key(hasher.digest128()))
}

/// What identifies a plan stage's computation, given its input: the op, its version and its
/// parameters (or the EXIF orientation step and its input size).
pub fn stage_signature(chain: &Chain, stage: &Stage, orientation: Orientation) -> String {
    match stage.op_index {
        Some(i) => {
            let op = &chain.ops[i];
            format!("{}@{}:{:?}", op.def.id, op.def.version, op.params)
        }
        None => format!("{}:{orientation:?}:{:?}", stage.label, stage.input),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_their_parts_and_round_trip_as_hex() {
        let a = KeyBuilder::new("t").text("ab").text("c").finish();
        let b = KeyBuilder::new("t").text("a").text("bc").finish();
        assert_ne!(a, b);
        assert_ne!(a, KeyBuilder::new("u").text("ab").text("c").finish());
        assert_eq!(Key::parse(&a.to_string()), Some(a));
        assert_eq!(Key::parse("xyz"), None);
        assert_eq!(Key::parse(&"g".repeat(32)), None);
    }

    #[test]
    fn file_keys_follow_content_not_names() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, vec![7u8; 3 << 20]).unwrap();
        std::fs::write(&b, vec![7u8; 3 << 20]).unwrap();
        let mut other = vec![7u8; 3 << 20];
        other[2 << 20] = 8;
        std::fs::write(&c, other).unwrap();
        assert_eq!(file_content(&a).unwrap(), file_content(&b).unwrap());
        assert_ne!(file_content(&a).unwrap(), file_content(&c).unwrap());
    }
}
