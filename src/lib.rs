//! Opossum: build image-processing filter chains and run them fast, at any resolution.
//!
//! The library is the engine shared by the command line (and the desktop app): operations
//! ([`ops`]), chains and chain files ([`chain`]), image I/O ([`io`]), configuration
//! ([`config`]), the tiled renderer ([`engine`]) and, with feature `gpu`, the GPU preview
//! executor (`gpu`). Nothing here depends on a UI toolkit.
//!
//! ```no_run
//! use opossum::{chain::Chain, config::Config, engine::Engine};
//! use opossum::io::encode::{EncodeOptions, OutputFormat};
//! # fn main() -> opossum::error::Result<()> {
//! let engine = Engine::new(Config::default())?;
//! let chain = Chain::load("web.toml".as_ref(), engine.output_limits())?;
//! let options = EncodeOptions { format: OutputFormat::Webp, quality: 85, lossless: false };
//! engine.render_file("in.jpg".as_ref(), &chain, "out.webp".as_ref(), &options, false, &Default::default())?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod batch;
pub mod bench;
pub mod cache;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(feature = "gui")]
pub mod gui;
pub mod io;
pub mod ops;
pub mod params;
pub mod profile;
pub mod quality;
pub mod tune;
pub mod vectorize;
pub mod watch;
