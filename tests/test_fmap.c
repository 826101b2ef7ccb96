/* test_fmap.c — fs/read/fmap.c: a file's extent map (file bytes -> xorb
 * chunks).  Extents added in any order, overlapping, or two at one offset
 * (a tensor's narrow extent, then its window's from the same byte) keep the
 * map sorted with strictly growing starts and ends; a saved map loads back
 * whole; a map an older build saved out of order or overlapping loads
 * (sorted out), not refused (refusing it made an offline remount EIO on a
 * file read whole: fs-read).  The store and the log are stubs here. */
#include "../fs/read/read_int.h"
#include "../fs/read/fmap.h"
#include "../fs/p2p.h"
#include "../fs/log.h"
#include "t.h"

/* ---- stubs: one key of metadata in memory, no swarm, a quiet log */
int zf_log_level = ZF_LOG_INFO;
static char meta_key[80];
static void *meta;
static size_t meta_len;
static int warnings;

int zc_meta_put(zc_store *s, const char *key, const void *data, size_t len, unsigned flags)
{
    (void)s, (void)flags;
    snprintf(meta_key, sizeof meta_key, "%s", key);
    free(meta);
    meta = malloc(len + 1);
    memcpy(meta, data, len);
    meta_len = len;
    return 0;
}

int zc_meta_get(zc_store *s, const char *key, void **data, size_t *len)
{
    (void)s;
    if (!meta || strcmp(key, meta_key) != 0)
        return -ENOENT;
    *data = malloc(meta_len + 1);
    memcpy(*data, meta, meta_len);
    ((char *)*data)[meta_len] = 0;
    *len = meta_len;
    return 0;
}

void zf_log(int level, const char *fmt, ...)
{
    (void)fmt;
    if (level <= ZF_LOG_WARN)
        warnings++;
}

const char *zf_strerror(int e)
{
    return e ? "error" : "ok";
}

void zf_p2p_repo_xorb(zf_p2p *p, const char *type, const char *id, const xet_hash *xorb)
{
    (void)p, (void)type, (void)id, (void)xorb;
}

const char *zf_p2p_type_name(enum zf_repo_type t)
{
    (void)t;
    return "model";
}

/* ---- helpers */
static rd_ext ext(uint64_t off, uint64_t len, uint8_t x, uint32_t cs, uint32_t ce)
{
    rd_ext e = {off, len, {{0}}, cs, ce};
    e.xorb.b[0] = x;
    return e;
}

static void sorted(const rd_file *f)
{
    for (size_t i = 1; i < f->n; i++) {
        T_TRUE(f->ext[i].off > f->ext[i - 1].off);
        T_TRUE(f->ext[i].off + f->ext[i].len > f->ext[i - 1].off + f->ext[i - 1].len);
    }
}

static uv_loop_t loop;
static zf_fs fs;
static rd_ctx ctx;

static rd_file *file(void)
{
    rd_file *f = calloc(1, sizeof *f);
    f->c = &ctx;
    f->size = 64ull << 20;
    snprintf(f->id, sizeof f->id, "%064d", 7);
    return f;
}

static void drop(rd_file *f)
{
    free(f->ext);
    free(f);
}

static void test_same_offset(void)
{
    rd_file *f = file();
    rd_ext head = ext(0, 1 << 20, 1, 0, 15);
    T_EQ_INT(rd_ext_add(f, &head), 1);
    rd_ext narrow = ext(12 << 20, 1 << 20, 1, 180, 196), wide = ext(12 << 20, 4 << 20, 1, 180, 245);
    T_EQ_INT(rd_ext_add(f, &narrow), 1);
    T_EQ_INT(rd_ext_add(f, &wide), 1); /* it takes the narrow one's place */
    T_EQ_INT(f->n, 2);
    T_EQ_INT(f->ext[1].len, 4 << 20);
    T_EQ_INT(rd_ext_add(f, &narrow), 0); /* contained now */
    T_EQ_INT(f->n, 2);
    sorted(f);
    drop(f);
}

static void test_any_order(void)
{
    rd_file *f = file();
    uint64_t M = 1 << 20;
    rd_ext es[] = {ext(8 * M, 8 * M, 2, 0, 130), ext(9 * M, M, 2, 16, 33), ext(0, 8 * M, 1, 0, 125),
                   ext(16 * M, 2 * M, 3, 0, 30), ext(16 * M, 8 * M, 3, 0, 128), ext(4 * M, 6 * M, 4, 0, 90),
                   ext(30 * M, M, 5, 0, 15), ext(28 * M, 4 * M, 5, 0, 60)};
    for (size_t i = 0; i < sizeof es / sizeof *es; i++) {
        T_TRUE(rd_ext_add(f, &es[i]) >= 0);
        sorted(f);
    }
    T_EQ_INT(rd_ext_uncovered(f, 0, 24 * M), 24 * M);
    T_EQ_INT(rd_ext_uncovered(f, 24 * M, 32 * M), 24 * M);
    drop(f);
}

static void test_save_load(void)
{
    rd_file *f = file();
    uint64_t M = 1 << 20;
    rd_ext a = ext(0, 8 * M, 1, 0, 125), b = ext(8 * M, M, 2, 125, 141), c = ext(8 * M, 8 * M, 2, 125, 260);
    rd_ext_add(f, &a);
    rd_ext_add(f, &b);
    rd_ext_add(f, &c);
    rd_map_save(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    rd_file *g = file();
    warnings = 0;
    rd_map_load(g);
    uv_run(&loop, UV_RUN_DEFAULT);
    T_EQ_INT(warnings, 0);
    T_EQ_INT(g->map_state, MAP_READY);
    T_EQ_INT(g->n, f->n);
    for (size_t i = 0; i < g->n && i < f->n; i++) {
        T_EQ_INT(g->ext[i].off, f->ext[i].off);
        T_EQ_INT(g->ext[i].len, f->ext[i].len);
        T_EQ_INT(g->ext[i].ce, f->ext[i].ce);
    }
    drop(g);

    /* a map saved out of order and overlapping (by an older build): loaded, sorted out */
    rd_ext bad[] = {a, b, c}; /* b and c start at one offset */
    f->n = 0;
    memcpy(f->ext, bad, sizeof bad);
    f->n = 3;
    rd_map_save(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    g = file();
    warnings = 0;
    rd_map_load(g);
    uv_run(&loop, UV_RUN_DEFAULT);
    T_EQ_INT(warnings, 0);
    T_EQ_INT(g->n, 2);
    T_EQ_INT(rd_ext_uncovered(g, 0, 16 * M), 16 * M);
    sorted(g);
    drop(g);
    drop(f);
}

int main(void)
{
    uv_loop_init(&loop);
    ctx.fs = &fs;
    ctx.loop = &loop;
    T_RUN(test_same_offset);
    T_RUN(test_any_order);
    T_RUN(test_save_load);
    uv_loop_close(&loop);
    free(meta);
    return t_done();
}
