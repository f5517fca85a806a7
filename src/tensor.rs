//! `Tensor`: f32 (or u32 index) storage on the GPU with a row-major, contiguous shape.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, Gpu, GpuBuffer};
use std::sync::Arc;

/// Element type of a tensor's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit unsigned integer (indices, codes).
    U32,
}

/// A row-major, contiguous tensor in a pooled GPU buffer. Cloning shares the storage.
#[derive(Clone)]
pub struct Tensor {
    gpu: Gpu,
    buf: Arc<GpuBuffer>,
    shape: Vec<usize>,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.shape, self.dtype)
    }
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// An uninitialised f32 tensor (contents undefined until a kernel writes it).
    pub fn empty(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        Self::empty_typed(gpu, shape, DType::F32)
    }

    /// An uninitialised tensor of the given dtype.
    pub fn empty_typed(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let bytes = numel(shape) as u64 * 4;
        let buf = gpu.alloc(bytes, &format!("a tensor of shape {shape:?}"))?;
        Ok(Tensor {
            gpu: gpu.clone(),
            buf: Arc::new(buf),
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// A tensor of zeros.
    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let t = Self::empty(gpu, shape)?;
        gpu.zero(&t.buf);
        Ok(t)
    }

    /// Uploads f32 data with the given shape.
    pub fn from_slice(gpu: &Gpu, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != data.len() {
            return Err(Error::shape(
                "Tensor::from_slice",
                format!("{} values do not fill shape {shape:?}", data.len()),
            ));
        }
        let buf = gpu.upload(
            bytemuck::cast_slice(data),
            &format!("a tensor of shape {shape:?}"),
        )?;
        Ok(Tensor {
            gpu: gpu.clone(),
            buf: Arc::new(buf),
            shape: shape.to_vec(),
            dtype: DType::F32,
        })
    }

    /// Uploads u32 data (indices) with the given shape.
    pub fn from_u32(gpu: &Gpu, data: &[u32], shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != data.len() {
            return Err(Error::shape(
                "Tensor::from_u32",
                format!("{} values do not fill shape {shape:?}", data.len()),
            ));
        }
        let buf = gpu.upload(
            bytemuck::cast_slice(data),
            &format!("an index tensor of shape {shape:?}"),
        )?;
        Ok(Tensor {
            gpu: gpu.clone(),
            buf: Arc::new(buf),
            shape: shape.to_vec(),
            dtype: DType::U32,
        })
    }

    /// Downloads f32 data (submits pending work and waits).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        if self.dtype != DType::F32 {
            return Err(Error::Invalid(format!(
                "to_vec on a {:?} tensor; use to_u32",
                self.dtype
            )));
        }
        let bytes = self.gpu.read(&self.buf, 0, self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Downloads u32 data (submits pending work and waits).
    pub fn to_u32(&self) -> Result<Vec<u32>> {
        if self.dtype != DType::U32 {
            return Err(Error::Invalid(format!(
                "to_u32 on a {:?} tensor; use to_vec",
                self.dtype
            )));
        }
        let bytes = self.gpu.read(&self.buf, 0, self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Downloads several f32 tensors in ONE transfer: they are copied side by side into one
    /// buffer (recorded with the pending work) and read back once.
    pub fn read_all(parts: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        Ok(Self::read_all_bytes(parts, DType::F32)?
            .iter()
            .map(|b| bytemuck::pod_collect_to_vec(b))
            .collect())
    }

    /// [`Tensor::read_all`] for u32 tensors.
    pub fn read_all_u32(parts: &[&Tensor]) -> Result<Vec<Vec<u32>>> {
        Ok(Self::read_all_bytes(parts, DType::U32)?
            .iter()
            .map(|b| bytemuck::pod_collect_to_vec(b))
            .collect())
    }

    fn read_all_bytes(parts: &[&Tensor], dtype: DType) -> Result<Vec<Vec<u8>>> {
        let Some(first) = parts.first() else {
            return Ok(Vec::new());
        };
        if let Some(t) = parts.iter().find(|t| t.dtype != dtype) {
            return Err(Error::Invalid(format!(
                "read_all: a {:?} tensor among {dtype:?} ones",
                t.dtype
            )));
        }
        let gpu = first.gpu.clone();
        let total: usize = parts.iter().map(|t| t.numel()).sum();
        let all = Tensor::empty_typed(&gpu, &[total.max(1)], dtype)?;
        let mut at = 0u64;
        for t in parts {
            gpu.copy(&t.buf, 0, &all.buf, at, t.bytes());
            at += t.bytes();
        }
        let bytes = gpu.read(&all.buf, 0, at)?;
        let mut out = Vec::with_capacity(parts.len());
        let mut off = 0usize;
        for t in parts {
            let n = t.bytes() as usize;
            out.push(bytes[off..off + n].to_vec());
            off += n;
        }
        Ok(out)
    }

    /// The device this tensor lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// The last dimension (1 for a scalar).
    pub fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
    /// The product of all but the last dimension (1 for rank ≤ 1).
    pub fn rows(&self) -> usize {
        if self.shape.is_empty() {
            1
        } else {
            numel(&self.shape[..self.shape.len() - 1])
        }
    }
    /// The storage buffer.
    pub fn buffer(&self) -> &GpuBuffer {
        &self.buf
    }
    /// The whole storage as one binding range.
    pub fn range(&self) -> BufRange<'_> {
        BufRange {
            buf: &self.buf,
            offset: 0,
            size: self.bytes(),
        }
    }
    /// A binding range covering rows `start..start+n` of the 2-D view `[rows, cols]`.
    pub fn row_range(&self, start: usize, n: usize) -> BufRange<'_> {
        let rb = self.cols() as u64 * 4;
        BufRange {
            buf: &self.buf,
            offset: start as u64 * rb,
            size: n as u64 * rb,
        }
    }

    /// The same storage with a new shape of equal element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!("{:?} cannot become {shape:?}", self.shape),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    /// A new tensor holding a copy of this one's data.
    pub fn deep_clone(&self) -> Result<Tensor> {
        let out = Tensor::empty_typed(&self.gpu, &self.shape, self.dtype)?;
        self.gpu.copy(&self.buf, 0, &out.buf, 0, self.bytes());
        Ok(out)
    }

    /// Whether two tensors share storage.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }
}
