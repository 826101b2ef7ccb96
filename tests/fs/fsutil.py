"""fsutil.py — what the fs tests share: finding zestfs-origin, a generated
model, an origin on a free loopback port, mounting and unmounting, and `Run`,
the skip checks, check() bookkeeping and teardown every test does the same way.

Guards (issue 23), here once so every fs test has them:
- loopback only: mount() refuses to start a daemon without an explicit
  loopback --endpoint (an --offline mount gets a dead loopback one), refuses
  non-loopback --peer/--tracker/--dht-bootstrap, and gives the daemon
  ZESTFS_DHT_BOOTSTRAP=none; unmount() and Run.finish() look at the daemon's
  sockets (/proc/PID/fd + /proc/PID/net/*) and record any non-loopback remote
  address.  (tests/netguard.sh, meson's default wrapper, also runs the whole
  test in a namespace of its own and fails it on any attempt off loopback.)
- exit statuses and logs: unmount() records a daemon that does not exit 0;
  Origin.stop() records an origin that does not exit 0; every log given to
  mount()/watch_log() and every origin log is scanned for sanitizer reports.
  Whatever was recorded fails the test in Run.finish() (or problems())."""
import hashlib, ipaddress, json, os, random, re, shutil, signal, struct, subprocess, sys
import tempfile, time, urllib.parse, urllib.request

MiB = 1 << 20

# Tests reach only loopback: no public DHT routers (tests that want a DHT name
# their own nodes with --dht-bootstrap or set this themselves).
os.environ.setdefault("ZESTFS_DHT_BOOTSTRAP", "none")
os.environ.pop("HF_ENDPOINT", None)  # a daemon without --endpoint must not find one
# A loopback endpoint nothing listens on (port 9, discard): what an --offline mount gets.
DEAD_ENDPOINT = "http://127.0.0.1:9"

_problems = []   # what the guards found; Run.finish() / problems() fail the test on any
_logs = []       # log files to scan for sanitizer reports at the end


def problem(what):
    """Record a failure found by a guard (printed now, counted at finish)."""
    print("FAIL " + what, flush=True)
    _problems.append(what)


def problems():
    """Scan the watched logs, then return (and forget) every recorded problem:
    for tests that do not use Run."""
    for path in list(_logs):
        scan_log(path)
    _logs.clear()
    out = list(_problems)
    _problems.clear()
    return out


_SAN = re.compile(r"ERROR: \w*Sanitizer|WARNING: \w*Sanitizer|SUMMARY: \w*Sanitizer|runtime error:|"
                  r"LeakSanitizer")


def sanitizer_report(text):
    """The first line of a sanitizer report in text, or None."""
    m = _SAN.search(text)
    if not m:
        return None
    a = text.rfind("\n", 0, m.start()) + 1
    b = text.find("\n", m.end())
    return text[a:b if b >= 0 else len(text)]


def scan_log(path, what=None):
    """Record a problem when the log at path holds a sanitizer report."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return
    line = sanitizer_report(text)
    if line:
        print(f"---- {path} ----\n" + text[-6000:])
        problem(f"sanitizer report in {what or path}: {line.strip()}")


def watch_log(path_or_file):
    """Scan this log (a path or an open file) for sanitizer reports at the end."""
    path = getattr(path_or_file, "name", path_or_file)
    if isinstance(path, str) and path not in _logs:
        _logs.append(path)


def is_loopback_host(host):
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostport_host(v):
    if "://" in v:
        return urllib.parse.urlsplit(v).hostname or ""
    if v.startswith("["):
        return v[1:v.index("]")]
    return v.rsplit(":", 1)[0] if ":" in v else v


def guard_args(args, what="zestfs"):
    """Raise ValueError unless every address in a zestfs command line is
    loopback (--endpoint, --peer, --tracker, --dht-bootstrap; --listen may also
    be a wildcard: listening reaches no one)."""
    args = list(args)
    for i, a in enumerate(args):
        opt, eq, val = a.partition("=")
        if opt not in ("--endpoint", "--peer", "--tracker", "--dht-bootstrap", "--listen", "--http",
                       "--metrics"):
            continue
        if not eq:
            if i + 1 >= len(args):
                continue
            val = args[i + 1]
        if opt == "--dht-bootstrap" and val == "none":
            continue
        if opt in ("--listen", "--http", "--metrics") and (val.isdigit() or
                                                           _hostport_host(val) in ("0.0.0.0", "::", "")):
            continue
        if not is_loopback_host(_hostport_host(val)):
            raise ValueError(f"{what}: {opt} {val} is not loopback (tests reach loopback only)")


def guard_env(env=None):
    """The environment for a zestfs child: no public DHT routers (unset means
    the public ones: "none"; anything else must be loopback), no HF_ENDPOINT."""
    e = dict(os.environ if env is None else env)
    if "ZESTFS_DHT_BOOTSTRAP" not in e:
        e["ZESTFS_DHT_BOOTSTRAP"] = "none"
    for b in e["ZESTFS_DHT_BOOTSTRAP"].replace(",", " ").split():
        if b != "none" and not is_loopback_host(_hostport_host(b)):
            raise ValueError(f"ZESTFS_DHT_BOOTSTRAP {b} is not loopback (tests reach loopback only)")
    e.pop("HF_ENDPOINT", None)
    return e


def remote_addrs(pid):
    """The remote addresses of pid's TCP/UDP sockets that are not loopback
    (and not unconnected): what the daemon talks to right now."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
    except OSError:
        return []
    bad = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = open(f"/proc/{pid}/net/{proto}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10 or f[9] not in inodes:
                continue
            hexip, hexport = f[2].split(":")
            if int(hexport, 16) == 0:
                continue  # unconnected (listening, or a UDP socket sending to many)
            raw = bytes.fromhex(hexip)
            if len(raw) == 4:
                ip = ipaddress.IPv4Address(raw[::-1])
            else:  # four host-order 32-bit words
                ip = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
                if ip.ipv4_mapped:
                    ip = ip.ipv4_mapped
            if not ip.is_loopback and not ip.is_unspecified:
                bad.append(f"{proto} {ip}:{int(hexport, 16)}")
    return bad


def check_remote(p, what="zestfs"):
    """Record a problem when process p has a socket to a non-loopback address."""
    if p is not None and p.poll() is None:
        bad = remote_addrs(p.pid)
        if bad:
            problem(f"{what} (pid {p.pid}) talks off loopback: {', '.join(bad)}")


def find_origin(zestfs):
    if len(sys.argv) > 2:
        return os.path.abspath(sys.argv[2])
    p = os.path.join(os.path.dirname(zestfs), "..", "origin", "zestfs-origin")
    return os.path.abspath(p) if os.path.exists(p) else None


def safetensors_like(rng, size):
    """A valid safetensors file of `size` bytes: 1-3 MiB F32 tensors of random bytes."""
    reserve, state = 4096, rng.getstate()
    while True:
        hdr = {"__metadata__": {"format": "pt"}}
        n, off = 0, 0
        while off < size - reserve:
            ln = min(rng.randrange(1, 4) * MiB, size - reserve - off)
            hdr[f"layer.{n}.weight"] = {"dtype": "F32", "shape": [ln // 4], "data_offsets": [off, off + ln]}
            n, off = n + 1, off + ln
        h = json.dumps(hdr).encode()
        h += b" " * (-len(h) % 8)
        if 8 + len(h) <= reserve:  # the tensors fit after the header
            break
        reserve = 8 + len(h) + 4096  # a large file's header outgrew the room: lay it out again
        rng.setstate(state)
    body = rng.randbytes(size - 8 - len(h))
    return struct.pack("<Q", len(h)) + h + body


def make_model(d):
    rng = random.Random(20250101)
    files = {
        "model.safetensors": safetensors_like(rng, 40_000_000),
        "extra.safetensors": safetensors_like(rng, 20_000_000),
        "weights.bin": rng.randbytes(1_000_000),
        "vocab.txt": "".join(f"tok{i} {rng.random():.6f}\n" for i in range(60000)).encode()[:1_000_000],
        "config.json": json.dumps({"model_type": "tiny", "hidden": 8}).encode(),
        "tokenizer.json": json.dumps({"version": "1.0", "vocab": {f"t{i}": i for i in range(3000)}}).encode(),
        "sub/dir/notes.txt": b"nested note\n",
        "empty.bin": b"",
    }
    for p, b in files.items():
        os.makedirs(os.path.dirname(os.path.join(d, p)), exist_ok=True)
        with open(os.path.join(d, p), "wb") as f:
            f.write(b)
    return files


class Origin:
    """zestfs-origin serving DATA on a free loopback port; `extra`: more serve
    arguments (--token, --gated ...)."""

    def __init__(self, exe, data, tmp, *extra):
        self.port_file = os.path.join(tmp, "origin.port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log = open(os.path.join(tmp, "origin.log"), "a")
        self.p = subprocess.Popen([exe, "serve", data, "--listen", "127.0.0.1:0", "--port-file",
                                   self.port_file, "-q", *extra], stdout=self.log,
                                  stderr=subprocess.STDOUT)
        for _ in range(500):
            if os.path.exists(self.port_file) and open(self.port_file).read().strip():
                break
            if self.p.poll() is not None:
                raise RuntimeError("origin exited")
            time.sleep(0.01)
        self.url = "http://127.0.0.1:" + open(self.port_file).read().strip()

    def stats(self):
        with urllib.request.urlopen(self.url + "/_origin/stats", timeout=10) as r:
            return json.load(r)

    def reset(self):
        req = urllib.request.Request(self.url + "/_origin/stats/reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self):
        """SIGTERM; records a problem unless it exits 0 and its log is clean."""
        if self.p.poll() is None:
            check_remote(self.p, "zestfs-origin")
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                problem("zestfs-origin did not stop within 30 s of SIGTERM")
        if self.log.closed:
            return
        self.log.close()
        if self.p.returncode != 0:
            problem(f"zestfs-origin exit status {self.p.returncode} (log {self.log.name})")
        scan_log(self.log.name, "the zestfs-origin log")


def knobs(origin, **kw):
    """Set zestfs-origin fault knobs (origin/README.md) while it runs."""
    req = urllib.request.Request(origin.url + "/_origin/knobs", data=json.dumps(kw).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=30).read()


def ingest(origin_exe, data, repo, src, *extra):
    """`zestfs-origin ingest DATA REPO [extra] SRC`; returns the commit id."""
    r = subprocess.run([origin_exe, "ingest", data, repo, "-q", *extra, src], capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("ingest failed: " + r.stderr[-2000:])
    return r.stdout.strip().split()[-1]


def reconstruction(origin, repo, commit, xet_hash, version="v1", headers=None):
    """The CAS reconstruction of a file, with a read token from the origin."""
    with urllib.request.urlopen(f"{origin.url}/api/models/{repo}/xet-read-token/{commit}") as r:
        tok = json.load(r)
    req = urllib.request.Request(f"{tok['casUrl']}/{version}/reconstructions/{xet_hash}",
                                 headers={"Authorization": "Bearer " + tok["accessToken"], **(headers or {})})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def xorb_ranges(origin, repo, commit, xet_hash):
    """(url, first byte, last byte) of every xorb range of the file: what fetching it all costs."""
    rec = reconstruction(origin, repo, commit, xet_hash)
    return [(fi["url"], fi["url_range"]["start"], fi["url_range"]["end"])
            for fis in rec["fetch_info"].values() for fi in fis]


def settled(origin, key="xorb_bytes_total", quiet=1.5, limit=60, step=0.1):
    """origin.stats()[key] once it has not changed for `quiet` seconds (at
    most `limit`): what a mount fetched, background prefetch included."""
    last, t_last, t0 = origin.stats()[key], time.monotonic(), time.monotonic()
    while time.monotonic() - t0 < limit:
        time.sleep(step)
        n = origin.stats()[key]
        if n != last:
            last, t_last = n, time.monotonic()
        elif time.monotonic() - t_last >= quiet:
            break
    return last


def tensor_spans(body):
    """[(start, end)] of the tensors' bytes in a safetensors file's bytes
    (at least its header), in file order."""
    n = struct.unpack("<Q", body[:8])[0]
    hdr = json.loads(body[8:8 + n])
    return sorted((8 + n + v["data_offsets"][0], 8 + n + v["data_offsets"][1])
                  for k, v in hdr.items() if k != "__metadata__")


def rss(pid):
    """(VmRSS, VmHWM) of a process in bytes, (0, 0) once it is gone."""
    v = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            k, _, rest = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                v[k] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return v.get("VmRSS", 0), v.get("VmHWM", 0)


def mount(zestfs, mnt, args, log, env=None):
    """Start `zestfs -f ARGS MNT` (log: an open file, scanned at the end) and
    wait for the mount.  Refuses (ValueError) a command line without a
    loopback --endpoint, or with any other address off loopback; an --offline
    one gets DEAD_ENDPOINT."""
    args = list(args)
    has_ep = any(a == "--endpoint" or a.startswith("--endpoint=") for a in args)
    if not has_ep:
        if "--offline" not in args:
            raise ValueError("fsutil.mount: no --endpoint (tests reach loopback only: name the origin)")
        args = ["--endpoint", DEAD_ENDPOINT, *args]
    guard_args(args)
    watch_log(log)
    p = subprocess.Popen([zestfs, "-f", *args, mnt], stdout=log, stderr=subprocess.STDOUT,
                         env=guard_env(env))
    for _ in range(600):
        if os.path.ismount(mnt):
            return p
        if p.poll() is not None:
            return p
        time.sleep(0.05)
    return p


def dump_stuck(pid):
    """A daemon that does not exit: its threads' stacks here, and the loop's
    handles (libuv's list: [R]ef'd, [A]ctive) in its own log, through gdb
    when it is installed (nothing otherwise)."""
    gdb = shutil.which("gdb")
    if not gdb:
        return
    cmds = ["set pagination off", "thread apply all bt 25", "frame function mount_run",
            "call (void)uv_print_all_handles(&m->loop, (FILE *)stderr)", "call (int)fflush(0)"]
    try:
        r = subprocess.run([gdb, "-q", "-batch", "-p", str(pid), *[a for c in cmds for a in ("-ex", c)]],
                           capture_output=True, text=True, timeout=120)
        print(f"---- zestfs (pid {pid}) stuck after the unmount: stacks (its handles are in its log) ----\n"
              + r.stdout[-12000:] + r.stderr[-2000:])
    except (OSError, subprocess.SubprocessError) as e:
        print(f"gdb on the stuck zestfs: {e!r}")


def mount_dev(mnt):
    """The device ("0:NN") of the mount at mnt in this mount namespace, or None."""
    mnt = os.path.realpath(mnt)
    dev = None
    try:
        for line in open("/proc/self/mountinfo"):
            f = line.split()
            if len(f) > 4 and f[4] == mnt:
                dev = f[2]
    except OSError:
        pass
    return dev


def foreign_copies(dev, mnt):
    """Processes (pid, command) of other mount namespaces that still hold a
    copy of the mount `dev` at `mnt` (both: a device number is reused once
    the mount is gone): one per namespace.  unshare -m (every meson
    test's tests/netguard.sh, ip netns exec, ...) copies every mount of the
    namespace it starts from, and a copy in a private namespace does not go
    away when the original is unmounted."""
    try:
        own = os.readlink("/proc/self/ns/mnt")
    except OSError:
        return []
    mnt = os.path.realpath(mnt)
    seen, out = {own}, []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            ns = os.readlink(f"/proc/{pid}/ns/mnt")
            if ns in seen:
                continue
            seen.add(ns)
            with open(f"/proc/{pid}/mountinfo") as f:
                if not any(l.split()[2:5:2] == [dev, mnt] for l in f):
                    continue
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            out.append((int(pid), cmd.strip()[:160]))
        except OSError:
            continue
    return out


def unmount(p, mnt, expect=0):
    """fusermount3 -u, wait for the daemon; returns its exit status.  Records a
    problem when fusermount3 fails while the daemon runs, or the daemon exits
    other than `expect` (None: any status), or it had sockets off loopback.

    The kernel ends the FUSE connection (the daemon reads ENODEV and exits)
    when the last copy of the mount goes.  A test run outside meson's
    netguard mounts in the shared namespace, where anything that starts a
    mount namespace meanwhile (another test's netguard) takes a copy: the
    daemon then waits for that namespace to end.  That is the machine's
    doing, not the daemon's: when the daemon still runs 5 s after the
    unmount and such a copy exists, it is told to stop (SIGTERM, which ends
    it as an unmount does) and a note says so; a daemon still running
    without any copy left is a failure, as before."""
    check_remote(p)
    running = p.poll() is None
    dev = mount_dev(mnt) if running else None
    u = subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.PIPE, text=True)
    if running and u.returncode != 0 and p.poll() is None:
        problem(f"fusermount3 -u {mnt}: exit {u.returncode}: {u.stderr.strip()}")
    end = time.time() + 90  # a slow machine (CI, sanitizers) may take a while to drain
    looked = False
    while True:
        try:
            p.wait(max(0.1, (end if looked else min(end, time.time() + 5)) - time.time()))
            break
        except subprocess.TimeoutExpired:
            pass
        if not looked and dev and u.returncode == 0 and time.time() < end:
            looked = True
            held = foreign_copies(dev, mnt)
            if held:
                print(f"note: {mnt} is unmounted here but copies of it live on in other mount "
                      f"namespaces ({held[:3]}): the FUSE connection stays up until they go; "
                      f"zestfs (pid {p.pid}) is sent SIGTERM instead", flush=True)
                p.send_signal(signal.SIGTERM)
            continue
        if time.time() < end:
            continue
        dump_stuck(p.pid)
        p.kill()
        p.wait()
        problem(f"zestfs (pid {p.pid}) did not exit within 90 s of unmounting {mnt}")
        break
    if expect is not None and p.returncode != expect:
        problem(f"zestfs (pid {p.pid}) exit status {p.returncode} after unmounting {mnt}")
    return p.returncode


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def flip(path, off, mask=0x55):
    """Alter one byte of a file on disk (corruption tests)."""
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ mask]))


def sha(b):
    return hashlib.sha256(b).hexdigest()


def git_sha1(b):
    """The git blob id of b (the oid of a non-LFS file)."""
    return hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest()


def read_all(path, bs=MiB):
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(bs)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


class Run:
    """One test run: `check(cond, what)` records failures; `finish()` tears
    down (mount, origin), asserts the zestfs log has no sanitizer report and
    returns the exit status (0 pass, 1 fail)."""

    def __init__(self, zestfs, origin_exe, prefix):
        self.zestfs, self.origin_exe = zestfs, origin_exe
        self.fails = []
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.log = open(os.path.join(self.tmp, "zestfs.log"), "w+")

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            self.fails.append(what)
        return cond

    def finish(self, proc, mnt, origin):
        if proc and proc.poll() is None:
            check_remote(proc)
            proc.kill()
            proc.wait()
        subprocess.run(["fusermount3", "-uz", mnt], stderr=subprocess.DEVNULL)
        if origin:
            origin.stop()
        self.log.seek(0)
        out = self.log.read()
        self.check(sanitizer_report(out) is None, "no sanitizer report in the zestfs log")
        if self.log.name in _logs:
            _logs.remove(self.log.name)
        found = problems()
        self.check(not found, f"processes exited 0, clean logs, loopback only ({len(found)} problems)")
        self.fails += found
        if (self.fails or os.environ.get("ZESTFS_TEST_VERBOSE")) and out:
            print("---- zestfs log ----\n" + out[-6000:])
        self.log.close()
        if not self.fails:
            shutil.rmtree(self.tmp, ignore_errors=True)
        print(f"{len(self.fails)} failures")
        return 1 if self.fails else 0


def start(prefix):
    """Run for `argv` = ZESTFS [ZESTFS_ORIGIN], or None when the test must be
    skipped (no /dev/fuse, no fusermount3, no origin binary)."""
    zestfs = os.path.abspath(sys.argv[1])
    origin_exe = find_origin(zestfs)
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        print("skip: no /dev/fuse")
        return None
    if not origin_exe or not os.path.exists(origin_exe):
        print("skip: no zestfs-origin")
        return None
    return Run(zestfs, origin_exe, prefix)
