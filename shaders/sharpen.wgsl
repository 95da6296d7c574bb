// sharpen: unsharp mask. The blur is the CPU's (straight colour, same weights); each channel
// adds back `amount` times its difference from the blur where that exceeds the threshold.
//#include convolve

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    let blurred = convolve_v(p.xy);
    let o = orig_at(p.xy);
    var out = o;
    for (var c = 0; c < 3; c++) {
        let diff = o[c] - blurred[c];
        if abs(diff) > params.threshold || params.threshold == 0.0 {
            out[c] = clamp(o[c] + params.amount * diff, 0.0, 1.0);
        }
    }
    store(p.xy, out);
}
