// gaussian_blur: separable Gaussian on premultiplied colour (no dark fringes at transparent
// edges), the CPU's weights; a horizontal pass over the input rectangle, then vertical.
//#include convolve

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    if params.radius == 0u {
        store(p.xy, orig_at(p.xy));
        return;
    }
    store(p.xy, unpremultiply(convolve_v(p.xy)));
}
