// Separable convolution with a symmetric kernel of 2r+1 taps (weights in `data`), shared by
// gaussian_blur and sharpen as `src/engine/convolve.rs` is on the CPU. The sums follow the CPU
// order: symmetric pairs first (outer to inner), the centre tap last. The horizontal pass
// runs over the op's input rectangle; the including file's `main` is the vertical pass.

// Mirrors `GpuParams` in src/engine/convolve.rs.
struct Params {
    radius: u32,
    // Op-specific values (sharpen: amount and threshold).
    amount: f32,
    threshold: f32,
    pad: u32,
}

// Horizontal sum at `p` over the pass's source, optionally of premultiplied colour.
fn convolve_h(p: vec2<i32>, premul: bool) -> vec4<f32> {
    let r = i32(params.radius);
    var acc = vec4<f32>(0.0);
    for (var k = 0; k < r; k++) {
        var a = src_at(vec2<i32>(p.x + k - r, p.y));
        var b = src_at(vec2<i32>(p.x + r - k, p.y));
        if premul {
            a = premultiply(a);
            b = premultiply(b);
        }
        acc += dataf(u32(k)) * (a + b);
    }
    var c = src_at(p);
    if premul {
        c = premultiply(c);
    }
    return acc + dataf(u32(r)) * c;
}

// Vertical sum at `p` over the pass's source (the horizontal pass's result).
fn convolve_v(p: vec2<i32>) -> vec4<f32> {
    let r = i32(params.radius);
    var acc = vec4<f32>(0.0);
    for (var k = 0; k < r; k++) {
        acc += dataf(u32(k)) * (src_at(vec2<i32>(p.x, p.y + k - r)) + src_at(vec2<i32>(p.x, p.y + r - k)));
    }
    return acc + dataf(u32(r)) * src_at(p);
}

@compute @workgroup_size(8, 8)
fn horizontal(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    store(p.xy, convolve_h(p.xy, false));
}

// The horizontal pass on premultiplied colour (blurs that must not darken transparent edges).
@compute @workgroup_size(8, 8)
fn horizontal_premultiplied(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = dst_pixel(id);
    if p.z == 0 {
        return;
    }
    store(p.xy, convolve_h(p.xy, true));
}
