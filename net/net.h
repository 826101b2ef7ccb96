/* net.h — HTTP on libcurl multi driven by a libuv loop, and the Hub / Xet
 * CAS / CDN clients the mount needs (issue #4; spec/xet.md §5, hf-cache.md §2).
 *
 * Design
 * ------
 * Threading.  A zn_http (and every zn_hub on top of it) belongs to one
 *   uv_loop_t and must only be touched from the thread running that loop.
 *   All network state (the CURLM, its sockets as uv_poll_t, its timer as
 *   uv_timer_t, token caches) lives there; nothing here takes a lock, so no
 *   lock is ever held across a fetch.  Other threads hand work to the loop
 *   thread themselves (uv_async_t).
 * Callbacks.  Every start function either fails at once (negative errno, no
 *   callback ever) or returns 0 and later calls its completion callback
 *   exactly once, on the loop thread, never from inside the start call.
 *   Streaming data callbacks run on the loop thread, before completion, from
 *   inside libcurl: they must not start, cancel or free anything (return an
 *   error to abort instead).
 * Ownership.  Request parameters (URL, headers, body) are copied at start;
 *   the caller keeps only a destination buffer it passed in alive until
 *   completion.  Response objects passed to callbacks live until the callback
 *   returns.  Results handed over as pointers to free (zn_tree, xet_recon) are
 *   owned by the callback.  A zn_req / zn_op handle is valid until its
 *   completion callback has been entered; cancelling it makes completion
 *   come (asynchronously) with -ECANCELED.
 * Memory.  Bodies stream into a caller callback, into a caller buffer sized
 *   from the Range, or (JSON) into a growing buffer capped by max_body (64 MiB
 *   default, -EFBIG beyond).  Bodies of error answers are kept up to 64 KiB.
 * Errors are negative errno values:
 *   HTTP 400 -EINVAL, 401 -EACCES, 403 -EPERM (CDN: -EKEYEXPIRED), 404/410
 *   -ENOENT, 413 -EFBIG, 416 -ERANGE, 501 -ENOSYS, 408/429/5xx -EAGAIN while
 *   retrying and -EIO once retries are exhausted (a 429: -EUSERS, "the Hub
 *   rate-limited us"), other 4xx -EIO;
 *   transport: timeouts -ETIMEDOUT, refused -ECONNREFUSED, no route / DNS
 *   -EHOSTUNREACH, reset / TLS handshake / HTTP/2 errors -ECONNRESET, body
 *   shorter than announced (or than the Range) -EPROTO, Content-Range not
 *   the requested one -EBADMSG, certificate not verified -EKEYREJECTED,
 *   cancelled -ECANCELED.  Hub answers with X-Error-Code RepoNotFound,
 *   RevisionNotFound or EntryNotFound are -ENOENT whatever the status;
 *   GatedRepo is -EACCES; a 401 "Invalid credentials in Authorization
 *   header" (the Hub token is bad or expired) is -EKEYREVOKED.
 * Retries (zn_retry): an attempt that fails with -EAGAIN, -ETIMEDOUT,
 *   -ECONNREFUSED, -EHOSTUNREACH, -ECONNRESET or -EPROTO is tried again after
 *   base_ms·3^(k−1) (capped at max_delay_ms, or the server's Retry-After or
 *   RateLimit t=),
 *   times a random factor in [0.5, 1), as long as fewer than max_attempts
 *   attempts were made and the next attempt starts before the deadline; each
 *   attempt's timeout (connect included) is cut to the time left, so a
 *   request with a deadline completes within it.  Default: 3 attempts,
 *   500 ms base, 30 s deadline.  A streaming (on_data) request is retried
 *   only while no byte has been handed to the caller.  Redirects are not
 *   attempts.
 * Secrets.  The Hub token is sent only to URLs whose scheme, host and port
 *   are the configured endpoint's; CAS calls carry only the Xet access token;
 *   CDN fetches carry no Authorization; redirects are followed only on the
 *   Hub endpoint's own origin; nothing here logs.  TLS peer and host
 *   verification are always on (custom CA bundle via zn_http_opts.cacert).
 */
#ifndef ZESTFS_NET_H
#define ZESTFS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "xet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- HTTP client -------------------------------------------------------- */

typedef struct zn_http zn_http;
typedef struct zn_req zn_req;
typedef struct zn_resp zn_resp;

typedef struct zn_http_opts {
    const char *cacert;        /* PEM CA bundle; NULL: the system's */
    int max_conns_per_host;    /* 0: 8 */
    const char *user_agent;    /* NULL: "zestfs/<version>" */
    long connect_timeout_ms;   /* 0: 10 s */
    long low_speed_limit;      /* bytes/s below which ... (0: 1024) */
    long low_speed_time_s;     /* ... for this long is -ETIMEDOUT (0: 30) */
    bool no_http2;             /* HTTP/2 (ALPN, over TLS) is used unless set */
} zn_http_opts;

typedef struct zn_retry {
    int max_attempts;          /* total attempts, >= 1; 0: 3 */
    uint32_t base_ms;          /* first backoff; 0: 500 */
    uint32_t max_delay_ms;     /* cap of one backoff; 0: 10000 */
    uint32_t deadline_ms;      /* from the start call; 0: 30000 */
    /* A 429 is waited out (RateLimit t= or Retry-After) for up to this
     * long from the start call, attempts and deadline notwithstanding
     * (background work); 0: only within the deadline (reads). */
    uint32_t ratelimit_wait_ms;
} zn_retry;

/* An inclusive byte range, as in `Range: bytes=start-end`. */
typedef struct zn_range {
    uint64_t start, end;
} zn_range;

/* Return 0 to go on, a negative errno to abort (completion gets it). */
typedef int (*zn_data_cb)(void *ud, const void *data, size_t len);
/* err 0: a complete answer with status 1xx–3xx (1xx/3xx only when not
 * followed); resp is NULL only when no answer came (transport errors). */
typedef void (*zn_done_cb)(void *ud, int err, const zn_resp *resp);

typedef struct zn_http_req {
    const char *method;            /* NULL: "GET"; "HEAD" sends no body */
    const char *url;
    const char *const *headers;    /* NULL-terminated "Name: value" lines */
    const zn_range *ranges;        /* Range header with these, in order */
    size_t nranges;
    bool range_body;               /* the body IS the single range: require
                                      206 with that Content-Range and exactly
                                      end-start+1 bytes */
    const void *body;              /* request body (copied) */
    size_t body_len;
    /* Where a 2xx body goes: on_data, else buf (buf_len bytes at most, more
     * is -EPROTO), else an internal buffer of at most max_body bytes. */
    zn_data_cb on_data;
    void *buf;
    size_t buf_len;
    size_t max_body;               /* 0: 64 MiB */
    bool compressed;               /* Accept-Encoding: gzip, br, zstd (decoded) */
    bool follow_redirects;         /* same-origin only, at most 5 */
    long timeout_ms;               /* per attempt; 0: none (low-speed applies) */
    const zn_retry *retry;         /* NULL: a single attempt */
    bool pausable;                 /* zn_req_pause may hold it: the retry deadline then
                                      bounds retries only (a running attempt ends by
                                      timeout_ms and the low-speed check, which skips
                                      paused time), and time held does not count */
    zn_done_cb done;
    void *ud;
} zn_http_req;

/* Owns a CURLM bound to `loop`.  NULL on failure. */
zn_http *zn_http_new(uv_loop_t *loop, const zn_http_opts *opts);
/* Completes every pending request with -ECANCELED (synchronously), closes
 * connections and handles; the memory goes once the loop has run the close
 * callbacks (keep running it, e.g. uv_run(loop, UV_RUN_DEFAULT)).  May be
 * called from a completion callback. */
void zn_http_free(zn_http *c);
int zn_http_request(zn_http *c, const zn_http_req *r, zn_req **out /* opt */);
void zn_req_cancel(zn_req *q);
/* Hold (pause) or resume receiving a pausable request's answer: the
 * sender is stopped by TCP flow control once buffers fill.  An attempt due
 * while held starts on resume.  Only an HTTP/1.x answer is held; an HTTP/2
 * stream goes on (libcurl 7.88 can stall a connection whose streams are
 * paused), though its held time still does not count against its
 * deadline.  Other requests: no-op. */
void zn_req_pause(zn_req *q, bool pause);

/* Connections the client opened so far (for tests and stats). */
uint64_t zn_http_connections_opened(const zn_http *c);

int zn_resp_status(const zn_resp *r);
/* First header of that name (case-insensitive), value trimmed; NULL if none. */
const char *zn_resp_header(const zn_resp *r, const char *name);
/* Body of a buffered answer, of an error answer (≤ 64 KiB), or the caller's
 * buffer and the bytes written to it; NULL/0 for a streamed one. */
const void *zn_resp_body(const zn_resp *r, size_t *len);
/* Attempts made (1 without retries). */
int zn_resp_attempts(const zn_resp *r);

/* Status to errno as above (-EAGAIN for retryable ones); 0 for 1xx–3xx. */
int zn_http_errno(long status);
bool zn_err_retryable(int err);

/* Byte range of a presigned CDN URL into buf (end-start+1 bytes).  No
 * Authorization header.  Pausable (zn_req_pause).  done(ud, err, resp): 0 only when exactly that many
 * bytes arrived as the 206 of that range; -EKEYEXPIRED on 403 (the URL
 * expired or the range is not the signed one: ask the CAS again). */
int zn_cdn_fetch(zn_http *c, const char *url, uint64_t byte_start, uint64_t byte_end, void *buf,
                 const zn_retry *retry, zn_done_cb done, void *ud, zn_req **out /* opt */);

/* ---- Hub and CAS -------------------------------------------------------- */

typedef struct zn_hub zn_hub;
typedef struct zn_op zn_op;

/* Same values as fs/repo.h's zf_repo_type. */
typedef enum zn_repo_type { ZN_MODEL = 0, ZN_DATASET = 1, ZN_SPACE = 2 } zn_repo_type;

typedef struct zn_hub_opts {
    const char *endpoint;          /* NULL: $HF_ENDPOINT, else https://huggingface.co */
    const char *token;             /* Hub token; NULL: anonymous */
    zn_retry retry;                /* zeros: defaults */
    int token_margin_s;            /* refresh Xet tokens this early; 0: 30 */
    long timeout_ms;               /* per Hub/CAS API attempt; 0: 30 s */
} zn_hub_opts;

/* The hub keeps a pointer to http (which must outlive it). */
zn_hub *zn_hub_new(zn_http *http, const zn_hub_opts *opts);
/* Pending operations complete with -ECANCELED from the loop; the memory goes
 * after the last one (keep running the loop; the zn_http must outlive it).
 * May be called from a completion callback. */
void zn_hub_free(zn_hub *h);
const char *zn_hub_endpoint(const zn_hub *h);
bool zn_hub_has_token(const zn_hub *h); /* a Hub token is sent */
void zn_op_cancel(zn_op *op);

/* GET /api/{type}s/{repo}/revision/{rev}: the commit and lastModified.
 * Listing calls (revision, tree) are background work: a 429 is waited out
 * for up to an hour whatever the hub's retry policy; tree pages also get 6
 * attempts and 120 s each (very large repos, 504s). */
typedef struct zn_revision {
    char sha[41];
    int64_t last_modified;         /* Unix seconds; 0 if absent */
    char id[256];                  /* the canonical repo id (`id`; a renamed
                                    * repo answers with its new name); "" if absent */
    bool gated;                    /* `gated` is "auto" / "manual" */
} zn_revision;
typedef void (*zn_revision_cb)(void *ud, int err, const zn_revision *rev);
int zn_hub_revision(zn_hub *h, zn_repo_type type, const char *repo, const char *rev,
                    zn_revision_cb cb, void *ud, zn_op **out);

/* Recursive tree listing (all pages, Link rel="next"). */
typedef struct zn_tree_entry {
    char *path;
    bool is_dir;
    uint64_t size;
    char oid[41];                  /* git blob / tree sha1 */
    char lfs_sha256[65];           /* "" when not LFS */
    char xet_hash[65];             /* "" when not in Xet */
    bool xet_redacted;             /* xetHash given but not hex (a gated repo
                                    * hides it: ask HEAD resolve, X-Xet-Hash) */
} zn_tree_entry;
typedef struct zn_tree {
    size_t n;
    zn_tree_entry *e;              /* in listing order */
    unsigned pages;
    size_t redacted;               /* entries with xet_redacted */
} zn_tree;
typedef void (*zn_tree_cb)(void *ud, int err, zn_tree *tree /* yours; NULL on error */);
int zn_hub_tree(zn_hub *h, zn_repo_type type, const char *repo, const char *rev, zn_tree_cb cb,
                void *ud, zn_op **out);
void zn_tree_free(zn_tree *t);

/* HEAD {endpoint}/{prefix}{repo}/resolve/{rev}/{path} without following the
 * CDN redirect (hf-cache.md §2.1 step 4–5).  On -ENOENT, info->commit is
 * set when the Hub said which commit lacks the file (.no_exist). */
typedef struct zn_resolve_info {
    int status;
    char commit[41];               /* X-Repo-Commit */
    char etag[65];                 /* X-Linked-Etag or ETag, unquoted */
    uint64_t size;                 /* X-Linked-Size or Content-Length */
    bool has_size;
    char xet_hash[65];             /* X-Xet-Hash, "" if none */
    char error_code[32];           /* X-Error-Code, "" if none */
} zn_resolve_info;
typedef void (*zn_resolve_cb)(void *ud, int err, const zn_resolve_info *info);
int zn_hub_resolve(zn_hub *h, zn_repo_type type, const char *repo, const char *rev,
                   const char *path, zn_resolve_cb cb, void *ud, zn_op **out);

/* Xet read token for repo@rev, cached and shared by concurrent callers;
 * fetched again `token_margin_s` before exp, or when `refresh` is set. */
typedef struct zn_xet_token {
    const char *access_token;
    const char *cas_url;           /* without trailing '/' */
    int64_t exp;                   /* Unix seconds */
} zn_xet_token;
typedef void (*zn_token_cb)(void *ud, int err, const zn_xet_token *tok);
int zn_hub_xet_token(zn_hub *h, zn_repo_type type, const char *repo, const char *rev,
                     bool refresh, zn_token_cb cb, void *ud, zn_op **out);
/* Put a Xet read token for repo@rev (fetched elsewhere, e.g. by another hub
 * at startup) in the cache as if fetched: callers get it without a request
 * until it enters the refresh margin.  0; -ESTALE when it is already inside
 * the margin (not kept); -EEXIST when a fresh one is cached or a fetch is in
 * flight; -EINVAL for a token the Hub's answer would not be accepted with. */
int zn_hub_xet_token_seed(zn_hub *h, zn_repo_type type, const char *repo, const char *rev,
                          const zn_xet_token *tok);

/* Reconstruction of Xet file `file_id` (64-hex string form), whole
 * (range NULL) or of the inclusive byte range: token (cached; refreshed and
 * the call repeated on 401), GET {casUrl}/v2/reconstructions/{id} with
 * Range, falling back to /v1/ on 404/501, retried per the hub's policy,
 * parsed with xet_recon_parse (r->base set).  -ERANGE when the range starts
 * at or after the end of the file.  Free the result with zn_recon_free. */
typedef void (*zn_recon_cb)(void *ud, int err, xet_recon *r /* yours; NULL on error */);
int zn_cas_reconstruction(zn_hub *h, zn_repo_type type, const char *repo, const char *rev,
                          const char *file_id, const zn_range *range, zn_recon_cb cb, void *ud,
                          zn_op **out);
void zn_recon_free(xet_recon *r);

/* GET /api/{type}s/{repo} asked WITHOUT the Hub token, whatever token the
 * hub holds: what the Hub tells anyone about the repo (spec/hub-real.md,
 * "Repo visibility").  On a 200 with a JSON object: err 0 and the fields as
 * found; any other answer: its errno (X-Error-Code mapped: RepoNotFound
 * -ENOENT, GatedRepo -EACCES; 401 -EACCES or -EPERM as zn_http_errno). */
typedef struct zn_repo_info {
    bool has_private;              /* "private" was a boolean */
    bool private_;
    bool has_gated;                /* "gated" was false or a string */
    bool gated;                    /* anything but false */
    char gated_mode[16];           /* "auto", "manual", ... ("" when not gated) */
} zn_repo_info;
typedef void (*zn_repo_info_cb)(void *ud, int err, const zn_repo_info *info);
int zn_hub_repo_info_anon(zn_hub *h, zn_repo_type type, const char *repo, zn_repo_info_cb cb,
                          void *ud, zn_op **out);

#ifdef __cplusplus
}
#endif
#endif
