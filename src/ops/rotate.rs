//! `rotate`: turn the image clockwise by 90, 180 or 270 degrees (lossless pixel moves).

use super::remap::Remap;
use super::{BuildCtx, BuildError, Kernel, OpDef, geometry_footprint};
use crate::engine::geom::Size;
use crate::params::{ParamKind, ParamSpec, Params};

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "rotate",
    version: 1,
    label: "Rotate",
    category: "Geometry",
    doc: "Turn the image clockwise by a multiple of 90 degrees",
    params: PARAMS,
    footprint: geometry_footprint,
    validate: super::no_validate,
    build,
};

const PARAMS: &[ParamSpec] = &[ParamSpec {
    key: "angle",
    label: "Angle (clockwise, °)",
    doc: "Clockwise turn in degrees",
    kind: ParamKind::Choice {
        choices: &["90", "180", "270"],
        default: "90",
    },
}];

fn build(p: &Params, ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    let quarter_turns = match p.choice("angle") {
        "180" => 2,
        "270" => 3,
        _ => 1,
    };
    Ok(kernel(ctx.input, quarter_turns))
}

/// A clockwise turn by `quarter_turns` × 90° of an image of size `input`.
pub fn kernel(input: Size, quarter_turns: u32) -> Kernel {
    let (w, h) = (i64::from(input.width), i64::from(input.height));
    let (output, x_coeffs, y_coeffs) = match quarter_turns % 4 {
        1 => (
            Size::new(input.height, input.width),
            [0, 1, 0],
            [-1, 0, h - 1],
        ),
        2 => (input, [-1, 0, w - 1], [0, -1, h - 1]),
        3 => (
            Size::new(input.height, input.width),
            [0, -1, w - 1],
            [1, 0, 0],
        ),
        _ => (input, [1, 0, 0], [0, 1, 0]),
    };
    Kernel::Geometry {
        output,
        kernel: Box::new(Remap {
            shader: "rotate",
            input,
            x_coeffs,
            y_coeffs,
            fill: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::chain::raw::RawValue;
    use crate::ops::testutil::{params, pattern, run_whole};

    #[test]
    fn quarter_turns() {
        let img = pattern(4, 3);
        let r90 = run_whole(
            &super::DEF,
            &params(&super::DEF, &[("angle", RawValue::Int(90))]),
            &img,
        );
        assert_eq!((r90.rect.width, r90.rect.height), (3, 4));
        // Clockwise: the bottom-left input pixel lands top-left.
        assert_eq!(r90.clamped(0, 0), img.clamped(0, 2));
        assert_eq!(r90.clamped(2, 0), img.clamped(0, 0));
        let r270 = run_whole(
            &super::DEF,
            &params(&super::DEF, &[("angle", RawValue::Int(270))]),
            &r90,
        );
        assert_eq!(r270, img);
        let r180 = run_whole(
            &super::DEF,
            &params(&super::DEF, &[("angle", RawValue::Int(180))]),
            &img,
        );
        assert_eq!(r180.clamped(0, 0), img.clamped(3, 2));
    }
}
