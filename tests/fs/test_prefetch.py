#!/usr/bin/env python3
"""test_prefetch.py ZESTFS [ZESTFS_ORIGIN] — prefetch of tensor files follows
the reader (issue 22 item 3).

An 80 MB safetensors-like file (1-3 MiB tensors) and a 96 MiB one of 4 MiB
tensors (layers), random bytes, are served by zestfs-origin on loopback.  "Allowed" below is 1.2 x the bytes of the
tensors the reader touched, plus the rest of the header window (the first
8 MiB, filled at open: the header and the tensors in it not touched); origin bytes are the origin's
xorb_bytes_total once it has sent nothing for 1.5 s (prefetch included).
  * a.safetensors, held open: its header read as safe_open does, then 20
    random 4 KiB pages (POSIX_FADV_RANDOM): byte-exact, origin bytes within
    the allowance of the tensors holding them; then 6 more whole tensors
    picked at random, each read in order: within the allowance of all the
    tensors touched;
  * b.safetensors through mmap: the first half of its tensors read in file
    order (a pipeline stage's layers): byte-exact, within the allowance; then
    the whole file read in order: byte-exact, the origin sent about one copy
    of it in all (what was fetched is not fetched again);
  * c.safetensors through mmap: 6 of its 4 MiB tensors picked at random,
    each copied out (as safetensors' get_tensor does): byte-exact, within the
    allowance plus what the kernel asks around each tensor (the mount's 960K
    readahead: 480K of mmap read-around before it; past it, 480K of the
    read-around of its last page, which a copy touches first, and the next
    window that one's readahead asks; none picked side by side: a few read in a row are a run, sent
    one tensor more, prefetch.h).
Exit 0 pass, 1 fail, 77 skip."""
import json, mmap, os, random, struct, sys, time

import fsutil
from fsutil import MiB, Origin, ingest, mount, read_all, settled, sha
from fsutil import tensor_spans as tensors

WIN = 8 * MiB  # the header window prefetched at open


def layers(rng, n):
    """A safetensors file of n 4 MiB tensors (a model's layers), random bytes."""
    hdr = {"__metadata__": {"format": "pt"}}
    for i in range(n):
        hdr[f"layers.{i:02d}.weight"] = {"dtype": "F32", "shape": [MiB], "data_offsets": [i * 4 * MiB, (i + 1) * 4 * MiB]}
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + rng.randbytes(n * 4 * MiB)


def allowed(touched):
    """1.2 x the bytes of the touched tensors, plus the header window's other
    bytes (the header, tensors in it not touched); and the touched bytes."""
    tb = sum(e - s for s, e in touched)
    in_win = sum(max(0, min(e, WIN) - s) for s, e in touched)
    return int(1.2 * tb + 1.05 * (WIN - in_win)), tb


def main():
    run = fsutil.start("zestfs-prefetch-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt"))
    os.mkdir(mnt)
    os.mkdir(src)
    rng = random.Random(22)
    files = {"a.safetensors": fsutil.safetensors_like(rng, 80_000_000), "b.safetensors": layers(rng, 24),
             "c.safetensors": layers(rng, 20)}
    for n, b in files.items():
        open(os.path.join(src, n), "wb").write(b)
    commit = ingest(origin_exe, data, "org/pf", src)
    origin = Origin(origin_exe, data, tmp)
    proc = None
    try:
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/pf", "--store", store,
                                   "--no-p2p"], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        snap = os.path.join(mnt, "models--org--pf", "snapshots", commit)

        # ---- a: random 4 KiB pages, then random whole tensors
        body = files["a.safetensors"]
        ts = tensors(body)
        origin.reset()
        fd = os.open(os.path.join(snap, "a.safetensors"), os.O_RDONLY)
        n = struct.unpack("<Q", os.pread(fd, 8, 0))[0]
        check(os.pread(fd, n, 8) == body[8:8 + n], "a: header byte-exact")
        time.sleep(0.5)  # misses before the header window is stored and parsed take whole windows (tspan.h)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        pages = rng.sample(range(len(body) // 4096), 20)
        ok = all(os.pread(fd, 4096, p * 4096) == body[p * 4096:p * 4096 + 4096] for p in pages)
        check(ok, "a: 20 random 4 KiB pages byte-exact")
        touched = {t for t in ts for p in pages if t[0] <= p * 4096 < t[1]}
        got = settled(origin)
        lim, out = allowed(touched)
        check(got <= lim, f"a: random pages: {got} origin bytes for {len(touched)} tensors touched "
              f"({out} bytes; allowed {lim}, the file is {len(body)})")
        more = rng.sample([t for t in ts if t not in touched and t[0] >= WIN], 6)
        ok = True
        for s, e in more:
            for off in range(s, e, 128 << 10):
                ln = min(128 << 10, e - off)
                ok &= os.pread(fd, ln, off) == body[off:off + ln]
        check(ok, "a: 6 random whole tensors byte-exact")
        touched |= set(more)
        got = settled(origin)
        lim, out = allowed(touched)
        check(got <= lim, f"a: + random tensors: {got} origin bytes for {len(touched)} tensors touched "
              f"({out} bytes; allowed {lim})")
        os.close(fd)

        # ---- b: the first half of the tensors through mmap, in file order; then all of it
        body = files["b.safetensors"]
        ts = tensors(body)
        half = ts[:len(ts) // 2]
        origin.reset()
        with open(os.path.join(snap, "b.safetensors"), "rb") as f:
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            n = struct.unpack("<Q", m[:8])[0]
            json.loads(m[8:8 + n])
            ok = all(sha(m[s:e]) == sha(body[s:e]) for s, e in half)
            m.close()
            check(ok, f"b: the first {len(half)} of {len(ts)} tensors byte-exact through mmap")
            got = settled(origin)
            lim, out = allowed(half)
            check(got <= lim, f"b: half the tensors in order: {got} origin bytes for {out} bytes of "
                  f"tensors (allowed {lim}, the file is {len(body)})")
            check(read_all(os.path.join(snap, "b.safetensors")) == sha(body),
                  "b: the whole file read in order, byte-exact")
        got = settled(origin)
        check(len(body) * 0.95 <= got <= len(body) * 1.1,
              f"b: about one copy fetched in all ({got} origin bytes for {len(body)})")

        # ---- c: random whole tensors through mmap
        body = files["c.safetensors"]
        ts = tensors(body)
        picked = [ts[i] for i in sorted(rng.sample(range(3, len(ts), 2), 6))]  # none side by side
        rng.shuffle(picked)
        origin.reset()
        with open(os.path.join(snap, "c.safetensors"), "rb") as f:
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            n = struct.unpack("<Q", m[:8])[0]
            json.loads(m[8:8 + n])
            time.sleep(0.5)
            ok = True
            for s, e in picked:
                ok &= sha(m[s:e]) == sha(body[s:e])
            m.close()
            check(ok, f"c: {len(picked)} random tensors byte-exact through mmap")
            got = settled(origin)
            lim, out = allowed(picked)
            lim += len(picked) * 2 * MiB  # the kernel's: 480K read-around before, ~1.5 MiB after (below)
            check(got <= lim, f"c: random tensors through mmap: {got} origin bytes for {out} bytes of "
                  f"tensors (allowed {lim}, the file is {len(body)})")
        check(fsutil.unmount(proc, mnt) == 0, "unmounted cleanly")
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    return run.finish(proc, mnt, origin)


if __name__ == "__main__":
    sys.exit(main())
