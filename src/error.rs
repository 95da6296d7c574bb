//! The engine's error type: one enum grouped by concern, each with a category and a hint, so
//! the CLI (and later the GUI and batch reports) can say what failed, why, and what to do.
//! File paths go last in messages.

use std::path::PathBuf;

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Broad kinds of failure, used in reports and to choose exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// The file could not be read or written.
    Io,
    /// Not an image this build can decode, or a path that is not a regular file.
    Unsupported,
    /// The image data is damaged or truncated.
    Corrupt,
    /// Too many pixels, too long a side, or more memory than allowed.
    Limits,
    /// A chain file or chain parameter is invalid.
    Chain,
    /// The configuration is invalid.
    Config,
    /// Writing the output failed.
    Encode,
    /// The render was cancelled.
    Cancelled,
    /// A bug in Opossum.
    Internal,
    /// A command-line option or argument is wrong.
    Usage,
    /// The desktop app could not start (no display) or failed to finish its screenshot.
    App,
}

impl Category {
    /// Stable lowercase name (for reports).
    pub fn name(self) -> &'static str {
        match self {
            Category::Io => "io",
            Category::Unsupported => "unsupported",
            Category::Corrupt => "corrupt",
            Category::Limits => "limits",
            Category::Chain => "chain",
            Category::Config => "config",
            Category::Encode => "encode",
            Category::Cancelled => "cancelled",
            Category::Internal => "internal",
            Category::Usage => "usage",
            Category::App => "app",
        }
    }
}

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{action} failed: {source}: {}", path.display())]
    Io {
        /// What was being done ("reading the image", …).
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
        /// The file.
        path: PathBuf,
    },
    /// The path is a directory, FIFO, device or socket.
    #[error("not a regular file ({kind}): {}", path.display())]
    NotAFile {
        /// What it is instead.
        kind: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The file is empty.
    #[error("the file is empty (0 bytes): {}", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The content is not a supported image format.
    #[error("not a supported image (JPEG, PNG, WebP, TIFF, GIF or BMP){detail}: {}", path.display())]
    UnknownFormat {
        /// Extra detail, e.g. " (the extension says PNG)".
        detail: String,
        /// The file.
        path: PathBuf,
    },
    /// A format Opossum reads, in a variant its decoder does not (a floating-point TIFF).
    #[error("this kind of image cannot be read: {reason}: {}", path.display())]
    UnsupportedVariant {
        /// What the decoder does not support.
        reason: String,
        /// The file.
        path: PathBuf,
    },
    /// The image data is damaged.
    #[error("the image is corrupt or truncated: {reason}: {}", path.display())]
    Corrupt {
        /// Decoder's explanation.
        reason: String,
        /// The file.
        path: PathBuf,
    },
    /// The image exceeds a pixel or side cap.
    #[error("{reason}: {}", path.display())]
    TooLarge {
        /// What limit was exceeded and by how much.
        reason: String,
        /// The file.
        path: PathBuf,
    },
    /// A render or decode needs more memory than the configured budget.
    #[error("{what} needs {} but the memory limit is {}", human_bytes(*needed_bytes), human_bytes(*limit_bytes))]
    Budget {
        /// What needed the memory.
        what: String,
        /// Bytes needed.
        needed_bytes: u64,
        /// The configured limit.
        limit_bytes: u64,
    },
    /// A chain file or chain entry is invalid.
    #[error("{location}: {reason}{}", path.as_ref().map(|p| format!(": {}", p.display())).unwrap_or_default())]
    Chain {
        /// Where in the chain: `ops[3] (gaussian_blur).sigma`, `version`, ….
        location: String,
        /// What is wrong and what is allowed.
        reason: String,
        /// The chain file, when loading one.
        path: Option<PathBuf>,
    },
    /// A command-line option or argument is wrong (the config file is fine).
    #[error("{reason}{}", path.as_ref().map(|p| format!(": {}", p.display())).unwrap_or_default())]
    Usage {
        /// What is wrong, starting with the option (`--format "gif": …`).
        reason: String,
        /// The path the option named, if one.
        path: Option<PathBuf>,
    },
    /// The configuration is invalid.
    #[error("{reason}{}", path.as_ref().map(|p| format!(": {}", p.display())).unwrap_or_default())]
    Config {
        /// What is wrong.
        reason: String,
        /// The config file, if one.
        path: Option<PathBuf>,
    },
    /// Encoding or writing the output failed.
    #[error("could not write the output: {reason}: {}", path.display())]
    Encode {
        /// Why.
        reason: String,
        /// The output file.
        path: PathBuf,
    },
    /// The output path is the input (and overwriting was not asked for).
    #[error("the output would overwrite the input; choose another output (`render` replaces its input only with --overwrite): {}", path.display())]
    WouldOverwriteInput {
        /// The path.
        path: PathBuf,
    },
    /// The output is larger than its format can hold (JPEG 65500 px a side, WebP 16383).
    #[error("{format} cannot hold {width}x{height} px (at most {max_side_px} px a side): {}", path.display())]
    OutputTooLarge {
        /// The format's name.
        format: &'static str,
        /// Output width, px.
        width: u32,
        /// Output height, px.
        height: u32,
        /// The format's longest side, px.
        max_side_px: u32,
        /// The output file.
        path: PathBuf,
    },
    /// The desktop app could not open its window, or failed in screenshot mode.
    #[error("{0}")]
    App(String),
    /// The render was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The failure's category.
    pub fn category(&self) -> Category {
        match self {
            Error::Io { .. } => Category::Io,
            Error::NotAFile { .. }
            | Error::UnknownFormat { .. }
            | Error::UnsupportedVariant { .. } => Category::Unsupported,
            Error::EmptyFile { .. } | Error::Corrupt { .. } => Category::Corrupt,
            Error::TooLarge { .. } | Error::Budget { .. } | Error::OutputTooLarge { .. } => {
                Category::Limits
            }
            Error::Chain { .. } => Category::Chain,
            Error::Config { .. } => Category::Config,
            Error::Usage { .. } | Error::WouldOverwriteInput { .. } => Category::Usage,
            Error::Encode { .. } => Category::Encode,
            Error::Cancelled => Category::Cancelled,
            Error::App(_) => Category::App,
            Error::Internal(_) => Category::Internal,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                "check the path"
            }
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                "check the file's permissions"
            }
            Error::Io { .. } => "check the path, permissions and free space",
            Error::NotAFile { .. } => "pass an image file, not a folder or device",
            Error::EmptyFile { .. } => "the file has no data; re-export or re-download it",
            Error::UnknownFormat { .. } => "convert it to JPEG, PNG, WebP, TIFF, GIF or BMP",
            Error::Corrupt { .. } => "the file is damaged; re-export or re-download it",
            Error::UnsupportedVariant { .. } => {
                "convert it to 8- or 16-bit grey or RGB (with or without alpha) in PNG, TIFF or JPEG"
            }
            Error::TooLarge { .. } => {
                "raise [limits] max_image_pixels / max_image_side_px in the config if you trust this file"
            }
            Error::Budget { .. } => {
                "raise max_memory_usage (config or --max-memory) or use a smaller tile_size"
            }
            Error::Chain { .. } => {
                "fix the chain file; `opossum ops` lists every op and its fields"
            }
            Error::Config { .. } => {
                "fix the config file; the README lists every key and its allowed values"
            }
            Error::Usage { .. } => {
                "check the command line; `opossum <command> --help` lists the options"
            }
            Error::Encode { .. } => "check the output folder exists, is writable and has space",
            Error::WouldOverwriteInput { .. } => "write to another file or folder",
            Error::OutputTooLarge { .. } => {
                "choose PNG or TIFF, which have no such limit, or make the output smaller"
            }
            Error::Cancelled => "run it again to finish",
            Error::App(_) => {
                "the app needs a display (DISPLAY or WAYLAND_DISPLAY); the command line works \
                 without one: `opossum --help`"
            }
            Error::Internal(_) => "please report this as a bug, with the input if you can share it",
        }
    }

    /// Wrap an I/O error with what was being done and the path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            source,
            path: path.into(),
        }
    }
}

/// A serde message in users' words: Rust type names (`expected usize`, `expected struct
/// Performance`) become what a config or chain file holds (a whole number, a table).
pub fn plain_serde_text(text: &str) -> String {
    let mut text = text.to_owned();
    for ty in ["usize", "u64", "u32", "u16", "u8", "i64", "i32"] {
        text = text.replace(&format!("expected {ty}"), "expected a whole number");
    }
    for ty in ["f64", "f32"] {
        text = text.replace(&format!("expected {ty}"), "expected a number");
    }
    if let Some(start) = text.find("expected struct ") {
        let end = text[start + "expected struct ".len()..]
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .map_or(text.len(), |n| start + "expected struct ".len() + n);
        text.replace_range(start..end, "expected a table");
    }
    text
}

/// A pixel count for messages: `12.6 Mpx`, `48 Mpx`, or `2500 pixels` below a megapixel (so a
/// small cap never reads "0 Mpx").
pub fn human_pixels(pixels: u64) -> String {
    if pixels < 1_000_000 {
        format!("{pixels} pixels")
    } else if pixels.is_multiple_of(1_000_000) {
        format!("{} Mpx", pixels / 1_000_000)
    } else {
        format!("{:.1} Mpx", pixels as f64 / 1e6)
    }
}

/// Bytes in binary units for messages: `1.5 GiB`, `300 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
