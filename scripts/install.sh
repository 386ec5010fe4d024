#!/usr/bin/env bash
# One command: a .venv with porting and every framework (MindSpore, PyTorch+timm, TensorFlow/Keras,
# PaddlePaddle+PaddleClas, mindcv, ONNX Runtime, OpenVINO), then the main job on seeded weights, offline.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "error: porting needs Python 3.11 (MindSpore 2.10 wheels); set PYTHON=/path/to/python3.11" >&2; exit 2; }

start=$(date +%s)
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
echo "installing porting and the frameworks into .venv (about 11 GB; a few minutes)..."
# uv resolves the same pins and writes the 11 GB in parallel: about 50 s here against pip's 200 s. It reads PyPI
# (or UV_INDEX_URL), not pip's configuration, so where it cannot install, pip does, as before.
install() {
  { .venv/bin/python -m pip install -q uv && .venv/bin/python -m uv pip install -q --python .venv/bin/python "$@"; } ||
    { echo "(uv could not install; pip instead)"; .venv/bin/python -m pip install -q "$@"; }
}
install -e '.[all]'
# PaddleClas pins numpy==1.24.4 and opencv<=4.6, which break everything else (PORTING_NOTES.md section 1), so it
# is installed without its pins; what `import paddleclas` needs (cv2, faiss, sklearn, prettytable...) comes with
# the [paddle] extra above, at versions that keep numpy 1.26.
install --no-deps 'paddleclas==2.6.0'
# (pip check would flag paddleclas's own pins, deliberately not installed)
echo "installed in $(( $(date +%s) - start ))s; $(du -sh .venv | cut -f1) in .venv"

# The main job, offline: seeded timm Xception -> MindSpore, ONNX and MINDIR, layer by layer.
.venv/bin/porting parity timm:xception --random-init 0 --onnx --mindir
