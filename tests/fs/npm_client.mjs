// npm_client.mjs — drives @huggingface/hub (tests/interop/node_modules) for
// test_npm_client.py: one operation per run, its arguments as one JSON
// object in argv[2], its result as one JSON line on stdout.
//
//   {"op":"snapshot", "repo", "hubUrl", "cacheDir", "revision"?}
//       snapshotDownload -> {"path": ...}
//   {"op":"files", "repo", "hubUrl", "cacheDir", "revision"?, "paths":[...]}
//       downloadFileToCacheDir for each path -> {"paths": {path: returned}}
//   {"op":"scan", "cacheDir"}
//       scanCacheDir -> repos, revisions, refs, files, warnings
//   {"op":"inspect", "paths": {name: path}}
//       lstat / readlink / realpath / sha256 of the bytes read through each path
//
// Every result also carries "requests" (each request the client made, through
// the library's own `fetch` option: "METHOD URL"), "downloads" (the library's
// "Downloading X to Y" messages: it only prints them when it fetches a file's
// bytes) and "copies" (its "Symlink not supported. Copying ..." fallback).
// Exit 77 when the library is not installed.
import { createHash } from "node:crypto";
import fs from "node:fs";
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

const requests = [], downloads = [], copies = [];
for (const level of ["debug", "info", "log", "warn"]) {
	const orig = console[level].bind(console);
	console[level] = (...a) => {
		const s = a.map(String).join(" ");
		if (s.startsWith("Downloading ")) downloads.push(s);
		else if (s.startsWith("Symlink not supported")) copies.push(s);
		else process.stderr.write(`[${level}] ${s}\n`);
		void orig;
	};
}
const recFetch = (url, init) => {
	requests.push(`${(init && init.method) || "GET"} ${typeof url === "string" ? url : url.url ?? String(url)}`);
	return fetch(url, init);
};

const sha256File = (p) => {
	const h = createHash("sha256");
	const fd = fs.openSync(p, "r");
	try {
		const buf = Buffer.alloc(1 << 20);
		let n;
		while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
	} finally {
		fs.closeSync(fd);
	}
	return h.digest("hex");
};

const a = JSON.parse(process.argv[2]);
const common = { repo: a.repo, hubUrl: a.hubUrl, cacheDir: a.cacheDir, fetch: recFetch, ...(a.revision ? { revision: a.revision } : {}) };
const out = {};
try {
	if (a.op === "snapshot") {
		out.path = await hub.snapshotDownload(common);
	} else if (a.op === "files") {
		out.paths = {};
		for (const p of a.paths) out.paths[p] = await hub.downloadFileToCacheDir({ ...common, path: p });
	} else if (a.op === "scan") {
		const info = await hub.scanCacheDir(a.cacheDir);
		out.size = info.size;
		out.warnings = info.warnings.map((w) => String(w && w.message ? w.message : w));
		out.repos = info.repos.map((r) => ({
			id: `${r.id.type}:${r.id.name}`, size: r.size, filesCount: r.filesCount,
			revisions: r.revisions.map((v) => ({
				commit: v.commitOid, refs: v.refs, size: v.size,
				files: v.files.map((f) => ({ path: f.path, size: f.blob.size, blob: f.blob.path })),
			})),
		}));
	} else if (a.op === "inspect") {
		out.files = {};
		for (const [k, p] of Object.entries(a.paths)) {
			const l = fs.lstatSync(p);
			out.files[k] = {
				symlink: l.isSymbolicLink(),
				link: l.isSymbolicLink() ? fs.readlinkSync(p) : null,
				real: fs.realpathSync(p),
				size: fs.statSync(p).size,
				sha256: sha256File(p),
			};
		}
	} else {
		throw new Error(`unknown op ${a.op}`);
	}
} catch (e) {
	out.error = String(e && e.stack ? e.stack : e);
}
out.requests = requests;
out.downloads = downloads;
out.copies = copies;
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.error ? 1 : 0);
