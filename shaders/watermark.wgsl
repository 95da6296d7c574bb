// watermark: blend the text colour over the image with the coverage mask the Rust kernel
// rasterised (ab_glyph), "over" compositing in straight alpha, as on the CPU.
//#include pointwise

struct Params {
    // The mask's rectangle in image pixels: x, y, width, height.
    rect: vec4<u32>,
    color: vec4<f32>,
}

fn apply(p: vec2<i32>, px: vec4<f32>) -> vec4<f32> {
    let r = vec4<i32>(params.rect);
    let m = p - r.xy;
    if any(m < vec2<i32>(0)) || any(m >= r.zw) {
        return px;
    }
    let a = dataf(u32(m.y * r.z + m.x));
    if a <= 0.0 {
        return px;
    }
    let dst_a = px.a;
    let out_a = a + dst_a * (1.0 - a);
    let premul = params.color.rgb * a + px.rgb * dst_a * (1.0 - a);
    var c = vec3<f32>(0.0);
    if out_a > 0.0 {
        c = premul / out_a;
    }
    return vec4<f32>(c, out_a);
}
