#!/usr/bin/env python3
"""test_recon_ahead.py ZESTFS [ZESTFS_ORIGIN] — window reconstructions
learned ahead of their misses (fs/read/window.c, issue 22 item 4).

  - random 4 KiB reads across a 96 MiB file (12 windows) are byte-exact; the
    first miss asks for its own window's reconstruction, the others find
    theirs learned: the reconstructions asked when a read misses are far
    fewer than the misses, and no window's is asked twice (all asked <= the
    file's windows + the first miss's pieces);
  - signed URLs that expire (origin url_ttl 3 s): learned reconstructions
    go stale, are dropped and asked again at the next miss, no fetch meets
    an expired URL (no 403 retry), and random reads of a second file are
    byte-exact throughout;
  - a learned URL that expires while its fetch waits (url_ttl 8 s, latency
    3 s): the 403 makes the window try again from a fresh reconstruction,
    and the read is byte-exact.
The counts come from the daemon's debug log.  Exit 0 pass, 1 fail, 77 skip."""
import json, os, random, re, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, ingest, knobs, mount, unmount  # noqa: E402

CELL = 8 * MiB


def log_text(log):
    log.flush()
    with open(log.name, errors="replace") as f:
        return f.read()


def status_counts(zestfs, store):
    """reconstructions / reconstructions_learned from `zestfs status --json`."""
    r = subprocess.run([zestfs, "status", "--json", "--store", store], capture_output=True, text=True,
                       timeout=30)
    out = {}

    def walk(j):
        if isinstance(j, dict):
            for k, v in j.items():
                if k in ("reconstructions", "reconstructions_learned"):
                    out[k] = v
                walk(v)
    try:
        walk(json.loads(r.stdout))
    except ValueError:
        pass
    return out


def wait_for(pred, timeout=60):
    t = time.time()
    while time.time() - t < timeout:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def main():
    run = fsutil.start("zestfs-recon-ahead-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    src, data, store, mnt = (os.path.join(tmp, n) for n in ("src", "data", "store", "mnt"))
    os.makedirs(src)
    os.mkdir(mnt)
    rng = random.Random(2222)
    files = {"big.bin": rng.randbytes(96 * MiB), "second.bin": rng.randbytes(40 * MiB),
             "third.bin": rng.randbytes(16 * MiB)}
    for p, b in files.items():
        open(os.path.join(src, p), "wb").write(b)
    commit = ingest(origin_exe, data, "org/ahead", src)
    ids = {}
    origin = Origin(origin_exe, data, tmp)
    proc = None
    try:
        import urllib.request
        with urllib.request.urlopen(f"{origin.url}/api/models/org/ahead/tree/{commit}") as r:
            for e in json.load(r):
                ids[e["path"]] = e["xetHash"]
        proc = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/ahead", "--store", store,
                                   "--log-level", "debug"], log)
        if not check(os.path.ismount(mnt), "mounted"):
            raise RuntimeError("no mount")
        snap = os.path.join(mnt, "models--org--ahead", "snapshots", commit)

        # ---- random reads across a large file
        big, bid = files["big.bin"], ids["big.bin"]
        nwin = (len(big) + CELL - 1) // CELL
        with open(os.path.join(snap, "big.bin"), "rb", buffering=0) as f:
            fd = f.fileno()
            check(os.pread(fd, 4096, 5 * CELL + 12345) == big[5 * CELL + 12345:5 * CELL + 12345 + 4096],
                  "first miss byte-exact")
            # the windows around it are learned (asked ahead) meanwhile
            ok = wait_for(lambda: log_text(log).count(f"{bid} [") and
                          len(re.findall(re.escape(bid) + r" \[\d+, \d+\): reconstruction learned,",
                                         log_text(log))) >= nwin - 1)
            check(ok, f"the other {nwin - 1} windows' reconstructions were learned ahead")
            offs = [rng.randrange(0, len(big) - 4096) for _ in range(40)]
            bad = [o for o in offs if os.pread(fd, 4096, o) != big[o:o + 4096]]
            check(not bad, f"40 random 4 KiB reads byte-exact ({len(bad)} wrong)")
        text = log_text(log)
        mine = [ln for ln in text.splitlines() if bid in ln or "big.bin" in ln]
        wins = {int(m.group(1)) // CELL for ln in mine
                for m in [re.search(r"big\.bin \[(\d+), \+\d+\) waits for a fetch", ln)] if m}
        used = sum(ln.endswith("reconstruction learned ahead") or ln.endswith("waits for it") for ln in mine)
        asked_ahead = sum(ln.endswith("reconstruction asked ahead") for ln in mine)
        own = sum(ln.endswith("): reconstruction asked") for ln in mine)
        print(f"big.bin: reads missed in {len(wins)} windows; {used} windows used a learned "
              f"reconstruction, {asked_ahead} asked ahead, {own} asked by the windows themselves")
        check(len(wins) >= 8, f"the random reads missed in many windows ({len(wins)})")
        check(own <= 3, f"reconstructions asked at miss time: only the first miss's pieces ({own})")
        check(own * 3 <= len(wins), f"far fewer reconstructions asked at miss time ({own}) than windows "
              f"missed ({len(wins)})")
        check(used >= len(wins) - 1, f"the later misses used learned ones ({used})")
        check(asked_ahead <= nwin - 1, f"no window's reconstruction asked ahead twice ({asked_ahead} <= {nwin - 1})")
        st = status_counts(zestfs, store)
        check(st.get("reconstructions") == own + asked_ahead and st.get("reconstructions_learned") == used,
              f"zestfs status counts them: {st}")

        # ---- signed URLs that expire: stale learned reconstructions are asked again
        knobs(origin, url_ttl=3)
        sec, sid = files["second.bin"], ids["second.bin"]
        with open(os.path.join(snap, "second.bin"), "rb", buffering=0) as f:
            fd = f.fileno()
            check(os.pread(fd, 4096, 100) == sec[100:4196], "second.bin first miss byte-exact")
            wait_for(lambda: len(re.findall(re.escape(sid) + r" \[\d+, \d+\): reconstruction learned,",
                                            log_text(log))) >= 4)
            time.sleep(3.5)  # every learned URL has expired now
            bad = 0
            for i in range(4):
                w = 1 + i
                o = w * CELL + rng.randrange(0, CELL - 4096)
                bad += os.pread(fd, 4096, o) != sec[o:o + 4096]
            check(bad == 0, "reads after the URLs expired: byte-exact")
            check(f.read() == sec, "second.bin whole: byte-exact")
        text = log_text(log)
        stale = len(re.findall(re.escape(sid) + r" \[\d+, \d+\): learned reconstruction stale", text))
        check(stale >= 1, f"stale learned reconstructions were dropped and asked again ({stale})")
        check("Key has expired" not in text, "no fetch met an expired URL (no 403 retry)")

        # ---- a learned URL that expires while its fetch waits: the window is tried again
        # from a fresh reconstruction, byte-exact.  URLs live 8 s; a learned one is used
        # until 2 s before; the origin then answers after 3 s, the URL expired by then.
        knobs(origin, url_ttl=8)
        thr, tid = files["third.bin"], ids["third.bin"]
        pat = re.escape(tid) + r" \[8388608, 16777216\): reconstruction learned, URLs until (\d+)"
        with open(os.path.join(snap, "third.bin"), "rb", buffering=0) as f:
            fd = f.fileno()
            check(os.pread(fd, 4096, 100) == thr[100:4196], "third.bin first miss byte-exact")
            wait_for(lambda: re.search(pat, log_text(log)))
            m = re.search(pat, log_text(log))
            if check(m is not None, "third.bin window 1 learned"):
                exp = int(m.group(1))
                knobs(origin, latency_ms=3000)
                time.sleep(max(0.0, exp - 2.5 - time.time()))
                o = CELL + 4 * MiB  # past the chunk window 0 shares with it
                check(os.pread(fd, 4096, o) == thr[o:o + 4096],
                      "a learned URL expiring during its fetch: the read is byte-exact")
                knobs(origin, latency_ms=0)
                text = log_text(log)
                if not check(f"{tid} [8388608, 16777216): Key has expired, trying again" in text,
                             "... after its window was tried again (the 403 logged)"):
                    print(f"(exp {exp}, now {time.time():.1f})", *[ln for ln in text.splitlines() if tid in ln or
                                                                   "third.bin" in ln or "expired" in ln], sep="\n")
        knobs(origin, url_ttl=0)
        rc = unmount(proc, mnt)
        proc = None
        check(rc == 0, f"unmounted (exit {rc})")
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    return run.finish(proc, mnt, origin)


if __name__ == "__main__":
    sys.exit(main())
