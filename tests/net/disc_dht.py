"""disc-dht-libtorrent: our DHT node (test_dht's tool mode) among three
python3-libtorrent DHT nodes on loopback (spec/p2p.md §5.4).  Our node
bootstraps from them and announces a repo swarm; a libtorrent node's
get_peers finds us; libtorrent announces another hash and our get_peers finds
it; libtorrent's ping / find_node / get_peers reach our node and are answered.
Usage: disc_dht.py TEST_DHT  (Debian's /usr/bin/python3 for the bindings)."""
import hashlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_util import free_port, lt_dht_session  # noqa: E402

try:
    import libtorrent as lt
except ImportError:
    print("skip: python3-libtorrent missing")
    sys.exit(77)

TOOL = sys.argv[1]
FAILS = []
ALL = []  # text of every dht_pkt_alert seen
ERR = tempfile.TemporaryFile()  # our node's stderr (sanitizer reports)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def ih_of(t, r):
    return hashlib.sha1(("zestfs-repo-v1:%s/%s" % (t, r)).encode()).hexdigest()


class Node:
    """Our node: the test_dht tool, fed commands on stdin."""

    def __init__(self, boots, ih, port):
        self.p = subprocess.Popen([TOOL, "node", ",".join("127.0.0.1:%d" % b for b in boots),
                                   ih, str(port)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=ERR, text=True, bufsize=1)

    def line(self, timeout=90):
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            raise RuntimeError("our node said nothing for %ds" % timeout)
        return self.p.stdout.readline().strip()

    def cmd(self, c):
        self.p.stdin.write(c + "\n")
        self.p.stdin.flush()
        return self.line()

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
            self.p.wait(timeout=10)
        except Exception:
            self.p.kill()
            self.p.wait()
        ERR.seek(0)
        err = ERR.read().decode(errors="replace")
        check(self.p.returncode == 0 and not err,
              "our node exits 0, nothing on stderr (rc %s %s)" % (self.p.returncode, err[-500:]))


def pump(sessions, secs, until=None):
    """Pop alerts for up to secs; until(batch) sees each batch while it is
    valid (libtorrent reuses alert memory at the next pop) and keeps its own
    state; stop early once it returns true."""
    end = time.time() + secs
    while time.time() < end:
        hit = False
        for s in sessions:
            s.wait_for_alert(100)
            al = s.pop_alerts()
            ALL.extend(a.message() for a in al if isinstance(a, lt.dht_pkt_alert))
            if until and until(al):
                hit = True
        if hit:
            return


def main():
    ports = [free_port() for _ in range(3)]
    sess = [lt_dht_session(lt, ports[i], [p for p in ports if p != ports[i]]) for i in range(3)]
    node = None
    tmp = tempfile.mkdtemp(prefix="zfs-dht-lt-")
    try:
        # let the three find each other
        pump(sess, 3)
        ih_ours = ih_of("model", "zestfs-test/dht-ours")
        ih_lt = ih_of("model", "zestfs-test/dht-lt")
        our_peer_port = 45679
        node = Node(ports, ih_ours, our_peer_port)
        l = node.line()
        check(l.startswith("port "), "our node listens (%s)" % l)
        our_port = int(l.split()[1])
        l = node.line()
        good = int(l.split("=")[1])
        check(l.startswith("bootstrap") and good >= 3,
              "our node bootstrapped from libtorrent nodes (%s)" % l)
        l = node.line()
        acks = int(l.split("acks=")[1])
        check("err=0" in l and acks >= 2, "announce_peer accepted by libtorrent nodes (%s)" % l)

        # libtorrent's get_peers finds us
        for s in sess:
            s.add_dht_node(("127.0.0.1", our_port))
        found = set()

        def got_us(alerts):
            for a in alerts:
                if isinstance(a, lt.dht_get_peers_reply_alert):
                    for p in a.peers():
                        found.add(tuple(p))
            return ("127.0.0.1", our_peer_port) in found

        sess[0].dht_get_peers(lt.sha1_hash(bytes.fromhex(ih_ours)))
        pump(sess, 30, got_us)
        check(("127.0.0.1", our_peer_port) in found,
              "libtorrent get_peers finds our announce (%s)" % sorted(found))

        # libtorrent announces; our get_peers finds it
        # (a metadata-less torrent + force_dht_announce: implied_port, its listen port)
        lt_peer_port = ports[1]
        atp = lt.add_torrent_params()
        atp.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(ih_lt)))
        atp.save_path = tmp
        h = sess[1].add_torrent(atp)
        h.force_dht_announce()
        pump(sess, 5)
        ok = False
        for _ in range(10):
            l = node.cmd("getpeers " + ih_lt)
            if "127.0.0.1:%d" % lt_peer_port in l:
                ok = True
                break
            pump(sess, 2)
        check(ok and l.endswith("err=0"), "our get_peers finds libtorrent's announce (%s)" % l)

        # libtorrent's queries reach us and get answers: watch its packet log
        answered = {}

        def saw_answers(alerts, msgs=None):
            # dht_pkt_alert messages: "<== [ip:port] {...}" (in) / "==> [ip:port] {...}" (out)
            tag = "[127.0.0.1:%d]" % our_port
            if msgs is None:
                msgs = [a.message() for a in alerts if isinstance(a, lt.dht_pkt_alert)]
            for m in msgs:
                if tag not in m[:40]:
                    continue
                if m.startswith("<==") and "'y': 'r'" in m:
                    answered["r"] = answered.get("r", 0) + 1
                if m.startswith("==>"):
                    for q in ("ping", "find_node", "get_peers"):
                        if "'q': '%s'" % q in m:
                            answered[q] = answered.get(q, 0) + 1
            return answered.get("r", 0) >= 2 and "get_peers" in answered
        sess[2].add_dht_node(("127.0.0.1", our_port))   # libtorrent pings new nodes
        sess[2].dht_get_peers(lt.sha1_hash(bytes.fromhex(ih_ours)))
        pump(sess, 20, saw_answers)
        answered.clear()
        saw_answers(None, ALL)  # the whole run
        print("libtorrent -> our node over the run: %s" % answered)
        st = node.cmd("stats")
        qin = int(st.split("queries_in=")[1].split()[0])
        check(qin >= 2, "our node answered libtorrent's queries (%s; %s)" % (st, answered))
        check(answered.get("r", 0) >= 1, "libtorrent received our responses (%s)" % answered)
        check(int(st.split("stored_peers=")[1].split()[0]) >= 1,
              "libtorrent's announce_peer with our token stored (%s)" % st)
        # raw KRPC over UDP: ping and find_node answered (libtorrent 2.0.8 itself
        # sends us only get_peers / announce_peer here), garbage dropped
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(5)
        me = b"M" * 20
        for junk in (b"", b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", b"\xff" * 1500,
                     b"d1:ad2:id20:" + me + b"e1:q4:ping1:t2:aa1:y1:q"):
            u.sendto(junk, ("127.0.0.1", our_port))
        u.sendto(b"d1:ad2:id20:" + me + b"e1:q4:ping1:t2:pi1:y1:qe", ("127.0.0.1", our_port))
        try:
            while True:
                r, _ = u.recvfrom(4096)
                if b"1:t2:pi" in r:
                    break
        except socket.timeout:
            r = b""
        check(r.startswith(b"d1:rd2:id20:") and r.endswith(b"1:t2:pi1:v4:ZF\x00\x011:y1:re"),
              "raw ping answered after garbage (%r)" % r[:60])
        u.sendto(b"d1:ad2:id20:" + me + b"6:target20:" + b"\0" * 20 +
                 b"e1:q9:find_node1:t2:fn1:y1:qe", ("127.0.0.1", our_port))
        try:
            r, _ = u.recvfrom(4096)
        except socket.timeout:
            r = b""
        k = r.find(b"5:nodes")
        nports = set()
        if k > 0:
            ln = int(r[k + 7:r.index(b":", k + 7)])
            blob = r[r.index(b":", k + 7) + 1:][:ln]
            nports = {int.from_bytes(blob[i + 24:i + 26], "big") for i in range(0, ln, 26)}
        check(set(ports) <= nports, "find_node answer lists the libtorrent nodes (%s)" % nports)
        u.close()
        # our ping to a libtorrent node
        l = node.cmd("ping %d" % ports[0])
        check(l == "ping err=0 n=1", "libtorrent answers our ping (%s)" % l)
    finally:
        if node:
            node.close()
        for s in sess:
            s.pause()
        del sess
        shutil.rmtree(tmp, ignore_errors=True)


main()
if FAILS:
    print("%d check(s) failed" % len(FAILS))
    sys.exit(1)
print("all checks passed")
