/* transport_tcp.c: the cluster transport over libuv TCP (transport.h).
 *
 * Owns: the listener, every connection (a doubly linked list, at most
 * TRANSPORT_CONNS_MAX), the member table (members[] and, at the same
 * index, peers[]: the send queue, the connection in use and the dial
 * state of that member), the contact points, one timer (`tick`: gossip,
 * dead detection, Hello timeouts, dials) and one prepare handle (the
 * automatic flush right before the loop blocks).
 *
 * Sending: transport_send() encodes into the peer's filling batch (a
 * codec arena plus an array of uv_buf_t). transport_flush() hands the
 * filling batch of each connected peer to ONE uv_write and swaps in the
 * other, empty batch; the written batch is reset in its write callback.
 * So at most one write per peer is in flight and frames queued meanwhile
 * leave with the next flush after it completes.
 *
 * Receiving: every connection has a codec_splitter; libuv reads into one
 * shared buffer (alloc_cb and read_cb are paired, so one buffer per
 * transport suffices), frames are decoded into the shared decode arena,
 * handed to on_raft or merged as gossip, and the arena is reset after
 * each frame. Any codec error closes that connection.
 *
 * Connection state machine (one struct transport_conn):
 *
 *      dial (tick, start)                        accept (listener)
 *            |                                         |
 *            v          numeric address                |
 *      CONN_RESOLVING ------------------+              |
 *            | getaddrinfo done         |              |
 *            v                          v              |
 *      CONN_CONNECTING <----------------+              |
 *            | connected: TCP_NODELAY, read, send Hello|
 *            v                                         v
 *      CONN_HELLO <------------------------------------+
 *            | peer's Hello: same version and cluster, not ourselves
 *            v
 *      CONN_ESTABLISHED --- one per pair is "active" (peers[i].conn):
 *            |              the one dialled by the lower node id
 *            |              (ties: the oldest); its dialler closes the
 *            |              others. Gossip on becoming active.
 *            v
 *      CONN_CLOSING  <--- from any state: error, EOF, bad frame, Hello
 *            |            timeout, duplicate, transport_close()
 *            v
 *      freed once the TCP handle is closed and no getaddrinfo is pending
 *
 * A dial that fails before CONN_ESTABLISHED doubles its dialer's backoff
 * (jittered, capped); an established connection that is lost redials after
 * a jittered reconnect_ms_min.
 */
#define _POSIX_C_SOURCE 200809L /* uv.h needs POSIX types */

#include "broker/transport.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/codec.h"
#include "broker/transport_impl.h"
#include "proto/proto.h"

/* Bytes of the shared read buffer. */
#define READ_BYTES ((size_t)64 << 10)
/* Room for one encoded Hello frame. */
#define HELLO_BYTES_MAX 512u
/* Initial capacity of a batch's buffer array. */
#define BATCH_BUFS_MIN 64u
/* Listen backlog. */
#define LISTEN_BACKLOG 128
/* Size of a formatted log line. */
#define LOG_LINE_BYTES 512u

_Static_assert(TRANSPORT_CLUSTER_NAME_MAX <= CODEC_CLUSTER_NAME_MAX,
               "a cluster name we accept fits a Hello");
_Static_assert(CODEC_PREFIX_BYTES + 32 + CODEC_CLUSTER_NAME_MAX <=
                   HELLO_BYTES_MAX,
               "a Hello frame fits its buffer");
_Static_assert(TRANSPORT_HOST_MAX == CODEC_GOSSIP_HOST_MAX,
               "hosts round-trip through gossip");
_Static_assert(TRANSPORT_VERSION_MAX == CODEC_GOSSIP_VERSION_MAX,
               "versions round-trip through gossip");
_Static_assert(TRANSPORT_MEMBERS_MAX <= CODEC_GOSSIP_MEMBERS_MAX,
               "a whole member table fits one gossip frame");
_Static_assert(TRANSPORT_CLUSTER_CONFIG_BYTES_MAX ==
                   CODEC_GOSSIP_CONFIG_BYTES_MAX,
               "a configuration we hold fits a gossip frame, and back");
_Static_assert(TRANSPORT_CLUSTER_CONFIG_BYTES_MAX + CODEC_ERRMSG_SIZE +
                       (size_t)TRANSPORT_MEMBERS_MAX *
                           (2 * TRANSPORT_HOST_MAX + TRANSPORT_VERSION_MAX +
                            64) <
                   CODEC_FRAME_BYTES_DEFAULT,
               "a member table with a configuration fits a default frame");
_Static_assert(TRANSPORT_PEER_FRAMES_MAX <= UINT32_MAX,
               "uv_write takes an unsigned buffer count");

enum conn_state {
    CONN_RESOLVING = 1,
    CONN_CONNECTING,
    CONN_HELLO,
    CONN_ESTABLISHED,
    CONN_CLOSING,
};

/* Dial state of one target (a member or a contact point). */
struct transport_dialer {
    struct transport_conn *conn; /* dial in progress (not yet
                                    established), or NULL */
    uint32_t backoff_ms;         /* delay base of the next failure */
    uint64_t at_ms;              /* no dial before this loop time */
};

/* Frames waiting for (or inside) one uv_write. */
struct transport_batch {
    struct codec_arena arena; /* the encoded frames */
    uv_buf_t *bufs;           /* one per frame */
    size_t count;             /* frames in bufs */
    size_t cap;               /* capacity of bufs, <= PEER_FRAMES_MAX */
    size_t bytes;             /* sum of the frames' lengths */
};

/* Sending side of one member (same index as its transport_member). */
struct transport_peer {
    struct transport *t;
    struct transport_batch batch[2];
    unsigned fill;               /* index of the batch being filled */
    bool writing;                /* batch[fill ^ 1] is being written */
    uv_write_t write_req;        /* the write in flight */
    struct transport_conn *conn; /* active connection, or NULL */
    struct transport_dialer dialer;
};

struct transport_contact {
    char host[TRANSPORT_HOST_MAX + 1];
    uint16_t port;
    uint32_t node_id; /* who answered there; 0 while unknown */
    struct transport_dialer dialer;
};

struct transport_conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_getaddrinfo_t resolve_req;
    uv_write_t hello_req;
    struct transport *t;
    struct transport_conn *prev;
    struct transport_conn *next;
    enum conn_state state;
    bool outbound;      /* we dialled it */
    bool resolving;     /* resolve_req is pending */
    bool tcp_closed;    /* the close callback of tcp ran */
    uint32_t node_id;   /* the peer, from its Hello; 0 before */
    uint32_t dial_node; /* the member we dialled, or 0 */
    int contact;        /* the contact point we dialled, or -1 */
    uint64_t serial;    /* creation order */
    uint64_t started_ms;
    uint16_t port; /* dialled port (for getaddrinfo results) */
    struct codec_splitter splitter;
    size_t hello_len;
    uint8_t hello_frame[HELLO_BYTES_MAX];
    char name[TRANSPORT_HOST_MAX + 16]; /* "host:port" for log lines */
};

struct transport {
    uv_loop_t *loop;
    struct transport_options o; /* defaults applied, strings below */
    struct transport_callbacks cb;
    char cluster_name[TRANSPORT_CLUSTER_NAME_MAX + 1];
    char listen_host[TRANSPORT_HOST_MAX + 1];
    uv_tcp_t listener;
    uv_timer_t tick;
    uv_prepare_t prepare;
    bool started;
    bool closing;
    bool closed;           /* close_cb ran */
    unsigned handles_open; /* of listener, tick, prepare */
    void (*close_cb)(struct transport *t);
    int bound_port;
    uint64_t tick_ms;
    uint64_t dead_ms;
    uint64_t gossip_at_ms;
    uint64_t prng;                    /* splitmix64 state */
    struct transport_member *members; /* TRANSPORT_MEMBERS_MAX, [0] = us */
    struct transport_peer *peers;     /* parallel to members */
    size_t member_count;
    struct codec_gossip_member *gossip; /* scratch, TRANSPORT_MEMBERS_MAX */
    /* The advertised cluster configuration; its version is
     * members[0].config_version. */
    uint8_t *config_bytes; /* owned copy, NULL while there is none */
    size_t config_len;
    transport_cluster_config_fn config_cb; /* offers newer ones, or NULL */
    void *config_cb_data;
    uint64_t config_refused_version; /* the last offer refused, 0: none */
    uint64_t config_refused_at_ms;   /* when it was refused */
    struct transport_contact contacts[TRANSPORT_CONTACT_POINTS_MAX];
    size_t contact_count;
    struct transport_conn *conns; /* newest first */
    size_t conn_count;
    uint64_t conn_serial;
    size_t batch_arena_bytes_max;
    struct codec_arena decode_arena;  /* inbound frames, reset per frame */
    struct codec_arena scratch_arena; /* Hello encoding */
    struct transport_stats stats;
    char read_buf[READ_BYTES];
};

static void conn_close(struct transport_conn *c, enum transport_log_level level,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void peer_conn_choose(struct transport *t, size_t i);

/* ------------------------------------------------------------------------
 * Errors, logging, randomness
 * --------------------------------------------------------------------- */

const char *transport_strerror(int rv)
{
    switch (rv) {
    case 0:
        return "success";
#define TRANSPORT__ERRNO_CASE(name, value, text)                               \
    case (value):                                                              \
        return (text);
        TRANSPORT_ERRNO_MAP(TRANSPORT__ERRNO_CASE)
#undef TRANSPORT__ERRNO_CASE
    default:
        return "unknown transport error";
    }
}

static void log_stderr(void *data, enum transport_log_level level,
                       uint32_t node_id, const char *message)
{
    static const char *const names[] = {"?", "debug", "info", "warn", "error"};
    (void)data;
    fprintf(stderr, "transport[%u] %s: %s\n", (unsigned)node_id,
            names[level <= TRANSPORT_LOG_ERROR ? level : 0], message);
}

__attribute__((format(printf, 3, 4))) static void
transport_log(struct transport *t, enum transport_log_level level,
              const char *fmt, ...)
{
    char line[LOG_LINE_BYTES];
    va_list ap;

    if (level < t->o.log_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    t->o.log(t->o.log_data, level, t->o.node_id, line);
}

/* splitmix64: a tiny, well-mixed PRNG; seeded from the options. */
static uint64_t transport_prng_next(struct transport *t)
{
    uint64_t z = (t->prng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A delay in [base/2, base]. */
static uint64_t transport_jitter(struct transport *t, uint32_t base)
{
    uint64_t half = base / 2;
    return half + transport_prng_next(t) % (base - half + 1);
}

static uint64_t transport_now(struct transport *t)
{
    return uv_now(t->loop);
}

/* Copies a NUL-terminated string of at most max bytes into dst. */
static void str_copy(char *dst, const char *src, size_t max)
{
    size_t len = strlen(src);
    assert(len <= max);
    memcpy(dst, src, len + 1);
}

/* ------------------------------------------------------------------------
 * Dialers and batches
 * --------------------------------------------------------------------- */

static void transport_dialer_init(struct transport *t,
                                  struct transport_dialer *d)
{
    d->conn = NULL;
    d->backoff_ms = t->o.reconnect_ms_min;
    d->at_ms = 0;
}

/* The dial did not lead to an established connection: wait longer. */
static void transport_dialer_fail(struct transport *t,
                                  struct transport_dialer *d)
{
    uint64_t doubled = (uint64_t)d->backoff_ms * 2;

    d->conn = NULL;
    d->at_ms = transport_now(t) + transport_jitter(t, d->backoff_ms);
    d->backoff_ms = doubled > t->o.reconnect_ms_max ? t->o.reconnect_ms_max
                                                    : (uint32_t)doubled;
    assert(d->backoff_ms >= t->o.reconnect_ms_min);
}

/* The dial led to an established connection. */
static void transport_dialer_reset(struct transport *t,
                                   struct transport_dialer *d)
{
    d->conn = NULL;
    d->backoff_ms = t->o.reconnect_ms_min;
    d->at_ms = transport_now(t) + transport_jitter(t, d->backoff_ms);
}

static void transport_batch_reset(struct transport_batch *b)
{
    codec_arena_reset(&b->arena);
    b->count = 0;
    b->bytes = 0;
}

/* Makes room for one more frame in b. */
static int transport_batch_reserve(struct transport_batch *b)
{
    size_t cap;
    uv_buf_t *bufs;

    assert(b->count <= b->cap);
    if (b->count < b->cap) {
        return 0;
    }
    if (b->cap >= TRANSPORT_PEER_FRAMES_MAX) {
        return TRANSPORT_E_BUSY;
    }
    cap = b->cap == 0 ? BATCH_BUFS_MIN : b->cap * 2;
    cap = cap > TRANSPORT_PEER_FRAMES_MAX ? TRANSPORT_PEER_FRAMES_MAX : cap;
    bufs = realloc(b->bufs, cap * sizeof(*bufs));
    if (bufs == NULL) {
        return TRANSPORT_E_NOMEM; /* UNTESTED: malloc failure */
    }
    b->bufs = bufs;
    b->cap = cap;
    return 0;
}

static void transport_batch_append(struct transport_batch *b,
                                   struct raft_buf frame)
{
    assert(b->count < b->cap);
    assert(frame.len > CODEC_PREFIX_BYTES);
    b->bufs[b->count] =
        uv_buf_init((char *)(uintptr_t)frame.base, (unsigned)frame.len);
    b->count++;
    b->bytes += frame.len;
}

static size_t transport_peer_queue_bytes(const struct transport_peer *p)
{
    return p->batch[0].bytes + p->batch[1].bytes;
}

/* Checks the queue limits of a peer and makes room for one frame in its
 * filling batch, which it returns through *out. */
static int transport_peer_reserve(struct transport *t, struct transport_peer *p,
                                  struct transport_batch **out)
{
    struct transport_batch *b = &p->batch[p->fill];
    int rv;

    if (transport_peer_queue_bytes(p) >= t->o.peer_queue_bytes_max) {
        return TRANSPORT_E_BUSY;
    }
    rv = transport_batch_reserve(b);
    if (rv != 0) {
        return rv;
    }
    *out = b;
    return 0;
}

/* ------------------------------------------------------------------------
 * Member table
 * --------------------------------------------------------------------- */

static int transport_member_find(const struct transport *t, uint32_t node_id)
{
    for (size_t i = 0; i < t->member_count; i++) {
        if (t->members[i].node_id == node_id) {
            return (int)i;
        }
    }
    return -1;
}

/* Appends a member with no address; returns its index or -1 when full. */
static int transport_member_add(struct transport *t, uint32_t node_id)
{
    size_t i = t->member_count;
    struct transport_member *m;
    struct transport_peer *p;

    assert(node_id != 0);
    assert(transport_member_find(t, node_id) < 0);
    if (i == TRANSPORT_MEMBERS_MAX) {
        return -1;
    }
    m = &t->members[i];
    p = &t->peers[i];
    memset(m, 0, sizeof(*m));
    memset(p, 0, sizeof(*p));
    m->node_id = node_id;
    m->alive = true;
    m->last_seen_ms = transport_now(t);
    p->t = t;
    p->write_req.data = p;
    codec_arena_init(&p->batch[0].arena, t->batch_arena_bytes_max);
    codec_arena_init(&p->batch[1].arena, t->batch_arena_bytes_max);
    transport_dialer_init(t, &p->dialer);
    t->member_count++;
    return (int)i;
}

static void transport_member_notify(struct transport *t, size_t i)
{
    assert(i > 0 && i < t->member_count);
    if (!t->closing && t->cb.on_member != NULL) {
        t->cb.on_member(t->cb.data, &t->members[i]);
    }
}

/* We heard from member i directly. */
static void transport_member_heard(struct transport *t, size_t i)
{
    struct transport_member *m = &t->members[i];

    m->last_seen_ms = transport_now(t);
    if (!m->alive) {
        m->alive = true;
        transport_log(t, TRANSPORT_LOG_INFO, "node %u is alive again",
                      m->node_id);
        transport_member_notify(t, i);
    }
}

/* ------------------------------------------------------------------------
 * Gossip
 * --------------------------------------------------------------------- */

/* Queues our member table for member i. Skipped when its queue is full.
 * Carries our cluster configuration only if member i last advertised a
 * lower version (or nothing yet). */
static void transport_gossip_send(struct transport *t, size_t i)
{
    struct transport_peer *p = &t->peers[i];
    struct transport_batch *b;
    struct codec_gossip g;
    struct codec_gossip_config gc;
    struct raft_buf frame;
    size_t n = 0;
    int rv;

    assert(i > 0 && i < t->member_count);
    assert(p->conn != NULL);
    for (size_t j = 0; j < t->member_count; j++) {
        const struct transport_member *m = &t->members[j];
        if (m->port == 0 || m->heartbeat == 0) {
            continue; /* known only from a Hello: nothing to tell */
        }
        t->gossip[n].node_id = m->node_id;
        t->gossip[n].host = m->host;
        t->gossip[n].port = m->port;
        t->gossip[n].command_host = m->command_host;
        t->gossip[n].command_port = m->command_port;
        t->gossip[n].version = m->version;
        t->gossip[n].heartbeat = m->heartbeat;
        n++;
    }
    assert(n >= 1); /* ourselves */
    g.members = t->gossip;
    g.count = n;
    gc.version = t->members[0].config_version;
    gc.bytes = NULL;
    gc.len = 0;
    if (t->config_len > 0 &&
        t->members[i].config_version < t->members[0].config_version) {
        gc.bytes = t->config_bytes;
        gc.len = t->config_len;
    }
    if (transport_peer_reserve(t, p, &b) != 0) {
        return;
    }
    rv = codec_gossip_encode_ex(&b->arena, &g, &gc, t->o.frame_bytes_max,
                                &frame);
    if (rv != 0) {
        /* UNTESTED: the table always fits a default frame */
        transport_log(t, TRANSPORT_LOG_WARN, "cannot encode gossip: %s",
                      codec_strerror(rv));
        return;
    }
    transport_batch_append(b, frame);
    t->stats.gossip_sent_count++;
    if (gc.len > 0) {
        t->stats.config_sent_count++;
    }
}

/* Replaces the advertised configuration with a copy of bytes. */
static int transport_config_store(struct transport *t, uint64_t version,
                                  const void *bytes, size_t len)
{
    uint8_t *copy;

    assert(version > t->members[0].config_version);
    assert(len > 0 && len <= TRANSPORT_CLUSTER_CONFIG_BYTES_MAX);
    copy = malloc(len);
    if (copy == NULL) {
        return TRANSPORT_E_NOMEM; /* UNTESTED: malloc failure */
    }
    memcpy(copy, bytes, len);
    free(t->config_bytes);
    t->config_bytes = copy;
    t->config_len = len;
    t->members[0].config_version = version;
    return 0;
}

/* Member i advertised gc directly: remember its version and, if it carries
 * a configuration newer than ours, offer it to the broker. */
static void transport_config_receive(struct transport *t, size_t i,
                                     const struct codec_gossip_config *gc)
{
    struct transport_member *m = &t->members[i];
    uint64_t now;
    int rv;

    assert(i > 0 && i < t->member_count);
    m->config_version = gc->version;
    if (gc->len == 0 || gc->version <= t->members[0].config_version ||
        t->config_cb == NULL || t->closing) {
        return;
    }
    assert(gc->len <= TRANSPORT_CLUSTER_CONFIG_BYTES_MAX);
    now = transport_now(t);
    if (gc->version <= t->config_refused_version &&
        now - t->config_refused_at_ms < t->dead_ms) {
        return;
    }
    t->stats.config_offered_count++;
    rv = t->config_cb(t->config_cb_data, m->node_id, gc->version, gc->bytes,
                      gc->len);
    if (t->closing) {
        return;
    }
    if (rv != 0) {
        t->stats.config_refused_count++;
        t->config_refused_version = gc->version;
        t->config_refused_at_ms = now;
        transport_log(t, TRANSPORT_LOG_WARN,
                      "cluster config version %llu from node %u refused (%d)",
                      (unsigned long long)gc->version, m->node_id, rv);
        return;
    }
    t->stats.config_adopted_count++;
    if (t->members[0].config_version >= gc->version) {
        return; /* the callback set it (or a newer one) itself */
    }
    rv = transport_config_store(t, gc->version, gc->bytes, gc->len);
    if (rv == 0) {
        transport_log(t, TRANSPORT_LOG_INFO,
                      "cluster config version %llu adopted from node %u",
                      (unsigned long long)gc->version, m->node_id);
    }
}

/* Merges a member table received over connection c. */
static void transport_gossip_merge(struct transport *t,
                                   const struct transport_conn *c,
                                   const struct codec_gossip *g)
{
    uint64_t now = transport_now(t);

    assert(c->state == CONN_ESTABLISHED);
    t->stats.gossip_received_count++;
    for (size_t k = 0; k < g->count && !t->closing; k++) {
        const struct codec_gossip_member *e = &g->members[k];
        struct transport_member *m;
        bool changed;
        int i;

        if (e->node_id > UINT32_MAX) {
            transport_log(t, TRANSPORT_LOG_DEBUG,
                          "gossip from node %u names node %llu, ignored",
                          c->node_id, (unsigned long long)e->node_id);
            continue;
        }
        if (e->node_id == t->o.node_id) {
            /* A peer echoing our current counter is normal; a higher one
             * means we restarted and must move past what it remembers. */
            if (e->heartbeat > t->members[0].heartbeat) {
                t->members[0].heartbeat = e->heartbeat + 1;
                transport_log(t, TRANSPORT_LOG_INFO,
                              "node %u remembers our heartbeat %llu, "
                              "continuing from %llu",
                              c->node_id, (unsigned long long)e->heartbeat,
                              (unsigned long long)t->members[0].heartbeat);
            }
            continue;
        }
        i = transport_member_find(t, (uint32_t)e->node_id);
        changed = i < 0;
        if (i < 0) {
            i = transport_member_add(t, (uint32_t)e->node_id);
            if (i < 0) {
                transport_log(t, TRANSPORT_LOG_WARN,
                              "member table full (%u), node %llu ignored",
                              TRANSPORT_MEMBERS_MAX,
                              (unsigned long long)e->node_id);
                continue;
            }
            t->members[i].heartbeat = 0;
        }
        m = &t->members[i];
        if (e->heartbeat <= m->heartbeat) {
            continue;
        }
        changed = changed || !m->alive || m->port != e->port ||
                  m->command_port != e->command_port ||
                  strcmp(m->host, e->host) != 0 ||
                  strcmp(m->command_host, e->command_host) != 0 ||
                  strcmp(m->version, e->version) != 0;
        m->heartbeat = e->heartbeat;
        m->last_seen_ms = now;
        m->alive = true;
        str_copy(m->host, e->host, TRANSPORT_HOST_MAX);
        m->port = e->port;
        str_copy(m->command_host, e->command_host, TRANSPORT_HOST_MAX);
        m->command_port = e->command_port;
        str_copy(m->version, e->version, TRANSPORT_VERSION_MAX);
        if (changed) {
            transport_log(t, TRANSPORT_LOG_INFO,
                          "member %u at %s:%u (command %s:%u, version %s)",
                          m->node_id, m->host, (unsigned)m->port,
                          m->command_host, (unsigned)m->command_port,
                          m->version);
            transport_member_notify(t, (size_t)i);
        }
    }
}

/* ------------------------------------------------------------------------
 * Connections
 * --------------------------------------------------------------------- */

static void transport_close_finish(struct transport *t);

static void conn_free(struct transport_conn *c)
{
    struct transport *t = c->t;

    assert(c->state == CONN_CLOSING);
    assert(c->tcp_closed);
    assert(!c->resolving);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        t->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    assert(t->conn_count > 0);
    t->conn_count--;
    codec_splitter_close(&c->splitter);
    free(c);
    transport_close_finish(t);
}

static void conn_close_cb(uv_handle_t *handle)
{
    struct transport_conn *c = handle->data;

    c->tcp_closed = true;
    if (!c->resolving) {
        conn_free(c);
    }
}

static struct transport_conn *conn_alloc(struct transport *t, bool outbound)
{
    struct transport_conn *c = calloc(1, sizeof(*c));
    int rv;

    if (c == NULL) {
        return NULL; /* UNTESTED: malloc failure */
    }
    rv = uv_tcp_init(t->loop, &c->tcp);
    assert(rv == 0); /* cannot fail without flags */
    (void)rv;
    c->tcp.data = c;
    c->connect_req.data = c;
    c->resolve_req.data = c;
    c->hello_req.data = c;
    c->t = t;
    c->outbound = outbound;
    c->contact = -1;
    c->serial = ++t->conn_serial;
    c->started_ms = transport_now(t);
    codec_splitter_init(&c->splitter, t->o.frame_bytes_max);
    c->next = t->conns;
    if (t->conns != NULL) {
        t->conns->prev = c;
    }
    t->conns = c;
    t->conn_count++;
    return c;
}

/* Starts closing c (from any state but CLOSING) and updates the dialers
 * and the peer it served. */
static void conn_close(struct transport_conn *c, enum transport_log_level level,
                       const char *fmt, ...)
{
    struct transport *t = c->t;
    enum conn_state was = c->state;
    char reason[LOG_LINE_BYTES / 2];
    va_list ap;
    int i;

    if (was == CONN_CLOSING) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    transport_log(t, level, "closing connection %s (node %u, %s): %s", c->name,
                  c->node_id, c->outbound ? "dialled" : "accepted", reason);
    c->state = CONN_CLOSING;
    t->stats.conn_closed_count++;
    if (c->resolving) {
        uv_cancel((uv_req_t *)&c->resolve_req);
    }
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
    if (t->closing) {
        return;
    }
    if (c->contact >= 0 && t->contacts[c->contact].dialer.conn == c) {
        transport_dialer_fail(t, &t->contacts[c->contact].dialer);
    }
    if (c->dial_node != 0) {
        i = transport_member_find(t, c->dial_node);
        if (i >= 0 && t->peers[i].dialer.conn == c) {
            transport_dialer_fail(t, &t->peers[i].dialer);
        }
    }
    if (was == CONN_ESTABLISHED) {
        i = transport_member_find(t, c->node_id);
        assert(i > 0);
        if (t->peers[i].conn == c) {
            peer_conn_choose(t, (size_t)i); /* c is CLOSING: not chosen */
        }
    }
}

static void conn_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct transport_conn *c = handle->data;

    (void)suggested;
    *buf = uv_buf_init(c->t->read_buf, (unsigned)sizeof(c->t->read_buf));
}

/* Handles the peer's Hello on a connection in CONN_HELLO. */
static void conn_hello_handle(struct transport_conn *c,
                              const struct codec_hello *h)
{
    struct transport *t = c->t;
    struct transport_dialer *d;
    int i;

    assert(c->state == CONN_HELLO);
    if (h->protocol_version != PROTO_RAFT_VERSION) {
        t->stats.hello_rejected_count++;
        conn_close(c, TRANSPORT_LOG_WARN,
                   "node %llu speaks protocol version %u, we speak %u",
                   (unsigned long long)h->node_id, h->protocol_version,
                   PROTO_RAFT_VERSION);
        return;
    }
    if (strcmp(h->cluster_name, t->cluster_name) != 0) {
        t->stats.hello_rejected_count++;
        conn_close(c, TRANSPORT_LOG_WARN,
                   "node %llu belongs to cluster name \"%s\", not \"%s\"",
                   (unsigned long long)h->node_id, h->cluster_name,
                   t->cluster_name);
        return;
    }
    if (h->node_id > UINT32_MAX) {
        t->stats.hello_rejected_count++;
        conn_close(c, TRANSPORT_LOG_WARN, "node id %llu out of range",
                   (unsigned long long)h->node_id);
        return;
    }
    if (h->node_id == t->o.node_id) {
        if (c->contact >= 0) {
            t->contacts[c->contact].node_id = t->o.node_id;
        }
        conn_close(c, TRANSPORT_LOG_DEBUG, "connected to ourselves");
        return;
    }
    i = transport_member_find(t, (uint32_t)h->node_id);
    if (i < 0) {
        i = transport_member_add(t, (uint32_t)h->node_id);
        if (i < 0) {
            conn_close(c, TRANSPORT_LOG_WARN, "member table full (%u)",
                       TRANSPORT_MEMBERS_MAX);
            return;
        }
        transport_member_notify(t, (size_t)i);
        if (c->state == CONN_CLOSING || t->closing) {
            return; /* the callback closed us */
        }
    }
    c->node_id = (uint32_t)h->node_id;
    c->state = CONN_ESTABLISHED;
    transport_log(t, TRANSPORT_LOG_INFO,
                  "connection %s to node %u established (%s)", c->name,
                  c->node_id, c->outbound ? "dialled" : "accepted");
    if (c->contact >= 0) {
        d = &t->contacts[c->contact].dialer;
        t->contacts[c->contact].node_id = c->node_id;
        if (d->conn == c) {
            transport_dialer_reset(t, d);
        }
    }
    if (c->dial_node != 0) {
        int k = transport_member_find(t, c->dial_node);
        assert(k > 0);
        d = &t->peers[k].dialer;
        if (d->conn == c && c->dial_node == c->node_id) {
            transport_dialer_reset(t, d);
        } else if (d->conn == c) {
            transport_log(t, TRANSPORT_LOG_WARN,
                          "dialled node %u at %s but node %u answered",
                          c->dial_node, c->name, c->node_id);
            transport_dialer_fail(t, d);
        }
    }
    transport_member_heard(t, (size_t)i);
    if (c->state == CONN_ESTABLISHED && !t->closing) {
        peer_conn_choose(t, (size_t)i);
    }
}

/* Handles one complete frame received on c. */
static void conn_frame_handle(struct transport_conn *c, struct raft_buf frame)
{
    struct transport *t = c->t;
    struct codec_frame f;
    struct codec_gossip g;
    struct codec_gossip_config gc;
    char errmsg[CODEC_ERRMSG_SIZE];
    int rv;
    int i;

    assert(c->state == CONN_HELLO || c->state == CONN_ESTABLISHED);
    errmsg[0] = '\0';
    rv = codec_frame_decode_any(&t->decode_arena, frame.base, frame.len, &f,
                                &g, &gc, errmsg);
    if (rv == 0 && f.body == CODEC_BODY_GOSSIP) {
        if (c->state != CONN_ESTABLISHED) {
            t->stats.protocol_error_count++;
            conn_close(c, TRANSPORT_LOG_WARN, "gossip before Hello");
            return;
        }
        i = transport_member_find(t, c->node_id);
        assert(i > 0);
        transport_member_heard(t, (size_t)i);
        transport_gossip_merge(t, c, &g);
        if (!t->closing) {
            transport_config_receive(t, (size_t)i, &gc);
        }
        return;
    }
    if (rv != 0) {
        t->stats.protocol_error_count++;
        conn_close(c, TRANSPORT_LOG_WARN, "bad frame of %zu bytes: %s",
                   frame.len, errmsg);
        return;
    }
    if (c->state == CONN_HELLO) {
        if (f.body != CODEC_BODY_HELLO) {
            t->stats.protocol_error_count++;
            conn_close(c, TRANSPORT_LOG_WARN, "first frame is not a Hello");
            return;
        }
        conn_hello_handle(c, &f.hello);
        return;
    }
    if (f.body == CODEC_BODY_REBALANCE) {
        i = transport_member_find(t, c->node_id);
        assert(i > 0);
        transport_member_heard(t, (size_t)i);
        if (!t->closing && t->cb.on_rebalance != NULL) {
            t->cb.on_rebalance(t->cb.data, c->node_id);
        }
        return;
    }
    if (f.body == CODEC_BODY_FORWARD) {
        i = transport_member_find(t, c->node_id);
        assert(i > 0);
        transport_member_heard(t, (size_t)i);
        if (!t->closing && t->cb.on_forward != NULL) {
            t->cb.on_forward(t->cb.data, c->node_id, &f.forward);
        }
        return;
    }
    if (f.body == CODEC_BODY_COMMAND) {
        i = transport_member_find(t, c->node_id);
        assert(i > 0);
        transport_member_heard(t, (size_t)i);
        if (!t->closing && t->cb.on_command != NULL) {
            t->cb.on_command(t->cb.data, c->node_id, f.partition,
                             &f.command);
        }
        return;
    }
    if (f.body != CODEC_BODY_RAFT) {
        t->stats.protocol_error_count++;
        conn_close(c, TRANSPORT_LOG_WARN, "second Hello");
        return;
    }
    i = transport_member_find(t, c->node_id);
    assert(i > 0);
    transport_member_heard(t, (size_t)i);
    if (t->closing) {
        return;
    }
    t->stats.raft_received_count++;
    t->cb.on_raft(t->cb.data, c->node_id, f.partition, &f.raft);
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread,
                         const uv_buf_t *buf)
{
    struct transport_conn *c = stream->data;
    struct transport *t = c->t;
    const char *p = buf->base;
    size_t left;

    if (nread == 0 || c->state == CONN_CLOSING) {
        return;
    }
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? TRANSPORT_LOG_INFO : TRANSPORT_LOG_WARN,
                   "%s", uv_strerror((int)nread));
        return;
    }
    assert(p == t->read_buf);
    left = (size_t)nread;
    while (left > 0) {
        struct raft_buf frame;
        size_t used;
        int rv = codec_splitter_feed(&c->splitter, p, left, &used, &frame);
        assert(used <= left);
        p += used;
        left -= used;
        if (rv < 0) {
            t->stats.protocol_error_count++;
            conn_close(c, TRANSPORT_LOG_WARN, "cannot frame the stream: %s",
                       c->splitter.errmsg);
            return;
        }
        if (rv == 0) {
            break;
        }
        conn_frame_handle(c, frame);
        codec_arena_reset(&t->decode_arena);
        if (c->state == CONN_CLOSING || t->closing) {
            return;
        }
    }
}

static void conn_hello_write_cb(uv_write_t *req, int status)
{
    struct transport_conn *c = req->data;

    if (status < 0 && c->state != CONN_CLOSING && !c->t->closing) {
        conn_close(c, TRANSPORT_LOG_INFO, "cannot send Hello: %s",
                   uv_strerror(status));
    }
}

/* The TCP connection is up (either direction): read and say Hello. */
static void conn_ready(struct transport_conn *c)
{
    struct transport *t = c->t;
    struct codec_hello h;
    struct raft_buf frame;
    uv_buf_t buf;
    int rv;

    assert(c->state == CONN_RESOLVING || c->state == CONN_CONNECTING);
    c->state = CONN_HELLO;
    c->started_ms = transport_now(t);
    (void)uv_tcp_nodelay(&c->tcp, 1);
    (void)uv_tcp_keepalive(&c->tcp, 1, 60);
    rv = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
    if (rv != 0) {
        conn_close(c, TRANSPORT_LOG_WARN, "cannot read: %s", uv_strerror(rv));
        return; /* UNTESTED: read_start on a fresh socket */
    }
    h.protocol_version = PROTO_RAFT_VERSION;
    h.node_id = t->o.node_id;
    h.cluster_name = t->cluster_name;
    rv = codec_hello_encode(&t->scratch_arena, &h, &frame);
    assert(rv == 0); /* inputs validated by transport_init() */
    assert(frame.len <= sizeof(c->hello_frame));
    memcpy(c->hello_frame, frame.base, frame.len);
    c->hello_len = frame.len;
    codec_arena_reset(&t->scratch_arena);
    buf = uv_buf_init((char *)c->hello_frame, (unsigned)c->hello_len);
    rv = uv_write(&c->hello_req, (uv_stream_t *)&c->tcp, &buf, 1,
                  conn_hello_write_cb);
    if (rv != 0) {
        conn_close(c, TRANSPORT_LOG_INFO, "cannot send Hello: %s",
                   uv_strerror(rv));
    }
}

static void conn_connect_cb(uv_connect_t *req, int status)
{
    struct transport_conn *c = req->data;

    if (c->state == CONN_CLOSING) {
        return;
    }
    assert(c->state == CONN_CONNECTING);
    if (status < 0) {
        conn_close(c, TRANSPORT_LOG_DEBUG, "connect failed: %s",
                   uv_strerror(status));
        return;
    }
    conn_ready(c);
}

static void conn_connect(struct transport_conn *c, const struct sockaddr *sa)
{
    int rv;

    c->state = CONN_CONNECTING;
    rv = uv_tcp_connect(&c->connect_req, &c->tcp, sa, conn_connect_cb);
    if (rv != 0) {
        conn_close(c, TRANSPORT_LOG_DEBUG, "connect failed: %s",
                   uv_strerror(rv));
    }
}

static void conn_resolve_cb(uv_getaddrinfo_t *req, int status,
                            struct addrinfo *res)
{
    struct transport_conn *c = req->data;
    const struct addrinfo *pick;

    assert(c->resolving);
    c->resolving = false;
    if (c->state == CONN_CLOSING) {
        uv_freeaddrinfo(res);
        if (c->tcp_closed) {
            conn_free(c);
        }
        return;
    }
    if (status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        conn_close(c, TRANSPORT_LOG_WARN, "cannot resolve: %s",
                   uv_strerror(status < 0 ? status : UV_EAI_NONAME));
        return;
    }
    /* Prefer IPv4: "localhost" often lists ::1 first, while brokers
     * usually listen on IPv4 addresses. */
    pick = res;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }
    conn_connect(c, pick->ai_addr);
    uv_freeaddrinfo(res);
}

/* Dials host:port for a member (dial_node) or a contact point (contact). */
static struct transport_conn *conn_dial(struct transport *t, const char *host,
                                        uint16_t port, uint32_t dial_node,
                                        int contact)
{
    struct transport_conn *c;
    struct sockaddr_storage ss;
    struct addrinfo hints;
    char port_str[8];
    int rv;

    assert(!t->closing);
    assert(port != 0);
    if (t->conn_count >= TRANSPORT_CONNS_MAX) {
        transport_log(t, TRANSPORT_LOG_WARN,
                      "not dialling %s:%u: %u connections open", host,
                      (unsigned)port, TRANSPORT_CONNS_MAX);
        return NULL;
    }
    c = conn_alloc(t, true);
    if (c == NULL) {
        return NULL; /* UNTESTED: malloc failure */
    }
    c->dial_node = dial_node;
    c->contact = contact;
    c->port = port;
    c->state = CONN_RESOLVING;
    snprintf(c->name, sizeof(c->name), "%s:%u", host, (unsigned)port);
    t->stats.conn_dialled_count++;
    transport_log(t, TRANSPORT_LOG_DEBUG, "dialling %s (node %u)", c->name,
                  dial_node);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
        conn_connect(c, (const struct sockaddr *)&ss);
        return c;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port_str, sizeof(port_str), "%u", (unsigned)port);
    rv = uv_getaddrinfo(t->loop, &c->resolve_req, conn_resolve_cb, host,
                        port_str, &hints);
    if (rv != 0) {
        conn_close(c, TRANSPORT_LOG_WARN, "cannot resolve: %s",
                   uv_strerror(rv));
        return c; /* closing; the caller's dialer sees the failure */
    }
    c->resolving = true;
    return c;
}

/* Who dialled c: us or the peer. */
static uint32_t conn_dialler(const struct transport *t,
                             const struct transport_conn *c)
{
    return c->outbound ? t->o.node_id : c->node_id;
}

/* Whether established connection a is preferred to b (same peer). */
static bool conn_better(const struct transport *t,
                        const struct transport_conn *a,
                        const struct transport_conn *b)
{
    uint32_t low = t->o.node_id < a->node_id ? t->o.node_id : a->node_id;
    bool a_low = conn_dialler(t, a) == low;
    bool b_low = conn_dialler(t, b) == low;

    assert(a->node_id == b->node_id);
    if (a_low != b_low) {
        return a_low;
    }
    return a->serial < b->serial;
}

/* Picks the active connection of member i among its established ones,
 * closes the losers it is entitled to close (those it dialled, or those
 * dialled from the other side than the winner), and reports a change of
 * connectivity. */
static void peer_conn_choose(struct transport *t, size_t i)
{
    struct transport_peer *p = &t->peers[i];
    struct transport_member *m = &t->members[i];
    struct transport_conn *was = p->conn;
    struct transport_conn *best = NULL;
    struct transport_conn *c;

    assert(i > 0 && i < t->member_count);
    assert(!t->closing);
    for (c = t->conns; c != NULL; c = c->next) {
        if (c->state == CONN_ESTABLISHED && c->node_id == m->node_id &&
            (best == NULL || conn_better(t, c, best))) {
            best = c;
        }
    }
    p->conn = best;
    for (c = t->conns; c != NULL; c = c->next) {
        if (c != best && c->state == CONN_ESTABLISHED &&
            c->node_id == m->node_id &&
            (c->outbound || conn_dialler(t, c) != conn_dialler(t, best))) {
            t->stats.duplicate_closed_count++;
            conn_close(c, TRANSPORT_LOG_INFO,
                       "duplicate, keeping the connection dialled by node %u",
                       conn_dialler(t, best));
        }
    }
    assert(p->conn == best);
    if (best == was) {
        return;
    }
    if (best != NULL) {
        transport_gossip_send(t, i); /* the new connection learns all */
    }
    if (was == NULL || best == NULL) {
        m->connected = best != NULL;
        if (best == NULL) {
            p->dialer.at_ms =
                transport_now(t) + transport_jitter(t, t->o.reconnect_ms_min);
        }
        transport_log(t, TRANSPORT_LOG_INFO, "node %u %s", m->node_id,
                      best != NULL ? "connected" : "disconnected");
        if (t->cb.on_peer != NULL) {
            t->cb.on_peer(t->cb.data, m->node_id, best != NULL);
        }
    }
}

static void transport_accept_cb(uv_stream_t *server, int status)
{
    struct transport *t = server->data;
    struct transport_conn *c;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[64] = "?";
    int rv;

    if (t->closing) {
        return;
    }
    if (status < 0) {
        transport_log(t, TRANSPORT_LOG_WARN, "accept: %s", uv_strerror(status));
        return; /* UNTESTED: listener error */
    }
    c = conn_alloc(t, false);
    if (c == NULL) {
        return; /* UNTESTED: malloc failure */
    }
    c->state = CONN_CONNECTING;
    rv = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rv == 0 &&
        uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(s6, ip, sizeof(ip));
            snprintf(c->name, sizeof(c->name), "[%s]:%u", ip,
                     (unsigned)ntohs(s6->sin6_port));
        } else {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
            uv_ip4_name(s4, ip, sizeof(ip));
            snprintf(c->name, sizeof(c->name), "%s:%u", ip,
                     (unsigned)ntohs(s4->sin_port));
        }
    }
    if (rv != 0) {
        conn_close(c, TRANSPORT_LOG_WARN, "accept: %s", uv_strerror(rv));
        return; /* UNTESTED: accept failure */
    }
    t->stats.conn_accepted_count++;
    if (t->conn_count > TRANSPORT_CONNS_MAX) {
        conn_close(c, TRANSPORT_LOG_WARN, "%u connections open",
                   TRANSPORT_CONNS_MAX);
        return;
    }
    conn_ready(c);
}

/* ------------------------------------------------------------------------
 * Flushing
 * --------------------------------------------------------------------- */

static void peer_write_cb(uv_write_t *req, int status)
{
    struct transport_peer *p = req->data;
    struct transport *t = p->t;
    struct transport_conn *c = req->handle->data;

    assert(p->writing);
    p->writing = false;
    transport_batch_reset(&p->batch[p->fill ^ 1u]);
    if (status < 0 && status != UV_ECANCELED && !t->closing) {
        conn_close(c, TRANSPORT_LOG_WARN, "write failed: %s",
                   uv_strerror(status));
    }
}

/* Writes member i's filling batch with one uv_write, if it may. */
static void peer_flush(struct transport *t, size_t i)
{
    struct transport_peer *p = &t->peers[i];
    struct transport_batch *b = &p->batch[p->fill];
    struct transport_conn *c = p->conn;
    int rv;

    if (p->writing || c == NULL || b->count == 0) {
        return;
    }
    assert(c->state == CONN_ESTABLISHED);
    assert(b->count <= TRANSPORT_PEER_FRAMES_MAX);
    rv = uv_write(&p->write_req, (uv_stream_t *)&c->tcp, b->bufs,
                  (unsigned)b->count, peer_write_cb);
    if (rv != 0) {
        transport_batch_reset(b);
        conn_close(c, TRANSPORT_LOG_WARN, "write failed: %s", uv_strerror(rv));
        return;
    }
    t->stats.batch_write_count++;
    t->stats.frame_sent_count += b->count;
    p->writing = true;
    p->fill ^= 1u;
    assert(p->batch[p->fill].count == 0);
}

void transport_flush(struct transport *t)
{
    assert(t != NULL);
    if (!t->started || t->closing) {
        return;
    }
    t->stats.flush_count++;
    for (size_t i = 1; i < t->member_count && !t->closing; i++) {
        peer_flush(t, i);
    }
}

static void transport_prepare_cb(uv_prepare_t *handle)
{
    transport_flush(handle->data);
}

/* ------------------------------------------------------------------------
 * The tick: gossip, dead detection, timeouts, dials
 * --------------------------------------------------------------------- */

static void transport_tick_dials(struct transport *t, uint64_t now)
{
    for (size_t i = 1; i < t->member_count && !t->closing; i++) {
        struct transport_peer *p = &t->peers[i];
        const struct transport_member *m = &t->members[i];
        if (m->port == 0 || p->conn != NULL || p->dialer.conn != NULL ||
            now < p->dialer.at_ms) {
            continue;
        }
        p->dialer.conn = conn_dial(t, m->host, m->port, m->node_id, -1);
        if (p->dialer.conn == NULL) {
            transport_dialer_fail(t, &p->dialer);
        } else if (p->dialer.conn->state == CONN_CLOSING) {
            p->dialer.conn = NULL; /* conn_close() could not see it yet */
            transport_dialer_fail(t, &p->dialer);
        }
    }
    for (size_t k = 0; k < t->contact_count && !t->closing; k++) {
        struct transport_contact *cp = &t->contacts[k];
        int i = cp->node_id != 0 ? transport_member_find(t, cp->node_id) : -1;
        bool needed = cp->node_id == 0 || (i > 0 && t->members[i].port == 0 &&
                                           t->peers[i].conn == NULL);
        if (!needed || cp->dialer.conn != NULL || now < cp->dialer.at_ms) {
            continue;
        }
        cp->node_id = 0;
        cp->dialer.conn = conn_dial(t, cp->host, cp->port, 0, (int)k);
        if (cp->dialer.conn == NULL) {
            transport_dialer_fail(t, &cp->dialer);
        } else if (cp->dialer.conn->state == CONN_CLOSING) {
            cp->dialer.conn = NULL;
            transport_dialer_fail(t, &cp->dialer);
        }
    }
}

static void transport_tick_cb(uv_timer_t *handle)
{
    struct transport *t = handle->data;
    uint64_t now = transport_now(t);
    struct transport_conn *c;

    assert(t->started);
    if (t->closing) {
        return;
    }
    if (now >= t->gossip_at_ms) {
        t->gossip_at_ms = now + t->o.gossip_interval_ms;
        t->members[0].heartbeat++;
        t->members[0].last_seen_ms = now;
        for (size_t i = 1; i < t->member_count; i++) {
            if (t->peers[i].conn != NULL) {
                transport_gossip_send(t, i);
            }
        }
    }
    for (size_t i = 1; i < t->member_count && !t->closing; i++) {
        struct transport_member *m = &t->members[i];
        struct transport_peer *p = &t->peers[i];
        if (m->alive && now - m->last_seen_ms > t->dead_ms) {
            m->alive = false;
            transport_log(t, TRANSPORT_LOG_INFO,
                          "node %u not heard from for %llu ms: not alive",
                          m->node_id,
                          (unsigned long long)(now - m->last_seen_ms));
            if (p->conn == NULL) {
                transport_batch_reset(&p->batch[p->fill]);
            }
            transport_member_notify(t, i);
        }
    }
    for (c = t->conns; c != NULL && !t->closing; c = c->next) {
        if (c->state != CONN_ESTABLISHED && c->state != CONN_CLOSING &&
            now - c->started_ms > TRANSPORT_HELLO_TIMEOUT_MS) {
            conn_close(c, TRANSPORT_LOG_WARN, "no Hello within %u ms",
                       TRANSPORT_HELLO_TIMEOUT_MS);
        }
    }
    if (!t->closing) {
        transport_tick_dials(t, now);
    }
}

/* ------------------------------------------------------------------------
 * Lifecycle
 * --------------------------------------------------------------------- */

void transport_options_default(struct transport_options *o, uint32_t node_id)
{
    assert(o != NULL);
    memset(o, 0, sizeof(*o));
    o->node_id = node_id;
}

static bool host_is_wildcard(const char *host)
{
    return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
           strcmp(host, "[::]") == 0;
}

static bool str_fits(const char *s, size_t max)
{
    return s == NULL || strlen(s) <= max;
}

int transport_init(uv_loop_t *loop, struct transport **out,
                   const struct transport_options *options,
                   const struct transport_callbacks *callbacks)
{
    const struct transport_options *o = options;
    const char *listen_host;
    const char *advertised;
    struct transport *t;
    struct transport_member *self;
    int rv;

    assert(loop != NULL);
    assert(out != NULL);
    assert(options != NULL);
    assert(callbacks != NULL);
    *out = NULL;
    listen_host = o->listen_host != NULL ? o->listen_host : "0.0.0.0";
    advertised = o->advertised_host != NULL ? o->advertised_host : listen_host;
    if (o->node_id == 0 || callbacks->on_raft == NULL ||
        !str_fits(o->cluster_name, TRANSPORT_CLUSTER_NAME_MAX) ||
        !str_fits(listen_host, TRANSPORT_HOST_MAX) ||
        !str_fits(advertised, TRANSPORT_HOST_MAX) || advertised[0] == '\0' ||
        host_is_wildcard(advertised) ||
        !str_fits(o->command_host, TRANSPORT_HOST_MAX) ||
        !str_fits(o->version, TRANSPORT_VERSION_MAX) ||
        o->frame_bytes_max > CODEC_FRAME_BYTES_LIMIT ||
        (o->reconnect_ms_min != 0 && o->reconnect_ms_max != 0 &&
         o->reconnect_ms_min > o->reconnect_ms_max)) {
        return TRANSPORT_E_INVALID;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return TRANSPORT_E_NOMEM; /* UNTESTED: malloc failure */
    }
    t->members = calloc(TRANSPORT_MEMBERS_MAX, sizeof(*t->members));
    t->peers = calloc(TRANSPORT_MEMBERS_MAX, sizeof(*t->peers));
    t->gossip = calloc(TRANSPORT_MEMBERS_MAX, sizeof(*t->gossip));
    if (t->members == NULL || t->peers == NULL || t->gossip == NULL) {
        /* UNTESTED: malloc failure */
        free(t->members);
        free(t->peers);
        free(t->gossip);
        free(t);
        return TRANSPORT_E_NOMEM;
    }
    t->loop = loop;
    t->o = *o;
    t->cb = *callbacks;
    str_copy(t->cluster_name, o->cluster_name != NULL ? o->cluster_name : "",
             TRANSPORT_CLUSTER_NAME_MAX);
    str_copy(t->listen_host, listen_host, TRANSPORT_HOST_MAX);
    t->o.cluster_name = t->cluster_name;
    t->o.listen_host = t->listen_host;
#define DEFAULT(field, value)                                                  \
    if (t->o.field == 0) {                                                     \
        t->o.field = (value);                                                  \
    }
    DEFAULT(peer_queue_bytes_max, TRANSPORT_PEER_QUEUE_BYTES_DEFAULT);
    DEFAULT(frame_bytes_max, CODEC_FRAME_BYTES_DEFAULT);
    DEFAULT(reconnect_ms_min, TRANSPORT_RECONNECT_MS_MIN_DEFAULT);
    DEFAULT(reconnect_ms_max, TRANSPORT_RECONNECT_MS_MAX_DEFAULT);
    DEFAULT(gossip_interval_ms, TRANSPORT_GOSSIP_INTERVAL_MS_DEFAULT);
    DEFAULT(dead_intervals, TRANSPORT_DEAD_INTERVALS_DEFAULT);
    DEFAULT(seed, o->node_id);
    DEFAULT(log_level, TRANSPORT_LOG_INFO);
#undef DEFAULT
    if (t->o.reconnect_ms_max < t->o.reconnect_ms_min) {
        t->o.reconnect_ms_max = t->o.reconnect_ms_min;
    }
    if (t->o.log == NULL) {
        t->o.log = log_stderr;
    }
    t->prng = t->o.seed;
    t->tick_ms = t->o.reconnect_ms_min < t->o.gossip_interval_ms
                     ? t->o.reconnect_ms_min
                     : t->o.gossip_interval_ms;
    t->dead_ms = (uint64_t)t->o.gossip_interval_ms * t->o.dead_intervals;
    t->batch_arena_bytes_max =
        t->o.peer_queue_bytes_max + CODEC_ARENA_BYTES_FOR(t->o.frame_bytes_max);
    t->bound_port = TRANSPORT_E_STATE;
    codec_arena_init(&t->decode_arena,
                     CODEC_ARENA_BYTES_FOR(t->o.frame_bytes_max));
    codec_arena_init(&t->scratch_arena, (size_t)64 << 10);

    rv = transport_member_add(t, o->node_id);
    assert(rv == 0);
    self = &t->members[0];
    self->self = true;
    self->heartbeat = 1;
    str_copy(self->host, advertised, TRANSPORT_HOST_MAX);
    self->port = o->advertised_port;
    str_copy(self->command_host, o->command_host != NULL ? o->command_host : "",
             TRANSPORT_HOST_MAX);
    self->command_port = o->command_port;
    str_copy(self->version, o->version != NULL ? o->version : "",
             TRANSPORT_VERSION_MAX);
    t->o.advertised_host = self->host;
    t->o.command_host = self->command_host;
    t->o.version = self->version;

    rv = uv_tcp_init(loop, &t->listener);
    assert(rv == 0);
    rv = uv_timer_init(loop, &t->tick);
    assert(rv == 0);
    rv = uv_prepare_init(loop, &t->prepare);
    assert(rv == 0);
    (void)rv;
    t->listener.data = t;
    t->tick.data = t;
    t->prepare.data = t;
    t->handles_open = 3;
    *out = t;
    return 0;
}

/* Parses "host:port" or "[v6]:port". */
static int transport_contact_parse(const char *s, struct transport_contact *cp)
{
    const char *colon = strrchr(s, ':');
    const char *host = s;
    size_t host_len;
    char *end;
    unsigned long port;

    if (colon == NULL || colon[1] == '\0') {
        return TRANSPORT_E_INVALID;
    }
    host_len = (size_t)(colon - s);
    if (host_len >= 2 && s[0] == '[' && s[host_len - 1] == ']') {
        host = s + 1;
        host_len -= 2;
    }
    port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port == 0 || port > UINT16_MAX || host_len == 0 ||
        host_len > TRANSPORT_HOST_MAX) {
        return TRANSPORT_E_INVALID;
    }
    memcpy(cp->host, host, host_len);
    cp->host[host_len] = '\0';
    cp->port = (uint16_t)port;
    cp->node_id = 0;
    return 0;
}

int transport_start(struct transport *t, const char *const *contact_points,
                    size_t count)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int rv;

    assert(t != NULL);
    assert(contact_points != NULL || count == 0);
    if (t->started || t->closing) {
        return TRANSPORT_E_STATE;
    }
    if (count > TRANSPORT_CONTACT_POINTS_MAX) {
        return TRANSPORT_E_INVALID;
    }
    for (size_t k = 0; k < count; k++) {
        if (contact_points[k] == NULL ||
            transport_contact_parse(contact_points[k], &t->contacts[k]) != 0) {
            transport_log(t, TRANSPORT_LOG_ERROR, "bad contact point \"%s\"",
                          contact_points[k] != NULL ? contact_points[k] : "");
            return TRANSPORT_E_INVALID;
        }
        transport_dialer_init(t, &t->contacts[k].dialer);
    }
    t->contact_count = count;

    if (uv_ip4_addr(t->listen_host, t->o.listen_port,
                    (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(t->listen_host, t->o.listen_port,
                    (struct sockaddr_in6 *)&ss) != 0) {
        transport_log(t, TRANSPORT_LOG_ERROR,
                      "listen host \"%s\" is not a numeric address",
                      t->listen_host);
        return TRANSPORT_E_IO;
    }
    rv = uv_tcp_bind(&t->listener, (const struct sockaddr *)&ss, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&t->listener, LISTEN_BACKLOG,
                       transport_accept_cb);
    }
    if (rv == 0) {
        rv = uv_tcp_getsockname(&t->listener, (struct sockaddr *)&ss, &len);
    }
    if (rv != 0) {
        transport_log(t, TRANSPORT_LOG_ERROR, "cannot listen on %s:%u: %s",
                      t->listen_host, (unsigned)t->o.listen_port,
                      uv_strerror(rv));
        return TRANSPORT_E_IO;
    }
    t->bound_port =
        ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port);
    assert(t->bound_port > 0);
    if (t->members[0].port == 0) {
        t->members[0].port = (uint16_t)t->bound_port;
    }
    transport_log(t, TRANSPORT_LOG_INFO,
                  "listening on %s:%d, advertised as %s:%u, cluster \"%s\"",
                  t->listen_host, t->bound_port, t->members[0].host,
                  (unsigned)t->members[0].port, t->cluster_name);
    t->started = true;
    t->gossip_at_ms = transport_now(t) + t->o.gossip_interval_ms;
    rv = uv_timer_start(&t->tick, transport_tick_cb, t->tick_ms, t->tick_ms);
    assert(rv == 0);
    rv = uv_prepare_start(&t->prepare, transport_prepare_cb);
    assert(rv == 0);
    (void)rv;
    transport_tick_dials(t, transport_now(t));
    return 0;
}

/* The checks every send does, then room for one frame in the filling
 * batch of to_node's queue (*out). Returns 0 or a TRANSPORT_E_* code. */
static int transport_send_reserve(struct transport *t, uint32_t to_node,
                                  struct transport_batch **out)
{
    int i;

    assert(t != NULL);
    if (!t->started || t->closing) {
        return TRANSPORT_E_STATE;
    }
    if (to_node == t->o.node_id) {
        return TRANSPORT_E_INVALID;
    }
    i = transport_member_find(t, to_node);
    if (i < 0 || (t->peers[i].conn == NULL && t->members[i].port == 0)) {
        return TRANSPORT_E_UNKNOWN_PEER;
    }
    return transport_peer_reserve(t, &t->peers[i], out);
}

/* Appends an encoded frame to b, or maps the encoder's error. */
static int transport_send_finish(struct transport_batch *b, int codec_rv,
                                 struct raft_buf frame)
{
    switch (codec_rv) {
    case 0:
        transport_batch_append(b, frame);
        assert(b->count > 0 && b->bytes >= frame.len);
        return 0;
    case CODEC_E_INVALID:
        return TRANSPORT_E_INVALID;
    case CODEC_E_TOO_BIG:
        return TRANSPORT_E_TOO_BIG;
    default:
        /* The arena limit exceeds the queue limit by a frame's worth, so
         * this is garbage left by failed encodings, or malloc failing. */
        return b->arena.full ? TRANSPORT_E_BUSY : TRANSPORT_E_NOMEM;
    }
}

int transport_send(struct transport *t, uint32_t to_node, uint32_t partition,
                   const struct raft_message *m)
{
    struct transport_batch *b;
    struct raft_buf frame = {NULL, 0};
    int rv;

    assert(m != NULL);
    rv = transport_send_reserve(t, to_node, &b);
    if (rv != 0) {
        return rv;
    }
    rv = codec_raft_encode(&b->arena, partition, m, t->o.frame_bytes_max,
                           &frame);
    return transport_send_finish(b, rv, frame);
}

int transport_send_command(struct transport *t, uint32_t to_node,
                           uint32_t partition, const struct codec_command *c)
{
    struct transport_batch *b;
    struct raft_buf frame = {NULL, 0};
    int rv;

    assert(c != NULL);
    rv = transport_send_reserve(t, to_node, &b);
    if (rv != 0) {
        return rv;
    }
    rv = codec_command_encode(&b->arena, partition, c, t->o.frame_bytes_max,
                              &frame);
    return transport_send_finish(b, rv, frame);
}

int transport_send_forward(struct transport *t, uint32_t to_node,
                           const struct codec_forward *fw)
{
    struct transport_batch *b;
    struct raft_buf frame = {NULL, 0};
    int rv;

    assert(fw != NULL);
    rv = transport_send_reserve(t, to_node, &b);
    if (rv != 0) {
        return rv;
    }
    rv = codec_forward_encode(&b->arena, t->o.frame_bytes_max, fw, &frame);
    return transport_send_finish(b, rv, frame);
}

int transport_send_rebalance(struct transport *t, uint32_t to_node)
{
    struct transport_batch *b;
    struct raft_buf frame = {NULL, 0};
    int rv;

    rv = transport_send_reserve(t, to_node, &b);
    if (rv != 0) {
        return rv;
    }
    rv = codec_rebalance_encode(&b->arena, t->o.frame_bytes_max, &frame);
    return transport_send_finish(b, rv, frame);
}

int transport_members(struct transport *t, const struct transport_member **out,
                      size_t *count)
{
    assert(t != NULL);
    assert(out != NULL);
    assert(count != NULL);
    assert(t->member_count >= 1);
    assert(t->members[0].self);
    *out = t->members;
    *count = t->member_count;
    return 0;
}

int transport_bound_port(struct transport *t)
{
    assert(t != NULL);
    return t->started ? t->bound_port : TRANSPORT_E_STATE;
}

void transport_set_cluster_config_cb(struct transport *t,
                                     transport_cluster_config_fn cb,
                                     void *data)
{
    assert(t != NULL);
    t->config_cb = cb;
    t->config_cb_data = data;
}

int transport_set_cluster_config(struct transport *t, uint64_t version,
                                 const void *bytes, size_t len)
{
    uint64_t ours;

    assert(t != NULL);
    if (t->closing) {
        return TRANSPORT_E_STATE;
    }
    if (version == 0 || bytes == NULL || len == 0 ||
        len > TRANSPORT_CLUSTER_CONFIG_BYTES_MAX) {
        return TRANSPORT_E_INVALID;
    }
    ours = t->members[0].config_version;
    if (version == ours) {
        return len == t->config_len && memcmp(bytes, t->config_bytes, len) == 0
                   ? 0
                   : TRANSPORT_E_INVALID;
    }
    if (version < ours) {
        return TRANSPORT_E_INVALID;
    }
    return transport_config_store(t, version, bytes, len);
}

uint64_t transport_cluster_config_version(const struct transport *t)
{
    assert(t != NULL);
    return t->members[0].config_version;
}

void *transport_data(const struct transport *t)
{
    assert(t != NULL);
    return t->cb.data;
}

/* Frees t once its handles and connections are all closed. */
static void transport_close_finish(struct transport *t)
{
    void (*cb)(struct transport * t) = t->close_cb;

    if (!t->closing || t->closed || t->handles_open > 0 || t->conns != NULL) {
        return;
    }
    assert(t->conn_count == 0);
    t->closed = true;
    for (size_t i = 0; i < t->member_count; i++) {
        struct transport_peer *p = &t->peers[i];
        assert(!p->writing);
        for (unsigned k = 0; k < 2; k++) {
            codec_arena_close(&p->batch[k].arena);
            free(p->batch[k].bufs);
        }
    }
    codec_arena_close(&t->decode_arena);
    codec_arena_close(&t->scratch_arena);
    free(t->config_bytes);
    free(t->members);
    free(t->peers);
    free(t->gossip);
    if (cb != NULL) {
        cb(t);
    }
    free(t);
}

static void transport_handle_close_cb(uv_handle_t *handle)
{
    struct transport *t = handle->data;

    assert(t->handles_open > 0);
    t->handles_open--;
    transport_close_finish(t);
}

void transport_close(struct transport *t, void (*close_cb)(struct transport *t))
{
    struct transport_conn *c;

    assert(t != NULL);
    assert(!t->closing);
    t->closing = true;
    t->close_cb = close_cb;
    for (size_t i = 0; i < t->member_count; i++) {
        t->peers[i].conn = NULL;
        t->peers[i].dialer.conn = NULL;
    }
    for (size_t k = 0; k < t->contact_count; k++) {
        t->contacts[k].dialer.conn = NULL;
    }
    for (c = t->conns; c != NULL; c = c->next) {
        conn_close(c, TRANSPORT_LOG_DEBUG, "transport closing");
    }
    uv_close((uv_handle_t *)&t->listener, transport_handle_close_cb);
    uv_close((uv_handle_t *)&t->tick, transport_handle_close_cb);
    uv_close((uv_handle_t *)&t->prepare, transport_handle_close_cb);
}

/* ------------------------------------------------------------------------
 * Private view (transport_impl.h)
 * --------------------------------------------------------------------- */

const struct transport_stats *transport__stats_get(const struct transport *t)
{
    assert(t != NULL);
    return &t->stats;
}

size_t transport__conns_count(const struct transport *t, uint32_t node_id)
{
    size_t n = 0;

    assert(t != NULL);
    for (const struct transport_conn *c = t->conns; c != NULL; c = c->next) {
        n += c->state == CONN_ESTABLISHED && c->node_id == node_id;
    }
    return n;
}

int transport__conn_outbound(const struct transport *t, uint32_t node_id)
{
    int i = transport_member_find(t, node_id);

    if (i <= 0 || t->peers[i].conn == NULL) {
        return -1;
    }
    return t->peers[i].conn->outbound ? 1 : 0;
}

size_t transport__writes_inflight(const struct transport *t)
{
    size_t n = 0;

    for (size_t i = 1; i < t->member_count; i++) {
        n += t->peers[i].writing;
    }
    return n;
}

size_t transport__queue_bytes(const struct transport *t, uint32_t node_id)
{
    int i = transport_member_find(t, node_id);

    return i <= 0 ? 0 : transport_peer_queue_bytes(&t->peers[i]);
}
