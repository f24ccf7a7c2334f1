/* SPDX-License-Identifier: MIT */
/* The HTTP layer over GNU libmicrohttpd: one internal epoll thread for every connection
 * (idle keep-alive connections cost a socket, not a thread), routing, authentication, body
 * limits, and suspend/resume to wait for the engine thread: a completion request is queued
 * and its connection suspended; the engine resumes it when output grows or the request
 * ends. A streamed answer is a chunked response whose reader hands out the SSE bytes written
 * so far and suspends the connection when it has caught up. */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef enum {
    EP_CHAT,
    EP_COMPLETIONS,
    EP_MODELS,
    EP_HEALTH,
    EP_METRICS,
    EP_TOKENIZE,
    EP_DETOKENIZE,
    EP_TEMPLATE,
} endpoint;

static const struct route {
    const char *path, *method;
    endpoint ep;
    int auth;
} routes[] = {
    {"/v1/chat/completions", "POST", EP_CHAT, 1}, {"/v1/completions", "POST", EP_COMPLETIONS, 1},
    {"/v1/models", "GET", EP_MODELS, 1},          {"/health", "GET", EP_HEALTH, 0},
    {"/metrics", "GET", EP_METRICS, 0},           {"/tokenize", "POST", EP_TOKENIZE, 1},
    {"/detokenize", "POST", EP_DETOKENIZE, 1},    {"/apply-template", "POST", EP_TEMPLATE, 1},
};

typedef struct http_ctx {
    const struct route *rt;
    srv_buf body;
    int too_large, answered;
    srv_req *req; /* a queued completion */
} http_ctx;

void srv_req_unref(srv_req *r)
{
    if (--r->refs > 0) return;
    srv_server *s = r->srv;
    free(r->prompt);
    free(r->prompt_off);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    srv_buf_free(&r->out);
    for (int i = 0; r->choices && i < r->n; i++) {
        srv_buf_free(&r->choices[i].text);
        eng_sampler_free(r->choices[i].smp);
        cJSON_Delete(r->choices[i].lp_pending);
    }
    free(r->choices);
    free(r);
    s->live--;
    pthread_cond_broadcast(&s->wake);
}

static int status_class(int status)
{
    switch (status) {
    case 400:
        return 1;
    case 401:
        return 2;
    case 404:
    case 405:
        return 3;
    case 413:
        return 4;
    case 503:
        return 5;
    default:
        return status < 300 ? 0 : 1;
    }
}

static enum MHD_Result respond(srv_server *s, struct MHD_Connection *c, http_ctx *h, int status,
                               const char *type, const char *body)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(body ? body : ""), (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == 503) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 405 && h && h->rt)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, h->rt->method);
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    pthread_mutex_lock(&s->lock);
    s->st.requests[status_class(status)]++;
    pthread_mutex_unlock(&s->lock);
    if (h) h->answered = 1;
    return ret;
}

static enum MHD_Result respond_error(srv_server *s, struct MHD_Connection *c, http_ctx *h,
                                     const srv_error *e)
{
    char *j = srv_api_error_json(e);
    enum MHD_Result ret = respond(s, c, h, e->status, "application/json", j ? j : "{}");
    free(j);
    return ret;
}

static enum MHD_Result fail(srv_server *s, struct MHD_Connection *c, http_ctx *h, int status,
                            const char *param, const char *code, const char *msg)
{
    srv_error e;
    srv_err(&e, status, param, code, "%s", msg);
    return respond_error(s, c, h, &e);
}

/* Constant-time comparison of the bearer token with the key. */
static int authorized(const srv_server *s, struct MHD_Connection *c)
{
    if (!s->api_key) return 1;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a || strncasecmp(a, "Bearer ", 7)) return 0;
    a += 7;
    size_t la = strlen(a), lk = strlen(s->api_key);
    unsigned char d = la != lk;
    for (size_t i = 0; i < lk; i++)
        d |= (unsigned char)(s->api_key[i] ^ (i < la ? a[i] : 0));
    return d == 0;
}

/* ------------------------------------------------------------------ streaming */
static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    srv_req *r = cls;
    srv_server *s = r->srv;
    pthread_mutex_lock(&s->lock);
    ssize_t n;
    if (pos < r->out.len) {
        n = (ssize_t)(r->out.len - pos < max ? r->out.len - pos : max);
        memcpy(buf, r->out.p + pos, (size_t)n);
    } else if (r->done || r->cancelled || !r->conn) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        r->suspended = 1; /* srv_http_wake resumes it; both under the lock */
        MHD_suspend_connection(r->conn);
        n = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

static void sse_free(void *cls)
{
    srv_req *r = cls;
    srv_server *s = r->srv;
    pthread_mutex_lock(&s->lock);
    srv_req_unref(r);
    pthread_mutex_unlock(&s->lock);
}

void srv_http_wake(srv_req *r)
{
    if (r->suspended && r->conn) {
        r->suspended = 0;
        MHD_resume_connection(r->conn);
    }
}

int srv_http_gone(srv_req *r)
{
    if (!r->conn) return 1;
    if (!r->suspended) return 0; /* libmicrohttpd watches it and will tell us */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char ch;
    ssize_t k = recv(ci->connect_fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The engine woke a suspended completion: answer with what it produced. */
static enum MHD_Result answer_completion(srv_server *s, struct MHD_Connection *c, http_ctx *h)
{
    srv_req *r = h->req;
    pthread_mutex_lock(&s->lock);
    if (r->cancelled && !r->done) { /* the client is gone: close */
        pthread_mutex_unlock(&s->lock);
        return MHD_NO;
    }
    if (!r->done && !r->stream) { /* spurious wake: wait on */
        r->suspended = 1;
        MHD_suspend_connection(c);
        pthread_mutex_unlock(&s->lock);
        return MHD_YES;
    }
    if (r->stream) {
        r->refs++; /* the response's reference, dropped by sse_free */
        pthread_mutex_unlock(&s->lock);
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_reader, r, sse_free);
        if (!resp) {
            sse_free(r);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        pthread_mutex_lock(&s->lock);
        s->st.requests[0]++;
        pthread_mutex_unlock(&s->lock);
        h->answered = 1;
        return ret;
    }
    int status = r->status ? r->status : 500;
    char *body = strdup(r->out.p ? r->out.p : "");
    pthread_mutex_unlock(&s->lock);
    enum MHD_Result ret = respond(s, c, h, status, "application/json", body ? body : "");
    free(body);
    return ret;
}

static enum MHD_Result start_completion(srv_server *s, struct MHD_Connection *c, http_ctx *h)
{
    pthread_mutex_lock(&s->lock);
    int busy = s->lost || s->draining || !s->ready;
    const char *why = s->lost       ? "a rank of the server was lost"
                      : s->draining ? "the server is shutting down"
                                    : "the model is loading";
    pthread_mutex_unlock(&s->lock);
    if (busy) return fail(s, c, h, 503, NULL, "unavailable", why);
    srv_error e;
    srv_req *r = srv_api_parse(s, h->rt->ep == EP_CHAT ? SRV_CHAT : SRV_COMPLETION, h->body.p,
                               h->body.len, &e);
    if (!r) return respond_error(s, c, h, &e);
    pthread_mutex_lock(&s->lock);
    /* Each choice is a sequence: at most --parallel run and --max-queue wait. */
    if (s->running + s->queued_seqs + r->n > s->slots + s->o->max_queue) {
        srv_req_unref(r);
        pthread_mutex_unlock(&s->lock);
        return fail(s, c, h, 503, NULL, "queue_full",
                    "the request queue is full (--max-queue); retry later");
    }
    r->refs = 2; /* this connection and the engine */
    r->engine_ref = 1;
    r->in_queue = 1;
    s->queued_seqs += r->n;
    r->conn = c;
    h->req = r;
    if (s->queue_tail)
        s->queue_tail->next = r;
    else
        s->queue_head = r;
    s->queue_tail = r;
    s->queued++;
    r->suspended = 1;
    MHD_suspend_connection(c);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return MHD_YES;
}

static enum MHD_Result dispatch(srv_server *s, struct MHD_Connection *c, http_ctx *h)
{
    srv_error e;
    char *body = NULL;
    const char *type = "application/json";
    pthread_mutex_lock(&s->lock);
    int ready = s->ready;
    pthread_mutex_unlock(&s->lock);
    if (!ready && h->rt->ep != EP_HEALTH && h->rt->ep != EP_METRICS)
        return fail(s, c, h, 503, NULL, "unavailable", "the model is loading");
    switch (h->rt->ep) {
    case EP_CHAT:
    case EP_COMPLETIONS:
        return start_completion(s, c, h);
    case EP_HEALTH: {
        pthread_mutex_lock(&s->lock);
        const char *state = s->lost       ? "rank lost"
                            : s->draining ? "draining"
                            : !s->ready   ? "loading"
                                          : NULL;
        pthread_mutex_unlock(&s->lock);
        if (state) return fail(s, c, h, 503, NULL, "unavailable", state);
        return respond(s, c, h, 200, type, "{\"status\":\"ok\"}");
    }
    case EP_MODELS:
        body = srv_api_models(s);
        break;
    case EP_METRICS:
        body = srv_api_metrics(s);
        type = "text/plain; version=0.0.4; charset=utf-8";
        break;
    case EP_TOKENIZE:
        body = srv_api_tokenize(s, h->body.p, h->body.len, &e);
        break;
    case EP_DETOKENIZE:
        body = srv_api_detokenize(s, h->body.p, h->body.len, &e);
        break;
    case EP_TEMPLATE:
        body = srv_api_apply_template(s, h->body.p, h->body.len, &e);
        break;
    }
    if (!body) {
        if (h->rt->ep == EP_MODELS || h->rt->ep == EP_METRICS)
            return fail(s, c, h, 500, NULL, NULL, "out of memory");
        return respond_error(s, c, h, &e);
    }
    enum MHD_Result ret = respond(s, c, h, 200, type, body);
    free(body);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    srv_server *s = cls;
    http_ctx *h = *con_cls;
    if (!h) {
        if (!(h = calloc(1, sizeof(*h)))) return MHD_NO;
        *con_cls = h;
        const struct route *path_match = NULL;
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
            if (strcmp(url, routes[i].path)) continue;
            path_match = &routes[i];
            if (!strcmp(method, routes[i].method)) h->rt = &routes[i];
        }
        if (!path_match) {
            char msg[300];
            snprintf(msg, sizeof(msg), "no endpoint %.200s", url);
            return fail(s, c, h, 404, NULL, "not_found", msg);
        }
        if (!h->rt) {
            h->rt = path_match;
            char msg[300];
            snprintf(msg, sizeof(msg), "%s takes %s, not %.20s", url, path_match->method, method);
            return fail(s, c, h, 405, NULL, "method_not_allowed", msg);
        }
        if (h->rt->auth && !authorized(s, c))
            return fail(s, c, h, 401, NULL, "invalid_api_key",
                        "missing or wrong API key (Authorization: Bearer KEY)");
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->o->max_body) h->too_large = 1;
        if (h->too_large) goto too_large;
        return MHD_YES;
    }
    if (h->answered) { /* the rest of a body we already answered: drop it */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!h->too_large && h->body.len + *upload_size > s->o->max_body) h->too_large = 1;
        if (!h->too_large && srv_buf_add(&h->body, upload, *upload_size)) return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (h->req) return answer_completion(s, c, h);
    if (h->too_large) goto too_large;
    return dispatch(s, c, h);
too_large : {
    char msg[160];
    snprintf(msg, sizeof(msg), "request body larger than %zu bytes", s->o->max_body);
    return fail(s, c, h, 413, NULL, "request_too_large", msg);
}
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    srv_server *s = cls;
    http_ctx *h = *con_cls;
    if (!h) return;
    if (h->req) {
        pthread_mutex_lock(&s->lock);
        srv_req *r = h->req;
        r->conn = NULL;
        r->suspended = 0;
        if (!r->done) r->cancelled = 1; /* the engine frees its slot at the next step */
        pthread_cond_signal(&s->wake);
        srv_req_unref(r);
        pthread_mutex_unlock(&s->lock);
    }
    srv_buf_free(&h->body);
    free(h);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = 0;
    fprintf((FILE *)cls, "ringinfer: http: %s\n", line);
}

int srv_http_start(srv_server *s, FILE *out, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *ai = NULL;
    int g = getaddrinfo(s->o->host, NULL, &hints, &ai);
    if (g) {
        snprintf(err, errlen, "--host %s: %s", s->o->host, gai_strerror(g));
        return -1;
    }
    struct sockaddr_storage sa;
    memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
    int v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (v6)
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)s->o->port);
    else
        ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)s->o->port);

    /* Many idle connections need descriptors: take the hard limit. */
    struct rlimit rl;
    unsigned limit = 1000;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        limit = rl.rlim_cur > 4160 ? 4096 : rl.rlim_cur > 128 ? (unsigned)rl.rlim_cur - 64 : 64;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)s->o->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        stderr, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT, 300u, MHD_OPTION_END);
    if (!d) {
        snprintf(err, errlen,
                 "cannot listen on %s port %d (in use, or not an address of this host)", s->o->host,
                 s->o->port);
        return -1;
    }
    s->daemon = d;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : s->o->port;
    fprintf(out, "listening on http://%s%s%s:%d\n", v6 ? "[" : "", s->o->host, v6 ? "]" : "", port);
    fflush(out);
    return 0;
}

void srv_http_quiesce(srv_server *s)
{
    if (!s->daemon) return;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void srv_http_stop(srv_server *s)
{
    if (s->daemon) MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
