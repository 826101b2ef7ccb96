#!/usr/bin/env python3
"""test_peer_opts.py ZESTFS [ZESTFS_ORIGIN] — what README.md says of the
swarm's command line and of pull, every node on loopback with its own store
(--listen 127.0.0.1:0, --no-dht):
  * `--max-peers 0`, `--max-peers x`, `--upload-rate x` are refused before
    mounting (exit non-zero, a message naming the option);
  * `--max-peers 2` takes effect: of 5 TCP connections to node A's peer port,
    3 are closed at once and 2 stay open; node B (default 64) keeps all 5;
  * `--upload-rate 2M` takes effect: node A holds a 12 MiB Xet file, the
    origin is throttled to 512 KiB/s, node B (--peer A) reads the file
    (byte-exact, most of it from A): sampled all along, the bytes B got from
    peers (its `zestfs status --json` data_down) never exceed 2 MiB/s x the
    time since its read began + 9 MiB (the pacing lets one request's answer,
    an 8 MiB window, go at once and holds the next back);
  * `zestfs pull` on many nodes starts each at its own random place: org/many
    has 16 files of 1 MiB, each in its own xorb; the origin is throttled to
    1 MiB/s; 5 mounts with peers on each start a pull and, at the first xorb
    bytes the origin sends, which files those are is recorded: the nodes do
    not all start with the same files (and some start past the first 4, the
    files a pull without rotation fetches first); a mount with --no-p2p
    (no rotation) starts within the first 4 files, which shows what is
    measured.
Exit 0 pass, 1 fail, 77 skip (no /dev/fuse, no origin)."""
import json, os, random, re, select, socket, subprocess, sys, threading, time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402

RATE = 2 << 20   # --upload-rate 2M
BURST = 9 << 20  # pacing delays the message after one that went out: one request (an 8 MiB window) goes at once
from fsutil import MiB, Origin, ingest, knobs, mount, unmount  # noqa: E402


def wait_log(path, pattern, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        m = re.search(pattern, open(path, errors="replace").read())
        if m:
            return m
        time.sleep(0.1)
    return None


def closed(s):
    """Has the server closed this connection (EOF or reset)?"""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def main():
    run = fsutil.start("zestfs-peeropts-")
    if run is None:
        return 77
    zestfs, origin_exe, check, tmp, log = run.zestfs, run.origin_exe, run.check, run.tmp, run.log
    data = os.path.join(tmp, "data")
    rng = random.Random(31)
    nodes = []  # (proc, mnt, logpath)
    logs = []

    def node(name, args):
        mnt, store, lp = (os.path.join(tmp, f"{name}-{k}") for k in ("mnt", "store", "log"))
        os.makedirs(mnt, exist_ok=True)
        lf = open(lp, "a")
        logs.append(lp)
        p = mount(zestfs, mnt, ["--endpoint", origin.url, "--store", store, "--no-dht", *args], lf)
        lf.close()
        if not check(os.path.ismount(mnt), f"node {name} mounted"):
            raise RuntimeError("no mount")
        nodes.append((p, mnt))
        return p, mnt, store, lp

    def stop(p, mnt):
        rc = unmount(p, mnt)
        check(rc == 0, f"{os.path.basename(mnt)} unmounted (exit {rc})")
        nodes.remove((p, mnt))

    # ---- the options are parsed
    m0 = os.path.join(tmp, "m0")
    os.mkdir(m0)
    for args, what in [(["--max-peers", "0"], "max-peers"), (["--max-peers", "x"], "max-peers"),
                       (["--upload-rate", "x"], "upload-rate")]:
        r = subprocess.run([zestfs, "-f", "--offline", "--store", os.path.join(tmp, "s0"), *args, m0],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode != 0 and f"--{what}" in r.stderr and not os.path.ismount(m0),
              f"{' '.join(args)}: refused (exit {r.returncode}: {r.stderr.strip()[:100]})")

    src = os.path.join(tmp, "src")
    os.makedirs(src)
    blob = rng.randbytes(12 * MiB)
    open(os.path.join(src, "model.bin"), "wb").write(blob)
    commit = ingest(origin_exe, data, "org/p", src)
    many = os.path.join(tmp, "many")
    os.makedirs(many)
    for i in range(16):  # one ingest per file: each new file gets its own xorb
        open(os.path.join(many, f"f{i:02d}.bin"), "wb").write(rng.randbytes(MiB))
        many_c = ingest(origin_exe, data, "org/many", many)
    origin = Origin(origin_exe, data, tmp)
    socks = []
    try:
        # ---- --max-peers
        pa, ma, sa, la = node("a", ["--repo", "org/p", "--listen", "127.0.0.1:0", "--max-peers", "2",
                                    "--upload-rate", "2M"])
        port_a = int(wait_log(la, r"peers on 127\.0\.0\.1:(\d+)").group(1))
        for _ in range(5):
            socks.append(socket.create_connection(("127.0.0.1", port_a), timeout=10))
            time.sleep(0.05)
        end = time.time() + 8
        while time.time() < end and sum(closed(s) for s in socks) < 3:
            time.sleep(0.1)
        shut = [closed(s) for s in socks]
        check(sum(shut) == 3 and shut[:2] == [False, False],
              f"--max-peers 2: of 5 connections the last 3 are closed, 2 stay open ({shut})")
        for s in socks:
            s.close()
        socks = []

        # ---- --upload-rate: A serves B
        snap = os.path.join(ma, "models--org--p", "snapshots", commit, "model.bin")
        check(fsutil.read_all(snap) == fsutil.sha(blob), "A read model.bin from the origin")
        knobs(origin, total_bps=512 * 1024)  # B's CDN is slow: it keeps asking A
        pb, mb, sb, lb = node("b", ["--repo", "org/p", "--listen", "127.0.0.1:0", "--peer",
                                    f"127.0.0.1:{port_a}"])
        port_b = int(wait_log(lb, r"peers on 127\.0\.0\.1:(\d+)").group(1))
        for _ in range(5):
            socks.append(socket.create_connection(("127.0.0.1", port_b), timeout=10))
        time.sleep(1.5)
        shut = [closed(s) for s in socks]
        check(not any(shut), f"default --max-peers: all 5 connections to B stay open ({shut})")
        for s in socks:
            s.close()
        socks = []

        def up():  # bytes B received from peers (counted as each request's data arrives)
            r = subprocess.run([zestfs, "status", "--json", "--store", sb], capture_output=True, text=True, timeout=30)
            return json.loads(r.stdout)["peers"]["data_down"]

        up0 = up()
        res = {}

        def reader():
            res["sha"] = fsutil.read_all(os.path.join(mb, "models--org--p", "snapshots", commit, "model.bin"))

        t0 = time.time()
        th = threading.Thread(target=reader)
        th.start()
        samples = []
        while th.is_alive():
            samples.append((time.time() - t0, up() - up0))
            time.sleep(0.3)
        th.join()
        samples.append((time.time() - t0, up() - up0))
        over = [(round(t, 2), u) for t, u in samples if u > RATE * t + BURST]
        print(f"B's bytes from A over its read: {[(round(t, 1), u >> 10) for t, u in samples]} (s, KiB)")
        check(res.get("sha") == fsutil.sha(blob), "B read model.bin byte-exact")
        check(samples[-1][1] >= 8 * MiB, f"A served most of it ({samples[-1][1]} bytes)")
        check(not over, f"--upload-rate 2M: B never had more from A than 2 MiB/s x elapsed + 9 MiB {over}")
        knobs(origin, total_bps=0)
        stop(pb, mb)
        stop(pa, ma)

        # ---- pull: each node starts at its own random place
        xorb_file = {}
        with urllib.request.urlopen(f"{origin.url}/api/models/org/many/tree/{many_c}?recursive=true") as r:
            tree = {e["path"]: e for e in json.load(r) if e["type"] == "file"}
        for p, e in sorted(tree.items()):
            xs = {u.split("/")[-1].split("?")[0] for u, _, _ in fsutil.xorb_ranges(origin, "org/many", many_c, e["xetHash"])}
            for x in xs:
                xorb_file[x] = int(p[1:3])
        check(len(xorb_file) == 16, f"org/many: 16 files in 16 xorbs ({len(xorb_file)})")

        def first_files(name, args):
            p, mnt, store, lp = node(name, args)
            knobs(origin, total_bps=MiB)
            origin.reset()
            pull = subprocess.Popen([zestfs, "pull", "--store", store, "--endpoint", origin.url, "-q", "org/many"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            got = set()
            end = time.time() + 60
            while time.time() < end and not got:
                px = origin.stats()["per_xorb"]
                got = {xorb_file.get(x, -1) for x, b in px.items() if b > 0}
                time.sleep(0.05)
            print(name, {xorb_file.get(x, x[:8]): b for x, b in px.items()})
            pull.kill()
            pull.wait()
            stop(p, mnt)
            knobs(origin, total_bps=0)
            last, still = -1, 0  # what was in flight drains before the next node counts
            while still < 5:
                n = origin.stats()["xorb_bytes_total"]
                still = still + 1 if n == last else 0
                last = n
                time.sleep(0.1)
            return got

        firsts = [first_files(f"pull{i}", ["--listen", "127.0.0.1:0"]) for i in range(5)]
        print(f"files fetched first by 5 nodes with peers: {[sorted(f) for f in firsts]}")
        check(all(f and -1 not in f for f in firsts), "each pull fetched some of org/many's files")
        check(len({frozenset(f) for f in firsts}) > 1 and any(max(f) >= 4 for f in firsts),
              "the nodes do not all start at the same files; some start past the first 4")
        plain = first_files("plain", ["--no-p2p"])
        print(f"files fetched first without peers: {sorted(plain)}")
        check(plain and max(plain) < 4, "without peers (no rotation) the pull starts within the first 4 files")
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        for s in socks:
            s.close()
        for p, mnt in list(nodes):
            unmount(p, mnt)
        for lp in logs:
            out = open(lp, errors="replace").read()
            check("runtime error:" not in out and "Sanitizer" not in out,
                  f"no sanitizer report in {os.path.basename(lp)}")
            if run.fails:
                print(f"---- {os.path.basename(lp)} ----\n" + out[-3000:])
        rc = run.finish(None, os.path.join(tmp, "m0"), origin)
    return rc


if __name__ == "__main__":
    sys.exit(main())
