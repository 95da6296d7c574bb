// edge_detect (Sobel): gradient magnitude of the Rec. 709 luma over the 3×3 neighbourhood,
// edges replicated, capped at 1; alpha kept. (Canny runs on the CPU: see its `gpu()`.)

struct Params {
    unused: vec4<u32>,
}

fn luma_at(p: vec2<i32>) -> f32 {
    let c = src_at(p);
    return 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b;
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    let x = p.x;
    let y = p.y;
    let a0 = luma_at(vec2<i32>(x - 1, y - 1));
    let a1 = luma_at(vec2<i32>(x, y - 1));
    let a2 = luma_at(vec2<i32>(x + 1, y - 1));
    let b0 = luma_at(vec2<i32>(x - 1, y));
    let b2 = luma_at(vec2<i32>(x + 1, y));
    let c0 = luma_at(vec2<i32>(x - 1, y + 1));
    let c1 = luma_at(vec2<i32>(x, y + 1));
    let c2 = luma_at(vec2<i32>(x + 1, y + 1));
    let gx = (a2 + 2.0 * b2 + c2) - (a0 + 2.0 * b0 + c0);
    let gy = (c0 + 2.0 * c1 + c2) - (a0 + 2.0 * a1 + a2);
    let m = min(sqrt(gx * gx + gy * gy), 1.0);
    store(p.xy, vec4<f32>(m, m, m, src_at(p.xy).a));
}
