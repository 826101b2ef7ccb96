/* httpd_metrics.c — the access server's Prometheus /metrics text (format
 * 0.0.4): the read path's counters and histograms, the store's, the
 * swarm's and the server's own (httpd.c). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd_int.h"
#include "p2p.h"
#include "read.h"
#include "zfs.h"

/* ---- /metrics ---------------------------------------------------------- */

void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = b->oom ? 0 : vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (b->oom || n < 0)
            return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

static void metric(sbuf *b, const char *name, const char *type, const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void hist(sbuf *b, const char *name, const char *label, const zf_hist *hh)
{
    static const double bounds[ZF_HIST_N] = ZF_HIST_BOUNDS_MS;
    uint64_t cum = 0;
    const char *sep = label[0] ? "," : "";
    for (int i = 0; i < ZF_HIST_N; i++) {
        cum += hh->bucket[i];
        if (bounds[i] >= 1e299)
            sb_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, label, sep, cum);
        else
            sb_printf(b, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, label, sep,
                      bounds[i] / 1000.0, cum);
    }
    if (bounds[ZF_HIST_N - 1] < 1e299)
        sb_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, label, sep, hh->count);
    const char *l = label[0] ? "{" : "", *rb = label[0] ? "}" : "";
    sb_printf(b, "%s_sum%s%s%s %.9g\n", name, l, label, rb, hh->sum_ms / 1000.0);
    sb_printf(b, "%s_count%s%s%s %" PRIu64 "\n", name, l, label, rb, hh->count);
}

static void one(sbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    metric(b, name, type, help);
    sb_printf(b, "%s %" PRIu64 "\n", name, v);
}

char *metrics_text(zf_http *h)
{
    sbuf b = {0};
    zf_metrics *m = zf_read_metrics(h->fs);
    static const zf_metrics zero;
    if (!m)
        m = (zf_metrics *)&zero;
    metric(&b, "zestfs_read_duration_seconds", "histogram",
           "Latency of reads answered (FUSE reads and HTTP pieces).");
    hist(&b, "zestfs_read_duration_seconds", "", &m->read_ms);
    one(&b, "zestfs_reads_total", "counter", "Reads answered.", m->reads);
    one(&b, "zestfs_read_bytes_total", "counter", "Bytes answered by reads.", m->read_bytes);
    one(&b, "zestfs_read_errors_total", "counter", "Reads that failed.", m->read_errors);
    metric(&b, "zestfs_reads_by_outcome_total", "counter",
           "Reads answered from the store without waiting, or after waiting for a fetch.");
    sb_printf(&b, "zestfs_reads_by_outcome_total{outcome=\"store\"} %" PRIu64 "\n",
              m->reads_from_store);
    sb_printf(&b, "zestfs_reads_by_outcome_total{outcome=\"waited\"} %" PRIu64 "\n",
              m->reads_waited);
    metric(&b, "zestfs_fetch_duration_seconds", "histogram", "Latency of xorb range fetches by source.");
    hist(&b, "zestfs_fetch_duration_seconds", "source=\"cdn\"", &m->fetch_ms[ZF_SRC_CDN]);
    hist(&b, "zestfs_fetch_duration_seconds", "source=\"peer\"", &m->fetch_ms[ZF_SRC_PEER]);
    metric(&b, "zestfs_bytes_total", "counter",
           "Bytes by source: served from the store, fetched from peers or the CDN.");
    static const char *src[ZF_NSRC] = {"store", "peer", "cdn"};
    for (int i = 0; i < ZF_NSRC; i++)
        sb_printf(&b, "zestfs_bytes_total{source=\"%s\"} %" PRIu64 "\n", src[i], m->bytes_by_src[i]);
    one(&b, "zestfs_fetches_in_flight", "gauge", "Xorb range fetches in flight.", m->fetches_inflight);
    one(&b, "zestfs_verify_failures_total", "counter", "Network data that failed verification.",
        m->verify_failures);
    one(&b, "zestfs_peer_bans_total", "counter", "Peers banned.", m->peer_bans);
    one(&b, "zestfs_fetch_races_total", "counter", "Slow peer fetches raced against the CDN.",
        m->races);
    one(&b, "zestfs_fetch_races_cdn_won_total", "counter", "Races the CDN finished first.",
        m->races_cdn_won);
    one(&b, "zestfs_fetches_parked_total", "counter",
        "Fetches that waited for a peer's CDN fetch of the same range.", m->fetches_parked);
    one(&b, "zestfs_fetches_held_total", "counter",
        "Background (fill) CDN transfers paused while a foreground one ran.", m->fetches_held);
    one(&b, "zestfs_reconstructions_total", "counter",
        "CAS reconstructions asked by the read path (windows, their pieces, learned ahead).", m->recons);
    one(&b, "zestfs_reconstructions_learned_total", "counter",
        "Windows fetched with a reconstruction learned ahead of their miss.", m->recons_learned);
    one(&b, "zestfs_http_reads_total", "counter", "Reads answered for the HTTP access server.",
        m->http_reads);
    zf_p2p_stats ps;
    memset(&ps, 0, sizeof ps);
    if (h->fs->p2p)
        zf_p2p_get_stats(h->fs->p2p, &ps);
    one(&b, "zestfs_peers_connected", "gauge", "Peers connected (handshake done).", ps.node.peers);
    one(&b, "zestfs_peer_swarms", "gauge", "Swarms joined.", ps.swarms);
    metric(&b, "zestfs_peer_data_bytes_total", "counter", "Verified chunk bytes exchanged with peers.");
    sb_printf(&b, "zestfs_peer_data_bytes_total{direction=\"up\"} %" PRIu64 "\n", ps.node.data_up);
    sb_printf(&b, "zestfs_peer_data_bytes_total{direction=\"down\"} %" PRIu64 "\n", ps.node.data_down);
    metric(&b, "zestfs_store_lookups_total", "counter",
           "Reads by whether the store had every byte (hit) or a fetch was needed (miss).");
    sb_printf(&b, "zestfs_store_lookups_total{result=\"hit\"} %" PRIu64 "\n", m->reads_from_store);
    sb_printf(&b, "zestfs_store_lookups_total{result=\"miss\"} %" PRIu64 "\n", m->reads_waited);
    zc_stats st;
    memset(&st, 0, sizeof st);
    if (h->store)
        zc_get_stats(h->store, &st);
    one(&b, "zestfs_store_used_bytes", "gauge", "Bytes of the chunk store in use.", st.used);
    one(&b, "zestfs_store_capacity_bytes", "gauge", "Cap of the chunk store.", st.cap);
    one(&b, "zestfs_store_pinned_bytes", "gauge", "Store bytes that are never evicted.", st.pinned);
    one(&b, "zestfs_store_segments", "gauge", "Segments in the store.", st.segments);
    one(&b, "zestfs_store_evictions_total", "counter", "Segments evicted.", st.evictions);
    one(&b, "zestfs_store_evicted_bytes_total", "counter", "Bytes evicted.", st.evicted_bytes);
    one(&b, "zestfs_store_puts_total", "counter", "Chunk runs stored.", st.puts);
    one(&b, "zestfs_store_put_bytes_total", "counter", "Bytes stored.", st.put_bytes);
    one(&b, "zestfs_store_corrupt_segments_total", "counter",
        "Stored segments that failed verification.", st.corrupt);
    one(&b, "zestfs_repos_presented", "gauge", "Repos presented.", h->fs->tree.nrepos);
    metric(&b, "zestfs_repo_seeded", "gauge",
           "Per repo: 1 when its swarm is served to peers; visibility is the Hub's verdict kept "
           "with it (public, private, gated, unknown).");
    for (size_t i = 0; i < h->fs->tree.nrepos; i++) {
        const zf_repo *r = h->fs->tree.repos[i];
        const char *t = zf_p2p_type_name(r->type);
        sb_printf(&b, "zestfs_repo_seeded{type=\"%s\",repo=\"%s\",visibility=\"%s\"} %d\n", t,
                  r->id, zf_vis_name(r->vis), zf_p2p_repo_served(h->fs->p2p, t, r->id) ? 1 : 0);
    }
    one(&b, "zestfs_http_requests_total", "counter", "HTTP requests answered.", g_requests);
    one(&b, "zestfs_http_sent_bytes_total", "counter", "HTTP body bytes sent.", g_bytes_sent);
    one(&b, "zestfs_http_read_errors_total", "counter",
        "HTTP responses that failed for want of bytes.", g_errors);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
