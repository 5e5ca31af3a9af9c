/* grpc_server.c: the sockets, timers and output side of the gRPC server:
 * the listener, one struct grpc_conn per accepted TCP connection, the
 * libuv reads fed into the connection's nghttp2 session (grpc_session.c
 * holds the callbacks) and the bytes the session produces written back.
 *
 * Data flow per connection:
 *
 *   uv_read --> conn_read_cb --> nghttp2_session_mem_recv
 *     (callbacks in grpc_session.c start backend calls, queue responses)
 *   --> grpc__conn_flush: nghttp2_session_mem_send into write chunks
 *       while output_bytes < output_bytes_max --> uv_write
 *   --> conn_write_cb: output_bytes shrinks, flush again, reads resume
 *
 * Reads stop while the output is over its bound, so a client that does
 * not read cannot make the server buffer without limit. The per-conn
 * timer fires at the earliest call deadline (grpc__session_expire).
 *
 * Lifecycle: a conn is created on accept (or detached, for tests and the
 * fuzz target: no socket, output dropped), and closed on EOF, a read or
 * write error, a fatal session error, the session ending (GOAWAY both
 * ways) or grpc_server_close(). Closing cancels its calls, deletes the
 * session and closes its handles; the memory goes in the last close
 * callback. The server's close_cb runs when its last handle is closed. */
#define _POSIX_C_SOURCE 200809L
#include "gateway/grpc_server.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One uv_write: the request and the bytes it writes. */
struct conn_write {
    uv_write_t req;
    struct grpc_conn *conn;
    size_t len;
    uint8_t data[]; /* len bytes */
};

/* Output is gathered into writes of at least this many bytes. */
#define CONN_WRITE_CHUNK_BYTES 16384u

static void server_maybe_closed(struct grpc_server *srv)
{
    assert(srv != NULL);
    if (srv->closing && srv->handle_count == 0) {
        grpc_server_close_cb cb = srv->close_cb;
        assert(srv->conn_count == 0);
        assert(srv->conns == NULL);
        srv->close_cb = NULL;
        srv->closing = false; /* the close is complete */
        if (cb != NULL) {
            cb(srv);
        }
    }
}

void grpc_server_options_default(struct grpc_server_options *opts)
{
    assert(opts != NULL);
    memset(opts, 0, sizeof(*opts));
    opts->connections_max = GRPC_CONNECTIONS_MAX_DEFAULT;
    opts->streams_max = GRPC_STREAMS_MAX_DEFAULT;
    opts->message_bytes_max = GRPC_MESSAGE_BYTES_MAX_DEFAULT;
    opts->request_bytes_max = GRPC_REQUEST_BYTES_MAX_DEFAULT;
    opts->output_bytes_max = GRPC_OUTPUT_BYTES_MAX_DEFAULT;
    opts->stream_queue_bytes_max = GRPC_STREAM_QUEUE_BYTES_MAX_DEFAULT;
}

int grpc_server_init(uv_loop_t *loop, struct grpc_server *srv,
                     const struct grpc_server_options *opts,
                     struct gateway_backend *backend)
{
    struct grpc_server_options o;

    assert(loop != NULL);
    assert(srv != NULL);
    assert(backend != NULL);
    assert(backend->call != NULL);
    assert(backend->cancel != NULL);
    if (opts == NULL) {
        grpc_server_options_default(&o);
    } else {
        o = *opts;
    }
    memset(srv, 0, sizeof(*srv));
    if (o.connections_max == 0 || o.streams_max == 0 ||
        o.message_bytes_max == 0 || o.output_bytes_max == 0 ||
        o.request_bytes_max < o.message_bytes_max ||
        o.stream_queue_bytes_max < o.message_bytes_max ||
        o.message_bytes_max > UINT32_MAX - 5u) {
        snprintf(srv->errmsg, sizeof(srv->errmsg),
                 "grpc: bad options (a zero bound, or a request or stream "
                 "queue bound below message_bytes_max)");
        return GRPC_E_INVALID;
    }
    srv->loop = loop;
    srv->backend = backend;
    srv->opts = o;
    return 0;
}

/* ---- Connections ---------------------------------------------------- */

static void conn_handle_close_cb(uv_handle_t *handle)
{
    struct grpc_conn *conn = handle->data;
    struct grpc_server *srv;

    assert(conn != NULL);
    assert(conn->handles_open > 0);
    srv = conn->srv;
    conn->handles_open--;
    assert(srv->handle_count > 0);
    srv->handle_count--;
    if (conn->handles_open > 0) {
        return;
    }
    assert(conn->closing);
    assert(conn->session == NULL);
    assert(conn->output_bytes == 0);
    assert(srv->conn_count > 0);
    srv->conn_count--;
    free(conn);
    server_maybe_closed(srv);
}

void grpc__conn_close(struct grpc_conn *conn)
{
    struct grpc_server *srv;

    assert(conn != NULL);
    if (conn->closing) {
        return;
    }
    srv = conn->srv;
    conn->closing = true;

    /* Unlink first: nothing may reach a closing conn through srv. */
    if (conn->prev != NULL) {
        conn->prev->next = conn->next;
    } else {
        assert(srv->conns == conn);
        srv->conns = conn->next;
    }
    if (conn->next != NULL) {
        conn->next->prev = conn->prev;
    }
    conn->prev = conn->next = NULL;
    grpc__session_close(conn);
    assert(conn->session == NULL);
    assert(conn->streams == NULL);
    uv_timer_stop(&conn->timer);
    uv_close((uv_handle_t *)&conn->timer, conn_handle_close_cb);
    if (conn->attached) {
        /* Cancels pending writes: their callbacks run before this
         * handle's close callback, so the conn outlives them. */
        uv_close((uv_handle_t *)&conn->tcp, conn_handle_close_cb);
    }
}

static void conn_timer_cb(uv_timer_t *timer)
{
    struct grpc_conn *conn = timer->data;
    uint64_t next;

    assert(conn != NULL);
    assert(!conn->closing);
    conn->timer_due_ms = 0;
    conn->depth++;
    next = grpc__session_expire(conn, uv_now(conn->srv->loop));
    conn->depth--;
    if (next != 0) {
        grpc__conn_timer_arm(conn, next);
    }
    grpc__conn_flush(conn);
}

void grpc__conn_timer_arm(struct grpc_conn *conn, uint64_t deadline_ms)
{
    uint64_t now;

    assert(conn != NULL);
    assert(deadline_ms != 0);
    if (conn->closing) {
        return;
    }
    if (conn->timer_due_ms != 0 && conn->timer_due_ms <= deadline_ms) {
        return; /* fires early enough; it re-arms for the rest */
    }
    now = uv_now(conn->srv->loop);
    conn->timer_due_ms = deadline_ms;
    uv_timer_start(&conn->timer, conn_timer_cb,
                   deadline_ms > now ? deadline_ms - now : 0, 0);
}

/* Creates a conn (session ready, timer initialized, linked into srv).
 * The caller initializes conn->tcp when attached. */
static int conn_create(struct grpc_server *srv, bool attached,
                       struct grpc_conn **out)
{
    struct grpc_conn *conn;
    int rv;

    assert(srv != NULL);
    assert(out != NULL);
    if (srv->closing) {
        return GRPC_E_STATE;
    }
    if (srv->conn_count >= srv->opts.connections_max) {
        return GRPC_E_BUSY;
    }
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        return GRPC_E_NOMEM;
    }
    conn->srv = srv;
    conn->attached = attached;
    rv = grpc__session_init(conn);
    if (rv != 0) {
        free(conn);
        return rv;
    }
    rv = uv_timer_init(srv->loop, &conn->timer);
    assert(rv == 0); /* cannot fail on Unix */
    conn->timer.data = conn;
    conn->handles_open = 1;
    srv->handle_count++;
    srv->conn_count++;
    conn->next = srv->conns;
    if (srv->conns != NULL) {
        srv->conns->prev = conn;
    }
    srv->conns = conn;
    *out = conn;
    return 0;
}

static void conn_write_cb(uv_write_t *req, int status)
{
    struct conn_write *w = (struct conn_write *)req;
    struct grpc_conn *conn = w->conn;

    assert(conn != NULL);
    assert(conn->output_bytes >= w->len);
    conn->output_bytes -= w->len;
    free(w);
    if (conn->closing) {
        return;
    }
    if (status < 0) {
        grpc__conn_close(conn);
        return;
    }
    grpc__conn_flush(conn);
}

/* Hands one chunk to uv_write (takes ownership of w). Returns 0, or a
 * negative value when the conn had to be closed. */
static int conn_write(struct grpc_conn *conn, struct conn_write *w)
{
    uv_buf_t buf;
    int rv;

    assert(w->len > 0);
    conn->output_total += w->len;
    if (!conn->attached) {
        free(w);
        return 0;
    }
    buf = uv_buf_init((char *)w->data, (unsigned int)w->len);
    w->conn = conn;
    conn->output_bytes += w->len;
    rv = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, conn_write_cb);
    if (rv != 0) {
        conn->output_bytes -= w->len;
        free(w);
        grpc__conn_close(conn);
        return GRPC_E_IO;
    }
    return 0;
}

static void conn_alloc_cb(uv_handle_t *handle, size_t suggested,
                          uv_buf_t *buf)
{
    struct grpc_conn *conn = handle->data;

    (void)suggested;
    assert(conn != NULL);
    *buf = uv_buf_init((char *)conn->read_buf, sizeof(conn->read_buf));
}

/* Feeds input to the session. Returns 0, or GRPC_E_PROTOCOL after
 * closing conn on a fatal session error. */
static int conn_recv(struct grpc_conn *conn, const uint8_t *data, size_t len)
{
    ssize_t n;

    assert(!conn->closing);
    assert(conn->depth == 0);
    conn->depth++;
    n = nghttp2_session_mem_recv(conn->session, data, len);
    conn->depth--;
    if (n < 0) {
        /* Fatal (bad client preface, out of memory, callback failure):
         * nghttp2 has nothing more to say on this session. */
        grpc__conn_close(conn);
        return GRPC_E_PROTOCOL;
    }
    assert((size_t)n == len);
    grpc__conn_flush(conn);
    return conn->closing ? GRPC_E_PROTOCOL : 0;
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread,
                         const uv_buf_t *buf)
{
    struct grpc_conn *conn = stream->data;

    assert(conn != NULL);
    assert(!conn->closing);
    if (nread < 0) {
        grpc__conn_close(conn); /* EOF or error: cancel everything */
        return;
    }
    if (nread == 0) {
        return; /* EAGAIN */
    }
    assert(buf->base == (char *)conn->read_buf);
    (void)conn_recv(conn, (const uint8_t *)buf->base, (size_t)nread);
}

/* Starts or stops reading after the output level changed. */
static void conn_read_update(struct grpc_conn *conn)
{
    bool want = conn->output_bytes < conn->srv->opts.output_bytes_max;

    if (!conn->attached || conn->closing || want == conn->reading) {
        return;
    }
    if (want) {
        if (uv_read_start((uv_stream_t *)&conn->tcp, conn_alloc_cb,
                          conn_read_cb) != 0) {
            grpc__conn_close(conn);
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&conn->tcp);
    }
    conn->reading = want;
}

void grpc__conn_flush(struct grpc_conn *conn)
{
    const size_t max = conn->srv->opts.output_bytes_max;
    struct conn_write *w = NULL;
    size_t cap = 0;

    assert(conn != NULL);
    if (conn->closing || conn->depth > 0) {
        return;
    }
    assert(conn->session != NULL);
    while (conn->output_bytes + (w != NULL ? w->len : 0) < max) {
        const uint8_t *data;
        ssize_t n;

        conn->depth++;
        n = nghttp2_session_mem_send(conn->session, &data);
        conn->depth--;
        if (n < 0) {
            free(w);
            grpc__conn_close(conn);
            return;
        }
        if (n == 0) {
            break;
        }
        if (w != NULL && w->len + (size_t)n > cap) {
            if (conn_write(conn, w) != 0) {
                return;
            }
            w = NULL;
        }
        if (w == NULL) {
            cap = (size_t)n > CONN_WRITE_CHUNK_BYTES ? (size_t)n
                                                     : CONN_WRITE_CHUNK_BYTES;
            w = malloc(sizeof(*w) + cap);
            if (w == NULL) {
                grpc__conn_close(conn);
                return;
            }
            w->len = 0;
        }
        memcpy(w->data + w->len, data, (size_t)n);
        w->len += (size_t)n;
        assert(w->len <= cap);
    }
    if (w != NULL && conn_write(conn, w) != 0) {
        return;
    }
    if (!nghttp2_session_want_read(conn->session) &&
        !nghttp2_session_want_write(conn->session) &&
        conn->output_bytes == 0) {
        grpc__conn_close(conn); /* both sides said GOAWAY; all sent */
        return;
    }
    conn_read_update(conn);
}

/* ---- Listener ------------------------------------------------------- */

static void reject_close_cb(uv_handle_t *handle)
{
    struct grpc_server *srv = handle->data;

    free(handle);
    assert(srv->handle_count > 0);
    srv->handle_count--;
    server_maybe_closed(srv);
}

/* Accepts and closes at once: over connections_max (or out of memory). */
static void server_reject(struct grpc_server *srv)
{
    uv_tcp_t *tcp = malloc(sizeof(*tcp));

    srv->conns_rejected++;
    if (tcp == NULL) {
        return; /* UNTESTED: the pending connection waits in the backlog */
    }
    uv_tcp_init(srv->loop, tcp);
    tcp->data = srv;
    srv->handle_count++;
    (void)uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)tcp);
    uv_close((uv_handle_t *)tcp, reject_close_cb);
}

static void server_connection_cb(uv_stream_t *listener, int status)
{
    struct grpc_server *srv = listener->data;
    struct grpc_conn *conn;
    int rv;

    assert(srv != NULL);
    if (status < 0 || srv->closing) {
        return; /* UNTESTED: accept errors (EMFILE) are retried by libuv */
    }
    rv = conn_create(srv, true, &conn);
    if (rv != 0) {
        server_reject(srv);
        return;
    }
    uv_tcp_init(srv->loop, &conn->tcp);
    conn->tcp.data = conn;
    conn->handles_open++;
    srv->handle_count++;
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        grpc__conn_close(conn); /* UNTESTED: accept after a ready event */
        return;
    }
    (void)uv_tcp_nodelay(&conn->tcp, 1);
    grpc__conn_flush(conn); /* server SETTINGS; starts reading */
}

int grpc_server_start(struct grpc_server *srv, const char *host,
                      uint16_t port)
{
    struct sockaddr_storage addr;
    int rv;

    assert(srv != NULL);
    assert(host != NULL);
    if (srv->listening || srv->closing) {
        return GRPC_E_STATE;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
        snprintf(srv->errmsg, sizeof(srv->errmsg),
                 "grpc: bad listen address '%s'", host);
        return GRPC_E_INVALID;
    }
    rv = uv_tcp_init(srv->loop, &srv->listener);
    assert(rv == 0);
    srv->listener.data = srv;
    srv->listening = true;
    srv->handle_count++;
    rv = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&srv->listener, 128,
                       server_connection_cb);
    }
    if (rv != 0) {
        snprintf(srv->errmsg, sizeof(srv->errmsg),
                 "grpc: cannot listen on %s:%u: %s", host, (unsigned)port,
                 uv_strerror(rv));
        /* Stays "listening" so grpc_server_close() closes the handle. */
        return GRPC_E_IO;
    }
    return 0;
}

uint16_t grpc_server_port(const struct grpc_server *srv)
{
    struct sockaddr_storage addr;
    int len = (int)sizeof(addr);

    assert(srv != NULL);
    if (!srv->listening ||
        uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&addr, &len) !=
            0) {
        return 0;
    }
    if (addr.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&addr)->sin_port);
    }
    if (addr.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    }
    return 0;
}

static void server_listener_close_cb(uv_handle_t *handle)
{
    struct grpc_server *srv = handle->data;

    assert(srv->handle_count > 0);
    srv->handle_count--;
    server_maybe_closed(srv);
}

static void server_flush_cb(uv_prepare_t *prepare)
{
    struct grpc_server *srv = prepare->data;
    struct grpc_conn *conn = srv->conns;

    uv_prepare_stop(&srv->flusher);
    srv->flusher_active = false;
    while (conn != NULL) {
        /* A flush may close (unlink) conn itself, never another one. */
        struct grpc_conn *next = conn->next;
        if (conn->flush_deferred) {
            conn->flush_deferred = false;
            grpc__conn_flush(conn);
        }
        conn = next;
    }
}

void grpc__conn_flush_later(struct grpc_conn *conn)
{
    struct grpc_server *srv = conn->srv;

    if (!conn->attached || srv->closing || conn->closing) {
        grpc__conn_flush(conn);
        return;
    }
    conn->flush_deferred = true;
    if (!srv->flusher_init) {
        uv_prepare_init(srv->loop, &srv->flusher);
        srv->flusher.data = srv;
        srv->flusher_init = true;
        srv->handle_count++;
    }
    if (!srv->flusher_active) {
        uv_prepare_start(&srv->flusher, server_flush_cb);
        srv->flusher_active = true;
    }
}

void grpc_server_close(struct grpc_server *srv, grpc_server_close_cb close_cb)
{
    assert(srv != NULL);
    assert(!srv->closing);
    srv->closing = true;
    srv->close_cb = close_cb;
    if (srv->listening) {
        srv->listening = false;
        uv_close((uv_handle_t *)&srv->listener, server_listener_close_cb);
    }
    if (srv->flusher_init) {
        srv->flusher_init = false;
        srv->flusher_active = false;
        uv_close((uv_handle_t *)&srv->flusher, server_listener_close_cb);
    }
    while (srv->conns != NULL) {
        grpc__conn_close(srv->conns); /* unlinks it */
    }
    server_maybe_closed(srv);
}

/* ---- Detached connections (tests, fuzzing) --------------------------- */

int grpc__conn_open_detached(struct grpc_server *srv, struct grpc_conn **conn)
{
    int rv;

    assert(srv != NULL);
    assert(conn != NULL);
    rv = conn_create(srv, false, conn);
    if (rv == 0) {
        grpc__conn_flush(*conn);
    }
    return rv;
}

int grpc__conn_feed(struct grpc_conn *conn, const uint8_t *data, size_t len)
{
    assert(conn != NULL);
    assert(!conn->attached);
    if (conn->closing) {
        return GRPC_E_PROTOCOL;
    }
    return conn_recv(conn, data, len);
}
