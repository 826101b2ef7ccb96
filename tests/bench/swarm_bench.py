#!/usr/bin/env python3
"""swarm_bench.py — the peer-swarm benchmark (issue #5 §7): N zestfs nodes
`zestfs pull` one model at the same instant from an origin whose link is
capped, once with the peer swarm (p2p) and once CDN-only (--no-p2p).

  sudo python3 tests/bench/swarm_bench.py [--size MiB] [--nodes 1,4,8] [--build DIR]
                                          [--origin-mbps 800] [--keep]

Needs root, /dev/fuse, ip netns, tc, nsenter, curl and opentracker (Debian
package).  Network, built here and removed at the start and in the end:

  bridge zsbr0 (10.77.0.1/24, root namespace)
    veth - netns zs-origin 10.77.0.2: zestfs-origin :8080, egress capped with
           tc tbf at --origin-mbps Mbit/s (800 = 100 MB/s); opentracker :6969
    veth - netns zs-n<i>   10.77.0.<10+i>: zestfs mount, peer port 6881, no cap

The model (--size MiB, default 1024: a safetensors header and random bytes,
plus config.json) is ingested once into /tmp/zestfs-swarm-cache-<size>,
reused when present, removed at the end unless --keep.  For each N and mode
every node mounts a fresh store inside its namespace (p2p: --tracker, no
DHT; the pulls start once every node sees N-1 peers), then all N pulls start
together.  Figures per run:

  origin egress   xorb bytes the origin served (/_origin/stats xorb_bytes_total),
                  as a multiple of the model size; goal at the largest N, p2p:
                  <= 1.25x (CDN-only is N x)
  time to all done  from the common start until the last pull exits, as a
                  multiple of the N=1 p2p time; goal at the largest N, p2p: <= 2.5x
  peer bytes      the sum of the nodes' bytes_by_source.peers

plus each node's bytes_by_source (store / peers / cdn) and the origin's wire
bytes (tx of its veth).  Checks: every pull exits 0; every node's
`zestfs status` shows a store holding at least the model's bytes and
`zestfs verify` re-hashes every file ok; the file read back through a
node's mount (nsenter into its mount namespace, sha256sum) matches the
source: every node at N=1, node 1 of each run otherwise (--verify-all: all).
Goals are printed (met / missed), not asserted; exit 0 when every run
completed byte-correct, 1 otherwise, 77 without root or tools.  On a 2-core
machine the nodes share the CPUs: 1 GiB, N = 1, 4, 8 takes about 10 minutes."""
import argparse, hashlib, json, os, re, shutil, signal, subprocess, sys, tempfile, threading, time
import urllib.parse, urllib.request

MiB = 1 << 20
REPO = "org/swarm"
BR, BR_IP = "zsbr0", "10.77.0.1"
ORIGIN_NS, ORIGIN_IP, ORIGIN_PORT, TRACKER_PORT = "zs-origin", "10.77.0.2", 8080, 6969
NODE_PORT = 6881
PREFIX = "zs-"  # every namespace and root-side link of ours starts with it


def node_ns(i):
    return f"zs-n{i}"


def node_ip(i):
    return f"10.77.0.{10 + i}"


def sh(*a, check=True, **kw):
    return subprocess.run(a, check=check, **kw)


def nsx(ns):
    return ("ip", "netns", "exec", ns)


def out(*a):
    return subprocess.run(a, capture_output=True, text=True).stdout


# ---- network -----------------------------------------------------------------------

def teardown_net():
    """Kill what runs in our namespaces (left by an earlier run too), delete them and the bridge."""
    for ns in out("ip", "netns", "list").split():
        if not ns.startswith(PREFIX):
            continue
        for pid in out("ip", "netns", "pids", ns).split():
            try:
                os.kill(int(pid), signal.SIGTERM)
            except (OSError, ValueError):
                pass
    deadline = time.time() + 10
    for ns in [n for n in out("ip", "netns", "list").split() if n.startswith(PREFIX)]:
        while out("ip", "netns", "pids", ns).split() and time.time() < deadline:
            time.sleep(0.1)
        for pid in out("ip", "netns", "pids", ns).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        sh("ip", "netns", "del", ns, check=False, stderr=subprocess.DEVNULL)
    sh("ip", "link", "del", BR, check=False, stderr=subprocess.DEVNULL)


def add_ns(ns, ip, host_if):
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
    sh("ip", "link", "set", host_if, "master", BR)
    sh("ip", "link", "set", host_if, "up")
    sh(*nsx(ns), "ip", "addr", "add", ip + "/24", "dev", "eth0")
    sh(*nsx(ns), "ip", "link", "set", "eth0", "up")
    sh(*nsx(ns), "ip", "link", "set", "lo", "up")


def setup_net(nmax, mbit):
    teardown_net()
    sh("ip", "link", "add", BR, "type", "bridge")
    sh("ip", "addr", "add", BR_IP + "/24", "dev", BR)
    sh("ip", "link", "set", BR, "up")
    add_ns(ORIGIN_NS, ORIGIN_IP, "zs-vo")
    sh(*nsx(ORIGIN_NS), "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", f"{mbit}mbit",
       "burst", "1mbit", "latency", "50ms")
    for i in range(1, nmax + 1):
        add_ns(node_ns(i), node_ip(i), f"zs-v{i}")


def check_net(nmax, url):
    """Every node namespace reaches the origin over the bridge (no firewall in the way)."""
    for i in range(1, nmax + 1):
        r = sh(*nsx(node_ns(i)), "curl", "-s", "-o", "/dev/null", "-m", "5", url + "/api/models/" + REPO,
               check=False)
        if r.returncode != 0:
            raise RuntimeError(f"{node_ns(i)} cannot reach {url} over {BR} (curl {r.returncode})")


def origin_tx():
    return int(out(*nsx(ORIGIN_NS), "cat", "/sys/class/net/eth0/statistics/tx_bytes").strip() or 0)


# ---- the model ---------------------------------------------------------------------

def make_model(cache, size_mib, origin_exe):
    """(data dir, commit, model bytes, sha256) of the ingested model, from the cache when there."""
    meta = os.path.join(cache, "model.json")
    if os.path.exists(meta):
        m = json.load(open(meta))
        if os.path.isdir(m["data"]):
            print(f"model: {m['size']} bytes, cached in {cache}", flush=True)
            return m["data"], m["commit"], m["size"], m["sha256"]
    shutil.rmtree(cache, ignore_errors=True)
    src, data = os.path.join(cache, "src"), os.path.join(cache, "data")
    os.makedirs(src)
    t = time.perf_counter()
    size = size_mib * MiB
    blk = 64 * MiB
    n = max(1, (size - 4096) // blk)
    per = (size - 4096) // n
    hdr, off = {"__metadata__": {"format": "pt"}}, 0
    for i in range(n):
        ln = per if i < n - 1 else size - 4096 - off
        hdr[f"layers.{i}.weight"] = {"dtype": "U8", "shape": [ln], "data_offsets": [off, off + ln]}
        off += ln
    h = json.dumps(hdr).encode()
    h += b" " * (4096 - 8 - len(h))  # body = size - 4096 bytes
    sha = hashlib.sha256()
    with open(os.path.join(src, "model.safetensors"), "wb") as f:
        head = len(h).to_bytes(8, "little") + h
        f.write(head)
        sha.update(head)
        left = size - len(head)
        while left:
            b = os.urandom(min(blk, left))
            f.write(b)
            sha.update(b)
            left -= len(b)
    with open(os.path.join(src, "config.json"), "w") as f:
        json.dump({"model_type": "swarm-bench", "size_mib": size_mib}, f)
    r = subprocess.run([origin_exe, "ingest", data, REPO, "-q", src], capture_output=True, text=True,
                       timeout=3600)
    if r.returncode != 0:
        raise RuntimeError("ingest failed: " + r.stderr[-2000:])
    commit = r.stdout.strip().split()[-1]
    shutil.rmtree(src)  # the origin's data holds it; the sha256 is what verification needs
    m = {"data": data, "commit": commit, "size": size, "sha256": sha.hexdigest()}
    json.dump(m, open(meta, "w"))
    print(f"model: {size} bytes, made and ingested in {time.perf_counter() - t:.1f} s", flush=True)
    return data, commit, size, m["sha256"]


# ---- origin and tracker ------------------------------------------------------------

class Origin:
    def __init__(self, exe, data, tmp):
        self.port_file = os.path.join(tmp, "origin.port")
        self.log = open(os.path.join(tmp, "origin.log"), "a")
        self.p = subprocess.Popen([*nsx(ORIGIN_NS), exe, "serve", data, "--listen", f"0.0.0.0:{ORIGIN_PORT}",
                                   "--port-file", self.port_file, "-q"],
                                  stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(1000):
            if os.path.exists(self.port_file) and open(self.port_file).read().strip():
                break
            if self.p.poll() is not None:
                raise RuntimeError("origin exited, see " + self.log.name)
            time.sleep(0.01)
        self.url = f"http://{ORIGIN_IP}:{ORIGIN_PORT}"

    def _curl(self, *a):
        # the control endpoints answer loopback clients only: ask from inside its namespace
        r = subprocess.run([*nsx(ORIGIN_NS), "curl", "-sf", *a], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"origin control {a}: curl {r.returncode}")
        return r.stdout

    def stats(self):
        return json.loads(self._curl(f"http://127.0.0.1:{ORIGIN_PORT}/_origin/stats"))

    def reset(self):
        self._curl("-X", "POST", "--data-binary", "", f"http://127.0.0.1:{ORIGIN_PORT}/_origin/stats/reset")

    def stop(self):
        stop_proc(self.p)
        self.log.close()


def start_tracker(tmp, run_id):
    """opentracker on ORIGIN_IP:TRACKER_PORT (TCP and UDP) in whitelist mode, for the repo's swarm only."""
    ih = hashlib.sha1(b"zestfs-repo-v1:model/" + REPO.encode()).digest()
    d = os.path.join(tmp, f"ot-{run_id}")
    os.mkdir(d)
    os.chmod(d, 0o755)  # it drops privileges before reading the whitelist
    open(os.path.join(d, "whitelist.txt"), "w").write(ih.hex() + "\n")
    p = subprocess.Popen([*nsx(ORIGIN_NS), shutil.which("opentracker"), "-i", ORIGIN_IP, "-p", str(TRACKER_PORT),
                          "-P", str(TRACKER_PORT), "-d", d, "-w", "whitelist.txt"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{ORIGIN_IP}:{TRACKER_PORT}/announce"
    q = urllib.parse.urlencode({"peer_id": "-SB0001-000000000000", "port": 9, "uploaded": 0,
                                "downloaded": 0, "left": 0, "event": "stopped", "compact": 1})
    probe = url + "?info_hash=" + urllib.parse.quote_from_bytes(ih) + "&" + q
    for _ in range(100):  # it loads the whitelist after it listens
        try:
            if b"failure" not in urllib.request.urlopen(probe, timeout=5).read():
                return p, url
        except OSError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.1)
    stop_proc(p)
    raise RuntimeError("opentracker does not answer for the swarm")


def stop_proc(p, timeout=30):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


# ---- nodes -------------------------------------------------------------------------

def wait_for(pred, timeout, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def read(path):
    try:
        return open(path, errors="replace").read()
    except OSError:
        return ""


class Node:
    """A zestfs mount (-f) in netns zs-n<i>: the Popen pid is zestfs itself
    (ip netns exec execs it), so nsenter -t pid -m reaches its mount."""

    def __init__(self, zestfs, i, tmp, tag, endpoint, store_size, tracker):
        self.i, self.zestfs = i, zestfs
        self.ns = node_ns(i)
        self.mnt, self.store, self.logp = (os.path.join(tmp, f"{tag}-n{i}{x}") for x in ("-mnt", "-store", ".log"))
        os.mkdir(self.mnt)
        self.log = open(self.logp, "w")
        net = (["--listen", f"{node_ip(i)}:{NODE_PORT}", "--tracker", tracker, "--no-dht"] if tracker
               else ["--no-p2p"])
        self.p = subprocess.Popen([*nsx(self.ns), zestfs, self.mnt, "-f", "--no-config", "--endpoint", endpoint,
                                   "--repo", REPO, "--store", self.store, "--store-size", str(store_size),
                                   "--token", "", *net, *os.environ.get("ZESTFS_BENCH_ARGS", "").split()],
                                  stdout=self.log, stderr=subprocess.STDOUT,
                                  env=dict(os.environ, ZESTFS_DHT_BOOTSTRAP="none"))
        self.p2p = bool(tracker)

    def ready(self, timeout=60):
        def ok():
            if self.p.poll() is not None:
                return "exited"
            if self.p2p and "peers on" not in read(self.logp):
                return None
            return os.path.exists(os.path.join(self.store, "ctl.sock")) and "ready"
        r = wait_for(ok, timeout)
        if r != "ready":
            raise RuntimeError(f"node {self.i} did not start ({r}): " + read(self.logp)[-1500:])

    def peers(self):
        """Last logged 'peers: N connected' count (0 when none logged) and how many such lines."""
        m = re.findall(r"peers: (\d+) connected", read(self.logp))
        return (int(m[-1]) if m else 0), len(m)

    def pull_cmd(self):
        return [*nsx(self.ns), self.zestfs, "pull", REPO, "--store", self.store, "-q"]

    def status(self):
        r = subprocess.run([*nsx(self.ns), self.zestfs, "status", "--store", self.store, "--json"],
                           capture_output=True, text=True, timeout=60)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {"_error": (r.stdout + r.stderr)[-500:]}

    def verify(self):
        """`zestfs verify`: every stored file re-hashed against its Xet id; (ok, its summary line)."""
        r = subprocess.run([*nsx(self.ns), self.zestfs, "verify", "--store", self.store, REPO],
                           capture_output=True, text=True, timeout=1800)
        m = re.search(r"verify: (\d+) files, (\d+) ok .*?, (\d+) bad, (\d+) not stored", r.stdout)
        ok = r.returncode == 0 and m is not None and m.group(1) == m.group(2) and m.group(3) == m.group(4) == "0"
        return ok, (m.group(0) if m else (r.stdout + r.stderr).strip()[-300:])

    def sha256(self, commit):
        path = os.path.join(self.mnt, "models--" + REPO.replace("/", "--"), "snapshots", commit, "model.safetensors")
        r = subprocess.run(["nsenter", "-t", str(self.p.pid), "-m", "-n", "sha256sum", path],
                           capture_output=True, text=True, timeout=1800)
        return r.stdout.split()[0] if r.returncode == 0 and r.stdout else "error: " + r.stderr.strip()[-300:]

    def stop(self):
        rc = stop_proc(self.p, 60)
        self.log.close()
        return rc


def by_source(st):
    b = st.get("bytes_by_source")
    if not isinstance(b, dict):
        b = next((v for v in st.values() if isinstance(v, dict) and "peers" in v and "cdn" in v), {})
    return {k: int(b.get(k, 0)) for k in ("store", "peers", "cdn")}


def xorb_copies(ost, data):
    """Sorted list: how many times over the origin served each xorb (its per_xorb bytes / file size)."""
    r = []
    for h, b in (ost.get("per_xorb") or {}).items():
        try:
            r.append(int(b) / os.path.getsize(os.path.join(data, "xorbs", h)))
        except (OSError, TypeError, ValueError, ZeroDivisionError):
            pass
    return sorted(r)


# ---- one run -----------------------------------------------------------------------

def run_once(a, zestfs, origin, data, tmp, n, mode, commit, size, sha, run_id):
    tracker_p, tracker = start_tracker(tmp, run_id) if mode == "p2p" else (None, None)
    nodes, res = [], {"n": n, "mode": mode, "ok": True, "notes": []}

    def fail(what):
        res["ok"] = False
        res["notes"].append(what)
        print("  FAIL " + what, flush=True)

    try:
        store_size = max(4 << 30, 3 * size)
        for i in range(1, n + 1):  # one after another: each one's first announce finds those before it
            nd = Node(zestfs, i, tmp, run_id, origin.url, store_size, tracker)
            nodes.append(nd)
            nd.ready()
        if mode == "p2p" and n > 1:
            t = time.time()
            full = wait_for(lambda: all(nd.peers()[0] >= n - 1 for nd in nodes), 60, 0.2)
            print(f"  peers: {[nd.peers()[0] for nd in nodes]} connected per node "
                  f"({'full mesh' if full else 'NOT a full mesh'} after {time.time() - t:.1f} s)", flush=True)
        origin.reset()
        tx0 = origin_tx()
        done = [None] * n
        logs = [open(os.path.join(tmp, f"{run_id}-n{nd.i}.pull.log"), "w") for nd in nodes]
        cmds = [nd.pull_cmd() for nd in nodes]
        t0 = time.perf_counter()
        procs = [subprocess.Popen(c, stdout=lg, stderr=subprocess.STDOUT) for c, lg in zip(cmds, logs)]

        def waiter(k):
            procs[k].wait()
            done[k] = time.perf_counter() - t0

        th = [threading.Thread(target=waiter, args=(k,)) for k in range(n)]
        for t in th:
            t.start()
        for t in th:
            t.join(3600)
        for lg in logs:
            lg.close()
        res["times"] = done
        res["time"] = max(d for d in done if d is not None)
        for k, p in enumerate(procs):
            if p.returncode != 0:
                fail(f"node {k + 1}: pull exited {p.returncode}: " + read(logs[k].name)[-500:])
        ost = origin.stats()
        res["xorb_bytes"] = int(ost.get("xorb_bytes_total", 0))
        res["origin_bytes"] = int(ost.get("bytes_total", 0))
        res["wire_bytes"] = origin_tx() - tx0
        json.dump(ost, open(os.path.join(tmp, f"{run_id}.origin-stats.json"), "w"), indent=1)
        res["copies"] = xorb_copies(ost, data)
        res["src"], res["peerlog"], res["up"] = [], [], []
        for nd in nodes:
            st = nd.status()
            json.dump(st, open(os.path.join(tmp, f"{run_id}-n{nd.i}.status.json"), "w"), indent=1)
            if "_error" in st:
                fail(f"node {nd.i}: status: {st['_error']}")
            src = by_source(st)
            res["src"].append(src)
            res["peerlog"].append(nd.peers())
            res["up"].append(int((st.get("peers") or {}).get("data_up", 0)))
            used = int((st.get("store") or {}).get("used", 0))
            if used < size:  # random bytes: the stored xorbs are at least the model's size
                fail(f"node {nd.i}: store holds {used} bytes, the model is {size}")
        t = time.perf_counter()
        for nd in nodes:
            ok, line = nd.verify()
            if not ok:
                fail(f"node {nd.i}: zestfs verify: {line}")
        print(f"  zestfs verify: {n} of {n} nodes ok ({time.perf_counter() - t:.1f} s)"
              if res["ok"] else "  zestfs verify: see FAIL lines", flush=True)
        res["peer_bytes"] = sum(s["peers"] for s in res["src"])
        check = nodes if (n == 1 or a.verify_all) else nodes[:1]
        for nd in check:
            t = time.perf_counter()
            h = nd.sha256(commit)
            if h != sha:
                fail(f"node {nd.i}: sha256 through the mount {h} != source {sha}")
            else:
                print(f"  node {nd.i}: sha256 through its mount matches ({time.perf_counter() - t:.1f} s)", flush=True)
        res["verified"] = len(check)
    except Exception as e:  # noqa: BLE001
        fail(f"exception: {e!r}")
    finally:
        for nd in nodes:
            rc = nd.stop()
            if rc not in (0, None):
                res["notes"].append(f"node {nd.i}: zestfs exited {rc} on SIGTERM")
            lg = read(nd.logp)
            if "runtime error:" in lg or "Sanitizer" in lg:
                fail(f"node {nd.i}: sanitizer report in {nd.logp}")
            shutil.rmtree(nd.store, ignore_errors=True)
            try:
                os.rmdir(nd.mnt)
            except OSError:
                pass
        if tracker_p:
            stop_proc(tracker_p, 10)
    return res


# ---- report ------------------------------------------------------------------------

def gb(x):
    return f"{x / 1e9:.3f} GB"


def report(results, size, nodes_list):
    base = next((r.get("time") for r in results if r["n"] == 1 and r["mode"] == "p2p" and r.get("time")), None)
    print("\nper node, bytes_by_source (store / peers / cdn), pull time:")
    for r in results:
        for k, s in enumerate(r.get("src", [])):
            t = r["times"][k] if r.get("times") and r["times"][k] is not None else float("nan")
            pl = r["peerlog"][k]
            print(f"  N={r['n']} {r['mode']:8} node {k + 1}: store {s['store']}  peers {s['peers']}  "
                  f"cdn {s['cdn']}  served to peers {r['up'][k]}  ({t:.1f} s; last 'peers: N connected' "
                  f"{pl[0]}, {pl[1]} such lines)")
    print(f"\nmodel {size} bytes ({size / MiB:.0f} MiB); time ratios against the N=1 p2p time "
          f"({base:.1f} s)" if base else f"\nmodel {size} bytes")
    print("\n| N | mode | origin egress (xorb bytes, x model) | origin wire tx | time to all done (s, x N=1 p2p) "
          "| peer bytes | ok |\n|---|---|---|---|---|---|---|")
    for r in results:
        if "xorb_bytes" not in r:
            print(f"| {r['n']} | {r['mode']} | - | - | - | - | FAILED |")
            continue
        tr = f"{r['time'] / base:.2f}x" if base else "-"
        print(f"| {r['n']} | {r['mode']} | {r['xorb_bytes']} ({r['xorb_bytes'] / size:.2f}x) | {gb(r['wire_bytes'])} "
              f"| {r['time']:.1f} ({tr}) | {r['peer_bytes']} | {'yes' if r['ok'] else 'NO'} |")
    nmax = max(nodes_list)
    top = next((r for r in results if r["n"] == nmax and r["mode"] == "p2p" and "xorb_bytes" in r), None)
    if top:
        eg = top["xorb_bytes"] / size
        print(f"\ngoal: origin egress at N={nmax} (p2p) <= 1.25x the model: {eg:.2f}x "
              f"{'met' if eg <= 1.25 else 'missed'}")
        if base:
            tr = top["time"] / base
            print(f"goal: time to all done at N={nmax} (p2p) <= 2.5x the N=1 time: {tr:.2f}x "
                  f"{'met' if tr <= 2.5 else 'missed'}")
        cdn = next((r for r in results if r["n"] == nmax and r["mode"] == "cdn-only" and "xorb_bytes" in r), None)
        if cdn:
            print(f"cdn-only at N={nmax}: egress {cdn['xorb_bytes'] / size:.2f}x, {cdn['time']:.1f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="model size in MiB (default 1024)")
    ap.add_argument("--nodes", default="1,4,8", help="comma-separated node counts (default 1,4,8)")
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
    ap.add_argument("--origin-mbps", type=int, default=800, help="origin egress cap, Mbit/s (default 800 = 100 MB/s)")
    ap.add_argument("--modes", default="p2p,cdn-only", help="which modes to run (default both)")
    ap.add_argument("--verify-all", action="store_true", help="sha256 every node's file, not one per run")
    ap.add_argument("--keep", action="store_true", help="keep the model cache and the logs")
    a = ap.parse_args()
    nodes_list = sorted({int(x) for x in a.nodes.split(",") if x.strip()})
    modes = [m for m in ("p2p", "cdn-only") if m in a.modes.split(",")]
    build = os.path.abspath(a.build)
    zestfs = os.path.join(build, "fs", "zestfs")
    origin_exe = os.path.join(build, "origin", "zestfs-origin")
    if os.geteuid() != 0:
        print("swarm_bench: needs root (network namespaces, tc)")
        return 77
    missing = [t for t in ("ip", "tc", "nsenter", "curl", "opentracker") if not shutil.which(t)]
    if missing or not os.path.exists("/dev/fuse") or not os.path.exists(zestfs) or not os.path.exists(origin_exe):
        print(f"swarm_bench: missing {missing or ''} /dev/fuse or {zestfs} / {origin_exe}")
        return 77
    cache = f"/tmp/zestfs-swarm-cache-{a.size}"
    data, commit, size, sha = make_model(cache, a.size, origin_exe)
    tmp = tempfile.mkdtemp(prefix="zestfs-swarm-", dir="/var/tmp")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; origin capped at {a.origin_mbps} Mbit/s "
          f"({a.origin_mbps / 8:.0f} MB/s); work dir {tmp}", flush=True)
    results, origin = [], None
    try:
        setup_net(max(nodes_list), a.origin_mbps)
        origin = Origin(origin_exe, data, tmp)
        check_net(max(nodes_list), origin.url)
        for n in nodes_list:
            for mode in modes:
                print(f"N={n} {mode} (load average {os.getloadavg()[0]:.1f}):", flush=True)
                r = run_once(a, zestfs, origin, data, tmp, n, mode, commit, size, sha, f"{mode}-{n}")
                results.append(r)
                if "time" in r:
                    print(f"  all done in {r['time']:.1f} s (per node {', '.join(f'{t:.1f}' for t in r['times'] if t)}); "
                          f"origin xorb egress {r['xorb_bytes']} ({r['xorb_bytes'] / size:.2f}x), "
                          f"peer bytes {r['peer_bytes']}", flush=True)
                    c = r.get("copies") or []
                    if c:
                        print(f"  origin copies per xorb ({len(c)} xorbs): min {c[0]:.2f}, median "
                              f"{c[len(c) // 2]:.2f}, max {c[-1]:.2f}", flush=True)
        report(results, size, nodes_list)
    finally:
        if origin:
            origin.stop()
        teardown_net()
        ok = results and all(r["ok"] for r in results)
        if not a.keep:
            shutil.rmtree(cache, ignore_errors=True)
        if a.keep or not ok:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    bad = [r for r in results if not r["ok"]]
    for r in bad:
        print(f"N={r['n']} {r['mode']}: " + "; ".join(r["notes"]))
    print("all runs completed byte-correct" if not bad and results else f"{len(bad)} runs failed")
    return 0 if results and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
