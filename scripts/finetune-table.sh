#!/usr/bin/env bash
# The fine-tuning tables of the README (issue 13): MMQ and RQ-VAE codes frozen vs fine-tuned
# with the ranker (behaviour-aware fine-tuning, a sweep of τ), and MMQ's stage-1 ablations
# (without the orthogonality term, L2 instead of the cosine quantizer, without the auxiliary
# decoders), each inside DIN + SIDs, 3 ranker seeds; then `semid report` over the rankers and
# a table of the code metrics (utilisation, entropy, collisions) before and after tuning.
#   scripts/finetune-table.sh [SET] [OUT] [SEEDS] [EPOCHS] [TAUS]
#     SET: synth (default), ml-100k or ml-1m; OUT defaults to out/ft-SET; SEEDS to "1 2 3";
#     EPOCHS to 4 on synth, 2 on MovieLens; TAUS to "0.05 0.1 0.5 1".
#   Environment: FT_TOKS (default "mmq rqvae") the tokenizers fine-tuned; ABLATIONS=0 skips the
#   MMQ ablation rows (each a stage-1 fit and 3 rankers).
# Every tokenizer run here has dedup = false: a fine-tuned family has no collision suffix
# (src/rank/finetune), so its frozen counterpart has none either. Re-running skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
SET=${1:-synth}
OUT=${2:-out/ft-$SET}
SEEDS=${3:-"1 2 3"}
TAUS=${5:-"0.05 0.1 0.5 1"}
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
  EPOCHS=${4:-2}
  "$S" -q data fetch --what ml-100k,minilm
  [ -f "$D/text.npy" ] || "$S" -q embed --dataset ml-100k --out "$D"
  [ -f "$D/kg.npy" ] || "$S" -q data kg --out "$D"
  E="text=$D/text.npy,kg=$D/kg.npy"
  ITEMS=data/ml-100k/ml-100k.item K=32
  LOG=(--dataset ml-100k)
  ;;
ml-1m)
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
tok() { # NAME CONFIG-LINES ARGS...
  local name=$1 conf=$2; shift 2
  [ -f "$OUT/tok/$name/semid-run.json" ] && grep -q '"complete": *true' "$OUT/tok/$name/semid-run.json" && return
  printf 'dedup = false\n%b' "$conf" > "$OUT/$name.toml"
  echo "tokenize $name" >&2
  "$S" -q tokenize --embeddings "$E" --ids "$D/ids.txt" --items "$ITEMS" --k "$K" --seed 0 \
    --config "$OUT/$name.toml" --out "$OUT/tok/$name" --overwrite "$@"
}
FT_TOKS=${FT_TOKS:-"mmq rqvae"}
tok mmq '' --method mmq
case " $FT_TOKS " in *" rqvae "*) tok rqvae '' --method rqvae ;; esac
ABL=""
if [ "${ABLATIONS:-1}" != 0 ]; then
  ABL="mmq-wo-ortho mmq-l2 mmq-wo-aux"
  tok mmq-wo-ortho '[mmq]\northo_weight = 0.0\n' --method mmq
  tok mmq-l2 '[mmq]\nmetric = "l2"\nspherical = false\n' --method mmq
  tok mmq-wo-aux '[mmq]\naux_weight = 0.0\n' --method mmq
fi
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
ROWS=""
for t in mmq $ABL; do
  rank "din-sid-$t" --model din-sid --families mmq --codes "$OUT/tok/$t"
  ROWS="$ROWS din-sid-$t"
done
case " $FT_TOKS " in *" rqvae "*)
  rank din-sid-rqvae --model din-sid --families joint --codes "$OUT/tok/rqvae"
  ROWS="$ROWS din-sid-rqvae" ;;
esac
FT=(--embeddings "$E" --ids "$D/ids.txt")
for tau in $TAUS; do
  for t in $FT_TOKS; do
    fam=mmq
    [ "$t" = rqvae ] && fam=joint
    rank "din-sid-$t-ft-tau$tau" --model din-sid --families $fam --finetune-tokenizer "$OUT/tok/$t" --finetune-family $fam "${FT[@]}" --tau "$tau"
    ROWS="$ROWS din-sid-$t-ft-tau$tau"
  done
done
{
  "$S" report $(for r in $ROWS; do echo "$OUT"/rank/$r/seed*; done)
  echo
  scripts/code-metrics.py "$OUT"
} | tee "$OUT/REPORT.md"
