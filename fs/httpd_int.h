/* httpd_int.h — internals of the HTTP access server shared by its files:
 * httpd.c (the router, the MHD thread, the listener), httpd_answer.c
 * (requests and their answers on the loop), httpd_metrics.c (/metrics),
 * httpd_proxy.c (proxy-xet's routes).  The design (threads, locking,
 * ranges, security) is in httpd.c's header. */
#ifndef ZESTFS_FS_HTTPD_INT_H
#define ZESTFS_FS_HTTPD_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "net.h"
#include "httpd.h"
#include "zfs.h"

#define PIECE (2u << 20)  /* bytes per zf_read_async */
#define NSLOTS 2          /* pieces per connection */
#define MAX_CONNS 512
#define PER_IP_CONNS 64   /* connections per client address */
#define HDR_MS 10000      /* a request (headers and body) must be in within this */
#define IDLE_S 60         /* an answer that makes no progress for this is dropped */
#define MAX_HOSTS 16      /* --http-host names */
#define VERDICTS 64       /* Hub verdicts on callers' tokens kept (proxy routes) */
#define VERDICT_MS 60000  /* ... for this long */

#ifndef ZESTFS_VERSION
#define ZESTFS_VERSION "unknown"
#endif

/* one accepted connection (MHD's socket context) */
typedef struct hconn {
    struct hconn *prev, *next;
    int fd;             /* dup of its socket: shutdown() drops the connection */
    uint64_t deadline;  /* ms (uv_hrtime) by which the request must be in; 0 none */
} hconn;

typedef struct hreq hreq;

enum { PH_NEW, PH_RESOLVING, PH_RESOLVED };
enum { SL_EMPTY, SL_FETCHING, SL_READY };

typedef struct hslot {
    hreq *r;
    int state;
    uint64_t off;           /* absolute file offset */
    size_t len;
    uint8_t *buf;           /* PIECE bytes, allocated on first use */
} hslot;

struct zf_http {
    zf_fs *fs;
    zc_store *store;
    bool metrics_only;
    char *token;
    int lfd;
    char addr[80];
    struct MHD_Daemon *d;
    uv_async_t async;
    pthread_mutex_t mu;
    hreq *queue;            /* requests the loop must look at */
    hreq *live;             /* every request not yet freed */
    bool stopping;
    bool started;
    char *hosts[MAX_HOSTS]; /* --http-host names */
    int nhosts;
    hconn *conns;           /* every open connection (under mu) */
    uv_timer_t watch;       /* drops connections past their deadline */
    uint64_t slow_drops;    /* under mu */
    bool watching;          /* watch initialized */
    unsigned hdr_ms;        /* a request must be in within this (HDR_MS) */
    /* proxy routes (loop thread only): the Hub checks of callers' tokens */
    zn_http *hubhttp;       /* made on first use */
    struct verdict {
        uint8_t key[32];    /* BLAKE3(token, type, repo): never the token */
        int err;
        uint64_t exp;       /* ms (mono_ms); 0 free */
    } verdicts[VERDICTS];
    unsigned vnext;
};

struct hreq {
    zf_http *h;
    struct MHD_Connection *con;
    hreq *qnext;            /* h->queue */
    hreq *lprev, *lnext;    /* h->live */
    int refs;
    bool queued, suspended, closed;
    /* set by the MHD thread before the request is queued, then read-only */
    bool head;
    char *url;
    char *range;            /* Range header or NULL */
    /* set by the loop before phase = PH_RESOLVED */
    int phase;
    bool started;           /* the loop began resolving */
    unsigned status;
    char *body;             /* text body (errors, metrics) */
    const char *ctype;
    char *hdr[6][2];        /* extra headers (malloc'd values) */
    int nhdr;
    zv_ent ent;
    bool has_ent;
    uint64_t start, end;    /* byte range sent: [start, end) */
    /* streaming */
    uint64_t next_off;      /* next piece to fetch */
    int err;                /* a piece failed */
    hslot slot[NSLOTS];
    /* proxy routes (/download, /download-hash): set by the MHD thread */
    int auth;               /* AUTH_* */
    char *bearer;           /* the caller's Hub token (AUTH_HUB); wiped when freed */
    char *hint;             /* ?repo= of /download-hash, raw */
    /* ... and by the loop */
    char *purl;             /* /download as its /{repo}/resolve/main/{path} */
    xet_hash xid;           /* /download-hash */
    size_t scan;            /* next presented repo to look at for xid */
    int denied;             /* a repo naming xid refused the token */
    enum zf_repo_type chk_type; /* the repo being checked for xid */
    char chk_id[256];
    bool hint_tried;
};

enum { AUTH_OPEN, AUTH_SERVER, AUTH_HUB, AUTH_ANON };

/* counters of every listener (/metrics): defined in httpd.c */
extern _Atomic uint64_t g_requests, g_bytes_sent, g_errors;

/* A growing text buffer (oom: a step failed; the text is then dropped). */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;
void sb_printf(sbuf *b, const char *fmt, ...);

/* The /metrics text (httpd_metrics.c); malloc'd, NULL on ENOMEM. */
char *metrics_text(zf_http *h);

/* Requests on the loop side (httpd_answer.c).  References: free one (the
 * last reference went); drop one; wake its connection (mutex held).
 * Answers: add a header; make it a text answer; mark it resolved and
 * resume its connection; start the reads of its free slots; answer with a
 * blob (status, headers, range, first piece), with the blob a
 * /{repo}/resolve/{rev}/{path} URL names, or a /xet/{hex} file. */
void hreq_free(hreq *r);
void unref(hreq *r);
void kick_locked(hreq *r);
void add_hdr(hreq *r, const char *name, const char *fmt, ...);
void set_text(hreq *r, unsigned status, const char *code, const char *fmt, ...);
void finish(hreq *r);
void fill_slots(hreq *r);
void answer_blob(hreq *r, const zv_ent *e);
void answer_resolve(hreq *r, const char *url);
void answer_xet(hreq *r, const char *hex);

/* proxy-xet's routes (httpd_proxy.c): the URL past "/download/", past
 * "/download-hash/"; /health. */
void answer_download(hreq *r, const char *rest);
void answer_download_hash(hreq *r, const char *hex);
void answer_health(hreq *r);

#endif
