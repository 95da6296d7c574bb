// watermark: blend the text colour over the image with the coverage mask the Rust kernel
// rasterised (ab_glyph), "over" compositing in straight alpha, as on the CPU.

struct Params {
    // The mask's rectangle in image pixels: x, y, width, height.
    rect: vec4<u32>,
    color: vec4<f32>,
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    let px = src_at(p.xy);
    let r = vec4<i32>(params.rect);
    let m = p.xy - r.xy;
    if any(m < vec2<i32>(0)) || any(m >= r.zw) {
        store(p.xy, px);
        return;
    }
    let a = dataf(u32(m.y * r.z + m.x));
    if a <= 0.0 {
        store(p.xy, px);
        return;
    }
    let dst_a = px.a;
    let out_a = a + dst_a * (1.0 - a);
    let premul = params.color.rgb * a + px.rgb * dst_a * (1.0 - a);
    var c = vec3<f32>(0.0);
    if out_a > 0.0 {
        c = premul / out_a;
    }
    store(p.xy, vec4<f32>(c, out_a));
}
