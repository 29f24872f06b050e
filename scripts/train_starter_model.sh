#!/usr/bin/env bash
# Reproduce the shipped starter model, gan_studio_twemoji_stylegan2.safetensors, and the DCGAN
# it is compared with (docs/models.md):
#
#     bash scripts/train_starter_model.sh          # or: make starter-model
#
# 1. fetches Twemoji 64x64 (npm emoji-datasource-twitter@16.0.0, CC-BY-4.0) into data/;
# 2. trains a class-conditional StyleGAN2-ADA and a conditional DCGAN side by side, one CPU
#    thread each, for the same training time (MINUTES, default 90; snapshot writing excluded);
# 3. measures both at that point (FD and KID on EfficientNet-Lite0 features, class accuracy
#    with a classifier trained on the real labelled images): runs/starter/*/eval-90min.json;
# 4. trains the StyleGAN2 on (two threads) until SHIP_MINUTES of training and measures it
#    again; draws the three side by side, a row per class (docs/starter_models.jpg); exports
#    the StyleGAN2 generator as float16 into models/gan/.
# Every step is resumable: run it again after an interruption and it carries on (finished
# measurements are kept).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MINUTES=${MINUTES:-90}
SHIP_MINUTES=${SHIP_MINUTES:-120}
DATA=${DATA:-data/twemoji64}
RUNS=${RUNS:-runs/starter}
TARGET=${TARGET:-models/gan/gan_studio_twemoji_stylegan2.safetensors}
CLASSIFIER="$RUNS/twemoji_classifier.safetensors"

train() {  # train RUN MINUTES THREADS RECIPE-ARGS...
    local run=$1 minutes=$2 threads=$3
    shift 3
    OMP_NUM_THREADS=$threads $PY -m gan_models train --data "$DATA" --kimg 1000 \
        --minutes "$minutes" --seed 1 --snap-every 500 --log-every 50 --keep 3 --resume \
        "$@" --out "$RUNS/$run" >>"$RUNS/$run.log" 2>&1 \
        || { echo "training $run failed: see $RUNS/$run.log" >&2; return 1; }
}

measure() {  # measure MODEL_FILE OUT_JSON (kept once written)
    [ -f "$2" ] && return 0
    local train_classifier=()
    [ -f "$CLASSIFIER" ] || train_classifier=(--train-classifier)
    $PY -m gan_models evaluate "$1" --data "$DATA" --num 2000 --classifier "$CLASSIFIER" \
        "${train_classifier[@]}" --out "$2"
}

STYLEGAN2=(--recipe stylegan2-ada --batch 16 --base-channels 32)
DCGAN=(--recipe cdcgan --batch 32 --base-channels 48 --diffaugment color,translation)

$PY scripts/fetch_twemoji.py "$DATA"
mkdir -p "$RUNS"

# The comparison: the same training time for both.
if [ ! -f "$RUNS/stylegan2/model-${MINUTES}min.safetensors" ]; then
    train stylegan2 "$MINUTES" 1 "${STYLEGAN2[@]}" & sg2=$!
    train cdcgan "$MINUTES" 1 "${DCGAN[@]}" & dc=$!
    wait $sg2  # (set -e: a failed run stops the script; run it again to resume)
    wait $dc
    for run in stylegan2 cdcgan; do
        cp "$RUNS/$run/model.safetensors" "$RUNS/$run/model-${MINUTES}min.safetensors"
    done
fi
for run in stylegan2 cdcgan; do
    measure "$RUNS/$run/model-${MINUTES}min.safetensors" "$RUNS/$run/eval-${MINUTES}min.json"
done
# The shipped model trains on.
train stylegan2 "$SHIP_MINUTES" 2 "${STYLEGAN2[@]}"
measure "$RUNS/stylegan2/model.safetensors" "$RUNS/stylegan2/eval-${SHIP_MINUTES}min.json"
$PY scripts/class_sheet.py "$RUNS/stylegan2/model-${MINUTES}min.safetensors" \
    "$RUNS/cdcgan/model-${MINUTES}min.safetensors" "$RUNS/stylegan2/model.safetensors" \
    --out docs/starter_models.jpg
$PY scripts/export_model.py "$RUNS/stylegan2" "$TARGET" --half \
    --data-note "Twemoji 64x64 (npm emoji-datasource-twitter@16.0.0), CC-BY-4.0, Twitter, Inc. and other contributors; 9 Unicode categories as classes" \
    --command "bash scripts/train_starter_model.sh (MINUTES=$MINUTES SHIP_MINUTES=$SHIP_MINUTES)"
# 5. fine-tunes that StyleGAN2 for FINETUNE_MINUTES (default 22, one thread) against a projected
#    discriminator (frozen EfficientNet-Lite0 features; docs/models.md) and exports the result.
FINETUNE_MINUTES=${FINETUNE_MINUTES:-22}
if [ "$FINETUNE_MINUTES" != 0 ]; then
    BASE="$RUNS/stylegan2-${SHIP_MINUTES}min.safetensors"
    [ -f "$BASE" ] || cp "$TARGET" "$BASE"
    OMP_NUM_THREADS=1 $PY -m gan_models train --data "$DATA" --recipe projected-stylegan2 \
        --init "$BASE" --batch 16 --seed 1 --kimg 1000 --minutes "$FINETUNE_MINUTES" \
        --snap-every 200 --log-every 25 --keep 3 --resume --option projected_size=96 \
        --option lr_g=0.0005 --out "$RUNS/projected" >>"$RUNS/projected.log" 2>&1 \
        || { echo "fine-tuning failed: see $RUNS/projected.log" >&2; exit 1; }
    $PY scripts/export_model.py "$RUNS/projected" "$TARGET" --half \
        --data-note "Twemoji 64x64 (npm emoji-datasource-twitter@16.0.0), CC-BY-4.0, Twitter, Inc. and other contributors; 9 Unicode categories as classes" \
        --command "bash scripts/train_starter_model.sh (MINUTES=$MINUTES SHIP_MINUTES=$SHIP_MINUTES FINETUNE_MINUTES=$FINETUNE_MINUTES)"
fi
echo "starter model: $TARGET"
