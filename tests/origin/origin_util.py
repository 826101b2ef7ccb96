"""Helpers shared by the zestfs-origin tests (standard library only).

Every test starts its own origin on a free loopback port (the server binds
port 0 and writes the port to a file), talks to it, and stops it at the end.
"""
import http.client
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

SKIP = 77


class Fail(Exception):
    pass


class Checker:
    def __init__(self, name):
        self.name = name
        self.n = 0
        self.failed = 0

    def ok(self, cond, what):
        self.n += 1
        if not cond:
            self.failed += 1
            print(f"FAIL: {what}", flush=True)
        return cond

    def eq(self, a, b, what):
        return self.ok(a == b, f"{what}: {a!r} != {b!r}")

    def done(self):
        print(f"{self.name}: {self.n - self.failed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def rand_bytes(seed, n):
    return random.Random(seed).randbytes(n)


class Origin:
    """A running `zestfs-origin serve`."""

    def __init__(self, exe, data, args=(), tls=None, env=None):
        self.exe = exe
        self.data = data
        self.tmp = tempfile.mkdtemp(prefix="zo-port-")
        self.port_file = os.path.join(self.tmp, "port")
        cmd = [exe, "serve", data, "--listen", "127.0.0.1:0", "--port-file", self.port_file, "-q"]
        self.tls = tls
        self.cafile = None
        if tls:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        cmd += list(args)
        self.log = open(os.path.join(self.tmp, "log"), "w+")
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 10
        while time.time() < deadline:
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    t = f.read().strip()
                if t:
                    self.port = int(t)
                    break
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        else:
            self.stop()
            raise Fail("origin did not start")
        if self.p.poll() is not None:
            self.log.seek(0)
            raise Fail("origin exited: " + self.log.read())
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def stop(self):
        """SIGTERM; raises Fail unless the origin exits 0 with no sanitizer
        report in its log (a second stop() does nothing)."""
        if self.log.closed:
            return
        killed = False
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                killed = True
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if "Sanitizer" in text or "runtime error:" in text:
            print(text[-6000:], flush=True)
            raise Fail("sanitizer report from the origin")
        if killed:
            raise Fail("the origin did not stop within 30 s of SIGTERM")
        if self.p.returncode != 0:
            print(text[-3000:], flush=True)
            raise Fail(f"the origin exited with status {self.p.returncode}")

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()

    def conn(self, cafile=None):
        if self.tls:
            ctx = ssl.create_default_context(cafile=cafile or self.cafile)
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def req(self, method, path, headers=None, body=None, cafile=None):
        """-> (status, headers dict (lower-case keys), body bytes)"""
        if path.startswith("http"):
            u = urllib.parse.urlsplit(path)
            path = u.path + ("?" + u.query if u.query else "")
        c = self.conn(cafile)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, headers=None, body=None):
        st, h, b = self.req(method, path, headers, body)
        try:
            return st, h, json.loads(b) if b else None
        except ValueError:
            return st, h, None

    def knobs(self, **kw):
        st, _, b = self.json("POST", "/_origin/knobs", {"Content-Type": "application/json"},
                             json.dumps(kw))
        if st != 200:
            raise Fail(f"knobs: {st}")
        return b

    def stats(self):
        return self.json("GET", "/_origin/stats")[2]

    def reset_stats(self):
        self.req("POST", "/_origin/stats/reset", body=b"")

    def token(self, repo="org/tiny", rev="main", write=False, hub_token=None, rtype="models"):
        h = {"Authorization": f"Bearer {hub_token}"} if hub_token else {}
        kind = "write" if write else "read"
        st, hd, j = self.json("GET", f"/api/{rtype}/{repo}/xet-{kind}-token/{rev}", h)
        if st != 200:
            raise Fail(f"token: {st} {j}")
        return j


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    if r.returncode != 0:
        raise Fail(f"{cmd!r} failed ({r.returncode}): {r.stderr}")
    return r.stdout.strip()


def ingest(exe, data, repo, d, *args):
    return run([exe, "ingest", data, repo, *args, "-q", d])


def make_model_dir(d, seed=1, big=3_000_000):
    """config.json, tokenizer.json (regular), model.safetensors (Xet),
    sub/dir/notes.txt (regular), weights.bin (binary extension -> Xet)."""
    os.makedirs(os.path.join(d, "sub", "dir"), exist_ok=True)
    files = {
        "config.json": json.dumps({"model_type": "tiny", "hidden": 8, "seed": seed}).encode(),
        "tokenizer.json": json.dumps({"version": "1.0", "vocab": {"a": 0, "b": 1}}).encode(),
        "model.safetensors": rand_bytes(seed, big),
        "sub/dir/notes.txt": b"nested note\n",
        "weights.bin": rand_bytes(seed + 1000, 20000),
        "empty.bin": b"",
    }
    for p, b in files.items():
        with open(os.path.join(d, p), "wb") as f:
            f.write(b)
    return files


def find_exe():
    if len(sys.argv) > 1:
        return os.path.abspath(sys.argv[1])
    here = os.path.dirname(os.path.abspath(__file__))
    for b in ("build-origin", "build"):
        p = os.path.join(here, "..", "..", b, "origin", "zestfs-origin")
        if os.path.exists(p):
            return os.path.abspath(p)
    raise Fail("zestfs-origin not found (pass its path)")


def repo_root():
    return os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def main_wrapper(fn):
    try:
        rc = fn()
    except Fail as e:
        print(f"FAIL: {e}", flush=True)
        rc = 1
    sys.exit(rc)
