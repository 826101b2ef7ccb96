/* test_bencode.c — net/bencode: BEP 3 vectors, round trips, and malformed
 * input, each with its exact errno. */
#include "bencode.h"
#include "t.h"

static int dec(const char *s, unsigned flags, zb_val **v, size_t *used)
{
    return zb_decode((const uint8_t *)s, strlen(s), flags, v, used);
}

static int dec_err(const char *s, unsigned flags)
{
    zb_val *v = NULL;
    size_t used = 0;
    int r = zb_decode((const uint8_t *)s, strlen(s), flags, &v, &used);
    zb_free(v);
    return r;
}

static void test_bep3_vectors(void)
{
    zb_val *v;
    size_t used;
    T_EQ_INT(dec("4:spam", 0, &v, &used), 0);
    T_EQ_INT(v->type, ZB_STR);
    T_EQ_INT(v->len, 4);
    T_EQ_MEM(v->s, "spam", 4);
    T_EQ_INT(used, 6);
    zb_free(v);

    T_EQ_INT(dec("0:", 0, &v, &used), 0);
    T_EQ_INT(v->len, 0);
    zb_free(v);

    T_EQ_INT(dec("i3e", 0, &v, &used), 0);
    T_EQ_INT(v->type, ZB_INT);
    T_EQ_INT(v->i, 3);
    zb_free(v);
    T_EQ_INT(dec("i-3e", 0, &v, &used), 0);
    T_EQ_INT(v->i, -3);
    zb_free(v);
    T_EQ_INT(dec("i0e", 0, &v, &used), 0);
    T_EQ_INT(v->i, 0);
    zb_free(v);
    T_EQ_INT(dec("i9223372036854775807e", 0, &v, &used), 0);
    T_EQ_INT(v->i, INT64_MAX);
    zb_free(v);
    T_EQ_INT(dec("i-9223372036854775808e", 0, &v, &used), 0);
    T_TRUE(v->i == INT64_MIN);
    zb_free(v);

    T_EQ_INT(dec("l4:spam4:eggse", 0, &v, &used), 0);
    T_EQ_INT(v->type, ZB_LIST);
    T_EQ_INT(v->len, 2);
    T_EQ_MEM(v->items[0].s, "spam", 4);
    T_EQ_MEM(v->items[1].s, "eggs", 4);
    zb_free(v);

    T_EQ_INT(dec("le", 0, &v, &used), 0);
    T_EQ_INT(v->len, 0);
    zb_free(v);

    T_EQ_INT(dec("d3:cow3:moo4:spam4:eggse", 0, &v, &used), 0);
    T_EQ_INT(v->type, ZB_DICT);
    T_EQ_INT(v->len, 2);
    const uint8_t *s;
    size_t n;
    T_TRUE(zb_get_str(v, "cow", &s, &n));
    T_EQ_INT(n, 3);
    T_EQ_MEM(s, "moo", 3);
    T_TRUE(zb_get_str(v, "spam", &s, &n));
    T_EQ_MEM(s, "eggs", 4);
    T_TRUE(!zb_get(v, "xyz"));
    int64_t i;
    T_TRUE(!zb_get_int(v, "cow", &i));
    zb_free(v);

    T_EQ_INT(dec("d4:spaml1:a1:bee", 0, &v, &used), 0);
    const zb_val *l = zb_get(v, "spam");
    T_TRUE(l && l->type == ZB_LIST && l->len == 2);
    zb_free(v);

    /* trailing bytes are left to the caller */
    T_EQ_INT(dec("i1exyz", 0, &v, &used), 0);
    T_EQ_INT(used, 3);
    zb_free(v);

    /* binary strings */
    const uint8_t bin[] = {'3', ':', 0, 0xff, 'e'};
    T_EQ_INT(zb_decode(bin, sizeof bin, 0, &v, &used), 0);
    T_EQ_INT(v->len, 3);
    T_EQ_INT(v->s[1], 0xff);
    zb_free(v);

    /* BEP 10 handshake as zest sends it */
    T_EQ_INT(dec("d1:md6:ut_xeti1ee1:pi6881e1:v8:zest/0.3e", 0, &v, &used), 0);
    T_TRUE(zb_get_int(zb_get(v, "m"), "ut_xet", &i) && i == 1);
    T_TRUE(zb_get_int(v, "p", &i) && i == 6881);
    zb_free(v);
}

static void test_malformed(void)
{
    const char *bad[] = {
        "",          /* empty */
        "i",         /* truncated */
        "i1",        "ie",        "i-e",        "i-0e",      "i03e",       "i-03e",
        "i1.5e",     "i 1e",      "i+1e",       "i9223372036854775808e",
        "i-9223372036854775809e", "i99999999999999999999e",
        "5:spam",    /* string past the end */
        "04:spam",   /* leading zero length */
        "-1:a",      ":a",         "4spam",
        "l",         "l4:spam",    "d",          "d3:cow",    "d3:cowe",
        "di1ei2ee",  /* non-string key */
        "d4:spam1:a3:cow1:be", /* unsorted */
        "d3:cow1:a3:cow1:be",  /* duplicate */
        "x",         "e",
        "18446744073709551616:a",
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        int r = dec_err(bad[k], 0);
        if (r != -EBADMSG)
            fprintf(stderr, "  input %zu \"%s\"\n", k, bad[k]);
        T_EQ_INT(r, -EBADMSG);
    }
    /* lenient order: unsorted accepted (tree sorted), duplicates still rejected */
    zb_val *v;
    size_t used;
    T_EQ_INT(dec("d4:spam1:a3:cow1:be", ZB_LENIENT_ORDER, &v, &used), 0);
    T_EQ_MEM(v->items[0].s, "cow", 3);
    const uint8_t *s;
    size_t n;
    T_TRUE(zb_get_str(v, "spam", &s, &n) && n == 1 && s[0] == 'a');
    zb_free(v);
    T_EQ_INT(dec_err("d3:cow1:a3:cow1:be", ZB_LENIENT_ORDER), -EBADMSG);

    /* depth cap: 32 nested lists pass, 33 fail */
    char deep[80];
    memset(deep, 'l', 32);
    memset(deep + 32, 'e', 32);
    deep[64] = 0;
    T_EQ_INT(dec_err(deep, 0), 0);
    memset(deep, 'l', 33);
    memset(deep + 33, 'e', 33);
    deep[66] = 0;
    T_EQ_INT(dec_err(deep, 0), -EBADMSG);

    /* item cap: 1<<20 values fail (root list + items) */
    size_t cnt = ZB_MAX_ITEMS;
    char *big = malloc(2 + cnt * 3 + 1);
    big[0] = 'l';
    for (size_t k = 0; k < cnt; k++)
        memcpy(big + 1 + 3 * k, "i0e", 3);
    big[1 + 3 * cnt] = 'e';
    big[2 + 3 * cnt] = 0;
    T_EQ_INT(dec_err(big, 0), -EBADMSG);
    big[1 + 3 * (cnt - 1)] = 'e';
    big[2 + 3 * (cnt - 1)] = 0;
    T_EQ_INT(dec_err(big, 0), 0);
    free(big);
}

static void test_encode(void)
{
    zb_buf b = {0};
    zb_dict(&b);
    zb_cstr(&b, "m");
    zb_dict(&b);
    zb_cstr(&b, "ut_xet");
    zb_int(&b, 1);
    zb_end(&b);
    zb_cstr(&b, "p");
    zb_int(&b, 6881);
    zb_cstr(&b, "v");
    zb_cstr(&b, "zest/0.3");
    zb_end(&b);
    T_EQ_INT(b.err, 0);
    const char *want = "d1:md6:ut_xeti1ee1:pi6881e1:v8:zest/0.3e";
    T_EQ_INT(b.len, strlen(want));
    T_EQ_MEM(b.p, want, strlen(want));
    free(b.p);

    zb_buf c = {0};
    zb_list(&c);
    zb_int(&c, 0);
    zb_int(&c, -42);
    zb_int(&c, INT64_MIN);
    zb_str(&c, "", 0);
    zb_end(&c);
    const char *w2 = "li0ei-42ei-9223372036854775808e0:e";
    T_EQ_INT(c.len, strlen(w2));
    T_EQ_MEM(c.p, w2, strlen(w2));
    zb_val *v;
    size_t used;
    T_EQ_INT(zb_decode(c.p, c.len, 0, &v, &used), 0);
    T_EQ_INT(used, c.len);
    T_TRUE(v->items[2].i == INT64_MIN);
    zb_free(v);
    free(c.p);
}

/* Issue #19: a duplicate key is refused at every depth, in both modes; keys
 * out of order stay refused in strict mode and accepted (sorted) in lenient
 * mode, which is what the wire parsers use for libtorrent's sorted dicts. */
static void test_duplicate_keys_nested(void)
{
    static const char *dups[] = {
        "d1:ad1:xi1e1:xi2eee",              /* dict in dict */
        "d1:ad1:yi1e1:xi2e1:yi3eee",        /* dict in dict, unsorted */
        "ld1:ai1e1:ai2eee",                 /* dict in list */
        "d1:ald1:bld1:ci1e1:ci1eeeeee",     /* four levels down */
        "d1:bi0e1:ad1:qi0e1:qi0eee",        /* outer unsorted, inner dup */
        "d1:md6:ut_xeti1e6:ut_xeti2ee1:pi1ee", /* a BEP 10 handshake's m */
    };
    for (size_t k = 0; k < sizeof dups / sizeof *dups; k++) {
        T_EQ_INT(dec_err(dups[k], 0), -EBADMSG);
        T_EQ_INT(dec_err(dups[k], ZB_LENIENT_ORDER), -EBADMSG);
    }
    /* no duplicate: lenient accepts any order at any depth and sorts */
    zb_val *v;
    size_t used;
    const char *ok = "d1:bi0e1:ad1:yi1e1:xi2eee";
    T_EQ_INT(dec_err(ok, 0), -EBADMSG);
    T_EQ_INT(dec(ok, ZB_LENIENT_ORDER, &v, &used), 0);
    const zb_val *a = zb_get(v, "a");
    int64_t x = 0, y = 0;
    T_TRUE(a && zb_get_int(a, "x", &x) && zb_get_int(a, "y", &y));
    T_EQ_INT(x, 2);
    T_EQ_INT(y, 1);
    zb_free(v);
    /* the same key in two different dicts is no duplicate */
    T_EQ_INT(dec_err("d1:ad1:ai1ee1:bd1:ai2eee", 0), 0);
    T_EQ_INT(dec_err("ld1:ai1eed1:ai2eee", ZB_LENIENT_ORDER), 0);
}

int main(void)
{
    T_RUN(test_bep3_vectors);
    T_RUN(test_malformed);
    T_RUN(test_encode);
    T_RUN(test_duplicate_keys_nested);
    return t_done();
}
