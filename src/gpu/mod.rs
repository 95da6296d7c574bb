//! GPU previews (cargo feature `gpu`, part of `gui`): a chain run as WGSL compute passes on a
//! pyramid level, through the same [`Plan`] (built CPU kernels, stage sizes, tile input
//! rectangles) as the CPU renderer. Each kernel describes its GPU form ([`GpuKernel`]) from the
//! numbers it already computed, so both paths use the same weights and constants.
//!
//! - Device: the app passes the wgpu device eframe created (no second device); the CLI bench
//!   and the tests open a headless one ([`GpuContext::headless`]).
//! - Levels are uploaded once as 8-bit textures and converted to the working format
//!   (rgba32float) by `shaders/source.wgsl`; every stage writes a new texture (ping-pong).
//! - Each stage's output is cached under a hash of the source, level and chain prefix (and
//!   its rectangle), so editing op k re-runs only ops k..n. The cache has a byte budget and
//!   evicts least recently used entries.
//! - Results stay on the GPU: `shaders/present.wgsl` writes display textures that egui draws
//!   directly, and counts the histogram (4 KiB read back, not the image).
//! - Outputs larger than the adapter's `max_texture_dimension_2d` are rendered and shown as
//!   tiles, each under the limit, with input rectangles from the same footprints as CPU tiles.
//!
//! Everything returns [`GpuError`] instead of panicking (wgpu errors are captured with error
//! scopes), so the caller can fall back to the CPU path.

pub mod shaders;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wgpu::util::DeviceExt as _;

use crate::chain::{Chain, OutputLimits};
use crate::engine::geom::{Rect, Size};
use crate::engine::plan::{Plan, Stage};
use crate::engine::pyramid::Pyramid;
use crate::engine::render::stage_rects;
use crate::engine::tile::Tile;
use crate::io::decode::Orientation;
use crate::ops::Kernel;
use crate::ops::gpu::{GpuKernel, GpuPass, PassExtent};

/// Why a GPU render did not happen.
#[derive(Debug)]
pub enum GpuError {
    /// The chain cannot be built for this input (the same error the CPU path would give).
    Chain(crate::error::Error),
    /// The request was cancelled by a newer one.
    Cancelled,
    /// The GPU failed (validation, out of memory, lost device, unsupported size): fall back to
    /// the CPU.
    Device(String),
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::Chain(e) => write!(f, "{e}"),
            GpuError::Cancelled => f.write_str("cancelled"),
            GpuError::Device(m) => write!(f, "GPU error: {m}"),
        }
    }
}

/// A wgpu device and queue to run previews on.
#[derive(Clone)]
pub struct GpuContext {
    /// The device (eframe's in the app).
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Adapter name and backend, for the profiler and benchmarks.
    pub adapter: String,
    /// Largest texture side the device accepts (`max_texture_dimension_2d`), px.
    pub max_side_px: u32,
}

impl GpuContext {
    /// Wrap an existing device (the app passes eframe's).
    pub fn new(device: wgpu::Device, queue: wgpu::Queue, info: &wgpu::AdapterInfo) -> Self {
        let max_side_px = device.limits().max_texture_dimension_2d;
        Self {
            device,
            queue,
            adapter: format!("{} ({:?})", info.name, info.backend),
            max_side_px,
        }
    }

    /// Open a device of our own, for the command line and tests (honours `WGPU_BACKEND`).
    pub fn headless() -> Result<Self, String> {
        let instance = wgpu::Instance::new(&wgpu::InstanceDescriptor::from_env_or_default());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
        }))
        .map_err(|e| format!("no GPU adapter: {e}"))?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("opossum-headless"),
            required_limits: wgpu::Limits::default().using_resolution(adapter.limits()),
            ..Default::default()
        }))
        .map_err(|e| format!("cannot open the GPU device: {e}"))?;
        Ok(Self::new(device, queue, &adapter.get_info()))
    }
}

/// A rectangle of a stage's image held in a working texture (rgba32float).
pub struct GpuImage {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    /// Where it sits in its stage's image.
    pub rect: Rect,
}

/// Where an op ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// WGSL compute passes.
    Gpu,
    /// A documented CPU exception (read back, run, uploaded).
    Cpu,
    /// Its output came from the prefix cache.
    Cached,
}

/// Timing of one stage of a GPU preview.
#[derive(Clone, Debug)]
pub struct StageTiming {
    /// Op id (or `source`, `exif_orientation`, `present`).
    pub label: String,
    /// Where it ran.
    pub backend: Backend,
    /// Wall time from submit to completion (summed over tiles), ms.
    pub ms: f64,
}

impl StageTiming {
    /// `label · GPU`, `label · CPU` or `label · cached`, for tables and the profiler.
    pub fn display_label(&self) -> String {
        let place = match self.backend {
            Backend::Gpu => "GPU",
            Backend::Cpu => "CPU",
            Backend::Cached => "cached",
        };
        format!("{} · {place}", self.label)
    }
}

/// One display tile of a finished preview.
pub struct GpuTile {
    /// Where it sits in the rendered output, px.
    pub rect: Rect,
    /// Premultiplied, sRGB-encoded rgba16float texture for egui.
    pub display: wgpu::Texture,
    /// A view of it.
    pub display_view: wgpu::TextureView,
    /// The working pixels (rgba32float) of the same rectangle, for exact readback in tests.
    pub working: Arc<GpuImage>,
}

/// A finished GPU preview.
pub struct GpuFrame {
    /// Size of the whole output at this level.
    pub output: Size,
    /// The part rendered (the whole output unless a region was asked for).
    pub region: Rect,
    /// Display tiles covering `region`.
    pub tiles: Vec<GpuTile>,
    /// 8-bit histogram of the shown pixels: R, G, B and luma.
    pub histogram: Box<[[u32; 256]; 4]>,
    /// Per stage: where it ran and how long it took.
    pub stages: Vec<StageTiming>,
    /// Stages served from the cache, and stages in all (over tiles).
    pub cache_hits: usize,
    /// Stages in all (over tiles).
    pub stage_count: usize,
    /// Algorithms the plan picked by image content (from the pyramid's measure).
    pub choices: Vec<String>,
}

/// What to render.
pub struct GpuRequest<'a> {
    /// The chain (a snapshot).
    pub chain: &'a Chain,
    /// The source pyramid.
    pub pyramid: &'a Arc<Pyramid>,
    /// EXIF orientation of the source.
    pub orientation: Orientation,
    /// Pyramid level to render from.
    pub level: usize,
    /// Only this part of the output (in output pixels of the level's render), or all of it.
    pub region: Option<Rect>,
    /// Output caps.
    pub limits: OutputLimits,
    /// Quality preset (algorithm variants, part of every cache key).
    pub quality: crate::quality::QualityPreset,
}

struct CacheEntry {
    image: Arc<GpuImage>,
    last_used: u64,
}

/// The preview executor: pipelines, uploaded levels and the stage cache. Owned by one thread
/// (the preview worker); the textures it returns may be used from any thread.
pub struct GpuRenderer {
    ctx: GpuContext,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    present_layout: wgpu::BindGroupLayout,
    present_pipeline: Option<wgpu::ComputePipeline>,
    pipelines: HashMap<(&'static str, &'static str), wgpu::ComputePipeline>,
    pyramid: Option<Arc<Pyramid>>,
    levels: HashMap<usize, Arc<GpuImage>>,
    cache: HashMap<u64, CacheEntry>,
    cache_bytes: u64,
    /// Bytes the stage cache may hold.
    pub cache_budget_bytes: u64,
    clock: u64,
}

const WORKING: wgpu::TextureFormat = wgpu::TextureFormat::Rgba32Float;
const DISPLAY: wgpu::TextureFormat = wgpu::TextureFormat::Rgba16Float;
const WORKGROUP: u32 = 8;

fn texture_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    }
}

fn storage_texture_entry(binding: u32, format: wgpu::TextureFormat) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::StorageTexture {
            access: wgpu::StorageTextureAccess::WriteOnly,
            format,
            view_dimension: wgpu::TextureViewDimension::D2,
        },
        count: None,
    }
}

fn buffer_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn hash_of(parts: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl GpuRenderer {
    /// Set up layouts for `ctx` (pipelines are created on first use and kept).
    pub fn new(ctx: GpuContext) -> Self {
        let device = &ctx.device;
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("opossum-op"),
            entries: &[
                texture_entry(0),
                texture_entry(1),
                storage_texture_entry(2, WORKING),
                buffer_entry(3, wgpu::BufferBindingType::Uniform),
                buffer_entry(4, wgpu::BufferBindingType::Uniform),
                buffer_entry(5, wgpu::BufferBindingType::Storage { read_only: true }),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("opossum-op"),
            bind_group_layouts: &[&layout],
            push_constant_ranges: &[],
        });
        let present_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("opossum-present"),
            entries: &[
                texture_entry(0),
                storage_texture_entry(1, DISPLAY),
                buffer_entry(2, wgpu::BufferBindingType::Uniform),
                buffer_entry(3, wgpu::BufferBindingType::Storage { read_only: false }),
            ],
        });
        Self {
            ctx,
            layout,
            pipeline_layout,
            present_layout,
            present_pipeline: None,
            pipelines: HashMap::new(),
            pyramid: None,
            levels: HashMap::new(),
            cache: HashMap::new(),
            cache_bytes: 0,
            cache_budget_bytes: 1 << 30,
            clock: 0,
        }
    }

    /// The device this renderer uses.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Bytes held by the stage cache.
    pub fn cache_bytes(&self) -> u64 {
        self.cache_bytes
    }

    /// Drop every cached stage output and uploaded level.
    pub fn clear(&mut self) {
        self.cache.clear();
        self.cache_bytes = 0;
        self.levels.clear();
        self.pyramid = None;
    }

    /// Render `req` on the GPU. wgpu errors are captured and returned, never raised.
    pub fn render(
        &mut self,
        req: &GpuRequest<'_>,
        cancel: &AtomicBool,
    ) -> Result<GpuFrame, GpuError> {
        puffin::profile_function!();
        let device = self.ctx.device.clone();
        device.push_error_scope(wgpu::ErrorFilter::Internal);
        device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = self.render_inner(req, cancel);
        let mut failures = Vec::new();
        for _ in 0..3 {
            if let Some(e) = pollster::block_on(device.pop_error_scope()) {
                failures.push(e.to_string());
            }
        }
        if !failures.is_empty() {
            // Whatever was cached during a failed render is suspect.
            self.clear();
            return Err(GpuError::Device(failures.join("; ")));
        }
        result
    }

    fn render_inner(
        &mut self,
        req: &GpuRequest<'_>,
        cancel: &AtomicBool,
    ) -> Result<GpuFrame, GpuError> {
        let same_pyramid = self
            .pyramid
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, req.pyramid));
        if !same_pyramid {
            self.clear();
            self.pyramid = Some(req.pyramid.clone());
        }
        let level = req
            .pyramid
            .levels
            .get(req.level)
            .ok_or_else(|| GpuError::Device(format!("no pyramid level {}", req.level)))?;
        let input = Size::new(level.image.width(), level.image.height());
        let plan = Plan::for_content(
            req.chain,
            input,
            req.orientation,
            level.scale,
            req.limits,
            req.quality,
            Some(req.pyramid.detail),
        )
        .map_err(GpuError::Chain)?;
        let region = req
            .region
            .map_or(plan.output.rect(), |r| r.intersect(plan.output.rect()));
        if region.is_empty() {
            return Err(GpuError::Device("the region lies outside the image".into()));
        }
        let max = self.ctx.max_side_px;
        let fits = |r: &Rect| r.width <= max && r.height <= max;
        // The whole level at full extent when everything fits (every stage output then serves
        // any later edit); otherwise tiles whose every stage rectangle fits.
        let whole_fits = req.region.is_none()
            && fits(&plan.input.rect())
            && plan.stages.iter().all(|s| fits(&s.output.rect()));
        let tiles: Vec<Vec<Rect>> = if whole_fits {
            let mut rects: Vec<Rect> = plan.stages.iter().map(|s| s.input.rect()).collect();
            rects.push(plan.output.rect());
            vec![rects]
        } else {
            self.tile_rects(&plan, region)?
        };
        let signatures: Vec<String> = plan
            .stages
            .iter()
            .map(|s| crate::cache::key::stage_signature(req.chain, s, req.orientation))
            .collect();
        let source_key = hash_of((
            "source",
            Arc::as_ptr(req.pyramid) as usize,
            req.level,
            req.quality,
        ));
        let mut timings: Vec<StageTiming> = Vec::new();
        let mut add_time = |label: &str, backend: Backend, d: Duration| match timings
            .iter_mut()
            .find(|t| t.label == label && t.backend == backend)
        {
            Some(t) => t.ms += d.as_secs_f64() * 1000.0,
            None => timings.push(StageTiming {
                label: label.to_owned(),
                backend,
                ms: d.as_secs_f64() * 1000.0,
            }),
        };
        let mut outputs = Vec::with_capacity(tiles.len());
        let (mut hits, mut count) = (0, 0);
        for rects in &tiles {
            if rects.iter().any(|r| r.is_empty()) {
                return Err(GpuError::Device("a stage has an empty rectangle".into()));
            }
            self.clock += 1;
            let mut key = hash_of((source_key, rects[0]));
            let t = Instant::now();
            let mut current = match self.cached(key) {
                Some(image) => {
                    hits += 1;
                    add_time("source", Backend::Cached, t.elapsed());
                    image
                }
                None => {
                    let image = self.upload_source(req.pyramid, req.level, rects[0])?;
                    self.wait()?;
                    add_time("source", Backend::Gpu, t.elapsed());
                    self.insert(key, image.clone());
                    image
                }
            };
            count += 1;
            for (i, stage) in plan.stages.iter().enumerate() {
                if cancel.load(Ordering::Relaxed) {
                    return Err(GpuError::Cancelled);
                }
                puffin::profile_scope!("gpu_stage", stage.label);
                key = hash_of((key, &signatures[i], rects[i + 1]));
                count += 1;
                let t = Instant::now();
                if let Some(image) = self.cached(key) {
                    hits += 1;
                    add_time(stage.label, Backend::Cached, t.elapsed());
                    current = image;
                    continue;
                }
                let (image, backend) = self.run_stage(stage, &current, rects[i + 1])?;
                self.wait()?;
                add_time(stage.label, backend, t.elapsed());
                self.insert(key, image.clone());
                current = image;
            }
            outputs.push(current);
        }
        let t = Instant::now();
        let (display, histogram) = self.present(&outputs)?;
        add_time("present", Backend::Gpu, t.elapsed());
        let tiles = outputs
            .into_iter()
            .zip(display)
            .map(|(working, (display, display_view))| GpuTile {
                rect: working.rect,
                display,
                display_view,
                working,
            })
            .collect();
        self.evict();
        Ok(GpuFrame {
            output: plan.output,
            region,
            tiles,
            histogram: Box::new(histogram),
            stages: timings,
            cache_hits: hits,
            stage_count: count,
            choices: plan.choice_lines(),
        })
    }

    /// Output tiles of `region` whose stage rectangles all fit the texture limit.
    fn tile_rects(&self, plan: &Plan, region: Rect) -> Result<Vec<Vec<Rect>>, GpuError> {
        let max = self.ctx.max_side_px;
        let mut tile_px = max;
        while tile_px >= 16 {
            let grid: Vec<Rect> = Rect::grid(Size::new(region.width, region.height), tile_px)
                .into_iter()
                .map(|r| Rect::new(r.x + region.x, r.y + region.y, r.width, r.height))
                .collect();
            let all: Vec<Vec<Rect>> = grid
                .iter()
                .map(|&out| stage_rects(&plan.stages, out))
                .collect();
            if all
                .iter()
                .flatten()
                .all(|r| r.width <= max && r.height <= max)
            {
                return Ok(all);
            }
            tile_px /= 2;
        }
        Err(GpuError::Device(format!(
            "a stage needs more than {max} px of input per tile (the GPU's largest texture)"
        )))
    }

    fn cached(&mut self, key: u64) -> Option<Arc<GpuImage>> {
        let clock = self.clock;
        self.cache.get_mut(&key).map(|e| {
            e.last_used = clock;
            e.image.clone()
        })
    }

    fn insert(&mut self, key: u64, image: Arc<GpuImage>) {
        self.cache_bytes += image.rect.pixels() * 16;
        if let Some(old) = self.cache.insert(
            key,
            CacheEntry {
                image,
                last_used: self.clock,
            },
        ) {
            self.cache_bytes -= old.image.rect.pixels() * 16;
        }
    }

    /// Drop least recently used entries until under budget (never those of the last render).
    fn evict(&mut self) {
        while self.cache_bytes > self.cache_budget_bytes {
            let Some((&key, entry)) = self
                .cache
                .iter()
                .filter(|(_, e)| e.last_used < self.clock)
                .min_by_key(|(_, e)| e.last_used)
            else {
                break;
            };
            self.cache_bytes -= entry.image.rect.pixels() * 16;
            self.cache.remove(&key);
        }
    }

    fn wait(&self) -> Result<(), GpuError> {
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Device(format!("waiting for the GPU: {e}")))
    }

    fn working_texture(&self, rect: Rect, label: &str) -> GpuImage {
        let texture = self.ctx.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d {
                width: rect.width,
                height: rect.height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: WORKING,
            usage: wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_SRC
                | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        GpuImage {
            texture,
            view,
            rect,
        }
    }

    fn pipeline(
        &mut self,
        shader: &'static str,
        entry: &'static str,
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        if let Some(p) = self.pipelines.get(&(shader, entry)) {
            return Ok(p.clone());
        }
        let source = shaders::module_source(shader).map_err(GpuError::Device)?;
        let module = self
            .ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = self
            .ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(shader),
                layout: Some(&self.pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        self.pipelines.insert((shader, entry), pipeline.clone());
        Ok(pipeline)
    }

    /// The pyramid level as an 8-bit texture: uploaded once per level when it fits the
    /// texture limit, else just `rect` of it for this render.
    fn level_texture(
        &mut self,
        pyramid: &Pyramid,
        level: usize,
        rect: Rect,
    ) -> Result<Arc<GpuImage>, GpuError> {
        if let Some(t) = self.levels.get(&level) {
            return Ok(t.clone());
        }
        let image = &pyramid.levels[level].image;
        let full = Size::new(image.width(), image.height());
        let max = self.ctx.max_side_px;
        let whole = full.width <= max && full.height <= max;
        let upload = if whole { full.rect() } else { rect };
        let rgba = image.as_rgba8().ok_or_else(|| {
            GpuError::Device("pyramid levels are 8-bit RGBA; this one is not".into())
        })?;
        let row_bytes = upload.width as usize * 4;
        let mut bytes = Vec::with_capacity(row_bytes * upload.height as usize);
        for y in upload.y..upload.bottom() {
            let start = (y as usize * full.width as usize + upload.x as usize) * 4;
            bytes.extend_from_slice(&rgba.as_raw()[start..start + row_bytes]);
        }
        let texture = self.ctx.device.create_texture_with_data(
            &self.ctx.queue,
            &wgpu::TextureDescriptor {
                label: Some("opossum-level"),
                size: wgpu::Extent3d {
                    width: upload.width,
                    height: upload.height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba8Unorm,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            },
            wgpu::util::TextureDataOrder::LayerMajor,
            &bytes,
        );
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let image = Arc::new(GpuImage {
            texture,
            view,
            rect: upload,
        });
        if whole {
            self.levels.insert(level, image.clone());
        }
        Ok(image)
    }

    fn upload_source(
        &mut self,
        pyramid: &Pyramid,
        level: usize,
        rect: Rect,
    ) -> Result<Arc<GpuImage>, GpuError> {
        puffin::profile_function!();
        let level_tex = self.level_texture(pyramid, level, rect)?;
        let size = {
            let l = &pyramid.levels[level].image;
            Size::new(l.width(), l.height())
        };
        let dst = self.working_texture(rect, "opossum-source");
        let pass = GpuPass {
            entry: "main",
            extent: PassExtent::Output,
            params: vec![0; 16],
            data: Vec::new(),
        };
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        self.encode_pass(
            &mut encoder,
            "source",
            &pass,
            [&level_tex, &level_tex],
            &dst,
            [size, size],
        )?;
        self.ctx.queue.submit([encoder.finish()]);
        Ok(Arc::new(dst))
    }

    /// Run one stage whose input is `input`, writing `out`.
    fn run_stage(
        &mut self,
        stage: &Stage,
        input: &Arc<GpuImage>,
        out: Rect,
    ) -> Result<(Arc<GpuImage>, Backend), GpuError> {
        match stage.kernel.gpu() {
            GpuKernel::Passes { shader, passes } => {
                let mut encoder = self
                    .ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
                let mut previous = input.clone();
                for pass in &passes {
                    let rect = match pass.extent {
                        PassExtent::Output => out,
                        PassExtent::Input => input.rect,
                        PassExtent::OutputColumnsInputRows => {
                            Rect::new(out.x, input.rect.y, out.width, input.rect.height)
                        }
                    };
                    let dst = self.working_texture(rect, shader);
                    self.encode_pass(
                        &mut encoder,
                        shader,
                        pass,
                        [&previous, input],
                        &dst,
                        [stage.input, stage.output],
                    )?;
                    previous = Arc::new(dst);
                }
                self.ctx.queue.submit([encoder.finish()]);
                Ok((previous, Backend::Gpu))
            }
            GpuKernel::Cpu { .. } => {
                let src = self.read_back(input)?;
                let mut dst = Tile::new(out);
                match &stage.kernel {
                    Kernel::Pointwise(k) => {
                        dst.copy_from(&src);
                        for y in 0..out.height as usize {
                            k.apply_row(out.x, out.y + y as u32, dst.row_mut(y));
                        }
                    }
                    Kernel::Area(k) | Kernel::Geometry { kernel: k, .. } | Kernel::Global(k) => {
                        k.run(&src, &mut dst);
                    }
                }
                Ok((Arc::new(self.upload_working(&dst)), Backend::Cpu))
            }
        }
    }

    fn encode_pass(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        shader: &'static str,
        pass: &GpuPass,
        [src, orig]: [&GpuImage; 2],
        dst: &GpuImage,
        [image_in, image_out]: [Size; 2],
    ) -> Result<(), GpuError> {
        let pipeline = self.pipeline(shader, pass.entry)?;
        let device = &self.ctx.device;
        let xy = |r: Rect| [r.x as i32, r.y as i32, r.width as i32, r.height as i32];
        let frame: Vec<i32> = [
            xy(dst.rect),
            xy(src.rect),
            xy(orig.rect),
            [
                image_in.width as i32,
                image_in.height as i32,
                image_out.width as i32,
                image_out.height as i32,
            ],
        ]
        .concat();
        let frame = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("frame"),
            contents: bytemuck::cast_slice(&frame),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: &pass.params,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let words: &[u32] = if pass.data.is_empty() {
            &[0; 4]
        } else {
            &pass.data
        };
        let data = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("data"),
            contents: bytemuck::cast_slice(words),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(shader),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(&src.view),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&orig.view),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&dst.view),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: frame.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: data.as_entire_binding(),
                },
            ],
        });
        let mut cpass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(shader),
            timestamp_writes: None,
        });
        cpass.set_pipeline(&pipeline);
        cpass.set_bind_group(0, &bind_group, &[]);
        cpass.dispatch_workgroups(
            dst.rect.width.div_ceil(WORKGROUP),
            dst.rect.height.div_ceil(WORKGROUP),
            1,
        );
        Ok(())
    }

    /// Display textures for `outputs` and the histogram of all of them.
    #[allow(clippy::type_complexity)]
    fn present(
        &mut self,
        outputs: &[Arc<GpuImage>],
    ) -> Result<(Vec<(wgpu::Texture, wgpu::TextureView)>, [[u32; 256]; 4]), GpuError> {
        puffin::profile_function!();
        let device = self.ctx.device.clone();
        let pipeline = match &self.present_pipeline {
            Some(p) => p.clone(),
            None => {
                let source = shaders::module_source("present").map_err(GpuError::Device)?;
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some("present"),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
                let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some("present"),
                    bind_group_layouts: &[&self.present_layout],
                    push_constant_ranges: &[],
                });
                let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some("present"),
                    layout: Some(&layout),
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                });
                self.present_pipeline = Some(p.clone());
                p
            }
        };
        let histogram = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("histogram"),
            contents: bytemuck::cast_slice(&[0u32; 1024]),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        let mut displays = Vec::with_capacity(outputs.len());
        for out in outputs {
            let r = out.rect;
            let texture = device.create_texture(&wgpu::TextureDescriptor {
                label: Some("opossum-display"),
                size: wgpu::Extent3d {
                    width: r.width,
                    height: r.height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: DISPLAY,
                usage: wgpu::TextureUsages::STORAGE_BINDING
                    | wgpu::TextureUsages::TEXTURE_BINDING
                    | wgpu::TextureUsages::COPY_SRC,
                view_formats: &[],
            });
            let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
            let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("present"),
                contents: bytemuck::cast_slice(&[0i32, 0, r.width as i32, r.height as i32]),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("present"),
                layout: &self.present_layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::TextureView(&out.view),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::TextureView(&view),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: uniform.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: histogram.as_entire_binding(),
                    },
                ],
            });
            {
                let mut cpass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("present"),
                    timestamp_writes: None,
                });
                cpass.set_pipeline(&pipeline);
                cpass.set_bind_group(0, &bind_group, &[]);
                cpass.dispatch_workgroups(
                    r.width.div_ceil(WORKGROUP),
                    r.height.div_ceil(WORKGROUP),
                    1,
                );
            }
            displays.push((texture, view));
        }
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("histogram-read"),
            size: 4096,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(&histogram, 0, &staging, 0, 4096);
        self.ctx.queue.submit([encoder.finish()]);
        let words = map_read(&self.ctx, &staging)?;
        let mut h = [[0u32; 256]; 4];
        for (c, row) in h.iter_mut().enumerate() {
            row.copy_from_slice(&words[c * 256..(c + 1) * 256]);
        }
        Ok((displays, h))
    }

    fn upload_working(&self, tile: &Tile) -> GpuImage {
        let image = self.working_texture(tile.rect, "opossum-upload");
        self.ctx.queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &image.texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            bytemuck::cast_slice(&tile.data),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(tile.rect.width * 16),
                rows_per_image: None,
            },
            wgpu::Extent3d {
                width: tile.rect.width,
                height: tile.rect.height,
                depth_or_array_layers: 1,
            },
        );
        image
    }

    fn read_back(&self, image: &GpuImage) -> Result<Tile, GpuError> {
        read_working(&self.ctx.device, &self.ctx.queue, image)
    }
}

/// Map `buffer` (MAP_READ) after the queued work, as `u32` words.
fn map_read(ctx: &GpuContext, buffer: &wgpu::Buffer) -> Result<Vec<u32>, GpuError> {
    map_words(&ctx.device, buffer)
}

fn map_words(device: &wgpu::Device, buffer: &wgpu::Buffer) -> Result<Vec<u32>, GpuError> {
    let slice = buffer.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::Device(format!("waiting for the GPU: {e}")))?;
    rx.recv()
        .map_err(|_| GpuError::Device("the GPU did not map a buffer".into()))?
        .map_err(|e| GpuError::Device(format!("mapping a buffer: {e}")))?;
    let words = bytemuck::cast_slice::<u8, u32>(&slice.get_mapped_range()).to_vec();
    buffer.unmap();
    Ok(words)
}

/// Read a working texture back as a tile (exact f32 values): tests, screenshots and the CPU
/// exception ops. The preview itself never needs this. Reads bands of rows so no buffer
/// exceeds the device's limits.
pub fn read_working(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    image: &GpuImage,
) -> Result<Tile, GpuError> {
    let r = image.rect;
    let row_bytes = r.width * 16;
    let padded =
        row_bytes.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let max_bytes = device.limits().max_buffer_size.min(64 << 20);
    let band_rows = (max_bytes / u64::from(padded)).clamp(1, u64::from(r.height)) as u32;
    let mut tile = Tile::new(r);
    let stride = (padded / 4) as usize;
    let n = r.width as usize * 4;
    let mut y0 = 0;
    while y0 < r.height {
        let rows = band_rows.min(r.height - y0);
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: u64::from(padded) * u64::from(rows),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture: &image.texture,
                mip_level: 0,
                origin: wgpu::Origin3d { x: 0, y: y0, z: 0 },
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(padded),
                    rows_per_image: None,
                },
            },
            wgpu::Extent3d {
                width: r.width,
                height: rows,
                depth_or_array_layers: 1,
            },
        );
        queue.submit([encoder.finish()]);
        let words = map_words(device, &buffer)?;
        let floats: &[f32] = bytemuck::cast_slice(&words);
        for y in 0..rows as usize {
            tile.row_mut(y0 as usize + y)
                .copy_from_slice(&floats[y * stride..y * stride + n]);
        }
        y0 += rows;
    }
    Ok(tile)
}

impl GpuFrame {
    /// The rendered region's working pixels, read back (tests and screenshots only).
    pub fn read_back(&self, ctx: &GpuContext) -> Result<Tile, GpuError> {
        let mut out = Tile::new(self.region);
        for tile in &self.tiles {
            out.copy_from(&read_working(&ctx.device, &ctx.queue, &tile.working)?);
        }
        Ok(out)
    }
}
