// An integer affine pixel map (coefficients in {-1, 0, 1} plus offsets), with a fill colour
// where the map falls outside the input: the GPU side of `src/ops/remap.rs`, shared by rotate,
// flip, crop and add_border (each file of theirs includes this one).

struct Params {
    x_coeffs: vec4<i32>,
    y_coeffs: vec4<i32>,
    fill: vec4<f32>,
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    let xc = params.x_coeffs;
    let yc = params.y_coeffs;
    let s = vec2<i32>(xc.x * p.x + xc.y * p.y + xc.z, yc.x * p.x + yc.y * p.y + yc.z);
    if src_contains(s) {
        store(p.xy, src_at(s));
    } else {
        store(p.xy, params.fill);
    }
}
