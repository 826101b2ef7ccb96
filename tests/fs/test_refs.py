#!/usr/bin/env python3
"""test_refs.py ZESTFS [ZESTFS_ORIGIN] — clients writing refs/<rev> (fs/ops.c,
"refs written by clients").

org/r is ingested into zestfs-origin with two commits A, B (main = B; they
differ in config.json), mounted once at A and once at main, so the model
presents both snapshots. Then, through the mount:
  * in place (open O_WRONLY|O_TRUNC + write, as @huggingface/hub does):
    refs/main := A -> the ref reads A, is 40 bytes, and
    snapshots/<ref>/config.json resolves to A's bytes; a write that is not a
    commit fails at close with EINVAL and changes nothing; ftruncate + write
    through an O_RDWR handle works too;
  * by rename (a temp file in refs/ then os.replace, as huggingface_hub does):
    refs/main := B, the temp file is gone, refs/ lists main only; a rename
    onto a ref that does not exist yet (refs/v1) adds it;
  * remount (offline, then online without --repo): the written values stay;
    the real directory under the mountpoint holds no refs file;
  * a refs/main file left in the real directory (what a rename over a ref
    left before zestfs took them) is absorbed at the next mount: the ref
    shows its value and the file is gone; a leftover *.tmp is not a ref;
  * the Hub moves main (commit C ingested): a pull through the running
    mount refreshes main from the Hub and replaces the client's value (the
    Hub is the source of truth); the same after a remount with --repo, from
    a client's value written since.
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin)."""
import errno, json, os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import Origin, ingest, mount, unmount  # noqa: E402

REPO = "models--org--r"


def write_src(d, v):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "tiny", "v": v}, f)
    with open(os.path.join(d, "weights.bin"), "wb") as f:
        f.write(bytes(range(256)) * 4096)


def main():
    run = fsutil.start("zestfs-refs-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    data, store, mnt, src = (os.path.join(tmp, n) for n in ("data", "store", "mnt", "src"))
    os.mkdir(mnt)
    write_src(src, 1)
    a = ingest(origin_exe, data, "org/r", src)
    write_src(src, 2)
    b = ingest(origin_exe, data, "org/r", src)
    check(a != b, "org/r has two commits")
    origin = Origin(origin_exe, data, tmp)
    online = ["--endpoint", origin.url, "--store", store, "--no-p2p", "--no-dht"]
    offline = ["--offline", "--store", store, "--no-p2p", "--no-dht"]
    rdir = os.path.join(mnt, REPO)
    ref = os.path.join(rdir, "refs", "main")
    proc = None

    def remount(args, what):
        nonlocal proc
        if proc is not None:
            rc = unmount(proc, mnt)
            check(rc == 0, f"unmounted (exit {rc})")
        proc = mount(zestfs, mnt, args, log)
        if not check(os.path.ismount(mnt), what):
            raise RuntimeError("no mount")

    def read(p):
        with open(p, "rb") as f:
            return f.read()

    def config_of(commit):
        return json.loads(read(os.path.join(rdir, "snapshots", commit, "config.json")))["v"]

    def overlay_refs():
        """refs files in the real directory (the mount must be down)."""
        d = os.path.join(mnt, REPO, "refs")
        return sorted(os.path.relpath(os.path.join(p, n), d) for p, _, ns in os.walk(d) for n in ns)

    try:
        remount([*online, "--repo", f"org/r@{a}"], "mounted at A")
        remount([*online, "--repo", "org/r"], "mounted at main")
        check(sorted(os.listdir(os.path.join(rdir, "snapshots"))) == sorted([a, b]), "both snapshots presented")
        check(read(ref) == b.encode(), "refs/main = B (the Hub's)")

        # ---- in place
        with open(ref, "w") as f:  # O_WRONLY|O_CREAT|O_TRUNC, as @huggingface/hub's writeFile
            f.write(a)
        got = read(ref).decode()
        check(got == a, f"in place: refs/main reads A ({got[:12]})")
        check(os.stat(ref).st_size == 40 and os.path.isfile(ref), "in place: refs/main is a 40-byte file")
        link = os.path.join(rdir, "snapshots", got, "config.json")
        check(os.path.islink(link) and os.path.realpath(link).startswith(os.path.join(rdir, "blobs")),
              "in place: snapshots/<ref>/config.json links into blobs/")
        check(config_of(got) == 1, "in place: the snapshot the ref names has A's bytes")
        try:
            with open(ref, "w") as f:
                f.write("not a commit\n")
            check(False, "a write that is not a commit fails at close")
        except OSError as e:
            check(e.errno == errno.EINVAL, f"a write that is not a commit fails at close with EINVAL ({e})")
        check(read(ref) == a.encode(), "... and refs/main is unchanged")
        fd = os.open(ref, os.O_RDWR)
        try:
            check(os.pread(fd, 40, 0) == a.encode(), "O_RDWR: reads the current value")
            os.ftruncate(fd, 0)
            os.pwrite(fd, (b + "\n").encode(), 0)  # a trailing newline is accepted
        finally:
            os.close(fd)
        check(read(ref) == b.encode(), "O_RDWR + ftruncate + write: refs/main = B")

        # ---- rename over (huggingface_hub: temp file in refs/, os.replace)
        with open(ref, "w") as f:
            f.write(a)
        tmpf = os.path.join(rdir, "refs", "main.1a2b3c4d.tmp")
        with open(tmpf, "w") as f:
            f.write(b)
        os.replace(tmpf, ref)
        check(read(ref) == b.encode(), "rename over: refs/main reads B")
        check(not os.path.exists(tmpf) and os.listdir(os.path.join(rdir, "refs")) == ["main"],
              f"rename over: the temp file is gone, refs/ lists {os.listdir(os.path.join(rdir, 'refs'))}")
        check(config_of(read(ref).decode()) == 2, "rename over: the snapshot the ref names has B's bytes")
        with open(tmpf, "w") as f:
            f.write(a)
        os.replace(tmpf, os.path.join(rdir, "refs", "v1"))
        check(read(os.path.join(rdir, "refs", "v1")) == a.encode()
              and sorted(os.listdir(os.path.join(rdir, "refs"))) == ["main", "v1"],
              "rename onto a new ref: refs/v1 = A, listed")
        with open(ref, "w") as f:  # the client's last word: A (the Hub says B)
            f.write(a)

        # ---- remounts keep what was written
        remount(offline, "remounted offline")
        got = (read(ref).decode(), read(os.path.join(rdir, "refs", "v1")).decode())
        check(got == (a, a), f"offline remount: refs/main = A, refs/v1 = A (persisted) {[g[:8] for g in got]}")
        check(config_of(read(ref).decode()) == 1, "offline remount: the snapshot refs/main names is A's")
        remount(online, "remounted online, no --repo")
        check(read(ref) == a.encode(), "online remount without --repo: refs/main = A")
        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = None
        check(overlay_refs() == [], f"no refs file in the real directory {overlay_refs()}")

        # ---- a refs file in the real directory is absorbed
        os.makedirs(os.path.join(mnt, REPO, "refs"), exist_ok=True)
        with open(os.path.join(mnt, REPO, "refs", "main"), "w") as f:
            f.write(b)
        with open(os.path.join(mnt, REPO, "refs", "main.deadbeef.tmp"), "w") as f:
            f.write(a)
        remount(offline, "remounted offline over a real refs/main")
        check(read(ref) == b.encode(), "the real refs/main's value (B) is the ref's")
        check(sorted(os.listdir(os.path.join(rdir, "refs"))) == ["main", "main.deadbeef.tmp", "v1"],
              "a leftover temp file is not made a ref")
        os.unlink(os.path.join(rdir, "refs", "main.deadbeef.tmp"))
        with open(ref, "w") as f:
            f.write(a)
        check(read(ref) == a.encode(), "a write after the absorbed file: refs/main = A")
        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = None
        check(overlay_refs() == ["main"] and
              open(os.path.join(mnt, REPO, "refs", "main")).read() == b,
              f"the real refs/main is kept as it was (B), only hidden {overlay_refs()}")

        # ---- the Hub moves main: a refresh through the running mount wins
        remount(online, "remounted online")
        write_src(src, 3)
        c = ingest(origin_exe, data, "org/r", src)
        check(read(ref) == a.encode(), "before the refresh: refs/main = the client's A")
        r = subprocess.run([zestfs, "pull", "--store", store, "--endpoint", origin.url, "-q", "org/r"],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f"zestfs pull org/r through the mount (exit {r.returncode}) {r.stderr[-400:]}")
        check(read(ref) == c.encode(), "after the Hub moved main: the refresh replaced the client's value (C)")
        check(config_of(read(ref).decode()) == 3, "the snapshot refs/main names is C's")
        # ... and at a remount with --repo
        with open(ref, "w") as f:
            f.write(b)
        check(read(ref) == b.encode(), "a client writes B again")
        write_src(src, 4)
        d = ingest(origin_exe, data, "org/r", src)
        remount([*online, "--repo", "org/r"], "remounted with --repo org/r after the Hub moved main")
        check(read(ref) == d.encode(), "remount with --repo: refs/main = the Hub's D, the client's B dropped")
        check(config_of(read(ref).decode()) == 4, "the snapshot refs/main names is D's")
        check(read(os.path.join(rdir, "refs", "v1")) == a.encode(), "refs/v1 (not refreshed) keeps the client's A")
        remount(offline, "remounted offline")
        check(read(ref) == d.encode(), "offline: the Hub's D persisted")
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
