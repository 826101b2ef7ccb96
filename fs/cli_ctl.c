/* cli_ctl.c — commands that talk to a running mount over its control
 * socket (ctl.c): `zestfs status`, `verify`, `pin`, `unpin`.
 *
 * Which mount: `--store DIR` (its DIR/ctl.sock), or a MOUNTPOINT (each
 * mount registers mountpoint -> socket in a run directory: see
 * zf_registry_path in options.c), else the default store's socket. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "ctlwire.h"
#include "options.h"
#include "zfs.h"

static int find_socket(const char *store, const char *mnt, char *out, size_t len)
{
    if (store) {
        snprintf(out, len, "%s/ctl.sock", store);
        return 0;
    }
    if (mnt) {
        char reg[PATH_MAX + 64];
        int rc = zf_registry_path(mnt, reg, sizeof reg, false);
        if (rc)
            return rc;
        FILE *f = fopen(reg, "r");
        if (!f)
            return -ENOENT;
        char *ok = fgets(out, (int)len, f);
        fclose(f);
        if (!ok)
            return -EIO;
        out[strcspn(out, "\n")] = 0;
        return 0;
    }
    char *d = zf_default_store();
    if (!d)
        return -ENOENT;
    snprintf(out, len, "%s/ctl.sock", d);
    free(d);
    return 0;
}

static FILE *ctl_open(const char *sock, const char *req_json)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    strcpy(sa.sun_path, sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        zf_ctl_write_all(fd, req_json, strlen(req_json)) != 0 ||
        zf_ctl_write_all(fd, "\n", 1) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    return fdopen(fd, "r");
}

static void human(double n, char *out, size_t len)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (n >= 1024 && i < 4) {
        n /= 1024;
        i++;
    }
    snprintf(out, len, i ? "%.1f %s" : "%.0f %s", n, u[i]);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void print_status(const cJSON *s)
{
    char a[32], b[32], c[32];
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(s, "store");
    printf("zestfs pid %.0f%s%s\n", num(s, "pid"), *str(s, "mountpoint") ? ", mounted on " : "",
           str(s, "mountpoint"));
    const cJSON *at;
    cJSON_ArrayForEach(at, cJSON_GetObjectItemCaseSensitive(s, "attached"))
        printf("also mounted on %s: %s (commit %.12s), read-only\n", str(at, "mountpoint"),
               str(at, "repo"), str(at, "commit"));
    human(num(st, "used"), a, sizeof a);
    human(num(st, "cap"), b, sizeof b);
    human(num(st, "pinned"), c, sizeof c);
    printf("store: %s of %s used (%.0f%%), %s pinned, %.0f segments of %.0f xorbs, "
           "%.0f evictions, %.0f corrupt segments found\n",
           a, b, num(st, "cap") ? 100 * num(st, "used") / num(st, "cap") : 0, c,
           num(st, "segments"), num(st, "xorbs"), num(st, "evictions"), num(st, "corrupt"));
    const cJSON *pins = cJSON_GetObjectItemCaseSensitive(s, "pins"), *it;
    printf("\n%-10s %-40s %-14s %7s %10s %-6s %s\n", "TYPE", "REPO", "REF", "FILES", "SIZE",
           "PINNED", "VISIBILITY");
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(s, "repos"))
    {
        const cJSON *refs = cJSON_GetObjectItemCaseSensitive(it, "refs");
        char ref[64] = "-";
        if (refs && refs->child)
            snprintf(ref, sizeof ref, "%s@%.7s", refs->child->string,
                     cJSON_IsString(refs->child) ? refs->child->valuestring : "");
        bool pinned = false;
        const cJSON *p;
        char pre[400];
        const char *type = str(it, "type");
        snprintf(pre, sizeof pre, "%.*s/%s@", (int)(strlen(type) ? strlen(type) - 1 : 0), type,
                 str(it, "id"));
        cJSON_ArrayForEach(p, pins) if (cJSON_IsString(p) && !strncmp(p->valuestring, pre, strlen(pre)))
            pinned = true;
        human(num(it, "bytes"), a, sizeof a);
        const char *vis = *str(it, "visibility") ? str(it, "visibility") : "unknown";
        bool seeded = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "seeded"));
        printf("%-10s %-40s %-14s %7.0f %10s %-6s %s%s\n", type, str(it, "id"), ref,
               num(it, "files"), a, pinned ? "yes" : "no", vis,
               seeded ? ", seeded" : !strcmp(vis, "public") ? "" : ", not seeded");
    }
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(s, "reads");
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(r, "latency");
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(s, "bytes_by_source");
    human(num(bs, "store"), a, sizeof a);
    human(num(bs, "peers"), b, sizeof b);
    human(num(bs, "cdn"), c, sizeof c);
    printf("\nbytes: served from the store %s; fetched from peers %s, from the CDN %s\n", a, b, c);
    printf("reads: %.0f (%.0f answered from the store, %.0f waited for a fetch; %.0f through "
           "HTTP), %.0f errors; latency p50 <= %g ms, p99 <= %g ms\n",
           num(r, "count"), num(r, "from_store"), num(r, "waited"), num(r, "http"), num(r, "errors"),
           num(lat, "p50_ms"), num(lat, "p99_ms"));
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(s, "fetch_latency");
    printf("fetches in flight: %.0f; CDN fetch p50 <= %g ms; background fetches held for "
           "reads: %.0f; verification failures: %.0f; peer bans: %.0f\n",
           num(s, "fetches_in_flight"), num(cJSON_GetObjectItemCaseSensitive(fl, "cdn"), "p50_ms"),
           num(s, "fetches_held"), num(s, "verify_failures"), num(s, "peer_bans"));
    const cJSON *ad = cJSON_GetObjectItemCaseSensitive(s, "adopt");
    if (ad && num(ad, "files")) {
        human(num(ad, "adopted_bytes"), a, sizeof a);
        human(num(ad, "pending_bytes"), b, sizeof b);
        printf("earlier downloads: %.0f adopted (%s), %.0f pending (%s), %.0f refused, "
               "%.0f verified but not imported%s\n",
               num(ad, "adopted"), a, num(ad, "pending"), b, num(ad, "refused"),
               num(ad, "not_imported"),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ad, "running")) ? " (running)" : "");
    }
    const cJSON *po = cJSON_GetObjectItemCaseSensitive(s, "peers");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(po, "enabled"))) {
        human(num(po, "data_up"), a, sizeof a);
        human(num(po, "data_down"), b, sizeof b);
        printf("peers: %.0f connected in %.0f swarms, %.0f banned; served %s to peers, "
               "received %s\n",
               num(po, "connected"), num(po, "swarms"), num(po, "banned"), a, b);
        const cJSON *dh = cJSON_GetObjectItemCaseSensitive(po, "dht");
        printf("discovery: PEX %.0f received, %.0f sent, %.0f peers dialled from them; "
               "%.0f slow peers dropped; DHT %s",
               num(po, "pex_in"), num(po, "pex_out"), num(po, "pex_dialled"),
               num(po, "slow_drops"),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dh, "enabled")) ? "on" : "off");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dh, "enabled")))
            printf(" (%.0f nodes, %.0f good; %.0f lookups found %.0f peers; %.0f announces)",
                   num(dh, "nodes"), num(dh, "good_nodes"), num(dh, "lookups"),
                   num(dh, "peers_found"), num(dh, "announces"));
        printf("\n");
        printf("races: %.0f slow peer fetches raced against the CDN (the CDN won %.0f); "
               "%.0f fetches waited for a peer's CDN fetch\n",
               num(s, "races"), num(s, "races_cdn_won"), num(s, "fetches_parked"));
    } else
        printf("peers: off (--no-p2p)\n");
    const cJSON *slow = cJSON_GetObjectItemCaseSensitive(s, "slowest_reads");
    if (cJSON_GetArraySize(slow) > 0) {
        printf("\nslowest recent reads:\n");
        cJSON_ArrayForEach(it, slow)
        {
            human(num(it, "length"), a, sizeof a);
            printf("  %9.1f ms  %s  at %.0f (%s)\n", num(it, "ms"), str(it, "path"),
                   num(it, "offset"), a);
        }
    }
}

static void usage(FILE *f, const char *cmd)
{
    if (!strcmp(cmd, "status"))
        fprintf(f, "usage: zestfs status [--json] [--store DIR | MOUNTPOINT]\n");
    else
        fprintf(f, "usage: zestfs %s [--store DIR | --mount MOUNTPOINT] REPO%s\n", cmd,
                strcmp(cmd, "unpin") ? "[@REV]" : "");
}

/* zestfs status | verify | pin | unpin | evict */
int zestfs_cmd_ctl(int argc, char **argv)
{
    const char *cmd = argv[0];
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"mount", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *store = NULL, *mnt = NULL;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': store = optarg; break;
        case 'm': mnt = optarg; break;
        case 'j': json = true; break;
        case 'h': usage(stdout, cmd); return 0;
        default: usage(stderr, cmd); return 2;
        }
    }
    bool is_status = !strcmp(cmd, "status");
    if (is_status ? optind < argc - 1 : optind != argc - 1) {
        usage(stderr, cmd);
        return 2;
    }
    if (is_status && optind == argc - 1)
        mnt = argv[optind];
    char sock[PATH_MAX + 16];
    int rc = find_socket(store, mnt, sock, sizeof sock);
    if (rc) {
        fprintf(stderr, "zestfs %s: no zestfs mount found%s%s: %s\n", cmd, mnt ? " at " : "",
                mnt ? mnt : "", strerror(-rc));
        return 1;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "cmd", cmd);
    if (!is_status)
        cJSON_AddStringToObject(req, "repo", argv[optind]);
    char *line = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    FILE *in = line ? ctl_open(sock, line) : NULL;
    free(line);
    if (!in) {
        fprintf(stderr, "zestfs %s: %s: %s (is a zestfs mount running on that store?)\n", cmd,
                sock, strerror(errno));
        return 1;
    }
    char *buf = NULL;
    size_t cap = 0;
    int status = 1;
    while (getline(&buf, &cap, in) > 0) {
        cJSON *m = cJSON_Parse(buf);
        const char *ev = str(m, "event");
        bool more = !strcmp(ev, "file") || !strcmp(ev, "progress");
        if (!strcmp(ev, "status")) {
            if (json)
                fputs(buf, stdout);
            else
                print_status(m);
            status = 0;
        } else if (!strcmp(ev, "file")) {
            if (strcmp(str(m, "result"), "ok"))
                printf("%-9s %s%s%s\n", str(m, "result"), str(m, "path"),
                       *str(m, "error") ? "  " : "", str(m, "error"));
        } else if (!strcmp(ev, "progress")) {
            /* pin: the pull's progress */
        } else if (!strcmp(ev, "done")) {
            if (!strcmp(cmd, "verify")) {
                char a[32];
                human(num(m, "bytes"), a, sizeof a);
                printf("verify: %.0f files, %.0f ok (%s re-hashed), %.0f bad, %.0f not stored\n",
                       num(m, "files"), num(m, "ok"), a, num(m, "bad"), num(m, "missing"));
            } else if (!strcmp(cmd, "evict")) {
                char a[32];
                human(num(m, "bytes_freed"), a, sizeof a);
                printf("evicted %s: %.0f xorbs, %.0f small files, %s freed; kept %.0f shared "
                       "with other repos, %.0f pinned\n",
                       argv[optind], num(m, "xorbs"), num(m, "blobs"), a, num(m, "kept_shared"),
                       num(m, "kept_pinned"));
            } else if (*str(m, "pin"))
                printf("%s %s (%.0f xorbs)\n", strcmp(cmd, "pin") ? "unpinned" : "pinned",
                       str(m, "pin"), num(m, "xorbs"));
            status = num(m, "errno") ? 1 : 0;
            if (status)
                fprintf(stderr, "zestfs %s: %s\n", cmd, str(m, "error"));
        } else if (!strcmp(ev, "error")) {
            fprintf(stderr, "zestfs %s: %s\n", cmd, str(m, "error"));
            status = 1;
        }
        cJSON_Delete(m);
        if (!more)
            break;
    }
    free(buf);
    fclose(in);
    return status;
}
