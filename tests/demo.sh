#!/usr/bin/env bash
# The main job in one command (README, first command), on Debian 12 as root:
# installs what it needs (build dependencies, fuse3, a Python venv with the
# pinned huggingface_hub + hf_xet + safetensors), builds ./build, makes a local
# example model of a few hundred MB, serves it with zestfs-origin on loopback,
# mounts zestfs over a fresh Hugging Face cache, and loads the model with the
# real huggingface_hub + safetensors, online and then with HF_HUB_OFFLINE=1.
# It prints what a user should notice: the time to the first tensor, the bytes
# fetched against the file's size, a second load served from the store, and
# `zestfs status`; then it unmounts.
#
# Environment: ZESTFS_DEMO_MB (model size, default 300), ZESTFS_BUILD_DIR,
# ZESTFS_DEMO_NO_INSTALL=1 (the test: no apt-get, no venv set-up, no build).
# Every figure is checked too: the script exits non-zero if a tensor differs
# from the file it was made from, or if the offline load fetched a byte.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${ZESTFS_BUILD_DIR:-build}
mb=${ZESTFS_DEMO_MB:-300}

if [ "${ZESTFS_DEMO_NO_INSTALL:-0}" != 1 ]; then
    # shellcheck source=tests/lib-deps.sh
    . tests/lib-deps.sh
    ZESTFS_BUILD_DEPS="$ZESTFS_BUILD_DEPS python3-venv"
    zestfs_install_deps build
    ZESTFS_SETUP_ONLY=python bash tests/interop/setup.sh
    if [ -f "$build/meson-private/coredata.dat" ]; then
        meson setup --reconfigure "$build" >/dev/null
    else
        meson setup "$build" >/dev/null
    fi
    ninja -C "$build" >/dev/null
fi
zestfs=$(readlink -f "$build/fs/zestfs")
origin=$(readlink -f "$build/origin/zestfs-origin")
py=$root/tests/interop/.venv/bin/python
if [ ! -x "$py" ]; then  # only with ZESTFS_DEMO_NO_INSTALL=1
    echo "SKIP: tests/interop/.venv is missing (bash tests/interop/setup.sh)"
    exit 77
fi

work=$(mktemp -d /tmp/zestfs-demo.XXXXXX)
mnt=$work/hf-cache
opid= zpid=
cleanup() {
    if mountpoint -q "$mnt" 2>/dev/null; then fusermount3 -u "$mnt" 2>/dev/null || true; fi
    [ -n "$zpid" ] && kill "$zpid" 2>/dev/null
    [ -n "$opid" ] && kill "$opid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
SECONDS=0

echo "== 1. an example model: demo/llm, one ${mb} MB model.safetensors (fp16 layers), config, tokenizer"
"$py" - "$work/model" "$mb" <<'PY'
import json, os, sys
import numpy as np
from safetensors.numpy import save_file
d, mb = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
rng = np.random.default_rng(0)
hidden, tensors, total, i = 1024, {}, 0, 0
while total < mb * 10**6 - 8 * hidden * hidden * 2:
    for part, rows in (("attn.qkv", 3 * hidden), ("attn.out", hidden), ("mlp.up", 4 * hidden)):
        w = rng.standard_normal((rows, hidden), dtype=np.float32) * 0.02  # like trained weights
        tensors[f"layers.{i}.{part}.weight"] = w.astype(np.float16)
        total += rows * hidden * 2
    i += 1
p = os.path.join(d, "model.safetensors")
save_file(tensors, p, metadata={"format": "pt"})
json.dump({"model_type": "llama", "hidden_size": hidden, "num_hidden_layers": i},
          open(os.path.join(d, "config.json"), "w"))
json.dump({"version": "1.0", "model": {"type": "WordLevel", "vocab": {"<unk>": 0}}},
          open(os.path.join(d, "tokenizer.json"), "w"))
print(f"   {i} layers, {len(tensors)} tensors, {os.path.getsize(p) / 1e6:.0f} MB")
PY

echo "== 2. zestfs-origin: ingest (chunk, compress, hash into xorbs) and serve on loopback"
"$origin" ingest "$work/data" demo/llm -q "$work/model" >/dev/null
"$origin" serve "$work/data" --listen 127.0.0.1:0 --port-file "$work/port" -q &
opid=$!
for _ in $(seq 200); do [ -s "$work/port" ] && break; sleep 0.05; done
url=http://127.0.0.1:$(cat "$work/port")
echo "   the Hub at $url"

echo "== 3. zestfs mounted over a fresh Hugging Face cache: $mnt"
mkdir -p "$mnt"
ZESTFS_DHT_BOOTSTRAP=none "$zestfs" -f --endpoint "$url" --store "$work/store" \
    --listen 127.0.0.1:0 --no-dht -q "$mnt" 2>"$work/zestfs.log" &
zpid=$!
for _ in $(seq 200); do mountpoint -q "$mnt" && break; sleep 0.05; done
mountpoint -q "$mnt" || { cat "$work/zestfs.log"; echo "demo: the mount did not come up" >&2; exit 1; }
echo "   \$ zestfs --endpoint $url $mnt   (nothing downloaded yet)"

echo "== 4. load it with huggingface_hub + safetensors, as any HF program does"
export HF_ENDPOINT=$url HF_HUB_CACHE=$mnt HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_TELEMETRY=1
load() { # load MODE: prints figures, checks every tensor against the source file
    "$py" - "$1" "$work/model/model.safetensors" "$url" <<'PY'
import hashlib, json, os, sys, time, urllib.request
from huggingface_hub import hf_hub_download
from safetensors import safe_open
mode, src, url = sys.argv[1:4]
egress = lambda: json.load(urllib.request.urlopen(url + "/_origin/stats"))["xorb_bytes_total"]
e0, t0 = egress(), time.perf_counter()
path = hf_hub_download("demo/llm", "model.safetensors")
t_path = time.perf_counter() - t0
with open(path, "rb") as f:  # the header: tensors in file order
    n = int.from_bytes(f.read(8), "little")
    hdr = json.loads(f.read(n))
names = sorted((k for k in hdr if k != "__metadata__"), key=lambda k: hdr[k]["data_offsets"][0])
with safe_open(path, "np") as f:  # mmap, like transformers
    first = f.get_tensor(names[0])
    t_first = time.perf_counter() - t0
    e_first = egress() - e0
    got = {n: f.get_tensor(n) for n in names}
t_all = time.perf_counter() - t0
e_all = egress() - e0
size = os.path.getsize(path)
with safe_open(src, "np") as s:
    bad = [n for n in names if got[n].tobytes() != s.get_tensor(n).tobytes()]
if bad:
    sys.exit(f"demo: {len(bad)} tensors differ from the source, e.g. {bad[0]}")
print(f"   hf_hub_download -> {path}")
print(f"   path in {t_path * 1000:.0f} ms; first tensor ({names[0]}, {first.nbytes / 1e6:.1f} MB) "
      f"after {t_first * 1000:.0f} ms, having fetched {e_first / 1e6:.1f} MB of {size / 1e6:.0f} MB")
print(f"   all {len(names)} tensors in {t_all:.2f} s ({size / t_all / 1e6:.0f} MB/s), "
      f"{e_all / 1e6:.1f} MB fetched from the origin (xorbs are compressed), every tensor byte-exact")
if mode == "offline" and e_all:
    sys.exit(f"demo: the offline load fetched {e_all} bytes")
PY
}
load online
echo "== 5. again with HF_HUB_OFFLINE=1: the files are in the cache now, served from the store"
sync; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || true
HF_HUB_OFFLINE=1 load offline
ls -l "$mnt/models--demo--llm/snapshots/"*/ | sed 's/^/   /'

echo "== 6. zestfs status"
"$zestfs" status "$mnt" | sed 's/^/   /'

echo "== 7. unmount"
fusermount3 -u "$mnt"
wait "$zpid" && zpid=
kill "$opid"; wait "$opid" 2>/dev/null || true; opid=
echo "   done in $SECONDS s"; echo
cat <<TXT
To use the real Hub: zestfs ~/.cache/huggingface/hub
(your HF token is found as huggingface_hub finds it; models are fetched as they are read,
 from peers first, verified, and shared with peers; zestfs --help, man zestfs)
TXT
