// adjust_colors: gain/offset (exposure, brightness, contrast), a chroma matrix (saturation,
// hue), then gamma; the same constants as the CPU kernel, each step skipped when it is an
// identity (flags), as on the CPU.
//#include pointwise

struct Params {
    m0: vec4<f32>,
    m1: vec4<f32>,
    m2: vec4<f32>,
    gain: f32,
    offset: f32,
    inv_gamma: f32,
    flags: u32,
}

fn apply(p: vec2<i32>, px: vec4<f32>) -> vec4<f32> {
    var c = px.rgb;
    if (params.flags & 1u) != 0u {
        c = unit3(c * params.gain + vec3<f32>(params.offset));
    }
    if (params.flags & 2u) != 0u {
        c = unit3(vec3<f32>(
            params.m0.x * c.r + params.m0.y * c.g + params.m0.z * c.b,
            params.m1.x * c.r + params.m1.y * c.g + params.m1.z * c.b,
            params.m2.x * c.r + params.m2.y * c.g + params.m2.z * c.b,
        ));
    }
    if (params.flags & 4u) != 0u {
        c = pow(c, vec3<f32>(params.inv_gamma));
    }
    return vec4<f32>(c, px.a);
}
