//! Buffer pool: storage buffers grouped by size class and reused once dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Usage of every pooled storage buffer.
pub(crate) const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Most buffers kept free in one size class.
const MAX_FREE_PER_CLASS: usize = 32;

/// Rounds a request up to its size class: powers of two up to 1 MiB, then eighths of a power of
/// two (at most 12.5% waste), never over `max` (a request near the limit gets its exact size).
pub(crate) fn size_class(bytes: u64, max: u64) -> u64 {
    let bytes = bytes.max(256);
    let class = if bytes <= 1 << 20 {
        bytes.next_power_of_two()
    } else {
        let p = 63 - bytes.leading_zeros() as u64; // floor(log2)
        let step = 1u64 << (p - 3);
        bytes.div_ceil(step) * step
    };
    if class > max {
        bytes.div_ceil(256) * 256
    } else {
        class
    }
}

pub(crate) struct Pool {
    device: wgpu::Device,
    max_buffer: u64,
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
}

impl Pool {
    pub(crate) fn new(device: wgpu::Device, max_buffer: u64) -> Arc<Self> {
        Arc::new(Pool {
            device,
            max_buffer,
            free: Mutex::new(HashMap::new()),
        })
    }

    /// A buffer of at least `bytes` bytes; its contents are undefined.
    pub(crate) fn get(self: &Arc<Self>, bytes: u64) -> GpuBuffer {
        let class = size_class(bytes, self.max_buffer);
        let reused = self
            .free
            .lock()
            .expect("pool lock")
            .get_mut(&class)
            .and_then(|v| v.pop());
        let buffer = reused.unwrap_or_else(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("semid tensor"),
                size: class,
                usage: STORAGE_USAGE,
                mapped_at_creation: false,
            })
        });
        GpuBuffer {
            buffer: Some(buffer),
            len: bytes,
            pool: Arc::clone(self),
        }
    }

    /// Drops every free buffer.
    pub(crate) fn trim(&self) {
        self.free.lock().expect("pool lock").clear();
    }

    /// Bytes held by free buffers.
    pub(crate) fn free_bytes(&self) -> u64 {
        self.free
            .lock()
            .expect("pool lock")
            .iter()
            .map(|(k, v)| k * v.len() as u64)
            .sum()
    }
}

/// A pooled storage buffer; returns to its pool when dropped.
///
/// Reuse is safe with respect to GPU ordering: work on the queue runs in order, and semid
/// never writes a pooled buffer with `queue.write_buffer` (uploads are copies recorded in order).
pub struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    len: u64,
    pool: Arc<Pool>,
}

impl GpuBuffer {
    pub(crate) fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("live buffer")
    }
    /// Bytes requested (the buffer itself may be larger).
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether zero bytes were requested.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            let mut free = self.pool.free.lock().expect("pool lock");
            let list = free.entry(b.size()).or_default();
            if list.len() < MAX_FREE_PER_CLASS {
                list.push(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;
    #[test]
    fn classes() {
        assert_eq!(size_class(1, 1 << 30), 256);
        assert_eq!(size_class(1000, 1 << 30), 1024);
        assert_eq!(size_class((1 << 20) + 1, 1 << 30), (1 << 20) + (1 << 17));
        assert_eq!(size_class(256 << 20, 256 << 20), 256 << 20);
        assert_eq!(size_class((250 << 20) + 4, 256 << 20), 256 << 20);
        assert_eq!(size_class(300 << 20, 256 << 20), 300 << 20);
    }
}
