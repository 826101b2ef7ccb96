"""libtorrent interop (spec/p2p.md §5.3): a libtorrent 2.0 session and our node
complete the BT + BEP 10 handshakes in both directions.

1. libtorrent connects to `test_peer serve`: libtorrent lists the peer with
   our peer id (-ZF0100-) and our client string from the extension handshake
   ("zestfs/0.1"); our node counts one peer with a valid BEP 10 handshake.
2. `test_peer connect` dials libtorrent: same checks.

Needs Debian's python3-libtorrent: run with /usr/bin/python3.  Exits 77
(skip) when the bindings are missing.
usage: peer_libtorrent.py TEST_PEER"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_util import Server, check, done, parse_kv

try:
    import libtorrent as lt
except ImportError:
    print("python3-libtorrent missing: skipped")
    sys.exit(77)


def session(tmp):
    s = lt.session({
        "listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
        "enable_upnp": False, "enable_natpmp": False, "dht_bootstrap_nodes": "",
        "out_enc_policy": 2, "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.all_categories})
    return s


def add(ses, ih, tmp):
    atp = lt.add_torrent_params()
    atp.info_hashes = lt.info_hash_t(lt.sha1_hash(ih))
    atp.save_path = tmp
    return ses.add_torrent(atp)


def our_peer(h):
    for p in h.get_peer_info():
        if bytes(p.pid.to_bytes())[:8] == b"-ZF0100-":
            return p
    return None


def wait_peer(ses, h, secs=20):
    end = time.time() + secs
    log = []
    while time.time() < end:
        for a in ses.pop_alerts():
            if isinstance(a, (lt.peer_log_alert, lt.peer_disconnected_alert, lt.peer_error_alert)):
                log.append(a.message())
        p = our_peer(h)
        # libtorrent names a peer from its peer id ("ZF 0.1.0") first, then
        # from the "v" of its extension handshake once that is parsed
        c = p.client if p is not None else b""
        c = c.decode(errors="replace") if isinstance(c, bytes) else c
        if c.startswith("zestfs"):
            return p, log
        time.sleep(0.1)
    return our_peer(h), log


def main():
    tool = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="zfs-lt-")

    # 1. libtorrent -> our node
    srv = Server(tool)
    ses = session(tmp)
    h = add(ses, srv.ih, tmp)
    h.connect_peer(("127.0.0.1", srv.port))
    p, log = wait_peer(ses, h)
    check(p is not None, "libtorrent connected to our node and completed the BT handshake")
    client = p.client if p is not None else b""
    client = client.decode() if isinstance(client, bytes) else client
    check(client.startswith("zestfs/0.1"),
          "libtorrent parsed our extension handshake (client %r)" % client)
    time.sleep(0.5)
    st = srv.stop()
    check(st.get("ext_peers") == 1 and st.get("bans") == 0,
          "our node: one peer with a BEP 10 handshake, no ban %r" % st)
    if p is None:
        print("\n".join(log[-30:]))
    del ses

    # 2. our node -> libtorrent
    ses = session(tmp)
    ih = b"zestfs-lt-swarm-0002"
    h = add(ses, ih, tmp)
    end = time.time() + 10
    while ses.listen_port() == 0 and time.time() < end:
        time.sleep(0.05)
    time.sleep(0.5)
    port = ses.listen_port()
    ses.pop_alerts()
    cp = subprocess.run([tool, "connect", str(port), ih.hex()], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True, timeout=60)
    out = cp.stdout
    check(cp.returncode == 0 and "Sanitizer" not in out and "runtime error" not in out,
          "test_peer connect exited cleanly")
    st = {}
    for line in out.splitlines():
        if line.startswith("STATS "):
            st = parse_kv(line)
    check(st.get("peers") == 1 and st.get("ext_peers") == 1 and st.get("bans") == 0,
          "our node dialled libtorrent: handshake + BEP 10 handshake %r" % st)
    seen = False
    msgs = [a.message() for a in ses.pop_alerts()]
    seen = any("zestfs/0.1" in m for m in msgs)
    if not seen:
        print("port %d" % port, "\n".join(msgs[-40:]))
    check(seen, "libtorrent's peer log shows our extension handshake")
    done()


if __name__ == "__main__":
    main()
