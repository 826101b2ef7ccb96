/* httputil.c — small request helpers of the origin server: path segments,
 * percent-coding, query arguments, the client's address, JSON and error
 * responses. */
#include "server_int.h"

/* ---- small helpers -------------------------------------------------------- */

/* percent-decode (and '+' -> ' ' when form) into a new string; NULL on a
 * malformed escape or an embedded NUL */
char *os__pct_decode(const char *s, size_t n, bool form)
{
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int a = i + 2 < n ? xet_hexval(s[i + 1]) : -1, b = i + 2 < n ? xet_hexval(s[i + 2]) : -1;
            if (a < 0 || b < 0 || (a == 0 && b == 0)) {
                free(o);
                return NULL;
            }
            o[k++] = (char)(a * 16 + b);
            i += 2;
        } else if (form && s[i] == '+') {
            o[k++] = ' ';
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = 0;
    return o;
}

void os__pct_encode(const char *s, bool keep_slash, char *out, size_t cap)
{
    size_t k = 0;
    for (; *s && k + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            out[k++] = (char)c;
        } else {
            snprintf(out + k, 4, "%%%02X", c);
            k += 3;
        }
    }
    out[k] = 0;
}

void os__segs_free(segs *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->v[i]);
    free(g->v);
    g->v = NULL;
    g->n = 0;
}

int os__split_path(const char *url, segs *g)
{
    g->v = NULL;
    g->n = 0;
    const char *q = strchr(url, '?');
    size_t len = q ? (size_t)(q - url) : strlen(url);
    size_t cap = 8;
    g->v = calloc(cap, sizeof *g->v);
    if (!g->v)
        return -ENOMEM;
    size_t i = 0;
    while (i < len) {
        while (i < len && url[i] == '/')
            i++;
        if (i >= len)
            break;
        size_t j = i;
        while (j < len && url[j] != '/')
            j++;
        if (g->n == cap) {
            cap *= 2;
            char **nv = realloc(g->v, cap * sizeof *nv);
            if (!nv) {
                os__segs_free(g);
                return -ENOMEM;
            }
            g->v = nv;
        }
        g->v[g->n] = os__pct_decode(url + i, j - i, false);
        if (!g->v[g->n]) {
            os__segs_free(g);
            return -EINVAL;
        }
        g->n++;
        i = j;
    }
    return 0;
}

/* join segs[from..] with '/' */
char *os__join_segs(const segs *g, size_t from)
{
    size_t len = 1;
    for (size_t i = from; i < g->n; i++)
        len += strlen(g->v[i]) + 1;
    char *o = malloc(len);
    if (!o)
        return NULL;
    o[0] = 0;
    for (size_t i = from; i < g->n; i++) {
        if (i > from)
            strcat(o, "/");
        strcat(o, g->v[i]);
    }
    return o;
}

char *os__query_arg(struct MHD_Connection *c, const char *key)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    if (!v)
        return NULL;
    return os__pct_decode(v, strlen(v), true);
}

bool os__query_true(struct MHD_Connection *c, const char *key)
{
    char *v = os__query_arg(c, key);
    bool t = v && (!strcasecmp(v, "true") || !strcmp(v, "1"));
    free(v);
    return t;
}

bool os__is_loopback(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return false;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

void os__client_str(struct MHD_Connection *c, char *out, size_t cap)
{
    out[0] = 0;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

/* base URL: --public-url, else scheme://Host */
char *os__base_url(srv *S, struct MHD_Connection *c)
{
    if (S->o->public_url)
        return strdup(S->o->public_url);
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (!host || !host[0] || strpbrk(host, " \r\n/\"<>"))
        host = "localhost";
    return o_strdup_printf("%s://%s", S->tls ? "https" : "http", host);
}

void os__iso_date(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

/* ---- responses ------------------------------------------------------------ */

enum MHD_Result os__queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result os__send_json(struct MHD_Connection *c, unsigned status, cJSON *j,
                              struct MHD_Response **keep)
{
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", JSON_CT);
    if (keep) {
        *keep = r;
        return MHD_YES;
    }
    return os__queue(c, status, r);
}

struct MHD_Response *os__err_response(const char *code, const char *msg)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    struct MHD_Response *r =
        s ? MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        free(s);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", JSON_CT);
    if (code)
        MHD_add_response_header(r, "X-Error-Code", code);
    MHD_add_response_header(r, "X-Error-Message", msg);
    return r;
}

enum MHD_Result os__send_err(struct MHD_Connection *c, unsigned status, const char *code,
                             const char *msg)
{
    struct MHD_Response *r = os__err_response(code, msg);
    if (!r)
        return MHD_NO;
    return os__queue(c, status, r);
}
