#!/usr/bin/env bash
# Reproduce the shipped starter model, gan_studio_twemoji_stylegan2.safetensors, and the DCGAN
# it is compared with (docs/models.md):
#
#     bash scripts/train_starter_model.sh          # or: make starter-model
#
# 1. fetches Twemoji 64x64 (npm emoji-datasource-twitter@16.0.0, CC-BY-4.0) into data/;
# 2. trains a class-conditional StyleGAN2-ADA and a conditional DCGAN side by side, one CPU
#    thread each, for the same training time (MINUTES, default 90; snapshot writing excluded);
# 3. measures both (FD and KID on EfficientNet-Lite0 features, class accuracy with a
#    classifier trained on the real labelled images) into runs/starter/*/eval.json;
# 4. draws both side by side, a row per class (docs/starter_models.jpg);
# 5. exports the StyleGAN2 generator as float16 into models/gan/.
# Every step is resumable: run it again after an interruption and it carries on.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MINUTES=${MINUTES:-90}
DATA=${DATA:-data/twemoji64}
RUNS=${RUNS:-runs/starter}
TARGET=${TARGET:-models/gan/gan_studio_twemoji_stylegan2.safetensors}

$PY scripts/fetch_twemoji.py "$DATA"
mkdir -p "$RUNS"
COMMON=(--data "$DATA" --kimg 1000 --minutes "$MINUTES" --seed 1 --snap-every 500
        --log-every 50 --keep 3 --resume)
STYLEGAN2=(--recipe stylegan2-ada --batch 16 --base-channels 32)
DCGAN=(--recipe cdcgan --batch 32 --base-channels 48 --diffaugment color,translation)

OMP_NUM_THREADS=1 $PY -m gan_models train "${COMMON[@]}" "${STYLEGAN2[@]}" \
    --out "$RUNS/stylegan2" >>"$RUNS/stylegan2.log" 2>&1 &
sg2=$!
OMP_NUM_THREADS=1 $PY -m gan_models train "${COMMON[@]}" "${DCGAN[@]}" \
    --out "$RUNS/cdcgan" >>"$RUNS/cdcgan.log" 2>&1 &
dc=$!
wait $sg2 || { echo "StyleGAN2 training failed: see $RUNS/stylegan2.log" >&2; exit 1; }
wait $dc || { echo "DCGAN training failed: see $RUNS/cdcgan.log" >&2; exit 1; }

CLASSIFIER="$RUNS/twemoji_classifier.safetensors"
for run in stylegan2 cdcgan; do
    train_classifier=()
    [ -f "$CLASSIFIER" ] || train_classifier=(--train-classifier)
    $PY -m gan_models evaluate "$RUNS/$run/model.safetensors" --data "$DATA" --num 2000 \
        --classifier "$CLASSIFIER" "${train_classifier[@]}" --out "$RUNS/$run/eval.json"
done

$PY scripts/class_sheet.py "$RUNS/stylegan2/model.safetensors" "$RUNS/cdcgan/model.safetensors" \
    --out docs/starter_models.jpg

$PY scripts/export_model.py "$RUNS/stylegan2" "$TARGET" --half \
    --data-note "Twemoji 64x64 (npm emoji-datasource-twitter@16.0.0), CC-BY-4.0, Twitter, Inc. and other contributors; 9 Unicode categories as classes" \
    --command "bash scripts/train_starter_model.sh (MINUTES=$MINUTES)"
echo "starter model: $TARGET"
