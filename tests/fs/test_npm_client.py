#!/usr/bin/env python3
"""test_npm_client.py ZESTFS [ZESTFS_ORIGIN] — @huggingface/hub (npm) on a mount.

The JavaScript Hub client from tests/interop/node_modules, run by node
(npm_client.mjs), with cacheDir = the zestfs mountpoint and hubUrl =
zestfs-origin on loopback. Two repos are ingested: org/tiny (one commit: a
safetensors file, a .bin, an empty .bin, config/tokenizer JSON, a nested text
file) and org/two (two commits; the second changes config.json only), and
mounted with --repo for both. Then:
  * snapshotDownload(org/tiny) at main and at the commit: returns the mount's
    snapshots/<commit>, asks only for the revision and the tree, downloads
    nothing (origin xorb egress 0, no "Downloading" message); at main it
    rewrites refs/main in place (writeFile: open O_WRONLY|O_TRUNC, write),
    which the mount takes into its model (fs/ops.c, "refs written by
    clients"): the ref holds the commit with no newline and no overlay file
    is left;
  * downloadFileToCacheDir of every file at "main" (paths-info per file, no
    download) and at the commit (no request at all) returns
    snapshots/<commit>/<path>: a relative symlink to ../blobs/<etag>
    (SHA-256 for Xet files, git blob SHA-1 for the others), resolving inside
    the mount, whose bytes read through it have the original SHA-256;
  * scanCacheDir of the mount sees org/tiny at its commit with ref main;
  * org/two at "main": the library names its snapshot after each file's
    lastCommit (paths-info), not after the resolved head, so an unchanged file
    lands in snapshots/<first commit>/, a commit the mount does not present:
    the library then creates that directory and the symlink to the existing
    blob through the overlay (no download), and reading it gives the bytes;
  * after a remount with --offline, those overlay entries are still there and
    downloadFileToCacheDir at a commit answers from the cache with no request;
    after unmounting, the real directory holds no blob the client wrote.
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin, no node or npm client)."""
import hashlib, json, os, random, shutil, subprocess, sys, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, ingest, mount, unmount  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
HUB_JS = os.path.join(ROOT, "tests", "interop", "node_modules", "@huggingface", "hub", "dist", "index.mjs")
SCRIPT = os.path.join(HERE, "npm_client.mjs")


def node_js(node, args, timeout=120):
    r = subprocess.run([node, SCRIPT, json.dumps(args)], capture_output=True, text=True, timeout=timeout)
    lines = r.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"node exited {r.returncode} with no result: {r.stderr[-2000:]}")
    res = json.loads(lines[-1])
    if r.stderr.strip():
        print("  node stderr: " + r.stderr.strip()[-600:].replace("\n", "\n  "))
    return res



def make_files(rng):
    return {
        "model.safetensors": fsutil.safetensors_like(rng, 6 * MiB),
        "weights.bin": rng.randbytes(MiB + 12345),
        "empty.bin": b"",
        "config.json": json.dumps({"model_type": "tiny", "hidden_size": 64}).encode(),
        "tokenizer.json": json.dumps({"version": "1.0", "vocab": {f"t{i}": i for i in range(500)}}).encode(),
        "sub/dir/notes.txt": b"nested note\n",
    }


def write_tree(d, files):
    for p, b in files.items():
        os.makedirs(os.path.dirname(os.path.join(d, p)), exist_ok=True)
        with open(os.path.join(d, p), "wb") as f:
            f.write(b)


def tree(origin, repo, commit):
    url = f"{origin.url}/api/models/{repo}/tree/{commit}?recursive=true"
    with urllib.request.urlopen(url, timeout=30) as r:
        return {e["path"]: e for e in json.load(r) if e["type"] == "file"}


def main():
    node = shutil.which("node")
    if not node or not os.path.exists(HUB_JS):
        print("skip: node or tests/interop/node_modules/@huggingface/hub not installed")
        return 77
    run = fsutil.start("zestfs-npm-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    data, store, mnt = (os.path.join(tmp, n) for n in ("data", "store", "mnt"))
    os.mkdir(mnt)
    rng = random.Random(4242)
    files = make_files(rng)
    write_tree(os.path.join(tmp, "src"), files)
    commit = ingest(origin_exe, data, "org/tiny", os.path.join(tmp, "src"))
    two = {"model.safetensors": fsutil.safetensors_like(rng, 3 * MiB),
           "config.json": b'{"model_type": "tiny", "v": 1}'}
    write_tree(os.path.join(tmp, "two"), two)
    commit1 = ingest(origin_exe, data, "org/two", os.path.join(tmp, "two"))
    two["config.json"] = b'{"model_type": "tiny", "v": 2}'
    write_tree(os.path.join(tmp, "two"), two)
    commit2 = ingest(origin_exe, data, "org/two", os.path.join(tmp, "two"))
    check(commit1 != commit2, "org/two has two commits")
    origin = Origin(origin_exe, data, tmp)
    proc = None
    margs = ["--endpoint", origin.url, "--store", store, "--no-p2p"]
    try:
        meta = tree(origin, "org/tiny", commit)
        check(sorted(meta) == sorted(files), f"origin tree lists every file {sorted(meta)}")
        proc = mount(zestfs, mnt, [*margs, "--repo", "org/tiny", "--repo", "org/two"], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        rdir = os.path.join(mnt, "models--org--tiny")
        snap = os.path.join(rdir, "snapshots", commit)
        common = {"repo": "org/tiny", "hubUrl": origin.url, "cacheDir": mnt}

        # ---- snapshotDownload at main (it writes refs/main in place), then at the commit
        for rev in ("main", commit):
            origin.reset()
            res = node_js(node, {"op": "snapshot", **common, "revision": rev})
            st = origin.stats()
            print(f"snapshotDownload@{rev[:8]}: {len(res['requests'])} requests: {res['requests']}")
            check("error" not in res, f"snapshotDownload@{rev[:8]} succeeded {res.get('error', '')[:800]}")
            check(res.get("path") == snap, f"snapshotDownload@{rev[:8]} returns the mount's snapshots/<commit> ({res.get('path')})")
            check(not res["downloads"] and not res["copies"], f"snapshotDownload@{rev[:8]} downloaded nothing {res['downloads']}")
            check(st["xorb_bytes_total"] == 0 and st["bytes_total"] < 64 << 10,
                  f"snapshotDownload@{rev[:8]}: no xorb bytes ({st['xorb_bytes_total']}), {st['bytes_total']} bytes of API")
            check(len(res["requests"]) == 2 and all("/resolve/" not in q and "/paths-info/" not in q for q in res["requests"]),
                  f"snapshotDownload@{rev[:8]}: only the revision and the tree were asked for")
        ref = os.path.join(rdir, "refs", "main")
        check(open(ref, "rb").read() == commit.encode(), "refs/main holds the commit, no newline")
        check(os.path.isfile(ref) and not os.path.islink(ref), "refs/main is a regular file")

        # ---- downloadFileToCacheDir at main, then at the commit
        origin.reset()
        res = node_js(node, {"op": "files", **common, "paths": sorted(files)})
        st = origin.stats()
        check("error" not in res, f"downloadFileToCacheDir at main succeeded {res.get('error', '')[:800]}")
        got_main = res.get("paths", {})
        print(f"downloadFileToCacheDir@main: {len(res['requests'])} requests")
        check(all(got_main.get(p) == os.path.join(snap, p) for p in files),
              f"downloadFileToCacheDir@main returns snapshots/<commit>/<path> for every file {got_main}")
        check(not res["downloads"] and not res["copies"], f"@main downloaded nothing {res['downloads']}")
        check(st["xorb_bytes_total"] == 0 and st["bytes_total"] < 64 << 10,
              f"@main: no xorb bytes ({st['xorb_bytes_total']}), {st['bytes_total']} bytes of API")
        check(len(res["requests"]) == len(files) and all("/paths-info/" in q for q in res["requests"]),
              "@main: one paths-info request per file, nothing else")
        origin.reset()
        res = node_js(node, {"op": "files", **common, "revision": commit, "paths": sorted(files)})
        check("error" not in res and res["paths"] == got_main, "downloadFileToCacheDir@commit returns the same paths")
        check(res["requests"] == [] and origin.stats()["requests"] == 0, "@commit: no request at all")

        # ---- what the paths are, and their bytes
        origin.reset()
        res = node_js(node, {"op": "inspect", "paths": got_main})
        check("error" not in res, f"inspect {res.get('error', '')[:800]}")
        for p, b in files.items():
            f = res.get("files", {}).get(p, {})
            xet = "lfs" in meta[p]
            etag = hashlib.sha256(b).hexdigest() if xet else fsutil.git_sha1(b)
            up = "../" * (p.count("/") + 2)
            check(f.get("symlink") and f.get("link") == f"{up}blobs/{etag}",
                  f"{p}: symlink to {up}blobs/<{'sha256' if xet else 'git sha1'}> ({f.get('link')})")
            check(f.get("real") == os.path.join(rdir, "blobs", etag), f"{p}: resolves inside the mount")
            check(f.get("size") == len(b) and f.get("sha256") == hashlib.sha256(b).hexdigest(),
                  f"{p}: bytes read through the returned path have the original sha256 ({len(b)} bytes)")
        xet_size = sum(len(b) for p, b in files.items() if "lfs" in meta[p])
        xb = origin.stats()["xorb_bytes_total"]
        check(xb <= xet_size * 1.1 + 65536, f"reading them fetched about one copy ({xb} for {xet_size})")

        # ---- scanCacheDir of the mount
        res = node_js(node, {"op": "scan", "cacheDir": mnt})
        repos = {r["id"]: r for r in res.get("repos", [])}
        print(f"scanCacheDir: repos {sorted(repos)}, warnings {res.get('warnings')}")
        r = repos.get("model:org/tiny", {})
        revs = {v["commit"]: v for v in r.get("revisions", [])}
        v = revs.get(commit, {})
        check("main" in v.get("refs", []), f"scanCacheDir: org/tiny at {commit[:8]} with ref main")
        top = {p: len(b) for p, b in files.items() if "/" not in p}
        seen = {os.path.relpath(f["path"], snap): f["size"] for f in v.get("files", [])}
        check(all(seen.get(p) == n for p, n in top.items()),
              f"scanCacheDir: every top-level file with its size {seen}")

        # ---- org/two: snapshots named after lastCommit
        two_dir = os.path.join(mnt, "models--org--two")
        presented = sorted(os.listdir(os.path.join(two_dir, "snapshots")))
        print(f"org/two: commits {commit1[:8]} {commit2[:8]}, the mount presents {[c[:8] for c in presented]}")
        origin.reset()
        res = node_js(node, {"op": "files", "repo": "org/two", "hubUrl": origin.url, "cacheDir": mnt,
                             "paths": ["model.safetensors", "config.json"]})
        st = origin.stats()
        check("error" not in res, f"org/two downloadFileToCacheDir@main succeeded {res.get('error', '')[:800]}")
        p2 = res.get("paths", {})
        print(f"org/two @main returned {p2}")
        check(p2.get("model.safetensors") == os.path.join(two_dir, "snapshots", commit1, "model.safetensors"),
              "org/two: the unchanged file is put under snapshots/<first commit> (its lastCommit)")
        check(p2.get("config.json") == os.path.join(two_dir, "snapshots", commit2, "config.json"),
              "org/two: the changed file is under snapshots/<head>")
        check(not res["downloads"] and st["xorb_bytes_total"] == 0,
              f"org/two: nothing downloaded ({res['downloads']}, {st['xorb_bytes_total']} xorb bytes)")
        old = os.path.join(two_dir, "snapshots", commit1, "model.safetensors")
        if commit1 not in presented:
            check(os.path.islink(old) and os.readlink(old) == "../../blobs/" + hashlib.sha256(two["model.safetensors"]).hexdigest(),
                  "org/two: the client wrote the snapshots/<first commit> symlink through the overlay")
        check(open(old, "rb").read() == two["model.safetensors"], "org/two: bytes through that symlink")
        check(sorted(os.listdir(os.path.join(two_dir, "snapshots", commit2))) == sorted(two),
              "org/two: the head snapshot still lists its files")
        res = node_js(node, {"op": "snapshot", "repo": "org/two", "hubUrl": origin.url, "cacheDir": mnt})
        check("error" not in res, f"org/two snapshotDownload@main succeeded {res.get('error', '')[:800]}")
        check(res.get("path") == os.path.join(two_dir, "snapshots", commit2) and not res["downloads"],
              "org/two: snapshotDownload returns the head snapshot, nothing downloaded")
        check(open(os.path.join(two_dir, "refs", "main"), "rb").read() == commit2.encode(), "org/two: refs/main = head")

        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = None

        # ---- offline remount: the overlay entries the client wrote are kept
        proc = mount(zestfs, mnt, ["--offline", "--store", store, "--no-p2p"], log)
        if not check(os.path.ismount(mnt), "offline remount"):
            raise RuntimeError("no mount")
        res = node_js(node, {"op": "files", "repo": "org/two", "hubUrl": origin.url, "cacheDir": mnt,
                             "revision": commit1, "paths": ["model.safetensors"]})
        check(res.get("paths", {}).get("model.safetensors") == old and res["requests"] == [],
              f"offline: downloadFileToCacheDir@<first commit> from the cache, no request {res.get('error', '')[:500]}")
        res = node_js(node, {"op": "files", **common, "revision": commit, "paths": sorted(files)})
        check(res.get("paths") == got_main and res["requests"] == [], "offline: org/tiny@commit from the cache, no request")
        res = node_js(node, {"op": "inspect", "paths": {"old": old, **got_main}})
        fl = res.get("files", {})
        check(fl.get("old", {}).get("sha256") == hashlib.sha256(two["model.safetensors"]).hexdigest()
              and all(fl.get(p, {}).get("sha256") == hashlib.sha256(b).hexdigest() for p, b in files.items()),
              "offline: every path's bytes have the original sha256")
        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = None
        # what the client wrote: the real directory under the mountpoint
        left = sorted(os.path.relpath(os.path.join(d, n), mnt) for d, ds, ns in os.walk(mnt) for n in ns)
        print(f"written by the client into the overlay: {left}")
        check(not [p for p in left if "/blobs/" in p or p.endswith(".incomplete")],
              "the client wrote no blob (nothing downloaded)")
        check(not [p for p in left if "/refs/" in p],
              "the refs the client wrote are in the model, not left in the overlay")
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        rc = run.finish(proc, mnt, origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())
