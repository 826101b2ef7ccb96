#!/usr/bin/env python3
"""test_crash.py ZESTFS [ZESTFS_ORIGIN] — kill -9 of the daemon at random
instants, and a store corrupted on disk between runs (issue #4 part 6,
issue #7 part 3), through a real FUSE mount against zestfs-origin.

  - CYCLES (default 50, env ZESTFS_CRASH_CYCLES) times: mount with the same
    store (--store-size 12M, below the 26 MB of data, so every cycle fetches,
    writes and evicts); read every file and compare it with the original;
    start a sequential reader process (pread, looping over the files) and an
    mmap faulter process (random pages), both checking every byte they get;
    kill -9 the daemon after a random 0..0.8 s (even cycles) or the instant a
    store temp file appears (odd cycles: mid store write; polled, at most
    2.8 s); `fusermount3 -u -z` the dead
    mount; the readers must end (ENOTCONN/EIO/SIGBUS, no hang).  Asserts zero
    wrong bytes anywhere (printed: cycles, bytes verified, kills that left a
    store temp file behind, i.e. landed during a store write).
  - corruption: with a cap large enough for everything, a full read; then,
    unmounted, a byte flipped in the data of one segment file under
    xorbs/, one in the header of another, a third truncated; remounted: every
    file byte-exact, and the origin's xorb egress shows the refetch (> 0,
    while an uncorrupted remount read fetches 0).
Exit 0 pass, 1 fail, 77 skip."""
import json, mmap, os, random, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, mount  # noqa: E402

FILES = {"a.safetensors": 14 * MiB + 777, "b.bin": 8 * MiB, "c.gguf": 4 * MiB - 3}


def worker_seq(paths, refs):
    """Reads the files in order, again and again, until an error ends it.
    Prints "bad OFF" at once for a wrong byte run, "n BYTES" now and then."""
    ok = 0
    try:
        while True:
            for p, r in zip(paths, refs):
                fsutil.drop_cache(p)
                with open(p, "rb", buffering=0) as f:
                    off = 0
                    while True:
                        b = f.read(1 << 20)
                        if not b:
                            break
                        if b != r[off:off + len(b)]:
                            print(f"bad {p} {off}", flush=True)
                        off += len(b)
                        ok += len(b)
                        print(f"n {ok}", flush=True)
                    if off != len(r):
                        print(f"bad {p} short {off}", flush=True)
    except OSError as e:
        print(f"err {e.errno}", flush=True)


def worker_mmap(paths, refs, seed, stop):
    """Faults random pages of mmap'd files; SIGBUS ends it once the daemon
    is gone (what a killed FUSE daemon gives a mapping), or the stop file:
    when every page is in the page cache nothing faults any more and the
    mapping keeps reading right bytes after the daemon died."""
    rng = random.Random(seed)
    ok = 0
    try:
        fs = [open(p, "rb") for p in paths]
        ms = [mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) for f in fs]
        k = 0
        while True:
            k += 1
            if k % 256 == 0 and os.path.exists(stop):
                print("stopped", flush=True)
                return
            i = rng.randrange(len(ms))
            r = refs[i]
            o = rng.randrange(len(r)) & ~4095
            if ms[i][o:o + 4096] != r[o:o + 4096]:
                print(f"bad {paths[i]} {o}", flush=True)
            ok += min(4096, len(r) - o)
            if rng.random() < 0.05:
                print(f"n {ok}", flush=True)
    except OSError as e:
        print(f"err {e.errno}", flush=True)


def parse_worker(out):
    bad, nbytes = [], 0
    for line in out.splitlines():
        if line.startswith("bad "):
            bad.append(line)
        elif line.startswith("n "):
            nbytes = int(line.split()[1])
    return bad, nbytes


def tmp_files(store):
    try:
        return len(os.listdir(os.path.join(store, "tmp")))
    except OSError:
        return 0


def segments(store):
    out = []
    for d, _, fs in os.walk(os.path.join(store, "xorbs")):
        out += [os.path.join(d, f) for f in fs]
    return sorted(out)


def main():
    if len(sys.argv) > 2 and sys.argv[1] in ("--seq", "--mmap"):
        a = json.loads(sys.argv[2])
        refs = [open(s, "rb").read() for s in a["srcs"]]
        if sys.argv[1] == "--seq":
            worker_seq(a["paths"], refs)
        else:
            worker_mmap(a["paths"], refs, a["seed"], a["stop"])
        return 0
    run = fsutil.start("zestfs-crash-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt"))
    os.makedirs(src)
    os.mkdir(mnt)
    rng = random.Random(int(os.environ.get("ZESTFS_CRASH_SEED", "777")))
    files = {n: rng.randbytes(sz) for n, sz in FILES.items()}
    files["config.json"] = b'{"model_type": "tiny"}'
    for n, b in files.items():
        with open(os.path.join(src, n), "wb") as f:
            f.write(b)
    commit = fsutil.ingest(origin_exe, data, "org/crash", src, "--scheme", "none")
    origin = Origin(origin_exe, data, tmp)
    fsutil.knobs(origin, total_bps=48 * MiB)  # fetches take a while: kills land inside them
    cycles = int(os.environ.get("ZESTFS_CRASH_CYCLES", "50"))
    names = list(files)
    srcs = [os.path.join(src, n) for n in names]
    snap = os.path.join(mnt, "models--org--crash", "snapshots", commit)
    paths = [os.path.join(snap, n) for n in names]
    base = ["--endpoint", origin.url, "--repo", "org/crash", "--store", store]
    proc = None
    verified, wrong, during_write, reader_bytes, stuck, done = 0, 0, 0, 0, 0, 0
    t_start = time.time()
    try:
        for cyc in range(cycles):
            proc = mount(zestfs, mnt, base + ["--store-size", "12M"], log)
            if not check(os.path.ismount(mnt), f"cycle {cyc}: mounted"):
                raise RuntimeError("no mount")
            # everything right after the previous kill
            for n, p in zip(names, paths):
                got = open(p, "rb").read()
                verified += len(got)
                if got != files[n]:
                    wrong += 1
                    check(False, f"cycle {cyc}: {n} differs after remount")
            stop = os.path.join(tmp, f"stop-{cyc}")
            arg = json.dumps({"paths": paths[:3], "srcs": srcs[:3], "seed": cyc, "stop": stop})
            ws = [subprocess.Popen([sys.executable, os.path.abspath(__file__), m, arg],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                  for m in ("--seq", "--mmap")]
            if cyc % 2 == 0:
                time.sleep(rng.uniform(0.0, 0.8))
            else:  # odd cycles: the instant a store write is under way
                t_end = time.monotonic() + 2 + rng.uniform(0.0, 0.8)
                while not tmp_files(store) and time.monotonic() < t_end:
                    pass
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = None
            if tmp_files(store):
                during_write += 1
            subprocess.run(["fusermount3", "-u", "-z", mnt], stderr=subprocess.DEVNULL)
            open(stop, "w").close()  # a worker blocked in the kernel cannot see it
            for w in ws:
                try:
                    out, _ = w.communicate(timeout=int(os.environ.get("ZESTFS_CRASH_WAIT", "60")))
                except subprocess.TimeoutExpired:
                    stuck += 1
                    for pid in [w.pid] + [int(t) for t in os.listdir(f"/proc/{w.pid}/task")]:
                        try:
                            print(f"stuck {pid}: wchan", open(f"/proc/{pid}/wchan").read(),
                                  open(f"/proc/{pid}/stack").read(), flush=True)
                        except OSError as e:
                            print("stuck", pid, e)
                    w.kill()
                    out, _ = w.communicate()
                bad, nb = parse_worker(out)
                reader_bytes += nb
                wrong += len(bad)
                if bad:
                    check(False, f"cycle {cyc}: a reader got wrong bytes before the kill: {bad[:3]}")
            done += 1
        dt = time.time() - t_start
        print(f"figure: {done} kill -9 cycles in {dt:.0f} s; {verified} bytes verified after remounts, "
              f"{reader_bytes} bytes verified by readers during the cycles; {during_write} kills left "
              f"a store temp file (landed during a store write); {wrong} wrong")
        check(done == cycles, f"{done} of {cycles} kill -9 cycles ran")
        check(wrong == 0, f"zero wrong bytes over {done} cycles ({verified + reader_bytes} bytes checked)")
        check(stuck == 0, f"no reader hung after the kill ({stuck})")
        check(reader_bytes > 0, "the readers read before the kills")

        # corruption between runs: fill the store, corrupt 3 segments, remount
        proc = mount(zestfs, mnt, base + ["--store-size", "1G"], log)
        check(os.path.ismount(mnt), "mounted with a large cap")
        for n, p in zip(names, paths):
            check(open(p, "rb").read() == files[n], f"{n} byte-exact (store filled)")
        check(fsutil.unmount(proc, mnt) == 0, "unmounted")
        origin.reset()
        proc = mount(zestfs, mnt, base + ["--store-size", "1G"], log)
        for n, p in zip(names, paths):
            check(open(p, "rb").read() == files[n], f"{n} byte-exact from the store")
        clean = origin.stats()["xorb_bytes_total"]
        check(clean == 0, f"a remount read everything from the store (egress {clean})")
        check(fsutil.unmount(proc, mnt) == 0, "unmounted")
        segs = [s for s in segments(store) if os.path.getsize(s) > 64 << 10]
        check(len(segs) >= 3, f"{len(segs)} segment files in the store")
        crng = random.Random(5)
        picked = crng.sample(segs, 3)
        with open(picked[0], "r+b") as f:  # a byte of the data (past the header)
            o = os.path.getsize(picked[0]) - 1000
            f.seek(o)
            b = f.read(1)
            f.seek(o)
            f.write(bytes([b[0] ^ 0x40]))
        with open(picked[1], "r+b") as f:  # a byte of the header's chunk table
            f.seek(120)
            b = f.read(1)
            f.seek(120)
            f.write(bytes([b[0] ^ 0x01]))
        os.truncate(picked[2], os.path.getsize(picked[2]) // 2)
        origin.reset()
        proc = mount(zestfs, mnt, base + ["--store-size", "1G"], log)
        for n, p in zip(names, paths):
            check(open(p, "rb").read() == files[n], f"{n} byte-exact after the store was corrupted")
        refetched = origin.stats()["xorb_bytes_total"]
        print(f"figure: 3 corrupted segment files ({sum(os.path.getsize(p) for p in picked if os.path.exists(p))}"
              f" bytes left of them) -> {refetched} bytes refetched")
        check(refetched > 0, f"the corrupted ranges were refetched ({refetched} bytes)")
        check(all(not os.path.exists(p) for p in picked), "the corrupted segment files were dropped")
        rc = fsutil.unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        proc = None
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        rc = run.finish(proc, mnt, origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())
