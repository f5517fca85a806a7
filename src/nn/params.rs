//! The parameter store: named GPU tensors, seeded initialisation, and safetensors files that
//! PyTorch reads back with `load_state_dict`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::st_write::{serialize_f32, F32Tensor};
use crate::io::{write_atomic, NamedTensor};
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};
use safetensors::tensor::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Marker stored under the `semid` metadata key of a parameter file.
pub const PARAMS_FORMAT: &str = "semid-params/1";

/// How a parameter is initialised. `fan_in` / `fan_out` come from [`ParamStore::init`]
/// (for a Linear weight `[out, in]`: `in` and `out`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Every element `c`.
    Constant(f32),
    /// Uniform in `[lo, hi)`.
    Uniform {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// Normal with mean 0 and this standard deviation (PyTorch's `nn.Embedding` uses 1).
    Normal {
        /// Standard deviation.
        std: f32,
    },
    /// Glorot: `U(±sqrt(6 / (fan_in + fan_out)))`.
    XavierUniform,
    /// Glorot: `N(0, 2 / (fan_in + fan_out))`.
    XavierNormal,
    /// He, for ReLU: `U(±sqrt(6 / fan_in))`.
    KaimingUniform,
    /// He, for ReLU: `N(0, 2 / fan_in)`.
    KaimingNormal,
    /// PyTorch's `nn.Linear` default for weights and biases: `U(±1 / sqrt(fan_in))`.
    TorchLinear,
}

impl Init {
    /// `n` values drawn from `rng`.
    pub fn sample(self, n: usize, fan_in: usize, fan_out: usize, rng: &mut Rng) -> Vec<f32> {
        let fi = fan_in.max(1) as f64;
        let fo = fan_out.max(1) as f64;
        let uni = |rng: &mut Rng, a: f64| -> Vec<f32> {
            (0..n)
                .map(|_| ((2.0 * rng.uniform() - 1.0) * a) as f32)
                .collect()
        };
        let norm = |rng: &mut Rng, s: f64| -> Vec<f32> {
            (0..n).map(|_| (rng.normal() * s) as f32).collect()
        };
        match self {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Constant(c) => vec![c; n],
            Init::Uniform { lo, hi } => rng.uniform_vec(n, lo, hi),
            Init::Normal { std } => norm(rng, std as f64),
            Init::XavierUniform => uni(rng, (6.0 / (fi + fo)).sqrt()),
            Init::XavierNormal => norm(rng, (2.0 / (fi + fo)).sqrt()),
            Init::KaimingUniform => uni(rng, (6.0 / fi).sqrt()),
            Init::KaimingNormal => norm(rng, (2.0 / fi).sqrt()),
            Init::TorchLinear => uni(rng, 1.0 / fi.sqrt()),
        }
    }
}

/// One named parameter.
#[derive(Clone, Debug)]
pub struct Param {
    /// Its name, e.g. `encoder.0.weight`.
    pub name: String,
    /// Its value (optimizers update this storage in place).
    pub value: Tensor,
    /// Whether graphs give it a gradient (false = frozen).
    pub trainable: bool,
}

/// Named parameters on the GPU, in insertion order.
///
/// **Layout.** Tensors are stored exactly as PyTorch stores the same parameters, so files
/// round-trip with `torch.nn.Module.load_state_dict(safetensors.torch.load_file(path))` with
/// no transposes: a Linear weight is `[out, in]` (the graph computes `x·Wᵀ`), a bias `[out]`,
/// an Embedding weight `[num, dim]`, a LayerNorm `weight` / `bias` `[dim]`. Names follow
/// PyTorch's module paths (see [`crate::nn::Mlp`] for the `nn.Sequential` numbering).
///
/// Initialisation is seeded per parameter: the values of `name` depend only on the store's
/// seed and `name`, not on the order parameters are created in.
#[derive(Debug)]
pub struct ParamStore {
    gpu: Gpu,
    seed: u64,
    params: Vec<Param>,
    index: HashMap<String, usize>,
}

/// FNV-1a of a name, to derive per-parameter seeds.
fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl ParamStore {
    /// An empty store on `gpu` whose initialisations derive from `seed`.
    pub fn new(gpu: &Gpu, seed: u64) -> ParamStore {
        ParamStore {
            gpu: gpu.clone(),
            seed,
            params: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The initialisation seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The generator that initialises `name`.
    pub fn rng_for(&self, name: &str) -> Rng {
        Rng::new(self.seed ^ name_hash(name))
    }

    /// Adds a parameter with the given value (an f32 tensor; its storage becomes the
    /// parameter's). An error if the name is taken or empty.
    pub fn add(&mut self, name: &str, value: Tensor) -> Result<()> {
        if name.is_empty() {
            return Err(Error::Invalid("a parameter needs a name".into()));
        }
        if self.index.contains_key(name) {
            return Err(Error::Invalid(format!("parameter `{name}` already exists")));
        }
        if value.dtype() != DType::F32 {
            return Err(Error::Invalid(format!(
                "parameter `{name}` must be f32, not {:?}",
                value.dtype()
            )));
        }
        self.index.insert(name.to_string(), self.params.len());
        self.params.push(Param {
            name: name.to_string(),
            value,
            trainable: true,
        });
        Ok(())
    }

    /// Adds a parameter uploaded from `data`.
    pub fn add_from(&mut self, name: &str, data: &[f32], shape: &[usize]) -> Result<()> {
        let t = Tensor::from_slice(&self.gpu, data, shape)?;
        self.add(name, t)
    }

    /// Adds a parameter of `shape` initialised by `init` from [`ParamStore::rng_for`]`(name)`.
    pub fn init(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
        fan_in: usize,
        fan_out: usize,
    ) -> Result<()> {
        let n = shape.iter().product();
        let data = init.sample(n, fan_in, fan_out, &mut self.rng_for(name));
        self.add_from(name, &data, shape)
    }

    /// The parameter `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.index.get(name).map(|&i| &self.params[i])
    }

    /// The value of the parameter `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.param(name).map(|p| &p.value)
    }

    /// Whether `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Freezes (`false`) or unfreezes a parameter.
    pub fn set_trainable(&mut self, name: &str, trainable: bool) -> Result<()> {
        let i = *self
            .index
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("no parameter `{name}`")))?;
        self.params[i].trainable = trainable;
        Ok(())
    }

    /// Overwrites the values of `name` in place (same element count).
    pub fn set(&mut self, name: &str, data: &[f32]) -> Result<()> {
        let p = self
            .param(name)
            .ok_or_else(|| Error::Invalid(format!("no parameter `{name}`")))?;
        if data.len() != p.value.numel() {
            return Err(Error::shape(
                "ParamStore::set",
                format!(
                    "{} values for `{name}` of shape {:?}",
                    data.len(),
                    p.value.shape()
                ),
            ));
        }
        let src = Tensor::from_slice(&self.gpu, data, p.value.shape())?;
        self.gpu
            .copy(src.buffer(), 0, p.value.buffer(), 0, p.value.bytes());
        Ok(())
    }

    /// Every parameter, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.params.iter()
    }

    /// Parameter names, in insertion order.
    pub fn names(&self) -> Vec<&str> {
        self.params.iter().map(|p| p.name.as_str()).collect()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of scalar values.
    pub fn num_elements(&self) -> usize {
        self.params.iter().map(|p| p.value.numel()).sum()
    }

    /// Reads every parameter back (submits and waits).
    pub fn to_named(&self) -> Result<Vec<NamedTensor>> {
        self.params
            .iter()
            .map(|p| {
                Ok(NamedTensor {
                    name: p.name.clone(),
                    shape: p.value.shape().to_vec(),
                    data: p.value.to_vec()?,
                })
            })
            .collect()
    }

    /// Saves every parameter as an F32 safetensors file (write-then-rename), with metadata
    /// `format = "pt"` (as `safetensors.torch.save_file` writes) and `semid` =
    /// [`PARAMS_FORMAT`]. Values round-trip bit for bit.
    pub fn save(&self, path: &Path) -> Result<()> {
        let named = self.to_named()?;
        let views: Vec<F32Tensor<'_>> = named
            .iter()
            .map(|t| F32Tensor {
                name: &t.name,
                shape: &t.shape,
                data: &t.data,
            })
            .collect();
        let meta = BTreeMap::from([
            ("format".to_string(), "pt".to_string()),
            ("semid".to_string(), PARAMS_FORMAT.to_string()),
        ]);
        let data = serialize_f32(&views, &meta)?;
        write_atomic(path, &data)
    }

    /// Loads every parameter of this store from a safetensors file (as written by
    /// [`ParamStore::save`] or PyTorch's `safetensors.torch.save_file(model.state_dict())`),
    /// into the existing storage. Strict like `load_state_dict`: a parameter missing from the
    /// file, a tensor of another shape, or a tensor the store lacks is an error, and nothing
    /// is changed then. F32, F64, F16 and BF16 tensors are accepted (converted to f32).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let file = read_file(path)?;
        let bad = |m: String| Error::Checkpoint {
            path: path.to_path_buf(),
            message: m,
        };
        for t in &file {
            match self.param(&t.name) {
                None => {
                    return Err(bad(format!(
                        "tensor `{}` matches no parameter of the store",
                        t.name
                    )))
                }
                Some(p) if p.value.shape() != t.shape.as_slice() => {
                    return Err(bad(format!(
                        "tensor `{}` has shape {:?}, the parameter {:?}",
                        t.name,
                        t.shape,
                        p.value.shape()
                    )))
                }
                Some(_) => {}
            }
        }
        for p in &self.params {
            if !file.iter().any(|t| t.name == p.name) {
                return Err(bad(format!("parameter `{}` is missing", p.name)));
            }
        }
        for t in &file {
            self.set(&t.name, &t.data)?;
        }
        Ok(())
    }

    /// A new store holding every tensor of a safetensors file, in file order.
    pub fn from_file(gpu: &Gpu, path: &Path, seed: u64) -> Result<ParamStore> {
        let mut store = ParamStore::new(gpu, seed);
        for t in read_file(path)? {
            store.add_from(&t.name, &t.data, &t.shape)?;
        }
        Ok(store)
    }
}

/// Every tensor of a safetensors file as f32, in file order.
fn read_file(path: &Path) -> Result<Vec<NamedTensor>> {
    let bad = |m: String| Error::Checkpoint {
        path: path.to_path_buf(),
        message: m,
    };
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
    crate::io::checkpoint::read_f32_tensors(path, &st)
}
