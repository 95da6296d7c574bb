//! `crop`: keep a rectangle of the image. A width or height of 0 means "to the edge".

use super::remap::Remap;
use super::{BuildCtx, BuildError, Kernel, OpDef, geometry_footprint};
use crate::engine::geom::Size;
use crate::params::{ParamSpec, Params, px_param};

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "crop",
    version: 1,
    label: "Crop",
    category: "Geometry",
    doc: "Keep the rectangle at (x, y) of the given width and height (0 = to the edge); clipped to the image",
    params: PARAMS,
    footprint: geometry_footprint,
    validate: super::no_validate,
    build,
};

const PARAMS: &[ParamSpec] = &[
    px_param("x", "Left", "Left edge of the kept rectangle"),
    px_param("y", "Top", "Top edge of the kept rectangle"),
    px_param(
        "width",
        "Width",
        "Width of the kept rectangle; 0 keeps everything right of x",
    ),
    px_param(
        "height",
        "Height",
        "Height of the kept rectangle; 0 keeps everything below y",
    ),
];

fn build(p: &Params, ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    let p = p.scaled(PARAMS, ctx.scale);
    let input = ctx.input;
    let (x, y) = (p.int("x") as u32, p.int("y") as u32);
    if x >= input.width {
        return Err(BuildError::field(
            "x",
            format!("left edge {x} is outside the {} px wide image", input.width),
        ));
    }
    if y >= input.height {
        return Err(BuildError::field(
            "y",
            format!("top edge {y} is outside the {} px high image", input.height),
        ));
    }
    let rest = |v: i64, room: u32| if v == 0 { room } else { (v as u32).min(room) };
    let output = Size::new(
        rest(p.int("width"), input.width - x),
        rest(p.int("height"), input.height - y),
    );
    Ok(Kernel::Geometry {
        output: ctx.check_output(output, "width")?,
        kernel: Box::new(Remap {
            shader: "crop",
            input,
            x_coeffs: [1, 0, i64::from(x)],
            y_coeffs: [0, 1, i64::from(y)],
            fill: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use crate::chain::raw::RawValue;
    use crate::ops::testutil::{params, pattern, run_whole};

    #[test]
    fn crops_and_clips() {
        let img = pattern(10, 8);
        let p = params(
            &super::DEF,
            &[
                ("x", RawValue::Int(2)),
                ("y", RawValue::Int(3)),
                ("width", RawValue::Int(4)),
                ("height", RawValue::Int(100)),
            ],
        );
        let out = run_whole(&super::DEF, &p, &img);
        assert_eq!((out.rect.width, out.rect.height), (4, 5));
        assert_eq!(out.clamped(0, 0), img.clamped(2, 3));
        assert_eq!(out.clamped(3, 4), img.clamped(5, 7));
    }

    #[test]
    fn outside_is_an_error_naming_the_field() {
        let p = params(&super::DEF, &[("x", RawValue::Int(10))]);
        let ctx = crate::ops::testutil::ctx(crate::engine::geom::Size::new(10, 8));
        let err = (super::DEF.build)(&p, &ctx).err().unwrap();
        assert_eq!(err.field, Some("x"));
    }
}
