#!/usr/bin/env python3
"""test_admin.py ZESTFS [ZESTFS_ORIGIN] — the control commands of a running
mount: `zestfs status` (table and --json, by store and by mountpoint),
`zestfs verify` (stored files re-hash to their Xet ids; unread ones are
"missing"; a store file corrupted on disk is caught), `zestfs pin` (the
repo is pulled and survives a later read of another repo larger than what
the cap leaves; the pin survives a remount), `zestfs unpin`, `zestfs evict` (refused while pinned; drops what only
that repo names and a read fetches it again; keeps xorbs another presented
repo names).
Exit 0 pass, 1 fail, 77 skip."""
import json, os, random, re, subprocess, sys

import fsutil
from fsutil import MiB, Origin, ingest, make_model, mount, read_all, sha, unmount


def verify_counts(r):
    """(files, ok, bad, not stored) from `zestfs verify`'s summary line, or None."""
    m = re.search(r"^verify: (\d+) files, (\d+) ok \(.*\), (\d+) bad, (\d+) not stored$", r.stdout, re.M)
    return tuple(int(x) for x in m.groups()) if m else None


def z(zestfs, *args):
    return subprocess.run([zestfs, *args], capture_output=True, text=True, timeout=300)


def main():
    run = fsutil.start("zestfs-admin-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, src2, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "src2", "data", "store", "mnt"))
    os.mkdir(mnt)
    os.mkdir(src2)
    files = make_model(src)
    other = random.Random(9).randbytes(60_000_000)
    open(os.path.join(src2, "big.bin"), "wb").write(other)
    commit = ingest(origin_exe, data, "org/tiny", src)
    commit2 = ingest(origin_exe, data, "org/other", src2)
    commit3 = ingest(origin_exe, data, "org/tiny2", src)  # the same files: the same xorbs
    origin = Origin(origin_exe, data, tmp)
    proc = None
    env = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(tmp, "run"))
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
    args = ["--endpoint", origin.url, "--repo", "org/tiny", "--repo", "org/other", "--store", store,
            "--store-size", "100M"]
    try:
        proc = mount(zestfs, mnt, args, log, env=env)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        snap = os.path.join(mnt, "models--org--tiny", "snapshots", commit)
        check(read_all(os.path.join(snap, "weights.bin")) == sha(files["weights.bin"]), "weights.bin read")
        # ---- status
        r = subprocess.run([zestfs, "status", mnt], capture_output=True, text=True, timeout=60, env=env)
        check(r.returncode == 0 and "org/tiny" in r.stdout and "org/other" in r.stdout,
              f"status MOUNTPOINT lists the repos ({r.stderr.strip()})")
        print(r.stdout)
        r = z(zestfs, "status", "--json", "--store", store)
        st = json.loads(r.stdout) if r.returncode == 0 else {}
        check(st.get("reads", {}).get("count", 0) > 0 and st["bytes_by_source"]["cdn"] >= 1_000_000,
              "status --json counts the reads and CDN bytes")
        check(st.get("store", {}).get("cap") == 100 * MiB, "status --json: the store cap")
        check(st.get("peers", {}).get("enabled") is True and "connected" in st["peers"] and
              "banned" in st["peers"] and "fetches_in_flight" in st and "http" in st.get("reads", {}),
              f"status --json: peers (connected, banned), fetches in flight, HTTP reads ({st.get('peers')})")
        # ---- verify: one file stored, the rest missing
        r = z(zestfs, "verify", "--store", store, "org/tiny")
        print(r.stdout)
        check("weights.bin" not in r.stdout and "missing   model.safetensors" in r.stdout,
              "verify: unread files are reported missing (ok ones listed only as counts)")
        check(r.returncode == 0 and " 0 bad" in r.stdout, f"verify: no bad file ({r.stderr.strip()})")
        # ---- pin: pulls the whole repo and labels it
        origin.reset()
        r = z(zestfs, "pin", "--store", store, "org/tiny")
        check(r.returncode == 0 and "pinned model/org/tiny@" + commit in r.stdout,
              f"pin org/tiny ({r.stdout.strip()} {r.stderr.strip()})")
        r = z(zestfs, "verify", "--store", store, "org/tiny")
        check(r.returncode == 0 and "verify: 8 files, 8 ok" in r.stdout, f"verify after pin: all 8 ok ({r.stdout.strip()})")
        # read another repo bigger than the cap leaves: the pinned one must stay
        big = os.path.join(mnt, "models--org--other", "snapshots", commit2, "big.bin")
        check(read_all(big) == sha(other), "org/other read byte-exact (evicting)")
        st = json.loads(z(zestfs, "status", "--json", "--store", store).stdout)
        check(st["store"]["evictions"] > 0, f"the cap forced evictions ({st['store']['evictions']})")
        check(st["pins"] == ["model/org/tiny@" + commit], "status lists the pin")
        origin.reset()
        r = z(zestfs, "verify", "--store", store, "org/tiny")
        check("verify: 8 files, 8 ok" in r.stdout, f"pinned repo fully stored after the eviction pressure ({r.stdout.strip()})")
        for p, b in files.items():
            check(read_all(os.path.join(snap, p)) == sha(b), f"pinned {p} byte-exact")
        check(origin.stats()["xorb_bytes_total"] == 0, "reading the pinned repo fetched nothing")
        # ---- the pin survives a remount
        unmount(proc, mnt)
        proc = mount(zestfs, mnt, args, log, env=env)
        check(read_all(big) == sha(other), "org/other read again after remount (evicting)")
        r = z(zestfs, "verify", "--store", store, "org/tiny")
        check("verify: 8 files, 8 ok" in r.stdout, f"pin re-applied at startup ({r.stdout.strip()})")
        # ---- corruption on disk is caught by verify
        unmount(proc, mnt)
        segs = []
        for d, _, fs in os.walk(os.path.join(store, "xorbs")):
            segs += [os.path.join(d, f) for f in fs]
        segs.sort(key=os.path.getsize)
        victim = segs[-1]
        with open(victim, "r+b") as f:
            f.seek(os.path.getsize(victim) - 1000)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x40]))
        proc = mount(zestfs, mnt, args, log, env=env)
        r1 = z(zestfs, "verify", "--store", store, "org/tiny")
        r2 = z(zestfs, "verify", "--store", store, "org/other")
        print(r1.stdout, r2.stdout)
        st = json.loads(z(zestfs, "status", "--json", "--store", store).stdout)
        check(st["store"]["corrupt"] >= 1, f"verify found the corrupted segment ({st['store']['corrupt']} corrupt)")
        # verify must have run to its end on both repos (exit 0, its summary
        # line), and a file over the corrupted segment is counted not ok and
        # named: nothing printed, or a crash, fails here
        v1, v2 = verify_counts(r1), verify_counts(r2)
        check(r1.returncode == 0 and r2.returncode == 0 and v1 is not None and v2 is not None,
              f"verify ran to its end on both repos (exit {r1.returncode}, {r2.returncode}; {r1.stderr.strip()} "
              f"{r2.stderr.strip()})")
        notok = [(v[0] - v[1]) for v in (v1, v2) if v]
        named = re.findall(r"^(?:bad|missing)\s+(\S+)", r1.stdout + r2.stdout, re.M)
        check(len(notok) == 2 and sum(notok) >= 1 and len(named) == sum(notok),
              f"a file over the corrupted segment is not ok, and each such file is named ({v1} {v2} {named})")
        # ---- evict of a pinned repo is refused
        r = z(zestfs, "evict", "--store", store, "org/tiny")
        check(r.returncode != 0 and "pinned" in r.stderr, f"evict of a pinned repo refused ({r.stderr.strip()})")
        # ---- unpin
        r = z(zestfs, "unpin", "--store", store, "org/tiny")
        check(r.returncode == 0 and "unpinned" in r.stdout, f"unpin ({r.stdout.strip()} {r.stderr.strip()})")
        st = json.loads(z(zestfs, "status", "--json", "--store", store).stdout)
        check(st["pins"] == [], "no pins left")
        r = z(zestfs, "unpin", "--store", store, "org/tiny")
        check(r.returncode != 0, "unpin of a repo not pinned fails")
        # ---- evict: the repo's stored data goes, a read fetches it again
        for p, b in files.items():
            read_all(os.path.join(snap, p))
        used0 = json.loads(z(zestfs, "status", "--json", "--store", store).stdout)["store"]["used"]
        r = z(zestfs, "evict", "--store", store, "org/tiny")
        print(r.stdout.strip(), r.stderr.strip())
        check(r.returncode == 0 and "evicted org/tiny" in r.stdout, f"evict org/tiny ({r.stdout.strip()} {r.stderr.strip()})")
        st = json.loads(z(zestfs, "status", "--json", "--store", store).stdout)
        check(st["store"]["used"] < used0, f"store use went down ({used0} -> {st['store']['used']})")
        r = z(zestfs, "verify", "--store", store, "org/tiny")
        check("8 files, 1 ok" in r.stdout and "7 not stored" in r.stdout, f"after evict nothing of org/tiny is stored but the empty file ({r.stdout.strip()})")
        origin.reset()
        for p, b in files.items():
            fd = os.open(os.path.join(snap, p), os.O_RDONLY)  # the kernel's page cache still has them
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
            check(read_all(os.path.join(snap, p)) == sha(b), f"evicted {p} read again byte-exact")
        xb = origin.stats()["xorb_bytes_total"]
        check(xb >= sum(len(b) for p, b in files.items() if p.endswith((".bin", ".safetensors"))) * 0.9,
              f"the evicted bytes were fetched again ({xb})")
        # ---- evict keeps xorbs another presented repo names (org/tiny2: the same files)
        os.listdir(os.path.join(mnt, "models--org--tiny2", "snapshots", commit3))
        r = z(zestfs, "evict", "--store", store, "org/tiny")
        print(r.stdout.strip(), r.stderr.strip())
        check(r.returncode == 0 and ": 0 xorbs, 0 small files" in r.stdout and "kept 0 shared" not in r.stdout,
              f"evict keeps the xorbs org/tiny2 shares ({r.stdout.strip()})")
        r = z(zestfs, "verify", "--store", store, "org/tiny")
        check("verify: 8 files, 8 ok" in r.stdout, f"shared data still stored ({r.stdout.strip()})")
        check(unmount(proc, mnt) == 0, "unmounted")
        proc = None
        check(not os.listdir(os.path.join(env["XDG_RUNTIME_DIR"], "zestfs")), "registry entry removed at unmount")
    finally:
        rc = run.finish(proc, mnt, origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())
