#!/usr/bin/env python3
"""test_revisions.py ZESTFS [ZESTFS_ORIGIN] — long-lived mounts (issue 18
item 5): revisions on demand and refs checked again (--refs-ttl).

org/rev is ingested into zestfs-origin as main = c0, then main = c1 (c0 an
older commit of main), branches dev (cd) and feature (cf); the mount
presents org/rev@main (c1) only, with --refs-ttl 2.  Then, through the
mount, with the real huggingface_hub (HF_HUB_CACHE = the mountpoint):
  * hf_hub_download(revision="dev"), (revision="v0.1", a tag) and
    (revision=c0): the path is inside
    the mount (snapshots/<commit>/...), the origin served no xorb byte while
    the client ran (the mount resolved the revision; the client fetched
    nothing), then reading the path is byte-exact; snapshot_download
    (revision="feature") the same;
  * refs/<branch> looked up directly (a branch not presented) names its
    commit; snapshots/<not a commit> and refs/<no such branch> are ENOENT;
  * nested names: hf_hub_download(revision="topic/x") the same, then
    refs/topic/y (refs/topic/ exists now) looked up directly resolves;
  * main moved on the origin (c2): within 30 s refs/main names c2 and
    snapshots/c2 is presented; c1's files still read byte-exact;
  * remounted --offline on the same store: every snapshot is still there,
    refs/main stays c2 although main moved again on the origin (c3).
A tag (`zestfs-origin tag`: a ref no ingest moves) is downloaded the same way.
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin; never when CI=true
for want of huggingface_hub)."""
import errno, json, os, subprocess, sys, textwrap, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, ingest, mount, sha, unmount  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
REPO = "models--org--rev"


def pick_python():
    p = os.path.join(ROOT, "tests", "interop", ".venv", "bin", "python")
    for c in (p, os.environ.get("ZESTFS_TEST_PYTHON", "")):
        if c and os.path.exists(c):
            r = subprocess.run([c, "-c", "import huggingface_hub"], capture_output=True, timeout=60)
            if r.returncode == 0:
                return c
    return None


def write_src(d, tag):
    import random
    rng = random.Random(tag)
    files = {
        "model.safetensors": fsutil.safetensors_like(rng, 3 * MiB),
        "config.json": json.dumps({"model_type": "tiny", "v": tag}).encode(),
    }
    for p, b in files.items():
        os.makedirs(os.path.dirname(os.path.join(d, p)) or d, exist_ok=True)
        with open(os.path.join(d, p), "wb") as f:
            f.write(b)
    return files


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    run = fsutil.start("zestfs-revisions-")
    if run is None:
        return 77
    py = pick_python()
    if not py:
        print(("FAIL CI=true and " if os.environ.get("CI") == "true" else "skip: ")
              + "tests/interop/.venv (huggingface_hub) is missing")
        return 1 if os.environ.get("CI") == "true" else 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        os.environ.pop(k, None)
    data, mnt, store = (os.path.join(tmp, n) for n in ("data", "mnt", "store"))
    os.mkdir(mnt)
    srcs, commits = {}, {}
    for name, branch in (("c0", "main"), ("c1", "main"), ("cd", "dev"), ("cf", "feature"),
                         ("ct", "release")):
        d = os.path.join(tmp, "src-" + name)
        srcs[name] = write_src(d, name)
        commits[name] = ingest(origin_exe, data, "org/rev", d, "--revision", branch)
    # a tag: a ref no ingest moves, naming the release branch's commit
    r = subprocess.run([origin_exe, "tag", data, "org/rev", "v0.1", "release"], capture_output=True,
                       text=True, timeout=60)
    if not check(r.returncode == 0 and r.stdout.strip() == commits["ct"],
                 f"zestfs-origin tag v0.1 -> release's commit ({r.stdout.strip()} {r.stderr.strip()})"):
        raise RuntimeError("no tag")
    origin = Origin(origin_exe, data, tmp)
    proc = None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=origin.url, HF_HUB_CACHE=mnt, HF_HOME=os.path.join(tmp, "hf-home"),
               HF_XET_CACHE=os.path.join(tmp, "xet-cache"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_TOKEN_PATH=os.path.join(tmp, "hf-home", "token"))

    def client(code):
        r = subprocess.run([py, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                           timeout=240)
        if r.returncode != 0:
            return None, r.stderr[-1500:]
        return json.loads(r.stdout.strip().splitlines()[-1]), ""

    def snap(c, p=""):
        return os.path.join(mnt, REPO, "snapshots", c, p) if p else os.path.join(mnt, REPO, "snapshots", c)

    def ref(name):
        try:
            return read(os.path.join(mnt, REPO, "refs", name)).decode()
        except OSError as e:
            return f"<{errno.errorcode.get(e.errno, e.errno)}>"

    try:
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--store", store, "--no-p2p",
                                   "--repo", "org/rev", "--refs-ttl", "2"], log)
        if not check(os.path.ismount(mnt), "mounted org/rev@main --refs-ttl 2"):
            raise RuntimeError("no mount")
        presented = sorted(os.listdir(os.path.join(mnt, REPO, "snapshots")))
        check(presented == [commits["c1"]], f"only main's commit presented at first ({presented})")

        # ---- hf_hub_download of a branch and of a commit not presented ----
        for rev, c in (("dev", "cd"), ("v0.1", "ct"), (commits["c0"], "c0")):
            origin.reset()
            res, err = client(f"""
                import json
                from huggingface_hub import hf_hub_download
                print(json.dumps([hf_hub_download("org/rev", p, revision={rev!r})
                                  for p in ("model.safetensors", "config.json")]))""")
            st = origin.stats()
            what = {"dev": "branch dev", "v0.1": "tag v0.1"}.get(rev, "commit c0")
            want = [snap(commits[c], p) for p in ("model.safetensors", "config.json")]
            check(res == want, f"hf_hub_download(revision={what}): paths in the mount {res or err}")
            check(st["xorb_bytes_total"] == 0,
                  f"hf_hub_download(revision={what}): no xorb bytes from the origin while the client "
                  f"ran ({st['xorb_bytes_total']})")
            if res:
                check(all(sha(read(p)) == sha(srcs[c][os.path.basename(p)]) for p in res),
                      f"hf_hub_download(revision={what}): byte-exact through the mount")
        check(ref("dev") == commits["cd"], f"refs/dev names dev's commit ({ref('dev')})")

        # ---- snapshot_download of another branch ----
        origin.reset()
        res, err = client("""
            import json
            from huggingface_hub import snapshot_download
            print(json.dumps(snapshot_download("org/rev", revision="feature")))""")
        st = origin.stats()
        check(res == snap(commits["cf"]), f"snapshot_download(revision=feature): the mount's snapshot "
              f"{res or err}")
        check(st["xorb_bytes_total"] == 0,
              f"snapshot_download(revision=feature): no xorb bytes ({st['xorb_bytes_total']})")
        if res:
            check(all(sha(read(os.path.join(res, p))) == sha(b) for p, b in srcs["cf"].items()),
                  "snapshot_download(revision=feature): byte-exact")

        # ---- a ref looked up directly; absent revisions ----
        d2 = os.path.join(tmp, "src-c4")
        srcs["c4"] = write_src(d2, "c4")
        commits["c4"] = ingest(origin_exe, data, "org/rev", d2, "--revision", "other")
        check(ref("other") == commits["c4"], f"refs/other looked up: resolved on demand ({ref('other')})")
        check(os.path.isdir(snap(commits["c4"])), "refs/other: its snapshot presented")
        check(ref("no-such-branch") == "<ENOENT>", f"refs/no-such-branch: ENOENT ({ref('no-such-branch')})")
        check(not os.path.exists(snap("0" * 40)), "snapshots/<not a commit>: absent")

        # ---- nested ref names: a branch topic/x, then topic/y looked up directly ----
        for b in ("x", "y"):
            d = os.path.join(tmp, "src-f" + b)
            srcs["f" + b] = write_src(d, "f" + b)
            commits["f" + b] = ingest(origin_exe, data, "org/rev", d, "--revision", "topic/" + b)
        origin.reset()
        res, err = client("""
            import json
            from huggingface_hub import hf_hub_download
            print(json.dumps(hf_hub_download("org/rev", "config.json", revision="topic/x")))""")
        st = origin.stats()
        check(res == snap(commits["fx"], "config.json") and read(res) == srcs["fx"]["config.json"],
              f"hf_hub_download(revision=topic/x): in the mount, byte-exact {res or err}")
        check(st["xorb_bytes_total"] == 0, f"revision=topic/x: no xorb bytes ({st['xorb_bytes_total']})")
        check(ref("topic/x") == commits["fx"], f"refs/topic/x ({ref('topic/x')})")
        check(ref("topic/y") == commits["fy"], f"refs/topic/y looked up: resolved ({ref('topic/y')})")

        # ---- main moves on the origin: seen within the TTL ----
        d3 = os.path.join(tmp, "src-c2")
        srcs["c2"] = write_src(d3, "c2")
        commits["c2"] = ingest(origin_exe, data, "org/rev", d3)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30 and ref("main") != commits["c2"]:
            time.sleep(0.5)
        took = time.monotonic() - t0
        check(ref("main") == commits["c2"], f"refs/main moved to the new commit within 30 s ({took:.1f} s)")
        check(os.path.isdir(snap(commits["c2"])) and
              sha(read(snap(commits["c2"], "model.safetensors"))) == sha(srcs["c2"]["model.safetensors"]),
              "the new snapshot presented, byte-exact")
        check(all(sha(read(snap(commits["c1"], p))) == sha(b) for p, b in srcs["c1"].items()),
              "the old snapshot of main still reads byte-exact")
        rc = unmount(proc, mnt)
        proc = None
        check(rc == 0, f"unmounted (exit {rc})")

        # ---- offline: nothing changes ----
        d4 = os.path.join(tmp, "src-c3")
        write_src(d4, "c3")
        ingest(origin_exe, data, "org/rev", d4)
        proc = mount(zestfs, mnt, ["--offline", "--store", store, "--no-p2p", "--refs-ttl", "1"], log)
        if check(os.path.ismount(mnt), "remounted --offline"):
            time.sleep(4)
            check(ref("main") == commits["c2"], f"offline: refs/main stays ({ref('main')})")
            have = set(os.listdir(os.path.join(mnt, REPO, "snapshots")))
            want = {commits[c] for c in ("c0", "c1", "c2", "cd", "cf", "ct", "c4", "fx", "fy")}
            check(have == want, f"offline: every snapshot kept ({len(have)} of {len(want)})")
            check(all(sha(read(snap(commits["c0"], p))) == sha(b) for p, b in srcs["c0"].items()),
                  "offline: c0 reads byte-exact from the store")
            rc = unmount(proc, mnt)
            proc = None
            check(rc == 0, f"offline: unmounted (exit {rc})")
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    return run.finish(proc, mnt, origin)


if __name__ == "__main__":
    sys.exit(main())
