// grayscale: weighted luma (Rec. 709, Rec. 601, average) or lightness (mean of max and min).
//#include pointwise

struct Params {
    weights: vec4<f32>,
    lightness: u32,
}

fn apply(p: vec2<i32>, px: vec4<f32>) -> vec4<f32> {
    var y: f32;
    if params.lightness != 0u {
        y = 0.5 * (max(max(px.r, px.g), px.b) + min(min(px.r, px.g), px.b));
    } else {
        y = params.weights.x * px.r + params.weights.y * px.g + params.weights.z * px.b;
    }
    return vec4<f32>(y, y, y, px.a);
}
