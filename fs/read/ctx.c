/* ctx.c — the read path's context (zfs.h: zf_read_init, zf_read_stop,
 * zf_read_free, zf_read_hub): its network clients, timers and the hooks
 * through which lower rooms call back up (rd_ctx.resume, big_window,
 * xf_body).  Rooms and their order: read_int.h. */
#include "read_int.h"
#include "api.h"
#include "big.h"
#include "route.h"
#include "fill.h"
#include "tokseed.h"
#include "openpf.h"
#include "window.h"
#include "xfetch.h"

#define WARM_BUF (12u << 20) /* two: a first fetch's body and its decoded run */


static void warm_work(uv_work_t *w)
{
    (void)w;
    zf_buf_warm(WARM_BUF, 2);
}

int zf_read_init(zf_fs *fs, const zf_opts *o, zc_store *store)
{
    rd_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fs = fs;
    c->loop = fs->loop;
    c->store = store;
    c->xqtail = &c->xq;
    c->lqtail = &c->lq;
    c->race_after_ms = RACE_AFTER_MS;
    c->resume = rd_xet_try;
    c->big_window = rd_big_cell_start;
    c->xf_body = rd_xf_body;
    const char *ns = getenv("ZESTFS_NO_SPLICE");
    c->splice = !(ns && *ns && strcmp(ns, "0"));
    c->cdn_retry = (zn_retry){.max_attempts = 3, .base_ms = 300, .max_delay_ms = 5000,
                              .deadline_ms = 30000};
    c->endpoint = strdup(o->endpoint);
    if (o->token) {
        size_t n = strlen(o->token) + 32;
        c->auth = malloc(n);
        if (c->auth)
            snprintf(c->auth, n, "Authorization: Bearer %s", o->token);
    }
    if (!c->endpoint || (o->token && !c->auth)) {
        free(c->endpoint);
        free(c->auth);
        free(c);
        return -ENOMEM;
    }
    if (!o->offline) {
        zn_http_opts ho = {.cacert = o->cacert, .max_conns_per_host = 16};
        /* a transfer under 1 KiB/s for this long is abandoned (and retried
         * on a fresh connection): ZESTFS_STALL_TIMEOUT seconds, default 30 */
        const char *st = getenv("ZESTFS_STALL_TIMEOUT");
        if (st && atol(st) > 0)
            ho.low_speed_time_s = atol(st);
        c->http = zn_http_new(fs->loop, &ho);
        zn_hub_opts hopts = {
            .endpoint = o->endpoint,
            .token = o->token,
            .retry = {.max_attempts = 3, .base_ms = 500, .max_delay_ms = 5000,
                      .deadline_ms = 20000},
        };
        c->hub = c->http ? zn_hub_new(c->http, &hopts) : NULL;
        if (!c->hub) {
            zn_http_free(c->http);
            free(c->endpoint);
            free(c->auth);
            free(c);
            return -ENOMEM;
        }
    }
    uv_timer_init(fs->loop, &c->fill_timer);
    c->fill_timer.data = c;
    uv_timer_init(fs->loop, &c->p2p_timer);
    c->p2p_timer.data = c;
    uv_timer_init(fs->loop, &c->prio_timer);
    c->prio_timer.data = c;
    c->fill_timer_cb = rd_fill_timer_cb;
    if (c->hub) { /* the first fetch's body and run land in memory already faulted in */
        c->warm.data = c;
        uv_queue_work(fs->loop, &c->warm, warm_work, NULL);
    }
    zf_tokseeds_give(fs, c->hub); /* the tokens asked at startup: no request for them now */
    fs->read_ctx = c;
    for (size_t i = 0; i < fs->tree.nrepos && i < 16; i++)
        zf_read_warm_repo(fs, fs->tree.repos[i]);
    fs->hooks.read_blob = rd_read_blob;
    fs->hooks.blob_opened = rd_blob_opened;
    fs->hooks.blob_released = rd_blob_released;
    fs->hooks.warm_repo = zf_read_warm_repo;
    return 0;
}

void zf_read_stop(zf_fs *fs)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping)
        return;
    c->stopping = true;
    uv_close((uv_handle_t *)&c->fill_timer, NULL);
    uv_close((uv_handle_t *)&c->p2p_timer, NULL);
    uv_close((uv_handle_t *)&c->prio_timer, NULL);
    c->p2p_timer_on = false;
    rd_fill_stop(c); /* fills with nothing in flight end now; the others as they end */
    for (size_t b = 0; b < NBUCKETS; b++)
        for (rd_file *f = c->tab[b]; f; f = f->hnext)
            rd_openpf_stop(f);
    /* queued fetches never started */
    while (c->xq) {
        rd_xf *xf = c->xq;
        c->xq = xf->qnext;
        rd_xf_finish(xf, -ECANCELED);
    }
    c->xqtail = &c->xq;
    /* fetches waiting for a peer's end now */
    for (rd_xf *xf = c->xfs; xf;)
        if (xf->parked) {
            xf->parked = false;
            rd_xf_finish(xf, -ECANCELED);
            xf = c->xfs;
        } else
            xf = xf->next;
    /* peer fetches in flight end with -ECANCELED (their callback, later) */
    for (rd_xf *xf = c->xfs; xf; xf = xf->next)
        if (xf->pop)
            zn_peer_op_cancel(xf->pop);
    /* cells waiting on a backoff timer end now */
    for (size_t b = 0; b < NBUCKETS; b++)
        for (rd_file *f = c->tab[b]; f; f = f->hnext) {
            rd_cell *cl = f->cells;
            while (cl) {
                rd_cell *nx = cl->next;
                if (uv_is_active((uv_handle_t *)&cl->timer)) {
                    uv_timer_stop(&cl->timer);
                    rd_cell_done(cl, -ECANCELED);
                    nx = f->cells; /* the list changed: start over */
                }
                cl = nx;
            }
        }
    /* in-flight requests complete with -ECANCELED */
    zn_hub_free(c->hub);
    zn_http_free(c->http);
    c->hub = NULL;
    c->http = NULL;
}

void zf_read_free(zf_fs *fs)
{
    rd_ctx *c = fs->read_ctx;
    if (!c)
        return;
    for (size_t b = 0; b < NBUCKETS; b++)
        for (rd_file *f = c->tab[b], *nx; f; f = nx) {
            nx = f->hnext;
            free(f->ext);
            free(f->done);
            free(f->blob);
            rd_big_free(f);
            rd_openpf_free(f);
            rd_learn_free(f);
            free(f);
        }
    free(c->endpoint);
    if (c->auth) {
        memset(c->auth, 0, strlen(c->auth));
        free(c->auth);
    }
    free(c);
    fs->read_ctx = NULL;
    fs->hooks.read_blob = NULL;
    fs->hooks.warm_repo = NULL;
}

zn_hub *zf_read_hub(zf_fs *fs)
{
    rd_ctx *c = fs->read_ctx;
    return c && !c->stopping ? c->hub : NULL;
}
