#!/usr/bin/env bash
# Install the pinned Python and JavaScript clients used by the interop tests:
#   tests/interop/.venv          huggingface_hub, hf_xet, safetensors, numpy,
#                                transformers (requirements.txt, exact pins + hashes)
#   tests/interop/node_modules   @huggingface/hub, tsx (package-lock.json)
#   tests/interop/.venv-torch    in CI (CI=true) or with ZESTFS_TORCH=1: the same plus torch and
#                                its CUDA packages (requirements-torch.txt; about
#                                3 GB to download, 5.3 GB installed), for the
#                                from_pretrained checks of transformers_check.py
# Idempotent: each part is skipped when a stamp shows the lock file it was
# installed from has not changed.  Needs python3-venv, node and npm
# (ZESTFS_SETUP_ONLY=python: only the .venv, no node).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- Python -----------------------------------------------------------------
py=${ZESTFS_PYTHON:-}
if [ -z "$py" ]; then
    if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=$(command -v python3); fi
fi
want=$(sha requirements.txt)
stamp=.venv/.zestfs-requirements.sha256
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
   && .venv/bin/python -c 'import hf_xet, huggingface_hub, safetensors, numpy, transformers' 2>/dev/null; then
    echo "setup: .venv up to date"
else
    echo "setup: creating .venv with $py"
    rm -rf .venv
    "$py" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        --require-hashes -r requirements.txt
    echo "$want" > "$stamp"
fi

# ZESTFS_SETUP_ONLY=python (tests/demo.sh): the Python venv alone
[ "${ZESTFS_SETUP_ONLY:-}" = python ] && exit 0

# ---- JavaScript ---------------------------------------------------------------
want=$(sha package-lock.json)
stamp=node_modules/.zestfs-lock.sha256
if [ -d node_modules ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "setup: node_modules up to date"
else
    echo "setup: npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
fi

# ---- torch (CI, or ZESTFS_TORCH=1) ----------------------------------------------------
# PyPI's torch wheel does not import without its CUDA packages (libtorch_cpu.so
# itself needs libcudart and libcupti): about 3 GB to download, 3 min here.
# CI (CI=true) installs it so fs-transformers runs from_pretrained with torch;
# elsewhere it is opt-in (ZESTFS_TORCH=1; ZESTFS_TORCH=0 skips it in CI too).
torch_default=0
[ "${CI:-}" = true ] && torch_default=1
if [ "${ZESTFS_TORCH:-$torch_default}" = 1 ]; then
    want=$(sha requirements-torch.txt)
    stamp=.venv-torch/.zestfs-requirements.sha256
    if [ -x .venv-torch/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
       && .venv-torch/bin/python -c 'import torch, transformers' 2>/dev/null; then
        echo "setup: .venv-torch up to date"
    else
        echo "setup: creating .venv-torch with $py (torch + CUDA packages, about 3 GB)"
        t0=$SECONDS
        rm -rf .venv-torch
        "$py" -m venv .venv-torch
        .venv-torch/bin/python -m pip install --quiet --disable-pip-version-check \
            --require-hashes -r requirements-torch.txt
        echo "$want" > "$stamp"
        echo "setup: .venv-torch installed in $((SECONDS - t0)) s"
    fi
fi

# ---- the real zest (fs-zest), from ../shared/peers/zest when it is there --------------
bash "$here/zest-build.sh" || echo "setup: zest not built (fs-zest will fail or skip, naming why)" >&2
