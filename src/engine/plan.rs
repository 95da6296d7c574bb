//! A render plan: the enabled ops of a chain built into kernels for one input size and scale,
//! with the size of every stage. EXIF orientation is planned as leading rotate/flip stages, so
//! it is tiled like any op and never costs a full-image copy.

use super::content::{Choice, ContentLog, Detail};
use super::geom::Size;
use crate::chain::{Chain, OutputLimits};
use crate::error::{Error, Result};
use crate::io::decode::Orientation;
use crate::ops::{self, BuildCtx, Kernel};
use crate::quality::QualityPreset;

/// One step of a plan.
pub struct Stage {
    /// Op id (or `exif_orientation`), for profiling and errors.
    pub label: &'static str,
    /// Index of the op in the chain, when the stage is a chain op.
    pub op_index: Option<usize>,
    /// The built kernel.
    pub kernel: Kernel,
    /// Input size of this stage.
    pub input: Size,
    /// Output size of this stage.
    pub output: Size,
}

/// A chain built for one input.
pub struct Plan {
    /// Source size.
    pub input: Size,
    /// The steps in order.
    pub stages: Vec<Stage>,
    /// Final size.
    pub output: Size,
    /// Rendering scale (1.0 = full resolution).
    pub scale: f64,
    /// Some op's algorithm depends on the image's content ([`super::content`]): a plan built
    /// without a measured [`Detail`] may change once the image is measured.
    pub content_sensitive: bool,
    /// Some op's algorithm depends on whether the source is opaque 8-bit
    /// ([`Detail::opaque_8bit`]): a plan built without a measure may change once an opaque
    /// 8-bit source is measured.
    pub kind_sensitive: bool,
    /// What the content measure (and the opaque 8-bit rule) chose, one line per op it applied
    /// to; the 8-bit leading stages add a line for each op they run, in chain order.
    pub choices: Vec<Choice>,
}

fn orientation_kernels(input: Size, orientation: Orientation) -> Vec<(Kernel, Size)> {
    use ops::{flip, rotate};
    let turned = Size::new(input.height, input.width);
    match orientation {
        Orientation::NoTransforms => vec![],
        Orientation::Rotate90 => vec![(rotate::kernel(input, 1), turned)],
        Orientation::Rotate180 => vec![(rotate::kernel(input, 2), input)],
        Orientation::Rotate270 => vec![(rotate::kernel(input, 3), turned)],
        Orientation::FlipHorizontal => vec![(flip::kernel(input, true, false), input)],
        Orientation::FlipVertical => vec![(flip::kernel(input, false, true), input)],
        Orientation::Rotate90FlipH => vec![
            (rotate::kernel(input, 1), turned),
            (flip::kernel(turned, true, false), turned),
        ],
        Orientation::Rotate270FlipH => vec![
            (rotate::kernel(input, 3), turned),
            (flip::kernel(turned, true, false), turned),
        ],
    }
}

impl Plan {
    /// Build `chain` for a source of `input` pixels stored with `orientation`, at `scale`,
    /// with the algorithms of the `quality` preset (content unknown: see [`Plan::for_content`]).
    pub fn new(
        chain: &Chain,
        input: Size,
        orientation: Orientation,
        scale: f64,
        limits: OutputLimits,
        quality: QualityPreset,
    ) -> Result<Plan> {
        Plan::for_content(chain, input, orientation, scale, limits, quality, None)
    }

    /// [`Plan::new`] for a source whose full-resolution image measured `detail`: where the
    /// preset allows, ops pick cheaper algorithms on images with little detail.
    pub fn for_content(
        chain: &Chain,
        input: Size,
        orientation: Orientation,
        scale: f64,
        limits: OutputLimits,
        quality: QualityPreset,
        detail: Option<Detail>,
    ) -> Result<Plan> {
        puffin::profile_function!();
        let log = ContentLog::default();
        let mut stages = Vec::new();
        let mut size = input;
        for (kernel, output) in orientation_kernels(input, orientation) {
            stages.push(Stage {
                label: "exif_orientation",
                op_index: None,
                kernel,
                input: size,
                output,
            });
            size = output;
        }
        for (index, op) in chain.ops.iter().enumerate() {
            if !op.enabled {
                continue;
            }
            log.building(Some(index));
            let ctx = BuildCtx {
                input: size,
                scale,
                max_pixels: limits.max_pixels,
                max_side_px: limits.max_side_px,
                quality,
                detail,
                content: Some(&log),
            };
            let kernel = (op.def.build)(&op.params, &ctx).map_err(|e| Error::Chain {
                location: match e.field {
                    Some(f) => format!("ops[{index}] ({}).{f}", op.def.id),
                    None => format!("ops[{index}] ({})", op.def.id),
                },
                reason: e.reason,
                path: None,
            })?;
            let output = match &kernel {
                Kernel::Geometry { output, kernel } if *output == size && kernel.is_identity() => {
                    continue;
                }
                Kernel::Geometry { output, .. } => *output,
                _ => size,
            };
            stages.push(Stage {
                label: op.def.id,
                op_index: Some(index),
                kernel,
                input: size,
                output,
            });
            size = output;
        }
        Ok(Plan {
            input,
            stages,
            output: size,
            scale,
            content_sensitive: log.is_sensitive(),
            kind_sensitive: log.is_kind_sensitive(),
            choices: log.into_choices(),
        })
    }

    /// The choices as lines for reports.
    pub fn choice_lines(&self) -> Vec<String> {
        self.choices.iter().map(|c| c.line.clone()).collect()
    }

    /// Cut the plan before stage `at`: `self` keeps stages `..at` (its output becomes that
    /// stage's input) and the returned plan has stages `at..`, reading that image. Rendering the
    /// two in turn gives the pixels of the whole plan (the intermediate cache relies on it).
    pub fn split_off(&mut self, at: usize) -> Plan {
        let at = at.min(self.stages.len());
        let tail_stages = self.stages.split_off(at);
        let middle = self.stages.last().map_or(self.input, |s| s.output);
        let tail = Plan {
            input: middle,
            stages: tail_stages,
            output: self.output,
            scale: self.scale,
            content_sensitive: self.content_sensitive,
            kind_sensitive: self.kind_sensitive,
            choices: self.choices.clone(),
        };
        self.output = middle;
        tail
    }
}
