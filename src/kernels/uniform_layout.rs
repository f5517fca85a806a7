//! Every kernel's `#[repr(C)]` uniform struct against its WGSL twin, as naga lays it out: the
//! same members (padding aside) by name at the same byte offsets, and the same size. A mismatch would shift every later parameter on the GPU without any error.

use crate::gpu::ShaderSource;
use crate::kernels::*;

/// One Rust uniform struct: its shader, the WGSL struct name, its size and its members.
struct Rust {
    shader: ShaderSource,
    name: &'static str,
    size: usize,
    members: &'static [(&'static str, usize)],
}

macro_rules! rust {
    ($module:ident :: $ty:ident) => {
        Rust {
            shader: $module::SHADER,
            name: stringify!($ty),
            size: std::mem::size_of::<$module::$ty>(),
            members: $module::$ty::MEMBERS,
        }
    };
}

fn all() -> Vec<Rust> {
    vec![
        rust!(attention::Params),
        rust!(attention::LnParams),
        rust!(autograd::Params),
        rust!(beam::Params),
        rust!(codebook::Params),
        rust!(elementwise::Params),
        rust!(kmeans::Params),
        rust!(matmul::Params),
        rust!(movement::GatherParams),
        rust!(movement::ScatterParams),
        rust!(movement::TransposeParams),
        rust!(movement::CopyParams),
        rust!(movement::FillParams),
        rust!(norm::Params),
        rust!(optim::Params),
        rust!(reduce::Params),
        rust!(sort::SortParams),
    ]
}

/// The WGSL struct `name` of `src`: (members as (name, offset), span in bytes).
fn wgsl_struct(src: &str, name: &str) -> Option<(Vec<(String, u32)>, u32)> {
    let module = naga::front::wgsl::parse_str(src).ok()?;
    let found = module.types.iter().find_map(|(_, ty)| match &ty.inner {
        naga::TypeInner::Struct { members, span } if ty.name.as_deref() == Some(name) => Some((
            members
                .iter()
                .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
                .collect(),
            *span,
        )),
        _ => None,
    });
    found
}

/// Differences between a Rust struct and its WGSL twin, in words.
fn differences(r: &Rust) -> Vec<String> {
    let Some((wgsl, span)) = wgsl_struct(r.shader.code, r.name) else {
        return vec![format!("{}.wgsl has no struct {}", r.shader.name, r.name)];
    };
    let mut out = Vec::new();
    if span as usize != r.size {
        out.push(format!("size: Rust {} bytes, WGSL {span}", r.size));
    }
    // Padding (names starting with `_`) may be one array on one side and several words on the
    // other; the sizes above cover it. Every real member must sit at the same offset.
    let rust: Vec<(&str, usize)> = r
        .members
        .iter()
        .copied()
        .filter(|m| !m.0.starts_with('_'))
        .collect();
    let wgsl: Vec<(&str, usize)> = wgsl
        .iter()
        .filter(|m| !m.0.starts_with('_'))
        .map(|(n, o)| (n.as_str(), *o as usize))
        .collect();
    if rust != wgsl {
        out.push(format!(
            "members (name, byte offset): Rust {rust:?}, WGSL {wgsl:?}"
        ));
    }
    out
}

#[test]
fn every_uniform_struct_matches_its_wgsl_twin() {
    let mut bad = Vec::new();
    for r in all() {
        for d in differences(&r) {
            bad.push(format!("{}::{}: {d}", r.shader.name, r.name));
        }
    }
    assert!(
        bad.is_empty(),
        "uniform layouts differ:\n{}",
        bad.join("\n")
    );
}

#[test]
fn a_reordered_member_is_caught() {
    // The check itself can fail: swap two members of a copy of the elementwise struct.
    let src = elementwise::SHADER
        .code
        .replacen("    rows: u32,", "    cols_tmp: u32,", 1)
        .replacen("    cols: u32,", "    rows: u32,", 1)
        .replacen("    cols_tmp: u32,", "    cols: u32,", 1);
    let leaked: &'static str = Box::leak(src.into_boxed_str());
    let r = Rust {
        shader: ShaderSource {
            name: "elementwise",
            code: leaked,
        },
        ..rust!(elementwise::Params)
    };
    let d = differences(&r);
    assert!(
        d.iter()
            .any(|m| m.contains("(\"rows\", 4)") && m.contains("(\"cols\", 4)")),
        "{d:?}"
    );
}
