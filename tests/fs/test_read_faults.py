#!/usr/bin/env python3
"""test_read_faults.py ZESTFS [ZESTFS_ORIGIN] — the read path under origin
faults (zestfs-origin knobs, set through /_origin/knobs while mounted).

  - every 4th request answered 503 and every 3rd body truncated: whole-file
    reads are still byte-exact (requests and windows are retried);
  - every request failing: a read fails with EIO (never a short read) within
    the retry deadline; once the origin is healthy the same read succeeds;
  - signed URLs expiring before use (url_ttl 1 s, latency 2.2 s): the window
    is retried from a fresh reconstruction each time (logged), then EIO;
    healthy again, the bytes come;
  - a sequential reader gets windows fetched ahead of it, each once.
Exit 0 pass, 1 fail, 77 skip."""
import json, os, random, subprocess, sys, time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, mount, unmount  # noqa: E402


def knobs(origin, **kw):
    req = urllib.request.Request(origin.url + "/_origin/knobs", data=json.dumps(kw).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=30).read()


def main():
    run = fsutil.start("zestfs-faults-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt"))
    os.makedirs(src)
    os.mkdir(mnt)
    rng = random.Random(99)
    files = {"a.safetensors": rng.randbytes(12_000_000), "b.safetensors": rng.randbytes(9_000_000),
             "c.safetensors": rng.randbytes(5_000_000), "d.safetensors": rng.randbytes(40_000_000),
             "config.json": b'{"a": 1}'}
    for p, b in files.items():
        open(os.path.join(src, p), "wb").write(b)
    r = subprocess.run([origin_exe, "ingest", data, "org/faults", "-q", src], capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        print("ingest failed:", r.stderr)
        return 1
    commit = r.stdout.strip().split()[-1]
    origin = Origin(origin_exe, data, tmp)
    proc = None
    try:
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/faults", "--store", store], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        snap = os.path.join(mnt, "models--org--faults", "snapshots", commit)

        knobs(origin, fail_every=4, truncate_every=3)
        got = open(os.path.join(snap, "a.safetensors"), "rb").read()
        st = origin.stats()
        check(got == files["a.safetensors"], "503s and truncated bodies: a.safetensors byte-exact")
        check(st["faults"] > 0, f"faults were injected ({st['faults']})")
        check(open(os.path.join(snap, "config.json"), "rb").read() == files["config.json"],
              "503s: config.json byte-exact")

        knobs(origin, fail_every=1, truncate_every=0)
        t0 = time.time()
        with open(os.path.join(snap, "b.safetensors"), "rb", buffering=0) as f:
            try:
                got = os.pread(f.fileno(), 65536, 0)
                check(False, f"all requests failing: read returned {len(got)} bytes, not EIO")
            except OSError as e:
                check(e.errno == 5, f"all requests failing: EIO (errno {e.errno})")
            dt = time.time() - t0
            print(f"figure: every request failing: EIO after {dt:.1f} s")
            # a generous bound: the deadlines end it at all (no hang); the figure is for benches
            check(dt < 150, f"EIO, not a hang: within 150 s ({dt:.1f} s)")
            knobs(origin, fail_every=0)
            check(os.pread(f.fileno(), 65536, 0) == files["b.safetensors"][:65536],
                  "healthy again: the same read succeeds")
        check(open(os.path.join(snap, "b.safetensors"), "rb").read() == files["b.safetensors"],
              "b.safetensors byte-exact")

        knobs(origin, url_ttl=1, latency_ms=2200)
        with open(os.path.join(snap, "c.safetensors"), "rb", buffering=0) as f:
            try:
                got = os.pread(f.fileno(), 4096, 0)
                check(False, f"expiring URLs: read returned {len(got)} bytes, not EIO")
            except OSError as e:
                check(e.errno == 5, f"expiring URLs: EIO after the retries (errno {e.errno})")
            knobs(origin, url_ttl=0, latency_ms=0)
            check(os.pread(f.fileno(), 4096, 0) == files["c.safetensors"][:4096],
                  "healthy again: the bytes come")
            # the rest of its window may still be in flight (the read was answered from the
            # first piece): read it all, so that it is not counted below
            check(f.read() == files["c.safetensors"], "c.safetensors byte-exact")
        log.flush()
        log.seek(0)
        out = log.read()
        check(out.count("Key has expired, trying again") >= 2,
              "expired URLs were retried with fresh reconstructions")

        # sequential prefetch: after 6 MiB read in order, the next windows come unasked
        origin.reset()
        d = files["d.safetensors"]
        with open(os.path.join(snap, "d.safetensors"), "rb", buffering=0) as f:
            got = b"".join(f.read(128 << 10) for _ in range(48))
        check(got == d[:6 * MiB], "d.safetensors head byte-exact")
        deadline = time.time() + 60  # generous: a slow machine (ASan, shared cores) is slow
        while True:
            xb = origin.stats()["xorb_bytes_total"]
            if xb >= 16 * MiB or time.time() > deadline:
                break
            time.sleep(0.05)
        check(16 * MiB <= xb <= len(d) + MiB, f"a sequential reader is prefetched ahead ({xb} bytes fetched)")
        check(open(os.path.join(snap, "d.safetensors"), "rb").read() == d, "d.safetensors byte-exact")
        xb = origin.stats()["xorb_bytes_total"]
        check(xb <= len(d) * 1.05, f"prefetch fetched it once ({xb} bytes for {len(d)})")
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
