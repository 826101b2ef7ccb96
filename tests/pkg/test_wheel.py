"""test_wheel.py ZESTFS ZESTFS_ORIGIN SRCDIR — the Python wheel: built twice
from the tree with python/build_wheel.py (same bytes), its RECORD hashes
every file, the binaries are 0755; installed offline into a fresh venv, the
module imports, the console script runs the bundled binary (`zestfs xet
hash` equals the build's); then, against a zestfs-origin started here,
zestfs.mount() mounts (idempotent), a model reads byte-exact through it,
zestfs.pull() goes through the mount, zestfs.unmount() unmounts; and
ZESTFS=1 with options only from a config file ($ZESTFS_CONFIG) mounts the HF
cache on import, once, however often it is imported."""
import base64, csv, hashlib, io, json, os, random, shutil, subprocess, sys, tempfile, zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fs"))
import fsutil  # noqa: E402

zestfs, origin_exe, src = (os.path.abspath(a) for a in sys.argv[1:4])
fails = []
tmp = tempfile.mkdtemp(prefix="zestfs-wheel-")
mnts = []
skipped = []  # parts that could not run here: exit 77 naming them
san_dir = os.path.join(tmp, "sanitizer-reports")


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        fails.append(what)
    return cond


def run(args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 300)
    return subprocess.run(args, **kw)


origin = None
try:
    # --- build ----------------------------------------------------------------
    builder = os.path.join(src, "python", "build_wheel.py")
    whl = [run([sys.executable, builder, zestfs, origin_exe, os.path.join(tmp, d)]).stdout.strip()
           for d in ("w1", "w2")]
    check(all(os.path.exists(w) for w in whl), f"wheel built: {os.path.basename(whl[0])}")
    check(open(whl[0], "rb").read() == open(whl[1], "rb").read(), "two builds give the same bytes")
    check(whl[0].endswith("-py3-none-linux_x86_64.whl") or "-py3-none-linux_" in whl[0],
          "platform tag py3-none-linux_<machine>")
    with zipfile.ZipFile(whl[0]) as z:
        names = z.namelist()
        rec_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        rows = list(csv.reader(io.StringIO(z.read(rec_name).decode())))
        good = True
        for name, h, size in rows:
            if name == rec_name:
                continue
            data = z.read(name)
            dig = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            good &= (h == dig and int(size) == len(data))
        check(good and {r[0] for r in rows} == set(names), f"RECORD lists and hashes all {len(names)} files")
        for b in ("zestfs/_bin/zestfs", "zestfs/_bin/zestfs-origin"):
            check((z.getinfo(b).external_attr >> 16) & 0o777 == 0o755, f"{b} is 0755")
        meta = z.read(next(n for n in names if n.endswith("METADATA"))).decode()
        wheel = z.read(next(n for n in names if n.endswith("/WHEEL"))).decode()
        check("Name: zestfs" in meta and "Root-Is-Purelib: false" in wheel, "METADATA and WHEEL")

    # --- install into a fresh venv, offline ------------------------------------
    venv = os.path.join(tmp, "venv")
    r = run([sys.executable, "-m", "venv", venv])
    if not check(r.returncode == 0, "python3 -m venv"):
        raise SystemExit(r.stderr)
    py = os.path.join(venv, "bin", "python")
    r = run([py, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check",
             "-q", whl[0]])
    check(r.returncode == 0, "pip install --no-index the wheel" + (": " + r.stderr[-500:] if r.returncode else ""))
    env = dict(os.environ, HOME=tmp, XDG_CONFIG_HOME=os.path.join(tmp, "xdg"))
    # zestfs.mount() daemonizes: the daemon's stderr is gone, so sanitizer
    # reports go to files here (checked at the end; sanitizer builds only)
    os.makedirs(san_dir, exist_ok=True)
    for k, pre in (("ASAN_OPTIONS", "asan"), ("UBSAN_OPTIONS", "ubsan")):
        env[k] = (env[k] + ":" if env.get(k) else "") + "log_path=" + os.path.join(san_dir, pre)
    env.pop("ZESTFS", None)
    env.pop("ZESTFS_CONFIG", None)
    r = run([py, "-c", "import zestfs, os; print(zestfs.__version__); print(zestfs.binary())"], env=env)
    out = r.stdout.split()
    check(r.returncode == 0 and out[0] != "@VERSION@" and out[1].startswith(venv),
          f"import zestfs from the venv: {' '.join(out)}")
    r = run([os.path.join(venv, "bin", "zestfs"), "--help"], env=env)
    check(r.returncode == 0 and "xet hash" in r.stdout, "console script zestfs --help")
    blob = os.path.join(tmp, "blob.bin")
    with open(blob, "wb") as f:
        f.write(random.Random(7).randbytes(300_000))
    h_venv = run([os.path.join(venv, "bin", "zestfs"), "xet", "hash", blob], env=env).stdout.strip()
    h_build = run([zestfs, "xet", "hash", blob]).stdout.strip()
    check(len(h_venv) == 64 and h_venv == h_build, f"bundled zestfs xet hash = build's ({h_venv[:16]}…)")
    r = run([os.path.join(venv, "bin", "zestfs-origin"), "--help"], env=env)
    check(r.returncode == 0, "console script zestfs-origin --help")

    # --- mount through the module ----------------------------------------------
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        skipped.append("no /dev/fuse: zestfs.mount()/pull()/ZESTFS=1 not tested")
        raise SystemExit
    model = os.path.join(tmp, "model")
    rng = random.Random(11)
    files = {"model.safetensors": fsutil.safetensors_like(rng, 12_000_000),
             "config.json": json.dumps({"model_type": "tiny"}).encode(),
             "sub/notes.txt": b"nested\n"}
    for p, b in files.items():
        os.makedirs(os.path.dirname(os.path.join(model, p)), exist_ok=True)
        open(os.path.join(model, p), "wb").write(b)
    data = os.path.join(tmp, "origin-data")
    commit = fsutil.ingest(origin_exe, data, "org/model", model)
    origin = fsutil.Origin(origin_exe, data, tmp)
    want = {p: hashlib.sha256(b).hexdigest() for p, b in files.items()}
    mnt = os.path.join(tmp, "mnt")
    mnts.append(mnt)
    script = r'''
import hashlib, json, os, sys, zestfs
mnt, url, store, commit, want = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
res = {}
p = zestfs.mount(mnt, endpoint=url, store=store, repo=["org/model"], store_size="1G", offline=False)
res["mounted"] = p == mnt and zestfs.is_mounted(mnt)
zestfs.mount(mnt, endpoint=url, store=store)  # again: no second mount
res["once"] = [os.path.realpath(m) for m in zestfs.mounts()].count(os.path.realpath(mnt)) == 1
snap = os.path.join(mnt, "models--org--model", "snapshots", commit)
res["bytes"] = {f: hashlib.sha256(open(os.path.join(snap, f), "rb").read()).hexdigest() == h for f, h in want.items()}
try:
    zestfs.pull("org/model", revision="main", include="*.json", store=store)
    res["pull"] = "ok"
except zestfs.ZestfsError as e:
    res["pull"] = str(e)
try:
    res["status"] = "text:" + zestfs.status(mnt)[:40]
    js = zestfs.status(mnt, as_json=True)
    res["status_json"] = [r["id"] for r in js.get("repos", [])]
except zestfs.ZestfsError as e:
    res["status"] = "error:" + str(e)[:80]
zestfs.unmount(mnt)
res["unmounted"] = not zestfs.is_mounted(mnt)
print(json.dumps(res))
'''
    r = run([py, "-c", script, mnt, origin.url, os.path.join(tmp, "store1"), commit, json.dumps(want)],
            env=env)
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {}
        print(r.stdout, r.stderr)
    check(res.get("mounted"), "zestfs.mount() mounts and returns the path")
    check(res.get("once"), "zestfs.mount() again leaves the one mount")
    check(res.get("bytes") and all(res["bytes"].values()), f"model files byte-exact through the mount {res.get('bytes')}")
    check(res.get("pull") == "ok", f"zestfs.pull() through the mount: {res.get('pull')}")
    check(str(res.get("status", "")).startswith("text:zestfs pid"), f"zestfs.status(): {res.get('status')}")
    check(res.get("status_json") == ["org/model"], f"zestfs.status(as_json=True): repos {res.get('status_json')}")
    check(res.get("unmounted") and not os.path.ismount(mnt), "zestfs.unmount() unmounts")

    # --- ZESTFS=1, options only from a config file -------------------------------
    hub = os.path.join(tmp, "hf", "hub")
    mnts.append(hub)
    cfg = os.path.join(tmp, "zestfs.conf")
    with open(cfg, "w") as f:
        f.write(f"# only the config file says where and what\nendpoint = {origin.url}\n"
                f"store = {os.path.join(tmp, 'store2')}\nstore-size = 1G\nrepo = org/model\n")
    os.chmod(cfg, 0o600)
    env2 = dict(env, ZESTFS="1", ZESTFS_CONFIG=cfg, HF_HUB_CACHE=hub)
    check_script = r'''
import hashlib, os, sys, json, zestfs
hub, commit, want = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
snap = os.path.join(hub, "models--org--model", "snapshots", commit)
ok = {f: hashlib.sha256(open(os.path.join(snap, f), "rb").read()).hexdigest() == h for f, h in want.items()}
print(json.dumps({"mounted": zestfs.is_mounted(hub), "ok": ok,
                  "n": [os.path.realpath(m) for m in zestfs.mounts()].count(os.path.realpath(hub))}))
'''
    outs = []
    for i in range(2):
        r = run([py, "-W", "error::RuntimeWarning", "-c", check_script, hub, commit, json.dumps(want)], env=env2)
        try:
            outs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            outs.append({})
            print(r.stdout, r.stderr)
    check(outs[0].get("mounted") and all(outs[0].get("ok", {}).values()) and outs[0].get("ok"),
          "ZESTFS=1: import mounts the HF cache from the config file; files byte-exact")
    check(outs[1].get("n") == 1 and all(outs[1].get("ok", {}).values()), "ZESTFS=1 again: still one mount")
    r = run([py, "-c", "import zestfs, sys; zestfs.unmount(sys.argv[1]); print(zestfs.is_mounted(sys.argv[1]))", hub],
            env=dict(env2, ZESTFS="0"))
    check(r.stdout.strip() == "False", "unmounted")
finally:
    for m in mnts:
        subprocess.run(["fusermount3", "-uz", m], stderr=subprocess.DEVNULL)
    if origin:
        origin.stop()
    fails += fsutil.problems()  # the origin's exit status and log
    for f in sorted(os.listdir(san_dir)) if os.path.isdir(san_dir) else []:
        print(f"---- {f} ----\n" + open(os.path.join(san_dir, f), errors="replace").read()[-4000:])
        check(False, f"sanitizer report from a process the wheel started: {f}")
    if not fails:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("kept", tmp)
print(f"{len(fails)} failures")
if not fails and skipped:
    print("skip: " + "; ".join(skipped))
    sys.exit(77)
sys.exit(1 if fails else 0)
