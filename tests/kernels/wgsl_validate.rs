//! Every shader, as compiled (the prelude composed in front of its file), parses and validates
//! with naga, and every `.wgsl` file but the prelude is registered with a launcher, so no shader
//! can rot unseen.

use std::path::Path;

#[test]
fn every_shader_validates_with_naga() {
    // The sources as the device compiles them: the prelude composed in front of each file.
    let mut n = 0;
    for sh in semid::kernels::all_shaders() {
        assert!(
            sh.code.starts_with(semid::kernels::PRELUDE),
            "{} lacks the prelude",
            sh.name
        );
        let module = naga::front::wgsl::parse_str(sh.code)
            .unwrap_or_else(|e| panic!("{}: {}", sh.name, e.emit_to_string(sh.code)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {:?}", sh.name, e));
        assert!(
            !module.entry_points.is_empty(),
            "{} has no entry point",
            sh.name
        );
        n += 1;
    }
    assert!(n >= 7, "found only {n} shaders");
}

#[test]
fn the_prelude_validates_on_its_own() {
    let src = semid::kernels::PRELUDE;
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("prelude: {}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap();
}

#[test]
fn every_shader_file_has_a_launcher() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let registered: Vec<&str> = semid::kernels::all_shaders()
        .iter()
        .map(|s| s.name)
        .collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        if stem == "prelude" {
            continue; // composed into every shader, not a shader of its own
        }
        assert!(
            registered.contains(&stem.as_str()),
            "{stem}.wgsl has no launcher"
        );
    }
}

#[test]
fn unary_op_numbers_agree_between_rust_and_the_prelude() {
    use semid::kernels::elementwise::Unary;
    // Every `const UNARY_X: u32 = Nu;` line of the prelude, as (name, number).
    let consts: Vec<(String, u32)> = semid::kernels::PRELUDE
        .lines()
        .filter_map(|l| l.strip_prefix("const UNARY_"))
        .map(|rest| {
            let (name, value) = rest
                .split_once(": u32 = ")
                .expect("const UNARY_X: u32 = Nu;");
            let value = value.trim_end_matches(';').trim_end_matches('u');
            (format!("UNARY_{name}"), value.parse().expect("a number"))
        })
        .collect();
    assert_eq!(
        consts.len(),
        Unary::ALL.len(),
        "one constant per op: {consts:?}"
    );
    for op in Unary::ALL {
        let found = consts.iter().find(|(n, _)| n == op.wgsl_name());
        assert_eq!(
            found.map(|&(_, v)| v),
            Some(op.opcode()),
            "{op:?}: Rust says {}, the prelude {found:?}",
            op.opcode()
        );
    }
    let mut numbers: Vec<u32> = consts.iter().map(|&(_, v)| v).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), consts.len(), "two ops share a number");
}
