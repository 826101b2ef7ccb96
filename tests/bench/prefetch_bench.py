#!/usr/bin/env python3
"""prefetch_bench.py — prefetch of a .safetensors that follows the reader
(issue 22 item 3): zestfs of --build beside zestfs of --baseline-build, same
origin (loopback), same generated model (mount_bench.make_model: 4 MiB bf16
tensors), interleaved rounds (the order reversed every other round), each
phase on a fresh mount with an empty store, the client side cold and the
origin's xorbs in the page cache.

  tests/interop/.venv/bin/python tests/bench/prefetch_bench.py --baseline-build DIR
      [--build DIR] [--size MiB] [--rounds N] [--reads N] [--latency-ms N]

Phases:
  cold    dd bs=1M of the whole file: MB/s, origin bytes
  load    safe_open + the first tensor (ms), then the first half of the
          tensors in file order (a pipeline stage's layers): ms, origin bytes
  full    safe_open + every tensor in file order: ms
  tensors safe_open + 8 tensors picked at random: origin bytes, their bytes
  random  --reads random 4 KiB preads (POSIX_FADV_RANDOM; default 40, so that
          they touch about half the tensors): p50/p99 ms, origin bytes, and
          the bytes of the tensors they touched
Origin bytes: the origin's xorb_bytes_total from the start of the phase until
it has sent nothing for 1.5 s (prefetch included).  Prints every round, then
the medians side by side.  Needs root (drop_caches)."""
import argparse, os, random, struct, shutil, signal, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fs"))
sys.path.insert(0, HERE)
import fsutil  # noqa: E402
from fsutil import MiB, Origin, ingest, mount, settled, unmount  # noqa: E402
from mount_bench import dd, make_model, median, origin_cached  # noqa: E402

REPO = "bench/pf"


def load(path, frac=0.5):
    """(first tensor s, the first frac of the tensors s, bytes of those tensors)."""
    from safetensors import safe_open
    t = time.perf_counter()
    with safe_open(path, framework="numpy") as f:
        keys = sorted(f.keys())
        n = f.get_tensor(keys[0]).nbytes
        t1 = time.perf_counter() - t
        for k in keys[1:int(len(keys) * frac)]:
            n += f.get_tensor(k).nbytes
    return t1, time.perf_counter() - t, n


def some_tensors(path, n=8):
    """safe_open + n tensors picked at random (seeded): bytes of those tensors."""
    from safetensors import safe_open
    with safe_open(path, framework="numpy") as f:
        keys = sorted(f.keys())
        return sum(f.get_tensor(k).nbytes for k in random.Random(3).sample(keys, min(n, len(keys))))


def tensors(path):
    """[(start, end)] of the tensors' bytes in a safetensors file."""
    with open(path, "rb") as f:
        head = f.read(8)
        return fsutil.tensor_spans(head + f.read(struct.unpack("<Q", head)[0]))


def randoms(path, size, pages):
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    lat = []
    for pg in pages:
        t = time.perf_counter_ns()
        if len(os.pread(fd, 4096, pg * 4096)) != 4096:
            raise RuntimeError("short pread")
        lat.append((time.perf_counter_ns() - t) / 1e6)
    os.close(fd)
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--baseline-build", required=True)
    ap.add_argument("--size", type=int, default=256, help="model size in MiB")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reads", type=int, default=40, help="random 4 KiB reads")
    ap.add_argument("--latency-ms", type=int, default=0, help="the origin waits this long before each answer")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("prefetch_bench: needs root (drop_caches)")
        return 77
    builds = [("this", os.path.abspath(a.build)), ("base", os.path.abspath(a.baseline_build))]
    origin_exe = os.path.join(builds[0][1], "origin", "zestfs-origin")
    tmp = tempfile.mkdtemp(prefix="zestfs-pfbench-", dir="/var/tmp")
    src, data, mnt = (os.path.join(tmp, n) for n in ("src", "data", "mnt"))
    os.mkdir(src)
    os.mkdir(mnt)
    log = open(os.path.join(tmp, "zestfs.log"), "w+")
    size = make_model(os.path.join(src, "model.safetensors"), a.size * MiB)
    commit = ingest(origin_exe, data, REPO, src)
    pages = random.Random(7).sample(range(size // 4096), a.reads)
    ts = tensors(os.path.join(src, "model.safetensors"))
    touched = sum(e - s for s, e in ts if any(s <= pg * 4096 < e for pg in pages))
    origin = Origin(origin_exe, data, tmp, *(["--latency-ms", str(a.latency_ms)] if a.latency_ms else []))
    print(f"model: {size} bytes, {len(ts)} tensors; origin {origin.url}; {os.cpu_count()} cores", flush=True)
    res = {name: {} for name, _ in builds}
    n = 0

    def fresh(exe):
        nonlocal n
        n += 1
        store = os.path.join(tmp, f"store{n}")
        p = mount(exe, mnt, ["--endpoint", origin.url, "--repo", REPO, "--store", store, "--no-p2p"], log)
        if not os.path.ismount(mnt):
            raise RuntimeError(f"{exe} did not mount (log {log.name})")
        origin_cached(data)
        origin.reset()
        return p, store, os.path.join(mnt, "models--bench--pf", "snapshots", commit, "model.safetensors")

    def done(p, store):
        t = time.monotonic()
        unmount(p, mnt, expect=None)
        if time.monotonic() - t > 10:
            print(f"  (unmounting {p.args[0]} took {time.monotonic() - t:.0f} s)", flush=True)
        shutil.rmtree(store, ignore_errors=True)

    def put(name, key, v):
        res[name].setdefault(key, []).append(v)

    try:
        for r in range(a.rounds):
            for name, b in (builds if r % 2 == 0 else builds[::-1]):
                exe = os.path.join(b, "fs", "zestfs")
                p, store, blob = fresh(exe)
                s = dd(blob)
                put(name, "cold MB/s", size / s / 1e6)
                put(name, "cold origin MB", settled(origin) / 1e6)
                done(p, store)
                p, store, blob = fresh(exe)
                t1, th, nb = load(blob)
                put(name, "first tensor ms", t1 * 1000)
                put(name, "half load ms", th * 1000)
                put(name, "half load origin MB", settled(origin) / 1e6)
                put(name, "half load tensor MB", nb / 1e6)
                done(p, store)
                p, store, blob = fresh(exe)
                put(name, "full load ms", load(blob, 1.0)[1] * 1000)
                done(p, store)
                p, store, blob = fresh(exe)
                nb = some_tensors(blob)
                put(name, "8 random tensors origin MB", settled(origin) / 1e6)
                put(name, "8 random tensors tensor MB", nb / 1e6)
                done(p, store)
                p, store, blob = fresh(exe)
                p50, p99 = randoms(blob, size, pages)
                put(name, "random 4 KiB p50 ms", p50)
                put(name, "random 4 KiB p99 ms", p99)
                put(name, "random 4 KiB origin MB", settled(origin) / 1e6)
                put(name, "random 4 KiB tensor MB", touched / 1e6)
                done(p, store)
                print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in res[name].items()),
                      flush=True)
        print(f"\n| figure (median of {a.rounds}) | this build | baseline | ratio |\n|---|---|---|---|")
        for k in res["this"]:
            x, y = median(res["this"][k]), median(res["base"][k])
            print(f"| {k} | {x:.1f} | {y:.1f} | {x / y if y else 0:.2f}x |")
    finally:
        subprocess.run(["fusermount3", "-uz", mnt], stderr=subprocess.DEVNULL)
        origin.stop()
        log.close()
        found = fsutil.problems()
        if found:
            print(f"problems: {found}; logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
