#!/usr/bin/env python3
"""rtt_bench.py — what a round trip costs a read (issue 22 item 4): the
origin answers every request after --latency-ms (default 50), standing in
for the internet.  Two zestfs builds side by side (a baseline build and
this one), interleaved rounds, each mount on an empty store:

  first read after mount   mount ready -> open + pread 4 KiB at a random
                           offset of a 256 MiB random file (goal <= 120 ms)
  random miss p50          then --reads random 4 KiB preads of it, one at a
                           time: p50 of those in a window not read before
                           in this mount (goal <= 65 ms); p50 of all of them
  first tensor             a fresh mount: open a --st-mib safetensors file,
                           read its header and its first tensor with pread
                           (goal <= 3 round trips + the tensor's transfer)

  tests/interop/.venv/bin/python tests/bench/rtt_bench.py \\
      (--base /tmp/rtt-base/build | --hf-mount EXE) --build build [--rounds 3] [--st-mib 1024]

--hf-mount: hf-mount-fuse (../shared/anchors/hf-mount; benchmark only) as
the baseline, the same repo at its mount root, from the same origin.

Needs /dev/fuse and fusermount3.  The data dir is kept in --data (ingested
once) so that reruns skip the ingest."""
import argparse, json, os, random, shutil, statistics, struct, subprocess, sys, tempfile, time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fs"))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, ingest, mount, unmount  # noqa: E402

CELL = 8 * MiB


def make_src(src, st_mib):
    os.makedirs(src, exist_ok=True)
    rng = random.Random(22)
    with open(os.path.join(src, "big.bin"), "wb") as f:
        for _ in range(256):
            f.write(rng.randbytes(MiB))
    n = max(16, st_mib // 4)
    per = (st_mib * MiB - 65536) // n // 2 * 2
    hdr, off = {"__metadata__": {"format": "pt"}}, 0
    for i in range(n):
        hdr[f"layers.{i:03d}.weight"] = {"dtype": "F16", "shape": [per // 2], "data_offsets": [off, off + per]}
        off += per
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(src, "model.safetensors"), "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h)
        for i in range(n):
            f.write(rng.randbytes(per))


def first_tensor(path):
    t = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        n = struct.unpack("<Q", os.pread(fd, 8, 0))[0]
        hdr = json.loads(os.pread(fd, n, 8))
        first = min((v["data_offsets"][0], k) for k, v in hdr.items() if k != "__metadata__")[1]
        a, b = hdr[first]["data_offsets"]
        got, pos = 0, 8 + n + a
        while got < b - a:
            c = os.pread(fd, min(4 * MiB, b - a - got), pos + got)
            if not c:
                raise RuntimeError("short read")
            got += len(c)
        return (time.perf_counter() - t) * 1000, b - a
    finally:
        os.close(fd)


class ZestfsMount:
    """A zestfs build: the repo in the HF cache tree."""

    def __init__(self, exe, snap_rel):
        self.exe, self.snap_rel = exe, snap_rel

    def start(self, origin, mnt, store, log):
        p = mount(self.exe, mnt, ["--endpoint", origin.url, "--repo", "bench/rtt", "--store", store], log)
        return p, os.path.join(mnt, self.snap_rel)

    def stop(self, p, mnt):
        unmount(p, mnt, expect=None)


class HfMountRtt:
    """hf-mount-fuse (mount_bench.HfMount): the repo at the mount root."""

    def __init__(self, exe, commit):
        from mount_bench import HfMount
        self.hf, self.commit = HfMount(exe), commit

    def start(self, origin, mnt, store, log):
        p, path = self.hf.start(origin, self.commit, mnt, store, log, repo="bench/rtt", file="big.bin")
        return p, os.path.dirname(path)

    def stop(self, p, mnt):
        self.hf.stop(p, mnt)


def one_round(m, origin, tmp, reads, seed):
    mnt = os.path.join(tmp, "mnt")
    os.makedirs(mnt, exist_ok=True)
    out = {}
    # ---- first read after mount, then random misses
    store = tempfile.mkdtemp(dir=tmp, prefix="store-")
    log = open(os.path.join(tmp, "zestfs.log"), "a")
    p, top = m.start(origin, mnt, store, log)
    try:
        path = os.path.join(top, "big.bin")
        size = 256 * MiB
        rng = random.Random(seed)
        offs = [rng.randrange(0, size // 4096) * 4096 for _ in range(reads + 1)]
        t = time.perf_counter()
        fd = os.open(path, os.O_RDONLY)
        os.pread(fd, 4096, offs[0])
        out["first"] = (time.perf_counter() - t) * 1000
        seen, miss, all_ = {offs[0] // CELL}, [], []
        for o in offs[1:]:
            t = time.perf_counter()
            b = os.pread(fd, 4096, o)
            ms = (time.perf_counter() - t) * 1000
            if len(b) != 4096:
                raise RuntimeError("short read")
            all_.append(ms)
            if o // CELL not in seen:
                miss.append(ms)
            seen.add(o // CELL)
        os.close(fd)
        out["miss_p50"] = statistics.median(miss) if miss else float("nan")
        out["nmiss"] = len(miss)
        out["all_p50"] = statistics.median(all_)
    finally:
        m.stop(p, mnt)
        shutil.rmtree(store, ignore_errors=True)
    # ---- first tensor, a fresh mount
    store = tempfile.mkdtemp(dir=tmp, prefix="store-")
    p, top = m.start(origin, mnt, store, log)
    try:
        out["tensor"], out["tensor_bytes"] = first_tensor(os.path.join(top, "model.safetensors"))
    finally:
        m.stop(p, mnt)
        shutil.rmtree(store, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--base", help="build dir of the baseline (e.g. main f27dcf4)")
    ap.add_argument("--hf-mount", help="hf-mount-fuse as the baseline instead (../shared/anchors/hf-mount)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reads", type=int, default=40)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--st-mib", type=int, default=1024)
    ap.add_argument("--data", default=None, help="default /tmp/zestfs-rtt-bench-data-<st-mib>")
    a = ap.parse_args()
    if bool(a.base) == bool(a.hf_mount):
        ap.error("one of --base DIR or --hf-mount EXE")
    a.data = a.data or f"/tmp/zestfs-rtt-bench-data-{a.st_mib}"
    exes = {"base": os.path.abspath(a.hf_mount) if a.hf_mount else os.path.join(a.base, "fs", "zestfs"),
            "this": os.path.join(a.build, "fs", "zestfs")}
    origin_exe = os.path.join(a.build, "origin", "zestfs-origin")
    tmp = tempfile.mkdtemp(prefix="zestfs-rtt-")
    commit_file = os.path.join(a.data, "commit")
    if not os.path.exists(commit_file):
        shutil.rmtree(a.data, ignore_errors=True)
        os.makedirs(a.data)
        src = os.path.join(tmp, "src")
        make_src(src, a.st_mib)
        c = ingest(origin_exe, os.path.join(a.data, "d"), "bench/rtt", src)
        shutil.rmtree(src)
        open(commit_file, "w").write(c)
    commit = open(commit_file).read().strip()
    snap_rel = os.path.join("models--bench--rtt", "snapshots", commit)
    origin = Origin(origin_exe, os.path.join(a.data, "d"), tmp, "--latency-ms", str(a.latency_ms))
    mounts = {"this": ZestfsMount(exes["this"], snap_rel),
              "base": HfMountRtt(exes["base"], commit) if a.hf_mount else ZestfsMount(exes["base"], snap_rel)}
    res = {k: [] for k in exes}
    try:
        for r in range(a.rounds):
            for name in (("base", "this") if r % 2 == 0 else ("this", "base")):
                o = one_round(mounts[name], origin, tmp, a.reads, 1000 + r)
                res[name].append(o)
                print(f"  round {r} {name}: first read {o['first']:.0f} ms, miss p50 {o['miss_p50']:.0f} ms "
                      f"({o['nmiss']} misses), all p50 {o['all_p50']:.0f} ms, first tensor {o['tensor']:.0f} ms",
                      flush=True)
    finally:
        origin.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: {f: statistics.median([o[f] for o in v]) for f in ("first", "miss_p50", "all_p50", "tensor")}
           for k, v in res.items()}
    tb = res["this"][0]["tensor_bytes"]
    lat = a.latency_ms
    print(f"\n--latency-ms {lat}, medians of {a.rounds} rounds (base {exes['base']}, this {exes['this']})")
    base = "hf-mount" if a.hf_mount else "base"
    print(f"| figure | {base} | zestfs | goal |")
    print("|---|---|---|---|")
    print(f"| first read after mount | {med['base']['first']:.0f} ms | {med['this']['first']:.0f} ms | <= 120 ms |")
    print(f"| random 4 KiB miss p50 ({a.reads} reads, new windows) | {med['base']['miss_p50']:.0f} ms | "
          f"{med['this']['miss_p50']:.0f} ms | <= 65 ms |")
    print(f"| random 4 KiB read p50 (all {a.reads}) | {med['base']['all_p50']:.0f} ms | {med['this']['all_p50']:.0f} ms | |")
    print(f"| first tensor ({a.st_mib} MiB safetensors, tensor {tb / MiB:.1f} MiB) | {med['base']['tensor']:.0f} ms | "
          f"{med['this']['tensor']:.0f} ms | <= {3 * lat} ms + transfer |")
    bad = fsutil.problems()
    if bad:
        print("problems:", *bad, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
