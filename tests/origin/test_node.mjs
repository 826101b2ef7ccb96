// @huggingface/hub (npm, tests/interop/node_modules) against zestfs-origin:
// downloadFile with hubUrl = the origin, over its Xet path (XetBlob: resolve
// GET with the xet-fileinfo Accept, token, v2 reconstructions, signed xorb
// ranges), whole files and slices, byte-exact; a private repo with an hf_
// token; the origin's xorb egress counter proves Xet was used.
//
// usage: node test_node.mjs path/to/zestfs-origin     (exit 77 = SKIP)
import { spawn, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const hubDir = process.env.ZESTFS_HUB_JS || path.join(root, "tests", "interop", "node_modules", "@huggingface", "hub");
const hubEntry = path.join(hubDir, "dist", "index.mjs");
if (!fs.existsSync(hubEntry)) {
	console.log(`SKIP: ${hubEntry} not installed (run tests/interop/setup.sh)`);
	process.exit(77);
}
const hub = await import(pathToFileURL(hubEntry).href);
const exe = path.resolve(process.argv[2] || path.join(root, "build-origin", "origin", "zestfs-origin"));

let passed = 0, failed = 0;
function ok(cond, what) {
	if (cond) passed++;
	else { failed++; console.log(`FAIL: ${what}`); }
}
const sha = (b) => createHash("sha256").update(b).digest("hex");

// deterministic pseudo-random bytes
function prng(seed, n) {
	const out = Buffer.alloc(n);
	let x = BigInt(seed) | 1n;
	for (let i = 0; i < n; i += 8) {
		x ^= x << 13n; x &= 0xffffffffffffffffn;
		x ^= x >> 7n;
		x ^= x << 17n; x &= 0xffffffffffffffffn;
		const b = Buffer.alloc(8);
		b.writeBigUInt64LE(x);
		b.copy(out, i, 0, Math.min(8, n - i));
	}
	return out;
}

async function startOrigin(data, args = []) {
	const pf = path.join(data, "..", `port-${Date.now()}-${Math.random()}`);
	const p = spawn(exe, ["serve", data, "--listen", "127.0.0.1:0", "--port-file", pf, "-q", ...args], { stdio: "inherit" });
	for (let i = 0; i < 500; i++) {
		if (fs.existsSync(pf)) {
			const t = fs.readFileSync(pf, "utf8").trim();
			if (t) return { p, url: `http://127.0.0.1:${t}`, stop: () => new Promise((r) => { p.on("exit", r); p.kill("SIGTERM"); }) };
		}
		await new Promise((r) => setTimeout(r, 20));
	}
	p.kill("SIGKILL");
	throw new Error("origin did not start");
}

const stats = async (url) => (await fetch(url + "/_origin/stats")).json();
const resetStats = (url) => fetch(url + "/_origin/stats/reset", { method: "POST" });

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "zo-node-"));
const timer = setTimeout(() => { console.log("FAIL: timeout"); process.exit(1); }, 240000);
try {
	const data = path.join(tmp, "data");
	const src = path.join(tmp, "src");
	fs.mkdirSync(path.join(src, "sub"), { recursive: true });
	const files = {
		"model.safetensors": prng(5, 4_000_000),
		"weights.bin": prng(6, 300_000),
		"config.json": Buffer.from(JSON.stringify({ model_type: "tiny" })),
		"sub/notes.txt": Buffer.from("nested\n"),
	};
	for (const [p, b] of Object.entries(files)) fs.writeFileSync(path.join(src, p), b);
	execFileSync(exe, ["ingest", data, "org/tiny", "-q", src]);
	execFileSync(exe, ["ingest", data, "org/secret", "--private", "-q", src]);

	let o = await startOrigin(data);
	try {
		for (const [p, b] of Object.entries(files)) {
			await resetStats(o.url);
			const blob = await hub.downloadFile({ repo: "org/tiny", path: p, hubUrl: o.url });
			ok(blob !== null, `${p}: downloadFile returned a blob`);
			const got = Buffer.from(await blob.arrayBuffer());
			ok(sha(got) === sha(b), `${p}: full download byte-exact`);
			const xet = p.endsWith(".bin") || p.endsWith(".safetensors");
			const s = await stats(o.url);
			if (xet) ok(s.xorb_bytes_total >= b.length * 0.9, `${p}: downloaded over Xet (xorb egress ${s.xorb_bytes_total})`);
			else ok(s.xorb_bytes_total === 0, `${p}: regular file not over Xet`);
			// slices
			const cuts = [[0, 1], [1000, 70000], [b.length - 17, b.length], [Math.floor(b.length / 3), Math.floor(b.length / 3) + 200000]];
			for (const [s0, e0] of cuts) {
				if (s0 < 0 || e0 > b.length || s0 >= e0) continue;
				await resetStats(o.url);
				const part = Buffer.from(await blob.slice(s0, e0).arrayBuffer());
				ok(part.equals(b.subarray(s0, e0)), `${p}: slice ${s0}-${e0} byte-exact`);
				if (xet && e0 - s0 < 300000 && b.length > 1_000_000) {
					const st = await stats(o.url);
					ok(st.xorb_bytes_total > 0 && st.xorb_bytes_total < b.length / 2,
						`${p}: slice ${s0}-${e0} fetched only part of the xorbs (${st.xorb_bytes_total})`);
				}
			}
		}
		const missing = await hub.downloadFile({ repo: "org/tiny", path: "nope.bin", hubUrl: o.url });
		ok(missing === null, "missing file -> null");
		// paths-info + snapshot to a cache dir (JS writer of the HF cache layout)
		const cache = path.join(tmp, "cache");
		const snap = await hub.snapshotDownload({ repo: "org/tiny", hubUrl: o.url, cacheDir: cache });
		for (const [p, b] of Object.entries(files)) {
			const fp = path.join(snap, p);
			ok(fs.existsSync(fp) && sha(fs.readFileSync(fp)) === sha(b), `snapshotDownload ${p} byte-exact`);
		}
		ok(fs.readFileSync(path.join(cache, "models--org--tiny", "refs", "main"), "utf8").length === 40, "JS snapshot refs/main");
	} finally {
		await o.stop();
	}

	o = await startOrigin(data, ["--token", "hf_nodetesttoken"]);
	try {
		let err = null;
		try {
			await hub.downloadFile({ repo: "org/secret", path: "weights.bin", hubUrl: o.url });
		} catch (e) { err = e; }
		ok(err !== null, "private repo without token refused");
		await resetStats(o.url);
		const blob = await hub.downloadFile({ repo: "org/secret", path: "model.safetensors", hubUrl: o.url, accessToken: "hf_nodetesttoken" });
		const got = Buffer.from(await blob.arrayBuffer());
		ok(sha(got) === sha(files["model.safetensors"]), "private repo with token byte-exact");
		ok((await stats(o.url)).xorb_bytes_total > 0, "private download over Xet");
	} finally {
		await o.stop();
	}
} catch (e) {
	failed++;
	console.log("FAIL: exception", e);
} finally {
	clearTimeout(timer);
	fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(`origin-node: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
