//! `flip`: mirror horizontally, vertically or both.

use super::remap::Remap;
use super::{BuildCtx, BuildError, Kernel, OpDef, geometry_footprint};
use crate::engine::geom::Size;
use crate::params::{ParamKind, ParamSpec, Params};

/// Registration.
pub static DEF: OpDef = OpDef {
    id: "flip",
    version: 1,
    label: "Flip",
    category: "Geometry",
    doc: "Mirror the image left-right (horizontal), top-bottom (vertical) or both",
    params: PARAMS,
    footprint: geometry_footprint,
    validate: super::no_validate,
    build,
};

const PARAMS: &[ParamSpec] = &[ParamSpec {
    key: "direction",
    label: "Direction",
    doc: "Which axis to mirror",
    kind: ParamKind::Choice {
        choices: &["horizontal", "vertical", "both"],
        default: "horizontal",
    },
}];

fn build(p: &Params, ctx: &BuildCtx) -> Result<Kernel, BuildError> {
    let (h, v) = match p.choice("direction") {
        "vertical" => (false, true),
        "both" => (true, true),
        _ => (true, false),
    };
    Ok(kernel(ctx.input, h, v))
}

/// A mirror of an image of size `input`.
pub fn kernel(input: Size, horizontal: bool, vertical: bool) -> Kernel {
    let (w, h) = (i64::from(input.width), i64::from(input.height));
    Kernel::Geometry {
        output: input,
        kernel: Box::new(Remap {
            shader: "flip",
            input,
            x_coeffs: if horizontal {
                [-1, 0, w - 1]
            } else {
                [1, 0, 0]
            },
            y_coeffs: if vertical { [0, -1, h - 1] } else { [0, 1, 0] },
            fill: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::chain::raw::RawValue;
    use crate::ops::testutil::{params, pattern, run_whole};

    #[test]
    fn mirrors() {
        let img = pattern(5, 3);
        let h = run_whole(&super::DEF, &params(&super::DEF, &[]), &img);
        assert_eq!(h.clamped(0, 1), img.clamped(4, 1));
        let p = params(
            &super::DEF,
            &[("direction", RawValue::String("both".into()))],
        );
        let b = run_whole(&super::DEF, &p, &img);
        assert_eq!(b.clamped(0, 0), img.clamped(4, 2));
        let twice = run_whole(&super::DEF, &p, &b);
        assert_eq!(twice, img);
    }
}
