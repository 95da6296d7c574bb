//! The operations: the only place an operation is defined.
//!
//! Each file in this folder declares one [`OpDef`]: a stable snake_case id (used in chain files,
//! on the command line and as the stem of its future WGSL file), a version, its parameters
//! ([`ParamSpec`]: ranges, defaults, units, spatial or not), its footprint and a `build` function
//! that turns validated parameters into a CPU [`Kernel`] for a known input size and scale.
//! [`registry`] lists them all, sorted by id; tests loop over it.
//!
//! Depends on `params` and `engine::{geom, tile}` only; never on the renderer or any UI.

use crate::chain::OutputLimits;
use crate::engine::box_blur::BlurAlgorithm;
use crate::engine::content::{ContentLog, Detail};
use crate::engine::geom::{Rect, Size};
use crate::engine::tile::Tile;
use crate::params::{ParamSpec, Params};
pub use gpu::GpuKernel;

pub mod add_border;
pub mod adjust_colors;
pub mod color_convert;
pub mod crop;
pub mod edge_detect;
pub mod flip;
pub mod gaussian_blur;
pub mod gpu;
pub mod grayscale;
pub mod remap;
pub mod resize;
pub mod rotate;
pub mod sharpen;
#[cfg(test)]
pub(crate) mod testutil;
pub mod watermark;

/// How far an operation's output pixels reach into its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Footprint {
    /// Each output pixel depends only on the input pixel at the same place.
    Pointwise,
    /// Each output pixel depends on input pixels at most `halo_px` away (Chebyshev distance).
    Area {
        /// Halo in pixels at the rendering scale.
        halo_px: u32,
    },
    /// The output has another size or pixel arrangement; the kernel maps rectangles.
    Geometry,
    /// Each output pixel may depend on the whole input (e.g. Canny hysteresis): the renderer
    /// materialises the input in full before this op.
    Global,
}

/// What `build` knows about the stage an operation will run on.
#[derive(Clone, Copy, Debug)]
pub struct BuildCtx<'a> {
    /// Size of the op's input image at the rendering scale.
    pub input: Size,
    /// Rendering scale relative to full resolution (1.0 for exports, < 1 for previews).
    pub scale: f64,
    /// Largest output, in pixels, an op may produce (the decoder's pixel cap).
    pub max_pixels: u64,
    /// Longest output side an op may produce, in pixels.
    pub max_side_px: u32,
    /// The quality preset: which algorithm variants the op uses.
    pub quality: crate::quality::QualityPreset,
    /// How much detail the full-resolution source has, when measured: lets the preset pick a
    /// cheaper variant where its difference would not show ([`crate::engine::content`]).
    pub detail: Option<Detail>,
    /// Where content-based choices are noted (for `--profile` and the profiler panel).
    pub content: Option<&'a ContentLog>,
}

impl BuildCtx<'_> {
    /// The blur algorithm for `sigma_px` at this scale (the `gaussian_blur` op): the preset's,
    /// or the cheaper one it allows on images with little detail, or the exact blur below
    /// [`U8_EXACT_BELOW_SIGMA_PX`] on opaque 8-bit sources. Decided on the full-resolution
    /// sigma, so that a preview level picks what the export does.
    pub fn blur_algorithm(&self, sigma_px: f64) -> BlurAlgorithm {
        self.blur_algorithm_for("gaussian_blur", sigma_px, true)
    }

    /// The algorithm of `sharpen`'s blur: as [`Self::blur_algorithm`], without the content
    /// choice.
    pub fn sharpen_blur_algorithm(&self, sigma_px: f64) -> BlurAlgorithm {
        self.blur_algorithm_for("sharpen", sigma_px, false)
    }

    fn blur_algorithm_for(&self, op: &str, sigma_px: f64, by_content: bool) -> BlurAlgorithm {
        let full_px = if self.scale > 0.0 {
            sigma_px / self.scale
        } else {
            sigma_px
        };
        let default = self.quality.blur_algorithm(full_px);
        let cheaper = by_content
            .then(|| self.quality.smooth_blur(full_px))
            .flatten()
            .filter(|&(cheaper, _)| cheaper != default);
        // An opaque 8-bit source's export runs its leading blurs on the 8-bit kernels, where
        // the exact blur is the faster one below this sigma: every render of such a source
        // (previews, blurs after other ops) blurs exactly there, so that all agree.
        if self.quality.eight_bit_kernels()
            && full_px < U8_EXACT_BELOW_SIGMA_PX
            && (default != BlurAlgorithm::Exact || cheaper.is_some())
        {
            if let Some(log) = self.content {
                log.mark_kind_sensitive();
            }
            if self.detail.is_some_and(|d| d.opaque_8bit) {
                if let (Some(log), BlurAlgorithm::Boxes(_)) = (self.content, default) {
                    log.record(format!(
                        "{op}: exact blur instead of {} (opaque 8-bit source, sigma {full_px:.1} \
                         < {U8_EXACT_BELOW_SIGMA_PX} px)",
                        blur_name(default)
                    ));
                }
                return BlurAlgorithm::Exact;
            }
        }
        match cheaper {
            Some((cheaper, max_detail)) => self.choose(
                op,
                (default, blur_name(default)),
                (cheaper, blur_name(cheaper)),
                max_detail,
            ),
            None => default,
        }
    }

    /// The resampling filter of a `resize` whose `filter` is `auto`; `shrinks` when the output
    /// is smaller than the input (content only changes the filter then).
    pub fn resize_filter(&self, shrinks: bool) -> &'static str {
        let default = self.quality.resize_filter();
        match self.quality.smooth_resize_filter() {
            Some((cheaper, max_detail)) if shrinks && cheaper != default => self.choose(
                "resize",
                (default, default.to_owned()),
                (cheaper, cheaper.to_owned()),
                max_detail,
            ),
            _ => default,
        }
    }

    /// `cheaper` when the measured detail is under `max_detail`, else `default`; notes that the
    /// choice depends on content and, once measured, which way it went.
    fn choose<T>(
        &self,
        op: &str,
        (default, default_name): (T, String),
        (cheaper, cheaper_name): (T, String),
        max_detail: f32,
    ) -> T {
        if let Some(log) = self.content {
            log.mark_sensitive();
        }
        let Some(gradient) = self.detail.and_then(|d| d.gradient) else {
            return default;
        };
        let smooth = gradient < max_detail;
        if let Some(log) = self.content {
            log.record(if smooth {
                format!(
                    "{op}: {cheaper_name} instead of {default_name} (detail {gradient:.3} < \
                     {max_detail})"
                )
            } else {
                format!("{op}: {default_name} kept (detail {gradient:.3} >= {max_detail})")
            });
        }
        if smooth { cheaper } else { default }
    }

    /// Check a proposed output size against the caps; `field` names the parameter to blame.
    pub fn check_output(&self, size: Size, field: &'static str) -> Result<Size, BuildError> {
        if size.is_empty() {
            return Err(BuildError::field(field, "the output would have no pixels"));
        }
        if size.width > self.max_side_px || size.height > self.max_side_px {
            return Err(BuildError::field(
                field,
                format!(
                    "the output would be {}x{} px; the longest side allowed is {} px",
                    size.width, size.height, self.max_side_px
                ),
            ));
        }
        if size.pixels() > self.max_pixels {
            return Err(BuildError::field(
                field,
                format!(
                    "the output would be {}x{} px ({}); at most {} allowed",
                    size.width,
                    size.height,
                    crate::error::human_pixels(size.pixels()),
                    crate::error::human_pixels(self.max_pixels)
                ),
            ));
        }
        Ok(size)
    }
}

fn blur_name(algorithm: BlurAlgorithm) -> String {
    match algorithm {
        BlurAlgorithm::Exact => "exact blur".to_owned(),
        BlurAlgorithm::Boxes(n) => format!("{n} box passes"),
    }
}

/// Why parameters could not be turned into a kernel for this input.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildError {
    /// The parameter at fault, if one is.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub reason: String,
}

impl BuildError {
    /// An error blamed on parameter `field`.
    pub fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            reason: reason.into(),
        }
    }
}

/// A pointwise kernel: rewrites pixels in place, one row at a time, knowing where the row sits
/// (so position-dependent pointwise ops like watermarks fuse with the rest).
pub trait PointKernel: Send + Sync {
    /// Apply to `row` (RGBA f32), whose first pixel is at image column `x0`, row `y`.
    fn apply_row(&self, x0: u32, y: u32, row: &mut [f32]);

    /// The same kernel for the GPU (same numbers, WGSL in `shaders/`).
    fn gpu(&self) -> GpuKernel;

    /// Whether each output channel depends only on the same input channel, and not on the
    /// pixel's position: then a run of such kernels over 8-bit input is a 256-entry table per
    /// channel (the executor computes the table with `apply_row` itself, so the results are
    /// the same bytes).
    fn per_channel(&self) -> bool {
        false
    }

    /// What the kernel does to grey pixels (see [`Grey`]); by default it may colour them.
    fn grey(&self) -> Grey {
        Grey::MayColour
    }

    /// For a greyscale conversion that an opaque 8-bit image may take on an 8-bit kernel
    /// instead, to one channel (see [`crate::engine::u8_lead`]): how it mixes the channels.
    /// `None` for every other kernel.
    fn u8_grey(&self) -> Option<GreyMix> {
        None
    }
}

/// What a kernel does to an image whose every pixel is grey (R = G = B), so that a grey
/// source whose chain keeps it grey is written with one channel, as it came (a 16-bit grey
/// scan stays 16-bit grey, not RGB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grey {
    /// Grey pixels stay grey (channels treated alike: blurs, resizes, pixel moves, levels).
    Keeps,
    /// Every output pixel is grey, whatever the input (greyscale, edge detection).
    Makes,
    /// Grey pixels may get colour (sepia, a coloured border or text). The default.
    MayColour,
}

impl Grey {
    /// What a colour (`[r, g, b, _]`) drawn or filled over the image does: keeps a grey
    /// image grey only if it is grey itself.
    pub fn of_fill(rgba: [f32; 4]) -> Grey {
        if rgba[0] == rgba[1] && rgba[1] == rgba[2] {
            Grey::Keeps
        } else {
            Grey::MayColour
        }
    }

    /// The same for a 3×3 colour matrix plus an offset added to every channel: grey stays
    /// grey when the rows sum alike, and every pixel turns grey when the rows are equal.
    pub fn of_matrix(m: &[[f32; 3]; 3]) -> Grey {
        let sums = m.map(|row| row.iter().sum::<f32>());
        if m[0] == m[1] && m[1] == m[2] {
            Grey::Makes
        } else if sums.iter().all(|s| (s - sums[0]).abs() <= 1e-6) {
            Grey::Keeps
        } else {
            Grey::MayColour
        }
    }
}

/// How a greyscale conversion computes grey from 8-bit red, green and blue, in levels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GreyMix {
    /// `wr·r + wg·g + wb·b`; the weights sum to 1, so grey input stays as it is.
    Weights([f32; 3]),
    /// `(max + min) / 2`.
    Lightness,
}

/// A kernel that reads a rectangle of its input to write a rectangle of its output.
pub trait SpatialKernel: Send + Sync {
    /// The input rectangle needed to produce `out` (clipped to the input image).
    fn input_rect(&self, out: Rect) -> Rect;

    /// Fill `dst` (its `rect` set; data zeroed unless [`SpatialKernel::writes_every_value`])
    /// from `src`, which covers `input_rect(dst.rect)`.
    fn run(&self, src: &Tile, dst: &mut Tile);

    /// The same kernel for the GPU (same numbers, WGSL in `shaders/`), or a documented
    /// CPU-only exception.
    fn gpu(&self) -> GpuKernel;

    /// What the kernel does to grey pixels (see [`Grey`]); by default it may colour them.
    fn grey(&self) -> Grey {
        Grey::MayColour
    }

    /// Whether the output can be less opaque than the input (e.g. a transparent border), so
    /// a streaming encoder knows before the first row whether to write alpha.
    fn may_add_transparency(&self) -> bool {
        false
    }

    /// Scratch memory the kernel allocates, in bytes, for an output rectangle (for the
    /// renderer's memory budget).
    fn scratch_bytes(&self, out: Rect) -> u64 {
        let _ = out;
        0
    }

    /// Whether `run` writes every value of `dst`, so the renderer may hand it a buffer that
    /// is not zeroed first (a tile-sized memset saved per stage and tile).
    fn writes_every_value(&self) -> bool {
        false
    }

    /// Whether the kernel (a geometry of the same size) leaves every pixel as it is: such a
    /// stage is left out of the plan (a `fit` resize with `upscale = false` of an image that
    /// already fits).
    fn is_identity(&self) -> bool {
        false
    }

    /// For a resize that an opaque 8-bit image may take on integer kernels instead (see
    /// [`crate::engine::u8_lead`]): what to run. `None` for every other kernel.
    fn u8_resize(&self) -> Option<U8Resize> {
        None
    }

    /// For a blur or unsharp mask that an opaque 8-bit image may take on 8-bit kernels
    /// instead (see [`crate::engine::u8_filter`], [`crate::engine::u8_box`]): what to run.
    /// `None` for every other kernel.
    fn u8_area(&self) -> Option<&U8Area> {
        None
    }

    /// For a pure rearrangement of pixels (crop, flip, rotate, EXIF orientation: no fill)
    /// that an opaque 8-bit image may take on 8-bit samples (see [`crate::engine::u8_lead`]):
    /// the map. `None` for every other kernel.
    fn u8_remap(&self) -> Option<&remap::Remap> {
        None
    }

    /// Whether this is a Sobel gradient magnitude (grey output, clamped neighbours) that an
    /// opaque 8-bit image may take on an 8-bit kernel instead (see
    /// [`crate::engine::u8_grey`]).
    fn u8_sobel(&self) -> bool {
        false
    }
}

/// Below this sigma (px, at full resolution) renders of opaque 8-bit sources blur exactly
/// where the preset (or the content measure) would choose boxes ([`BuildCtx::blur_algorithm`]):
/// on the 8-bit kernels, which run such sources' leading blurs, the exact Gaussian in 16-bit
/// fixed point ([`crate::engine::u8_filter`]) is then both faster and more precise. Measured at
/// 4096² RGB on 2 threads: σ 3 in 24–30 ms exact against 78–87 ms for the 8-bit boxes (whose
/// cost does not depend on sigma), exact σ 8 about 65 ms, σ 10 about 83. Previews and blurs
/// the f32 path runs on such sources follow, so that every render of one image agrees.
pub const U8_EXACT_BELOW_SIGMA_PX: f64 = 8.0;

/// A Gaussian (separable, or the box cascade) an opaque 8-bit RGB or grey image may run from
/// 8-bit to 8-bit samples: every preset but `ultra` allows it.
#[derive(Clone, Debug, PartialEq)]
pub struct U8Area {
    /// The Gaussian's weights (the f32 path's), for the separable blur.
    pub weights: Vec<f32>,
    /// The box radii of a box cascade (empty: the separable blur), see
    /// [`crate::engine::u8_box`].
    pub boxes: Vec<u32>,
    /// Blur or unsharp mask.
    pub mode: crate::engine::u8_filter::Mode,
}

impl U8Area {
    /// The 8-bit form of `blur`, if `quality` allows one (and for a box cascade, its boxes are
    /// narrow enough for exact 8-bit sums).
    pub(crate) fn for_blur(
        quality: crate::quality::QualityPreset,
        blur: &crate::engine::box_blur::BlurKernel,
        mode: crate::engine::u8_filter::Mode,
    ) -> Option<U8Area> {
        let boxes_fit = blur
            .boxes
            .iter()
            .all(|&r| 2 * r < crate::engine::u8_box::MAX_BOX_PX);
        (quality.eight_bit_kernels() && boxes_fit && blur.weights.len() > 1).then(|| U8Area {
            weights: blur.weights.clone(),
            boxes: blur.boxes.clone(),
            mode,
        })
    }
}

/// A resize an opaque 8-bit RGB image may run on `fast_image_resize`'s integer kernels: every
/// preset but `ultra` allows it, for resizes without a crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct U8Resize {
    /// The filter (the same function as the f32 path's).
    pub filter: U8Filter,
    /// Output size.
    pub output: Size,
}

/// Filters [`U8Resize`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum U8Filter {
    /// Lanczos, 3 lobes.
    Lanczos3,
    /// Catmull-Rom bicubic.
    CatmullRom,
    /// Triangle.
    Bilinear,
}

/// A built operation, ready to run on one stage.
pub enum Kernel {
    /// In-place per-pixel work, fused with neighbouring pointwise ops.
    Pointwise(Box<dyn PointKernel>),
    /// Reads a halo around each output rectangle.
    Area(Box<dyn SpatialKernel>),
    /// Changes size or pixel arrangement.
    Geometry {
        /// Output size.
        output: Size,
        /// The kernel.
        kernel: Box<dyn SpatialKernel>,
    },
    /// Needs its whole input at once.
    Global(Box<dyn SpatialKernel>),
}

impl Kernel {
    /// What this kernel does to grey pixels.
    pub fn grey(&self) -> Grey {
        match self {
            Kernel::Pointwise(k) => k.grey(),
            Kernel::Area(k) | Kernel::Geometry { kernel: k, .. } | Kernel::Global(k) => k.grey(),
        }
    }

    /// The GPU description of this kernel.
    pub fn gpu(&self) -> GpuKernel {
        match self {
            Kernel::Pointwise(k) => k.gpu(),
            Kernel::Area(k) | Kernel::Geometry { kernel: k, .. } | Kernel::Global(k) => k.gpu(),
        }
    }
}

/// The declaration of one operation.
pub struct OpDef {
    /// Stable snake_case id: chain files, CLI, WGSL stem.
    pub id: &'static str,
    /// Bumped whenever the parameters change meaning.
    pub version: u32,
    /// Human name.
    pub label: &'static str,
    /// Menu group (e.g. "Geometry", "Colour", "Filter").
    pub category: &'static str,
    /// One-paragraph description, used as tooltip and in `opossum ops`.
    pub doc: &'static str,
    /// Parameters, in display order.
    pub params: &'static [ParamSpec],
    /// The footprint for these parameters at `scale`.
    pub footprint: fn(&Params, f64) -> Footprint,
    /// Checks that need more than one parameter or the output caps (run when a chain loads).
    pub validate: fn(&Params, OutputLimits) -> Result<(), BuildError>,
    /// Build the CPU kernel. `params` are in full-resolution units; the op scales them with
    /// `ctx.scale` through [`Params::scaled`].
    pub build: fn(&Params, &BuildCtx) -> Result<Kernel, BuildError>,
}

impl std::fmt::Debug for OpDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpDef").field("id", &self.id).finish()
    }
}

/// Every registered operation, sorted by id.
pub fn registry() -> &'static [&'static OpDef] {
    static REGISTRY: &[&OpDef] = &[
        &add_border::DEF,
        &adjust_colors::DEF,
        &color_convert::DEF,
        &crop::DEF,
        &edge_detect::DEF,
        &flip::DEF,
        &gaussian_blur::DEF,
        &grayscale::DEF,
        &resize::DEF,
        &rotate::DEF,
        &sharpen::DEF,
        &watermark::DEF,
    ];
    REGISTRY
}

/// Look an operation up by id.
pub fn find(id: &str) -> Option<&'static OpDef> {
    registry().iter().copied().find(|d| d.id == id)
}

/// Ids of all operations, comma-separated (for error messages).
pub fn known_ids() -> String {
    registry()
        .iter()
        .map(|d| d.id)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `validate` for ops whose parameter ranges say everything.
pub(crate) fn no_validate(_: &Params, _: OutputLimits) -> Result<(), BuildError> {
    Ok(())
}

/// Footprint helper for ops that never change with parameters.
pub(crate) fn pointwise_footprint(_: &Params, _: f64) -> Footprint {
    Footprint::Pointwise
}

/// Footprint helper for geometry ops.
pub(crate) fn geometry_footprint(_: &Params, _: f64) -> Footprint {
    Footprint::Geometry
}

/// Clamp a working value to the nominal range.
#[inline]
pub(crate) fn unit(v: f32) -> f32 {
    v.clamp(0.0, 1.0)
}

/// Rec. 709 luma of sRGB-encoded values (the weights most editors use for "luminance").
#[inline]
pub(crate) fn luma(r: f32, g: f32, b: f32) -> f32 {
    let [wr, wg, wb] = LUMA_WEIGHTS;
    wr * r + wg * g + wb * b
}

/// Rec. 709 luma weights of R, G, B.
pub(crate) const LUMA_WEIGHTS: [f32; 3] = [0.2126, 0.7152, 0.0722];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every op, in each of its choice modes, describes a GPU kernel whose shader exists and
    /// whose uniforms follow the WGSL layout, or is a documented CPU exception.
    #[test]
    fn every_op_has_a_gpu_kernel_or_a_documented_exception() {
        let shaders = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let mut exceptions = Vec::new();
        for def in registry() {
            let choice = def.params.iter().find_map(|s| match s.kind {
                crate::params::ParamKind::Choice { choices, .. } => Some((s.key, choices)),
                _ => None,
            });
            let modes: Vec<Option<(&str, &str)>> = match choice {
                Some((key, choices)) => choices.iter().map(|c| Some((key, *c))).collect(),
                None => vec![None],
            };
            for mode in modes {
                let mut p = Params::defaults(def.params);
                if let Some((key, value)) = mode {
                    p.set(
                        def.params,
                        key,
                        &crate::chain::raw::RawValue::String(value.to_owned()),
                    )
                    .unwrap();
                }
                let kernel = (def.build)(&p, &testutil::ctx(Size::new(64, 48))).unwrap();
                match kernel.gpu() {
                    GpuKernel::Passes { shader, passes } => {
                        assert!(shaders.join(format!("{shader}.wgsl")).is_file(), "{shader}");
                        assert!(!passes.is_empty(), "{}", def.id);
                        assert_eq!(passes.last().unwrap().extent, gpu::PassExtent::Output);
                        for pass in &passes {
                            assert!(!pass.params.is_empty() && pass.params.len() % 16 == 0);
                        }
                    }
                    GpuKernel::Cpu { reason } => {
                        assert!(reason.len() > 20, "{}: explain the exception", def.id);
                        exceptions.push((def.id, mode));
                    }
                }
            }
        }
        // The only deliberate exception: Canny's hysteresis.
        assert_eq!(exceptions, vec![("edge_detect", Some(("mode", "canny")))]);
    }

    #[test]
    fn registry_is_sorted_and_unique() {
        let ids: Vec<&str> = registry().iter().map(|d| d.id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted);
        for id in ids {
            assert!(
                id.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{id}"
            );
        }
    }
}
