#!/usr/bin/env python3
"""test_shard_dump.py ZESTFS — `zestfs xet shard-dump SHARD` (README: "print a
shard's files and xorbs") against the shard @huggingface/hub wrote in
tests/vectors (shard-upload-0.bin; its fields, as parsed independently, are
in upload.json "shard0"):
  * exit 0; the header line gives the size, 4 files, 1 xorb, the creation
    time and key expiry of the footer;
  * every file: its Xet hash, size, flags, sha256 and every term (xorb,
    chunk range, bytes, range hash) equal to shard0's file_info;
  * the xorb: hash, chunk count, bytes, bytes on disk, flags, and every
    chunk's hash, offset and length equal to shard0's xorb_info;
  * a truncated shard, one with its header tag or footer version altered,
    an empty file and a missing file: non-zero exit, a message on stderr, nothing printed as if
    it were a shard, no sanitizer report.
Exit 0 pass, 1 fail."""
import json, os, re, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = os.path.join(HERE, "..", "vectors")
fails = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        fails.append(what)
    return cond


def dump(zestfs, path):
    return subprocess.run([zestfs, "xet", "shard-dump", path], capture_output=True, text=True, timeout=60)


def main():
    zestfs = os.path.abspath(sys.argv[1])
    shard = os.path.join(VEC, "shard-upload-0.bin")
    want = json.load(open(os.path.join(VEC, "upload.json")))["shard0"]
    raw = open(shard, "rb").read()
    r = dump(zestfs, shard)
    check(r.returncode == 0 and not r.stderr, f"shard-dump exits 0, nothing on stderr ({r.returncode}) {r.stderr[-300:]}")
    lines = r.stdout.splitlines()
    ft = want["footer"]
    check(bool(lines) and lines[0] == f"shard {len(raw)} bytes, {len(want['file_info'])} files, "
          f"{len(want['xorb_info'])} xorbs, created {ft['creation_timestamp']}, key_expiry {ft['key_expiry']}",
          f"header line: {lines[0] if lines else ''}")

    # parse the dump: file / sha256 / term, xorb / chunk lines
    files, xorbs, cur = [], [], None
    for ln in lines[1:]:
        if m := re.fullmatch(r"file ([0-9a-f]{64}) size (\d+) flags (0x[0-9a-f]+) terms (\d+)", ln):
            cur = {"hash": m[1], "size": int(m[2]), "flags": m[3], "nterms": int(m[4]), "terms": []}
            files.append(cur)
        elif m := re.fullmatch(r"  sha256 ([0-9a-f]{64})", ln):
            cur["sha256"] = m[1]
        elif m := re.fullmatch(r"  term (\d+) xorb ([0-9a-f]{64}) chunks \[(\d+),(\d+)\) bytes (\d+) verification ([0-9a-f]{64})", ln):
            cur["terms"].append({"xorb_hash": m[2], "chunk_start": int(m[3]), "chunk_end": int(m[4]),
                                 "unpacked_bytes": int(m[5]), "range_hash": m[6]})
        elif m := re.fullmatch(r"xorb ([0-9a-f]{64}) chunks (\d+) bytes (\d+) on_disk (\d+) flags (0x[0-9a-f]+)", ln):
            cur = {"hash": m[1], "n": int(m[2]), "bytes": int(m[3]), "disk": int(m[4]), "flags": int(m[5], 16), "chunks": []}
            xorbs.append(cur)
        elif m := re.fullmatch(r"  chunk (\d+) ([0-9a-f]{64}) offset (\d+) len (\d+)", ln):
            cur["chunks"].append((m[2], int(m[3]), int(m[4])))
        else:
            check(False, f"an unexpected line: {ln!r}")
    check(len(files) == len(want["file_info"]), f"{len(files)} files listed")
    for f, w in zip(files, want["file_info"]):
        wt = [{k: t[k] for k in ("xorb_hash", "chunk_start", "chunk_end", "unpacked_bytes", "range_hash")}
              for t in w["terms"]]
        check(f["hash"] == w["file_hash"] and f["flags"] == w["flags"] and f["nterms"] == len(wt)
              and f["terms"] == wt and f.get("sha256") == w["sha256_field_as_hash_string"]
              and f["size"] == sum(t["unpacked_bytes"] for t in wt),
              f"file {w['file_hash'][:12]}: hash, size, flags, sha256 and {len(wt)} terms as parsed by the Hub's client")
    check(len(xorbs) == len(want["xorb_info"]), f"{len(xorbs)} xorbs listed")
    for x, w in zip(xorbs, want["xorb_info"]):
        wc = [(c["chunk_hash"], c["chunk_byte_range_start"], c["unpacked_segment_bytes"]) for c in w["chunks"]]
        check(x["hash"] == w["xorb_hash"] and x["n"] == w["num_chunks"] and x["bytes"] == w["num_bytes_in_xorb"]
              and x["disk"] == w["num_bytes_on_disk"] and x["flags"] == w["flags"] and x["chunks"] == wc,
              f"xorb {w['xorb_hash'][:12]}: {w['num_chunks']} chunks, hashes, offsets and lengths equal")

    # damaged input
    with tempfile.TemporaryDirectory(prefix="zestfs-shard-") as d:
        def flip(off):
            return raw[:off] + bytes([raw[off] ^ 0xFF]) + raw[off + 1:]
        fo = len(raw) - want["header"]["footer_size"]
        cases = {"truncated": raw[: len(raw) - 100], "header tag flipped": flip(0),
                 "footer version flipped": flip(fo), "empty": b""}
        for what, b in cases.items():
            p = os.path.join(d, "s.bin")
            open(p, "wb").write(b)
            r = dump(zestfs, p)
            check(r.returncode not in (0, -11, -6) and r.returncode > 0 and r.stderr.strip()
                  and not r.stdout.startswith("shard ") and "Sanitizer" not in r.stderr
                  and "runtime error" not in r.stderr,
                  f"{what}: refused (exit {r.returncode}: {r.stderr.strip()[:120]})")
        r = dump(zestfs, os.path.join(d, "nonexistent"))
        check(r.returncode > 0 and r.stderr.strip(), f"missing file: exit {r.returncode}, a message")
    print(f"{len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
