#!/usr/bin/env python3
"""test_priority.py ZESTFS [ZESTFS_ORIGIN] — reads come before background
fills on the network.

A 96 MB safetensors-like model is served by zestfs-origin on loopback with
its bandwidth capped (total_bps 24 MB/s, shared by all responses).  The file
is opened and kept open while `zestfs pull` through the mount fills all of
it in the background.  While that fill's transfers are in flight, a 4 KiB
pread near the end of the file (a window the fill has not reached) must be
answered byte-exact, and zestfs must have held (paused) fill transfers while
the read's ran (`fetches_held` in `zestfs status --json`).  The fill then
completes: with the origin refusing every xorb request, the whole file reads
byte-exact from the store, and the origin sent about one copy of the file's
xorb ranges (held transfers resumed, nothing fetched twice).
Exit 0 pass, 1 fail, 77 skip."""
import json, os, random, subprocess, sys, time
import urllib.request

import fsutil
from fsutil import MiB, Origin, knobs, mount, sha


def main():
    run = fsutil.start("zestfs-prio-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt"))
    os.mkdir(mnt)
    os.mkdir(src)
    body = fsutil.safetensors_like(random.Random(7), 96_000_000)
    open(os.path.join(src, "model.safetensors"), "wb").write(body)
    commit = fsutil.ingest(origin_exe, data, "org/prio", src)
    origin = Origin(origin_exe, data, tmp)
    proc = None

    def status():
        r = subprocess.run([zestfs, "status", "--json", "--store", store], capture_output=True,
                           text=True, timeout=30)
        return json.loads(r.stdout)

    try:
        with urllib.request.urlopen(f"{origin.url}/api/models/org/prio/tree/{commit}") as r:
            entry = [e for e in json.load(r) if e["path"] == "model.safetensors"][0]
        xet_hash = entry.get("xetHash") or entry.get("xet_hash")
        total = sum(e - s + 1 for _, s, e in fsutil.xorb_ranges(origin, "org/prio", commit, xet_hash))
        knobs(origin, total_bps=24_000_000)
        origin.reset()
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/prio", "--store", store,
                                   "--no-p2p"], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        blob = os.path.join(mnt, "models--org--prio", "snapshots", commit, "model.safetensors")
        fd = os.open(blob, os.O_RDONLY)
        # the fill of the whole file: a pull through the mount; wait until it has
        # transfers in flight past the first window
        env = fsutil.guard_env(dict(os.environ, HF_TOKEN=""))  # through the mount: its control socket
        pull = subprocess.Popen([zestfs, "pull", "--store", store, "org/prio"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=env)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            st = status()
            if st["bytes_by_source"]["cdn"] >= 8 * MiB and st["fetches_in_flight"] >= 1:
                break
            time.sleep(0.05)
        check(st["fetches_in_flight"] >= 1, f"the pull's fill is under way ({st['fetches_in_flight']} "
              f"fetches in flight, {st['bytes_by_source']['cdn']} bytes in)")
        off = len(body) - 5 * MiB
        got = os.pread(fd, 4096, off)
        check(got == body[off:off + 4096], "a read past the fill's front is answered byte-exact")
        st = status()
        check(st["fetches_held"] >= 1,
              f"fill transfers were held while the read's ran (fetches_held {st['fetches_held']})")
        check(st["reads"]["errors"] == 0, "no read errors")
        # the fill goes on and completes
        try:
            err = pull.communicate(timeout=120)[1]
        except subprocess.TimeoutExpired:
            pull.kill()
            err = pull.communicate()[1]
        check(pull.returncode == 0, f"the pull exits 0 ({err.strip()[-300:]})")
        check(fsutil.sanitizer_report(err) is None, "no sanitizer report from the pull")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and origin.stats()["xorb_bytes_total"] < total:
            time.sleep(0.1)
        time.sleep(0.5)  # the last runs are stored
        sent = origin.stats()["xorb_bytes_total"]
        check(total <= sent <= total * 1.1,
              f"the fill completed with about one copy sent ({sent} of {total} xorb bytes)")
        knobs(origin, total_bps=0, refuse_xorbs=1)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        whole = b""
        while len(whole) < len(body):
            b = os.pread(fd, MiB, len(whole))
            if not b:
                break
            whole += b
        check(sha(whole) == sha(body), "the whole file reads byte-exact from the store")
        os.close(fd)
        knobs(origin, refuse_xorbs=0)
        check(fsutil.unmount(proc, mnt) == 0, "unmounted cleanly")
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    return run.finish(proc, mnt, origin)


if __name__ == "__main__":
    sys.exit(main())
