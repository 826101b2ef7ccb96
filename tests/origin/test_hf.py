#!/usr/bin/env python3
"""The real Python clients against zestfs-origin: huggingface_hub + hf_xet
(+ safetensors) from tests/interop/.venv, with HF_ENDPOINT = the origin and
HF_HUB_CACHE = a temp dir.

  - snapshot_download and hf_hub_download fetch every file byte-exact, Xet
    files over Xet (the origin's xorb egress counter covers them, the bridge
    serves nothing but regular files), with and without a token, private
    repo refused without one; the cache tree is the Hub's (refs/main, blobs
    named by sha256 / git sha1, relative snapshot symlinks);
  - HF_HUB_DISABLE_XET=1: the same bytes through the bridge (plain HTTP);
  - safetensors loads the downloaded model;
  - hf_xet.upload_files uploads files (deduplicated against stored chunks),
    `zestfs-origin commit` records them, snapshot_download reads them back.

Runs under the interop venv's python (or $ZESTFS_TEST_PYTHON); exit 77 when
neither is installed.  usage: test_hf.py [path/to/zestfs-origin]
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

from origin_util import SKIP, Checker, Origin, find_exe, main_wrapper, rand_bytes, repo_root


def pick_python():
    cands = [os.path.join(repo_root(), "tests", "interop", ".venv", "bin", "python"),
             os.environ.get("ZESTFS_TEST_PYTHON", "")]
    for p in cands:
        if p and os.path.exists(p):
            r = subprocess.run([p, "-c", "import huggingface_hub, hf_xet, safetensors, numpy"],
                               capture_output=True, timeout=60)
            if r.returncode == 0:
                return p
    return None


def client(py, origin, cache, code, token=None, extra_env=None, timeout=240):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("HF_") or k.startswith("HUGGING"):
            del env[k]
    env.update({"HF_ENDPOINT": origin.url, "HF_HUB_CACHE": cache,
                "HF_XET_CACHE": cache + "-xet", "HF_HOME": cache + "-home",
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "HF_HUB_ETAG_TIMEOUT": "30", "HF_HUB_DOWNLOAD_TIMEOUT": "60"})
    if token:
        env["HF_TOKEN"] = token
    env.update(extra_env or {})
    r = subprocess.run([py, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    out = r.stdout.strip().splitlines()
    res = None
    if out:
        try:
            res = json.loads(out[-1])
        except ValueError:
            pass
    if r.returncode != 0 or res is None:
        print(f"client failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}", flush=True)
    return res


SNAPSHOT = r"""
import json, os, hashlib
from huggingface_hub import snapshot_download
p = snapshot_download(REPO)
out = {"path": p, "files": {}}
for root, dirs, files in os.walk(p):
    for f in files:
        fp = os.path.join(root, f)
        out["files"][os.path.relpath(fp, p)] = {
            "sha256": hashlib.sha256(open(fp, "rb").read()).hexdigest(),
            "link": os.readlink(fp) if os.path.islink(fp) else None}
print(json.dumps(out))
"""

ONE = r"""
import json, hashlib
from huggingface_hub import hf_hub_download
try:
    p = hf_hub_download(REPO, FILE)
    print(json.dumps({"path": p, "sha256": hashlib.sha256(open(p, "rb").read()).hexdigest()}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "msg": str(e)[:300]}))
"""

LOAD = r"""
import json
from safetensors.numpy import load_file
t = load_file(PATH)
print(json.dumps({k: [list(v.shape), str(v.dtype), float(v.astype('float64').sum())] for k, v in t.items()}))
"""

UPLOAD = r"""
import json, urllib.request, hf_xet
base = BASE
def tok():
    j = json.load(urllib.request.urlopen(base + "/api/models/org/up/xet-write-token/main"))
    return (j["accessToken"], j["exp"])
res = hf_xet.upload_files(FILES, base, tok(), tok, None, "model")
print(json.dumps([{"hash": r.hash, "size": r.file_size, "sha256": r.sha256} for r in res]))
"""

HUBWRITE = r"""
import json, os, hashlib
from huggingface_hub import HfApi, snapshot_download
api = HfApi()
commits = []
api.create_repo("org/written")
try:
    api.create_repo("org/written")
    exists_status = 0
except Exception as e:
    r = getattr(e, "response", None)
    exists_status = getattr(r, "status_code", -1)
api.create_repo("org/written", exist_ok=True)
commits.append(api.upload_folder(folder_path=FOLDER, repo_id="org/written", commit_message="folder").oid)
commits.append(api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id="org/written").oid)
commits.append(api.delete_file("sub/dir/notes.txt", repo_id="org/written").oid)
commits.append(api.upload_file(path_or_fileobj=b"bye", path_in_repo="bye.txt", repo_id="org/written").oid)
head = api.repo_info("org/written").sha
p = snapshot_download("org/written")
files = {}
for r, d, fs in os.walk(p):
    for f in fs:
        fp = os.path.join(r, f)
        files[os.path.relpath(fp, p)] = hashlib.sha256(open(fp, "rb").read()).hexdigest()
print(json.dumps({"files": files, "commits": commits, "head": head, "exists_status": exists_status}))
"""

# With a wrong token, each write is refused for want of auth (401/403), not for
# anything else: a repo name no run has created, then a file into the repo
# that exists.  Prints the HTTP status of each attempt (0: it succeeded).
BADWRITE = r"""
import json
from huggingface_hub import HfApi
api = HfApi()
out = {}
for what, fn in (("create", lambda: api.create_repo(FRESH)),
                 ("upload", lambda: api.upload_file(path_or_fileobj=b"evil", path_in_repo="evil.txt",
                                                    repo_id="org/written"))):
    try:
        fn()
        out[what] = 0
    except Exception as e:
        out[what] = getattr(getattr(e, "response", None), "status_code", -1)
print(json.dumps(out))
"""


def sub(code, **kw):
    for k, v in kw.items():
        code = code.replace(k, json.dumps(v))
    return code


def check_cache(c, cache, repo, commit, files, what):
    folder = os.path.join(cache, "models--" + repo.replace("/", "--"))
    ref = os.path.join(folder, "refs", "main")
    c.eq(open(ref).read() if os.path.exists(ref) else None, commit, what + ": refs/main = commit, no newline")
    for path, content in files.items():
        snap = os.path.join(folder, "snapshots", commit, path)
        if not c.ok(os.path.islink(snap), f"{what}: snapshots/{commit[:8]}/{path} is a symlink"):
            continue
        target = os.readlink(snap)
        c.ok(not os.path.isabs(target), f"{what}: {path} link is relative")
        etag = os.path.basename(target)
        regular = path.endswith((".json", ".txt", ".md"))
        want = (hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest() if regular
                else hashlib.sha256(content).hexdigest())
        c.eq(etag, want, f"{what}: {path} blob named by {'git sha1' if regular else 'sha256'}")
        depth = path.count("/")
        c.eq(target, "../" * (depth + 2) + "blobs/" + etag, f"{what}: {path} link target")
        with open(snap, "rb") as f:
            c.ok(f.read() == content, f"{what}: {path} byte-exact")


def main():
    exe = find_exe()
    py = pick_python()
    if not py:
        print("SKIP: tests/interop/.venv (huggingface_hub, hf_xet) not installed")
        return SKIP
    c = Checker("origin-hf")
    tmp = tempfile.mkdtemp(prefix="zo-hf-")
    try:
        data = os.path.join(tmp, "data")
        src = os.path.join(tmp, "src")
        os.makedirs(os.path.join(src, "sub", "dir"))
        # a real safetensors file with random tensors, made by safetensors itself
        r = subprocess.run([py, "-c", sub(r"""
import numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(3)
save_file({"embed.weight": rng.standard_normal((512, 1024)).astype(np.float32),
           "layer.0.weight": rng.standard_normal((256, 256)).astype(np.float16),
           "layer.0.bias": rng.standard_normal((256,)).astype(np.float32)}, PATH)
""", PATH=os.path.join(src, "model.safetensors"))], capture_output=True, text=True, timeout=120)
        c.eq(r.returncode, 0, "safetensors writes the model: " + r.stderr[-500:])
        files = {"config.json": json.dumps({"model_type": "tiny"}).encode(),
                 "tokenizer.json": json.dumps({"vocab": {"a": 1}}).encode(),
                 "sub/dir/notes.txt": b"nested\n",
                 "big.bin": rand_bytes(11, 5_000_000)}
        for p, b in files.items():
            open(os.path.join(src, p), "wb").write(b)
        files["model.safetensors"] = open(os.path.join(src, "model.safetensors"), "rb").read()
        xet_bytes = len(files["big.bin"]) + len(files["model.safetensors"])
        reg_bytes = sum(len(b) for p, b in files.items() if p.endswith((".json", ".txt")))
        commit = subprocess.run([exe, "ingest", data, "org/tiny", "-q", src], capture_output=True,
                                text=True, timeout=120, check=True).stdout.strip()
        subprocess.run([exe, "ingest", data, "org/secret", "--private", "-q", src], check=True,
                       capture_output=True, timeout=120)

        with Origin(exe, data) as o:
            # ---- snapshot_download over Xet ----
            o.reset_stats()
            cache = os.path.join(tmp, "c1")
            res = client(py, o, cache, sub(SNAPSHOT, REPO="org/tiny"))
            if c.ok(res is not None, "snapshot_download ran"):
                c.eq(sorted(res["files"]), sorted(files), "snapshot has every file")
                for p, b in files.items():
                    c.eq(res["files"].get(p, {}).get("sha256"), hashlib.sha256(b).hexdigest(),
                         f"snapshot {p} byte-exact")
                check_cache(c, cache, "org/tiny", commit, files, "snapshot cache")
                s = o.stats()
                c.ok(s["xorb_bytes_total"] >= xet_bytes * 0.9,
                     f"Xet path used: xorb egress {s['xorb_bytes_total']} for {xet_bytes} Xet bytes")
                c.eq(s["bytes_total"] - s["xorb_bytes_total"], reg_bytes,
                     "only regular files went through plain HTTP")
                c.ok(len(s["per_xorb"]) >= 1, "per-xorb counters")
                tl = client(py, o, cache, sub(LOAD, PATH=os.path.join(res["path"], "model.safetensors")))
                c.ok(tl is not None and tl.get("embed.weight", [None])[0] == [512, 1024],
                     "safetensors loads the downloaded model")
            # ---- hf_hub_download, fresh cache ----
            o.reset_stats()
            cache2 = os.path.join(tmp, "c2")
            res = client(py, o, cache2, sub(ONE, REPO="org/tiny", FILE="big.bin"))
            c.eq(res and res.get("sha256"), hashlib.sha256(files["big.bin"]).hexdigest(),
                 "hf_hub_download big.bin byte-exact")
            c.ok(o.stats()["xorb_bytes_total"] >= len(files["big.bin"]) * 0.9, "hf_hub_download used Xet")
            res = client(py, o, cache2, sub(ONE, REPO="org/tiny", FILE="sub/dir/notes.txt"))
            c.eq(res and res.get("sha256"), hashlib.sha256(files["sub/dir/notes.txt"]).hexdigest(),
                 "hf_hub_download nested regular file")
            res = client(py, o, cache2, sub(ONE, REPO="org/tiny", FILE="missing.txt"))
            c.ok(res is not None and "EntryNotFound" in res.get("error", ""), "missing file -> (Remote)EntryNotFoundError")
            c.ok(os.path.exists(os.path.join(cache2, "models--org--tiny", ".no_exist", commit, "missing.txt")),
                 ".no_exist entry written")
            # ---- without hf_xet: the bridge ----
            o.reset_stats()
            cache3 = os.path.join(tmp, "c3")
            res = client(py, o, cache3, sub(ONE, REPO="org/tiny", FILE="big.bin"),
                         extra_env={"HF_HUB_DISABLE_XET": "1"})
            c.eq(res and res.get("sha256"), hashlib.sha256(files["big.bin"]).hexdigest(),
                 "HF_HUB_DISABLE_XET download through the bridge byte-exact")
            c.eq(o.stats()["xorb_bytes_total"], 0, "bridge download used no signed xorb URL")

        # ---- tokens ----
        with Origin(exe, data, ["--token", "hf_secret_token"]) as o:
            cache4 = os.path.join(tmp, "c4")
            res = client(py, o, cache4, sub(ONE, REPO="org/secret", FILE="big.bin"))
            c.eq(res and res.get("error"), "RepositoryNotFoundError", "private repo without token refused")
            res = client(py, o, cache4, sub(ONE, REPO="org/secret", FILE="big.bin"), token="hf_wrong")
            c.ok(res is not None and "error" in res, "private repo with a wrong token refused")
            o.reset_stats()
            res = client(py, o, cache4, sub(SNAPSHOT, REPO="org/secret"), token="hf_secret_token")
            if c.ok(res is not None, "snapshot_download with token ran"):
                for p, b in files.items():
                    c.eq(res["files"].get(p, {}).get("sha256"), hashlib.sha256(b).hexdigest(),
                         f"token snapshot {p} byte-exact")
                check_cache(c, cache4, "org/secret", json.loads(o.req("GET", "/api/models/org/secret",
                            {"Authorization": "Bearer hf_secret_token"})[2])["sha"], files, "token cache")
                c.ok(o.stats()["xorb_bytes_total"] >= xet_bytes * 0.9, "token snapshot used Xet")

        # ---- hf_xet uploads ----
        upsrc = os.path.join(tmp, "up")
        os.makedirs(upsrc)
        up = {"a.bin": rand_bytes(21, 3_000_000),
              "b.bin": files["big.bin"][:2_000_000] + rand_bytes(22, 1_000_000)}  # half dedup
        for p, b in up.items():
            open(os.path.join(upsrc, p), "wb").write(b)
        open(os.path.join(upsrc, "README.md"), "w").write("upload target\n")
        subprocess.run([exe, "ingest", data, "org/up", "-q", upsrc], check=True, capture_output=True,
                       timeout=60)
        with Origin(exe, data) as o:
            res = client(py, o, os.path.join(tmp, "c5"),
                         sub(UPLOAD, BASE=o.url, FILES=[os.path.join(upsrc, p) for p in up]))
            if c.ok(isinstance(res, list) and len(res) == 2, "hf_xet.upload_files ran"):
                specs = []
                for (p, b), r in zip(up.items(), res):
                    c.eq((r["size"], r["sha256"]), (len(b), hashlib.sha256(b).hexdigest()),
                         f"upload {p} size and sha256")
                    specs.append(f"uploaded/{p}={r['hash']}:{r['size']}:{r['sha256']}")
                out = subprocess.run([exe, "commit", data, "org/up", "--message", "hf_xet upload"] + specs,
                                     capture_output=True, text=True, timeout=60)
                c.eq(out.returncode, 0, "commit of uploaded files: " + out.stderr)
                o.reset_stats()
                cache6 = os.path.join(tmp, "c6")
                res = client(py, o, cache6, sub(SNAPSHOT, REPO="org/up"))
                if c.ok(res is not None, "snapshot_download of uploaded repo"):
                    for p, b in up.items():
                        c.eq(res["files"].get("uploaded/" + p, {}).get("sha256"),
                             hashlib.sha256(b).hexdigest(), f"uploaded {p} read back byte-exact")
                    c.ok(o.stats()["xorb_bytes_total"] > 0, "uploaded files read over Xet")
        # ---- the Hub write API: create_repo, upload_folder, upload_file, delete_file ----
        with Origin(exe, data, ["--token", "hf_writer"]) as o:
            code = sub(HUBWRITE, FOLDER=src)
            res = client(py, o, os.path.join(tmp, "c7"), code, token="hf_writer")
            if c.ok(res is not None, "huggingface_hub create_repo/upload_folder/upload_file/delete_file ran"):
                want = {p: hashlib.sha256(b).hexdigest() for p, b in files.items() if p != "sub/dir/notes.txt"}
                want["hello.txt"] = hashlib.sha256(b"hello").hexdigest()
                want["bye.txt"] = hashlib.sha256(b"bye").hexdigest()
                got = {p: v for p, v in res["files"].items() if p != ".gitattributes"}
                c.eq(got, want, "uploaded repo read back byte-exact (deleted file gone)")
                c.eq(res["exists_status"], 409, "create_repo on an existing repo: 409")
                cs = res["commits"]
                c.ok(len(set(cs)) == 4 and all(len(x) == 40 and int(x, 16) >= 0 for x in cs),
                     f"four distinct commit ids {cs}")
                c.eq(res["head"], cs[-1], "the repo's head is the last commit")
            fresh = "org/never-created"
            res = client(py, o, os.path.join(tmp, "c8"), sub(BADWRITE, FRESH=fresh), token="hf_wrong")
            c.ok(res is not None and res.get("create") in (401, 403),
                 f"create_repo with a wrong token refused for auth (401/403): {res}")
            c.ok(res is not None and res.get("upload") in (401, 403),
                 f"upload_file with a wrong token refused for auth (401/403): {res}")
            st, _, _ = o.req("GET", f"/api/models/{fresh}", {"Authorization": "Bearer hf_writer"})
            c.eq(st, 404, f"{fresh} does not exist after the refused create")
            st, _, _ = o.req("GET", "/org/written/resolve/main/evil.txt",
                             {"Authorization": "Bearer hf_writer"})
            c.eq(st, 404, "evil.txt is not in org/written after the refused upload")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    main_wrapper(main)
