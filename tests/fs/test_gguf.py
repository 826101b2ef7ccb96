#!/usr/bin/env python3
"""test_gguf.py ZESTFS [ZESTFS_ORIGIN] — a GGUF file read through the mount by
the `gguf` package (the GGUF reader llama.cpp ships, pinned in
tests/interop/requirements.txt).

With tests/interop/.venv's python, gguf.GGUFWriter writes a model file here:
metadata (architecture, name, an int array, a string), F32 and F16 tensors,
a Q8_0 tensor (gguf.quants), a tensor not a multiple of the alignment. It is
ingested into zestfs-origin as org/gguf (with a config.json) and mounted
with --repo. Then gguf.GGUFReader opens snapshots/<commit>/model.gguf (the
symlink into blobs/, read lazily from the origin's Xet data) and every
tensor's name, type, shape and bytes, and every metadata field, must equal
what the same reader gives for the source file; the file's sha256 through
the mount equals the source's. A second reader after a remount with
--offline reads the same from the store, with nothing fetched.
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin, no tests/interop/.venv
with gguf: run tests/interop/setup.sh)."""
import hashlib, json, os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import Origin, ingest, mount, unmount  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
VENV = os.path.join(ROOT, "tests", "interop", ".venv", "bin", "python")

WRITE = r"""
import sys, numpy as np, gguf
from gguf import quants
rng = np.random.default_rng(7)
w = gguf.GGUFWriter(sys.argv[1], "llama")
w.add_name("zestfs-test")
w.add_context_length(2048)
w.add_block_count(2)
w.add_array("zestfs.ints", [1, 2, 3, 5, 8])
w.add_string("zestfs.note", "read through a FUSE mount")
w.add_tensor("token_embd.weight", rng.standard_normal((512, 1024), dtype=np.float32))
for i in range(2):
    w.add_tensor(f"blk.{i}.attn_q.weight", rng.standard_normal((1024, 1024)).astype(np.float16))
    w.add_tensor(f"blk.{i}.attn_norm.weight", rng.standard_normal(1024, dtype=np.float32))
q = quants.quantize(rng.standard_normal((256, 1024), dtype=np.float32), gguf.GGMLQuantizationType.Q8_0)
w.add_tensor("output.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.add_tensor("odd.bias", rng.standard_normal(37, dtype=np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
"""

# What a reader sees: fields and tensors, tensor bytes as sha256.
READ = r"""
import hashlib, json, sys, gguf
r = gguf.GGUFReader(sys.argv[1])
fields = {}
for k, f in r.fields.items():
    fields[k] = [f.types and int(f.types[0]), [bytes(p.tobytes()).hex() for p in f.parts]]
tensors = [{"name": t.name, "type": int(t.tensor_type), "shape": [int(x) for x in t.shape],
            "n_bytes": int(t.n_bytes), "offset": int(t.data_offset),
            "sha256": hashlib.sha256(t.data.tobytes()).hexdigest()} for t in r.tensors]
print(json.dumps({"fields": fields, "tensors": tensors}))
"""


def venv_run(code, *args):
    r = subprocess.run([VENV, "-c", code, *args], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"venv python exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout


def main():
    if not os.path.exists(VENV) or subprocess.run([VENV, "-c", "import gguf"], capture_output=True).returncode:
        print("skip: tests/interop/.venv has no gguf (run tests/interop/setup.sh)")
        return 77
    run = fsutil.start("zestfs-gguf-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    data, store, mnt, src = (os.path.join(tmp, n) for n in ("data", "store", "mnt", "src"))
    os.makedirs(src)
    os.mkdir(mnt)
    origin, proc = None, None
    try:
        path = os.path.join(src, "model.gguf")
        venv_run(WRITE, path)
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump({"model_type": "llama"}, f)
        raw = open(path, "rb").read()
        want = json.loads(venv_run(READ, path))
        print(f"model.gguf: {len(raw)} bytes, {len(want['tensors'])} tensors, {len(want['fields'])} fields")
        check(len(want["tensors"]) == 7 and {t["type"] for t in want["tensors"]} >= {0, 1, 8},
              "the source has F32, F16 and Q8_0 tensors")
        commit = ingest(origin_exe, data, "org/gguf", src)
        origin = Origin(origin_exe, data, tmp)
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--store", store, "--no-p2p", "--no-dht",
                                   "--repo", "org/gguf"], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        snap = os.path.join(mnt, "models--org--gguf", "snapshots", commit, "model.gguf")
        check(os.path.islink(snap), "snapshots/<commit>/model.gguf is a symlink into blobs/")
        origin.reset()
        got = json.loads(venv_run(READ, snap))
        xb = origin.stats()["xorb_bytes_total"]
        check(got["fields"] == want["fields"], "GGUFReader through the mount: every metadata field equal")
        for t, u in zip(want["tensors"], got["tensors"]):
            check(t == u, f"tensor {t['name']}: type {t['type']}, shape {t['shape']}, {t['n_bytes']} bytes equal")
        check(len(got["tensors"]) == len(want["tensors"]), "as many tensors")
        check(xb > 0, f"the bytes came from the origin's Xet data ({xb} xorb bytes)")
        check(fsutil.read_all(snap) == hashlib.sha256(raw).hexdigest(), "the file's sha256 through the mount")
        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = mount(zestfs, mnt, ["--offline", "--store", store, "--no-p2p", "--no-dht"], log)
        if not check(os.path.ismount(mnt), "remounted offline"):
            raise RuntimeError("no mount")
        origin.reset()
        got = json.loads(venv_run(READ, snap))
        check(got == want and origin.stats()["requests"] == 0,
              "offline: GGUFReader reads the same from the store, no request")
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
