#!/usr/bin/env python3
"""test_flat_verify.py ZESTFS [ZESTFS_ORIGIN] — a whole copy (fs/flat.c)
whose sha256 does not match drops the store segments it was built from, so
they are fetched and verified again (issue 19, item 5), against
zestfs-origin on loopback:
  * a 24 MiB blob is read (fetched and stored: segments this process wrote
    are trusted, their chunk hashes are not re-checked at each read);
  * a byte in every MiB of the stored segments is altered on disk
    (fsutil.flip);
  * the blob is opened a second time and closed: the copy is built from the
    store, fails its sha256, is not made, and every segment of the blob's
    xorbs is gone from the store;
  * the next read (page cache dropped) fetches again from the origin and is
    byte-exact; the store holds the blob again.
Skips (77) where the kernel or the privileges allow no passthrough.
Exit 0 pass, 1 fail, 77 skip."""
import glob, json, os, random, subprocess, sys, time

import fsutil
from fsutil import MiB, Origin, ingest, mount, unmount

SIZE = 24 * MiB + 777


def status(zestfs, store):
    r = subprocess.run([zestfs, "status", "--json", "--store", store], capture_output=True, text=True,
                       timeout=120)
    return json.loads(r.stdout) if r.returncode == 0 else {}


def segments(store):
    return {p: os.path.getsize(p) for p in glob.glob(os.path.join(store, "xorbs", "*", "*"))}


def main():
    run = fsutil.start("zestfs-flatv-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, data, mnt, store = (os.path.join(tmp, n) for n in ("src", "data", "mnt", "store"))
    os.makedirs(src)
    os.mkdir(mnt)
    body = random.Random(19).randbytes(SIZE)
    open(os.path.join(src, "model.bin"), "wb").write(body)
    commit = ingest(origin_exe, data, "org/fv", src)
    origin = Origin(origin_exe, data, tmp)
    path = os.path.join(mnt, "models--org--fv", "snapshots", commit, "model.bin")
    want = fsutil.sha(body)
    proc = None
    try:
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/fv", "--store", store,
                                   "--store-size", str(1 << 30)], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        if not status(zestfs, store).get("passthrough", {}).get("on"):
            print("skip: no FUSE passthrough here (whole copies are made only for it)")
            unmount(proc, mnt)
            proc = None
            run.finish(proc, mnt, origin)
            return 77
        check(fsutil.read_all(path) == want, "first read byte-exact (fetched, stored)")
        segs = segments(store)
        check(sum(segs.values()) >= SIZE, f"the blob is stored ({len(segs)} segments)")
        # a byte in every MiB of every segment's data (it follows a header of
        # 104 + 36 bytes per chunk): whichever segment a chunk is read from
        for p, n in segs.items():
            for off in range(256 << 10, n, MiB):
                fsutil.flip(p, off, 0x20)
        victim = max(segs, key=segs.get)
        check(fsutil.read_all(path) == want, "second read byte-exact (page cache)")
        t = time.time() + 60
        st = {}
        while time.time() < t:
            st = status(zestfs, store).get("passthrough", {})
            if st.get("failures", 0) >= 1 and not st.get("busy"):
                break
            time.sleep(0.2)
        check(st.get("failures") == 1 and st.get("flats") == 0,
              f"the copy built from the altered store failed its sha256 ({st})")
        t = time.time() + 30
        while time.time() < t and os.path.exists(victim):
            time.sleep(0.1)
        left = segments(store)
        check(not os.path.exists(victim) and not left,
              f"every segment it was built from is dropped ({len(left)} left)")
        log.flush()
        check("fetched and verified again" in open(log.name).read(), "the drop is logged")
        fsutil.drop_cache(path)
        got = fsutil.read_all(path)
        check(got == want, "the next read is byte-exact")
        check(sum(segments(store).values()) >= SIZE,
              f"... fetched again and stored again ({len(segments(store))} segments)")
        check(fsutil.read_all(path) == want, "and again from the store")
        check(unmount(proc, mnt) == 0, "unmounted, exit 0")
        proc = None
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    return run.finish(proc, mnt, origin)


if __name__ == "__main__":
    sys.exit(main())
