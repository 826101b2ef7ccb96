"""Helpers for the peer tests: the test xorb (dumped by test_peer), BT framing,
a scripted raw-socket peer, and running test_peer's tool modes."""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

PSTR = b"\x13BitTorrent protocol"
FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def done():
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("all checks passed")


class Xorb:
    """The deterministic test xorb of test_peer (chunk data, lens, hashes)."""

    def __init__(self, tool):
        self.dir = tempfile.mkdtemp(prefix="zfs-peer-")
        subprocess.run([tool, "dump", self.dir], check=True)
        rd = lambda n: open(os.path.join(self.dir, n), "rb").read()
        self.data = rd("chunks.bin")
        hs = rd("hashes.bin")
        self.lens = [int(x) for x in open(os.path.join(self.dir, "lens.txt"))]
        self.hashes = [hs[32 * k:32 * k + 32] for k in range(len(self.lens))]
        self.hash = rd("xorb.bin")
        self.off = [0]
        for l in self.lens:
            self.off.append(self.off[-1] + l)

    def chunk(self, k):
        return self.data[self.off[k]:self.off[k + 1]]

    def records(self, s, e):
        """Chunks [s,e) as Xet records, scheme NONE."""
        out = b""
        for k in range(s, e):
            c = self.chunk(k)
            out += bytes([0]) + len(c).to_bytes(3, "little") + bytes([0]) + \
                len(c).to_bytes(3, "little") + c
        return out


def frame(msg_id, payload=b""):
    return struct.pack(">IB", 1 + len(payload), msg_id) + payload


def ext(ext_id, payload):
    return frame(20, bytes([ext_id]) + payload)


def handshake(ih, pid, reserved=b"\0\0\0\0\0\x10\0\0"):
    return PSTR + reserved + ih + pid


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            raise EOFError("peer closed after %d of %d bytes" % (len(b), n))
        b += k
    return b


def recv_frame(s):
    """Next non-keepalive frame as (id, payload)."""
    while True:
        (n,) = struct.unpack(">I", recv_exact(s, 4))
        if n == 0:
            continue
        body = recv_exact(s, n)
        return body[0], body[1:]


def recv_ext(s):
    """Next extended message as (ext_id, payload), skipping other BT messages."""
    while True:
        mid, p = recv_frame(s)
        if mid == 20:
            return p[0], p[1:]


def closed_by_peer(s, timeout=10):
    """True when the peer closes the connection (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            k = s.recv(65536)
            if not k:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def listener():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    ls.settimeout(20)
    return ls, ls.getsockname()[1]


def run_fetch(tool, port, ih_hex, s, e, *flags):
    """Start `test_peer fetch` in the background; returns the Popen."""
    return subprocess.Popen([tool, "fetch", str(port), ih_hex, str(s), str(e)] + list(flags),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def parse_kv(line):
    out = {}
    for tok in line.split()[1:]:
        k, v = tok.split("=", 1)
        out[k] = int(v)
    return out


def finish(proc, tag="RESULT", timeout=60):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    check(proc.returncode == 0, "test_peer exited cleanly (rc %s)" % proc.returncode)
    if "runtime error" in out or "AddressSanitizer" in out or "LeakSanitizer" in out:
        check(False, "sanitizer report:\n" + out)
    for line in out.splitlines():
        if line.startswith(tag + " "):
            return parse_kv(line)
    print(out)
    return {}


class Server:
    """`test_peer serve` in the background; stop() closes its stdin."""

    def __init__(self, tool):
        self.p = subprocess.Popen([tool, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        line = self.p.stdout.readline().split()
        kv = dict(zip(line[0::2], line[1::2]))
        self.port = int(kv["PORT"])
        self.xorb = bytes.fromhex(kv["XORB"])
        self.zih = bytes.fromhex(kv["ZIH"])
        self.ih = bytes.fromhex(kv["IH"])

    def stop(self):
        try:
            out, _ = self.p.communicate(input="", timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, _ = self.p.communicate()
        check(self.p.returncode == 0, "test_peer serve exited cleanly (rc %s)" % self.p.returncode)
        if "runtime error" in out or "AddressSanitizer" in out or "LeakSanitizer" in out:
            check(False, "sanitizer report:\n" + out)
        for line in out.splitlines():
            if line.startswith("STATS "):
                return parse_kv(line)
        print(out)
        return {}


def in_thread(fn, *args):
    res = {}

    def run():
        try:
            res["v"] = fn(*args)
        except Exception as ex:  # reported by the caller
            res["err"] = ex
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, res


def free_port():
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", p))
            t.close()
            return p
        except OSError:
            t.close()


def lt_dht_session(lt, port, boots):
    """A python3-libtorrent session that is a DHT node on loopback, bootstrapping from boots."""
    return lt.session({
        "listen_interfaces": "127.0.0.1:%d" % port, "enable_dht": True, "enable_lsd": False,
        "enable_upnp": False, "enable_natpmp": False,
        "dht_bootstrap_nodes": ",".join("127.0.0.1:%d" % b for b in boots),
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False, "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": False,
        "out_enc_policy": 2, "enable_outgoing_utp": False,
        "alert_mask": lt.alert.category_t.all_categories})
