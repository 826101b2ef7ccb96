#!/usr/bin/env python3
"""test_transformers.py ZESTFS [ZESTFS_ORIGIN] — transformers on a mount.

Runs tests/interop/transformers_check.py (its docstring says what it checks):
  * with tests/interop/.venv's python (transformers pinned in
    tests/interop/requirements.txt, no torch): AutoConfig, GenerationConfig
    and AutoTokenizer.from_pretrained of a tiny generated Llama repo through
    the mount, online and with HF_HUB_OFFLINE=1, model.safetensors
    byte-exact, fsname zestfs, nothing downloaded;
  * and again with --require-torch and an interpreter that has torch:
    $ZESTFS_TORCH_PYTHON, else tests/interop/.venv-torch's python when it
    exists (`ZESTFS_TORCH=1 bash tests/interop/setup.sh` makes it; PyPI's
    torch does not import without its ~3 GB of CUDA packages, so it is not
    installed by default): AutoModelForCausalLM.from_pretrained gives the
    original parameters and logits bit for bit, loading by mmap.
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin, no transformers)."""
import os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CHECK = os.path.join(ROOT, "tests", "interop", "transformers_check.py")


def has(py, mods):
    try:
        return subprocess.run([py, "-c", "import " + ", ".join(mods)], capture_output=True,
                              timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def main():
    args = [os.path.abspath(a) for a in sys.argv[1:3]]
    runs = []
    venv = os.path.join(ROOT, "tests", "interop", ".venv", "bin", "python")
    if os.path.exists(venv) and has(venv, ["transformers", "tokenizers", "huggingface_hub", "safetensors"]):
        runs.append((venv, []))
    else:
        print("note: tests/interop/.venv has no transformers (run tests/interop/setup.sh)")
    tp = os.environ.get("ZESTFS_TORCH_PYTHON", "")
    vt = os.path.join(ROOT, "tests", "interop", ".venv-torch", "bin", "python")
    if not tp and os.path.exists(vt):
        tp = vt
    if not tp and os.environ.get("CI") == "true" and os.environ.get("ZESTFS_TORCH") != "0":
        print("FAIL CI=true and no Python with torch (tests/interop/setup.sh installs "
              "tests/interop/.venv-torch in CI)")
        return 1
    if tp:
        if not has(tp, ["torch", "transformers"]):
            print(f"FAIL {tp} cannot import torch and transformers")
            return 1
        runs.append((tp, ["--require-torch"]))
    if not runs:
        print("skip: no Python with transformers")
        return 77
    rcs = []
    for py, extra in runs:
        print(f"---- {py} {' '.join(extra)}", flush=True)
        rcs.append(subprocess.run([py, CHECK, *args, *extra], timeout=280).returncode)
    if any(rc not in (0, 77) for rc in rcs):
        return 1
    return 0 if 0 in rcs else 77


if __name__ == "__main__":
    sys.exit(main())
