// Shared by every op kernel (prepended by the loader): the bindings, the frame uniform and
// clamped loads in absolute image coordinates.
//
// Every texture holds a rectangle of its stage's image: `frame.*_origin` is where its (0, 0)
// sits. Loads clamp to that rectangle, which is the edge-extension rule of the CPU kernels: a
// pass's input rectangle is its output grown by the halo and clipped to the image, so clamping
// to the texture is clamping to the image. Values are straight-alpha, sRGB-encoded, nominally
// 0..1, as on the CPU.

struct Frame {
    dst_origin: vec2<i32>,
    dst_size: vec2<i32>,
    src_origin: vec2<i32>,
    src_size: vec2<i32>,
    orig_origin: vec2<i32>,
    orig_size: vec2<i32>,
    image_in: vec2<i32>,
    image_out: vec2<i32>,
}

// The previous pass's result (the op's input for the first pass).
@group(0) @binding(0) var src_tex: texture_2d<f32>;
// The op's input.
@group(0) @binding(1) var orig_tex: texture_2d<f32>;
@group(0) @binding(2) var dst_tex: texture_storage_2d<rgba32float, write>;
@group(0) @binding(3) var<uniform> frame: Frame;
// Each op file declares its own `struct Params`, mirrored by a `#[repr(C)]` struct in Rust.
@group(0) @binding(4) var<uniform> params: Params;
// Weights, tables and masks computed by the Rust kernel (floats as bits).
@group(0) @binding(5) var<storage, read> data: array<u32>;

// The absolute pixel this invocation writes, or `false` in `.z` when it lies outside the pass.
fn dst_pixel(id: vec3<u32>) -> vec3<i32> {
    let local = vec2<i32>(id.xy);
    let inside = all(local < frame.dst_size);
    return vec3<i32>(local + frame.dst_origin, select(0, 1, inside));
}

fn store(p: vec2<i32>, v: vec4<f32>) {
    textureStore(dst_tex, p - frame.dst_origin, v);
}

fn src_at(p: vec2<i32>) -> vec4<f32> {
    let q = clamp(p - frame.src_origin, vec2<i32>(0), frame.src_size - vec2<i32>(1));
    return textureLoad(src_tex, q, 0);
}

fn orig_at(p: vec2<i32>) -> vec4<f32> {
    let q = clamp(p - frame.orig_origin, vec2<i32>(0), frame.orig_size - vec2<i32>(1));
    return textureLoad(orig_tex, q, 0);
}

fn src_contains(p: vec2<i32>) -> bool {
    let q = p - frame.src_origin;
    return all(q >= vec2<i32>(0)) && all(q < frame.src_size);
}

fn dataf(i: u32) -> f32 {
    return bitcast<f32>(data[i]);
}

fn unit3(c: vec3<f32>) -> vec3<f32> {
    return clamp(c, vec3<f32>(0.0), vec3<f32>(1.0));
}

fn premultiply(c: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(c.rgb * c.a, c.a);
}

// The CPU's `ALPHA_FLOOR` (2^-17, half a 16-bit level): below it a filtered pixel is
// transparent black, since colour divided by such an alpha is ill-conditioned.
const ALPHA_FLOOR: f32 = 7.62939453125e-6;

// As the CPU: colour divided by alpha and capped at 1; transparent black below ALPHA_FLOOR.
fn unpremultiply(c: vec4<f32>) -> vec4<f32> {
    if c.a >= ALPHA_FLOOR {
        let inv = 1.0 / c.a;
        return vec4<f32>(min(c.rgb * inv, vec3<f32>(1.0)), c.a);
    }
    return vec4<f32>(0.0);
}
