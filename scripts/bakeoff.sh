#!/usr/bin/env bash
# Equal-time bake-off of the GAN recipes on Twemoji 64 px (docs/models.md):
#
#     bash scripts/bakeoff.sh                     # MINUTES=20 CPU-minutes each by default
#     MINUTES=8 bash scripts/bakeoff.sh           # a quick look
#     CANDIDATES="cdcgan fastgan" JUDGE=0 bash scripts/bakeoff.sh   # train some, measure later
#
# 1. fetches Twemoji 64x64 (npm emoji-datasource-twitter@16.0.0, CC-BY-4.0) into data/;
# 2. trains class-conditional candidates for the same CPU time (MINUTES of --cpu-minutes, one
#    thread each, so a busy machine slows a run down but does not shortchange it), PARALLEL
#    at a time, on the same machine: today's StyleGAN2-ADA recipe, cDCGAN, FastGAN, projected
#    FastGAN, projected StyleGAN2, Progressive GAN and a BigGAN-style generator;
# 3. measures them side by side with bench/bench_judge.py (FD/KID on EfficientNet-Lite0,
#    FD and class accuracy under the independent judge, near-blank samples) into
#    $RUNS/numbers.json, and draws the labelled picture $RUNS/bakeoff.jpg.
# Resumable: run it again after an interruption and every run carries on from its last
# snapshot (a finished run only reloads and stops); the measurement is redone at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MINUTES=${MINUTES:-20}
PARALLEL=${PARALLEL:-5}
NUM=${NUM:-1000}
DATA=${DATA:-data/twemoji64}
RUNS=${RUNS:-runs/bakeoff-${MINUTES}min}

declare -A ARGS=(
    [stylegan2-ada]="--recipe stylegan2-ada --batch 16 --base-channels 32"
    [cdcgan]="--recipe cdcgan --batch 32 --base-channels 48 --diffaugment color,translation"
    [fastgan]="--recipe fastgan --batch 16 --base-channels 24"
    [projected-fastgan]="--recipe projected --batch 16 --base-channels 24 --option projected_size=96"
    [projected-stylegan2]="--recipe projected-stylegan2 --batch 16 --base-channels 32 --option projected_size=96"
    [progan]="--recipe progan --batch 16 --base-channels 32"
    [biggan]="--recipe biggan --batch 16 --base-channels 32 --diffaugment color,translation"
)
read -r -a ORDER <<<"${CANDIDATES:-stylegan2-ada cdcgan fastgan projected-fastgan projected-stylegan2 progan biggan}"

train() {  # train NAME
    local name=$1
    # shellcheck disable=SC2086  # ARGS entries are word lists
    OMP_NUM_THREADS=1 $PY -m gan_models train --data "$DATA" --kimg 1000 --cpu-minutes "$MINUTES" \
        --seed 1 --snap-every 200 --log-every 50 --keep 2 --resume ${ARGS[$name]} \
        --out "$RUNS/$name" >>"$RUNS/$name.log" 2>&1 \
        || { echo "training $name failed: see $RUNS/$name.log" >&2; return 1; }
}

$PY scripts/fetch_twemoji.py "$DATA"
mkdir -p "$RUNS"
running=0
pids=()
for name in "${ORDER[@]}"; do
    train "$name" & pids+=($!)
    running=$((running + 1))
    if [ "$running" -ge "$PARALLEL" ]; then
        for pid in "${pids[@]}"; do wait "$pid"; done  # set -e: a failure stops the script
        pids=()
        running=0
    fi
done
for pid in "${pids[@]}"; do wait "$pid"; done

if [ "${JUDGE:-1}" = 0 ]; then echo "trained: ${ORDER[*]} (JUDGE=0: no measurement)"; exit 0; fi
models=()
for name in "${ORDER[@]}"; do models+=("$name=$RUNS/$name/model.safetensors"); done
OMP_NUM_THREADS=2 $PY bench/bench_judge.py "${models[@]}" --data "$DATA" --num "$NUM" \
    --sheet "$RUNS/bakeoff.jpg" --out "$RUNS/numbers.json" >/dev/null
echo "bake-off: $RUNS/numbers.json, $RUNS/bakeoff.jpg"
