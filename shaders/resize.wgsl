// resize: separable resampling with the CPU's tap tables (start, count, weights per output
// column and row, in `data`), on premultiplied colour: a horizontal pass over the output's
// columns and the input's rows, then a vertical pass; alpha and colour clamped as on the CPU.

struct Params {
    h_offset: u32,
    h_record: u32,
    v_offset: u32,
    v_record: u32,
}

@compute @workgroup_size(8, 8)
fn horizontal(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    let rec = params.h_offset + u32(p.x) * params.h_record;
    let start = i32(data[rec]);
    let len = data[rec + 1u];
    var sum = vec4<f32>(0.0);
    for (var k = 0u; k < len; k++) {
        sum += dataf(rec + 2u + k) * premultiply(src_at(vec2<i32>(start + i32(k), p.y)));
    }
    store(p.xy, sum);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    let rec = params.v_offset + u32(p.y) * params.v_record;
    let start = i32(data[rec]);
    let len = data[rec + 1u];
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < len; k++) {
        acc += dataf(rec + 2u + k) * src_at(vec2<i32>(p.x, start + i32(k)));
    }
    acc.a = clamp(acc.a, 0.0, 1.0);
    store(p.xy, clamp(unpremultiply(acc), vec4<f32>(0.0), vec4<f32>(1.0)));
}
