#!/usr/bin/env python3
"""zestfs-origin playing the real Hub (spec/hub-real.md, issue 18 item 7):
each knob's answers on the wire, set by flag and through /_origin/knobs.

  gated       repo info 200 gated "manual" anonymously; tree and paths-info
              list every file with xetHash redacted to 64 '*' without access
              (and for everyone with gated_redact_all); resolve, the bridge
              and xet-read-token 401 anonymous / 403 logged in, X-Error-Code
              GatedRepo, X-Error-Message naming the access page; with an
              access token: real hashes, HEAD resolve with X-Xet-Hash, a token
  aliases     307, relative Location to the canonical path (query kept),
              text/plain "Temporary Redirect. Redirecting to …", on repo
              info, revision, tree, paths-info, xet-read-token and resolve,
              one- and two-segment old names; the revision JSON's id is the
              canonical name
  429         RateLimit "api";r=0;t=<s> and RateLimit-Policy "fixed
              window";"api";q=<n>;w=300 for N seconds, per route class
  revoked     401 X-Error-Message "Invalid credentials in Authorization header"
  tree pages  tree_fail_next answers 504 (or tree_fail_status) then recovers;
              tree_latency_ms delays tree pages only

usage: test_hubreal.py [path/to/zestfs-origin]
"""
import json
import os
import shutil
import tempfile
import time

from origin_util import Checker, Origin, find_exe, ingest, main_wrapper, make_model_dir

STARS = "*" * 64
TOK = "hf_granted"
OTHER = "hf_not_granted"


def auth(t):
    return {"Authorization": "Bearer " + t} if t else {}


def main():
    exe = find_exe()
    c = Checker("origin-hubreal")
    tmp = tempfile.mkdtemp(prefix="zo-hubreal-")
    try:
        data = os.path.join(tmp, "data")
        src = os.path.join(tmp, "src")
        make_model_dir(src)
        gcommit = ingest(exe, data, "org/gated", src)
        ncommit = ingest(exe, data, "new-org/new-name", src)
        with Origin(exe, data, ["--gated", f"org/gated={TOK}", "--alias", "gpt2=new-org/new-name",
                                "--alias", "old-org/old=new-org/new-name"]) as o:
            # ---- gated ----
            st, h, j = o.json("GET", "/api/models/org/gated")
            c.eq((st, j and j.get("gated")), (200, "manual"), "gated repo info, anonymous")
            st, h, j = o.json("GET", "/api/models/org/gated/revision/main", auth(OTHER))
            c.eq((st, j and j.get("gated"), j and j.get("sha")), (200, "manual", gcommit),
                 "gated revision, logged in without access")
            st, h, j = o.json("GET", "/api/models/new-org/new-name")
            c.eq(j.get("gated"), False, "not gated: gated false")
            for who in (None, OTHER):
                st, h, j = o.json("GET", "/api/models/org/gated/tree/main?recursive=true", auth(who))
                xs = [e["xetHash"] for e in j if "xetHash" in e]
                c.ok(st == 200 and xs and all(x == STARS for x in xs),
                     f"tree redacted for {who or 'anonymous'}: {xs}")
                c.ok({e["path"] for e in j if e["type"] == "file"} >= {"config.json", "model.safetensors"},
                     "redacted tree still lists the files")
                st, h, j = o.json("POST", "/api/models/org/gated/paths-info/main",
                                  {"Content-Type": "application/json", **auth(who)},
                                  json.dumps({"paths": ["model.safetensors"]}))
                c.eq((st, j[0].get("xetHash")), (200, STARS), f"paths-info redacted for {who or 'anonymous'}")
            st, h, j = o.json("GET", "/api/models/org/gated/tree/main?recursive=true", auth(TOK))
            xs = [e["xetHash"] for e in j if "xetHash" in e]
            c.ok(xs and all(len(x) == 64 and x != STARS for x in xs), "tree not redacted with access")
            real = dict((e["path"], e["xetHash"]) for e in j if "xetHash" in e)["model.safetensors"]
            page = f"{o.url}/org/gated"
            for path in ("/org/gated/resolve/main/model.safetensors", "/org/gated/resolve/main/config.json",
                         "/api/models/org/gated/xet-read-token/main",
                         f"/_bridge/model/org/gated/{gcommit}/model.safetensors"):
                for who, want in ((None, 401), (OTHER, 403)):
                    m = "GET" if "token" in path else "HEAD"
                    st, h, _ = o.req(m, path, auth(who))
                    c.eq((st, h.get("x-error-code")), (want, "GatedRepo"), f"{m} {path} as {who or 'anonymous'}")
                    c.ok(page in h.get("x-error-message", ""), f"{path}: the message names {page}: "
                         f"{h.get('x-error-message')!r}")
            st, h, _ = o.req("HEAD", "/org/gated/resolve/main/model.safetensors", auth(TOK))
            c.eq((st, h.get("x-xet-hash")), (302, real), "HEAD resolve with access: X-Xet-Hash")
            st, h, j = o.json("GET", "/api/models/org/gated/xet-read-token/main", auth(TOK))
            c.ok(st == 200 and j.get("accessToken"), "xet-read-token with access")
            o.knobs(gated_redact_all=1)
            st, h, j = o.json("GET", "/api/models/org/gated/tree/main?recursive=true", auth(TOK))
            c.ok(all(e["xetHash"] == STARS for e in j if "xetHash" in e), "gated_redact_all: redacted with access")
            st, h, _ = o.req("HEAD", "/org/gated/resolve/main/model.safetensors", auth(TOK))
            c.eq(h.get("x-xet-hash"), real, "gated_redact_all: HEAD resolve still tells the hash")
            o.knobs(gated_redact_all=0, gated={})
            st, h, j = o.json("GET", "/api/models/org/gated")
            c.eq(j.get("gated"), False, "knob gated={} clears the gate")
            o.knobs(gated={"org/gated": []})
            st, h, _ = o.req("HEAD", "/org/gated/resolve/main/config.json", auth(TOK))
            c.eq(st, 403, "knob gated with an empty access list: the token no longer has access")
            o.knobs(gated={})

            # ---- aliases ----
            cases = [
                ("GET", "/api/models/gpt2", "/api/models/new-org/new-name"),
                ("GET", "/api/models/old-org/old/revision/main", "/api/models/new-org/new-name/revision/main"),
                ("GET", "/api/models/old-org/old/tree/main?recursive=true&expand=false",
                 "/api/models/new-org/new-name/tree/main?recursive=true&expand=false"),
                ("GET", "/api/models/gpt2/xet-read-token/main", "/api/models/new-org/new-name/xet-read-token/main"),
                ("POST", "/api/models/old-org/old/paths-info/main", "/api/models/new-org/new-name/paths-info/main"),
                ("HEAD", "/gpt2/resolve/main/config.json", "/new-org/new-name/resolve/main/config.json"),
                ("HEAD", "/old-org/old/resolve/refs%2Fpr%2F1/sub/dir/notes.txt",
                 "/new-org/new-name/resolve/refs%2Fpr%2F1/sub/dir/notes.txt"),
            ]
            for m, path, loc in cases:
                st, h, b = o.req(m, path, body=b"" if m == "POST" else None)
                c.eq((st, h.get("location"), h.get("content-type", "").split(";")[0]),
                     (307, loc, "text/plain"), f"{m} {path}")
                if m != "HEAD":
                    c.eq(b.decode(), f"Temporary Redirect. Redirecting to {loc}", f"{path}: body")
            st, h, j = o.json("GET", "/api/models/new-org/new-name/revision/main")
            c.eq((j.get("id"), j.get("sha")), ("new-org/new-name", ncommit), "revision JSON id = canonical name")
            o.knobs(aliases={})
            c.eq(o.req("GET", "/api/models/gpt2")[0], 404, "knob aliases={} clears them")
            o.knobs(aliases={"older": "new-org/new-name"})
            st, h, _ = o.req("GET", "/api/models/older")
            c.eq((st, h.get("location")), (307, "/api/models/new-org/new-name"), "alias set by knob")

            # ---- 429 per route class ----
            o.knobs(rate_limit_tree_s=3, rate_limit_q=2500)
            st, h, _ = o.req("GET", "/api/models/new-org/new-name/tree/main")
            c.eq(st, 429, "tree rate-limited")
            c.eq(h.get("ratelimit"), '"api";r=0;t=3', "RateLimit header")
            c.eq(h.get("ratelimit-policy"), '"fixed window";"api";q=2500;w=300', "RateLimit-Policy header")
            c.eq(o.req("GET", "/api/models/new-org/new-name")[0], 200, "repo info not in the tree class")
            c.eq(o.req("HEAD", "/new-org/new-name/resolve/main/config.json")[0], 200, "resolve not in the tree class")
            time.sleep(3.2)
            c.eq(o.req("GET", "/api/models/new-org/new-name/tree/main")[0], 200, "tree again after 3 s")
            o.knobs(rate_limit_s=5)
            st, h, _ = o.req("GET", "/api/models/new-org/new-name")
            c.ok(st == 429 and h.get("ratelimit", "").startswith('"api";r=0;t='), "api class: repo info 429")
            c.eq(o.req("HEAD", "/new-org/new-name/resolve/main/config.json")[0], 200, "resolve outside the api class")
            o.knobs(rate_limit_s=0, rate_limit_resolve_s=5)
            c.eq(o.req("HEAD", "/new-org/new-name/resolve/main/config.json")[0], 429, "resolve class 429")
            c.eq(o.req("GET", "/api/models/new-org/new-name")[0], 200, "api outside the resolve class")
            o.knobs(rate_limit_resolve_s=0)

            # ---- revoked token ----
            o.knobs(revoked_tokens=["hf_revoked"])
            st, h, _ = o.req("GET", "/api/models/new-org/new-name", auth("hf_revoked"))
            c.eq((st, h.get("x-error-message")), (401, "Invalid credentials in Authorization header"),
                 "revoked token: 401 with the Hub's message")
            c.ok("x-error-code" not in h, "revoked token: no X-Error-Code (not RepoNotFound)")
            c.eq(o.req("GET", "/api/models/new-org/new-name", auth("hf_fine"))[0], 200, "other tokens fine")
            o.knobs(revoked_tokens=[])

            # ---- tree pages ----
            o.knobs(tree_fail_next=2, tree_fail_status=500)
            sts = [o.req("GET", "/api/models/new-org/new-name/tree/main")[0] for _ in range(3)]
            c.eq(sts, [500, 500, 200], "tree_fail_next=2 (500)")
            o.knobs(tree_fail_next=1, tree_fail_status=504)
            c.eq(o.req("GET", "/api/models/new-org/new-name/tree/main")[0], 504, "tree 504")
            c.eq(o.req("GET", "/api/models/new-org/new-name")[0], 200, "repo info unaffected")
            o.knobs(tree_latency_ms=400)
            t0 = time.time()
            o.req("GET", "/api/models/new-org/new-name/tree/main")
            c.ok(time.time() - t0 >= 0.39, "tree_latency_ms slows tree pages")
            o.knobs(tree_latency_ms=0)
            st, h, k = o.json("GET", "/_origin/knobs")
            c.ok("gated" in k and "aliases" in k and "rate_limit_tree_s" in k and "hf_revoked" not in json.dumps(k),
                 "knobs listed (tokens not shown)")

        # ---- by flag ----
        with Origin(exe, data, ["--rate-limit-tree-s", "30", "--revoked-token", "hf_x", "--tree-fail-next", "1",
                                "--gated", "org/gated"]) as o:
            st, h, _ = o.req("GET", "/api/models/org/gated/tree/main")
            c.ok(st == 429 and h.get("ratelimit", "").startswith('"api";r=0;t='), "--rate-limit-tree-s flag")
            c.eq(o.req("GET", "/api/models/org/gated", auth("hf_x"))[0], 401, "--revoked-token flag")
            st, h, j = o.json("GET", "/api/models/org/gated")
            c.eq(j.get("gated"), "manual", "--gated flag without tokens")
            o.knobs(rate_limit_tree_s=0)
            c.eq(o.req("GET", "/api/models/org/gated/tree/main")[0], 504, "--tree-fail-next flag")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    main_wrapper(main)
