#!/usr/bin/env python3
"""test_hostile.py ZESTFS [ZESTFS_ORIGIN] — hostile peers against a mount
(issue 19 item 7).  An origin serves a 64 MiB model, mount A reads it all
(so it holds and announces it), then raw-socket attackers speaking the wire
protocol, each from its own loopback address (127.0.0.N), try:

  flood     handshakes, ~200 REQUESTs of 64 chunks, never reads its socket:
            A's RSS grows by at most 64 MiB and A drops it;
  have      two peers send maximal HAVEs (4096 runs of [0, 8192)) for 8 s:
            random 4 KiB reads of stored data keep p99 <= 20 ms and every new
            peer gets its handshake answered within 1 s;
  ban       a peer banned for a malformed message reconnects with new peer
            ids: refused every time;
  oversize  frame headers of 100 MiB (DATA nobody asked for) and 2 MiB (a
            HAVE): the connection is closed at the header, nothing buffered;
  dribble   mount B (empty store) gets a peer that holds everything, answers
            manifests honestly and dribbles DATA (with keep-alives and HAVEs
            in between): B drops it and B's read completes, byte-exact, from
            the CDN;
and A stays mounted and readable throughout.

Under AddressSanitizer (the quarantine keeps freed memory resident, code runs
~3x slower) the RSS, latency and handshake bounds are widened (printed).
Figures go to a FIGURES line.  Exit 0 pass, 1 fail, 77 skip."""
import hashlib, os, random, socket, struct, subprocess, sys, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fs"))
import fsutil  # noqa: E402
from fsutil import MiB, Origin, mount, unmount  # noqa: E402
from test_p2p import OriginXorbs, wait_log  # noqa: E402

PSTR = b"\x13BitTorrent protocol"
RES = b"\0\0\0\0\0\x10\0\0"
NODE_ZFS = 2  # the node's zfs_xet id: what we send on
OUR_ZFS = 3   # ours
REPO = "org/hostile"
IH = hashlib.sha1(b"zestfs-repo-v1:model/" + REPO.encode()).digest()
FIG = {}


def ext(eid, payload):
    return struct.pack(">IBB", 2 + len(payload), 20, eid) + payload


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            raise EOFError
        b += k
    return b


def pid():
    return b"-AT0001-" + os.urandom(12)


def attacker(port, src, rcvbuf=0, timeout=10):
    """A connected, handshaken attacker socket (raises when refused)."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(PSTR + RES + IH + pid())
    hs = recv_exact(s, 68)
    if hs[:20] != PSTR:
        raise EOFError
    s.sendall(ext(0, b"d1:md7:zfs_xeti%dee1:v7:hostilee" % OUR_ZFS))
    return s


def handshake_time(port, src, limit):
    """Seconds from connect to the node's handshake, or None when refused / over limit."""
    t0 = time.time()
    s = socket.socket()
    try:
        s.bind((src, 0))
        s.settimeout(limit)
        s.connect(("127.0.0.1", port))
        s.sendall(PSTR + RES + IH + pid())
        recv_exact(s, 68)
        return time.time() - t0
    except (OSError, EOFError):
        return None
    finally:
        s.close()


def read_haves(s, secs):
    """{xorb: [(start, end)]} from the node's HAVEs during secs."""
    out = {}
    end = time.time() + secs
    buf = b""
    s.settimeout(0.2)
    while time.time() < end:
        try:
            k = s.recv(1 << 16)
            if not k:
                break
            buf += k
        except socket.timeout:
            continue
        while len(buf) >= 4:
            (n,) = struct.unpack(">I", buf[:4])
            if len(buf) < 4 + n:
                break
            body, buf = buf[4:4 + n], buf[4 + n:]
            if n >= 3 and body[0] == 20 and body[1] == OUR_ZFS and body[2] == 1:
                x, cnt = body[3:35], struct.unpack(">I", body[35:39])[0]
                out.setdefault(x, []).extend(struct.unpack(">II", body[39 + 8 * i:47 + 8 * i])
                                             for i in range(cnt))
    return out


def tcp_closed(s):
    """Whether the node closed the connection (FIN or RST seen), without reading."""
    try:
        st = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return True
    return st in (7, 8)  # TCP_CLOSE, TCP_CLOSE_WAIT


def closed_soon(s, secs):
    end = time.time() + secs
    while time.time() < end:
        if tcp_closed(s):
            return True
        time.sleep(0.05)
    return False


def asan(exe):
    r = subprocess.run(["ldd", exe], capture_output=True, text=True)
    return "libasan" in r.stdout


def main():
    run = fsutil.start("zestfs-hostile-")
    if run is None:
        return 77
    zestfs, check, tmp = run.zestfs, run.check, run.tmp
    san = asan(zestfs)
    rss_max = (320 if san else 64) * MiB
    p99_max = 0.1 if san else 0.02
    hs_max = 3.0 if san else 1.0
    print(f"bounds: RSS growth <= {rss_max >> 20} MiB, read p99 <= {p99_max * 1000:.0f} ms, "
          f"handshake <= {hs_max:.0f} s" + (" (widened: AddressSanitizer build)" if san else ""))
    src, data = os.path.join(tmp, "src"), os.path.join(tmp, "data")
    os.makedirs(src)
    rng = random.Random(19)
    model = fsutil.safetensors_like(rng, 64 * MiB)
    open(os.path.join(src, "model.safetensors"), "wb").write(model)
    open(os.path.join(src, "config.json"), "wb").write(b'{"hostile": true}')
    commit = fsutil.ingest(run.origin_exe, data, REPO, src)
    origin = Origin(run.origin_exe, data, tmp)
    procs = []

    def node(name, *extra):
        mnt, store, logp = (os.path.join(tmp, name + x) for x in ("-mnt", "-store", ".log"))
        os.mkdir(mnt)
        p = mount(zestfs, mnt, ["--endpoint", origin.url, "--repo", REPO, "--store", store,
                                "--listen", "127.0.0.1:0", "--token", "", *extra], open(logp, "w"))
        procs.append((p, mnt, logp))
        check(os.path.ismount(mnt), f"node {name} mounted")
        m = wait_log(logp, r"peers on 127\.0\.0\.1:(\d+)", 10)
        check(m is not None, f"node {name} printed its peer port")
        snap = os.path.join(mnt, "models--" + REPO.replace("/", "--"), "snapshots", commit)
        return p, mnt, os.path.join(snap, "model.safetensors"), int(m.group(1)) if m else 0

    def alive(p, mnt, path):
        try:
            ok = open(os.path.join(os.path.dirname(path), "config.json"), "rb").read() == \
                b'{"hostile": true}'
        except OSError:
            ok = False
        return p.poll() is None and os.path.ismount(mnt) and ok

    try:
        pa, ma, fa, port = node("a")
        check(open(fa, "rb").read() == model, "A: the model byte-exact from the origin")
        time.sleep(1.0)  # stored runs announced
        base = fsutil.rss(pa.pid)[0]

        # ---- flood: requests, never reading ----
        s = attacker(port, "127.0.0.2", rcvbuf=4096)
        haves = read_haves(s, 2.0)
        check(bool(haves), f"flood: A announced {len(haves)} xorbs")
        reqs = []
        for x, runs in haves.items():
            for a, b in runs:
                reqs += [(x, k, min(k + 64, b)) for k in range(a, b, 64)]
        msgs = b""
        for i in range(200):
            x, a, b = reqs[i % len(reqs)] if reqs else (b"\0" * 32, 0, 64)
            msgs += ext(NODE_ZFS, b"\x02" + struct.pack(">I", i + 1) + x + struct.pack(">II", a, b))
        s.sendall(msgs)
        t0, peak, dropped, aborted = time.time(), base, None, False
        last_ka = 0
        while time.time() - t0 < 60:
            peak = max(peak, fsutil.rss(pa.pid)[0])
            if peak - base > 1024 * MiB:
                aborted = True  # stop before the machine runs out
                break
            if tcp_closed(s):
                dropped = time.time() - t0
                break
            if time.time() - last_ka > 1:
                try:
                    s.send(b"\0\0\0\0")  # keep-alives: must not hold the connection
                except OSError:
                    pass
                last_ka = time.time()
            time.sleep(0.05)
        s.close()
        grow = peak - base
        FIG["flood_rss_mib"] = round(grow / MiB, 1)
        FIG["flood_drop_s"] = round(dropped, 1) if dropped is not None else None
        check(grow <= rss_max, f"flood: A's RSS grew {grow / MiB:.1f} MiB (<= {rss_max >> 20})"
              + (" — aborted past 1 GiB" if aborted else ""))
        check(dropped is not None, f"flood: the never-reading peer was dropped "
              f"(after {dropped if dropped is None else round(dropped, 1)} s)")
        check(alive(pa, ma, fa), "A still mounted after the flood")

        # ---- have: two HAVE flooders, reads and handshakes meanwhile ----
        x0 = next(iter(haves)) if haves else b"\1" * 32
        have_msg = ext(NODE_ZFS, b"\x01" + x0 + struct.pack(">I", 4096) +
                       struct.pack(">II", 0, 8192) * 4096)
        fd = os.open(fa, os.O_RDONLY)
        r2 = random.Random(7)

        def lat_reads(secs, out):
            end = time.time() + secs
            while time.time() < end and len(out) < 400:
                off = r2.randrange(0, len(model) // 4096) * 4096
                os.posix_fadvise(fd, off, 4096, os.POSIX_FADV_DONTNEED)
                t = time.time()
                b = os.pread(fd, 4096, off)
                out.append(time.time() - t)
                if b != model[off:off + 4096]:
                    out.append(float("inf"))
                    break

        quiet = []
        lat_reads(2.0, quiet)
        stop = threading.Event()
        sent = [0, 0]

        def flooder(k):
            try:
                f = attacker(port, "127.0.0.%d" % (3 + k))
                f.settimeout(30)
                while not stop.is_set():
                    f.sendall(have_msg)
                    sent[k] += 1
                f.close()
            except (OSError, EOFError):
                pass

        fl = [threading.Thread(target=flooder, args=(k,), daemon=True) for k in range(2)]
        for t in fl:
            t.start()
        time.sleep(0.5)
        lats, hss = [], []
        rt = threading.Thread(target=lat_reads, args=(7.0, lats), daemon=True)
        rt.start()
        t0 = time.time()
        while time.time() - t0 < 7.0:
            h = handshake_time(port, "127.0.0.5", 15)
            hss.append(h if h is not None else float("inf"))
            time.sleep(0.3)
        rt.join(60)
        stop.set()
        for t in fl:
            t.join(30)
        os.close(fd)
        lats.sort()
        quiet.sort()
        p99 = lats[int(0.99 * (len(lats) - 1))] if lats else float("inf")
        q99 = quiet[int(0.99 * (len(quiet) - 1))] if quiet else float("inf")
        FIG.update(have_reads=len(lats), have_p99_ms=round(p99 * 1000, 1),
                   have_max_ms=round(lats[-1] * 1000, 1) if lats else None,
                   quiet_p99_ms=round(q99 * 1000, 1), have_msgs_sent=sum(sent),
                   hs_max_s=round(max(hss), 2) if hss else None)
        print(f"have flood: {sum(sent)} HAVEs of 32 KiB sent; {len(lats)} reads, p99 "
              f"{p99 * 1000:.1f} ms (without the flood {q99 * 1000:.1f} ms), max "
              f"{FIG['have_max_ms']} ms; handshakes max {FIG['hs_max_s']} s")
        check(sum(sent) >= 20, f"have: the flooders sent {sum(sent)} HAVEs")
        check(len(lats) >= 20 and p99 <= p99_max,
              f"have: {len(lats)} random 4 KiB reads, p99 {p99 * 1000:.1f} ms <= "
              f"{p99_max * 1000:.0f} ms")
        check(hss and max(hss) <= hs_max, f"have: {len(hss)} new peers, every handshake within "
              f"{hs_max:.0f} s (max {FIG['hs_max_s']} s)")
        check(alive(pa, ma, fa), "A still mounted after the HAVE flood")

        # ---- ban: a malformed message, then new peer ids from the same address ----
        s = attacker(port, "127.0.0.6")
        s.sendall(ext(NODE_ZFS, b"\x99" + os.urandom(40)))
        check(closed_soon(s, 10), "ban: a malformed message closes the connection")
        s.close()
        let_in = sum(handshake_time(port, "127.0.0.6", 5) is not None for _ in range(20))
        FIG["ban_let_in"] = let_in
        check(let_in == 0, f"ban: new peer ids from the banned address let in {let_in} of 20 times")
        check(handshake_time(port, "127.0.0.16", 5) is not None, "ban: another address still is")

        # ---- oversize: refused at the header ----
        r0 = fsutil.rss(pa.pid)[0]
        s = attacker(port, "127.0.0.7")
        t0 = time.time()
        s.sendall(struct.pack(">IBBB", 100 << 20, 20, NODE_ZFS, 3) + b"\0\0\0\1")
        c1 = closed_soon(s, 10)
        FIG["oversize_close_s"] = round(time.time() - t0, 2) if c1 else None
        s.close()
        s = attacker(port, "127.0.0.8")
        s.sendall(struct.pack(">IBBB", 2 << 20, 20, NODE_ZFS, 1) + b"\0" * 64)
        c2 = closed_soon(s, 10)
        s.close()
        check(c1, f"oversize: a 100 MiB DATA header nobody asked for is refused at its header "
              f"({FIG['oversize_close_s']} s)")
        check(c2, "oversize: a 2 MiB HAVE header is refused at its header")
        g = fsutil.rss(pa.pid)[0] - r0
        gmax = (96 if san else 32) * MiB  # a 100 MiB frame buffered (or allocated) would exceed it
        check(g < gmax, f"oversize: nothing buffered (RSS {g / MiB:+.1f} MiB < {gmax >> 20} MiB)")
        check(alive(pa, ma, fa), "A still mounted after the oversized frames")

        # ---- dribble: B drops a crawling peer, reads from the CDN ----
        dr = Dribbler(OriginXorbs(data))
        pb, mb, fb, _ = node("b", "--peer", f"127.0.0.9:{dr.port}")
        check(wait_log(procs[-1][2], r"peers: [1-9]\d* connected", 30) is not None,
              "dribble: B connected to the dribbler")
        time.sleep(0.5)
        t0 = time.time()
        try:
            ok = open(fb, "rb").read() == model
        except OSError:
            ok = False
        took = time.time() - t0
        check(ok and took < 120, f"dribble: B's read byte-exact in {took:.1f} s (< 120)")
        end = time.time() + 60
        while dr.closed_at is None and time.time() < end:
            time.sleep(0.2)
        FIG.update(dribble_read_s=round(took, 1), dribble_sent=dr.sent,
                   dribble_drop_s=round(dr.closed_at - t0, 1) if dr.closed_at else None)
        check(dr.closed_at is not None, f"dribble: B dropped the dribbler (after "
              f"{None if dr.closed_at is None else round(dr.closed_at - t0, 1)} s; it sent "
              f"{dr.sent} bytes of DATA)")
        check(alive(pb, mb, fb), "B still mounted")
        dr.stop = True
        check(alive(pa, ma, fa), "A mounted and readable at the end")
    except Exception as e:  # noqa: BLE001
        check(False, f"exception: {e!r}")
    finally:
        print("FIGURES " + " ".join(f"{k}={v}" for k, v in FIG.items()))
        for p, mnt, logp in procs:
            if p.poll() is None:
                unmount(p, mnt)
            out = open(logp, errors="replace").read()
            check("runtime error:" not in out and "Sanitizer" not in out,
                  f"no sanitizer report in {os.path.basename(logp)}")
            if run.fails:
                print(f"---- {logp} ----\n" + out[-3000:])
    return run.finish(None, os.path.join(tmp, "none"), origin)


class Dribbler:
    """A peer holding every xorb of the origin: honest manifests, DATA at a
    crawl (1 KiB a second), keep-alives and HAVEs in between."""

    def __init__(self, xorbs):
        self.xorbs = xorbs
        self.sent = 0
        self.closed_at = None
        self.stop = False
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.9", 0))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        self.ls.settimeout(0.5)
        while not self.stop:
            try:
                s, _ = self.ls.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def haves(self):
        return b"".join(ext(NODE_ZFS, b"\x01" + h + struct.pack(">III", 1, 0, len(recs)))
                        for h, (_, recs) in self.xorbs.x.items())

    def serve(self, s):
        try:
            s.settimeout(120)
            hs = recv_exact(s, 68)
            s.sendall(PSTR + RES + hs[28:48] + b"-DR0001-" + b"D" * 12)
            s.sendall(ext(0, b"d1:md7:zfs_xeti%dee1:v4:dribe" % OUR_ZFS) + self.haves())
            s.settimeout(0.05)
            buf, out, last = b"", b"", 0
            while not self.stop:
                try:
                    k = s.recv(1 << 16)
                    if not k:
                        break
                    buf += k
                except socket.timeout:
                    pass
                while len(buf) >= 4:
                    (n,) = struct.unpack(">I", buf[:4])
                    if len(buf) < 4 + n:
                        break
                    body, buf = buf[4:4 + n], buf[4 + n:]
                    if n < 3 or body[0] != 20 or body[1] != OUR_ZFS:
                        continue
                    p = body[2:]
                    if p[0] == 4:  # MREQ: the true manifest, at once
                        _, recs = self.xorbs.x[p[5:37]]
                        m = b"".join(r[2] + struct.pack(">I", r[1]) for r in recs)
                        s.sendall(ext(NODE_ZFS, b"\x05" + p[1:5] + struct.pack(">I", len(recs)) + m))
                    elif p[0] == 2:  # REQUEST: queued, dribbled below
                        path, recs = self.xorbs.x[p[5:37]]
                        a, e = struct.unpack(">II", p[37:45])
                        lo = recs[a - 1][0] if a else 0
                        with open(path, "rb") as f:
                            f.seek(lo)
                            d = f.read(recs[e - 1][0] - lo)
                        out += ext(NODE_ZFS, b"\x03" + p[1:5] + struct.pack(">I", a) + d)
                if time.time() - last >= 1:  # a second: 1 KiB of DATA, or a keep-alive and HAVEs
                    last = time.time()
                    if out:
                        s.sendall(out[:1024])
                        self.sent += min(1024, len(out))
                        out = out[1024:]
                    else:
                        s.sendall(b"\0\0\0\0" + self.haves())
        except (EOFError, ConnectionError, OSError, KeyError):
            pass
        finally:
            if self.closed_at is None and not self.stop:
                self.closed_at = time.time()
            s.close()


if __name__ == "__main__":
    sys.exit(main())
