"""test_mountns.py ZESTFS ZESTFS_ORIGIN — zestfs as a container's sidecar,
with mount namespaces standing in for the containers (no Docker here); test_containers.py checks the YAML.

A host directory SHARED is made a shared mount (compose's `rshared`).  A
"container" is a process in its own mount namespace (`unshare -m
--propagation slave`) that rbinds SHARED to its own path with rslave
propagation (compose's `rslave`, k8s' HostToContainer) and reads models
through it.  The consumer starts BEFORE zestfs mounts, so what it sees comes
by propagation.

- zestfs started with no option but -f: endpoint, store, repo and
  allow-other come from a config file ($ZESTFS_CONFIG, mode 0600);
- the consumer sees the mount, marked a slave in its mountinfo, and reads
  every file byte-exact, as root and as uid 65534 (allow-other from the
  config);
- a mount the consumer makes under its bind does not leak back to the host;
- zestfs restarted (unmount, mount again) with a config whose endpoint is
  dead, a fresh store, and --endpoint on the command line: the consumer
  sees the new mount and reads byte-exact (the flag overrides the file),
  and with allow-other = no in that file uid 65534 is refused;
- a config holding a token that other users can read is refused, exit 2,
  and the message does not contain the token."""
import hashlib, json, os, random, shutil, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fs"))
import fsutil  # noqa: E402

run = fsutil.start("zestfs-mountns-")
if run is None:
    sys.exit(77)
if os.geteuid() != 0 or not shutil.which("unshare"):
    print("skip: needs root and unshare(1) for bind mounts and mount namespaces")
    sys.exit(77)
check, tmp = run.check, run.tmp
os.chmod(tmp, 0o755)  # uid 65534 in the "container" walks down to its bind

CONSUMER = r'''
import hashlib, json, os, subprocess, sys
shared, ctr = sys.argv[1], sys.argv[2]
os.makedirs(ctr, exist_ok=True)
subprocess.run(["mount", "--rbind", shared, ctr], check=True)
subprocess.run(["mount", "--make-rslave", ctr], check=True)
print(json.dumps({"ready": True}), flush=True)

def sha(path, uid=None):
    if uid is None:
        try:
            with open(path, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        except OSError as e:
            return "error: " + e.strerror
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([]); os.setgid(uid); os.setuid(uid)
            with open(path, "rb") as f:
                out = hashlib.sha256(f.read()).hexdigest()
        except OSError as e:
            out = "error: " + e.strerror
        os.write(w, out.encode()); os._exit(0)
    os.close(w)
    out = b""
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        out += b
    os.close(r); os.waitpid(pid, 0)
    return out.decode()

for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "read":
        res = {p: sha(os.path.join(ctr, p), cmd.get("uid")) for p in cmd["paths"]}
    elif cmd["op"] == "mountinfo":
        res = [l.split(" - ")[0] + " - " + l.split(" - ")[1].split()[0]
               for l in open("/proc/self/mountinfo") if " " + ctr in l]
    elif cmd["op"] == "leak":
        p = os.path.join(ctr, "probe")
        os.makedirs(p, exist_ok=True)
        res = subprocess.run(["mount", "-t", "tmpfs", "none", p]).returncode
    else:
        break
    print(json.dumps(res), flush=True)
'''

consumer = proc = origin = None
shared = os.path.join(tmp, "shared")
hub = os.path.join(shared, "hub")
bound = False
try:
    # --- a model on an origin ------------------------------------------------
    model = os.path.join(tmp, "model")
    rng = random.Random(5)
    files = {"model.safetensors": fsutil.safetensors_like(rng, 10_000_000),
             "config.json": json.dumps({"model_type": "tiny"}).encode(),
             "tokenizer.json": json.dumps({"v": list(range(2000))}).encode()}
    os.makedirs(model)
    for p, b in files.items():
        with open(os.path.join(model, p), "wb") as f:
            f.write(b)
    data = os.path.join(tmp, "data")
    commit = fsutil.ingest(run.origin_exe, data, "org/model", model)
    origin = fsutil.Origin(run.origin_exe, data, tmp)
    want = {p: hashlib.sha256(b).hexdigest() for p, b in files.items()}
    snap = f"hub/models--org--model/snapshots/{commit}/"
    paths = [snap + p for p in files]

    # --- the host side: SHARED is a shared mount (compose: rshared) -------------
    os.makedirs(hub)
    subprocess.run(["mount", "--bind", shared, shared], check=True)
    bound = True
    subprocess.run(["mount", "--make-rshared", shared], check=True)

    # --- the "container" starts first ------------------------------------------
    ctr = os.path.join(tmp, "ctr")
    consumer = subprocess.Popen(["unshare", "-m", "--propagation", "slave", sys.executable, "-c",
                                 CONSUMER, shared, os.path.join(tmp, "ctr")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(**cmd):
        consumer.stdin.write(json.dumps(cmd) + "\n")
        consumer.stdin.flush()
        return json.loads(consumer.stdout.readline())

    check(json.loads(consumer.stdout.readline()).get("ready"), "consumer namespace bound SHARED rslave")

    # --- zestfs with only a config file ----------------------------------------
    cfg = os.path.join(tmp, "zestfs.conf")
    with open(cfg, "w") as f:
        f.write(f"endpoint = {origin.url}\nstore = {os.path.join(tmp, 'store')}\n"
                f"store-size = 1G\nrepo = org/model@main\nallow-other = true\n")
    os.chmod(cfg, 0o600)
    env = dict(os.environ, ZESTFS_CONFIG=cfg, HOME=tmp, XDG_CONFIG_HOME=os.path.join(tmp, "xdg"))
    env.pop("HF_ENDPOINT", None)
    proc = subprocess.Popen([run.zestfs, "-f", hub], env=env, stdout=run.log, stderr=subprocess.STDOUT)
    for _ in range(600):
        if os.path.ismount(hub) or proc.poll() is not None:
            break
        time.sleep(0.05)
    check(os.path.ismount(hub), "zestfs mounted from the config file alone")
    info = ask(op="mountinfo")
    hubline = [l for l in info if l.split()[4].endswith("/ctr/hub")]
    check(hubline and "master:" in hubline[0] and hubline[0].endswith("fuse.zestfs"),
          f"consumer sees the zestfs mount, as a slave: {hubline[:1]}")
    got = ask(op="read", paths=paths)
    check(all(got[p] == want[p.rsplit('/', 1)[1]] for p in paths), f"consumer reads byte-exact: {got}")
    got = ask(op="read", paths=paths, uid=65534)
    check(all(got[p] == want[p.rsplit('/', 1)[1]] for p in paths),
          f"consumer reads byte-exact as uid 65534 (allow-other from the config): {set(got.values())}")
    check(ask(op="leak") == 0 and not os.path.ismount(os.path.join(shared, "probe")),
          "a mount inside the consumer does not propagate back to the host")

    # --- restart: dead endpoint in the file, the right one on the command line -----
    fsutil.unmount(proc, hub)
    check(not os.path.ismount(hub), "unmounted")
    cfg2 = os.path.join(tmp, "zestfs2.conf")
    with open(cfg2, "w") as f:
        f.write(f"endpoint = http://127.0.0.1:9\nstore = {os.path.join(tmp, 'store2')}\n"
                "repo = org/model\nallow-other = no\n")
    os.chmod(cfg2, 0o600)
    env2 = dict(env, ZESTFS_CONFIG=cfg2)
    proc = subprocess.Popen([run.zestfs, "-f", "--endpoint", origin.url, hub], env=env2,
                            stdout=run.log, stderr=subprocess.STDOUT)
    for _ in range(600):
        if os.path.ismount(hub) or proc.poll() is not None:
            break
        time.sleep(0.05)
    check(os.path.ismount(hub), "zestfs mounted again")
    got = ask(op="read", paths=paths)
    check(all(got[p] == want[p.rsplit('/', 1)[1]] for p in paths),
          "consumer reads the new mount byte-exact (fresh store: --endpoint beat the file's)")
    got = ask(op="read", paths=paths[1:2], uid=65534)
    check(list(got.values())[0].startswith("error:"),
          f"allow-other = no in the file: uid 65534 is refused ({got})")
    fsutil.unmount(proc, hub)
    proc = None

    # --- a readable token is refused ---------------------------------------------
    secret = "hf_zestfsTestSecret0123456789"
    cfg3 = os.path.join(tmp, "open.conf")
    with open(cfg3, "w") as f:
        f.write(f"endpoint = {origin.url}\ntoken = {secret}\n")
    os.chmod(cfg3, 0o644)
    r = subprocess.run([run.zestfs, "-f", hub], env=dict(env, ZESTFS_CONFIG=cfg3),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 2 and "token" in r.stderr and cfg3 in r.stderr and secret not in r.stderr + r.stdout
          and not os.path.ismount(hub), f"world-readable token refused: {r.stderr.strip()}")
finally:
    if consumer:
        try:
            consumer.stdin.close()
        except OSError:
            pass
        try:
            consumer.wait(10)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait()
    rc = run.finish(proc, hub, origin)
    if bound:
        subprocess.run(["umount", "-l", shared], stderr=subprocess.DEVNULL)
sys.exit(rc)
