#!/usr/bin/env bash
# The ranking tables of the README: every tokenizer's codes inside DIN, MCCA and its
# ablations, 3 ranker seeds each, then `semid report` over all runs.
#   scripts/rank-table.sh [SET] [OUT] [SEEDS] [EPOCHS]
#     SET: synth (default), ml-100k or ml-1m; OUT defaults to out/rank-SET; SEEDS to "1 2 3";
#     EPOCHS (early stopping on validation AUC, patience 1) to 4 on synth, 2 on MovieLens.
# Re-running skips finished runs (each run folder is resumable; a finished one is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
SET=${1:-synth}
OUT=${2:-out/rank-$SET}
SEEDS=${3:-"1 2 3"}
S=${SEMID:-target/release/semid}
[ -x "$S" ] || cargo build --release --quiet
mkdir -p "$OUT"
D=$OUT/data
case $SET in
synth)
  EPOCHS=${4:-4}
  [ -f "$D/interactions.csv" ] || "$S" -q synth --items 600 --users 400 --seed 5 --out "$D"
  E="text=$D/text.npy,audio=$D/audio.npy"
  ITEMS=$D/items.csv K=16
  LOG=(--interactions "$D/interactions.csv")
  ;;
ml-100k)
  # MiniLM text of "title (year) genres" and the knowledge-graph modality (actors, directors, …).
  EPOCHS=${4:-2}
  "$S" -q data fetch --what ml-100k,minilm
  [ -f "$D/text.npy" ] || "$S" -q embed --dataset ml-100k --out "$D"
  [ -f "$D/kg.npy" ] || "$S" -q data kg --out "$D"
  E="text=$D/text.npy,kg=$D/kg.npy"
  ITEMS=data/ml-100k/ml-100k.item K=32
  LOG=(--dataset ml-100k)
  ;;
ml-1m)
  # Two real views of one source: MiniLM of "title (year)" and MiniLM of the genre list.
  EPOCHS=${4:-2}
  "$S" -q data fetch --what ml-1m,minilm
  [ -f "$D/title/text.npy" ] || "$S" -q embed --dataset ml-1m --template "{title} ({year})" --out "$D/title"
  [ -f "$D/genre/text.npy" ] || "$S" -q embed --dataset ml-1m --template "{genres}" --out "$D/genre"
  E="title=$D/title/text.npy,genre=$D/genre/text.npy"
  D=$D/title
  ITEMS=data/ml-1m/ml-1m.item K=256
  LOG=(--dataset ml-1m)
  ;;
*) echo "unknown set $SET: synth, ml-100k or ml-1m" >&2; exit 2 ;;
esac
tok() { # NAME ARGS...
  local name=$1; shift
  [ -f "$OUT/tok/$name/semid-run.json" ] && grep -q '"complete": *true' "$OUT/tok/$name/semid-run.json" && return
  echo "tokenize $name" >&2
  "$S" -q tokenize --embeddings "$E" --ids "$D/ids.txt" --items "$ITEMS" --k "$K" --seed 0 \
    --out "$OUT/tok/$name" --overwrite "$@"
}
tok rq-kmeans --method rq-kmeans
tok rqvae --method rqvae
psrq_config() { # NAME WEIGHT BALANCE: the setting spelled out, whatever the default is
  printf '[psrq]\nprefix_weight = %s\nbalance_halves = %s\n' "$2" "$3" > "$OUT/$1.toml"
  tok "$1" --method psrq --config "$OUT/$1.toml"
}
psrq_config psrq 1.0 false
psrq_config psrq-w0.5 0.5 false
psrq_config psrq-balance 1.0 true
tok mmq --method mmq
rank() { # NAME ARGS...
  local name=$1; shift
  for s in $SEEDS; do
    local dir=$OUT/rank/$name/seed$s
    [ -f "$dir/metrics.json" ] && continue
    local mode=()
    [ -d "$dir" ] && mode=(--resume)
    echo "rank $name seed $s" >&2
    "$S" -q rank train "${LOG[@]}" --epochs "$EPOCHS" --seed "$s" --out "$dir" "${mode[@]}" "$@" >/dev/null
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
"$S" report $(for r in $ROWS; do echo "$OUT"/rank/$r/seed*; done) | tee "$OUT/REPORT.md"
