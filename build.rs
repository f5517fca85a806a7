//! Writes the generated WGSL: `$OUT_DIR/codebook.wgsl`, the codebook search's unrolled register
//! tiles, from the same tables (`src/kernels/codebook_gen.rs`) the launcher reads.

#[path = "src/kernels/codebook_gen.rs"]
#[allow(dead_code)]
mod codebook_gen;

fn main() {
    println!("cargo:rerun-if-changed=src/kernels/codebook_gen.rs");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("codebook.wgsl"), codebook_gen::generate())
        .expect("write $OUT_DIR/codebook.wgsl");
}
