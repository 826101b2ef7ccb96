"""fsutil.py — what the fs tests share: finding zestfs-origin, a generated
model, an origin on a free loopback port, mounting and unmounting, and `Run`,
the skip checks, check() bookkeeping and teardown every test does the same way."""
import hashlib, json, os, random, shutil, signal, struct, subprocess, sys, tempfile, time
import urllib.request

MiB = 1 << 20

# Tests reach only loopback: no public DHT routers (tests that want a DHT name
# their own nodes with --dht-bootstrap or set this themselves).
os.environ.setdefault("ZESTFS_DHT_BOOTSTRAP", "none")


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
    def __init__(self, exe, data, tmp):
        self.port_file = os.path.join(tmp, "origin.port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log = open(os.path.join(tmp, "origin.log"), "a")
        self.p = subprocess.Popen([exe, "serve", data, "--listen", "127.0.0.1:0", "--port-file",
                                   self.port_file, "-q"], stdout=self.log, stderr=subprocess.STDOUT)
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
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


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


def mount(zestfs, mnt, args, log):
    p = subprocess.Popen([zestfs, "-f", *args, mnt], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        if os.path.ismount(mnt):
            return p
        if p.poll() is not None:
            return p
        time.sleep(0.05)
    return p


def unmount(p, mnt):
    subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
    try:
        p.wait(90)  # a slow machine (CI, sanitizers) may take a while to drain
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
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
            proc.kill()
            proc.wait()
        subprocess.run(["fusermount3", "-uz", mnt], stderr=subprocess.DEVNULL)
        if origin:
            origin.stop()
        self.log.seek(0)
        out = self.log.read()
        self.check("runtime error:" not in out and "Sanitizer" not in out,
                   "no sanitizer report in the zestfs log")
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
