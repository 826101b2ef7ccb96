#!/usr/bin/env python3
"""transformers_check.py — transformers loading a model through a zestfs mount.

usage:
    PYTHON tests/interop/transformers_check.py ZESTFS ZESTFS_ORIGIN [--require-torch]

PYTHON is an interpreter with transformers, tokenizers, huggingface_hub,
safetensors and numpy: tests/interop/.venv (pinned in requirements.txt) has
them, but no torch. With torch as well (for example a venv made with
`pip install torch transformers` — PyPI's torch wheel needs its CUDA
packages, about 3 GB, even on a CPU, see README.md here), the model checks
run too; --require-torch makes a missing torch a failure instead of a note.
The meson test fs-transformers (tests/fs/test_transformers.py) runs this with
tests/interop/.venv's python, and also with $ZESTFS_TORCH_PYTHON when set.

What it does, on loopback only:
  1. generates a tiny Llama model with transformers itself (LlamaConfig,
     hidden_size 64, 2 layers, vocab 32): config.json, generation_config.json,
     a WordLevel tokenizer (tokenizer.json, tokenizer_config.json) and
     model.safetensors (with torch: LlamaForCausalLM(config) with a fixed seed,
     save_pretrained, plus its state_dict and the logits of a fixed input kept
     aside; without torch: numpy tensors with Llama's names and shapes);
  2. ingests it into zestfs-origin as org/tiny-llama, serves it, mounts zestfs
     with --repo org/tiny-llama;
  3. with HF_HUB_CACHE = the mountpoint and HF_ENDPOINT = the origin, once
     online and once with HF_HUB_OFFLINE=1, in a fresh process each time:
     AutoConfig, GenerationConfig and AutoTokenizer.from_pretrained("org/tiny-
     llama") equal the same objects loaded from the source folder (config
     dicts, vocabulary, token ids of fixed texts); cached_file of
     model.safetensors resolves to a blob inside the mount with the original
     SHA-256, on a mount whose fsname is zestfs (transformers reads the whole
     file instead of mmap only when it is hf-mount); with torch,
     AutoModelForCausalLM.from_pretrained gives every parameter torch.equal
     to the original state_dict and the same logits bit for bit, and
     transformers opened the file with safe_open(backend="mmap"), never
     reading it whole (_safe_load_bytes);
  4. the clients downloaded nothing: after the runs the overlay (the real
     directory under the mountpoint, seen after unmounting) holds no blob and
     no snapshot file; online, the origin sent no xorb bytes but what zestfs
     itself fetched for the reads (at most about one copy of the model);
     offline, the origin got no request at all.
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no transformers)."""
import hashlib, json, os, subprocess, sys, textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fs"))
import fsutil  # noqa: E402
from fsutil import Origin, ingest, mount, unmount  # noqa: E402

REPO = "org/tiny-llama"
TEXTS = ["the quick brown fox jumps over the lazy dog",
         "zestfs mounts the hugging face cache and lazily fetches xet chunks",
         "unknown words map to unk"]

GEN = r"""
import json, os, sys
import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GenerationConfig, LlamaConfig, PreTrainedTokenizerFast
src, ref, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
words = ["[UNK]", "<s>", "</s>"] + sorted(set(" ".join(texts[:2]).split()))
tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>",
                        eos_token="</s>").save_pretrained(src)
cfg = LlamaConfig(vocab_size=32, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
GenerationConfig(bos_token_id=1, eos_token_id=2, max_new_tokens=8, do_sample=False).save_pretrained(src)
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    from transformers import LlamaForCausalLM
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(src)                      # model.safetensors + config.json
    ids = torch.tensor([[1, 5, 9, 3, 17, 4, 22, 2]])
    with torch.no_grad():
        logits = model(ids).logits
    torch.save({"state": {k: v.clone() for k, v in model.state_dict().items()}, "ids": ids,
                "logits": logits}, os.path.join(ref, "ref.pt"))
else:
    from safetensors.numpy import save_file
    cfg.save_pretrained(src)
    rng = np.random.default_rng(1234)
    h, f, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    kv = cfg.num_key_value_heads * (h // cfg.num_attention_heads)
    t = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,), "lm_head.weight": (v, h)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        t.update({p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
                  p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
                  p + "mlp.gate_proj.weight": (f, h), p + "mlp.up_proj.weight": (f, h),
                  p + "mlp.down_proj.weight": (h, f), p + "input_layernorm.weight": (h,),
                  p + "post_attention_layernorm.weight": (h,)})
    save_file({k: rng.standard_normal(s, dtype=np.float32) for k, s in t.items()},
              os.path.join(src, "model.safetensors"), metadata={"format": "pt"})
print(json.dumps({"torch": torch is not None, "files": sorted(os.listdir(src))}))
"""

CLIENT = r"""
import hashlib, json, os, sys
src, ref, repo, texts = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
from transformers import AutoConfig, AutoTokenizer, GenerationConfig
from transformers.utils import cached_file
out = {"offline": os.environ.get("HF_HUB_OFFLINE") == "1"}

def cfg_dict(c):
    d = c.to_dict()
    d.pop("_name_or_path", None)
    return d

c, c0 = AutoConfig.from_pretrained(repo), AutoConfig.from_pretrained(src)
out["config_equal"] = cfg_dict(c) == cfg_dict(c0)
out["config_type"] = type(c).__name__
g, g0 = GenerationConfig.from_pretrained(repo), GenerationConfig.from_pretrained(src)
out["generation_equal"] = g.to_dict() == g0.to_dict()
t, t0 = AutoTokenizer.from_pretrained(repo), AutoTokenizer.from_pretrained(src)
out["tokenizer"] = type(t).__name__
out["vocab_equal"] = t.get_vocab() == t0.get_vocab() and len(t.get_vocab()) > 3
out["ids"] = [t(x).input_ids for x in texts]
out["ids_equal"] = out["ids"] == [t0(x).input_ids for x in texts]
out["tokenizer_file"] = cached_file(repo, "tokenizer.json")

path = cached_file(repo, "model.safetensors")
out["model_file"] = path
out["model_real"] = os.path.realpath(path)

# the model first (cold: its bytes come through the mount as the loader faults them), then the hash
try:
    import torch
except ImportError:
    torch = None
out["torch"] = torch is not None
if torch is not None:
    import transformers.modeling_utils as mu
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(1)
    opened, whole = [], []
    real_open, real_load = mu.safe_open, mu._safe_load_bytes
    def spy_open(file, *a, **k):
        opened.append([os.path.realpath(file), k.get("backend")])
        return real_open(file, *a, **k)
    def spy_load(b, *a, **k):
        whole.append(len(b))
        return real_load(b, *a, **k)
    mu.safe_open, mu._safe_load_bytes = spy_open, spy_load
    out["is_on_hf_mount"] = mu._is_on_hf_mount(path)
    model = AutoModelForCausalLM.from_pretrained(repo).eval()
    r = torch.load(os.path.join(ref, "ref.pt"))
    sd = model.state_dict()
    out["param_names_equal"] = sorted(sd) == sorted(r["state"])
    out["params_bad"] = [k for k in r["state"] if k not in sd or not torch.equal(sd[k], r["state"][k])]
    out["n_params"] = len(r["state"])
    with torch.no_grad():
        logits = model(r["ids"]).logits
    out["logits_equal"] = torch.equal(logits, r["logits"])
    out["logits_max_diff"] = float((logits - r["logits"]).abs().max())
    out["safe_open"] = opened
    out["read_whole"] = whole
h = hashlib.sha256()
with open(path, "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        h.update(b)
out["model_sha256"] = h.hexdigest()
real, dev = os.path.realpath(path), None
best = -1
for line in open("/proc/mounts"):
    p = line.split()
    if len(p) >= 2 and (real == p[1] or real.startswith(p[1].rstrip("/") + "/")) and len(p[1]) > best:
        best, dev = len(p[1]), p[0]
out["fsname"] = dev

print(json.dumps(out))
"""


def run_py(code, args, env, timeout=300):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS"))}
    e.update(env)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                       text=True, env=e, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"python exited {r.returncode}: {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def sha_file(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def overlay_files(root):
    """Regular files and symlinks the clients left in the real directory."""
    found = []
    for d, _, names in os.walk(root):
        for n in names:
            found.append(os.path.relpath(os.path.join(d, n), root))
    return sorted(found)


def main():
    require_torch = "--require-torch" in sys.argv[1:]
    argv = [a for a in sys.argv[1:] if not a.startswith("--")]
    sys.argv[1:] = argv
    try:
        import transformers  # noqa: F401
    except ImportError:
        print(f"skip: {sys.executable} has no transformers")
        return 77
    run = fsutil.start("zestfs-tf-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, ref, data, store, mnt, home = (os.path.join(tmp, n) for n in
                                        ("src", "ref", "data", "store", "mnt", "hf-home"))
    for d in (src, ref, mnt):
        os.mkdir(d)
    origin = proc = None
    try:
        gen = run_py(GEN, [src, ref, json.dumps(TEXTS)], {})
        has_torch = gen["torch"]
        print(f"generated {gen['files']} ({'torch' if has_torch else 'no torch: numpy weights'})")
        if require_torch:
            check(has_torch, f"{sys.executable} has torch")
        msize = os.path.getsize(os.path.join(src, "model.safetensors"))
        msha = sha_file(os.path.join(src, "model.safetensors"))
        commit = ingest(origin_exe, data, REPO, src)
        origin = Origin(origin_exe, data, tmp)
        # --refs-ttl 0: the mount's own periodic ref check (60 s) could fall in
        # the offline phase on a slow run; this test is about the clients' requests
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", REPO, "--store", store, "--no-p2p",
                                   "--refs-ttl", "0"], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        rdir = os.path.join(mnt, "models--org--tiny-llama")
        snap = os.path.join(rdir, "snapshots", commit)
        env = {"HF_HUB_CACHE": mnt, "HF_ENDPOINT": origin.url, "HF_HOME": home,
               "HF_XET_CACHE": os.path.join(tmp, "xet-cache"), "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}
        for offline in (False, True):
            what = "HF_HUB_OFFLINE=1" if offline else "online"
            origin.reset()
            res = run_py(CLIENT, [src, ref, REPO, json.dumps(TEXTS)], dict(env, **({"HF_HUB_OFFLINE": "1"} if offline else {})))
            st = origin.stats()
            print(f"{what}: origin {st['requests']} requests, {st['bytes_total']} bytes, "
                  f"{st['xorb_bytes_total']} xorb bytes; tokenizer {res['tokenizer']}, ids {res['ids']}")
            check(res["config_equal"] and res["config_type"] == "LlamaConfig",
                  f"{what}: AutoConfig.from_pretrained equals the source config ({res['config_type']})")
            check(res["generation_equal"], f"{what}: GenerationConfig.from_pretrained equals the source")
            check(res["vocab_equal"] and res["ids_equal"],
                  f"{what}: AutoTokenizer.from_pretrained: same vocabulary and token ids as the source")
            check(res["tokenizer_file"] == os.path.join(snap, "tokenizer.json"),
                  f"{what}: tokenizer.json from the mount's snapshot ({res['tokenizer_file']})")
            check(res["model_file"] == os.path.join(snap, "model.safetensors")
                  and res["model_real"] == os.path.join(rdir, "blobs", msha),
                  f"{what}: model.safetensors is the mount's snapshots/<commit> symlink to blobs/<sha256>")
            check(res["model_sha256"] == msha, f"{what}: model.safetensors through the mount has the original sha256")
            check(res["fsname"] == "zestfs", f"{what}: the mount's fsname is zestfs, not hf-mount ({res['fsname']})")
            if res["torch"]:
                check(res["is_on_hf_mount"] is False, f"{what}: transformers' _is_on_hf_mount is False")
                check(res["param_names_equal"] and not res["params_bad"],
                      f"{what}: from_pretrained: all {res['n_params']} parameters torch.equal the original {res['params_bad'][:5]}")
                check(res["logits_equal"], f"{what}: identical logits on a fixed input (max diff {res['logits_max_diff']})")
                check(any(p == os.path.join(rdir, "blobs", msha) and b == "mmap" for p, b in res["safe_open"])
                      and not res["read_whole"],
                      f"{what}: loaded with safe_open(backend=mmap), not read whole ({res['safe_open']}, {res['read_whole']})")
            if offline:
                check(st["requests"] == 0, f"{what}: no request to the origin ({st['requests']})")
                check(st["xorb_bytes_total"] == 0, f"{what}: xorb egress 0")
            else:
                check(st["xorb_bytes_total"] <= msize * 1.1 + 65536,
                      f"{what}: xorb egress {st['xorb_bytes_total']} is at most zestfs's one copy of the "
                      f"{msize}-byte model, nothing more")
        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = None
        left = overlay_files(mnt)
        print(f"left in the overlay by the clients: {left}")
        check(not [p for p in left if "/blobs/" in p or "/snapshots/" in p or p.endswith(".incomplete")],
              "the clients wrote no blob and no snapshot file (nothing downloaded)")
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        rc = run.finish(proc, mnt, origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())
