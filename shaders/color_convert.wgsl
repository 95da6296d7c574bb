// color_convert: a 3×3 matrix plus offset (sepia, invert, channel mixer, blended by strength
// on the CPU side), clamped to 0..1.
//#include pointwise

struct Params {
    m0: vec4<f32>,
    m1: vec4<f32>,
    m2: vec4<f32>,
    offset: f32,
}

fn apply(p: vec2<i32>, px: vec4<f32>) -> vec4<f32> {
    let c = px.rgb;
    let o = params.offset;
    let out = unit3(vec3<f32>(
        params.m0.x * c.r + params.m0.y * c.g + params.m0.z * c.b + o,
        params.m1.x * c.r + params.m1.y * c.g + params.m1.z * c.b + o,
        params.m2.x * c.r + params.m2.y * c.g + params.m2.z * c.b + o,
    ));
    return vec4<f32>(out, px.a);
}
