//! `add_border`: surround the image with a solid border of `size` pixels on every side.

use super::remap::{Remap, rgba_f32};
use super::{BuildCtx, BuildError, Kernel, OpDef, geometry_footprint};
use crate::engine::geom::Size;
use crate::params::{ParamKind, ParamSpec, Params, Unit};

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "add_border",
    version: 1,
    label: "Add border",
    category: "Geometry",
    doc: "Add a solid border of the given size (px) and colour around the image",
    params: PARAMS,
    footprint: geometry_footprint,
    validate: super::no_validate,
    build,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        key: "size",
        label: "Size",
        doc: "Border width on each side",
        kind: ParamKind::Int {
            min: 0,
            max: 16_384,
            default: 10,
            unit: Unit::Px,
            spatial: true,
        },
    },
    ParamSpec {
        key: "color",
        label: "Colour",
        doc: "Border colour (with optional alpha)",
        kind: ParamKind::Color {
            default: [0, 0, 0, 255],
        },
    },
];

fn build(p: &Params, ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    let size = p.scaled(PARAMS, ctx.scale).int("size") as u32;
    let input = ctx.input;
    let output = Size::new(
        input.width.saturating_add(2 * size),
        input.height.saturating_add(2 * size),
    );
    Ok(Kernel::Geometry {
        output: ctx.check_output(output, "size")?,
        kernel: Box::new(Remap {
            shader: "add_border",
            input,
            x_coeffs: [1, 0, -i64::from(size)],
            y_coeffs: [0, 1, -i64::from(size)],
            fill: Some(rgba_f32(p.color("color"))),
        }),
    })
}

#[cfg(test)]
mod tests {
    use crate::chain::raw::RawValue;
    use crate::ops::testutil::{params, pattern, run_whole};

    #[test]
    fn border_surrounds_the_image() {
        let img = pattern(3, 2);
        let p = params(
            &super::DEF,
            &[
                ("size", RawValue::Int(2)),
                ("color", RawValue::String("#ff000080".into())),
            ],
        );
        let out = run_whole(&super::DEF, &p, &img);
        assert_eq!((out.rect.width, out.rect.height), (7, 6));
        assert_eq!(out.clamped(0, 0), [1.0, 0.0, 0.0, 128.0 / 255.0]);
        assert_eq!(out.clamped(6, 5), [1.0, 0.0, 0.0, 128.0 / 255.0]);
        assert_eq!(out.clamped(2, 2), img.clamped(0, 0));
        assert_eq!(out.clamped(4, 3), img.clamped(2, 1));
    }
}
