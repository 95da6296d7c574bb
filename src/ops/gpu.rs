//! What an operation runs on the GPU, as plain data: the WGSL shader (by file stem in
//! `shaders/`), its passes, and each pass's parameters as the bytes of a `#[repr(C)]` struct that
//! mirrors the shader's `Params` struct (`bytemuck`).
//!
//! Every built CPU kernel also describes its GPU counterpart ([`super::PointKernel::gpu`],
//! [`super::SpatialKernel::gpu`]), so the values a kernel derives from its parameters (filter
//! weights, colour matrices, a watermark's coverage mask) are computed once, in Rust, and the
//! GPU uses exactly the same numbers as the CPU. This module knows nothing about wgpu; the
//! executor in `crate::gpu` turns these descriptions into compute passes.

/// Which rectangle a pass writes, relative to the op's input and output rectangles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassExtent {
    /// The op's output rectangle (the last pass of every op writes this).
    Output,
    /// The op's input rectangle (e.g. the horizontal pass of a separable blur).
    Input,
    /// The output's columns over the input's rows (the horizontal pass of a resize).
    OutputColumnsInputRows,
}

/// One compute dispatch of an op. Binding 0 is the previous pass's result (the op's input for
/// the first pass), binding 1 the op's input, binding 2 what this pass writes.
#[derive(Clone, Debug)]
pub struct GpuPass {
    /// Entry point in the op's shader.
    pub entry: &'static str,
    /// The rectangle it writes.
    pub extent: PassExtent,
    /// The shader's `Params` uniform, as bytes (a multiple of 16).
    pub params: Vec<u8>,
    /// Read-only storage data (`array<u32>`; floats as their bits): weights, masks. May be
    /// empty.
    pub data: Vec<u32>,
}

/// How an op runs on the GPU.
#[derive(Clone, Debug)]
pub enum GpuKernel {
    /// Compute passes of `shaders/<shader>.wgsl`, in order.
    Passes {
        /// Shader file stem (the op id, or the shared kernel family it belongs to).
        shader: &'static str,
        /// The passes.
        passes: Vec<GpuPass>,
    },
    /// A deliberate exception: the op runs on the CPU (its input is read back, its output
    /// uploaded). `reason` is shown in the profiler.
    Cpu {
        /// Why this op has no GPU kernel.
        reason: &'static str,
    },
}

impl GpuKernel {
    /// A single-pass kernel writing the output rectangle.
    pub fn single<P: bytemuck::Pod>(shader: &'static str, params: &P, data: Vec<u32>) -> Self {
        GpuKernel::Passes {
            shader,
            passes: vec![GpuPass {
                entry: "main",
                extent: PassExtent::Output,
                params: uniform_bytes(params),
                data,
            }],
        }
    }
}

impl GpuKernel {
    /// A separable kernel: a `first` pass writing `extent`, then `main` writing the output,
    /// both with the same uniforms and data.
    pub fn two_pass(
        shader: &'static str,
        first: &'static str,
        extent: PassExtent,
        params: Vec<u8>,
        data: Vec<u32>,
    ) -> Self {
        GpuKernel::Passes {
            shader,
            passes: vec![
                GpuPass {
                    entry: first,
                    extent,
                    params: params.clone(),
                    data: data.clone(),
                },
                GpuPass {
                    entry: "main",
                    extent: PassExtent::Output,
                    params,
                    data,
                },
            ],
        }
    }
}

/// Rows of a 3×3 colour matrix as `vec4<f32>`s (WGSL pads a `vec3` to 16 bytes anyway).
pub fn matrix_rows(m: &[[f32; 3]; 3]) -> [[f32; 4]; 3] {
    m.map(|r| [r[0], r[1], r[2], 0.0])
}

/// The bytes of a uniform struct, padded to a multiple of 16 (WGSL uniform layout).
pub fn uniform_bytes<P: bytemuck::Pod>(params: &P) -> Vec<u8> {
    let mut bytes = bytemuck::bytes_of(params).to_vec();
    bytes.resize(bytes.len().div_ceil(16).max(1) * 16, 0);
    bytes
}

/// Floats as the `u32` words of a storage buffer.
pub fn f32_words(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}
