#!/usr/bin/env python3
"""test_hf_clients.py ZESTFS [ZESTFS_ORIGIN] — the real Python clients on a
mount, against zestfs-origin on loopback.

A model written with safetensors (numpy) is ingested and served; zestfs
mounts it (--repo org/tiny); then, with HF_HUB_CACHE = the mountpoint and
HF_ENDPOINT = the origin:
  - huggingface_hub.snapshot_download and hf_hub_download find every file
    present and download nothing (origin xorb egress 0, a few KB of API);
  - the same with HF_HUB_OFFLINE=1 (no request at all);
  - 8 processes fault random 4 KiB pages of the cold, mmap'd model at once:
    every page is right, and the origin sent about one copy;
  - safetensors.safe_open (mmap) and numpy.memmap of each tensor through the
    mount equal the original arrays.
Runs the clients with tests/interop/.venv's python (or $ZESTFS_TEST_PYTHON).
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin, no clients)."""
import json, os, shutil, subprocess, sys, textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import Origin, mount, unmount  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def pick_python():
    for p in (os.path.join(ROOT, "tests", "interop", ".venv", "bin", "python"),
              os.environ.get("ZESTFS_TEST_PYTHON", "")):
        if p and os.path.exists(p):
            r = subprocess.run([p, "-c", "import huggingface_hub, safetensors, numpy"],
                               capture_output=True, timeout=60)
            if r.returncode == 0:
                return p
    return None


def run_py(py, code, env=None, timeout=240):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    e.update(env or {})
    r = subprocess.run([py, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=e,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"client failed ({r.returncode}): {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


GEN = """
import json, os, sys, numpy as np
from safetensors.numpy import save_file
d = sys.argv[1] if len(sys.argv) > 1 else os.environ["SRC"]
rng = np.random.default_rng(42)
t = {"embed.weight": rng.standard_normal((2048, 1024), dtype=np.float32),
     "layer.0.weight": rng.standard_normal((1024, 4096), dtype=np.float32),
     "layer.0.bias": rng.standard_normal((4096,), dtype=np.float32),
     "head.weight": rng.integers(0, 1 << 15, (1024, 1024), dtype=np.int16)}
save_file(t, os.path.join(d, "model.safetensors"))
np.savez(os.path.join(d, "ref.npz"), **t)
json.dump({"model_type": "tiny", "hidden_size": 1024}, open(os.path.join(d, "config.json"), "w"))
json.dump({"version": "1.0"}, open(os.path.join(d, "tokenizer.json"), "w"))
print(json.dumps({"ok": True}))
"""

DOWNLOAD = """
import json, os
from huggingface_hub import snapshot_download, hf_hub_download
p = snapshot_download("org/tiny")
q = hf_hub_download("org/tiny", "config.json")
print(json.dumps({"snap": p, "config": q, "files": sorted(os.listdir(p))}))
"""

FAULTS = """
import json, mmap, os, random, sys
from multiprocessing import Pool
path, ref = os.environ["MODEL"], os.environ["REF"]
def work(k):
    rng = random.Random(k)
    size = os.path.getsize(ref)
    with open(path, "rb") as f, open(ref, "rb") as g:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        bad = 0
        for _ in range(400):
            pg = rng.randrange((size + 4095) // 4096)
            g.seek(pg * 4096)
            if m[pg * 4096:(pg + 1) * 4096] != g.read(4096):
                bad += 1
        m.close()
    return bad
with Pool(8) as p:
    print(json.dumps({"bad": sum(p.map(work, range(8)))}))
"""

TENSORS = """
import json, os, struct, numpy as np
from safetensors import safe_open
path, ref = os.environ["MODEL"], np.load(os.environ["REFNPZ"])
bad = []
with safe_open(path, framework="numpy") as f:
    for k in f.keys():
        if not np.array_equal(f.get_tensor(k), ref[k]):
            bad.append("safe_open " + k)
n = struct.unpack("<Q", open(path, "rb").read(8))[0]
hdr = json.loads(open(path, "rb").read(8 + n)[8:])
dt = {"F32": np.float32, "I16": np.int16}
for k, v in hdr.items():
    if k == "__metadata__":
        continue
    a = np.memmap(path, dtype=dt[v["dtype"]], mode="r", offset=8 + n + v["data_offsets"][0],
                  shape=tuple(v["shape"]))
    if not np.array_equal(a, ref[k]):
        bad.append("memmap " + k)
print(json.dumps({"bad": bad, "n": len(hdr) - ("__metadata__" in hdr)}))
"""


def main():
    py = pick_python()
    if not py:
        print("skip: tests/interop/.venv (huggingface_hub, safetensors, numpy) not installed")
        return 77
    run = fsutil.start("zestfs-hf-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, data, store, mnt, ref = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt", "ref"))
    for d in (src, mnt, ref):
        os.mkdir(d)
    run_py(py, GEN, {"SRC": ref})
    for n in ("model.safetensors", "config.json", "tokenizer.json"):
        shutil.copy(os.path.join(ref, n), os.path.join(src, n))
    r = subprocess.run([origin_exe, "ingest", data, "org/tiny", "-q", src], capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        print("ingest failed:", r.stderr)
        return 1
    commit = r.stdout.strip().split()[-1]
    origin = Origin(origin_exe, data, tmp)
    proc = None
    env = {"HF_ENDPOINT": origin.url, "HF_HUB_CACHE": mnt, "HF_HOME": os.path.join(tmp, "hf-home"),
           "HF_XET_CACHE": os.path.join(tmp, "xet-cache"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    try:
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/tiny", "--store", store], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        snap = os.path.join(mnt, "models--org--tiny", "snapshots", commit)

        origin.reset()
        res = run_py(py, DOWNLOAD, env)
        st = origin.stats()
        check(os.path.realpath(res["snap"]) == os.path.realpath(snap), f"snapshot_download path {res['snap']}")
        check(res["files"] == ["config.json", "model.safetensors", "tokenizer.json"], f"files {res['files']}")
        check(os.path.realpath(res["config"]) == os.path.realpath(os.path.join(snap, "config.json")),
              "hf_hub_download path")
        check(st["xorb_bytes_total"] == 0 and st["bytes_total"] < 64 << 10,
              f"online: the clients downloaded nothing ({st['bytes_total']} bytes, {st['requests']} requests)")
        n0 = origin.stats()["requests"]
        res = run_py(py, DOWNLOAD, dict(env, HF_HUB_OFFLINE="1"))
        check(os.path.realpath(res["snap"]) == os.path.realpath(snap), "HF_HUB_OFFLINE=1: same snapshot")
        check(origin.stats()["requests"] == n0, "HF_HUB_OFFLINE=1: no request")

        origin.reset()
        model = os.path.join(snap, "model.safetensors")
        res = run_py(py, FAULTS, {"MODEL": model, "REF": os.path.join(ref, "model.safetensors")})
        check(res["bad"] == 0, f"8 processes faulting random pages of the cold mmap: {res['bad']} bad pages")
        size = os.path.getsize(os.path.join(ref, "model.safetensors"))
        xb = origin.stats()["xorb_bytes_total"]
        check(xb <= size * 1.1, f"about one copy fetched for 8 faulting processes ({xb} for {size})")

        res = run_py(py, TENSORS, {"MODEL": model, "REFNPZ": os.path.join(ref, "ref.npz")})
        check(res["n"] == 4 and not res["bad"], f"safe_open and numpy.memmap equal the tensors {res['bad']}")
        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = None
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        rc = run.finish(proc, mnt, origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())
