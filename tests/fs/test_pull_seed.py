#!/usr/bin/env python3
"""test_pull_seed.py ZESTFS [ZESTFS_ORIGIN] — `zestfs pull` with peers, then
seeding (issue 21 item 2), no mount involved until the final check.

Against zestfs-origin on loopback with a generated model (fsutil.make_model):
  * node A: `zestfs pull --seed --listen 127.0.0.1:0` fills store A from the
    CDN (its summary line: from peers 0 B, CDN > 0), then keeps serving;
  * node B: `zestfs pull --peer A --seed-for 2s` into store B with the origin
    refusing every xorb fetch: it exits 0 by itself, the origin served no
    xorb byte, its summary line counts every Xet byte as from peers; an
    --offline mount of store B then reads every file byte-exact (sha256);
  * SIGTERM ends A's seeding cleanly: exit 0, "seeded N chunk bytes" with N
    at least the model's Xet bytes;
  * `--no-p2p --seed` pulls from the CDN only and exits at once (nothing to
    seed); SIGTERM during a pull cancels it (status 1, no seeding); a bad
    --seed-for is refused with status 2.
Exit 0 pass, 1 fail, 77 skip."""
import os, re, signal, subprocess, sys, time

import fsutil
from fsutil import Origin, ingest, make_model, mount, read_all, sha, unmount


def xorb_bytes(origin):
    return origin.stats()["xorb_bytes_total"]


def human_bytes(text, what):
    """The figure after `what` in the last summary line ('from peers 58.8 MiB'), in bytes."""
    m = re.findall(what + r" ([0-9.]+) (B|KiB|MiB|GiB)", text)
    if not m:
        return None
    v, u = m[-1]
    return float(v) * {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[u]


def spawn(zestfs, args, errpath, env):
    fsutil.guard_args(args, "zestfs pull")
    errf = open(errpath, "w+")
    fsutil.watch_log(errf)
    return subprocess.Popen([zestfs, "pull", *args], stdout=subprocess.DEVNULL, stderr=errf,
                            env=env), errf


def wait_for(p, errf, pattern, secs):
    """Wait until pattern shows in errf (True) or p exits / secs pass (False)."""
    deadline = time.time() + secs
    while time.time() < deadline:
        errf.seek(0)
        if re.search(pattern, errf.read()):
            return True
        if p.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def finish(p, secs):
    try:
        return p.wait(secs)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None


def main():
    zestfs = os.path.abspath(sys.argv[1])
    origin_exe = fsutil.find_origin(zestfs)
    if not origin_exe or not os.path.exists(origin_exe):
        print("skip: no zestfs-origin")
        return 77
    run = fsutil.Run(zestfs, origin_exe, "zestfs-pull-seed-")
    check, tmp, log = run.check, run.tmp, run.log
    src, data, mnt = (os.path.join(tmp, n) for n in ("src", "data", "mnt"))
    os.mkdir(mnt)
    files = make_model(src)
    commit = ingest(origin_exe, data, "org/tiny", src)
    origin = Origin(origin_exe, data, tmp)
    env = fsutil.guard_env(dict(os.environ, HF_TOKEN=""))
    xet = sum(len(b) for n, b in files.items() if n.endswith((".safetensors", ".bin")))
    proc = a = None
    skipped = []
    try:
        # ---- A pulls from the CDN and seeds
        origin.reset()
        a, aerr = spawn(zestfs, ["--store", os.path.join(tmp, "sA"), "--endpoint", origin.url,
                                 "--listen", "127.0.0.1:0", "--seed", "org/tiny"],
                        os.path.join(tmp, "a.err"), env)
        seeding = wait_for(a, aerr, r"seeding org/tiny on port (\d+)", 120)
        aerr.seek(0)
        text = aerr.read()
        if not check(seeding, f"A pulls and starts seeding ({text.strip()[-300:]})"):
            raise RuntimeError("A does not seed")
        port = int(re.search(r"seeding org/tiny on port (\d+)", text).group(1))
        check(xet <= xorb_bytes(origin) <= xet * 1.05 + 256 * 1024, "A fetched the model once from the CDN")
        cdn = human_bytes(text, "CDN")
        check("from peers 0 B" in text and cdn and cdn >= xet * 0.9,
              f"A's summary line: nothing from peers, the model from the CDN ({cdn})")

        # ---- B pulls from A alone (the origin refuses xorbs), seeds for 2 s, exits
        origin.reset()
        fsutil.knobs(origin, refuse_xorbs=1)
        t0 = time.time()
        b, berr = spawn(zestfs, ["--store", os.path.join(tmp, "sB"), "--endpoint", origin.url,
                                 "--listen", "127.0.0.1:0", "--peer", f"127.0.0.1:{port}",
                                 "--seed-for", "2s", "org/tiny"], os.path.join(tmp, "b.err"), env)
        rc = finish(b, 180)
        fsutil.knobs(origin, refuse_xorbs=0)
        berr.seek(0)
        text = berr.read()
        print(f"B: exit {rc} after {time.time() - t0:.1f} s")
        check(rc == 0, f"B (--peer A, --seed-for 2s) exits 0 by itself ({text.strip()[-400:]})")
        check("seeding org/tiny" in text and "--seed-for over" in text, "B seeded, then --seed-for ended it")
        got = xorb_bytes(origin)
        check(got == 0, f"B took no xorb byte from the origin ({got})")
        peers = human_bytes(text, "from peers")
        check(peers and peers >= xet * 0.9 and "CDN 0 B" in text,
              f"B's summary line: the model from peers ({peers}), 0 B from the CDN")

        # ---- SIGTERM ends A's seeding: exit 0, what it served
        a.send_signal(signal.SIGTERM)
        rc = finish(a, 60)
        aerr.seek(0)
        text = aerr.read()
        check(rc == 0, f"SIGTERM ends A's seeding with exit 0 ({rc})")
        m = re.search(r"seeded (\d+) chunk bytes", text)
        served = int(m.group(1)) if m else -1
        check(served >= xet * 0.9, f"A reports what it served ({served} chunk bytes)")
        a = None

        # ---- B's store holds the model byte-exact
        if os.path.exists("/dev/fuse") and fsutil.shutil.which("fusermount3"):
            proc = mount(zestfs, mnt, ["--offline", "--store", os.path.join(tmp, "sB")], log)
            if check(os.path.ismount(mnt), "offline mount of B's store"):
                snap = os.path.join(mnt, "models--org--tiny", "snapshots", commit)
                for p, blob in files.items():
                    check(read_all(os.path.join(snap, p)) == sha(blob), f"B's store: {p} byte-exact")
                check(unmount(proc, mnt) == 0, "unmounted")
                proc = None
        else:
            skipped.append("no /dev/fuse: B's files not read back")

        # ---- --no-p2p --seed: the CDN only, nothing to seed
        origin.reset()
        c, cerr = spawn(zestfs, ["--store", os.path.join(tmp, "sC"), "--endpoint", origin.url,
                                 "--no-p2p", "--seed", "org/tiny"], os.path.join(tmp, "c.err"), env)
        rc = finish(c, 180)
        cerr.seek(0)
        text = cerr.read()
        check(rc == 0 and "nothing to seed" in text, f"--no-p2p --seed pulls and exits 0 ({text.strip()[-300:]})")
        check(xet <= xorb_bytes(origin) <= xet * 1.05 + 256 * 1024, "--no-p2p: the model from the CDN once")
        # ---- SIGTERM during a pull (the origin slowed to 2 MB/s): it ends at once, status 1
        fsutil.knobs(origin, total_bps=2_000_000)
        d, derr = spawn(zestfs, ["--store", os.path.join(tmp, "sD"), "--endpoint", origin.url,
                                 "--listen", "127.0.0.1:0", "--seed", "org/tiny"],
                        os.path.join(tmp, "d.err"), env)
        started = wait_for(d, derr, r"pull: [1-9][0-9.]* [KM]iB of", 60)
        d.send_signal(signal.SIGTERM)
        t0 = time.time()
        rc = finish(d, 60)
        fsutil.knobs(origin, total_bps=0)
        derr.seek(0)
        text = derr.read()
        check(started and rc == 1 and "Operation canceled" in text and "seeding" not in text,
              f"SIGTERM during the pull cancels it (exit {rc} after {time.time() - t0:.1f} s; "
              f"{text.strip()[-200:]})")
        r = subprocess.run([zestfs, "pull", "--seed-for", "soon", "org/tiny"], capture_output=True,
                           text=True, timeout=60, env=env)
        check(r.returncode == 2 and "--seed-for" in r.stderr, "a bad --seed-for is refused (2)")
    finally:
        if a is not None and a.poll() is None:
            a.kill()
            a.wait()
        rc = run.finish(proc, mnt, origin)
    if rc == 0 and skipped:
        print("skip: " + "; ".join(skipped))
        return 77
    return rc


if __name__ == "__main__":
    sys.exit(main())
