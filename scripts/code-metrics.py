#!/usr/bin/env python3
"""Code metrics of the fine-tuning table (scripts/finetune-table.sh): per tokenizer run and per
fine-tuned ranker setting, the mean over tokens of utilisation and normalised entropy, the
collision rate of the full code, and (tuned rows) the items whose codes changed; tuned rows are
mean ± std over seeds.   usage: scripts/code-metrics.py OUT"""
import glob, json, os, statistics, sys

out = sys.argv[1]


def summary(m):
    lv = m["per_level"]
    return (
        statistics.mean(l["utilization"] for l in lv),
        statistics.mean(l["entropy_norm"] for l in lv),
        m["collision_rate"],
    )


def show(vals):
    if len(vals) == 1:
        return f"{vals[0]:.3f}"
    return f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f}"


print("| codes | utilisation | entropy / ln k | collision rate | items changed | seeds |")
print("|---|---|---|---|---|---|")
for tok in sorted(glob.glob(f"{out}/tok/*/metrics.json")):
    for m in json.load(open(tok)):
        u, e, c = summary(m)
        name = os.path.basename(os.path.dirname(tok))
        print(f"| {name} `{m['name']}` | {u:.3f} | {e:.3f} | {c:.3f} | – | – |")
for row in sorted(glob.glob(f"{out}/rank/*-ft-*")):
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{row}/seed*/metrics.json"))]
    fts = [r["finetune"] for r in runs if r.get("finetune")]
    if not fts:
        continue
    s = [summary(f["after"]) for f in fts]
    changed = [f["changed_items"] / f["items"] for f in fts]
    cols = [show([x[i] for x in s]) for i in range(3)]
    print(f"| {os.path.basename(row)} (after) | {cols[0]} | {cols[1]} | {cols[2]} | {show(changed)} of items | {len(fts)} |")
