//! Which settings of a run differ from those a checkpoint was written with, for `--resume`.
//!
//! `--resume` used to accept a changed `--seed` or learning rate and then report the new value
//! for a model partly trained with the old one. Every setting that changes the result must
//! match the checkpoint; the few that only say how long to train or how often to save may
//! differ (the caller names them).

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// The settings (dotted paths under `prefix`) whose values differ between `saved` and `now`,
/// with both values, in path order.
pub fn differences(prefix: &str, saved: &Value, now: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    walk(prefix, saved, now, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, String, String)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => walk(&p, u, v, out),
                    (u, v) => out.push((p, show(u), show(v))),
                }
            }
        }
        _ if a != b => out.push((path.to_string(), fmt(a), fmt(b))),
        _ => {}
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "(not set)".to_string(), fmt)
}

/// A value as the user wrote it: settings are mostly f32, which JSON holds widened to f64
/// (`0.001` becomes `0.0010000000474974513`), so a float that is exactly an f32 is shown as
/// that f32's shortest form.
fn fmt(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() && (x as f32) as f64 == x => format!("{:?}", x as f32),
        _ => v.to_string(),
    }
}

/// Fails with the first setting (other than those whose last path part is in `may_differ`)
/// whose value in the checkpoint `path` (`saved`) differs from this run's (`now`), naming the
/// setting and both values.
pub fn check_same_settings(
    path: &Path,
    prefix: &str,
    saved: &Value,
    now: &Value,
    may_differ: &[&str],
) -> Result<()> {
    let diffs: Vec<_> = differences(prefix, saved, now)
        .into_iter()
        .filter(|(p, _, _)| {
            let last = p.rsplit('.').next().unwrap_or(p);
            !may_differ.contains(&last)
        })
        .collect();
    if diffs.is_empty() {
        return Ok(());
    }
    let list = diffs
        .iter()
        .map(|(p, a, b)| format!("`{p}` is {a} in the checkpoint but {b} now"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!(
            "cannot resume with other settings: {list}. Resume with the settings the run \
             started with, or start over with --overwrite"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_changes_are_named_with_both_values() {
        let a = json!({"lr": 0.001, "kmeans": {"iters": 20, "seed": 1}});
        let b = json!({"lr": 0.01, "kmeans": {"iters": 20, "seed": 2}});
        assert_eq!(
            differences("rqvae", &a, &b),
            vec![
                ("rqvae.kmeans.seed".into(), "1".into(), "2".into()),
                ("rqvae.lr".into(), "0.001".into(), "0.01".into()),
            ]
        );
    }

    #[test]
    fn allowed_settings_may_differ() {
        let a = json!({"epochs": 5, "seed": 1});
        let b = json!({"epochs": 9, "seed": 1});
        check_same_settings(Path::new("c"), "rqvae", &a, &b, &["epochs"]).unwrap();
        let e = check_same_settings(Path::new("c"), "rqvae", &a, &b, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`rqvae.epochs` is 5 in the checkpoint but 9 now"),
            "{e}"
        );
    }
}
