//! Loaders and writers of item embeddings (npy, safetensors, CSV), ids, interactions and item
//! tables: good files, round trips, and every class of bad input with its precise error.

use semid::data::csv_embeddings::{read_csv_embeddings, IdColumn};
use semid::data::embeddings::{read_ids, write_ids, EmbeddingFormat};
use semid::data::npy::{
    read_npy_f32, read_npy_i64, read_npy_modality, read_npy_u32, write_npy_f16, write_npy_f32,
    write_npy_i64, write_npy_u32,
};
use semid::data::safetensors_io::{read_safetensors, write_safetensors, StoreAs};
use semid::data::{
    load_interactions, load_interactions_for_items, load_item_embeddings, load_item_table,
    EmbeddingInput, Modality,
};
use semid::Error;
use std::path::{Path, PathBuf};

/// A fresh, empty folder for one test.
fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("semid-data-formats-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Asserts a data error on `file`, `row`, `field`, whose message holds `msg`; and that the
/// displayed text names all three.
#[track_caller]
fn assert_data_err<T: std::fmt::Debug>(
    r: semid::Result<T>,
    file: &Path,
    row: usize,
    field: &str,
    msg: &str,
) {
    let e = r.expect_err("expected a data error");
    let text = e.to_string();
    match &e {
        Error::Data {
            file: f,
            row: r,
            field: fl,
            message,
        } => {
            assert_eq!(f, file, "file in {text}");
            assert_eq!(*r, row, "row in {text}");
            assert_eq!(fl, field, "field in {text}");
            assert!(message.contains(msg), "`{msg}` not in {text}");
        }
        other => panic!("not a data error: {other:?}"),
    }
    let fname = file.file_name().unwrap().to_string_lossy();
    assert!(text.contains(&*fname), "{text}");
    assert!(text.contains(&format!("row {row}")), "{text}");
    assert!(text.contains(&format!("`{field}`")), "{text}");
}

/// A `.npy` file built by hand (format 1.0, header padded to 64 bytes), independent of the
/// library's writer.
fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let f = if fortran { "True" } else { "False" };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    out.extend(data);
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("item{i}")).collect()
}

// ---------------------------------------------------------------- npy

#[test]
fn npy_f32_round_trip() {
    let d = tmpdir("npy_rt");
    let p = d.join("e.npy");
    let data: Vec<f32> = (0..37 * 5).map(|i| i as f32 * 0.25 - 3.0).collect();
    write_npy_f32(&p, &[37, 5], &data).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "header aligned to 64");
    let a = read_npy_f32(&p).unwrap();
    assert_eq!(a.shape, vec![37, 5]);
    assert_eq!(a.data, data);
    let m = read_npy_modality(&p, "text").unwrap();
    assert_eq!((m.name.as_str(), m.dim, m.rows()), ("text", 5, 37));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
}

#[test]
fn npy_reads_hand_made_f16_f64_fortran_big_endian() {
    let d = tmpdir("npy_kinds");
    let vals = [1.0f32, -2.5, 0.099975586, 65504.0, -0.0, 3.0];
    let f16: Vec<u8> = vals
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let p = write(&d, "h.npy", npy_bytes("<f2", false, "(2, 3)", &f16));
    let a = read_npy_f32(&p).unwrap();
    assert_eq!(a.shape, vec![2, 3]);
    assert_eq!(a.data, vals.to_vec());

    let f64b: Vec<u8> = vals
        .iter()
        .flat_map(|&v| (v as f64).to_le_bytes())
        .collect();
    let p = write(&d, "d.npy", npy_bytes("<f8", false, "(3, 2)", &f64b));
    assert_eq!(read_npy_f32(&p).unwrap().data, vals.to_vec());

    // Fortran order: columns stored one after the other.
    let colmajor = f32_bytes(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let p = write(&d, "f.npy", npy_bytes("<f4", true, "(2, 3)", &colmajor));
    assert_eq!(
        read_npy_f32(&p).unwrap().data,
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );

    let be: Vec<u8> = [1.5f32, -7.0]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let p = write(&d, "b.npy", npy_bytes(">f4", false, "(1, 2)", &be));
    assert_eq!(read_npy_f32(&p).unwrap().data, vec![1.5, -7.0]);

    // Format 2.0 (4-byte header length) and a 1-D shape.
    let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend((h.len() as u32).to_le_bytes());
    v2.extend(h.as_bytes());
    v2.extend(f32_bytes(&[0.5, 0.25]));
    let p = write(&d, "v2.npy", v2);
    let a = read_npy_f32(&p).unwrap();
    assert_eq!((a.shape, a.data), (vec![2], vec![0.5, 0.25]));
    // ...which is not a matrix.
    assert_data_err(read_npy_modality(&p, "x"), &p, 0, "shape", "2-D");
}

#[test]
fn npy_f16_and_code_writers_round_trip() {
    let d = tmpdir("npy_codes");
    let p = d.join("h.npy");
    let vals = [0.5f32, 1.0 / 3.0, -1000.0, 7.0];
    write_npy_f16(&p, &[2, 2], &vals).unwrap();
    let back = read_npy_f32(&p).unwrap().data;
    for (b, v) in back.iter().zip(vals) {
        assert_eq!(*b, half::f16::from_f32(v).to_f32());
    }
    let codes: Vec<u32> = vec![0, 255, 256, 4_000_000_000, 7, 1];
    let p = d.join("c.npy");
    write_npy_u32(&p, &[3, 2], &codes).unwrap();
    let a = read_npy_u32(&p).unwrap();
    assert_eq!((a.shape, a.data), (vec![3, 2], codes.clone()));
    let p = d.join("l.npy");
    let longs: Vec<i64> = vec![-1, 0, 1 << 40];
    write_npy_i64(&p, &[3], &longs).unwrap();
    assert_eq!(read_npy_i64(&p).unwrap().data, longs);
    // -1 does not fit a u32 code.
    assert_data_err(read_npy_u32(&p), &p, 0, "column 0", "does not fit in u32");
    // Codes are not embeddings.
    assert_data_err(read_npy_f32(&p), &p, 0, "descr", "not a float type");
    // A shape that disagrees with the data is refused and nothing is written.
    assert!(matches!(
        write_npy_f32(&d.join("bad.npy"), &[3, 3], &[1.0]),
        Err(Error::Invalid(_))
    ));
    assert!(!d.join("bad.npy").exists());
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 3);
}

#[test]
fn npy_bad_inputs() {
    let d = tmpdir("npy_bad");
    let empty = write(&d, "empty.npy", b"");
    assert_data_err(read_npy_f32(&empty), &empty, 0, "header", "empty file");

    let junk = write(&d, "junk.npy", b"hello world, not numpy");
    assert_data_err(read_npy_f32(&junk), &junk, 0, "header", "not a .npy file");

    // Data shorter than the header says: 2 full rows of 3 and half a row.
    let full = npy_bytes("<f4", false, "(4, 3)", &f32_bytes(&[0.5; 12]));
    let trunc = write(&d, "trunc.npy", &full[..full.len() - 4 * 4 - 2]);
    assert_data_err(read_npy_f32(&trunc), &trunc, 2, "data", "truncated");
    // Cut inside the header.
    let trunc_h = write(&d, "trunc_h.npy", &full[..40]);
    assert_data_err(read_npy_f32(&trunc_h), &trunc_h, 0, "header", "truncated");
    // Longer than it says.
    let mut long = full.clone();
    long.extend([0u8; 4]);
    let long = write(&d, "long.npy", long);
    assert_data_err(read_npy_f32(&long), &long, 4, "data", "trailing bytes");

    // Wrong dtypes.
    let i4 = write(&d, "i4.npy", npy_bytes("<i4", false, "(2, 2)", &[0u8; 16]));
    assert_data_err(
        read_npy_modality(&i4, "t"),
        &i4,
        0,
        "descr",
        "`<i4` is not a float type",
    );
    let b1 = write(&d, "b1.npy", npy_bytes("|b1", false, "(2, 2)", &[0u8; 4]));
    assert_data_err(
        read_npy_modality(&b1, "t"),
        &b1,
        0,
        "descr",
        "unsupported dtype `|b1`",
    );
    let c8 = write(&d, "c8.npy", npy_bytes("<c8", false, "(1, 1)", &[0u8; 8]));
    assert_data_err(read_npy_f32(&c8), &c8, 0, "descr", "unsupported dtype");

    // NaN and Inf name the row and column.
    let mut v = vec![0.0f32; 12];
    v[7] = f32::NAN;
    let nan = write(
        &d,
        "nan.npy",
        npy_bytes("<f4", false, "(4, 3)", &f32_bytes(&v)),
    );
    assert_data_err(read_npy_modality(&nan, "t"), &nan, 2, "column 1", "NaN");
    let mut h = vec![0u8; 8];
    h[6..8].copy_from_slice(&half::f16::NEG_INFINITY.to_le_bytes());
    let inf = write(&d, "inf.npy", npy_bytes("<f2", false, "(2, 2)", &h));
    assert_data_err(read_npy_modality(&inf, "t"), &inf, 1, "column 1", "-inf");
    let big = write(
        &d,
        "big.npy",
        npy_bytes(
            "<f8",
            false,
            "(1, 2)",
            &[0.0f64, 1e300]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<_>>(),
        ),
    );
    assert_data_err(
        read_npy_f32(&big),
        &big,
        0,
        "column 1",
        "outside the float32 range",
    );

    let zero = write(&d, "zero.npy", npy_bytes("<f4", false, "(3, 0)", &[]));
    assert_data_err(
        read_npy_modality(&zero, "t"),
        &zero,
        0,
        "shape",
        "width is 0",
    );
    let bad_shape = write(&d, "shape.npy", npy_bytes("<f4", false, "(a, 2)", &[]));
    assert_data_err(
        read_npy_f32(&bad_shape),
        &bad_shape,
        0,
        "shape",
        "not a tuple",
    );
}

// ---------------------------------------------------------------- safetensors

fn modality(name: &str, rows: usize, dim: usize, seed: f32) -> Modality {
    Modality {
        name: name.into(),
        dim,
        data: (0..rows * dim)
            .map(|i| (i as f32 * 0.37 + seed).sin())
            .collect(),
    }
}

#[test]
fn safetensors_round_trip_f32_and_f16() {
    let d = tmpdir("st_rt");
    let p = d.join("emb.safetensors");
    // Names out of alphabetical order: the written order must come back.
    let mods = vec![
        modality("text", 11, 7, 0.0),
        modality("audio", 11, 3, 1.0),
        modality("image", 11, 5, 2.0),
    ];
    write_safetensors(&p, &mods, StoreAs::F32).unwrap();
    assert_eq!(read_safetensors(&p, None).unwrap(), mods);
    let only = read_safetensors(&p, Some(&["image".to_string()])).unwrap();
    assert_eq!(only, vec![mods[2].clone()]);
    assert_data_err(
        read_safetensors(&p, Some(&["kg".to_string()])),
        &p,
        0,
        "kg",
        "no tensor `kg`",
    );

    write_safetensors(&p, &mods, StoreAs::F16).unwrap();
    let back = read_safetensors(&p, None).unwrap();
    for (b, m) in back.iter().zip(&mods) {
        assert_eq!((&b.name, b.dim), (&m.name, m.dim));
        for (x, y) in b.data.iter().zip(&m.data) {
            assert_eq!(*x, half::f16::from_f32(*y).to_f32());
        }
    }
    assert_eq!(
        std::fs::read_dir(&d).unwrap().count(),
        1,
        "no temporary file left"
    );

    // Without the order metadata, tensors come in file order.
    let t = modality("b", 2, 2, 0.0);
    let bytes = safetensors::serialize(
        [(
            "b",
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![2, 2],
                &f32_bytes(&t.data),
            )
            .unwrap(),
        )],
        None,
    )
    .unwrap();
    let p2 = write(&d, "plain.safetensors", bytes);
    assert_eq!(read_safetensors(&p2, None).unwrap(), vec![t]);
}

#[test]
fn safetensors_bad_inputs() {
    let d = tmpdir("st_bad");
    let p = d.join("ok.safetensors");
    write_safetensors(&p, &[modality("text", 4, 3, 0.0)], StoreAs::F32).unwrap();
    let good = std::fs::read(&p).unwrap();

    let empty = write(&d, "empty.safetensors", b"");
    assert_data_err(
        read_safetensors(&empty, None),
        &empty,
        0,
        "header",
        "empty file",
    );
    let trunc = write(&d, "trunc.safetensors", &good[..good.len() - 5]);
    assert_data_err(
        read_safetensors(&trunc, None),
        &trunc,
        0,
        "data",
        "truncated",
    );
    let trunc_h = write(&d, "trunc_h.safetensors", &good[..20]);
    assert_data_err(
        read_safetensors(&trunc_h, None),
        &trunc_h,
        0,
        "header",
        "truncated",
    );

    let mk = |dtype, shape: Vec<usize>, data: Vec<u8>| {
        let v = safetensors::tensor::TensorView::new(dtype, shape, &data).unwrap();
        safetensors::serialize([("text", v)], None).unwrap()
    };
    let i32f = write(
        &d,
        "i32.safetensors",
        mk(safetensors::Dtype::I32, vec![2, 2], vec![0; 16]),
    );
    assert_data_err(
        read_safetensors(&i32f, None),
        &i32f,
        0,
        "text",
        "I32 is not a float type",
    );
    let one_d = write(
        &d,
        "1d.safetensors",
        mk(safetensors::Dtype::F32, vec![4], vec![0; 16]),
    );
    assert_data_err(read_safetensors(&one_d, None), &one_d, 0, "text", "2-D");
    let mut v = vec![0.5f32; 6];
    v[5] = f32::INFINITY;
    let inf = write(
        &d,
        "inf.safetensors",
        mk(safetensors::Dtype::F32, vec![3, 2], f32_bytes(&v)),
    );
    assert_data_err(
        read_safetensors(&inf, None),
        &inf,
        2,
        "text column 1",
        "inf",
    );
}

// ---------------------------------------------------------------- CSV embeddings

#[test]
fn csv_embedding_layouts() {
    let d = tmpdir("csv_ok");
    let with_header = write(&d, "a.csv", "item_id,x,y\n\"b, c\",1,2\nz,3,4.5\n\n");
    let e = read_csv_embeddings(&with_header, "text", IdColumn::Auto).unwrap();
    assert_eq!(e.ids, Some(vec!["b, c".to_string(), "z".into()]));
    assert_eq!(e.modality.data, vec![1.0, 2.0, 3.0, 4.5]);
    assert_eq!((e.modality.dim, e.lines.clone()), (2, vec![2, 3]));

    let no_id_header = write(&d, "b.csv", "e0,e1,e2\n1,2,3\n");
    let e = read_csv_embeddings(&no_id_header, "t", IdColumn::Auto).unwrap();
    assert_eq!((e.ids, e.modality.dim), (None, 3));

    let bare = write(&d, "c.tsv", "1\t2\n3\t4\n");
    let e = read_csv_embeddings(&bare, "t", IdColumn::Auto).unwrap();
    assert_eq!((e.ids.clone(), e.modality.data.len()), (None, 4));
    let e = read_csv_embeddings(&bare, "t", IdColumn::Yes).unwrap();
    assert_eq!(e.ids, Some(vec!["1".to_string(), "3".into()]));

    let ids_no_header = write(&d, "d.csv", "a,0.5\nb,-1e-3\n");
    let e = read_csv_embeddings(&ids_no_header, "t", IdColumn::Auto).unwrap();
    assert_eq!(e.ids, Some(vec!["a".to_string(), "b".into()]));
}

#[test]
fn csv_embedding_bad_inputs() {
    let d = tmpdir("csv_bad");
    let empty = write(&d, "empty.csv", "\n\n");
    assert_data_err(
        read_csv_embeddings(&empty, "t", IdColumn::Auto),
        &empty,
        1,
        "text",
        "empty file",
    );
    let header_only = write(&d, "h.csv", "id,x,y\n");
    assert_data_err(
        read_csv_embeddings(&header_only, "t", IdColumn::Auto),
        &header_only,
        1,
        "text",
        "no embedding rows",
    );
    let short = write(&d, "short.csv", "id,x,y\na,1,2\nb,3\n");
    assert_data_err(
        read_csv_embeddings(&short, "t", IdColumn::Auto),
        &short,
        3,
        "y",
        "expected 2 values, found 1",
    );
    let long = write(&d, "long.csv", "1,2\n3,4,5\n");
    assert_data_err(
        read_csv_embeddings(&long, "t", IdColumn::No),
        &long,
        2,
        "column 2",
        "expected 2 values, found 3",
    );
    let nan = write(&d, "nan.csv", "id,x,y\na,1,2\n\nb,NaN,2\n");
    assert_data_err(
        read_csv_embeddings(&nan, "t", IdColumn::Auto),
        &nan,
        4,
        "x",
        "NaN",
    );
    let inf = write(&d, "inf.csv", "1,2\n3,inf\n");
    assert_data_err(
        read_csv_embeddings(&inf, "t", IdColumn::No),
        &inf,
        2,
        "column 1",
        "inf",
    );
    let text = write(&d, "text.csv", "1,2\n3,abc\n");
    assert_data_err(
        read_csv_embeddings(&text, "t", IdColumn::No),
        &text,
        2,
        "column 1",
        "`abc` is not a number",
    );
    let quote = write(&d, "quote.csv", "a,1\n\"b,2\n");
    assert_data_err(
        read_csv_embeddings(&quote, "t", IdColumn::Auto),
        &quote,
        2,
        "text",
        "unterminated quote",
    );
}

// ---------------------------------------------------------------- the front door

#[test]
fn load_item_embeddings_from_mixed_files() {
    let d = tmpdir("front_ok");
    let text = modality("text", 6, 4, 0.0);
    let image = modality("image", 6, 2, 1.0);
    let audio = modality("audio", 6, 3, 2.0);
    write_npy_f32(&d.join("text_emb.npy"), &[6, 4], &text.data).unwrap();
    write_safetensors(
        &d.join("more.safetensors"),
        &[image.clone(), audio.clone()],
        StoreAs::F32,
    )
    .unwrap();
    write_ids(&d.join("ids.txt"), &ids(6)).unwrap();
    let inputs: Vec<EmbeddingInput> = [
        "text=".to_string() + d.join("text_emb.npy").to_str().unwrap(),
        d.join("more.safetensors").to_string_lossy().into_owned(),
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let e = load_item_embeddings(&inputs, Some(&d.join("ids.txt"))).unwrap();
    assert_eq!(e.ids, ids(6));
    assert_eq!(e.modalities, vec![text.clone(), image, audio]);

    // Ids from a CSV's id column, with an unnamed npy named after its stem.
    let mut csv = String::from("id,a,b\n");
    for (i, id) in ids(6).iter().enumerate() {
        csv += &format!("{id},{},{}\n", i, i * 2);
    }
    write(&d, "kg.csv", csv);
    let e = load_item_embeddings(
        &[
            EmbeddingInput::new(d.join("kg.csv")),
            EmbeddingInput::new(d.join("text_emb.npy")),
        ],
        None,
    )
    .unwrap();
    assert_eq!(e.ids, ids(6));
    assert_eq!(e.modality("kg").unwrap().row(3), &[3.0, 6.0]);
    assert_eq!(e.modality("text_emb").unwrap().data, text.data);
    // The ids file and the CSV agree.
    load_item_embeddings(
        &[EmbeddingInput::new(d.join("kg.csv"))],
        Some(&d.join("ids.txt")),
    )
    .unwrap();

    assert_eq!(
        EmbeddingFormat::from_path(Path::new("x.ST")).unwrap(),
        EmbeddingFormat::Safetensors
    );
    assert!(EmbeddingFormat::from_path(Path::new("x.parquet")).is_err());
    assert!("=x.npy".parse::<EmbeddingInput>().is_err());
}

#[test]
fn load_item_embeddings_rejects_inconsistent_inputs() {
    let d = tmpdir("front_bad");
    write_npy_f32(&d.join("text.npy"), &[5, 2], &[0.5; 10]).unwrap();
    write_npy_f32(&d.join("image.npy"), &[4, 3], &[0.5; 12]).unwrap();
    write_ids(&d.join("ids.txt"), &ids(5)).unwrap();
    let ids_p = d.join("ids.txt");
    let text = EmbeddingInput::new(d.join("text.npy"));
    let image = EmbeddingInput::new(d.join("image.npy"));

    // Two modalities with different row counts.
    assert_data_err(
        load_item_embeddings(&[text.clone(), image.clone()], Some(&ids_p)),
        &d.join("image.npy"),
        4,
        "image",
        "has 4 rows but `text`",
    );
    // Ids and rows disagree.
    let six = write(&d, "six.txt", ids(6).join("\n"));
    assert_data_err(
        load_item_embeddings(std::slice::from_ref(&text), Some(&six)),
        &six,
        6,
        "id",
        "6 ids but the embeddings",
    );
    // Duplicate, blank and missing ids.
    let dup = write(&d, "dup.txt", "a\nb\nc\nb\ne\n");
    assert_data_err(
        read_ids(&dup),
        &dup,
        4,
        "id",
        "duplicate id `b` (first on row 2)",
    );
    assert_data_err(
        load_item_embeddings(std::slice::from_ref(&text), Some(&dup)),
        &dup,
        4,
        "id",
        "duplicate",
    );
    let blank = write(&d, "blank.txt", "a\n\nc\n\n\n");
    assert_data_err(read_ids(&blank), &blank, 2, "id", "blank line");
    let empty = write(&d, "empty.txt", "");
    assert_data_err(read_ids(&empty), &empty, 1, "id", "empty file");
    assert!(
        matches!(load_item_embeddings(std::slice::from_ref(&text), None), Err(Error::Invalid(m)) if m.contains("no item ids"))
    );
    // A CSV whose id column repeats an id, or disagrees with the ids file.
    let csv_dup = write(&d, "c.csv", "id,x\na,1\nb,2\na,3\nd,4\ne,5\n");
    assert_data_err(
        load_item_embeddings(&[EmbeddingInput::new(&csv_dup)], None),
        &csv_dup,
        4,
        "id",
        "duplicate id `a`",
    );
    let csv_other = write(
        &d,
        "o.csv",
        "id,x\nitem0,1\nitem1,2\nzzz,3\nitem3,4\nitem4,5\n",
    );
    assert_data_err(
        load_item_embeddings(&[EmbeddingInput::new(&csv_other)], Some(&ids_p)),
        &csv_other,
        4,
        "id",
        "`zzz` differs from `item2`",
    );
    // The same modality twice.
    assert!(
        matches!(load_item_embeddings(&[text.clone(), text.clone()], Some(&ids_p)), Err(Error::Invalid(m)) if m.contains("given twice"))
    );
    // A bad file among good ones fails the whole load.
    let nan = d.join("nan.npy");
    write_npy_f32(
        &nan,
        &[5, 2],
        &[0.0, 1.0, 2.0, 3.0, 4.0, f32::NAN, 0.0, 0.0, 0.0, 0.0],
    )
    .unwrap();
    assert_data_err(
        load_item_embeddings(&[text, EmbeddingInput::new(&nan)], Some(&ids_p)),
        &nan,
        2,
        "column 1",
        "NaN",
    );
    let none = write(&d, "none.npy", npy_bytes("<f4", false, "(0, 3)", &[]));
    assert_data_err(
        load_item_embeddings(&[EmbeddingInput::new(&none)], Some(&ids_p)),
        &none,
        0,
        "none",
        "no rows",
    );
}

// ---------------------------------------------------------------- interactions

#[test]
fn interactions_csv_tsv_and_headerless() {
    let d = tmpdir("inter_ok");
    let csv = write(&d, "log.csv", "UserId,Item_ID,Rating,Timestamp,extra\nu1,a,5,100,x\nu2,b,3.5,90,y\nu1,\"c, d\",1,1.2e2,z\n");
    let it = load_interactions(&csv).unwrap();
    assert_eq!(it.users, vec!["u1", "u2"]);
    assert_eq!(it.items, vec!["a", "b", "c, d"]);
    assert_eq!(it.rows.len(), 3);
    assert_eq!(
        (
            it.rows[2].user,
            it.rows[2].item,
            it.rows[2].label,
            it.rows[2].timestamp
        ),
        (0, 2, 1.0, 120)
    );

    let tsv = write(&d, "clicks.tsv", "session_id\tproduct_id\n7\t9\n7\t8\n");
    let it = load_interactions(&tsv).unwrap();
    assert_eq!(
        it.rows
            .iter()
            .map(|r| (r.label, r.timestamp))
            .collect::<Vec<_>>(),
        vec![(1.0, 0), (1.0, 1)]
    );

    let udata = write(
        &d,
        "u.data",
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n",
    );
    let it = load_interactions(&udata).unwrap();
    assert_eq!(
        (it.users.clone(), it.rows[1].timestamp),
        (vec!["196".to_string(), "186".into()], 891717742)
    );

    // Checked against embedding ids: item indices are embedding rows.
    let known = vec!["c, d".to_string(), "b".into(), "a".into(), "unused".into()];
    let it = load_interactions_for_items(&csv, &known).unwrap();
    assert_eq!(it.items, known);
    assert_eq!(
        it.rows.iter().map(|r| r.item).collect::<Vec<_>>(),
        vec![2, 1, 0]
    );
}

#[test]
fn recbole_atomic_files() {
    let d = tmpdir("recbole");
    let inter = write(
        &d,
        "ml.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
         1m_1\tToy Story (1995)\t5\t978300760\n\
         1m_1\t\"Great Day in Harlem, A\" (1994)\t3\t978302109.0\n\
         1m_2\tToy Story (1995)\t4\t978298413\n",
    );
    let it = load_interactions(&inter).unwrap();
    assert_eq!(
        it.items,
        vec!["Toy Story (1995)", "\"Great Day in Harlem, A\" (1994)"]
    );
    assert_eq!(it.rows[1].timestamp, 978302109);
    assert_eq!(it.rows[2].label, 4.0);

    let item = write(
        &d,
        "ml.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:float\tgenre:token_seq\n\
         1\tToy Story\t1995\tAnimation Children's Comedy\n\
         2\tGoldenEye\t1995\tAction Adventure Thriller\n\
         3\tFour Rooms\t1995\t\n\
         4\tGet Shorty\t1995\tAction Comedy Drama\n",
    );
    let t = load_item_table(&item).unwrap();
    assert_eq!(t.ids, vec!["1", "2", "3", "4"]);
    assert_eq!(t.fields[0].0, "movie_title");
    assert_eq!(t.fields[0].1[1], "GoldenEye");
    assert_eq!(
        t.fields[2],
        (
            "genre".to_string(),
            vec![
                "Animation Children's Comedy".to_string(),
                "Action Adventure Thriller".into(),
                "".into(),
                "Action Comedy Drama".into()
            ]
        )
    );
    assert_eq!(t.labels, Some(vec![0, 1, 2, 1]));
    assert_eq!(t.label_names, vec!["Animation", "Action", "(none)"]);

    let movies = write(&d, "movies.csv", "movieId,title,genres\n1,\"Toy Story (1995)\",Adventure|Animation\n2,Jumanji (1995),Adventure|Children\n");
    let t = load_item_table(&movies).unwrap();
    assert_eq!(
        (t.fields[0].1[0].as_str(), t.labels.unwrap()),
        ("Toy Story (1995)", vec![0, 0])
    );
}

#[test]
fn interactions_bad_inputs() {
    let d = tmpdir("inter_bad");
    let empty = write(&d, "empty.csv", "");
    assert_data_err(load_interactions(&empty), &empty, 1, "text", "empty file");
    let header_only = write(&d, "h.inter", "user_id:token\titem_id:token\n");
    assert_data_err(
        load_interactions(&header_only),
        &header_only,
        1,
        "text",
        "no interactions",
    );
    let no_item = write(&d, "noitem.csv", "user,rating\n1,2\n");
    assert_data_err(
        load_interactions(&no_item),
        &no_item,
        1,
        "header",
        "no item column",
    );
    let nan = write(
        &d,
        "nan.inter",
        "user_id:token\titem_id:token\trating:float\n1\ta\t4\n2\tb\tnan\n",
    );
    assert_data_err(
        load_interactions(&nan),
        &nan,
        3,
        "rating",
        "not a finite number",
    );
    let inf_t = write(&d, "inf.csv", "user,item,timestamp\n1,a,inf\n");
    assert_data_err(
        load_interactions(&inf_t),
        &inf_t,
        2,
        "timestamp",
        "not a finite number",
    );
    let bad_t = write(&d, "date.csv", "user,item,time\n1,a,2020-01-01\n");
    assert_data_err(load_interactions(&bad_t), &bad_t, 2, "time", "`2020-01-01`");
    let short = write(
        &d,
        "short.inter",
        "user_id:token\titem_id:token\trating:float\n1\ta\t4\n2\tb\n",
    );
    assert_data_err(
        load_interactions(&short),
        &short,
        3,
        "rating",
        "expected 3 tab-separated fields, found 2",
    );
    let long = write(&d, "long.csv", "1,2,3\n4,5,6,7\n");
    assert_data_err(
        load_interactions(&long),
        &long,
        2,
        "column 2",
        "expected 3 comma-separated fields, found 4",
    );
    let empty_id = write(&d, "eid.csv", "user,item\n1,a\n,b\n");
    assert_data_err(
        load_interactions(&empty_id),
        &empty_id,
        3,
        "user",
        "empty id",
    );
    let five = write(&d, "five.csv", "1,2,3,4,5\n");
    assert_data_err(
        load_interactions(&five),
        &five,
        1,
        "header",
        "no recognised header",
    );

    // Unknown item against the embedding ids; nothing is returned.
    let ok = write(&d, "ok.csv", "user,item\nu,a\nu,b\nv,zz\n");
    let known = vec!["a".to_string(), "b".into()];
    assert_data_err(
        load_interactions_for_items(&ok, &known),
        &ok,
        4,
        "item",
        "unknown item `zz`",
    );
    let dup_known = vec!["a".to_string(), "a".into()];
    assert!(matches!(
        load_interactions_for_items(&ok, &dup_known),
        Err(Error::Invalid(_))
    ));

    let dup_item = write(
        &d,
        "dup.item",
        "item_id:token\ttitle:token_seq\n1\tA\n2\tB\n1\tC\n",
    );
    assert_data_err(
        load_item_table(&dup_item),
        &dup_item,
        4,
        "item_id",
        "duplicate id `1` (first on row 2)",
    );
    let short_item = write(
        &d,
        "short.item",
        "item_id:token\ttitle:token_seq\tgenre:token_seq\n1\tA\tx\n2\tB\n",
    );
    assert_data_err(
        load_item_table(&short_item),
        &short_item,
        3,
        "genre",
        "expected 3 tab-separated fields, found 2",
    );
    let bad_utf8 = write(&d, "bad.csv", b"user,item\n1,a\n2,\xff\n");
    assert_data_err(load_interactions(&bad_utf8), &bad_utf8, 3, "text", "UTF-8");
}

#[test]
fn failed_writes_leave_the_old_file() {
    let d = tmpdir("atomic");
    let p = write(&d, "out.npy", b"old");
    let r = semid::data::fileio::write_atomic(&p, |w| {
        use std::io::Write;
        w.write_all(b"half")?;
        Err(std::io::Error::other("disk full"))
    });
    assert!(matches!(r, Err(Error::Io { path, .. }) if path == p));
    assert_eq!(std::fs::read(&p).unwrap(), b"old");
    assert_eq!(
        std::fs::read_dir(&d).unwrap().count(),
        1,
        "temporary file removed"
    );
    // A missing folder is created.
    let nested = d.join("no/such/dir/x.npy");
    write_npy_f32(&nested, &[1], &[1.0]).unwrap();
    assert_eq!(
        semid::data::npy::read_npy_f32(&nested).unwrap().data,
        vec![1.0]
    );
    // A folder that cannot be created is an I/O error naming the target.
    let blocked = p.join("x.npy"); // `out.npy` is a file, not a folder
    assert!(
        matches!(write_npy_f32(&blocked, &[1], &[1.0]), Err(Error::Io { path, .. }) if path == blocked)
    );
}
