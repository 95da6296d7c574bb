// Turns a rectangle of the finished preview (working rgba32float) into a display texture for
// egui (rgba16float, premultiplied sRGB-encoded colour, as egui's own textures), and
// counts the 8-bit histogram (R, G, B, luma) of what it shows, so the image itself is never read back.

struct Present {
    // Where the display texture's (0, 0) sits in the preview texture.
    offset: vec2<i32>,
    size: vec2<i32>,
}

@group(0) @binding(0) var preview: texture_2d<f32>;
@group(0) @binding(1) var display: texture_storage_2d<rgba16float, write>;
@group(0) @binding(2) var<uniform> present_frame: Present;
@group(0) @binding(3) var<storage, read_write> histogram: array<atomic<u32>>;

fn level8(v: f32) -> u32 {
    return u32(clamp(v, 0.0, 1.0) * 255.0 + 0.5);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let local = vec2<i32>(id.xy);
    if any(local >= present_frame.size) {
        return;
    }
    let v = textureLoad(preview, local + present_frame.offset, 0);
    let c = clamp(v, vec4<f32>(0.0), vec4<f32>(1.0));
    // What egui 0.33's textures hold: sRGB-encoded colour premultiplied in gamma space (its
    // shader treats texture values as gamma-encoded, like `Color32`).
    textureStore(display, local, vec4<f32>(c.rgb * c.a, c.a));
    let r = level8(v.r);
    let g = level8(v.g);
    let b = level8(v.b);
    atomicAdd(&histogram[r], 1u);
    atomicAdd(&histogram[256u + g], 1u);
    atomicAdd(&histogram[512u + b], 1u);
    // The fourth row is luma, as the CPU preview's histogram computes it.
    atomicAdd(&histogram[768u + min((r * 54u + g * 183u + b * 19u) >> 8u, 255u)], 1u);
}
