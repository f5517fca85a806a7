#!/usr/bin/env bash
# The ranking table of the README on the synthetic set: every tokenizer's codes inside DIN,
# MCCA and its ablations, 3 ranker seeds each, then `semid report` over all runs.
#   scripts/rank-table.sh [OUT] [SEEDS]     (default out/rank-synth, seeds "1 2 3")
# Re-running skips finished runs (each run folder is resumable; a finished one is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/rank-synth}
SEEDS=${2:-"1 2 3"}
S=${SEMID:-target/release/semid}
[ -x "$S" ] || cargo build --release --quiet
mkdir -p "$OUT"
D=$OUT/data
[ -f "$D/interactions.csv" ] || "$S" -q synth --items 600 --users 400 --seed 5 --out "$D"
E="text=$D/text.npy,audio=$D/audio.npy"
tok() { # NAME ARGS...
  local name=$1; shift
  [ -f "$OUT/tok/$name/semid-run.json" ] && grep -q '"complete": *true' "$OUT/tok/$name/semid-run.json" && return
  "$S" -q tokenize --embeddings "$E" --ids "$D/ids.txt" --items "$D/items.csv" --k 16 --seed 0 \
    --out "$OUT/tok/$name" --overwrite "$@"
}
tok rq-kmeans --method rq-kmeans
tok rqvae --method rqvae
tok psrq --method psrq
tok psrq-w0.5 --method psrq --prefix-weight 0.5
printf '[psrq]\nbalance_halves = true\n' > "$OUT/balance.toml"
tok psrq-balance --method psrq --config "$OUT/balance.toml"
tok mmq --method mmq
rank() { # NAME ARGS...
  local name=$1; shift
  for s in $SEEDS; do
    local dir=$OUT/rank/$name/seed$s
    [ -f "$dir/metrics.json" ] && continue
    local mode=()
    [ -d "$dir" ] && mode=(--resume)
    echo "rank $name seed $s" >&2
    "$S" -q rank train --interactions "$D/interactions.csv" --epochs 4 --seed "$s" --out "$dir" "${mode[@]}" "$@" >/dev/null
  done
}
rank din --model din
for t in rq-kmeans rqvae psrq psrq-w0.5 psrq-balance; do
  rank "din-sid-$t" --model din-sid --families joint --codes "$OUT/tok/$t"
done
rank din-sid-mmq --model din-sid --families mmq --codes "$OUT/tok/mmq"
rank mcca-psrq --model mcca --codes "$OUT/tok/psrq"
rank mcca-psrq-wo-msc --model mcca --ablation wo-msc --codes "$OUT/tok/psrq"
rank mcca-psrq-wo-mjc --model mcca --ablation wo-mjc --codes "$OUT/tok/psrq"
ROWS="din din-sid-rq-kmeans din-sid-rqvae din-sid-psrq din-sid-psrq-w0.5 din-sid-psrq-balance din-sid-mmq mcca-psrq mcca-psrq-wo-msc mcca-psrq-wo-mjc"
"$S" report --markdown $(for r in $ROWS; do echo "$OUT"/rank/$r/seed*; done) | tee "$OUT/REPORT.md"
