#!/usr/bin/env python3
"""test_adopt_lfs.py ZESTFS [ZESTFS_ORIGIN] — earlier downloads of LFS files
without a Xet hash (etag = sha256 of the content) are adopted too (issue 18
item 6): verified by their sha256 before the overlay shows them, read locally,
and a corrupted one is refused and fetched.

zestfs-origin keeps the files as regular git blobs (--xet-threshold past
their size, no NUL byte); the repo is presented from --repo-json as LFS files
with `lfs_sha256` and no Xet hash (as tests/fs/test_big_blob.py does), so the
mount's resolve URL fetches their bytes.  The cache holds
models--org--lfs/blobs/<sha256> for both files as an earlier download left
them, one of them corrupted.  Mounted over it:
  - adoption ends with 1 adopted, 1 refused (log);
  - the good file reads byte-exact with 0 bytes from the origin;
  - the corrupted one reads byte-exact (the origin's bytes, fetched);
  - after unmount the user's files are byte-for-byte as they were.
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin)."""
import json, os, random, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, mount, sha, unmount  # noqa: E402
from test_p2p import wait_log  # noqa: E402


def text_bytes(rng, n):
    """n bytes without NUL: zestfs-origin keeps them a regular git file."""
    return bytes(rng.randrange(1, 256) for _ in range(1 << 14)) * (n // (1 << 14)) + b"\n" * (n % (1 << 14))


def main():
    run = fsutil.start("zestfs-adopt-lfs-")
    if run is None:
        return 77
    check, tmp, zestfs = run.check, run.tmp, run.zestfs
    data, cache, store, src = (os.path.join(tmp, x) for x in ("data", "cache", "store", "src"))
    rng = random.Random(18061)
    files = {"good.bin": text_bytes(rng, 2 * MiB + 5), "bad.bin": text_bytes(rng, 1 * MiB + 7)}
    os.makedirs(src)
    for n, b in files.items():
        open(os.path.join(src, n), "wb").write(b)
    commit = fsutil.ingest(run.origin_exe, data, "org/lfs", src, "--xet-threshold", str(1 << 40))
    origin = Origin(run.origin_exe, data, tmp)
    proc = None
    try:
        model = {"format": 1, "type": "model", "id": "org/lfs", "refs": {"main": commit},
                 "commits": {commit: {"date": 1767225600, "files": [
                     {"path": n, "size": len(b), "oid": fsutil.git_sha1(b), "lfs_sha256": sha(b)}
                     for n, b in files.items()]}}}
        mj = os.path.join(tmp, "lfs.json")
        json.dump(model, open(mj, "w"))
        # the earlier downloads, as huggingface_hub lays them out (read-only blobs,
        # snapshot links), bad.bin corrupted
        rd = os.path.join(cache, "models--org--lfs")
        for d in ("blobs", os.path.join("snapshots", commit), "refs"):
            os.makedirs(os.path.join(rd, d))
        open(os.path.join(rd, "refs", "main"), "w").write(commit)
        for n, b in files.items():
            blob = os.path.join(rd, "blobs", sha(b))
            body = bytearray(b)
            if n == "bad.bin":
                body[12345] ^= 0x55
            open(blob, "wb").write(bytes(body))
            os.chmod(blob, 0o444)
            os.symlink(os.path.join("..", "..", "blobs", sha(b)), os.path.join(rd, "snapshots", commit, n))
        before = {os.path.relpath(os.path.join(d, n), cache): (os.readlink(os.path.join(d, n))
                  if os.path.islink(os.path.join(d, n)) else fsutil.read_all(os.path.join(d, n)))
                  for d, _, ns in os.walk(cache) for n in ns}

        logp = os.path.join(tmp, "zestfs.log")
        proc = mount(zestfs, cache, ["--endpoint", origin.url, "--store", store, "--repo-json", mj,
                                     "--no-p2p"], open(logp, "a"))
        check(os.path.ismount(cache), "mounted over the cache")
        m = wait_log(logp, r"adoption done: (\d+) adopted, (\d+) refused, (\d+) not imported", 120)
        check(m is not None and m.groups()[:2] == ("1", "1"),
              f"adoption: 1 adopted, 1 refused ({m.groups() if m else None})")
        log = open(logp).read()
        check("sha256 verified" in log, "the good download verified by its sha256 (log)")
        check("refused: its sha256 is" in log, "the corrupted download refused (log)")
        snap = os.path.join(rd, "snapshots", commit)
        origin.reset()
        check(fsutil.read_all(os.path.join(snap, "good.bin")) == sha(files["good.bin"]),
              "good.bin byte-exact through the mount")
        got = origin.stats()["bytes_total"]
        check(got == 0, f"good.bin read locally: {got} bytes from the origin")
        check(fsutil.read_all(os.path.join(snap, "bad.bin")) == sha(files["bad.bin"]),
              "bad.bin byte-exact through the mount: the origin's bytes, not the corrupted copy")
        got = origin.stats()["bytes_total"]
        check(got >= len(files["bad.bin"]), f"bad.bin fetched ({got} bytes from the origin)")
        rc = unmount(proc, cache)
        proc = None
        check(rc == 0, f"unmounted (exit {rc})")
        after = {os.path.relpath(os.path.join(d, n), cache): (os.readlink(os.path.join(d, n))
                 if os.path.islink(os.path.join(d, n)) else fsutil.read_all(os.path.join(d, n)))
                 for d, _, ns in os.walk(cache) for n in ns}
        check(after == before, f"the user's files are unchanged ({len(before)} entries; "
                               f"changed: {sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))[:4]})")
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        if proc is not None:
            unmount(proc, cache)
        origin.stop()
    return run.finish(None, cache, None)


if __name__ == "__main__":
    sys.exit(main())
