#!/usr/bin/env bash
# Creates .venv and installs the pinned stack in the only order that works:
# torch (CPU wheel) -> build tools -> mmengine -> mmcv from source -> the rest.
# Idempotent: each step is skipped when what it installs is already present.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
FIND_LINKS=()
[ -d /opt/wheels ] && FIND_LINKS=(--find-links /opt/wheels)

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }
has() { "$VENV/bin/python" - "$@" <<'PYEOF'
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, _, want = spec.partition('==')
    try:
        got = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if want and got.split('+')[0] != want:
        sys.exit(1)
PYEOF
}

has torch==2.13.0 || pip install "${FIND_LINKS[@]}" torch==2.13.0
pip install -q "${FIND_LINKS[@]}" -r requirements/build.txt torch==2.13.0
has mmengine==0.10.7 || pip install "${FIND_LINKS[@]}" mmengine==0.10.7 torch==2.13.0
if ! has mmcv==2.1.0 || ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  echo "[install] building mmcv 2.1.0 with ops from source (about 9 minutes on 2 cores)"
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} FORCE_CUDA=0 \
    pip install "${FIND_LINKS[@]}" --no-build-isolation mmcv==2.1.0 torch==2.13.0
fi
pip install -q "${FIND_LINKS[@]}" torch==2.13.0 mmcv==2.1.0 \
  -r requirements/mminstall.txt -r requirements/runtime.txt \
  -r requirements/eval.txt -r requirements/tests.txt -r requirements/demo.txt
if ! has deepspeed==0.15.4; then
  DS_BUILD_OPS=0 pip install -q "${FIND_LINKS[@]}" --no-build-isolation \
    -r requirements/dist.txt torch==2.13.0
fi
# DeepSpeed's CPU accelerator compiles its shared-memory collective op on
# first use (about 1-2 minutes on 2 cores, cached in ~/.cache/torch_extensions):
# build it here, not inside the first DeepSpeed run
"$VENV/bin/python" - <<'PYEOF'
from deepspeed.accelerator import get_accelerator
builder = get_accelerator().create_op_builder('ShareMemCommBuilder')
if builder is not None and builder.is_compatible():
    builder.load(verbose=False)
PYEOF
pip install -q --no-build-isolation --no-deps -e .
if ! command -v java >/dev/null 2>&1; then
  echo "[install] java not found: METEOR needs it (apt-get install -y default-jre-headless)"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null
  fi
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "[install] chromium not found: the web demo's browser test needs it (apt-get install -y chromium chromium-driver)"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
fi
"$VENV/bin/python" -c "import torch, mmcv, mmcv.ops, mmdet, mmengine, transformers, peft, deepspeed; \
print(f'[install] ok: torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, '\
f'mmengine {mmengine.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, '\
f'deepspeed {deepspeed.__version__}')"
