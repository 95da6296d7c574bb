// grayscale: weighted luma (Rec. 709, Rec. 601, average) or lightness (mean of max and min).

struct Params {
    weights: vec4<f32>,
    lightness: u32,
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    let px = src_at(p.xy);
    var y: f32;
    if params.lightness != 0u {
        y = 0.5 * (max(max(px.r, px.g), px.b) + min(min(px.r, px.g), px.b));
    } else {
        y = params.weights.x * px.r + params.weights.y * px.g + params.weights.z * px.b;
    }
    store(p.xy, vec4<f32>(y, y, y, px.a));
}
