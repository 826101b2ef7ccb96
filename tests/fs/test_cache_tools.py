#!/usr/bin/env python3
"""test_cache_tools.py ZESTFS [ZESTFS_ORIGIN] — huggingface_hub's own cache
tools on a mount (issue 22 item 5; fs/cachedel.c).

zestfs-origin serves org/a (main and branch v1, no content in common),
org/s and org/s2 (the same files: the same xorbs) and org/p (pinned).
With tests/interop/.venv's huggingface_hub, HF_HUB_CACHE = the mount:
  - scan_cache_dir lists every presented repo, no warnings; the sizes it
    reports are the files' logical sizes, stored or not (lazy blobs);
  - delete_revisions(v1's commit).execute(): the snapshot, refs/v1 and its
    blobs leave the tree, its stored bytes leave the store (zestfs status),
    main's files stay stored;
  - `hf cache rm model/org/s --yes`: org/s leaves the tree; the store keeps
    its bytes, which org/s2 names (verify org/s2: all ok);
  - `hf cache rm model/org/p --yes` on the pinned repo: refused (permission
    denied), the repo stays presented and stored;
  - `hf cache rm hf://models/org/a/config.json`: the file's stored data goes,
    the file stays presented (a lazy file) and reads byte-exact;
  - `hf cache rm model/org/a --yes`: the repo leaves the tree and the store
    frees its bytes;
  - after a remount (no --repo) org/a and org/s are still gone from the
    listing, v1 too; hf_hub_download of org/a (main) and of revision v1
    brings them back, byte-exact, fetched again from the origin.
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin, no clients)."""
import json, os, random, subprocess, sys, textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, ingest, mount, safetensors_like, sha, unmount  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
VENV = os.path.join(ROOT, "tests", "interop", ".venv")


def pick_python():
    for p in (os.path.join(VENV, "bin", "python"), os.environ.get("ZESTFS_TEST_PYTHON", "")):
        if p and os.path.exists(p):
            # offline: importing the CLI asks the Hub for a list of agent harnesses
            r = subprocess.run([p, "-c", "import huggingface_hub.cli.hf"], capture_output=True, timeout=60,
                               env=dict(os.environ, HF_HUB_OFFLINE="1"))
            if r.returncode == 0:
                return p
    return None


def client_env(mnt, origin, tmp):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    e.update(HF_HUB_CACHE=mnt, HF_ENDPOINT=origin.url, HF_HUB_DISABLE_TELEMETRY="1",
             HF_HOME=os.path.join(tmp, "hf-home"), HF_XET_CACHE=os.path.join(tmp, "xet-cache"),
             HF_HUB_DISABLE_PROGRESS_BARS="1", NO_COLOR="1", HF_HUB_DISABLE_UPDATE_CHECK="1")
    return e


def run_py(py, code, env, *args, timeout=240):
    r = subprocess.run([py, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, env=env,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"client failed ({r.returncode}): {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


SCAN = """
import json
from huggingface_hub import scan_cache_dir
info = scan_cache_dir()
out = {"size": info.size_on_disk, "warnings": [str(w) for w in info.warnings], "repos": {}}
for r in info.repos:
    out["repos"][r.repo_id] = {
        "size": r.size_on_disk, "nb_files": r.nb_files, "path": str(r.repo_path),
        "revisions": {v.commit_hash: {"refs": sorted(v.refs), "size": v.size_on_disk,
                                      "files": sorted(f.file_name for f in v.files)}
                      for v in r.revisions}}
print(json.dumps(out))
"""

DELETE_REV = """
import json, sys
from huggingface_hub import scan_cache_dir
s = scan_cache_dir().delete_revisions(sys.argv[1])
out = {"expected": s.expected_freed_size, "expected_str": s.expected_freed_size_str,
       "snapshots": len(s.snapshots), "refs": len(s.refs), "blobs": len(s.blobs), "repos": len(s.repos)}
s.execute()
print(json.dumps(out))
"""

DOWNLOAD = """
import hashlib, json, os, sys
from huggingface_hub import hf_hub_download
out = {}
for name in sys.argv[2:]:
    p = hf_hub_download("org/a", name, revision=sys.argv[1])
    out[name] = hashlib.sha256(open(p, "rb").read()).hexdigest()
print(json.dumps(out))
"""


def z(zestfs, env, *args):
    return subprocess.run([zestfs, *args], capture_output=True, text=True, timeout=300, env=env)


def main():
    run = fsutil.start("zestfs-cachetools-")
    if run is None:
        return 77
    py = pick_python()
    if not py:
        print("skip: no huggingface_hub client in tests/interop/.venv (make -C tests/interop)")
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    data, store, mnt = (os.path.join(tmp, n) for n in ("data", "store", "mnt"))
    os.mkdir(mnt)
    rng = random.Random(22)
    trees = {
        "a_main": {"model.safetensors": safetensors_like(rng, 6 * MiB), "config.json": b'{"v": 2}\n',
                   "extra.bin": rng.randbytes(2 * MiB)},
        "a_v1": {"model.safetensors": safetensors_like(rng, 6 * MiB), "config.json": b'{"v": 1}\n'},
        "s": {"shared.bin": rng.randbytes(5 * MiB), "config.json": b'{"s": 1}\n'},
        "s2": {"config.json": b'{"s": 2}\n'},  # + s's shared.bin: other commits, the same xorbs
        "p": {"weights.bin": rng.randbytes(4 * MiB), "config.json": b'{"p": 1}\n'},
    }
    for name, files in trees.items():
        for p, b in files.items():
            os.makedirs(os.path.join(tmp, "src", name), exist_ok=True)
            open(os.path.join(tmp, "src", name, p), "wb").write(b)
    trees["s2"]["shared.bin"] = trees["s"]["shared.bin"]
    open(os.path.join(tmp, "src", "s2", "shared.bin"), "wb").write(trees["s"]["shared.bin"])
    src = lambda n: os.path.join(tmp, "src", n)  # noqa: E731
    a_main = ingest(origin_exe, data, "org/a", src("a_main"))
    a_v1 = ingest(origin_exe, data, "org/a", src("a_v1"), "--revision", "v1")
    s1 = ingest(origin_exe, data, "org/s", src("s"))
    s2 = ingest(origin_exe, data, "org/s2", src("s2"))
    p1 = ingest(origin_exe, data, "org/p", src("p"))
    origin = Origin(origin_exe, data, tmp)
    proc = None
    env = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(tmp, "run"))
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
    base = ["--endpoint", origin.url, "--store", store, "--store-size", "200M", "--refs-ttl", "0"]
    args = base + ["--repo", "org/a", "--repo", "org/a@v1", "--repo", "org/s", "--repo", "org/s2",
                   "--repo", "org/p"]
    cenv = client_env(mnt, origin, tmp)
    hf = [py, os.path.join(os.path.dirname(py), "hf")]

    def used():
        return json.loads(z(zestfs, env, "status", "--json", "--store", store).stdout)["store"]["used"]

    def read_tree(rel, files):
        snap = os.path.join(mnt, rel)
        return all(sha(open(os.path.join(snap, p), "rb").read()) == sha(b) for p, b in files.items())

    def verify(spec):
        return z(zestfs, env, "verify", "--store", store, spec).stdout.strip()

    try:
        ver = subprocess.run([py, "-c", "import huggingface_hub as h; print(h.__version__)"],
                             capture_output=True, text=True).stdout.strip()
        print(f"huggingface_hub {ver}")
        proc = mount(zestfs, mnt, args, log, env=env)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        # ---- scan: every repo, logical sizes before anything is stored
        sc = run_py(py, SCAN, cenv)
        check(set(sc["repos"]) == {"org/a", "org/s", "org/s2", "org/p"} and not sc["warnings"],
              f"scan_cache_dir lists the presented repos, no warnings ({sorted(sc['repos'])} {sc['warnings']})")
        ra = sc["repos"].get("org/a", {})
        logical = sum(len(b) for t in ("a_main", "a_v1") for b in trees[t].values())
        check(ra.get("size") == logical and set(ra.get("revisions", {})) == {a_main, a_v1},
              f"org/a: two revisions, size_on_disk = the files' logical size {logical} with nothing "
              f"stored ({ra.get('size')})")
        check(ra.get("revisions", {}).get(a_v1, {}).get("refs") == ["v1"], "v1's ref listed")
        ls = subprocess.run(hf + ["cache", "ls", "--cache-dir", mnt], capture_output=True, text=True,
                            env=cenv, timeout=120)
        print("hf cache ls:\n" + ls.stdout + ls.stderr)
        check(ls.returncode == 0 and "org/a" in ls.stdout, "hf cache ls lists the mount's repos")
        # ---- read everything: the store holds it
        check(read_tree(f"models--org--a/snapshots/{a_main}", trees["a_main"]), "org/a main read byte-exact")
        check(read_tree(f"models--org--a/snapshots/{a_v1}", trees["a_v1"]), "org/a v1 read byte-exact")
        check(read_tree(f"models--org--s/snapshots/{s1}", trees["s"]), "org/s read byte-exact")
        open(os.path.join(mnt, f"models--org--s2/snapshots/{s2}/config.json"), "rb").read()  # not shared
        r = z(zestfs, env, "pin", "--store", store, "org/p")
        check(r.returncode == 0, f"pin org/p ({r.stdout.strip()} {r.stderr.strip()})")
        u0 = used()
        # ---- one revision, with the API
        d = run_py(py, DELETE_REV, cenv, a_v1, timeout=120)
        print("delete_revisions(v1):", d)
        check(d["snapshots"] == 1 and d["refs"] == 1 and d["blobs"] == 2,
              f"the strategy: v1's snapshot, ref and 2 blobs ({d})")
        check(d["expected"] == sum(len(b) for b in trees["a_v1"].values()),
              f"expected freed size: v1's files' logical size ({d['expected_str']})")
        rdir = os.path.join(mnt, "models--org--a")
        check(os.listdir(os.path.join(rdir, "snapshots")) == [a_main], "v1's snapshot left the tree")
        check(os.listdir(os.path.join(rdir, "refs")) == ["main"], "refs/v1 left the tree")
        check(len(os.listdir(os.path.join(rdir, "blobs"))) == len(trees["a_main"]), "v1's blobs left the tree")
        u1 = used()
        v1_bytes = len(trees["a_v1"]["model.safetensors"])
        check(u0 - u1 >= v1_bytes * 0.9, f"the store freed v1's bytes ({u0} -> {u1}, v1 {v1_bytes})")
        check(f"verify: {len(trees['a_main'])} files, {len(trees['a_main'])} ok" in verify("org/a"),
              f"main's files still stored ({verify('org/a')})")
        sc = run_py(py, SCAN, cenv)
        check(set(sc["repos"].get("org/a", {}).get("revisions", {})) == {a_main} and not sc["warnings"],
              f"scan: org/a has main only, no warnings ({sc['warnings']})")
        # ---- a repo whose data another repo names, with the CLI
        r = subprocess.run(hf + ["cache", "rm", "model/org/s", "--cache-dir", mnt, "--yes"],
                           capture_output=True, text=True, env=cenv, timeout=120)
        print("hf cache rm model/org/s:\n" + r.stdout + r.stderr)
        check(r.returncode == 0 and "models--org--s" not in os.listdir(mnt),
              f"hf cache rm model/org/s: gone from the tree ({r.returncode})")
        u2 = used()
        check(u2 >= u1 - 64 * 1024, f"the store kept org/s's bytes: org/s2 names them ({u1} -> {u2})")
        check(s1 != s2 and f"verify: {len(trees['s2'])} files, {len(trees['s2'])} ok" in verify("org/s2"),
              f"org/s2 fully stored ({verify('org/s2')})")
        # ---- the pinned repo: refused, kept
        r = subprocess.run(hf + ["cache", "rm", "model/org/p", "--cache-dir", mnt, "--yes"],
                           capture_output=True, text=True, env=cenv, timeout=120)
        print("hf cache rm model/org/p (pinned):\n" + r.stdout + r.stderr[-1500:])
        check("permission denied" in (r.stdout + r.stderr).lower() and "models--org--p" in os.listdir(mnt),
              "the pinned repo: permission denied, still presented")
        check(f"verify: {len(trees['p'])} files, {len(trees['p'])} ok" in verify("org/p"),
              f"the pinned repo still stored ({verify('org/p')})")
        # ---- one file (delete_files): its stored data goes, the lazy file stays presented
        r = subprocess.run(hf + ["cache", "rm", "hf://models/org/a/config.json", "--cache-dir", mnt, "--yes"],
                           capture_output=True, text=True, env=cenv, timeout=120)
        print("hf cache rm hf://models/org/a/config.json:\n" + r.stdout + r.stderr)
        cfg = os.path.join(mnt, f"models--org--a/snapshots/{a_main}/config.json")
        check(r.returncode == 0 and "Deleted 1 file" in r.stdout and
              open(cfg, "rb").read() == trees["a_main"]["config.json"],
              "hf cache rm of one file: done, the file still presented and read byte-exact (fetched again)")
        # ---- a whole repo, with the CLI
        r = subprocess.run(hf + ["cache", "rm", "model/org/a", "--cache-dir", mnt, "--yes"],
                           capture_output=True, text=True, env=cenv, timeout=120)
        print("hf cache rm model/org/a:\n" + r.stdout + r.stderr)
        check(r.returncode == 0 and "models--org--a" not in os.listdir(mnt),
              f"hf cache rm model/org/a: gone from the tree ({r.returncode})")
        u3 = used()
        main_bytes = len(trees["a_main"]["model.safetensors"]) + len(trees["a_main"]["extra.bin"])
        check(u2 - u3 >= main_bytes * 0.9, f"the store freed org/a's bytes ({u2} -> {u3})")
        sc = run_py(py, SCAN, cenv)
        check(set(sc["repos"]) == {"org/s2", "org/p"} and not sc["warnings"],
              f"scan: org/s2 and org/p left ({sorted(sc['repos'])} {sc['warnings']})")
        check(unmount(proc, mnt) == 0, "unmounted")
        # ---- remount without --repo: the deleted stay deleted
        proc = mount(zestfs, mnt, base, log, env=env)
        if not check(os.path.ismount(mnt), "mounted again"):
            raise RuntimeError("no mount")
        names = os.listdir(mnt)
        check("models--org--a" not in names and "models--org--s" not in names and
              "models--org--s2" in names and "models--org--p" in names,
              f"after the remount org/a and org/s are still gone ({sorted(names)})")
        # ---- asked for again: hf_hub_download brings them back, fetched again
        origin.reset()
        e = dict(cenv)
        r = subprocess.run([py, "-c", textwrap.dedent(DOWNLOAD), "main", *trees["a_main"]],
                           capture_output=True, text=True, env=e, timeout=240)
        got = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {}
        check(got == {p: sha(b) for p, b in trees["a_main"].items()},
              f"hf_hub_download of org/a brings it back byte-exact ({r.stderr[-800:]})")
        check("models--org--a" in os.listdir(mnt), "org/a is listed again")
        r = subprocess.run([py, "-c", textwrap.dedent(DOWNLOAD), "v1", *trees["a_v1"]],
                           capture_output=True, text=True, env=e, timeout=240)
        got = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {}
        check(got == {p: sha(b) for p, b in trees["a_v1"].items()},
              f"hf_hub_download of revision v1 brings it back byte-exact ({r.stderr[-800:]})")
        xb = origin.stats()["xorb_bytes_total"]
        check(xb >= (main_bytes + v1_bytes) * 0.9, f"their bytes were fetched again ({xb})")
        check(unmount(proc, mnt) == 0, "unmounted")
        proc = None
    finally:
        rc = run.finish(proc, mnt, origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())
