/* source.c — the contract is in source.h. */
#include "read_int.h"
#include "source.h"

static void p2p_timer_arm(rd_ctx *c);
static void xf_debug(const rd_xf *xf, const char *what);
static bool xf_has_fg(const rd_xf *xf);
static void cdn_body(void *ud, int err, const zn_resp *resp);

/* Every read waiting on xf is a fill (pull, prefetch at open) and no
 * sequential reader's prefetch wants its windows: its transfer gives way to
 * reads (net_prio).  With pull: every fill is a pull's too, so nobody will
 * read the run soon and it is stored around the page cache
 * (ZC_PUT_NOCACHE).  Its waiters say who waits (rd_waiter_ops.want). */
static bool xf_fills_only(const rd_xf *xf, bool pull)
{
    bool any = false;
    for (size_t i = 0; i < xf->nw; i++) {
        unsigned w = xf->w[i].ops->want(xf->w[i].ud);
        if (w & (RD_W_AHEAD | RD_W_FG) || (pull && (w & RD_W_CACHED_FILL)))
            return false;
        any |= (w & RD_W_FILL) != 0;
    }
    return any;
}

static bool xf_fill_only(const rd_xf *xf)
{
    return xf_fills_only(xf, false);
}

void rd_xf_free(rd_xf *xf)
{
    xf->c->xf_bytes -= xf->extra;
    free(xf->w);
    free(xf->chk);
    free(xf->lens);
    free(xf->hashes);
    free(xf->url);
    zf_buf_free(xf->buf);
    zf_buf_free(xf->cbuf);
    zf_buf_free(xf->data);
    free(xf->pre);
    free(xf->recs);
    free(xf);
}

/* A callback came back: free a finished fetch once none is outstanding. */
static void xf_release(rd_xf *xf)
{
    if (!xf->finished || xf->nops)
        return;
    rd_ctx *c = xf->c;
    bool pump = xf->extra != 0;
    rd_xf_free(xf);
    if (pump)
        rd_xf_pump(c);
}

/* The racing CDN body is no longer needed or is the fetch's own now. */
static void xf_drop_extra(rd_xf *xf)
{
    if (xf->extra) {
        xf->c->xf_bytes -= xf->extra;
        xf->extra = 0;
    }
}

/* The CDN request of a fetch: alone, or racing its peer fetch (xf->pop set;
 * a failure to start then just leaves the peers to it). */


static void xf_cdn(rd_xf *xf)
{
    rd_ctx *c = xf->c;
    int rc = c->http ? 0 : -ENETDOWN;
    if (!rc && !(xf->cbuf = zf_buf_get(xf->bytes)))
        rc = -ENOMEM;
    if (!rc) {
        xf->ct0 = uv_hrtime();
        xf->nops++;
        rc = zn_cdn_fetch(c->http, xf->url, xf->bs, xf->be, xf->cbuf, &c->cdn_retry, cdn_body, xf,
                          &xf->creq);
        if (rc) {
            xf->nops--;
            xf->creq = NULL;
            zf_buf_free(xf->cbuf);
            xf->cbuf = NULL;
        }
    }
    if (rc) {
        xf_drop_extra(xf);
        if (!xf->pop)
            xf->c->xf_body(xf, rc);
        return;
    }
    if (!xf->pop)
        xf->src = ZF_SRC_CDN;
    if (zf_log_level >= ZF_LOG_DEBUG) /* the walks only for the log */
        xf_debug(xf, xf_fill_only(xf) ? "from the CDN (a fill's)"
                     : xf_has_fg(xf) ? "from the CDN (a read waits)"
                                     : "from the CDN (ahead of a reader)");
    rd_net_prio(c);
    if (c->fs->p2p && !xf->pend_on) { /* peers about to fetch this range wait for ours */
        const rd_file *f = xf->f;
        xf->pend_on = true;
        zf_p2p_cdn_fetching(c->fs->p2p, f ? zf_p2p_type_name((enum zf_repo_type)f->type) : NULL,
                            f ? f->repo : NULL, &xf->xorb, xf->cs, xf->ce, true);
    }
}

static void cdn_body(void *ud, int err, const zn_resp *resp)
{
    (void)resp;
    rd_xf *xf = ud;
    rd_ctx *c = xf->c;
    uint8_t *buf = xf->cbuf;
    bool was_held = xf->held || xf->held_ms;
    xf->cbuf = NULL;
    xf->creq = NULL;
    xf->held = false;
    xf->nops--;
    xf_drop_extra(xf);
    rd_net_prio(c); /* a transfer ended: the held ones may go on */
    if (xf->finished || xf->decoding) { /* we lost the race (or no one waits) */
        zf_buf_free(buf);
        xf_release(xf);
        rd_xf_pump(c);
        return;
    }
    if (err || c->stopping) {
        zf_buf_free(buf);
        if (xf->pop) { /* racing: the peer fetch goes on and decides */
            xf->cdn_err = err ? err : -ECANCELED;
            return;
        }
        xf->c->xf_body(xf, err ? err : -ECANCELED);
        return;
    }
    double ms = (double)(uv_hrtime() - xf->ct0) / 1e6;
    double bpms = (double)xf->bytes / (ms > 1 ? ms : 1);
    if (!was_held) /* a held transfer's time says nothing of the CDN */
        c->cdn_bpms = c->cdn_bpms > 0 ? 0.7 * c->cdn_bpms + 0.3 * bpms : bpms;
    if (xf->pop) { /* the CDN won the race: the peer fetch is cancelled (callback later) */
        xf->cdn_won = true;
        c->m.races_cdn_won++;
        c->race_after_ms = 0; /* the peers are slow now: race the next ones at once */
        zn_peer_op_cancel(xf->pop);
    }
    xf->src = ZF_SRC_CDN;
    zf_buf_free(xf->buf);
    xf->buf = buf;
    xf->decoding = true;
    xf->nocache = xf_fills_only(xf, true);
    c->xf_body(xf, 0); /* to decode */
}

static void xf_peer_done(void *ud, int err, const uint32_t *lens, const xet_hash *hashes,
                         const uint8_t *data, size_t len)
{
    rd_xf *xf = ud;
    rd_ctx *c = xf->c;
    xf->pop = NULL;
    xf->nops--;
    if (xf->finished || xf->cdn_won) {
        xf_release(xf);
        return;
    }
    if (c->fs->p2p) {
        zf_p2p_stats st;
        zf_p2p_get_stats(c->fs->p2p, &st);
        if (st.node.bans > c->m.peer_bans)
            c->m.peer_bans = st.node.bans;
    }
    uint32_t n = xf->ce - xf->cs;
    if (!err) {
        xf->lens = malloc(n * sizeof *xf->lens);
        xf->hashes = malloc(n * sizeof *xf->hashes);
        xf->buf = zf_buf_get(len);
        if (!xf->lens || !xf->hashes || !xf->buf)
            err = -ENOMEM;
    }
    if (err) {
        free(xf->lens);
        free(xf->hashes);
        zf_buf_free(xf->buf);
        xf->lens = NULL;
        xf->hashes = NULL;
        xf->buf = NULL;
        if (zf_log_level >= ZF_LOG_DEBUG && err != -ECANCELED) {
            char why[96];
            snprintf(why, sizeof why, "peer fetch failed: %s", zf_strerror(-err));
            xf_debug(xf, why);
        }
        if (xf->creq) /* the racing CDN request decides */
            return;
        bool pend = zf_p2p_pending(c->fs->p2p, &xf->xorb, 0, 0) > 0;
        /* A peer too slow for the deadline (a busy node), nobody waiting
         * on this: the peers again in a while too, a few times, before
         * the CDN's copy (nodes pulling together on few cores). */
        bool slow_bg = err == -ETIMEDOUT && !xf_has_fg(xf) && xf->reparks < REPARKS_SLOW;
        if (!c->stopping && (slow_bg || (err == -ENOENT &&
            ((pend && xf->reparks < 3) || (!xf_has_fg(xf) && xf->reparks < REPARKS_BG))))) {
            /* No manifest yet: nobody holds the whole xorb and the peers'
             * parts do not add up to it.  Peers fetching the rest of it now:
             * wait for them.  Else, nobody waiting on this (pull, prefetch):
             * the nodes pulling with us will fetch the rest soon, so ask the
             * peers again in a while rather than copy the CDN's bytes. */
            xf->reparks++;
            xf->parked = xf->pend_seen = true;
            xf->wait_xorb = pend;
            xf->retry_peer = !pend;
            xf->park_t0 = now_ms();
            c->m.fetches_parked++;
            xf_debug(xf, slow_bg ? "peers too slow: asking them again in a while"
                         : pend ? "no manifest yet, peers fetch the rest of the xorb: waiting"
                                : "no manifest yet: asking the peers again in a while");
            p2p_timer_arm(c);
            return;
        }
        if (c->stopping || err == -ECANCELED)
            xf->c->xf_body(xf, -ECANCELED);
        else if (xf->cdn_err)
            xf->c->xf_body(xf, xf->cdn_err);
        else
            xf_cdn(xf); /* -ENOENT, -ETIMEDOUT, liars banned: the CDN at once */
        return;
    }
    if (xf->creq) /* the peers won the race */
        zn_req_cancel(xf->creq);
    else if (!xf->raced)
        c->race_after_ms = RACE_AFTER_MS;
    memcpy(xf->lens, lens, n * sizeof *lens);
    memcpy(xf->hashes, hashes, n * sizeof *hashes);
    memcpy(xf->buf, data, len);
    xf->got = len;
    xf->data = xf->buf; /* decoded and verified: the run in memory until stored */
    xf->dlen = len;
    xf->buf = NULL;
    xf->src = ZF_SRC_PEER;
    xf->decoding = true;
    xf->nocache = xf_fills_only(xf, true);
    c->xf_body(xf, 0); /* to check and store */
}

static bool xf_peer(rd_xf *xf)
{
    rd_ctx *c = xf->c;
    xf->src = ZF_SRC_PEER;
    xf->pt0 = now_ms();
    xf->nops++;
    if (zf_p2p_fetch(c->fs->p2p, &xf->xorb, xf->cs, xf->ce, xf->bytes, xf_peer_done, xf,
                     &xf->pop) == 0) {
        p2p_timer_arm(c);
        return true;
    }
    xf->nops--;
    xf->pop = NULL;
    return false;
}

static void xf_debug(const rd_xf *xf, const char *what)
{
    if (zf_log_level < ZF_LOG_DEBUG)
        return;
    char xs[65];
    xet_hash_to_string(&xf->xorb, xs);
    zf_debug("zestfs: xorb %.16s chunks [%u, %u): %s\n", xs, xf->cs, xf->ce, what);
}

static bool xf_has_fg(const rd_xf *xf)
{
    for (size_t i = 0; i < xf->nw; i++)
        if (xf->w[i].ops->want(xf->w[i].ud) & RD_W_FG)
            return true;
    return false;
}

/* Foreground first on the network.  While a CDN transfer that is not only
 * for fills is in flight (a read waits for it, or it runs ahead of a
 * sequential reader), the transfers only fills wait for are held
 * (zn_req_pause: TCP flow control stops their senders once the socket
 * buffers fill), so a read's bytes do not share the link with a prefetch
 * of the whole file; they resume when no such transfer is left.  A
 * transfer is held HOLD_MAX_MS at most in all, so a long foreground stream
 * cannot starve a pull (or leave a CDN connection idle past its timeout).
 * Called whenever a transfer starts or ends or a read joins one. */
void rd_net_prio(rd_ctx *c)
{
    bool fg = false;
    for (rd_xf *x = c->xfs; x && !fg; x = x->next)
        fg = x->creq && !x->held && !x->finished && !xf_fill_only(x);
    uint64_t now = now_ms();
    if (fg || c->fg_on)
        c->fg_last = now;
    c->fg_on = fg;
    for (rd_xf *x = c->xfs; x; x = x->next) {
        if (!x->creq || x->finished)
            continue;
        uint64_t used = x->held_ms + (x->held ? now - x->held_t0 : 0);
        bool want = fg && used < HOLD_MAX_MS && xf_fill_only(x);
        if (want == x->held)
            continue;
        if (want) {
            x->held_t0 = now;
            c->m.fetches_held++;
        } else {
            x->held_ms = used;
        }
        x->held = want;
        zn_req_pause(x->creq, want);
        xf_debug(x, want ? "held" : "resumed");
    }
}

/* Peers that hold the whole range first (raced against the CDN when slow);
 * when none does but one is fetching it from the CDN now, wait for that
 * (parked); else the CDN. */
static void xf_start(rd_xf *xf)
{
    rd_ctx *c = xf->c;
    xf->started = true;
    xf->t0 = uv_hrtime();
    c->m.fetches_inflight++;
    c->xf_bytes += xf->bytes;
    zf_p2p *p = c->fs->p2p;
    if (p && zf_p2p_holders(p, &xf->xorb, xf->cs, xf->ce) > 0 && xf_peer(xf))
        return;
    if (p && zf_p2p_pending(p, &xf->xorb, xf->cs, xf->ce) > 0) {
        xf->parked = xf->pend_seen = true;
        xf->park_t0 = now_ms();
        c->m.fetches_parked++;
        xf_debug(xf, "a peer fetches it from the CDN: waiting for that");
        p2p_timer_arm(c);
        return;
    }
    if (p && !xf_has_fg(xf)) {
        /* Background, and peers may be about to fetch the same range (nodes
         * pulling one model together): wait a random 0..JITTER_MS first, so
         * that one of them goes first and the others see its PENDING. */
        zf_p2p_stats st;
        zf_p2p_get_stats(p, &st);
        uint16_t r = 0;
        if (st.node.peers > 0 && getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) {
            xf->parked = true;
            xf->pend_seen = false;
            xf->park_t0 = now_ms();
            xf->park_lim = r % (JITTER_MS + 1);
            p2p_timer_arm(c);
            return;
        }
    }
    xf_cdn(xf);
}

/* The CDN time of a fetch of `bytes`, from what CDN fetches took so far. */
static double cdn_eta_ms(const rd_ctx *c, uint64_t bytes)
{
    double bpms = c->cdn_bpms > 0 ? c->cdn_bpms : 20000.0; /* none yet: 20 MB/s */
    return 100.0 + (double)bytes / bpms;
}

/* One look at one fetch; true when it changed state (the list may have). */
static bool p2p_look(rd_xf *xf, uint64_t now, bool *busy)
{
    rd_ctx *c = xf->c;
    zf_p2p *p = c->fs->p2p;
    if (xf->parked) {
        *busy = true;
        if (!xf->pend_seen && zf_p2p_pending(p, &xf->xorb, xf->cs, xf->ce) > 0) {
            xf->pend_seen = true; /* a peer went first: wait for it */
            xf->park_t0 = now;
            c->m.fetches_parked++;
            xf_debug(xf, "a peer fetches it from the CDN: waiting for that");
        }
        uint64_t lim = xf->park_lim;
        if (xf->pend_seen) {
            lim = PARK_BG_MS;
            if (xf_has_fg(xf)) {
                lim = xf->bytes / 10000; /* 10 MB/s */
                if (lim < PARK_FG_MIN_MS)
                    lim = PARK_FG_MIN_MS;
            }
        } else if (xf_has_fg(xf))
            lim = 0; /* a read waits now: no jitter */
        if (c->stopping) {
            xf->parked = false;
            xf->c->xf_body(xf, -ECANCELED);
            return true;
        }
        if (xf->retry_peer) {
            if (now - xf->park_t0 < REPARK_MS && !xf_has_fg(xf))
                return false;
            xf->parked = xf->retry_peer = false;
            if (zf_p2p_holders(p, &xf->xorb, xf->cs, xf->ce) == 0 || !xf_peer(xf))
                xf_cdn(xf);
            return true;
        }
        if (xf->wait_xorb) { /* until the peers' fetches of the xorb are over */
            if (zf_p2p_pending(p, &xf->xorb, 0, 0) > 0 && now - xf->park_t0 < lim)
                return false;
            xf->parked = xf->wait_xorb = false;
            xf_debug(xf, "the peers' fetches of the xorb ended: peers again");
            if (zf_p2p_holders(p, &xf->xorb, xf->cs, xf->ce) == 0 || !xf_peer(xf))
                xf_cdn(xf);
            return true;
        }
        if (zf_p2p_holders(p, &xf->xorb, xf->cs, xf->ce) > 0) {
            xf->parked = false;
            xf_debug(xf, "a peer has it now");
            if (!xf_peer(xf))
                xf_cdn(xf);
            return true;
        }
        if ((xf->pend_seen && zf_p2p_pending(p, &xf->xorb, xf->cs, xf->ce) == 0) ||
            now - xf->park_t0 >= lim) {
            xf->parked = false;
            xf_debug(xf, xf->pend_seen ? (now - xf->park_t0 >= lim ? "waited too long: the CDN"
                                                                   : "the peer's fetch ended: the CDN")
                                       : "no peer went first: the CDN");
            xf_cdn(xf);
            return true;
        }
        return false;
    }
    if (!xf->pop || xf->creq || xf->raced || xf->finished || xf->decoding || c->stopping ||
        !c->http)
        return false;
    *busy = true;
    uint64_t e = now > xf->pt0 ? now - xf->pt0 : 0; /* pt0 may be newer: xf_peer in this tick */
    if (e < c->race_after_ms)
        return false;
    uint64_t done = 0, total = 0;
    zn_peer_op_progress(xf->pop, &done, &total);
    double peer_eta = 1e18;
    if (done > 0 && total > done)
        peer_eta = (double)(total - done) * (double)e / (double)done;
    else if (done > 0)
        peer_eta = 0;
    bool fg = xf_has_fg(xf);
    if (!fg) {
        /* Nobody waits (pull, prefetch): a CDN copy costs the origin more
         * than the time it saves, so only a peer that has all but stalled
         * is raced (slow ones are dropped by the peer node anyway). */
        if (e < BG_RACE_AFTER_MS || peer_eta <= 10 * cdn_eta_ms(c, xf->bytes) + 5000)
            return false;
    } else {
        if (peer_eta <= 2 * cdn_eta_ms(c, xf->bytes) + 250)
            return false;
    }
    /* slower than the CDN would be: race it (the first verified copy wins) */
    xf->raced = true;
    c->m.races++;
    xf->extra = xf->bytes;
    c->xf_bytes += xf->extra;
    if (zf_log_level >= ZF_LOG_DEBUG) {
        char xs[65];
        xet_hash_to_string(&xf->xorb, xs);
        zf_debug("zestfs: xorb %.16s chunks [%u, %u): peers slow (%" PRIu64 "/%" PRIu64
                 " bytes in %" PRIu64 " ms), racing the CDN\n",
                 xs, xf->cs, xf->ce, done, total, e);
    }
    xf_cdn(xf);
    return true;
}

static void p2p_tick(uv_timer_t *t)
{
    rd_ctx *c = t->data;
    uint64_t now = now_ms();
    bool busy = false;
    for (rd_xf *xf = c->xfs; xf;)
        xf = p2p_look(xf, now, &busy) ? c->xfs : xf->next; /* changed: look again from the top */
    if (!busy) {
        uv_timer_stop(t);
        c->p2p_timer_on = false;
    }
}

static void p2p_timer_arm(rd_ctx *c)
{
    if (!c->p2p_timer_on && !c->stopping) {
        c->p2p_timer_on = true;
        uv_timer_start(&c->p2p_timer, p2p_tick, P2P_TICK_MS, P2P_TICK_MS);
    }
}

/* While reads use the CDN (now, or within FG_RECENT_MS), fills start at
 * most FILL_XF_FG fetches at once: what each one has in flight (socket
 * buffers, queues along the path) still arrives after it is held, ahead of
 * a read's bytes. */
static bool fill_gated(rd_ctx *c, const rd_xf *xf, uint64_t now)
{
    if ((!c->fg_on && now >= c->fg_last + FG_RECENT_MS) || !xf_fill_only(xf))
        return false;
    int n = 0;
    for (const rd_xf *x = c->xfs; x && n < FILL_XF_FG; x = x->next)
        n += x->started && !x->finished && xf_fill_only(x);
    return n >= FILL_XF_FG;
}

static void prio_tick(uv_timer_t *t)
{
    rd_xf_pump(t->data);
}

/* Start queued fetches, in order, while the budget allows (a fill held
 * back by fill_gated keeps its place; the timer looks again). */
void rd_xf_pump(rd_ctx *c)
{
    uint64_t now = now_ms();
    bool gated = false;
    rd_xf **pp = &c->xq;
    while (*pp && !c->stopping) {
        rd_xf *xf = *pp;
        if (c->xf_bytes && c->xf_bytes + xf->bytes > XF_BUDGET)
            break;
        if (fill_gated(c, xf, now)) {
            gated = true;
            pp = &xf->qnext;
            continue;
        }
        *pp = xf->qnext;
        if (c->xqtail == &xf->qnext)
            c->xqtail = pp;
        xf->qnext = NULL;
        xf_start(xf); /* may finish fetches and change the queue: look again from its head */
        pp = &c->xq;
    }
    if (gated && !c->stopping)
        uv_timer_start(&c->prio_timer, prio_tick,
                       c->fg_on ? FG_RECENT_MS : c->fg_last + FG_RECENT_MS - now + 1, 0);
}
