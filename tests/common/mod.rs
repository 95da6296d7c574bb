//! Shared fixtures for the integration tests: deterministic images, random chains, a render
//! helper that bypasses the config's tile-size floor, and file helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::{DynamicImage, RgbaImage};
use opossum::chain::raw::RawValue;
use opossum::chain::{Chain, ChainOp, OutputLimits};
use opossum::engine::plan::Plan;
use opossum::engine::render::{self, RenderControl, TileSettings};
use opossum::engine::sink::FullSink;
use opossum::engine::tile::Tile;
use opossum::io::decode::Orientation;
use opossum::ops::{self, OpDef};
use opossum::params::ParamKind;

/// A small deterministic RNG (xorshift64*), so failures reproduce from the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo) as u64 + 1)) as i64
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as i64 - 1) as usize]
    }
}

/// An RGBA image with texture, edges and (when `alpha`) varying transparency.
pub fn test_image(width: u32, height: u32, seed: u64, alpha: bool) -> DynamicImage {
    let mut rng = Rng::new(seed);
    let img = RgbaImage::from_fn(width, height, |x, y| {
        let n = (rng.next_u64() % 32) as i32;
        let r = ((x * 255) / width.max(1)) as i32 + n - 16;
        let g = ((y * 255) / height.max(1)) as i32;
        let b = if (x / 3 + y / 2) % 2 == 0 { 230 } else { 20 };
        let a = if alpha {
            ((x * 7 + y * 13) % 256) as i32
        } else {
            255
        };
        image::Rgba([r.clamp(0, 255) as u8, g as u8, b, a as u8])
    });
    DynamicImage::ImageRgba8(img)
}

/// A random valid value for each parameter, with spatial sizes kept small so tiny test images
/// stay fast.
pub fn random_op(def: &'static OpDef, rng: &mut Rng) -> ChainOp {
    let mut op = ChainOp::new(def);
    for spec in def.params {
        let value = match spec.kind {
            ParamKind::Float {
                min, max, spatial, ..
            } => {
                let hi = if spatial { max.min(min + 6.0) } else { max };
                RawValue::Float(min + (hi - min) * rng.unit())
            }
            ParamKind::Int {
                min, max, spatial, ..
            } => {
                let hi = if spatial { max.min(min + 40) } else { max };
                RawValue::Int(rng.range(min, hi))
            }
            ParamKind::Bool { .. } => RawValue::Bool(rng.range(0, 1) == 1),
            ParamKind::Choice { choices, .. } => RawValue::String((*rng.pick(choices)).to_owned()),
            ParamKind::Color { .. } => RawValue::String(format!("#{:08x}", rng.next_u64() as u32)),
            ParamKind::Text { .. } => {
                RawValue::String((*rng.pick(&["A", "Opossum", "© 2026\nline two", ""])).to_owned())
            }
        };
        op.params
            .set(def.params, spec.key, &value)
            .expect("random value in range");
    }
    // Keep inverted Canny thresholds out: the loader rejects them.
    if def.id == "edge_detect" {
        let (lo, hi) = (
            op.params.float("low_threshold"),
            op.params.float("high_threshold"),
        );
        if lo > hi {
            op.params
                .set(def.params, "low_threshold", &RawValue::Float(hi))
                .unwrap();
            op.params
                .set(def.params, "high_threshold", &RawValue::Float(lo))
                .unwrap();
        }
    }
    op
}

/// A random chain of `len` ops.
pub fn random_chain(rng: &mut Rng, len: usize) -> Chain {
    let registry = ops::registry();
    Chain {
        name: None,
        vectorize: None,
        ops: (0..len)
            .map(|_| {
                let def: &'static OpDef =
                    registry[rng.range(0, registry.len() as i64 - 1) as usize];
                random_op(def, rng)
            })
            .collect(),
    }
}

fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
    })
}

/// Render `chain` on `image` with tiles of `tile_px` into a full working image; `None` when the
/// chain cannot be built for this image (e.g. a crop outside it).
pub fn render_tiled(image: &DynamicImage, chain: &Chain, tile_px: u32) -> Option<Tile> {
    render_scaled(image, chain, tile_px, 1.0)
}

/// As [`render_tiled`], at a rendering scale.
pub fn render_scaled(
    image: &DynamicImage,
    chain: &Chain,
    tile_px: u32,
    scale: f64,
) -> Option<Tile> {
    render_scaled_for(image, chain, tile_px, scale, None)
}

/// [`render_scaled`] with the algorithms picked for a source that measured `detail` (what a
/// pyramid's previews use).
#[allow(dead_code)] // Not every test binary uses it.
pub fn render_scaled_for(
    image: &DynamicImage,
    chain: &Chain,
    tile_px: u32,
    scale: f64,
    detail: Option<opossum::engine::content::Detail>,
) -> Option<Tile> {
    let size = opossum::engine::geom::Size::new(image.width(), image.height());
    let plan = Plan::for_content(
        chain,
        size,
        Orientation::NoTransforms,
        scale,
        OutputLimits::default(),
        opossum::quality::QualityPreset::default(),
        detail,
    )
    .ok()?;
    let sink = FullSink::new(plan.output);
    render::render(
        pool(),
        image,
        &plan,
        None,
        TileSettings {
            tile_px,
            budget_bytes: 1 << 30,
        },
        0,
        &RenderControl::default(),
        &sink,
    )
    .expect("render");
    Some(sink.finish())
}

/// Path of the built `opossum` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_opossum"))
}

/// Files in `dir`, sorted by name.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// CRC-32 (IEEE), for crafting PNG chunks.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG that only has a header declaring `width`×`height` RGB and no pixel data.
pub fn lying_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    // A small, valid zlib stream: real lying files carry data, the header is the lie.
    chunk(b"IDAT", b"\x78\x9c\x63\x60\x00\x00\x00\x02\x00\x01");
    chunk(b"IEND", &[]);
    out
}

/// Encode `image` in `format` to bytes.
pub fn encode(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A JPEG of `image` with an EXIF APP1 segment carrying `orientation` (1..=8).
pub fn jpeg_with_orientation(image: &DynamicImage, orientation: u16) -> Vec<u8> {
    let jpeg = encode(
        &DynamicImage::ImageRgb8(image.to_rgb8()),
        image::ImageFormat::Jpeg,
    );
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Whether this process runs as root (mounts and sysctls need it; CI runs as root).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// A small tmpfs mounted at a folder for the life of the value (full-disk and read-only
/// tests); `None`, with a note on stderr, where mounting is not allowed (not root).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, options: &str) -> Option<Tmpfs> {
        if !is_root() {
            eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
            return None;
        }
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs -o {options} failed as root"
        );
        Some(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Tmpfs {
    /// Change its options (e.g. `size=8m` to make room).
    pub fn remount(&self, options: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {options} failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}
