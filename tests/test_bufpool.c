/* test_bufpool.c — fs/bufpool.c: big buffers are reused (same memory, kept
 * faulted), small ones and ones far too big are not handed out for a
 * request, the pool never keeps more than ZF_BUF_KEEP, warm-up fills it,
 * and threads taking and giving back buffers at once lose none. */
#include <pthread.h>
#include <stdint.h>

#include "../fs/bufpool.h"
#include "t.h"

static void test_reuse(void)
{
    zf_buf_trim();
    T_EQ_INT(zf_buf_kept(), 0);
    uint8_t *a = zf_buf_get(3 * ZF_BUF_MIN + 5);
    T_TRUE(a != NULL);
    T_TRUE(((uintptr_t)a & 63) == 0);
    memset(a, 0xab, 3 * ZF_BUF_MIN + 5);
    zf_buf_free(a);
    T_EQ_INT(zf_buf_kept(), 4 * ZF_BUF_MIN); /* rounded up to whole MiB */
    uint8_t *b = zf_buf_get(4 * ZF_BUF_MIN); /* fits the kept one */
    T_TRUE(b == a);
    T_EQ_INT(zf_buf_kept(), 0);
    T_TRUE(b[4 * ZF_BUF_MIN - 1] == 0xab || b[3 * ZF_BUF_MIN] == 0xab); /* same memory */
    zf_buf_free(b);
    /* too small a request for it: a buffer of its own */
    uint8_t *c = zf_buf_get(ZF_BUF_MIN / 2);
    T_TRUE(c != NULL && c != a);
    T_EQ_INT(zf_buf_kept(), 4 * ZF_BUF_MIN);
    zf_buf_free(c); /* small: not kept */
    T_EQ_INT(zf_buf_kept(), 4 * ZF_BUF_MIN);
    /* a bigger request than anything kept: fresh */
    uint8_t *d = zf_buf_get(5 * ZF_BUF_MIN);
    T_TRUE(d != NULL && d != a);
    zf_buf_free(d);
    T_EQ_INT(zf_buf_kept(), 9 * ZF_BUF_MIN);
    /* the smallest that fits is the one handed out */
    uint8_t *e = zf_buf_get(4 * ZF_BUF_MIN);
    T_TRUE(e == a);
    zf_buf_free(e);
    zf_buf_free(zf_buf_get(0));
    zf_buf_free(NULL);
    zf_buf_trim();
}

static void test_cap_and_warm(void)
{
    zf_buf_trim();
    void *v[40];
    for (int i = 0; i < 40; i++)
        v[i] = zf_buf_get(2 * ZF_BUF_MIN);
    for (int i = 0; i < 40; i++)
        zf_buf_free(v[i]);
    T_TRUE(zf_buf_kept() <= ZF_BUF_KEEP);
    T_EQ_INT(zf_buf_kept(), ZF_BUF_KEEP / (2 * ZF_BUF_MIN) * 2 * ZF_BUF_MIN);
    zf_buf_trim();
    T_EQ_INT(zf_buf_kept(), 0);
    zf_buf_warm(12u << 20, 2);
    T_EQ_INT(zf_buf_kept(), 24u << 20);
    zf_buf_warm(12u << 20, 100); /* only what fits under the cap */
    size_t full = ZF_BUF_KEEP / (12u << 20) * (12u << 20);
    T_EQ_INT(zf_buf_kept(), full);
    uint8_t *w = zf_buf_get(10u << 20);
    T_TRUE(w != NULL && w[0] == 0 && w[(10u << 20) - 1] == 0);
    T_EQ_INT(zf_buf_kept(), full - (12u << 20));
    zf_buf_free(w);
    zf_buf_trim();
}

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < 2000; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = ZF_BUF_MIN + (seed >> 8) % (6 * ZF_BUF_MIN);
        uint8_t *p = zf_buf_get(n);
        if (!p)
            return (void *)1;
        p[0] = (uint8_t)i;
        p[n - 1] = (uint8_t)i;
        if (p[0] != (uint8_t)i || p[n - 1] != (uint8_t)i)
            return (void *)1;
        zf_buf_free(p);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += r != NULL;
    }
    T_EQ_INT(bad, 0);
    T_TRUE(zf_buf_kept() <= ZF_BUF_KEEP);
    zf_buf_trim();
}

int main(void)
{
    T_RUN(test_reuse);
    T_RUN(test_cap_and_warm);
    T_RUN(test_threads);
    return t_done();
}
