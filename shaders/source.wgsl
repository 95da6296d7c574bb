// Converts a rectangle of a pyramid level (8-bit RGBA, read as unorm floats) into the working
// format (rgba32float), the GPU side of `Source::read`.

struct Params {
    unused: vec4<u32>,
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    store(p.xy, src_at(p.xy));
}
