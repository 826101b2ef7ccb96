#!/usr/bin/env bash
# origin/demo.sh [BUILD_DIR] — the whole zestfs-origin flow, offline:
# make an example model (a several-MB safetensors file of random tensors,
# config.json, tokenizer.json), ingest it, serve it on loopback, and read it
# back: the Hub API, resolve headers, a Xet reconstruction, and (when
# tests/interop/.venv exists) huggingface_hub's snapshot_download over Xet.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../build}
origin=$(readlink -f "$build/origin/zestfs-origin")
work=$(mktemp -d /tmp/zestfs-demo.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT

echo "== example model in $work/model"
mkdir -p "$work/model"
python3 - "$work/model" <<'EOF'
import json, os, random, struct, sys
d = sys.argv[1]
rnd = random.Random(0)
tensors = {"embed.weight": (1024, 1024), "lm_head.weight": (512, 1024), "norm.weight": (1024,)}
header, blobs, off = {}, [], 0
for name, shape in tensors.items():
    n = 1
    for s in shape:
        n *= s
    b = struct.pack(f"<{n}f", *(rnd.gauss(0, 0.02) for _ in range(n)))
    header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(d, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
json.dump({"model_type": "demo", "hidden_size": 1024, "vocab_size": 512}, open(os.path.join(d, "config.json"), "w"))
json.dump({"version": "1.0", "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "hello": 1}}},
          open(os.path.join(d, "tokenizer.json"), "w"))
EOF
ls -l "$work/model"

echo "== ingest"
"$origin" ingest "$work/data" demo/tiny "$work/model"

echo "== serve on loopback"
"$origin" serve "$work/data" --listen 127.0.0.1:0 --port-file "$work/port" -q &
pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
url=http://127.0.0.1:$(cat "$work/port")
echo "origin at $url"

echo "== GET /api/models/demo/tiny/tree/main"
curl -s "$url/api/models/demo/tiny/tree/main" | python3 -m json.tool
echo "== HEAD resolve/main/model.safetensors"
curl -sI "$url/demo/tiny/resolve/main/model.safetensors" | grep -iE '^(HTTP|x-|etag|link|location)'
echo "== config.json"
curl -s "$url/demo/tiny/resolve/main/config.json"; echo

py=$here/../tests/interop/.venv/bin/python
if [ -x "$py" ]; then
    echo "== huggingface_hub snapshot_download (Xet) with HF_ENDPOINT=$url"
    HF_ENDPOINT=$url HF_HUB_CACHE=$work/hf-cache HF_HUB_DISABLE_PROGRESS_BARS=1 "$py" - <<'EOF'
import os
from huggingface_hub import snapshot_download
from safetensors.numpy import load_file
p = snapshot_download("demo/tiny")
print("snapshot:", p)
for f in sorted(os.listdir(p)):
    print(f"  {f} -> {os.readlink(os.path.join(p, f))}")
print({k: v.shape for k, v in load_file(os.path.join(p, "model.safetensors")).items()})
EOF
else
    echo "(tests/interop/.venv missing: skipping the huggingface_hub part; run tests/interop/setup.sh)"
fi
echo "== origin egress"
curl -s "$url/_origin/stats"; echo
