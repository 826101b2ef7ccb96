#!/usr/bin/env python3
"""test_stress.py ZESTFS ZESTFS_ORIGIN MMAP_FAULT CASE — stress through a real
FUSE mount of zestfs against zestfs-origin on loopback (issue #4 part 6,
issue #7 part 4).  CASE is one of:

  mmap   32 threads (tests/fs/mmap_fault.c) fault one cold mmap'd 256 MiB
         generated safetensors file, each in its own random permutation of
         all its 4 KiB pages, plus 2 MiB strided pread runs; every page and
         run equals the original, the SHA-256 of the whole file read back
         equals the original's, and the origin sent about one copy (ratio
         printed, asserted <= 1.15).
  cap    --store-size 48M and a 96 MiB model read completely twice: every
         byte right both times; the store's xorbs/ directory, sampled every
         10 ms during the reads, never exceeds the cap by more than the
         ranges in flight (asserted: cap + 32 MiB; the peak is printed);
         origin egress printed (about two copies: the cap forces a refetch).
  load   64 concurrent readers for LOAD_SECONDS (default 30, env
         ZESTFS_LOAD_SECONDS): 32 threads in this process and 32 processes,
         half with pread and half with mmap, random files, offsets and sizes
         (1 B .. 4 MiB) over 4 files (94 MB, store cap 64 MiB so ranges are
         evicted and refetched all along; the page cache of the mounted files
         is dropped every 200 ms so reads reach zestfs): every reader finishes (no deadlock:
         joined within a bound), every byte right; prints reads, bytes,
         p50/p99 latency and the zestfs process's peak RSS (VmHWM, asserted
         <= 1 GiB: "bounded"; 3 GiB for an ASan build).
Nothing asserts a duration except liveness bounds.  Exit 0 pass, 1 fail,
77 skip."""
import json, mmap, os, random, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, mount, unmount  # noqa: E402


def store_bytes(store):
    """Bytes the store's segment files occupy (what du counts)."""
    n = 0
    for d, _, fs in os.walk(os.path.join(store, "xorbs")):
        for f in fs:
            try:
                n += os.lstat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    for d, _, fs in os.walk(os.path.join(store, "tmp")):
        for f in fs:
            try:
                n += os.lstat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return n


def case_mmap(run, origin_exe, helper):
    check, tmp, log = run.check, run.tmp, run.log
    src, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt"))
    os.makedirs(src)
    os.mkdir(mnt)
    ref = os.path.join(src, "model.safetensors")
    blob = fsutil.safetensors_like(random.Random(4256), 256 * MiB)
    with open(ref, "wb") as f:
        f.write(blob)
    want = fsutil.sha(blob)
    del blob
    commit = fsutil.ingest(origin_exe, data, "org/big", src, "--scheme", "none")
    origin = Origin(origin_exe, data, tmp)
    proc = None
    try:
        proc = mount(run.zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/big", "--store", store], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        path = os.path.join(mnt, "models--org--big", "snapshots", commit, "model.safetensors")
        size = os.path.getsize(ref)
        origin.reset()
        t0 = time.time()
        r = subprocess.run([helper, path, ref, "32", "1234"], capture_output=True, text=True, timeout=900)
        dt = time.time() - t0
        print(r.stderr[-2000:], end="")
        res = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
        check(r.returncode == 0, f"mmap_fault exit {r.returncode} {res}")
        npages = (size + 4095) // 4096
        check(res.get("pages") == 32 * npages and res.get("bad_pages") == 0,
              f"32 threads x {npages} pages in random order: {res.get('bad_pages')} bad pages")
        check(res.get("runs", 0) > 0 and res.get("bad_runs") == 0,
              f"{res.get('runs')} strided 2 MiB runs: {res.get('bad_runs')} bad, {res.get('errors')} errors")
        xb = origin.stats()["xorb_bytes_total"]
        ratio = xb / size
        print(f"figure: 32 threads faulted {32 * npages} pages + {res.get('runs')} runs of a cold "
              f"256 MiB mmap in {dt:.1f} s; origin xorb egress {xb} bytes = {ratio:.3f} x the file")
        check(ratio <= 1.15, f"origin egress about one copy ({ratio:.3f})")
        check(fsutil.read_all(path) == want, "SHA-256 of the whole file through the mount")
        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = None
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    return proc, mnt, origin


def case_cap(run, origin_exe, helper):
    check, tmp, log = run.check, run.tmp, run.log
    src, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt"))
    os.makedirs(src)
    os.mkdir(mnt)
    cap = 48 * MiB
    blob = fsutil.safetensors_like(random.Random(4848), 2 * cap)
    with open(os.path.join(src, "model.safetensors"), "wb") as f:
        f.write(blob)
    commit = fsutil.ingest(origin_exe, data, "org/cap", src, "--scheme", "none")
    origin = Origin(origin_exe, data, tmp)
    proc = None
    try:
        proc = mount(run.zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/cap", "--store", store,
                                       "--store-size", str(cap)], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        path = os.path.join(mnt, "models--org--cap", "snapshots", commit, "model.safetensors")
        fsutil.knobs(origin, total_bps=64 * MiB)  # a few seconds of reading: many samples
        origin.reset()
        peak, samples, stop = [0], [0], threading.Event()

        def sampler():
            while not stop.is_set():
                peak[0] = max(peak[0], store_bytes(store))
                samples[0] += 1
                time.sleep(0.01)
        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        try:
            for i in (1, 2):
                fsutil.drop_cache(path)
                got = open(path, "rb").read()
                check(got == blob, f"read {i} of a model twice the cap: every byte right")
                # a random-order pass too: pages the cap evicted come back right
                rng = random.Random(i)
                with open(path, "rb", buffering=0) as f:
                    bad = 0
                    for _ in range(200):
                        o = rng.randrange(len(blob))
                        n = rng.randrange(1, 1 << 20)
                        if os.pread(f.fileno(), n, o) != blob[o:o + n]:
                            bad += 1
                check(bad == 0, f"read {i}: 200 random preads right ({bad} bad)")
        finally:
            stop.set()
            th.join()
        xb = origin.stats()["xorb_bytes_total"]
        final = store_bytes(store)
        print(f"figure: cap {cap} bytes, model {len(blob)}; store peak {peak[0]} bytes "
              f"({peak[0] / cap:.2f} x cap, {samples[0]} samples), after {final}; "
              f"origin egress {xb} bytes = {xb / len(blob):.2f} copies")
        check(peak[0] <= cap + 32 * MiB, f"store never above cap + 32 MiB in flight (peak {peak[0]})")
        check(final <= cap + 8 * MiB, f"store settles at the cap ({final})")
        check(xb >= len(blob), "egress shows the evicted ranges were fetched again")
        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = None
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    return proc, mnt, origin


LOAD_CAP = 64 * MiB  # below the files' total: evictions and refetches go on all along
LOAD_FILES = {"a.safetensors": 48 * MiB, "b.safetensors": 24 * MiB, "c.bin": 12 * MiB,
              "d.gguf": 6 * MiB + 12345}


def map_ref(path):
    """The original file, mmap'd (shared page cache, not 64 private copies)."""
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)


def reader(paths, refs, seconds, seed, use_mmap):
    """One reader: random file, offset and size until `seconds` pass.
    Returns (reads, bytes, bad, errors, latencies)."""
    rng = random.Random(seed)
    lat, nbytes, bad, errs = [], 0, 0, []
    maps = {}
    fds = {}
    try:
        for p in paths:
            fds[p] = os.open(p, os.O_RDONLY)
            if use_mmap:
                maps[p] = mmap.mmap(fds[p], 0, prot=mmap.PROT_READ)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            p = rng.choice(paths)
            size = len(refs[p])
            n = min(rng.choice((1, 100, 4096, 65536, 1 << 20, 4 << 20, rng.randrange(1, 4 << 20))), size)
            o = rng.randrange(size - n + 1)
            t0 = time.monotonic()
            try:
                got = maps[p][o:o + n] if use_mmap else os.pread(fds[p], n, o)
            except OSError as e:
                errs.append(e.errno)
                continue
            lat.append(time.monotonic() - t0)
            nbytes += len(got)
            if got != refs[p][o:o + n]:
                bad += 1
    finally:
        for m in maps.values():
            m.close()
        for fd in fds.values():
            os.close(fd)
    return len(lat), nbytes, bad, errs, lat


def case_load(run, origin_exe, helper):
    check, tmp, log = run.check, run.tmp, run.log
    src, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt"))
    os.makedirs(src)
    os.mkdir(mnt)
    rng = random.Random(6464)
    for name, n in LOAD_FILES.items():
        with open(os.path.join(src, name), "wb") as f:
            f.write(rng.randbytes(n))
    commit = fsutil.ingest(origin_exe, data, "org/load", src, "--scheme", "none")
    origin = Origin(origin_exe, data, tmp)
    fsutil.knobs(origin, latency_ms=5)
    seconds = float(os.environ.get("ZESTFS_LOAD_SECONDS", "30"))
    proc = None
    try:
        proc = mount(run.zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/load", "--store", store,
                                       "--store-size", str(LOAD_CAP)], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        snap = os.path.join(mnt, "models--org--load", "snapshots", commit)
        paths = [os.path.join(snap, n) for n in LOAD_FILES]
        srcs = [os.path.join(src, n) for n in LOAD_FILES]
        origin.reset()
        # 32 processes (this script in worker mode), then 32 threads here
        procs = []
        for i in range(32):
            procs.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(
                    {"paths": paths, "srcs": srcs, "seconds": seconds, "seed": 1000 + i,
                     "mmap": i % 2 == 1})], stdout=subprocess.PIPE, text=True))
        refs = {p: map_ref(s) for p, s in zip(paths, srcs)}
        results, peak = [], [0]
        stop = threading.Event()

        def sample():  # RSS samples; and the page cache dropped so reads reach zestfs
            k = 0
            while not stop.is_set():
                peak[0] = max(peak[0], fsutil.rss(proc.pid)[0])
                k += 1
                if k % 2 == 0:
                    for p in paths:
                        fsutil.drop_cache(p)
                time.sleep(0.1)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def th(i):
            results.append(reader(paths, refs, seconds, 2000 + i, i % 2 == 1))
        ths = [threading.Thread(target=th, args=(i,), daemon=True) for i in range(32)]
        for t in ths:
            t.start()
        bound = seconds + 180
        t_end = time.monotonic() + bound
        for t in ths:
            t.join(max(0.1, t_end - time.monotonic()))
        alive = sum(t.is_alive() for t in ths)
        for p in procs:
            try:
                out, _ = p.communicate(timeout=max(0.1, t_end - time.monotonic()))
                results.append(tuple(json.loads(out.strip().splitlines()[-1])))
            except (subprocess.TimeoutExpired, ValueError, IndexError):
                alive += 1
                p.kill()
                p.wait()
        stop.set()
        sampler.join()
        hwm = fsutil.rss(proc.pid)[1]
        check(alive == 0, f"all 64 readers finished within {bound:.0f} s ({alive} stuck)")
        reads = sum(r[0] for r in results)
        nbytes = sum(r[1] for r in results)
        bad = sum(r[2] for r in results)
        errs = [e for r in results for e in r[3]]
        lat = sorted(x for r in results for x in r[4])
        p50 = lat[len(lat) // 2] * 1000 if lat else 0
        p99 = lat[min(len(lat) - 1, len(lat) * 99 // 100)] * 1000 if lat else 0
        xb = origin.stats()["xorb_bytes_total"]
        print(f"figure: load {seconds:.0f} s, 64 readers (32 threads + 32 processes, read and mmap), "
              f"4 files {sum(LOAD_FILES.values())} bytes: {reads} reads, {nbytes} bytes "
              f"({nbytes / MiB / seconds:.0f} MiB/s), latency p50 {p50:.2f} ms p99 {p99:.2f} ms; "
              f"zestfs peak RSS {hwm / MiB:.1f} MiB (VmHWM; sampled peak {peak[0] / MiB:.1f} MiB); "
              f"origin xorb egress {xb} bytes")
        check(len(results) == 64 and reads > 0, f"64 readers reported ({len(results)}), {reads} reads")
        check(bad == 0, f"every read right ({bad} wrong)")
        check(not errs, f"no read failed ({len(errs)} errors: {sorted(set(errs))})")
        # ASan's shadow memory and quarantine (256 MiB) add to RSS: a looser bound there
        asan = b"__asan_init" in open(os.path.realpath(sys.argv[1]), "rb").read()
        bound = (3072 if asan else 1024) * MiB
        check(0 < hwm <= bound, f"zestfs RSS bounded (peak {hwm / MiB:.1f} MiB <= {bound // MiB} MiB"
              f"{' under ASan' if asan else ''})")
        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = None
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    return proc, mnt, origin


def worker_main(arg):
    a = json.loads(arg)
    refs = {p: map_ref(s) for p, s in zip(a["paths"], a["srcs"])}
    n, b, bad, errs, lat = reader(a["paths"], refs, a["seconds"], a["seed"], a["mmap"])
    print(json.dumps([n, b, bad, errs, lat]))
    return 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2])
    if len(sys.argv) < 5:
        print("usage: test_stress.py ZESTFS ZESTFS_ORIGIN MMAP_FAULT mmap|cap|load")
        return 2
    helper, case = os.path.abspath(sys.argv[3]), sys.argv[4]
    fn = {"mmap": case_mmap, "cap": case_cap, "load": case_load}[case]
    run = fsutil.start(f"zestfs-stress-{case}-")
    if run is None:
        return 77
    proc, mnt, origin = None, os.path.join(run.tmp, "mnt"), None
    try:
        proc, mnt, origin = fn(run, run.origin_exe, helper)
    except Exception as e:  # noqa: BLE001
        run.check(False, f"exception: {e!r}")
    return run.finish(proc, mnt, origin)


if __name__ == "__main__":
    sys.exit(main())
