#!/usr/bin/env python3
"""test_read.py ZESTFS [ZESTFS_ORIGIN] — blob reads through a mount, against
zestfs-origin on loopback.

A generated model (a ~40 MB safetensors-like file and a 20 MB one in Xet, a
1 MB .bin in Xet, a 1 MB regular text file, config.json, tokenizer.json, a
nested file, an empty file) is ingested into an origin, which is served on a
free loopback port; `zestfs -f --endpoint URL --repo org/tiny --store S MNT`
presents it.  Checks: the tree comes from the Hub API; the Xet read tokens
were fetched before the mount became visible (no token request after it);
sequential reads of
every file by 8 threads at once equal the originals, and the origin sent
about one copy of the data (one fetch per range, however many readers);
random preads (page cache dropped) and an mmap read in random 4 KiB pages
equal the originals and need no more network; the store holds the data;
after unmounting and stopping the origin, a remount with --offline presents
the same tree and serves every byte read before, byte-exact, while a range
never read fails with EIO.  Exit 0 pass, 1 fail, 77 skip."""
import json, mmap, os, random, subprocess, sys
import threading, time

import fsutil
from fsutil import MiB, Origin, drop_cache, knobs, make_model, mount, read_all, sha, unmount


def main():
    run = fsutil.start("zestfs-read-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt"))
    os.mkdir(mnt)
    files = make_model(src)
    r = subprocess.run([origin_exe, "ingest", data, "org/tiny", "-q", src], capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        print("ingest failed:", r.stderr)
        return 1
    commit = r.stdout.strip().split()[-1]
    dsrc = os.path.join(tmp, "dsrc")
    os.makedirs(os.path.join(dsrc, "data"))
    drng = random.Random(3)
    dfiles = {"README.md": b"# a dataset\n", "data/train.parquet": drng.randbytes(3_000_000)}
    for p, b in dfiles.items():
        open(os.path.join(dsrc, p), "wb").write(b)
    r = subprocess.run([origin_exe, "ingest", data, "datasets/org/ds", "-q", dsrc], capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        print("ingest failed:", r.stderr)
        return 1
    dcommit = r.stdout.strip().split()[-1]
    origin = Origin(origin_exe, data, tmp)
    proc = None
    try:
        # every answer 0.5 s late while mounting: a token asked only once the mount is
        # visible is still in the origin when its count is read below
        knobs(origin, latency_ms=500)
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/tiny", "--repo",
                                   "datasets/org/ds@main", "--store", store], log)
        if not check(os.path.ismount(mnt), "mounted with --repo from the origin"):
            raise RuntimeError("no mount")
        # the --repo's Xet read tokens were asked at startup, alongside the tree listings,
        # before the mount became visible (fs/hubload.c)
        toks_mount = origin.stats().get("xet_tokens", 0)
        check(toks_mount >= 1, f"Xet read tokens fetched before the mount became visible ({toks_mount})")
        knobs(origin, latency_ms=0)
        R = os.path.join(mnt, "models--org--tiny")
        check(open(os.path.join(R, "refs", "main")).read() == commit, "refs/main is the origin's commit")
        snap = os.path.join(R, "snapshots", commit)
        check(sorted(os.listdir(snap)) == sorted({p.split("/")[0] for p in files}), "snapshot listing")
        for p, b in files.items():
            check(os.stat(os.path.join(snap, p)).st_size == len(b), f"size of {p}")
        tree = json.load(open(os.path.join(R, "trees", commit + ".json")))
        xet_files = [p for p in files if "xet_hash" in tree["files"][p]]
        check(set(xet_files) == {"model.safetensors", "extra.safetensors", "weights.bin", "empty.bin"},
              f"Xet files {sorted(xet_files)}")

        D = os.path.join(mnt, "datasets--org--ds")
        check(open(os.path.join(D, "refs", "main")).read() == dcommit, "dataset: refs/main")
        for p, b in dfiles.items():
            check(open(os.path.join(D, "snapshots", dcommit, p), "rb").read() == b, f"dataset: {p} byte-exact")

        def status():
            r = subprocess.run([zestfs, "status", "--json", "--store", store], capture_output=True,
                               text=True, timeout=30)
            return json.loads(r.stdout)

        # the read path's code (zestfs's, liblz4's with its tables) was paged in at start:
        # every page of those mappings resident before the first read
        def code_resident():
            res, cur = {}, None
            for ln in open(f"/proc/{proc.pid}/smaps"):
                f = ln.split()
                if "-" in f[0] and len(f) >= 6 and "w" not in f[1] and \
                        ("liblz4" in f[-1] or f[-1] == os.path.realpath(zestfs)):
                    cur = f[-1]
                elif "-" in f[0]:
                    cur = None
                elif cur and f[0] in ("Size:", "Rss:"):
                    res.setdefault(cur, [0, 0])[f[0] == "Rss:"] += int(f[1])
            return res
        for _ in range(100):
            res = code_resident()
            if res and all(rss >= size for size, rss in res.values()):
                break
            time.sleep(0.05)
        check(len(res) == 2 and all(rss >= size for size, rss in res.values()),
              f"zestfs and liblz4 mapped in whole at start ({res})")
        # the mount fetched the repo's Xet read token at start, so a first read waits for
        # its reconstruction and xorb range only
        for _ in range(100):
            if origin.stats().get("xet_tokens", 0) >= 1:
                break
            time.sleep(0.05)
        toks0 = origin.stats().get("xet_tokens", 0)
        check(toks0 >= 1, f"Xet read token fetched before any read ({toks0})")
        # a first read of a file waits for its fetch and is answered from the fetched run
        # in memory, before the run is stored
        early0 = status()["reads"]["early"]
        with open(os.path.join(snap, "weights.bin"), "rb") as f:
            got = os.pread(f.fileno(), 64 * 1024, 4096)
        check(got == files["weights.bin"][4096:4096 + 64 * 1024], "first read of weights.bin byte-exact")
        check(origin.stats()["xet_tokens"] == toks0 == toks_mount,
              f"... with the token fetched before the mount (no token request after it: {toks_mount} "
              f"at the mount, {origin.stats()['xet_tokens']} now)")
        st = status()
        check(st["reads"]["early"] > early0 and st["reads"]["errors"] == 0,
              f"... answered before its run was stored (reads.early {early0} -> {st['reads']['early']})")

        # first pass: 8 threads read every file (but most of extra.safetensors) sequentially,
        # each starting with a different file
        origin.reset()
        first = [p for p in files if p != "extra.safetensors"]
        errors = []

        def reader(k):
            order = first[k % len(first):] + first[:k % len(first)]
            for p in order:
                try:
                    got = read_all(os.path.join(snap, p), bs=[MiB, 128 << 10, 4096 * 7][k % 3])
                    if got != sha(files[p]):
                        errors.append(f"thread {k}: {p} differs")
                except OSError as e:
                    errors.append(f"thread {k}: {p}: {e}")
            try:
                with open(os.path.join(snap, "extra.safetensors"), "rb") as f:
                    if f.read(MiB) != files["extra.safetensors"][:MiB]:
                        errors.append(f"thread {k}: extra.safetensors head differs")
            except OSError as e:
                errors.append(f"thread {k}: extra: {e}")

        t0 = time.time()
        ths = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        dt = time.time() - t0
        check(not errors, f"8 concurrent sequential readers byte-exact ({dt:.1f} s) {errors[:3]}")
        st = status()["reads"]
        print(f"reads: {st['count']}, waited {st['waited']}, answered from runs in memory {st['early']}")
        st = origin.stats()
        xet_bytes = sum(len(files[p]) for p in xet_files if p != "extra.safetensors") + 8 * MiB
        all_bytes = xet_bytes + sum(len(files[p]) for p in files if p not in xet_files)
        print(f"origin egress: {st['bytes_total']} bytes ({st['xorb_bytes_total']} xorb bytes) "
              f"for {all_bytes} bytes of content, {st['requests']} requests")
        check(st["xorb_bytes_total"] <= 1.1 * xet_bytes, "xorb egress is about one copy, not one per reader")
        check(st["bytes_total"] <= 1.1 * all_bytes, "total egress is about one copy")

        # random preads, page cache dropped first; lengths cross EOF sometimes
        origin.reset()
        rng = random.Random(7)
        names = [p for p in first if files[p]]
        for p in names:
            drop_cache(os.path.join(snap, p))
        bad = []
        fds = {p: os.open(os.path.join(snap, p), os.O_RDONLY) for p in names}
        try:
            for i in range(200):
                p = rng.choice(names + ["model.safetensors"] * 4)
                b = files[p]
                off = rng.randrange(len(b))
                ln = rng.choice([1, 4096, rng.randrange(1, 300000), rng.randrange(1, 3 * MiB)])
                got = os.pread(fds[p], ln, off)
                if got != b[off:off + ln]:
                    bad.append((p, off, ln, len(got)))
        finally:
            for fd in fds.values():
                os.close(fd)
        check(not bad, f"200 random preads byte-exact {bad[:3]}")

        # mmap of the big file, random 4 KiB pages
        big = files["model.safetensors"]
        path = os.path.join(snap, "model.safetensors")
        drop_cache(path)
        with open(path, "rb") as f:
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            pages = list(range((len(big) + 4095) // 4096))
            rng.shuffle(pages)
            badp = [pg for pg in pages[:3000] if m[pg * 4096:(pg + 1) * 4096] != big[pg * 4096:(pg + 1) * 4096]]
            m.close()
        check(not badp, f"mmap random 4 KiB pages byte-exact {badp[:5]}")

        # 8 threads of random reads at once, page cache dropped
        drop_cache(path)
        errs = []

        def rand_reader(k):
            rr = random.Random(100 + k)
            fd = os.open(path, os.O_RDONLY)
            try:
                for _ in range(100):
                    off = rr.randrange(len(big))
                    ln = rr.randrange(1, 512 << 10)
                    if os.pread(fd, ln, off) != big[off:off + ln]:
                        errs.append((k, off, ln))
            finally:
                os.close(fd)

        ths = [threading.Thread(target=rand_reader, args=(k,)) for k in range(8)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        check(not errs, f"8 concurrent random readers byte-exact {errs[:3]}")
        st = origin.stats()
        check(st["xorb_bytes_total"] == 0, f"warm reads fetched nothing ({st['xorb_bytes_total']} xorb bytes)")

        used = 0
        for dp, _, fns in os.walk(store):
            used += sum(os.path.getsize(os.path.join(dp, n)) for n in fns)
        check(used >= xet_bytes * 0.95, f"the store holds the data ({used} bytes)")
        rc = unmount(proc, mnt)
        check(rc == 0 and not os.path.ismount(mnt), f"unmounted (exit {rc})")

        # repos on demand: no --repo, a fresh store; looking a repo folder up resolves it
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--store", os.path.join(tmp, "store2")], log)
        if not check(os.path.ismount(mnt), "mounted without --repo"):
            raise RuntimeError("no mount")
        check("models--org--tiny" not in os.listdir(mnt), "on demand: nothing presented before a lookup")
        check(os.path.isdir(R), "on demand: models--org--tiny looked up")
        check(open(os.path.join(R, "refs", "main")).read() == commit, "on demand: refs/main")
        check(open(os.path.join(snap, "config.json"), "rb").read() == files["config.json"],
              "on demand: config.json byte-exact")
        check(open(os.path.join(D, "snapshots", dcommit, "README.md"), "rb").read() == dfiles["README.md"],
              "on demand: a dataset")
        check("models--org--tiny" in os.listdir(mnt), "on demand: listed once resolved")
        nope = os.path.join(mnt, "models--org--nope")
        check(not os.path.exists(nope), "on demand: an absent repo is ENOENT")
        n0 = origin.stats()["requests"]
        check(not os.path.exists(nope), "on demand: still ENOENT")
        check(origin.stats()["requests"] == n0, "on demand: the absence is remembered (no request)")
        check(not os.path.exists(os.path.join(mnt, "models--bad..name")), "on demand: invalid names ENOENT")
        rc = unmount(proc, mnt)
        check(rc == 0, f"unmounted (exit {rc})")
        origin.stop()

        # offline remount: the same tree, every byte read before, EIO beyond
        proc = mount(zestfs, mnt, ["--offline", "--store", store], log)
        if not check(os.path.ismount(mnt), "offline remount"):
            raise RuntimeError("no offline mount")
        check(open(os.path.join(R, "refs", "main")).read() == commit, "offline: refs/main")
        check(sorted(os.listdir(os.path.join(R, "snapshots"))) == [commit], "offline: snapshots")
        for p in first:
            try:
                check(read_all(os.path.join(snap, p)) == sha(files[p]), f"offline: {p} byte-exact")
            except OSError as e:
                check(False, f"offline: {p}: {e}")
        ex = files["extra.safetensors"]
        with open(os.path.join(snap, "extra.safetensors"), "rb", buffering=0) as f:
            check(os.pread(f.fileno(), MiB, 0) == ex[:MiB], "offline: the head of extra.safetensors")
            try:
                got = os.pread(f.fileno(), 65536, 15 * MiB)
                check(False, f"offline: a never-read range gave {len(got)} bytes instead of EIO")
            except OSError as e:
                check(e.errno == 5, f"offline: a never-read range fails with EIO (errno {e.errno})")
        rc = unmount(proc, mnt)
        check(rc == 0, f"offline mount unmounted (exit {rc})")

        # the Hub unreachable (origin stopped), not --offline: the stored models, stored bytes
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/tiny", "--repo",
                                   "datasets/org/ds", "--store", store], log)
        if not check(os.path.ismount(mnt), "remount with the Hub unreachable"):
            raise RuntimeError("no mount")
        check(open(os.path.join(R, "refs", "main")).read() == commit, "Hub unreachable: refs/main")
        check(read_all(os.path.join(snap, "model.safetensors")) == sha(big), "Hub unreachable: stored bytes served")
        check(open(os.path.join(D, "snapshots", dcommit, "data/train.parquet"), "rb").read() ==
              dfiles["data/train.parquet"], "Hub unreachable: dataset file served")
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
