#!/usr/bin/env python3
"""test_adopt.py ZESTFS [ZESTFS_ORIGIN] — a cache that already holds models
(issue 18 item 6), against zestfs-origin on loopback.

The real huggingface_hub 2.4 fills a cache directory from the origin:
org/shared with its shared blob store on (the default: the marker file and
repo blobs that are symlinks into <cache>/blobs/<xx>/<xet hash>), org/plain
with HF_HUB_DISABLE_SHARED_BLOBS=1 (regular files in its blobs/).  One
earlier download (org/shared's extra.safetensors, in the shared store) is
corrupted before the mount; the sha256 and link target of every entry under
the cache are recorded.  zestfs mounts over that directory (--repo both,
--listen for peers):
  - adoption finishes: 5 adopted, 2 refused (status JSON, `zestfs status`):
    the Xet files, and the git files (config.json; org/plain's tokenizer.json
    corrupted before the mount too) verified by their git blob sha1;
  - the adopted git files read through the mount: byte-exact, 0 bytes from
    the origin; the corrupted one: byte-exact, fetched (bytes > its size);
  - reading the good models through the mount: byte-exact, origin xorb
    egress 0; the corrupted one: byte-exact, fetched (egress > 0);
  - a second node (--peer to the first, the CDN refusing xorbs) reads the
    adopted model.safetensors byte-exact, every byte from the first;
  - a remount does not adopt again ("adopted before"), still 0 egress;
    after `zestfs evict org/plain`, the next mount adopts its files again;
  - `zestfs seed --adopt CACHE` with a fresh store (no mount): 3 adopted,
    1 refused; a node with the CDN refused reads org/plain's model from it;
  - after unmount every entry of the user's cache is byte-for-byte (and
    link-for-link) as recorded, refs/<rev> files included (taken into the
    model, kept and hidden: ops.c).
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin, no clients)."""
import json, os, random, re, subprocess, sys, textwrap, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import Origin, knobs, mount, unmount, sha  # noqa: E402
from test_p2p import src_bytes, status, wait_log  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MiB = 1 << 20


def snapshot_state(root):
    """{relative path: ('f', sha256, mode) | ('l', target) | ('d',)} of every entry."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d",)
            else:
                out[rel] = ("f", fsutil.read_all(p), st.st_mode, st.st_size)
    return out


def main():
    run = fsutil.start("zestfs-adopt-")
    if run is None:
        return 77
    py = os.path.join(ROOT, "tests", "interop", ".venv", "bin", "python")
    if not os.path.exists(py) or subprocess.run([py, "-c", "import huggingface_hub, hf_xet"],
                                                capture_output=True).returncode != 0:
        if os.environ.get("CI") == "true":
            print("FAIL CI=true and tests/interop/.venv (huggingface_hub + hf_xet) is missing")
            return 1
        print("skip: tests/interop/.venv has no huggingface_hub + hf_xet")
        return 77
    check, tmp, zestfs = run.check, run.tmp, run.zestfs
    data, cache, store = (os.path.join(tmp, x) for x in ("data", "cache", "store"))
    origin, proc, procs = None, None, []
    try:
        rng = random.Random(18006)
        files = {
            "org/shared": {"model.safetensors": fsutil.safetensors_like(rng, 12 * MiB),
                           "extra.safetensors": fsutil.safetensors_like(rng, 5 * MiB),
                           "config.json": b'{"model_type": "tiny"}\n'},
            "org/plain": {"model.safetensors": fsutil.safetensors_like(rng, 9 * MiB),
                          "big.bin": rng.randbytes(3 * MiB),
                          "config.json": b'{"model_type": "plain"}\n',
                          # a git file (under 10 MB, text): etag = git blob sha1
                          "tokenizer.json": ("".join('"tok%d": %d,\n' % (i, i) for i in range(30000))
                                             .encode())},
        }
        os.makedirs(data)
        origin = Origin(run.origin_exe, data, tmp)
        commits = {}
        for repo, fs_ in files.items():
            src = os.path.join(tmp, "src-" + repo.replace("/", "-"))
            os.makedirs(src)
            for n, b in fs_.items():
                open(os.path.join(src, n), "wb").write(b)
            commits[repo] = fsutil.ingest(run.origin_exe, data, repo, src)

        # ---- the real client fills the cache ----
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update(HF_ENDPOINT=origin.url, HF_HOME=os.path.join(tmp, "hf-home"), HF_HUB_CACHE=cache,
                   HF_HUB_DISABLE_TELEMETRY="1")
        code = 'import json; from huggingface_hub import snapshot_download as s; print(json.dumps(s("%s")))'
        for repo, extra in (("org/shared", {}), ("org/plain", {"HF_HUB_DISABLE_SHARED_BLOBS": "1"})):
            r = subprocess.run([py, "-c", code % repo], capture_output=True, text=True,
                               env={**env, **extra}, timeout=300)
            check(r.returncode == 0, f"huggingface_hub 2.4 snapshot_download {repo} "
                                     f"{r.stderr[-800:] if r.returncode else ''}")
        check(os.path.isfile(os.path.join(cache, "blobs", ".huggingface-shared-blobs")),
              "shared blob store marker present")
        links = {}
        for repo in files:
            bd = os.path.join(cache, "models--" + repo.replace("/", "--"), "blobs")
            for n in os.listdir(bd):
                links.setdefault(repo, []).append(os.readlink(os.path.join(bd, n))
                                                  if os.path.islink(os.path.join(bd, n)) else None)
        check(any(t and t.startswith("../../blobs/") for t in links.get("org/shared", [])),
              f"org/shared: repo blobs link into the shared store {links.get('org/shared')}")
        check(links.get("org/plain") and all(t is None for t in links["org/plain"]),
              "org/plain: repo blobs are regular files")

        # corrupt org/shared's extra.safetensors where it lies (the shared store entry)
        snap = lambda root, repo: os.path.join(root, "models--" + repo.replace("/", "--"),  # noqa
                                               "snapshots", commits[repo])
        bad = os.path.realpath(os.path.join(snap(cache, "org/shared"), "extra.safetensors"))
        check(os.path.isfile(bad) and "/blobs/" in bad, f"corrupted copy at {os.path.relpath(bad, cache)}")
        os.chmod(bad, 0o644)
        fsutil.flip(bad, 3 * MiB + 17)
        os.chmod(bad, 0o444)
        # and org/plain's tokenizer.json (a git file: a regular file in its repo blobs/)
        badg = os.path.realpath(os.path.join(snap(cache, "org/plain"), "tokenizer.json"))
        check(os.path.isfile(badg) and re.search(r"/blobs/[0-9a-f]{40}$", badg) is not None,
              f"corrupted git file at {os.path.relpath(badg, cache)}")
        mode = os.stat(badg).st_mode
        os.chmod(badg, 0o644)
        fsutil.flip(badg, 1000)
        os.chmod(badg, mode & 0o777)
        before = snapshot_state(cache)

        # ---- mount over it ----
        logp = os.path.join(tmp, "a.log")
        args = ["--endpoint", origin.url, "--store", store, "--repo", "org/shared", "--repo",
                "org/plain", "--listen", "127.0.0.1:0"]
        proc = mount(zestfs, cache, args, open(logp, "a"))
        procs.append((proc, cache))
        check(os.path.ismount(cache), "mounted over the cache")
        m = wait_log(logp, r"adoption done: (\d+) adopted, (\d+) refused, (\d+) not imported", 180)
        # Xet: 3 adopted, 1 refused; git files: both config.json adopted, tokenizer.json refused
        check(m is not None and m.groups() == ("5", "2", "0"),
              f"adoption: 5 adopted, 2 refused, 0 not imported ({m.groups() if m else None})")
        check(re.search(r"adopt .*extra|refused: its Xet hash", open(logp).read()) is not None,
              "the corrupted download is refused in the log")
        check(re.search(r"refused: its git blob sha1 is", open(logp).read()) is not None,
              "the corrupted git file is refused in the log")
        check(len(re.findall(r"adopted .* git blob sha1 verified", open(logp).read())) == 2,
              "both config.json (git files) verified and adopted")
        st = status(zestfs, store).get("adopt", {})
        check(st.get("adopted") == 5 and st.get("refused") == 2 and st.get("pending") == 0,
              f"status JSON adopt {st}")
        txt = subprocess.run([zestfs, "status", "--store", store], capture_output=True, text=True,
                             timeout=60).stdout
        check("earlier downloads: 5 adopted" in txt and "2 refused" in txt, "zestfs status line")

        # the adopted git files: read locally, 0 bytes from the origin
        origin.reset()
        b0 = origin.stats()["bytes_total"]
        for repo in files:
            got = open(os.path.join(snap(cache, repo), "config.json"), "rb").read()
            check(got == files[repo]["config.json"], f"{repo}/config.json (git file): byte-exact")
        b1 = origin.stats()["bytes_total"]
        check(b1 == b0, f"adopted git files read with 0 bytes from the origin ({b1 - b0})")
        # the corrupted git file: refused, fetched, the origin's bytes
        want = files["org/plain"]["tokenizer.json"]
        got = open(os.path.join(snap(cache, "org/plain"), "tokenizer.json"), "rb").read()
        check(got == want, "corrupted git file: byte-exact (the origin's) through the mount")
        b2 = origin.stats()["bytes_total"]
        check(b2 - b1 >= len(want), f"corrupted git file fetched from the origin ({b2 - b1} bytes)")

        origin.reset()
        for repo, fs_ in files.items():
            for n, b in fs_.items():
                if (repo, n) in (("org/shared", "extra.safetensors"), ("org/plain", "tokenizer.json")):
                    continue
                got = open(os.path.join(snap(cache, repo), n), "rb").read()
                check(got == b, f"{repo}/{n}: byte-exact through the mount")
        eg = origin.stats()["xorb_bytes_total"]
        check(eg == 0, f"adopted models read with 0 origin xorb bytes ({eg})")
        got = open(os.path.join(snap(cache, "org/shared"), "extra.safetensors"), "rb").read()
        check(got == files["org/shared"]["extra.safetensors"], "corrupted download: byte-exact through the mount")
        eg = origin.stats()["xorb_bytes_total"]
        check(eg > 0, f"corrupted download fetched from the origin ({eg} xorb bytes)")

        # ---- a second node gets the adopted model from the first ----
        pm = wait_log(logp, r"peers on 127\.0\.0\.1:(\d+)", 10)
        check(pm is not None, "node A listens for peers")
        if pm:
            knobs(origin, refuse_xorbs=1)
            mb, sb, lb = (os.path.join(tmp, x) for x in ("b-mnt", "b-store", "b.log"))
            os.makedirs(mb)
            pb = mount(zestfs, mb, ["--endpoint", origin.url, "--store", sb, "--repo", "org/shared",
                                    "--listen", "127.0.0.1:0", "--peer", "127.0.0.1:" + pm.group(1)],
                       open(lb, "a"))
            procs.append((pb, mb))
            check(wait_log(lb, r"peers: [1-9]\d* connected", 30) is not None, "B: connected to A")
            want = files["org/shared"]["model.safetensors"]
            try:
                got = open(os.path.join(snap(mb, "org/shared"), "model.safetensors"), "rb").read()
            except OSError as e:
                got = repr(e).encode()
            check(got == want, "B: adopted model.safetensors byte-exact with the CDN refused")
            peer, cdn = src_bytes(status(zestfs, sb))
            check(peer >= len(want) and cdn == 0, f"B: every byte from A (peer {peer}, CDN {cdn})")
            unmount(pb, mb)
            procs.pop()
            knobs(origin, refuse_xorbs=0)

        unmount(proc, cache)
        procs.pop()
        proc = None

        # ---- a remount does not adopt again ----
        proc = mount(zestfs, cache, args, open(logp, "a"))
        procs.append((proc, cache))
        m = wait_log(logp, r"adoption done: [\s\S]*adoption done: (\d+) adopted, (\d+) refused", 120)
        check(m is not None and m.groups() == ("5", "2"), f"remount: adoption recorded ({m.groups() if m else None})")
        n = len(re.findall(r"zestfs: adopted ", open(logp).read()))
        check(n == 5, f"remount: nothing adopted again ({n} 'adopted' lines in all)")
        origin.reset()
        got = open(os.path.join(snap(cache, "org/plain"), "model.safetensors"), "rb").read()
        check(got == files["org/plain"]["model.safetensors"], "remount: byte-exact")
        check(origin.stats()["xorb_bytes_total"] == 0, "remount: 0 origin xorb bytes")
        # the store drops org/plain: the next mount adopts its two files again
        r = subprocess.run([zestfs, "evict", "--store", store, "org/plain"], capture_output=True,
                           text=True, timeout=120)
        check(r.returncode == 0, f"zestfs evict org/plain {r.stderr[-300:]}")
        unmount(proc, cache)
        procs.pop()
        proc = None
        proc = mount(zestfs, cache, args, open(logp, "a"))
        procs.append((proc, cache))
        m = wait_log(logp, r"(?:adoption done: [\s\S]*){2}adoption done: (\d+) adopted", 120)
        n = len(re.findall(r"zestfs: adopted ", open(logp).read()))
        # (its git file config.json is not in the chunk store: its record stands)
        check(m is not None and m.group(1) == "5" and n == 7,
              f"after evict: org/plain's 2 Xet files adopted again ({n - 5} new 'adopted' lines)")
        origin.reset()
        got = open(os.path.join(snap(cache, "org/plain"), "model.safetensors"), "rb").read()
        check(got == files["org/plain"]["model.safetensors"] and origin.stats()["xorb_bytes_total"] == 0,
              "after evict: byte-exact, 0 origin xorb bytes")
        unmount(proc, cache)
        procs.pop()
        proc = None

        # ---- `zestfs seed --adopt` over the plain cache: a fresh store, no mount ----
        store2, lsp = os.path.join(tmp, "seed-store"), os.path.join(tmp, "seed.log")
        sp = subprocess.Popen([zestfs, "seed", "--adopt", cache, "--store", store2, "--endpoint",
                               origin.url, "--listen", "127.0.0.1:0"], stdout=open(lsp, "a"),
                              stderr=subprocess.STDOUT, env=fsutil.guard_env(None))
        procs.append((sp, None))
        m = wait_log(lsp, r"adoption done: (\d+) adopted, (\d+) refused, (\d+) not imported", 180)
        check(m is not None and m.groups() == ("3", "1", "0"),
              f"seed --adopt: 3 adopted, 1 refused ({m.groups() if m else None})")
        pm = wait_log(lsp, r"peers on 127\.0\.0\.1:(\d+)", 10)
        check(pm is not None, "seed --adopt listens for peers")
        if pm:
            knobs(origin, refuse_xorbs=1)
            mc, sc, lc = (os.path.join(tmp, x) for x in ("c-mnt", "c-store", "c.log"))
            os.makedirs(mc)
            pc = mount(zestfs, mc, ["--endpoint", origin.url, "--store", sc, "--repo", "org/plain",
                                    "--listen", "127.0.0.1:0", "--peer", "127.0.0.1:" + pm.group(1)],
                       open(lc, "a"))
            procs.append((pc, mc))
            check(wait_log(lc, r"peers: [1-9]\d* connected", 30) is not None, "C: connected to the seed")
            want = files["org/plain"]["model.safetensors"]
            try:
                got = open(os.path.join(snap(mc, "org/plain"), "model.safetensors"), "rb").read()
            except OSError as e:
                got = repr(e).encode()
            check(got == want, "C: org/plain model.safetensors from `seed --adopt`, CDN refused: byte-exact")
            unmount(pc, mc)
            procs.pop()
            knobs(origin, refuse_xorbs=0)
        sp.send_signal(2)
        try:
            sp.wait(60)
        except subprocess.TimeoutExpired:
            sp.kill()
            sp.wait()
        check(sp.returncode == 0, f"seed --adopt exits 0 on SIGINT ({sp.returncode})")
        procs.pop()
        check(fsutil.sanitizer_report(open(lsp).read()) is None, "no sanitizer report in the seed log")

        after = snapshot_state(cache)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        rest = changed  # refs/<rev> files too: taken into the model, kept, hidden
        check(not rest, f"the user's downloads are byte-for-byte unchanged after unmount "
                        f"({len(before)} entries; changed: {rest[:5]})")
    finally:
        for p, mnt in procs:
            if p.poll() is None and mnt is None:
                p.kill()
                p.wait()
            elif p.poll() is None:
                unmount(p, mnt, expect=None)
        rc = run.finish(proc, cache, origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())
