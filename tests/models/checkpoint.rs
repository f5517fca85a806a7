//! Checkpoints round-trip, survive a crash mid-write, and reject corrupt or foreign files.

use semid::io::atomic::write_atomic_with;
use semid::io::{fingerprint, write_atomic, Checkpoint, CheckpointMeta, NamedTensor};
use std::path::PathBuf;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("semid-ckpt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sample() -> Checkpoint {
    Checkpoint {
        meta: CheckpointMeta {
            method: "psrq".into(),
            config: serde_json::json!({"levels": 3, "k": 4}),
            fingerprint: fingerprint(&[1.0, 2.0], &[1, 2]),
            semid_version: env!("CARGO_PKG_VERSION").into(),
            state: serde_json::json!({"levels_done": 2}),
        },
        tensors: vec![
            NamedTensor {
                name: "codebook.0".into(),
                shape: vec![4, 2],
                data: (0..8).map(|i| i as f32 * 0.5).collect(),
            },
            NamedTensor {
                name: "codebook.1".into(),
                shape: vec![4, 4],
                data: (0..16).map(|i| -(i as f32)).collect(),
            },
        ],
    }
}

#[test]
fn round_trips_exactly() {
    let d = tmpdir("rt");
    let p = d.join("a.safetensors");
    let c = sample();
    c.save(&p).unwrap();
    let back = Checkpoint::load(&p).unwrap();
    assert_eq!(back, c);
    back.check_resumable(&p, "psrq", &c.meta.fingerprint)
        .unwrap();
}

#[test]
fn crash_mid_write_leaves_the_old_file() {
    let d = tmpdir("crash");
    let p = d.join("a.safetensors");
    sample().save(&p).unwrap();
    let before = std::fs::read(&p).unwrap();
    let err = write_atomic_with(&p, |w| {
        use std::io::Write;
        w.write_all(b"partial")?;
        Err(std::io::Error::other("simulated crash"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("simulated crash"));
    assert_eq!(std::fs::read(&p).unwrap(), before, "old checkpoint intact");
    let leftovers: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
}

#[test]
fn truncated_and_foreign_files_are_clear_errors() {
    let d = tmpdir("bad");
    let p = d.join("a.safetensors");
    sample().save(&p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let t = d.join("trunc.safetensors");
    write_atomic(&t, &bytes[..bytes.len() - 10]).unwrap();
    let e = Checkpoint::load(&t).unwrap_err().to_string();
    assert!(
        e.contains("trunc.safetensors") && e.contains("corrupt"),
        "{e}"
    );

    let g = d.join("garbage.safetensors");
    write_atomic(&g, b"hello world, not a checkpoint").unwrap();
    let e = Checkpoint::load(&g).unwrap_err().to_string();
    assert!(
        e.contains("garbage.safetensors") && e.contains("not a readable safetensors"),
        "{e}"
    );

    let c = Checkpoint::load(&p).unwrap();
    let e = c
        .check_resumable(&p, "rq-kmeans", &c.meta.fingerprint)
        .unwrap_err()
        .to_string();
    assert!(e.contains("method `psrq`, not `rq-kmeans`"), "{e}");
    let e = c
        .check_resumable(&p, "psrq", "0000")
        .unwrap_err()
        .to_string();
    assert!(e.contains("other data"), "{e}");
}

#[test]
fn fingerprint_depends_on_values_and_shape() {
    let a = fingerprint(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    assert_eq!(a, fingerprint(&[1.0, 2.0, 3.0, 4.0], &[2, 2]));
    assert_ne!(a, fingerprint(&[1.0, 2.0, 3.0, 4.0], &[1, 4]));
    assert_ne!(a, fingerprint(&[1.0, 2.0, 3.0, 4.5], &[2, 2]));
}
