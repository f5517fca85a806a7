//! The only module that touches wgpu: adapter and limits, buffer pool, pipeline cache,
//! batched command recording and readback.
//!
//! Every kernel launch goes through [`Gpu::dispatch`], which records into one shared command
//! encoder. Nothing is submitted until a readback ([`Gpu::read`]), an explicit [`Gpu::flush`] or
//! a full uniform arena (2,048 dispatches at the usual alignment), so a whole training step
//! becomes one submission.

mod context;
mod pipelines;
mod pool;

pub use context::{list_adapters, AdapterSummary, GpuOptions, LimitsMode};
pub use pipelines::ShaderSource;
pub use pool::GpuBuffer;

use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Bytes of the uniform arena: every dispatch's parameters of one submission live in one
/// uniform buffer, each at its own aligned offset, instead of a buffer created per dispatch.
/// When the arena is full the recording is submitted, so this is also what bounds the memory a
/// recording holds (with the default 256-byte offset alignment, 2,048 dispatches a submission).
const ARENA_BYTES: u64 = 512 << 10;

/// A contiguous byte range of a buffer bound to one storage slot.
#[derive(Clone, Copy)]
pub struct BufRange<'a> {
    /// The buffer.
    pub buf: &'a GpuBuffer,
    /// Offset in bytes; a multiple of [`KernelLimits::storage_offset_alignment`].
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

impl<'a> BufRange<'a> {
    /// The whole of the requested length of `buf`.
    pub fn all(buf: &'a GpuBuffer) -> Self {
        BufRange {
            buf,
            offset: 0,
            size: buf.len(),
        }
    }
}

/// The limits kernels need to know when they plan their work.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct KernelLimits {
    /// Largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Largest storage binding, in bytes.
    pub max_storage_binding: u64,
    /// Alignment of storage binding offsets, in bytes.
    pub storage_offset_alignment: u64,
    /// Most workgroups in one dispatch dimension.
    pub max_workgroups_per_dim: u32,
    /// Workgroup memory in bytes.
    pub workgroup_storage: u32,
    /// Invocations per workgroup.
    pub max_invocations: u32,
    /// Storage buffers per shader stage.
    pub max_storage_buffers: u32,
}

struct Recording {
    encoder: Option<wgpu::CommandEncoder>,
    /// The uniform arena (created on first use and reused: queue writes and submissions run in
    /// queue order, so rewriting it for the next submission never races the last one).
    arena: Option<wgpu::Buffer>,
    /// The arena's contents for the recording: written just before the encoder is submitted,
    /// never earlier, because `write_buffer` runs before already-recorded work (wgpu#5636).
    params: Vec<u8>,
    submissions: u64,
    /// Dispatches recorded since the device was opened (for `semid bench`'s per-step counts).
    total_dispatches: u64,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    _adapter: wgpu::Adapter,
    summary: AdapterSummary,
    limits: wgpu::Limits,
    features: wgpu::Features,
    pool: Arc<pool::Pool>,
    pipelines: pipelines::PipelineCache,
    rec: Mutex<Recording>,
    errors: Arc<Mutex<Vec<String>>>,
    /// Per-kernel wall times while profiling ([`Gpu::set_profiling`]).
    profile: Mutex<Option<std::collections::BTreeMap<String, KernelTime>>>,
}

/// What [`Gpu::profile`] reports of one kernel (`shader::entry`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KernelTime {
    /// Dispatches timed.
    pub dispatches: u64,
    /// Seconds from submitting each dispatch alone to the GPU's finishing it, summed.
    pub seconds: f64,
}

/// A handle to one GPU device and its queue; cheap to clone.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Gpu({} on {})",
            self.inner.summary.name, self.inner.summary.backend
        )
    }
}

impl Gpu {
    /// Opens the adapter chosen by `opts` (see [`GpuOptions`]).
    pub fn new(opts: &GpuOptions) -> Result<Gpu> {
        let opened = context::open(opts)?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&errors);
        opened
            .device
            .on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                sink.lock().expect("error lock").push(e.to_string());
            }));
        let limits = opened.device.limits();
        let features = opened.device.features();
        let pool = pool::Pool::new(opened.device.clone(), limits.max_buffer_size);
        Ok(Gpu {
            inner: Arc::new(Inner {
                device: opened.device,
                queue: opened.queue,
                _adapter: opened.adapter,
                summary: opened.summary,
                limits,
                features,
                pool,
                pipelines: Default::default(),
                rec: Mutex::new(Recording {
                    encoder: None,
                    arena: None,
                    params: Vec::new(),
                    submissions: 0,
                    total_dispatches: 0,
                }),
                errors,
                profile: Mutex::new(None),
            }),
        })
    }

    /// Opens the default adapter with the adapter's own limits.
    pub fn default_device() -> Result<Gpu> {
        Gpu::new(&GpuOptions::default())
    }

    /// Opens the default adapter with wgpu's default limits (what tests use), quietly.
    pub fn with_default_limits() -> Result<Gpu> {
        Gpu::new(&GpuOptions {
            limits: LimitsMode::Default,
            quiet: true,
            ..Default::default()
        })
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.inner.summary
    }

    /// The limits kernels plan with.
    pub fn kernel_limits(&self) -> KernelLimits {
        let l = &self.inner.limits;
        KernelLimits {
            max_buffer_size: l.max_buffer_size,
            max_storage_binding: l.max_storage_buffer_binding_size,
            storage_offset_alignment: l.min_storage_buffer_offset_alignment as u64,
            max_workgroups_per_dim: l.max_compute_workgroups_per_dimension,
            workgroup_storage: l.max_compute_workgroup_storage_size,
            max_invocations: l.max_compute_invocations_per_workgroup,
            max_storage_buffers: l.max_storage_buffers_per_shader_stage,
        }
    }

    /// The full wgpu limits, for `semid info`.
    pub fn limits_debug(&self) -> String {
        format!("{:#?}", self.inner.limits)
    }

    /// Enabled features, for `semid info`.
    pub fn features_debug(&self) -> String {
        format!("{:?}", self.inner.features)
    }

    /// Number of compiled pipelines.
    pub fn pipeline_count(&self) -> usize {
        self.inner.pipelines.len()
    }

    /// Number of queue submissions so far (readbacks and flushes).
    pub fn submissions(&self) -> u64 {
        self.inner.rec.lock().expect("rec lock").submissions
    }

    /// Number of dispatches recorded so far (benchmarks count them per training step).
    pub fn dispatches(&self) -> u64 {
        self.inner.rec.lock().expect("rec lock").total_dispatches
    }

    /// Bytes held in free pooled buffers.
    pub fn pool_free_bytes(&self) -> u64 {
        self.inner.pool.free_bytes()
    }

    /// Releases every free pooled buffer.
    pub fn trim_pool(&self) {
        self.inner.pool.trim()
    }

    fn check_size(&self, bytes: u64, what: &str) -> Result<()> {
        let max = self.inner.limits.max_buffer_size;
        if bytes > max {
            return Err(Error::TooLarge {
                what: what.to_string(),
                bytes,
                limit_name: "max_buffer_size",
                limit: max,
            });
        }
        Ok(())
    }

    /// A pooled buffer of `bytes` bytes with undefined contents.
    pub fn alloc(&self, bytes: u64, what: &str) -> Result<GpuBuffer> {
        self.check_size(bytes, what)?;
        Ok(self.inner.pool.get(bytes.max(4)))
    }

    /// A pooled buffer holding `data`; the copy is recorded in order with the dispatches.
    pub fn upload(&self, data: &[u8], what: &str) -> Result<GpuBuffer> {
        let buf = self.alloc(data.len() as u64, what)?;
        if !data.is_empty() {
            let padded;
            let bytes = if !data.len().is_multiple_of(4) {
                let mut v = data.to_vec();
                v.resize(data.len().div_ceil(4) * 4, 0);
                padded = v;
                &padded[..]
            } else {
                data
            };
            let staging = self
                .inner
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("semid upload"),
                    contents: bytes,
                    usage: wgpu::BufferUsages::COPY_SRC,
                });
            self.with_encoder(|enc| {
                enc.copy_buffer_to_buffer(&staging, 0, buf.raw(), 0, bytes.len() as u64)
            });
        }
        Ok(buf)
    }

    /// Records a zero fill of `buf`.
    pub fn zero(&self, buf: &GpuBuffer) {
        let size = buf.len().div_ceil(4) * 4;
        self.with_encoder(|enc| enc.clear_buffer(buf.raw(), 0, Some(size)));
    }

    /// Records a copy of `size` bytes between two buffers.
    pub fn copy(&self, src: &GpuBuffer, src_off: u64, dst: &GpuBuffer, dst_off: u64, size: u64) {
        if size > 0 {
            self.with_encoder(|enc| {
                enc.copy_buffer_to_buffer(src.raw(), src_off, dst.raw(), dst_off, size)
            });
        }
    }

    fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut rec = self.inner.rec.lock().expect("rec lock");
        let enc = rec.encoder.get_or_insert_with(|| {
            self.inner
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("semid batch"),
                })
        });
        f(enc)
    }

    /// Splits a linear workgroup count over x and y so no dimension exceeds the limit.
    /// Kernels recover the linear id as `wg.x + wg.y * nwg.x` and bounds-check it.
    pub fn fold_groups(&self, groups: u32) -> (u32, u32, u32) {
        let max = self
            .inner
            .limits
            .max_compute_workgroups_per_dimension
            .max(1);
        if groups <= max {
            (groups.max(1), 1, 1)
        } else {
            let y = groups.div_ceil(max);
            (groups.div_ceil(y), y, 1)
        }
    }

    /// Records one dispatch of `entry` in `shader`.
    ///
    /// Binding 0 is a uniform buffer holding `params`; bindings 1.. are `bufs` in order.
    /// `groups` is a linear workgroup count, folded by [`Gpu::fold_groups`].
    pub fn dispatch(
        &self,
        shader: &ShaderSource,
        entry: &str,
        constants: &[(&str, f64)],
        params: &[u8],
        bufs: &[BufRange<'_>],
        groups: u32,
    ) -> Result<()> {
        let lim = &self.inner.limits;
        for b in bufs {
            if b.size > lim.max_storage_buffer_binding_size {
                return Err(Error::TooLarge {
                    what: format!("a binding of `{}::{}`", shader.name, entry),
                    bytes: b.size,
                    limit_name: "max_storage_buffer_binding_size",
                    limit: lim.max_storage_buffer_binding_size,
                });
            }
            if b.offset % lim.min_storage_buffer_offset_alignment as u64 != 0 {
                return Err(Error::Invalid(format!(
                    "binding offset {} of `{}::{}` is not a multiple of {}",
                    b.offset, shader.name, entry, lim.min_storage_buffer_offset_alignment
                )));
            }
        }
        if groups == 0 {
            return Ok(());
        }
        let device = &self.inner.device;
        let compiled = self.inner.pipelines.get(device, shader, entry, constants);
        // Uniform bindings are read in 16-byte units; the next slot starts at the offset
        // alignment.
        let size = params.len().div_ceil(16).max(1) * 16;
        let align = (lim.min_uniform_buffer_offset_alignment as usize).max(16);
        let slot = size.div_ceil(align) * align;
        if slot as u64 > ARENA_BYTES {
            return Err(Error::Invalid(format!(
                "parameters of `{}::{}` take {} bytes, more than the uniform arena",
                shader.name,
                entry,
                params.len()
            )));
        }
        let (x, y, z) = self.fold_groups(groups);
        {
            let mut rec = self.inner.rec.lock().expect("rec lock");
            // Checked and submitted under the same lock, so no other thread can fill the arena
            // between the check and this dispatch's slot.
            if (rec.params.len() + slot) as u64 > ARENA_BYTES {
                self.submit_locked(&mut rec);
            }
            let arena = rec
                .arena
                .get_or_insert_with(|| {
                    device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("semid params arena"),
                        size: ARENA_BYTES,
                        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                })
                .clone();
            let offset = rec.params.len();
            rec.params.extend_from_slice(params);
            rec.params.resize(offset + slot, 0);
            let mut entries = Vec::with_capacity(bufs.len() + 1);
            entries.push(wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &arena,
                    offset: offset as u64,
                    size: std::num::NonZeroU64::new(size as u64),
                }),
            });
            for (i, b) in bufs.iter().enumerate() {
                // Bind at least 4 bytes; the size is rounded up to 4 as wgpu requires.
                let size = b.size.max(4).div_ceil(4) * 4;
                let size = size.min(b.buf.raw().size() - b.offset);
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: b.buf.raw(),
                        offset: b.offset,
                        size: std::num::NonZeroU64::new(size),
                    }),
                });
            }
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &compiled.layout,
                entries: &entries,
            });
            let enc = rec.encoder.get_or_insert_with(|| {
                device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("semid batch"),
                })
            });
            {
                // Passes are labelled by entry point, so a GPU capture reads as the kernels.
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(entry),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&compiled.pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(x, y, z);
            }
            rec.total_dispatches += 1;
        }
        if self.inner.profile.lock().expect("profile lock").is_some() {
            self.time_last_dispatch(&format!("{}::{}", shader.name, entry))?;
        }
        Ok(())
    }

    /// Profiling: submits the dispatch just recorded alone and waits for it, charging the wall
    /// time to `key` (the work recorded before it was waited for first, so it is not charged).
    fn time_last_dispatch(&self, key: &str) -> Result<()> {
        let start = std::time::Instant::now();
        self.sync()?;
        let secs = start.elapsed().as_secs_f64();
        let mut prof = self.inner.profile.lock().expect("profile lock");
        if let Some(map) = prof.as_mut() {
            let e = map.entry(key.to_string()).or_default();
            e.dispatches += 1;
            e.seconds += secs;
        }
        Ok(())
    }

    /// Turns per-kernel profiling on (clearing earlier figures) or off. While on, every
    /// dispatch is submitted and waited for on its own, so the figures say where the time of a
    /// step goes on this adapter, at the price of the batching that makes a step fast: use it
    /// to find the kernel to work on, never to report a step's speed (`semid bench --profile`).
    pub fn set_profiling(&self, on: bool) -> Result<()> {
        self.sync()?;
        *self.inner.profile.lock().expect("profile lock") = on.then(Default::default);
        Ok(())
    }

    /// The per-kernel figures gathered since profiling was turned on, slowest first.
    pub fn profile(&self) -> Vec<(String, KernelTime)> {
        let prof = self.inner.profile.lock().expect("profile lock");
        let mut v: Vec<(String, KernelTime)> = prof
            .as_ref()
            .map(|m| m.iter().map(|(k, t)| (k.clone(), *t)).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds));
        v
    }

    fn submit(&self) {
        let mut rec = self.inner.rec.lock().expect("rec lock");
        self.submit_locked(&mut rec);
    }

    /// Writes the arena and submits the recording, with the recording's lock already held.
    fn submit_locked(&self, rec: &mut Recording) {
        if let Some(enc) = rec.encoder.take() {
            if let (Some(arena), false) = (&rec.arena, rec.params.is_empty()) {
                self.inner.queue.write_buffer(arena, 0, &rec.params);
            }
            self.inner.queue.submit(Some(enc.finish()));
            rec.submissions += 1;
        }
        rec.params.clear();
    }

    fn take_errors(&self) -> Result<()> {
        let mut errs = self.inner.errors.lock().expect("error lock");
        if errs.is_empty() {
            Ok(())
        } else {
            let msg = errs.join("; ");
            errs.clear();
            Err(Error::Gpu(msg))
        }
    }

    /// Submits everything recorded so far without waiting.
    pub fn flush(&self) -> Result<()> {
        self.submit();
        self.take_errors()
    }

    /// Submits everything recorded and waits for the GPU to finish it.
    pub fn sync(&self) -> Result<()> {
        self.submit();
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        self.take_errors()
    }

    /// Reads `size` bytes at `offset` of `buf` back to the CPU: submits and waits.
    pub fn read(&self, buf: &GpuBuffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        if size == 0 {
            return Ok(Vec::new());
        }
        let padded = size.div_ceil(4) * 4;
        let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("semid readback"),
            size: padded,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.with_encoder(|enc| enc.copy_buffer_to_buffer(buf.raw(), offset, &staging, 0, padded));
        self.submit();
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        self.take_errors()?;
        rx.recv()
            .map_err(|e| Error::Gpu(e.to_string()))?
            .map_err(|e| Error::Gpu(e.to_string()))?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu(e.to_string()))?;
        let mut out = data[..size as usize].to_vec();
        drop(data);
        staging.unmap();
        out.truncate(size as usize);
        Ok(out)
    }

    /// Plans row chunks so that every bound row-major tensor's slice stays within the storage
    /// binding limit and starts at an aligned offset. `row_bytes` lists the bytes per row of
    /// each tensor bound by rows. Returns `(first_row, rows)` pairs covering `0..rows`.
    pub fn row_chunks(&self, rows: usize, row_bytes: &[u64]) -> Result<Vec<(usize, usize)>> {
        let lim = self.kernel_limits();
        let widest = row_bytes.iter().copied().max().unwrap_or(4).max(1);
        let cap_rows = (lim.max_storage_binding / widest) as usize;
        if cap_rows == 0 {
            return Err(Error::TooLarge {
                what: "one row of a tensor".into(),
                bytes: widest,
                limit_name: "max_storage_buffer_binding_size",
                limit: lim.max_storage_binding,
            });
        }
        if cap_rows >= rows {
            return Ok(vec![(0, rows)]);
        }
        let step = self.row_step(row_bytes);
        let chunk = (cap_rows / step) * step;
        if chunk == 0 {
            return Err(Error::TooLarge {
                what: format!("{step} aligned rows of a tensor"),
                bytes: widest * step as u64,
                limit_name: "max_storage_buffer_binding_size",
                limit: lim.max_storage_binding,
            });
        }
        let mut out = Vec::new();
        let mut start = 0;
        while start < rows {
            let n = chunk.min(rows - start);
            out.push((start, n));
            start += n;
        }
        Ok(out)
    }
}

impl Gpu {
    /// Rows between aligned chunk starts: every multiple of it gives an aligned byte offset for
    /// every tensor of `row_bytes` bytes per row.
    fn row_step(&self, row_bytes: &[u64]) -> usize {
        let align = self.kernel_limits().storage_offset_alignment;
        row_bytes.iter().fold(1usize, |step, &rb| {
            lcm(step, (align / gcd(rb, align)) as usize)
        })
    }

    /// [`Gpu::row_chunks`] with at most `max_rows` rows per chunk: `max_rows` is rounded down to
    /// a multiple of the alignment step (at least one step, so a chunk may hold more than
    /// `max_rows` rows when `max_rows` is below the step: 64 rows at most for 4-byte rows and
    /// 256-byte alignment). For kernels whose loops grow with the rows bound (see
    /// [`crate::kernels::LOOP_BUDGET`]).
    pub fn row_chunks_at_most(
        &self,
        rows: usize,
        row_bytes: &[u64],
        max_rows: usize,
    ) -> Result<Vec<(usize, usize)>> {
        let step = self.row_step(row_bytes);
        let cap = (max_rows / step).max(1) * step;
        Ok(self
            .row_chunks(rows, row_bytes)?
            .into_iter()
            .flat_map(|(s, n)| {
                (s..s + n)
                    .step_by(cap)
                    .map(move |a| (a, cap.min(s + n - a)))
            })
            .collect())
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a as u64, b as u64) as usize * b
}
