"""disc-tracker: zestfs's tracker clients (test_tracker's CLI) against Debian's
opentracker in whitelist mode (HTTP and UDP, started here on loopback) and
against scripted fake trackers for the error paths.  Usage:
disc_tracker.py TEST_TRACKER.  Swarm ids are recomputed with hashlib."""
import hashlib
import http.server
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

TOOL = sys.argv[1]
FAILS = []
SKIPPED = []  # parts that could not run here: the test exits 77 naming them
EPERM, EBADMSG, ETIMEDOUT, EAGAIN = -1, -74, -110, -11


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def run(*args, timeout=60):
    p = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0 or p.stderr:
        check(False, "tool %s: exit 0, nothing on stderr (rc %d %s)"
              % (args[0], p.returncode, p.stderr[-500:]))
    return p.stdout.strip().splitlines()


def kv(line):
    out = {}
    for part in line.split(" "):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    # failure text may contain spaces
    if " failure=" in line:
        out["failure"] = line.split(" failure=", 1)[1]
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        u.close()
        return free_port()
    u.close()
    return p


def repo_ih(t, r):
    return hashlib.sha1(("zestfs-repo-v1:%s/%s" % (t, r)).encode()).hexdigest()


# ---- swarm ids ------------------------------------------------------------------

def test_ids():
    for t, r in [("model", "openai-community/gpt2"), ("dataset", "HuggingFaceFW/fineweb"),
                 ("space", "gradio/hello_world"), ("model", "Org/Ünïcode-näme")]:
        got = run("ids", t, r)
        check(got == [repo_ih(t, r)], "repo id %s/%s = hashlib %s" % (t, r, repo_ih(t, r)))
    api = "a1b2c3d4e5f6789012345678901234567890abcdef1234567890abcdef123456"
    raw = b"".join(bytes.fromhex(api[i:i + 16])[::-1] for i in range(0, 64, 16))
    want = hashlib.sha1(b"zest-xet-v1:" + raw).hexdigest()
    check(want == "f634bfb98e3149c9d98b7b8a24a1f5e5967c65be", "p2p.md 1.1 vector (hashlib)")
    check(run("zestxorb", api) == [want], "zest per-xorb id = hashlib")


# ---- opentracker ---------------------------------------------------------------

def test_opentracker():
    ot = shutil.which("opentracker")
    if not ot:
        check(False, "opentracker installed (tests/lib-deps.sh)")
        return
    ih_a = repo_ih("model", "zestfs-test/a")
    ih_b = repo_ih("dataset", "zestfs-test/b")
    ih_bad = repo_ih("model", "zestfs-test/not-listed")
    ih_probe = repo_ih("model", "zestfs-test/probe")
    d = tempfile.mkdtemp(prefix="zfs-ot-")
    os.chmod(d, 0o755)  # opentracker drops privileges before it reads the whitelist
    with open(os.path.join(d, "whitelist.txt"), "w") as f:
        f.write(ih_a + "\n" + ih_b + "\n" + ih_probe + "\n")
    port = free_port()
    proc = subprocess.Popen([ot, "-i", "127.0.0.1", "-p", str(port), "-P", str(port), "-d", d,
                             "-w", "whitelist.txt"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # wait until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        http_url = "http://127.0.0.1:%d/announce" % port
        udp_url = "udp://127.0.0.1:%d" % port
        # it loads the whitelist after it starts listening: wait for a probe hash
        for _ in range(100):
            if kv(run("announce", http_url, ih_probe, 1, 2, 0)[0]).get("err") == "0":
                break
            time.sleep(0.1)
        # client 1 over HTTP (seeder), client 2 over UDP (leecher): each sees the other
        r1 = kv(run("announce", http_url, ih_a, 7001, 2, 0)[0])
        check(r1.get("err") == "0", "http announce to opentracker: err 0 (%s)" % r1)
        check(int(r1.get("interval", 0)) > 0, "http announce: interval given")
        r2 = kv(run("announce", udp_url, ih_a, 7002, 2, 1000)[0])
        check(r2.get("err") == "0", "udp announce to opentracker: err 0 (%s)" % r2)
        check("127.0.0.1:7001" in r2.get("peers", ""), "udp client sees the http client")
        check(r2.get("complete") == "1" and r2.get("incomplete") == "1",
              "udp announce: 1 seeder, 1 leecher")
        r1 = kv(run("announce", http_url, ih_a, 7001, 0, 0)[0])
        check("127.0.0.1:7002" in r1.get("peers", ""), "http client sees the udp client")
        # the other swarm is separate
        r3 = kv(run("announce", udp_url, ih_b, 7003, 2, 0)[0])
        check(r3.get("err") == "0" and "7001" not in r3.get("peers", ""),
              "second swarm does not list the first's peers")
        # scrape over both
        s = run("scrape", "http://127.0.0.1:%d/announce" % port, ih_a, ih_b)[0].split()
        check(s[0] == "err=0", "http scrape err 0 (%s)" % s)
        check(("%s:1:1:" % ih_a) in " ".join(s), "http scrape: A has 1 seeder 1 leecher")
        check(("%s:1:0:" % ih_b) in " ".join(s), "http scrape: B has 1 seeder")
        s = run("scrape", udp_url, ih_a, ih_b)[0].split()
        check(s[0] == "err=0", "udp scrape err 0 (%s)" % s)
        check(s[1].split(":")[:3] == [ih_a, "1", "1"], "udp scrape A: 1 seeder 1 leecher (%s)" % s[1])
        # stopped removes the peer
        kv(run("announce", udp_url, ih_a, 7002, 3, 1000)[0])
        r1 = kv(run("announce", http_url, ih_a, 7001, 0, 0)[0])
        check("7002" not in r1.get("peers", ""), "stopped: udp client gone from the swarm")
        # not on the whitelist: the tracker's failure as -EPERM
        rb = kv(run("announce", http_url, ih_bad, 7001, 2, 0)[0])
        check(rb.get("err") == str(EPERM) and "not authorized" in rb.get("failure", ""),
              "http: non-whitelisted hash -> -EPERM with the tracker's text (%s)" % rb)
        rb = kv(run("announce", udp_url, ih_bad, 7001, 2, 0, 200, 3)[0])
        check(rb.get("err") == str(EPERM), "udp: non-whitelisted hash -> -EPERM (%s)" % rb)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)


# ---- fake UDP tracker -------------------------------------------------------------

class FakeUDP:
    """Answers BEP 15 per `mode`; records every packet."""

    def __init__(self, mode, family=socket.AF_INET, host="127.0.0.1"):
        self.mode, self.pkts = mode, []
        self.s = socket.socket(family, socket.SOCK_DGRAM)
        self.s.bind((host, 0))
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.stop = False
        self.conn_ids = set()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def close(self):
        self.stop = True
        self.t.join()
        self.s.close()

    def loop(self):
        while not self.stop:
            try:
                p, a = self.s.recvfrom(2048)
            except socket.timeout:
                continue
            self.pkts.append(p)
            out = self.answer(p)
            for o in out:
                self.s.sendto(o, a)

    def answer(self, p):
        m = self.mode
        if m == "silent":
            return []
        if len(p) == 16:
            magic, action, tx = struct.unpack(">QII", p)
            if magic != 0x41727101980 or action != 0:
                return []
            nconn = sum(1 for x in self.pkts if len(x) == 16)
            if m == "dropfirst" and nconn == 1:
                return []
            cid = 0x1122334455667788 + nconn
            self.conn_ids.add(cid)
            if m == "wrongtx":
                return [struct.pack(">IIQ", 0, tx ^ 1, 99), struct.pack(">IIQ", 0, tx, cid)]
            if m == "error":
                return [struct.pack(">II", 3, tx) + b"go away"]
            return [struct.pack(">IIQ", 0, tx, cid)]
        cid, action, tx = struct.unpack(">QII", p[:16])
        if cid not in self.conn_ids:
            return [struct.pack(">II", 3, tx) + b"bad connection id"]
        if action == 1 and len(p) == 98:
            if m == "short":
                return [struct.pack(">II", 1, tx)]
            head = struct.pack(">IIIII", 1, tx, 120, 1, 2)
            if m == "trunc":
                return [head + b"\x7f\0\0\x01\x1b"]
            if m == "v6":
                return [head + socket.inet_pton(socket.AF_INET6, "::1") + struct.pack(">H", 7005)
                        + socket.inet_pton(socket.AF_INET6, "fe80::2") + struct.pack(">H", 80)]
            return [head + bytes([10, 0, 0, 7]) + struct.pack(">H", 6881)]
        if action == 2:
            n = (len(p) - 16) // 20
            return [struct.pack(">II", 2, tx) +
                    b"".join(struct.pack(">III", 4 + i, 9, 3) for i in range(n))]
        return []


def test_fake_udp():
    ih = repo_ih("model", "fake/udp")
    f = FakeUDP("ok")
    url = "udp://127.0.0.1:%d" % f.port
    out = run("announce", url, ih, 6999, 2, 12345, 200, 3, 2)
    r = kv(out[0])
    check(r.get("err") == "0" and r.get("peers") == "10.0.0.7:6881",
          "fake udp: announce parsed (%s)" % r)
    check(r.get("interval") == "120" and r.get("incomplete") == "1" and r.get("complete") == "2",
          "fake udp: interval / leechers / seeders")
    ann = [p for p in f.pkts if len(p) == 98]
    check(len(ann) == 2, "fake udp: two announces sent")
    if ann:
        a = ann[0]
        check(a[16:36] == bytes.fromhex(ih), "announce packet: info_hash at 16")
        check(a[36:44] == b"-ZF0001-", "announce packet: peer_id")
        dl, left, ul, ev = struct.unpack(">QQQI", a[56:84])
        check(left == 12345 and ev == 2 and dl == 0 and ul == 0, "announce packet: left, event")
        check(struct.unpack(">I", a[88:92])[0] == 0x1234abcd, "announce packet: key")
        check(struct.unpack(">i", a[92:96])[0] == 50, "announce packet: num_want")
        check(struct.unpack(">H", a[96:98])[0] == 6999, "announce packet: port")
    check(sum(1 for p in f.pkts if len(p) == 16) == 1,
          "connection id reused for the second announce (one connect)")
    s = run("scrape", url, ih, repo_ih("model", "fake/udp2"), 200, 3)[0].split()
    check(s[0] == "err=0" and s[1] == ih + ":4:3:9", "fake udp scrape parsed (%s)" % s)
    f.close()

    cases = [("wrongtx", "0", "wrong transaction id dropped, the right one used"),
             ("error", str(EPERM), "error action -> -EPERM"),
             ("trunc", str(EBADMSG), "truncated compact list -> -EBADMSG"),
             ("short", str(EPERM), "8-byte announce answer -> -EPERM"),
             ("dropfirst", "0", "lost connect answer: retransmitted, then ok"),
             ("silent", str(ETIMEDOUT), "no answer -> -ETIMEDOUT after max tries")]
    for mode, want, what in cases:
        f = FakeUDP(mode)
        lines = run("announce", "udp://127.0.0.1:%d" % f.port, ih, 6999, 2, 0, 100, 3)
        f.close()
        r, st = kv(lines[0]), kv(lines[-1])
        check(r.get("err") == want, "fake udp %s: %s (%s)" % (mode, what, r))
        if mode == "wrongtx":
            check(st.get("dropped") == "1", "wrongtx: one packet dropped (%s)" % st)
        if mode == "error":
            check(r.get("failure") == "go away", "error action text kept")
        if mode == "dropfirst":
            check(st.get("retransmits") == "1" and sum(len(p) == 16 for p in f.pkts) == 2,
                  "dropfirst: one retransmission (%s)" % st)
        if mode == "silent":
            check(len(f.pkts) == 3 and st.get("retransmits") == "2",
                  "silent: 3 sends (base, 2x base, 4x base) then give up (%d)" % len(f.pkts))
    # IPv6 tracker: 18-byte peers
    try:
        f = FakeUDP("v6", socket.AF_INET6, "::1")
    except OSError:
        print("skip: no IPv6 loopback: the UDP tracker over IPv6 not tested")
        SKIPPED.append("no IPv6 loopback")
        return
    r = kv(run("announce", "udp://[::1]:%d" % f.port, ih, 6999, 2, 0, 200, 3)[0])
    f.close()
    check(r.get("err") == "0" and r.get("peers") == "[::1]:7005,[fe80::2]:80",
          "udp over IPv6: 18-byte peers (%s)" % r)


# ---- fake HTTP tracker ---------------------------------------------------------------

BODIES = {
    "garbage": b"d8:intervali18",
    "html": b"<html>busy</html>",
    "trunc": b"d8:intervali60e5:peers8:\x7f\0\0\x01\x1a\xe1\x7f\0e",
    "fail": b"d14:failure reason12:swarm closede",
    "v6": (b"d8:completei1e10:incompletei0e8:intervali1800e12:min intervali900e5:peers6:"
           b"\x7f\0\0\x02\x1b\x59" b"6:peers618:" + socket.inet_pton(socket.AF_INET6, "::1")
           + b"\x1b\x5a" b"e"),
    "dicts": b"d8:intervali60e5:peersld2:ip9:127.0.0.34:porti7010eeee",
    "scrape": b"d5:filesd20:" + b"A" * 20 + b"d8:completei3e10:downloadedi5e10:incompletei1eeee",
}


class Handler(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_GET(self):
        Handler.seen.append(self.path)
        mode = self.path.split("/")[1]
        if self.path.split("?")[0].endswith("/scrape"):
            body = BODIES["scrape"]
        else:
            body = BODIES.get(mode, b"")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_fake_http():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % srv.server_address[1]
    ih = "00ff2041" + "7e2e2d5f" + "25" * 12   # bytes needing and not needing escapes
    try:
        for mode, want in [("garbage", EBADMSG), ("html", EBADMSG), ("trunc", EBADMSG),
                           ("fail", EPERM)]:
            r = kv(run("announce", base + "/%s/announce" % mode, ih, 7000, 2, 0)[0])
            check(r.get("err") == str(want), "fake http %s -> %d (%s)" % (mode, want, r))
            if mode == "fail":
                check(r.get("failure") == "swarm closed", "failure reason text kept")
        q = urllib.parse.urlsplit(Handler.seen[0]).query
        params = dict(p.split("=", 1) for p in q.split("&"))
        want_ih = urllib.parse.quote(bytes.fromhex(ih), safe="-._~")
        check(params.get("info_hash") == want_ih,
              "info_hash %%-escaped byte for byte (%s vs %s)" % (params.get("info_hash"), want_ih))
        check(urllib.parse.unquote_to_bytes(params["info_hash"]) == bytes.fromhex(ih),
              "info_hash round-trips to the 20 bytes")
        check(params.get("port") == "7000" and params.get("compact") == "1" and
              params.get("event") == "started" and params.get("left") == "0" and
              params.get("numwant") == "50", "announce parameters (%s)" % params)
        # peers + peers6, interval honoured: a regular announce right after is refused
        lines = run("announce", base + "/v6/announce", ih, 7000, 2, 0, 0, 0, 0)
        r = kv(lines[0])
        check(r.get("err") == "0" and r.get("peers") == "127.0.0.2:7001,[::1]:7002",
              "peers and peers6 parsed (%s)" % r)
        check(r.get("min") == "900" and r.get("interval") == "1800", "interval and min interval")
        check(lines[1] == "again=%d" % EAGAIN,
              "regular announce before min interval -> -EAGAIN (%s)" % lines[1])
        n_before = len(Handler.seen)
        lines = run("announce", base + "/v6/announce", ih, 7000, 2, 0, 0, 0, 3)
        check(kv(lines[1]).get("err") == "0" and len(Handler.seen) == n_before + 2 and
              "event=stopped" in Handler.seen[-1], "stopped goes out at once")
        r = kv(run("announce", base + "/dicts/announce", ih, 7000, 0, 0)[0])
        check(r.get("peers") == "127.0.0.3:7010", "non-compact peer list parsed (%s)" % r)
        check("event=" not in Handler.seen[-1], "event none: no event parameter")
        s = run("scrape", base + "/x/announce?passkey=k", "41" * 20, ih)[0].split()
        check(s == ["err=0", "41" * 20 + ":3:1:5", ih + ":0:0:0"], "http scrape parsed (%s)" % s)
        check(Handler.seen[-1].startswith("/x/scrape?passkey=k&info_hash=AAAA"),
              "scrape URL from the announce URL (%s)" % Handler.seen[-1])
        out = run("scrape", base + "/x/tracker", ih)
        check(out[0] == "start=-38", "scrape of a non-announce URL -> -ENOSYS (%s)" % out[0])
        # nothing listening: transport error, not a hang
        dead = free_port()
        r = kv(run("announce", "http://127.0.0.1:%d/announce" % dead, ih, 7000, 2, 0)[0])
        check(r.get("err") == "-111", "refused connection -> -ECONNREFUSED (%s)" % r)
    finally:
        srv.shutdown()


test_ids()
test_fake_http()
test_fake_udp()
test_opentracker()
if FAILS:
    print("%d check(s) failed" % len(FAILS))
    sys.exit(1)
if SKIPPED:
    print("skip: " + "; ".join(SKIPPED))
    sys.exit(77)
print("all checks passed")
