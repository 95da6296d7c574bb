// The entry point of every pointwise op, as the renderer's fused row loop is on the CPU: the
// including file defines `apply(p, px)`, the new value of pixel `px` at absolute position `p`.

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    store(p.xy, apply(p.xy, src_at(p.xy)));
}
