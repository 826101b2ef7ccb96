#!/usr/bin/env python3
"""test_big_blob.py ZESTFS [ZESTFS_ORIGIN] — a non-Xet file larger than the
64 MiB kept in memory (a git file with no Xet hash, as a mirror without Xet
serves them), against zestfs-origin on loopback:
  * the first read downloads it whole, checks its git blob sha1 and only then
    answers: sequential, random and mmap reads are byte-exact, and the file
    came from the origin once;
  * a copy that does not match its sha1 (the origin's blob altered on disk)
    is never served: EIO, and the next read after the origin is fixed works;
  * with a store cap below the file, windows evicted after the download are
    fetched again alone and checked against the chunk hashes kept then; an
    altered window on the origin gives EIO, not wrong bytes;
  * kill -9 in the middle of the download, then a remount: every byte right;
  * an --offline remount serves it from the store; `zestfs pull` fills it;
  * the same file as LFS without a Xet hash (--repo-json): its sha256 decides.
Exit 0 pass, 1 fail, 77 skip."""
import glob, hashlib, json, mmap, os, random, subprocess, sys, time

import fsutil
from fsutil import MiB, Origin, flip, ingest, mount, read_all, sha, unmount

SIZE = 100 * MiB + 12345



def origin_blob(data, oid):
    p = glob.glob(os.path.join(data, "**", oid), recursive=True)
    return p[0] if p else None


def main():
    run = fsutil.start("zestfs-bigblob-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, data, mnt = (os.path.join(tmp, n) for n in ("src", "data", "mnt"))
    os.makedirs(src)
    os.mkdir(mnt)
    rng = random.Random(5)
    # no NUL byte: zestfs-origin keeps it a regular (non-Xet) git file
    body = bytes(rng.randrange(1, 256) for _ in range(1 << 16)) * (SIZE // (1 << 16) + 1)
    body = bytearray(body[:SIZE])
    for i in range(0, SIZE, 4096):  # every page different
        body[i:i + 8] = (i + 1).to_bytes(8, "little").replace(b"\0", b"\1")
    body = bytes(body)
    open(os.path.join(src, "big.jsonl"), "wb").write(body)
    open(os.path.join(src, "config.json"), "w").write('{"a": 1}\n')
    commit = ingest(origin_exe, data, "org/big", src, "--xet-threshold", str(1 << 40))
    oid = fsutil.git_sha1(body)
    blob = origin_blob(data, oid)
    origin = Origin(origin_exe, data, tmp)
    proc = None
    want = sha(body)
    rel = os.path.join("models--org--big", "snapshots", commit, "big.jsonl")
    try:
        check(blob is not None, "the origin keeps big.jsonl as a regular git blob")
        store = os.path.join(tmp, "store")
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/big", "--store", store], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        path = os.path.join(mnt, rel)
        check(os.path.getsize(path) == SIZE, "size known before any byte")

        # a copy that does not match its sha1 is never served
        flip(blob, SIZE // 2)
        try:
            with open(path, "rb") as f:
                f.read(4096)
            check(False, "an altered download is refused")
        except OSError as e:
            check(e.errno == 5, f"an altered download is refused with EIO ({e})")
        flip(blob, SIZE // 2)

        origin.reset()
        with open(path, "rb") as f:
            f.seek(SIZE - 5000)
            check(f.read(5000) == body[-5000:], "first read (at the end) byte-exact")
        got = origin.stats()["bytes_total"]
        print(f"first read: {got} bytes from the origin for a {SIZE} byte file")
        check(SIZE <= got <= SIZE * 1.02, "the file came from the origin once")
        origin.reset()
        check(read_all(path) == want, "sequential read byte-exact")
        with open(path, "rb") as f:
            ok = True
            for _ in range(200):
                off = rng.randrange(0, SIZE - 70000)
                n = rng.randrange(1, 70000)
                f.seek(off)
                ok &= f.read(n) == body[off:off + n]
            check(ok, "200 random reads byte-exact")
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            check(hashlib.sha256(m).hexdigest() == want, "mmap read byte-exact")
            m.close()
        check(origin.stats()["bytes_total"] < 1 * MiB, "reads after the download fetch nothing")
        z = lambda *a: subprocess.run([zestfs, *a], capture_output=True, text=True, timeout=300)  # noqa: E731
        open(os.path.join(os.path.dirname(path), "config.json")).read()
        r = z("verify", "--store", store, "org/big")
        check(r.returncode == 0 and "2 files, 2 ok" in r.stdout, f"verify: ok ({r.stdout.strip()})")
        # evict drops its windows; a read fetches them again, each checked alone
        r = z("evict", "--store", store, "org/big")
        check(r.returncode == 0, f"evict org/big ({r.stdout.strip()} {r.stderr.strip()})")
        r = z("verify", "--store", store, "org/big")
        check("big.jsonl" in r.stdout and "missing" in r.stdout, f"verify after evict: missing ({r.stdout.strip()})")
        fsutil.drop_cache(path)
        origin.reset()
        check(read_all(path) == want, "after evict: byte-exact")
        got = origin.stats()["bytes_total"]
        check(SIZE <= got <= SIZE * 1.02, f"after evict: fetched again once ({got})")
        # pin keeps it stored
        r = z("pin", "--store", store, "org/big")
        check(r.returncode == 0, f"pin org/big ({r.stdout.strip()} {r.stderr.strip()})")
        r = z("evict", "--store", store, "org/big")
        check(r.returncode != 0 and "pinned" in r.stderr, f"evict of the pinned repo refused ({r.stderr.strip()})")
        z("unpin", "--store", store, "org/big")
        check(unmount(proc, mnt) == 0, "unmounted")
        proc = None

        # offline remount: from the store
        proc = mount(zestfs, mnt, ["--offline", "--store", store], log)
        check(os.path.ismount(mnt) and read_all(path) == want, "offline remount serves it byte-exact")
        check(unmount(proc, mnt) == 0, "unmounted")
        proc = None

        # a store cap below the file: evicted windows come back alone, checked
        store2 = os.path.join(tmp, "store2")
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/big", "--store", store2,
                                   "--store-size", "40M"], log)
        origin.reset()
        check(read_all(path) == want, "cap 40M: read byte-exact")
        dl = origin.stats()["bytes_total"]
        with open(path, "rb") as f:
            fsutil.drop_cache(path)
            origin.reset()
            f.seek(1000)
            check(f.read(100000) == body[1000:101000], "cap 40M: an evicted window read again")
            again = origin.stats()["bytes_total"]
            print(f"cap 40M: {dl} bytes for the download, {again} to read an evicted window again")
            check(0 < again <= 9 * MiB, "cap 40M: only that window was fetched again")
            flip(blob, 20 * MiB + 77)
            fsutil.drop_cache(path)
            try:
                f.seek(20 * MiB)
                d = f.read(4096)
                check(False, f"cap 40M: an altered window is refused (got {len(d)} bytes, "
                      f"{'right' if d == body[20 * MiB:20 * MiB + 4096] else 'WRONG'})")
            except OSError as e:
                check(e.errno == 5, f"cap 40M: an altered window is refused with EIO ({e})")
            flip(blob, 20 * MiB + 77)
            fsutil.drop_cache(path)
            f.seek(20 * MiB)
            check(f.read(4096) == body[20 * MiB:20 * MiB + 4096], "cap 40M: that window after the fix")
        check(unmount(proc, mnt) == 0, "unmounted")
        proc = None

        # kill -9 in the middle of the download, then a remount
        store3 = os.path.join(tmp, "store3")
        fsutil.knobs(origin, total_bps=40 * MiB)
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/big", "--store", store3], log)
        reader = subprocess.Popen(["cat", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.2)
        proc.kill()
        proc.wait()
        reader.kill()
        reader.wait()
        subprocess.run(["fusermount3", "-uz", mnt], stderr=subprocess.DEVNULL)
        fsutil.knobs(origin, total_bps=0)
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/big", "--store", store3], log)
        check(os.path.ismount(mnt) and read_all(path) == want, "after kill -9 mid-download: byte-exact")
        check(unmount(proc, mnt) == 0, "unmounted")
        proc = None

        # the same bytes as an LFS file without a Xet hash (sha256 etag): the repo
        # described by --repo-json, the bytes from the origin's resolve URL
        lfs = sha(body)
        model = {"format": 1, "type": "model", "id": "org/big", "refs": {"main": commit},
                 "commits": {commit: {"date": 1767225600, "files": [
                     {"path": "big.jsonl", "size": SIZE, "oid": oid, "lfs_sha256": lfs}]}}}
        mj = os.path.join(tmp, "lfs.json")
        json.dump(model, open(mj, "w"))
        store6 = os.path.join(tmp, "store6")
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo-json", mj, "--store", store6], log)
        blobs = os.path.join(mnt, "models--org--big", "blobs")
        check(os.path.ismount(mnt) and os.path.getsize(os.path.join(blobs, lfs)) == SIZE,
              "LFS without Xet: blobs/<sha256> presented")
        flip(blob, 12345)
        try:
            open(path, "rb").read(100)
            check(False, "LFS without Xet: a copy that fails its sha256 is refused")
        except OSError as e:
            check(e.errno == 5, f"LFS without Xet: a copy that fails its sha256 is refused ({e})")
        flip(blob, 12345)
        check(read_all(path) == want, "LFS without Xet: byte-exact once it matches")
        check(unmount(proc, mnt) == 0, "unmounted")
        proc = None

        # pull fills it; an offline mount then serves it
        store4 = os.path.join(tmp, "store4")
        r = subprocess.run([zestfs, "pull", "--store", store4, "--endpoint", origin.url, "org/big"],
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, f"pull exits 0 ({r.stderr.strip()[-200:]})")
        proc = mount(zestfs, mnt, ["--offline", "--store", store4], log)
        check(os.path.ismount(mnt) and read_all(path) == want, "offline after pull: byte-exact")
        check(unmount(proc, mnt) == 0, "unmounted")
        proc = None
    finally:
        rc = run.finish(proc, mnt, origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())
