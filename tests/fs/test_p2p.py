#!/usr/bin/env python3
"""test_p2p.py ZESTFS [ZESTFS_ORIGIN] — the peer swarm inside the mount
(issue #5 parts 3, 5, 6), every node on loopback with its own store:

  - node A reads a model from the origin; then the origin refuses every xorb
    download (knob refuse_xorbs) and node B (--peer A) reads the same files:
    byte-exact, every xorb byte from A (B's peer byte counter = the Xet bytes,
    its CDN counter 0, the origin's xorb egress 0);
  - a lying peer (a scripted BT + zfs_xet peer serving the origin's own xorb
    records with one bit flipped, honest manifests) is banned by node C and
    C's read is still byte-exact via the CDN;
  - `zestfs seed --store A's store` serves a mount D while the origin refuses
    xorbs: byte-exact, bytes from the seed;
  - discovery through a tracker (Debian's opentracker, started here in
    whitelist mode): the seed announces over HTTP, mount E (no --peer)
    announces over UDP, finds the seed and reads everything from it.
Exit 0 pass, 1 fail, 77 skip."""
import hashlib, json, os, random, re, shutil, socket, struct, subprocess, sys, threading, time
import urllib.parse, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, knobs, mount, unmount  # noqa: E402

PSTR = b"\x13BitTorrent protocol"


def wait_log(path, pattern, timeout=60):
    """First match of pattern in the file at path (re), or None."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            m = re.search(pattern, open(path, errors="replace").read())
            if m:
                return m
        except OSError:
            pass
        time.sleep(0.1)
    return None


def status_now(zestfs, store):
    r = subprocess.run([zestfs, "status", "--store", store, "--json"], capture_output=True,
                       text=True, timeout=60)
    try:
        return json.loads(r.stdout)
    except ValueError:
        print("status:", r.stdout[-500:], r.stderr[-500:])
        return {}


def status(zestfs, store, timeout=30):
    """The node's status once its fetches have ended (within `timeout` s).
    A read is answered as soon as its run is verified in memory, before the
    run is stored: its fetch ends later.  The bytes count for their source
    when the run is in (fs/read/xfetch.c; until then a status right after
    the last read missed the last fetch); waiting for the end keeps such
    timing out of what the checks compare."""
    end = time.time() + timeout
    st = status_now(zestfs, store)
    first = st
    while (find_num(st, "fetches_in_flight") or 0) > 0 and time.time() < end:
        time.sleep(0.1)
        st = status_now(zestfs, store)
    if st is not first:
        print(f"status {os.path.basename(store)}: {find_num(first, 'fetches_in_flight')} fetches "
              f"still in flight at first (bytes by source then {src_bytes(first)}, after "
              f"{src_bytes(st)})")
    return st


def find_num(o, key):
    """The first number under `key` anywhere in a JSON object, else None."""
    if isinstance(o, dict):
        for k, v in o.items():
            if k == key and isinstance(v, (int, float)):
                return v
            r = find_num(v, key)
            if r is not None:
                return r
    elif isinstance(o, list):
        for v in o:
            r = find_num(v, key)
            if r is not None:
                return r
    return None


def src_bytes(st):
    b = st.get("bytes_by_source") or {}
    if not b:
        for v in st.values():
            if isinstance(v, dict) and "peers" in v and "cdn" in v:
                b = v
                break
    return b.get("peers", 0), b.get("cdn", 0)


# ---- a lying peer: serves the origin's xorbs with one bit flipped -------------------

def raw_hash(s):
    return b"".join(bytes.fromhex(s[i:i + 16])[::-1] for i in range(0, 64, 16))


class OriginXorbs:
    def __init__(self, data):
        self.x = {}
        d = os.path.join(data, "xorbs")
        for n in os.listdir(d):
            if not n.endswith(".idx"):
                continue
            b = open(os.path.join(d, n), "rb").read()
            cnt = struct.unpack("<I", b[8:12])[0]
            recs = [struct.unpack("<II", b[16 + 40 * i:24 + 40 * i]) + (b[24 + 40 * i:56 + 40 * i],)
                    for i in range(cnt)]
            self.x[raw_hash(n[:-4])] = (os.path.join(d, n[:-4]), recs)


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            raise EOFError
        b += k
    return b


def ext(eid, payload):
    return struct.pack(">IBB", 2 + len(payload), 20, eid) + payload


class Liar:
    """Accepts connections, announces every origin xorb, answers manifests
    honestly and chunk requests with one flipped bit; records what happened.
    With slow=RATE it tells no lie but sends its answers at RATE bytes/s."""

    def __init__(self, xorbs, slow=0):
        self.xorbs = xorbs
        self.slow = slow
        self.sent = 0
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.lies = self.closed = 0
        self.stop = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        self.ls.settimeout(0.5)
        while not self.stop:
            try:
                s, _ = self.ls.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        try:
            s.settimeout(60)
            hs = recv_exact(s, 68)
            s.sendall(PSTR + b"\0\0\0\0\0\x10\0\0" + hs[28:48] + b"-LI0001-" + b"L" * 12)
            s.sendall(ext(0, b"d1:md7:zfs_xeti3ee1:v4:liare"))
            node_zfs = 2
            for h, (_, recs) in self.xorbs.x.items():
                s.sendall(ext(node_zfs, b"\x01" + h + struct.pack(">III", 1, 0, len(recs))))
            while True:
                (n,) = struct.unpack(">I", recv_exact(s, 4))
                if n == 0:
                    continue
                body = recv_exact(s, n)
                if body[0] != 20 or body[1] != 3:
                    continue
                p = body[2:]
                if p[0] == 4:  # MREQ: the true manifest
                    path, recs = self.xorbs.x[p[5:37]]
                    m = b"".join(r[2] + struct.pack(">I", r[1]) for r in recs)
                    s.sendall(ext(node_zfs, b"\x05" + p[1:5] + struct.pack(">I", len(recs)) + m))
                elif p[0] == 2:  # REQUEST: records with one bit flipped
                    path, recs = self.xorbs.x[p[5:37]]
                    a, e = struct.unpack(">II", p[37:45])
                    lo = recs[a - 1][0] if a else 0
                    with open(path, "rb") as f:
                        f.seek(lo)
                        data = bytearray(f.read(recs[e - 1][0] - lo))
                    msg = ext(node_zfs, b"\x03" + p[1:5] + struct.pack(">I", a) + bytes(data))
                    if self.slow:  # honest, but a trickle
                        for i in range(0, len(msg), 4096):
                            s.sendall(msg[i:i + 4096])
                            self.sent += min(4096, len(msg) - i)
                            time.sleep(4096 / self.slow)
                        continue
                    flip = 6 + 1 + 4 + 4 + len(data) // 2
                    msg = msg[:flip] + bytes([msg[flip] ^ 0x10]) + msg[flip + 1:]
                    self.lies += 1
                    s.sendall(msg)
        except (EOFError, ConnectionError, socket.timeout, OSError, KeyError):
            self.closed += 1
        finally:
            s.close()


TRACKERS = []


def tracker_case(run, origin, store, node, read_files, status, xet_bytes):
    check, tmp, zestfs = run.check, run.tmp, run.zestfs
    ot = shutil.which("opentracker")
    if not check(ot is not None, "opentracker installed (tests/lib-deps.sh)"):
        return
    ih = hashlib.sha1(b"zestfs-repo-v1:model/org/p2p").digest()
    d = os.path.join(tmp, "ot")
    os.mkdir(d)
    os.chmod(d, 0o755)  # it drops privileges before reading the whitelist
    open(os.path.join(d, "whitelist.txt"), "w").write(ih.hex() + "\n")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    TRACKERS.append(subprocess.Popen([ot, "-i", "127.0.0.1", "-p", str(port), "-P", str(port),
                                      "-d", d, "-w", "whitelist.txt"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    url = f"http://127.0.0.1:{port}/announce"
    q = urllib.parse.urlencode({"peer_id": "-PR0001-000000000000", "port": 9, "uploaded": 0,
                                "downloaded": 0, "left": 0, "event": "stopped", "compact": 1})
    probe = url + "?info_hash=" + urllib.parse.quote_from_bytes(ih) + "&" + q
    ok = False
    for _ in range(100):  # it loads the whitelist after it listens
        try:
            body = urllib.request.urlopen(probe, timeout=5).read()
            if b"failure" not in body:
                ok = True
                break
        except OSError:
            pass
        time.sleep(0.1)
    if not check(ok, "opentracker answers for the repo's swarm"):
        return
    seedlog = os.path.join(tmp, "seed2.log")
    seed = subprocess.Popen([zestfs, "seed", "--store", store, "--listen", "127.0.0.1:0",
                             "--tracker", url, "--token", ""],
                            stdout=open(seedlog, "w"), stderr=subprocess.STDOUT)
    fsutil.watch_log(seedlog)
    TRACKERS.append(seed)
    check(wait_log(seedlog, r"peers on", 20) is not None, "seed (with --tracker) started")
    time.sleep(1.5)  # its first announce (1 s timer)
    knobs(origin, refuse_xorbs=1)
    origin.reset()
    pe, me, se, le, snape, _ = node("e", "--tracker", f"udp://127.0.0.1:{port}")
    check(wait_log(le, r"peers: [1-9]\d* connected", 30) is not None,
          "E found the seed through the tracker and connected")
    time.sleep(0.5)
    check(read_files(snape), "E: every file byte-exact from the seed found by the tracker")
    peer, cdn = src_bytes(status(zestfs, se))
    check(peer >= xet_bytes and cdn == 0, f"E: peer bytes {peer}, CDN bytes {cdn}")
    unmount(pe, me)
    seed.terminate()
    check(seed.wait(30) == 0, "seed with --tracker exits 0")
    knobs(origin, refuse_xorbs=0)


def main():
    run = fsutil.start("zestfs-p2p-")
    if run is None:
        return 77
    zestfs, check, tmp = run.zestfs, run.check, run.tmp
    src, data = os.path.join(tmp, "src"), os.path.join(tmp, "data")
    os.makedirs(src)
    rng = random.Random(5)
    files = {"model.safetensors": fsutil.safetensors_like(rng, 24_000_000),
             "weights.bin": rng.randbytes(3_000_000), "config.json": b'{"p2p": true}'}
    for p, b in files.items():
        open(os.path.join(src, p), "wb").write(b)
    commit = fsutil.ingest(run.origin_exe, data, "org/p2p", src)
    xet_bytes = sum(len(b) for p, b in files.items() if p != "config.json")
    origin = Origin(run.origin_exe, data, tmp)
    env_token = ["--token", ""]  # anonymous: public repos, served
    procs, mnts, seed = [], [], None

    def node(name, *extra):
        mnt, store, logp = (os.path.join(tmp, name + x) for x in ("-mnt", "-store", ".log"))
        os.mkdir(mnt)
        log = open(logp, "w")
        p = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", "org/p2p", "--store", store,
                                "--listen", "127.0.0.1:0", *env_token, *extra], log)
        procs.append(p)
        mnts.append(mnt)
        check(os.path.ismount(mnt), f"node {name} mounted")
        m = wait_log(logp, r"peers on 127\.0\.0\.1:(\d+)", 10)
        check(m is not None, f"node {name} printed its peer port")
        snap = os.path.join(mnt, "models--org--p2p", "snapshots", commit)
        return p, mnt, store, logp, snap, int(m.group(1)) if m else 0

    def read_files(snap):
        return all(open(os.path.join(snap, p), "rb").read() == b for p, b in files.items())

    try:
        # ---- A from the origin ----
        pa, ma, sa, la, snapa, porta = node("a")
        t0 = time.time()
        check(read_files(snapa), "A: every file byte-exact from the origin")
        t_cdn_only = time.time() - t0
        sta = status(zestfs, sa)
        pa_peer, pa_cdn = src_bytes(sta)
        check(pa_cdn > 0 and pa_peer == 0, f"A: bytes from the CDN ({pa_cdn}), none from peers")

        # ---- B from A while the origin refuses xorbs ----
        knobs(origin, refuse_xorbs=1)
        origin.reset()
        pb, mb, sb, lb, snapb, _ = node("b", "--peer", f"127.0.0.1:{porta}")
        check(wait_log(lb, r"peers: [1-9]\d* connected", 30) is not None, "B: connected to A")
        time.sleep(0.5)  # A's HAVEs follow the handshake
        check(read_files(snapb), "B: every file byte-exact with the origin refusing xorbs")
        stb = status(zestfs, sb)
        peer, cdn = src_bytes(stb)
        check(peer >= xet_bytes and cdn == 0,
              f"B: peer bytes {peer} >= Xet file bytes {xet_bytes}, CDN bytes {cdn}")
        ost = origin.stats()
        check(ost.get("xorb_bytes_total", -1) == 0,
              f"origin sent B no xorb bytes ({ost.get('xorb_bytes_total')})")
        sta = status(zestfs, sa)
        check(src_bytes(sta)[1] == pa_cdn, "A fetched nothing more")
        unmount(pb, mb)
        knobs(origin, refuse_xorbs=0)

        # ---- C: a lying peer is banned, the CDN answers ----
        liar = Liar(OriginXorbs(data))
        pc, mc, sc, lc, snapc, _ = node("c", "--peer", f"127.0.0.1:{liar.port}")
        check(wait_log(lc, r"peers: [1-9]\d* connected", 30) is not None, "C: connected to the liar")
        time.sleep(0.5)
        check(read_files(snapc), "C: every file byte-exact despite the lying peer")
        stc = status(zestfs, sc)
        check(liar.lies >= 1, f"the liar sent flipped data ({liar.lies} times)")
        check((find_num(stc, "peer_bans") or 0) >= 1, f"C: liar banned ({find_num(stc, 'peer_bans')})")
        check(src_bytes(stc)[1] >= xet_bytes and src_bytes(stc)[0] == 0,
              f"C: bytes from the CDN {src_bytes(stc)[1]}, none from the liar")
        check(wait_log(lc, r"peers: 0 connected, [1-9]\d* banned", 10) is not None,
              "C logged the ban")
        liar.stop = True
        unmount(pc, mc)

        # ---- C2: a slow (honest) peer holding everything is raced by the CDN ----
        slow = Liar(OriginXorbs(data), slow=64 << 10)
        pc, mc, sc, lc, snapc, _ = node("c2", "--peer", f"127.0.0.1:{slow.port}")
        check(wait_log(lc, r"peers: [1-9]\d* connected", 30) is not None, "C2: connected to the slow peer")
        time.sleep(0.5)
        t0 = time.time()
        check(read_files(snapc), "C2: every file byte-exact with a slow peer holding it all")
        t_slow = time.time() - t0
        stc = status(zestfs, sc)
        races, won = find_num(stc, "races") or 0, find_num(stc, "races_cdn_won") or 0
        check(races >= 1 and won >= 1, f"C2: slow peer fetches raced against the CDN ({races}), "
              f"the CDN won {won}")
        check(src_bytes(stc)[1] >= xet_bytes * 0.9,
              f"C2: the CDN supplied the bytes ({src_bytes(stc)[1]} of {xet_bytes}); the slow "
              f"peer sent {slow.sent}")
        print(f"C2: read {xet_bytes} bytes in {t_slow:.2f} s with a 64 KiB/s peer "
              f"(A read them from the CDN alone in {t_cdn_only:.2f} s)")
        slow.stop = True
        unmount(pc, mc)

        # ---- `zestfs seed` serving A's store to D ----
        unmount(pa, ma)
        seedlog = os.path.join(tmp, "seed.log")
        seed = subprocess.Popen([zestfs, "seed", "--store", sa, "--listen", "127.0.0.1:0",
                                 "--token", ""], stdout=open(seedlog, "w"), stderr=subprocess.STDOUT)
        fsutil.watch_log(seedlog)
        m = wait_log(seedlog, r"peers on 127\.0\.0\.1:(\d+)", 20)
        check(m is not None, "seed printed its port")
        knobs(origin, refuse_xorbs=1)
        origin.reset()
        pd, md, sd, ld, snapd, _ = node("d", "--peer", f"127.0.0.1:{m.group(1) if m else 1}")
        check(wait_log(ld, r"peers: [1-9]\d* connected", 30) is not None, "D: connected to the seed")
        time.sleep(0.5)
        check(read_files(snapd), "D: every file byte-exact from the seed, origin refusing xorbs")
        peer, cdn = src_bytes(status(zestfs, sd))
        check(peer >= xet_bytes and cdn == 0, f"D: peer bytes {peer}, CDN bytes {cdn}")
        check(origin.stats().get("xorb_bytes_total", -1) == 0, "origin sent D no xorb bytes")
        unmount(pd, md)
        seed.terminate()
        check(seed.wait(30) == 0, "seed exits 0 on SIGTERM")
        m = wait_log(seedlog, r"served (\d+) chunk bytes", 5)
        check(m is not None and int(m.group(1)) >= xet_bytes,
              f"seed reports the bytes it served ({m.group(1) if m else None})")
        tracker_case(run, origin, sa, node, read_files, status, xet_bytes)
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        for p, mnt in zip(procs, mnts):
            if p.poll() is None:
                unmount(p, mnt)
        if seed and seed.poll() is None:
            seed.kill()
        for t in TRACKERS:
            if t.poll() is None:
                t.kill()
                t.wait()
        # every node's log (mount() watches them) and both seeds' logs are
        # scanned for sanitizer reports by run.finish(); on failure, show them
        for n in ("a", "b", "c", "c2", "d", "e", "seed", "seed2"):
            lp = os.path.join(tmp, n + ".log")
            if run.fails and os.path.exists(lp):
                print(f"---- {n} log ----\n" + open(lp, errors="replace").read()[-3000:])
    return run.finish(None, os.path.join(tmp, "none"), origin)


if __name__ == "__main__":
    sys.exit(main())
