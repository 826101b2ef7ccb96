"""test_containers.py SRCDIR ZESTFS — the container examples hold together
without Docker or Kubernetes: packaging/compose.yaml and
packaging/k8s/daemonset.yaml parse (PyYAML) and wire FUSE and mount
propagation right (zestfs: /dev/fuse + SYS_ADMIN / privileged, rshared /
Bidirectional; consumers: same host directory, rslave / HostToContainer,
no privileges); every zestfs option they use exists in the binary's help;
the Dockerfile is a Debian 12 multi-stage build whose build stage installs
every build dependency tests/lib-deps.sh lists and whose runtime installs
the .deb.  (tests/pkg/test_mountns.py stands in for running the containers.)"""
import json, os, re, shlex, subprocess, sys

try:
    import yaml
except ImportError:
    print("skip: python3-yaml not installed")
    sys.exit(77)

src, zestfs = sys.argv[1], os.path.abspath(sys.argv[2])
fails = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)


helptext = subprocess.run([zestfs, "/nonexistent", "--help"], capture_output=True,
                          text=True).stdout
known = set(re.findall(r"--([a-z][a-z0-9-]+)", helptext))
check("store" in known and "allow-other" in known, "zestfs MOUNTPOINT --help lists options")


def zestfs_options(words):
    """long options of the `zestfs ...` invocations found in a list of words,
    or None when there is no zestfs invocation at all (then no check of its
    options can pass: all() over nothing would)"""
    opts, found = [], False
    for cmd in words:
        for part in re.split(r"&&|;|\|\|", cmd):
            toks = shlex.split(part)
            while toks and toks[0] == "exec":
                toks = toks[1:]
            if toks and toks[0] == "zestfs":
                found = True
                opts += [t[2:].split("=")[0] for t in toks if t.startswith("--")]
    return opts if found else None


# --- compose ------------------------------------------------------------------
c = yaml.safe_load(open(os.path.join(src, "packaging/compose.yaml")))
z, app = c["services"]["zestfs"], c["services"]["app"]
check(any(d.split(":")[0] == "/dev/fuse" for d in z.get("devices", [])), "compose: zestfs gets /dev/fuse")
check("SYS_ADMIN" in z.get("cap_add", []), "compose: zestfs has SYS_ADMIN")
zb = [v for v in z["volumes"] if isinstance(v, dict) and v.get("type") == "bind"]
ab = [v for v in app["volumes"] if isinstance(v, dict) and v.get("type") == "bind"]
check(len(zb) == 1 and zb[0]["bind"]["propagation"] == "rshared", "compose: zestfs bind is rshared")
check(len(ab) == 1 and ab[0]["bind"]["propagation"] in ("rslave", "slave"), "compose: app bind is rslave")
check(zb and ab and zb[0]["source"] == ab[0]["source"], "compose: both bind the same host directory")
check(not app.get("devices") and not app.get("cap_add") and not app.get("privileged"),
      "compose: app has no device or capability")
check(app["depends_on"]["zestfs"]["condition"] == "service_healthy", "compose: app waits for the mount")
words = z.get("entrypoint", []) + (z.get("command") or [])
mnt = None
for w in words:
    m = re.search(r"zestfs .* (/\S+)$", w)
    if m:
        mnt = m.group(1)
check(mnt is not None and zb and mnt.startswith(zb[0]["target"] + "/"),
      f"compose: zestfs mounts {mnt} inside the shared bind")
check(app["environment"]["HF_HUB_CACHE"].startswith(ab[0]["target"]) if ab else False,
      "compose: app's HF_HUB_CACHE is inside its bind")
opts = zestfs_options(words)
check(opts and all(o in known for o in opts), f"compose: zestfs options exist ({opts})")  # it has some
check("mountpoint" in z["healthcheck"]["test"], "compose: healthcheck is mountpoint")

# --- compose, one model at a path (--repo-at) --------------------------------------
c = yaml.safe_load(open(os.path.join(src, "packaging/compose-repo-at.yaml")))
z, srv = c["services"]["zestfs"], c["services"]["server"]
zb = [v for v in z["volumes"] if isinstance(v, dict) and v.get("type") == "bind"]
sb = [v for v in srv["volumes"] if isinstance(v, dict) and v.get("type") == "bind"]
check(any(d.split(":")[0] == "/dev/fuse" for d in z.get("devices", [])) and "SYS_ADMIN" in z.get("cap_add", []),
      "compose-repo-at: zestfs gets /dev/fuse and SYS_ADMIN")
check(len(zb) == 1 and zb[0]["bind"]["propagation"] == "rshared" and len(sb) == 1 and
      sb[0]["bind"]["propagation"] in ("rslave", "slave") and zb[0]["source"] == sb[0]["source"],
      "compose-repo-at: zestfs rshared, server rslave, the same host directory")
check(not srv.get("cap_add") and not srv.get("privileged") and
      not any("/dev/fuse" in d for d in srv.get("devices", [])), "compose-repo-at: server has no FUSE or capability")
check(srv["depends_on"]["zestfs"]["condition"] == "service_healthy", "compose-repo-at: server waits for the mount")
words = z.get("entrypoint", []) + (z.get("command") or [])
m = next((re.search(r"zestfs .*--repo-at \S+ .*?(/\S+)$", w) for w in words if "--repo-at" in w), None)
mnt = m.group(1) if m else None
check(mnt is not None and zb and mnt.startswith(zb[0]["target"] + "/"),
      f"compose-repo-at: zestfs --repo-at mounts {mnt} inside the shared bind")
opts = zestfs_options(words)
check(opts and "repo-at" in opts and all(o in known for o in opts), f"compose-repo-at: zestfs options exist ({opts})")
model = srv["command"][srv["command"].index("--model") + 1] if "--model" in srv.get("command", []) else None
check(mnt and sb and model == sb[0]["target"] + mnt[len(zb[0]["target"]):],
      f"compose-repo-at: the server's --model {model} is the mount seen through its bind")
check("mountpoint" in z["healthcheck"]["test"] and mnt in z["healthcheck"]["test"],
      "compose-repo-at: healthcheck is mountpoint of it")

# --- kubernetes ------------------------------------------------------------------
docs = [d for d in yaml.safe_load_all(open(os.path.join(src, "packaging/k8s/daemonset.yaml"))) if d]
kinds = [d["kind"] for d in docs]
check("DaemonSet" in kinds and "Pod" in kinds, f"k8s: kinds {kinds}")
for d in docs:
    check(d.get("apiVersion") and d.get("metadata", {}).get("name"), f"k8s: {d['kind']} has apiVersion and name")
ds = next(d for d in docs if d["kind"] == "DaemonSet")
spec = ds["spec"]["template"]["spec"]
check(ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items(),
      "k8s: selector matches the template's labels")
zc = next(ct for ct in spec["containers"] if ct["name"] == "zestfs")
vols = {v["name"]: v for v in spec["volumes"]}
bidir = [m for m in zc["volumeMounts"] if m.get("mountPropagation") == "Bidirectional"]
check(len(bidir) == 1, "k8s: zestfs has one Bidirectional mount")
check(zc.get("securityContext", {}).get("privileged") is True, "k8s: zestfs is privileged (Bidirectional needs it)")
fuse = [m for m in zc["volumeMounts"] if m["mountPath"] == "/dev/fuse"]
check(fuse and vols[fuse[0]["name"]]["hostPath"] == {"path": "/dev/fuse", "type": "CharDevice"},
      "k8s: /dev/fuse from the host")
host_mnt = vols[bidir[0]["name"]]["hostPath"]["path"] if bidir else None
words = zc.get("command", []) + zc.get("args", [])
m = re.search(r"exec zestfs .*?(/\S+)\s*$", " ".join(words))
check(m and bidir and m.group(1).startswith(bidir[0]["mountPath"] + "/"),
      "k8s: zestfs mounts inside the Bidirectional volume")
opts = zestfs_options(words)
# the DaemonSet takes its options from the ConfigMap's config file: the
# invocation must be found, its long options (none today) must exist
check(opts is not None and all(o in known for o in opts), f"k8s: zestfs invocation found, options exist ({opts})")
cfg = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config"]
keys = [l.split("=")[0].strip() for l in cfg.splitlines() if l.strip() and not l.strip().startswith("#")]
check(keys and all(k in known for k in keys) and "token" not in keys,
      f"k8s: config keys are zestfs options, no token ({keys})")
check(any(m["mountPath"] == "/etc/zestfs" for m in zc["volumeMounts"]), "k8s: config at /etc/zestfs")
pod = next(d for d in docs if d["kind"] == "Pod")
pc = pod["spec"]["containers"][0]
pv = {v["name"]: v for v in pod["spec"]["volumes"]}
h2c = [m for m in pc["volumeMounts"] if m.get("mountPropagation") == "HostToContainer"]
check(len(h2c) == 1 and pv[h2c[0]["name"]]["hostPath"]["path"] == host_mnt,
      "k8s: consumer sees the same host path with HostToContainer")
check(not pc.get("securityContext", {}).get("privileged"), "k8s: consumer is not privileged")

# --- Dockerfile -------------------------------------------------------------------
df = open(os.path.join(src, "packaging/Dockerfile")).read()
froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", df, re.M | re.I)
check(len(froms) == 2 and froms[0][0] == "debian:12" and froms[0][1] and froms[1][0] == "debian:12-slim",
      f"Dockerfile: debian:12 build stage + debian:12-slim runtime ({froms})")
check(f"COPY --from={froms[0][1]}" in df, "Dockerfile: runtime copies from the build stage")
build_stage = df.split("FROM debian:12-slim")[0]
deps = subprocess.run(["bash", "-c", ". tests/lib-deps.sh; echo $ZESTFS_BUILD_DEPS"], cwd=src,
                      capture_output=True, text=True).stdout.split()
check(deps and all(re.search(r"\b" + re.escape(d) + r"\b", build_stage) for d in deps),
      f"Dockerfile: build stage installs every build dep ({len(deps)})")
check("packaging/build-deb.sh" in build_stage, "Dockerfile: builds the .deb")
runtime = df.split("FROM debian:12-slim")[1]
check(re.search(r"apt-get install .*\n?.*zestfs_\*\.deb", runtime) is not None,
      "Dockerfile: runtime installs the .deb (fuse3 comes as its Depends)")
ep = re.search(r"^ENTRYPOINT\s+(\[.*\])", df, re.M)
check(ep and json.loads(ep.group(1))[:2] == ["zestfs", "-f"], "Dockerfile: ENTRYPOINT zestfs -f")
ign = open(os.path.join(src, "packaging/Dockerfile.dockerignore")).read().split()
check("build*/" in ign, "Dockerfile.dockerignore: build dirs left out of the context")

print(f"{len(fails)} failures")
sys.exit(1 if fails else 0)
