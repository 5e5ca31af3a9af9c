/* client.c: the gateway's broker client (client.h): connections to the
 * brokers' command API, the merged topology, and calls routed to
 * partition leaders with retries.
 *
 * A broker (struct client_broker) is an address plus a connection that
 * cycles through
 *
 *   IDLE --resolve--> RESOLVING --connect--> CONNECTING --> CONNECTED
 *     ^                                                        |
 *     +--reconnect timer (backoff)-- CLOSING <--error / EOF----+
 *
 * Each connection carries pipelined Request frames and their Response
 * frames (proto/command.proto, framed by proto/frame.h). Every request
 * awaiting its answer has a slot in the broker's pending table, bounded by
 * connection_requests_max (+1 slot for the topology request); an answer
 * is matched to its slot by id. A slot whose call went away (cancelled,
 * expired) stays until the answer or the disconnect, with call == NULL.
 *
 * A call (struct client_call, client_internal.h) owns a copy of its
 * command message, a route (fixed partition, correlation key, key, round
 * robin), a deadline and at most one attempt at a time: either pending on
 * a broker or waiting for retry_at_ms (the first attempt too, so a cb
 * never runs inside the function that started its call). One timer (call_timer) fires at the earliest deadline
 * or retry of all calls. Callbacks to the gateway run with no client
 * state half-updated: a call is unlinked and freed before its cb runs,
 * and everything re-validates after a cb returns, because a cb may start,
 * cancel, or close anything.
 *
 * Sections: helpers; merged topology; brokers and connections; calls;
 * backend interface; lifecycle. */
#define _POSIX_C_SOURCE 200809L
#include "gateway/client_internal.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Types
 * --------------------------------------------------------------------- */

enum broker_state {
    BROKER_IDLE = 0,   /* no socket; maybe a reconnect timer running */
    BROKER_RESOLVING,  /* getaddrinfo in flight */
    BROKER_CONNECTING, /* tcp initialized, connect in flight */
    BROKER_CONNECTED,  /* reading, may send */
    BROKER_CLOSING,    /* tcp closing */
};

/* One request awaiting its response on a connection. */
struct client_pending {
    uint64_t id;              /* Request.id */
    struct client_call *call; /* NULL: topology, or the call went away */
    bool topology;            /* a TopologyRequest */
    uint64_t expires_ms;      /* unanswered past this: broker is stuck */
};

#define CLIENT_READ_BYTES 65536u

struct client_broker {
    struct gateway_client *client;
    char host[GATEWAY_CLIENT_HOST_BYTES_MAX + 1];
    uint16_t port;
    int64_t node_id; /* -1 until its first topology report */
    enum broker_state state;
    uv_getaddrinfo_t resolve;
    uv_connect_t connect;
    uv_tcp_t tcp;
    uv_timer_t reconnect_timer; /* initialized with the broker */
    uint64_t backoff_ms;        /* next reconnect delay */
    struct proto_frame_splitter splitter;
    struct client_pending *pending; /* [connection_requests_max + 1] */
    uint32_t pending_count;
    uv_buf_t *outq;                 /* packed requests not yet written */
    uint32_t outq_count;
    uint32_t outq_cap;
    bool topology_inflight;
    Tandem__Command__Response *report; /* last topology answer, owned */
    uint64_t report_at_ms;             /* when it arrived */
    uint8_t read_buf[CLIENT_READ_BYTES];
};


/* ------------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void
client_errmsg(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

static uint64_t client_now(const struct gateway_client *c)
{
    return uv_now(c->loop);
}

/* Splits "host:port" (IPv6 as "[::1]:26501") into host and port. Returns
 * 0 or -1. */
static int address_parse(const char *s, char *host, size_t host_size,
                         uint16_t *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    char *end;
    unsigned long p;

    if (s == NULL) {
        return -1;
    }
    colon = strrchr(s, ':');
    if (colon == NULL || colon == s) {
        return -1;
    }
    hlen = (size_t)(colon - s);
    if (s[0] == '[') {
        if (hlen < 3 || s[hlen - 1] != ']') {
            return -1;
        }
        h = s + 1;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= host_size) {
        return -1;
    }
    p = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p == 0 || p > 65535) {
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

uint32_t gateway_client_partition_of_key(const char *key,
                                         uint32_t partitions_count)
{
    uint32_t h = 0;
    int32_t hash;
    int32_t rem;
    const unsigned char *p = (const unsigned char *)key;

    assert(key != NULL);
    assert(partitions_count >= 1);
    /* Java int arithmetic wraps: compute modulo 2^32 on unsigned, adding
     * each byte sign-extended as Java's byte is signed. */
    for (; *p != '\0'; p++) {
        int32_t b = *p >= 0x80 ? (int32_t)*p - 256 : (int32_t)*p;
        h = 31u * h + (uint32_t)b;
    }
    hash = h <= (uint32_t)INT32_MAX ? (int32_t)h
                                    : -(int32_t)(UINT32_MAX - h) - 1;
    rem = hash % (int32_t)partitions_count; /* truncates, as Java's % */
    return (uint32_t)(rem < 0 ? -rem : rem) + 1u;
}

/* ------------------------------------------------------------------------
 * Merged topology
 * --------------------------------------------------------------------- */

static const Tandem__Command__BrokerTopology *
broker_report(const struct client_broker *b)
{
    return b->report != NULL ? b->report->topology : NULL;
}

/* A broker's report counts while it is connected and recent. */
static bool broker_fresh(const struct client_broker *b, uint64_t now)
{
    return b->state == BROKER_CONNECTED && b->report != NULL &&
           now - b->report_at_ms <= b->client->opts.topology_stale_ms;
}

/* The leader of partition_id: the fresh broker reporting LEADER with the
 * highest term, or NULL. */
static struct client_broker *client_leader_find(struct gateway_client *c,
                                                uint32_t partition_id)
{
    uint64_t now = client_now(c);
    struct client_broker *best = NULL;
    uint64_t best_term = 0;
    uint32_t i;
    size_t k;

    for (i = 0; i < c->broker_count; i++) {
        struct client_broker *b = c->brokers[i];
        const Tandem__Command__BrokerTopology *t = broker_report(b);
        if (!broker_fresh(b, now)) {
            continue;
        }
        for (k = 0; k < t->n_partitions; k++) {
            const Tandem__Command__PartitionState *p = t->partitions[k];
            if (p->partition_id == partition_id &&
                p->role == TANDEM__COMMAND__ROLE__LEADER &&
                (best == NULL || p->term > best_term)) {
                best = b;
                best_term = p->term;
            }
        }
    }
    return best;
}

int64_t gateway_client_leader(struct gateway_client *client,
                              uint32_t partition_id)
{
    struct client_broker *b;

    assert(client != NULL);
    b = client_leader_find(client, partition_id);
    return b != NULL ? b->node_id : -1;
}

/* The report that gives cluster size, partitions count and RF: the fresh
 * one with the highest config_version, else the newest of any. */
static const Tandem__Command__BrokerTopology *
client_config_report(struct gateway_client *c)
{
    uint64_t now = client_now(c);
    const Tandem__Command__BrokerTopology *best = NULL;
    const Tandem__Command__BrokerTopology *newest = NULL;
    uint64_t newest_at = 0;
    uint32_t i;

    for (i = 0; i < c->broker_count; i++) {
        const struct client_broker *b = c->brokers[i];
        const Tandem__Command__BrokerTopology *t = broker_report(b);
        if (t == NULL) {
            continue;
        }
        if (broker_fresh(b, now) &&
            (best == NULL || t->config_version > best->config_version)) {
            best = t;
        }
        if (newest == NULL || b->report_at_ms > newest_at) {
            newest = t;
            newest_at = b->report_at_ms;
        }
    }
    return best != NULL ? best : newest;
}

/* One broker of the merged view while it is assembled. */
struct merge_entry {
    uint32_t node_id;
    const char *host;
    uint32_t port;
    const char *version;
    const Tandem__Command__BrokerTopology *parts; /* NULL: none listed */
};

static int merge_entry_cmp(const void *a, const void *b)
{
    const struct merge_entry *x = a;
    const struct merge_entry *y = b;
    return x->node_id < y->node_id ? -1 : x->node_id > y->node_id;
}

static int partition_cmp(const void *a, const void *b)
{
    const GatewayProtocol__Partition *const *x = a;
    const GatewayProtocol__Partition *const *y = b;
    return (*x)->partitionid < (*y)->partitionid
               ? -1
               : (*x)->partitionid > (*y)->partitionid;
}

static struct merge_entry *merge_find(struct merge_entry *e, size_t n,
                                      uint32_t node_id)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (e[i].node_id == node_id) {
            return &e[i];
        }
    }
    return NULL;
}

/* The member entry a report gives for node_id, or NULL. */
static const Tandem__Command__Member *
report_member(const Tandem__Command__BrokerTopology *t, uint32_t node_id)
{
    size_t i;
    for (i = 0; i < t->n_members; i++) {
        if (t->members[i]->node_id == node_id) {
            return t->members[i];
        }
    }
    return NULL;
}

static bool partition_role_map(Tandem__Command__Role role,
                               GatewayProtocol__Partition__PartitionBrokerRole
                                   *out)
{
    switch (role) {
    case TANDEM__COMMAND__ROLE__LEADER:
        *out = GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_ROLE__LEADER;
        return true;
    case TANDEM__COMMAND__ROLE__FOLLOWER:
        *out = GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_ROLE__FOLLOWER;
        return true;
    case TANDEM__COMMAND__ROLE__INACTIVE:
        *out = GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_ROLE__INACTIVE;
        return true;
    default:
        return false; /* unspecified: not listed (zeebe-facts 2) */
    }
}

static GatewayProtocol__Partition__PartitionBrokerHealth
partition_health_map(Tandem__Command__Health health)
{
    switch (health) {
    case TANDEM__COMMAND__HEALTH__HEALTHY:
        return GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_HEALTH__HEALTHY;
    case TANDEM__COMMAND__HEALTH__DEAD:
        return GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_HEALTH__DEAD;
    default:
        return GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_HEALTH__UNHEALTHY;
    }
}

const GatewayProtocol__TopologyResponse *
gateway_client_topology(struct gateway_client *c)
{
    GatewayProtocol__TopologyResponse init =
        GATEWAY_PROTOCOL__TOPOLOGY_RESPONSE__INIT;
    uint64_t now;
    const Tandem__Command__BrokerTopology *cfg;
    struct merge_entry *entries = NULL;
    size_t cap = 0, n = 0, parts_total = 0, i, k, pi = 0;
    uint8_t *mem;
    GatewayProtocol__BrokerInfo *infos;
    GatewayProtocol__BrokerInfo **info_ptrs;
    GatewayProtocol__Partition *parts;
    GatewayProtocol__Partition **part_ptrs;

    assert(c != NULL);
    now = client_now(c);
    free(c->topology_mem);
    c->topology_mem = NULL;
    c->topology = init;
    c->topology.gatewayversion = c->gateway_version;

    /* Brokers with a fresh report, then the members only others know
     * alive. A broker whose report went stale and that no fresh broker
     * names alive (killed, or removed from the cluster) is not listed,
     * as Zeebe's gateway drops a member its membership protocol lost. */
    for (i = 0; i < c->broker_count; i++) {
        const Tandem__Command__BrokerTopology *t = broker_report(c->brokers[i]);
        if (t != NULL) {
            cap += 1 + t->n_members;
        }
    }
    if (cap > 0) {
        entries = calloc(cap, sizeof(*entries));
        if (entries == NULL) {
            /* UNTESTED: malloc failure; answer an empty topology */
            return &c->topology;
        }
    }
    for (i = 0; i < c->broker_count; i++) {
        struct client_broker *b = c->brokers[i];
        const Tandem__Command__BrokerTopology *t = broker_report(b);
        const Tandem__Command__Member *self;
        if (t == NULL || !broker_fresh(b, now) ||
            merge_find(entries, n, t->node_id) != NULL) {
            continue;
        }
        assert(n < cap);
        self = report_member(t, t->node_id);
        entries[n].node_id = t->node_id;
        entries[n].host = self != NULL && self->command_host[0] != '\0'
                              ? self->command_host
                              : b->host;
        entries[n].port = self != NULL ? self->command_port : b->port;
        entries[n].version = t->version;
        entries[n].parts = t;
        parts_total += t->n_partitions;
        n++;
    }
    for (i = 0; i < c->broker_count; i++) {
        const struct client_broker *b = c->brokers[i];
        const Tandem__Command__BrokerTopology *t = broker_report(b);
        if (!broker_fresh(b, now)) {
            continue;
        }
        for (k = 0; k < t->n_members; k++) {
            const Tandem__Command__Member *m = t->members[k];
            if (merge_find(entries, n, m->node_id) != NULL) {
                continue;
            }
            assert(n < cap);
            entries[n].node_id = m->node_id;
            entries[n].host = m->command_host;
            entries[n].port = m->command_port;
            entries[n].version = m->version;
            entries[n].parts = NULL;
            n++;
        }
    }
    if (n > 1) {
        qsort(entries, n, sizeof(*entries), merge_entry_cmp);
    }

    /* Pass 2: one block for all the structs and pointer arrays (struct
     * sizes are multiples of pointer alignment). */
    mem = calloc(1, n * (sizeof(*infos) + sizeof(*info_ptrs)) +
                        parts_total * (sizeof(*parts) + sizeof(*part_ptrs)) +
                        1);
    if (mem == NULL) {
        /* UNTESTED: malloc failure */
        free(entries);
        return &c->topology;
    }
    c->topology_mem = mem;
    infos = (GatewayProtocol__BrokerInfo *)(void *)mem;
    parts = (GatewayProtocol__Partition *)(void *)(infos + n);
    info_ptrs = (GatewayProtocol__BrokerInfo **)(void *)(parts + parts_total);
    part_ptrs = (GatewayProtocol__Partition **)(void *)(info_ptrs + n);
    for (i = 0; i < n; i++) {
        GatewayProtocol__BrokerInfo bi = GATEWAY_PROTOCOL__BROKER_INFO__INIT;
        const Tandem__Command__BrokerTopology *t = entries[i].parts;
        bi.nodeid = (int32_t)entries[i].node_id;
        bi.host = (char *)(uintptr_t)entries[i].host;
        bi.port = (int32_t)entries[i].port;
        bi.version = (char *)(uintptr_t)(entries[i].version != NULL
                                             ? entries[i].version
                                             : "");
        bi.partitions = part_ptrs + pi;
        for (k = 0; t != NULL && k < t->n_partitions; k++) {
            GatewayProtocol__Partition p = GATEWAY_PROTOCOL__PARTITION__INIT;
            GatewayProtocol__Partition__PartitionBrokerRole role;
            if (!partition_role_map(t->partitions[k]->role, &role)) {
                continue;
            }
            assert(pi < parts_total);
            p.partitionid = (int32_t)t->partitions[k]->partition_id;
            p.role = role;
            p.health = partition_health_map(t->partitions[k]->health);
            parts[pi] = p;
            part_ptrs[pi] = &parts[pi];
            pi++;
            bi.n_partitions++;
        }
        if (bi.n_partitions > 1) {
            qsort(bi.partitions, bi.n_partitions, sizeof(*bi.partitions),
                  partition_cmp);
        }
        infos[i] = bi;
        info_ptrs[i] = &infos[i];
    }
    free(entries);
    c->topology.n_brokers = n;
    c->topology.brokers = n > 0 ? info_ptrs : NULL;
    cfg = client_config_report(c);
    if (cfg != NULL) {
        c->topology.clustersize = (int32_t)cfg->cluster_size;
        c->topology.partitionscount = (int32_t)cfg->partitions_count;
        c->topology.replicationfactor = (int32_t)cfg->replication_factor;
    }
    return &c->topology;
}

/* ------------------------------------------------------------------------
 * Brokers and connections
 * --------------------------------------------------------------------- */

static void broker_connect(struct client_broker *b);
static void broker_disconnect(struct client_broker *b, const char *why);
static void call_retry(struct gateway_client *c, struct client_call *call,
                       const char *why);
static void call_on_response(struct gateway_client *c,
                             struct client_call *call,
                             struct client_broker *b,
                             const Tandem__Command__Response *resp);
static void client_calls_schedule(struct gateway_client *c);
static void client_close_maybe_done(struct gateway_client *c);

static void handle_closed_cb(uv_handle_t *h)
{
    struct gateway_client *c = h->data;

    assert(c->handles_open > 0);
    c->handles_open--;
    client_close_maybe_done(c);
}

static struct client_broker *client_broker_find(struct gateway_client *c,
                                                const char *host,
                                                uint16_t port)
{
    uint32_t i;
    for (i = 0; i < c->broker_count; i++) {
        if (c->brokers[i]->port == port &&
            strcmp(c->brokers[i]->host, host) == 0) {
            return c->brokers[i];
        }
    }
    return NULL;
}

static struct client_broker *client_broker_by_node(struct gateway_client *c,
                                                   int64_t node_id)
{
    uint32_t i;
    for (i = 0; i < c->broker_count; i++) {
        if (c->brokers[i]->node_id == node_id) {
            return c->brokers[i];
        }
    }
    return NULL;
}

/* Adds a broker (not connected yet). Returns it, or NULL when brokers_max
 * is reached or memory runs out. */
static struct client_broker *client_broker_add(struct gateway_client *c,
                                               const char *host, uint16_t port)
{
    struct client_broker *b;

    assert(strlen(host) <= GATEWAY_CLIENT_HOST_BYTES_MAX);
    if (c->broker_count >= c->opts.brokers_max) {
        return NULL;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL; /* UNTESTED: malloc failure */
    }
    b->pending = calloc((size_t)c->opts.connection_requests_max + 1,
                        sizeof(*b->pending));
    if (b->pending == NULL) {
        free(b); /* UNTESTED: malloc failure */
        return NULL;
    }
    b->client = c;
    strcpy(b->host, host);
    b->port = port;
    b->node_id = -1;
    b->state = BROKER_IDLE;
    b->backoff_ms = c->opts.reconnect_ms_min;
    uv_timer_init(c->loop, &b->reconnect_timer);
    b->reconnect_timer.data = b;
    c->handles_open++;
    c->brokers[c->broker_count++] = b;
    return b;
}

static void broker_reconnect_cb(uv_timer_t *t)
{
    struct client_broker *b = t->data;

    if (!b->client->closing && b->state == BROKER_IDLE) {
        broker_connect(b);
    }
}

static void broker_reconnect_later(struct client_broker *b)
{
    struct gateway_client *c = b->client;

    assert(b->state == BROKER_IDLE);
    if (c->closing) {
        return;
    }
    uv_timer_start(&b->reconnect_timer, broker_reconnect_cb, b->backoff_ms, 0);
    b->backoff_ms = b->backoff_ms * 2 < c->opts.reconnect_ms_max
                        ? b->backoff_ms * 2
                        : c->opts.reconnect_ms_max;
}

static void broker_tcp_closed_cb(uv_handle_t *h)
{
    struct client_broker *b = h->data;
    struct gateway_client *c = b->client;

    assert(b->state == BROKER_CLOSING);
    assert(c->handles_open > 0);
    c->handles_open--;
    b->state = BROKER_IDLE;
    if (c->closing) {
        client_close_maybe_done(c);
        return;
    }
    broker_reconnect_later(b);
}

/* Requests are queued per broker and written once per loop iteration
 * (client_flush_cb, a uv_prepare handle: it runs right before the loop
 * would block), so the requests of a turn cost one system call per broker
 * connection. */
#define CLIENT_OUTQ_MAX 4096u /* queued frames per broker per turn */

struct client_write {
    uv_write_t req;
    uv_buf_t *bufs; /* the frames, freed when written */
    uint32_t count;
};

static void outq_free(struct client_broker *b)
{
    for (uint32_t i = 0; i < b->outq_count; i++) {
        free(b->outq[i].base);
    }
    free(b->outq);
    b->outq = NULL;
    b->outq_count = 0;
    b->outq_cap = 0;
}

static void broker_write_cb(uv_write_t *req, int status)
{
    struct client_write *w = (struct client_write *)req;
    struct client_broker *b = req->data;

    for (uint32_t i = 0; i < w->count; i++) {
        free(w->bufs[i].base);
    }
    free(w->bufs);
    free(w);
    if (status < 0 && status != UV_ECANCELED &&
        b->state == BROKER_CONNECTED) {
        broker_disconnect(b, uv_strerror(status));
    }
}

/* Writes b's queued requests with one uv_write. */
static void broker_flush(struct client_broker *b)
{
    struct client_write *w;
    int rv;

    if (b->outq_count == 0 || b->state != BROKER_CONNECTED) {
        return;
    }
    w = malloc(sizeof(*w));
    if (w == NULL) {
        broker_disconnect(b, "out of memory"); /* UNTESTED */
        return;
    }
    w->bufs = b->outq;
    w->count = b->outq_count;
    w->req.data = b;
    b->outq = NULL;
    b->outq_count = 0;
    b->outq_cap = 0;
    rv = uv_write(&w->req, (uv_stream_t *)&b->tcp, w->bufs, w->count,
                  broker_write_cb);
    if (rv != 0) {
        /* UNTESTED: the socket failed between reads; the pending calls
         * are retried by the disconnect. */
        broker_write_cb(&w->req, rv);
    }
}

static void client_flush_cb(uv_prepare_t *prepare)
{
    struct gateway_client *c = prepare->data;

    for (uint32_t i = 0; i < c->broker_count; i++) {
        broker_flush(c->brokers[i]);
    }
    uv_prepare_stop(&c->flusher);
    c->flusher_active = false;
}

/* Writes a request and records its pending slot. Returns 0, or a gRPC
 * status to fail the call with (RESOURCE_EXHAUSTED when the connection's
 * bound is reached, INVALID_ARGUMENT when the frame is too big, INTERNAL
 * otherwise); on failure nothing was sent. */
static int broker_send(struct client_broker *b,
                       Tandem__Command__Request *req,
                       struct client_call *call)
{
    struct gateway_client *c = b->client;
    uint8_t *frame;
    size_t len;
    int rv;

    assert(b->state == BROKER_CONNECTED);
    assert(b->pending_count <= c->opts.connection_requests_max + 1u);
    /* Calls share connection_requests_max slots; the topology request has
     * one of its own. */
    if (call != NULL ? b->pending_count - (b->topology_inflight ? 1u : 0u) >=
                           c->opts.connection_requests_max
                     : b->topology_inflight) {
        return GATEWAY_STATUS_RESOURCE_EXHAUSTED;
    }
    req->id = c->next_request_id++;
    rv = proto_command_request_pack(req, c->opts.frame_bytes_max, &frame,
                                    &len);
    if (rv == PROTO_E_TOO_BIG || rv == PROTO_E_INVALID) {
        return GATEWAY_STATUS_INVALID_ARGUMENT;
    }
    if (rv != 0) {
        return GATEWAY_STATUS_INTERNAL; /* UNTESTED: malloc failure */
    }
    if (b->outq_count >= CLIENT_OUTQ_MAX) {
        broker_flush(b); /* a huge turn: write what is queued now */
    }
    if (b->outq_count == b->outq_cap) {
        uint32_t cap = b->outq_cap == 0 ? 16 : b->outq_cap * 2;
        uv_buf_t *n = realloc(b->outq, cap * sizeof(*n));
        if (n == NULL) {
            free(frame); /* UNTESTED: malloc failure */
            return GATEWAY_STATUS_INTERNAL;
        }
        b->outq = n;
        b->outq_cap = cap;
    }
    b->outq[b->outq_count++] = uv_buf_init((char *)frame, (unsigned)len);
    if (!c->flusher_active && !c->closing) {
        uv_prepare_start(&c->flusher, client_flush_cb);
        c->flusher_active = true;
    }
    b->pending[b->pending_count].id = req->id;
    b->pending[b->pending_count].call = call;
    b->pending[b->pending_count].topology = call == NULL;
    /* A broker may take until the request's timeout; beyond that plus a
     * grace of one stale interval it is stuck (see client_refresh_cb). */
    b->pending[b->pending_count].expires_ms =
        (call != NULL && call->deadline_ms > client_now(c) + req->timeout_ms
             ? call->deadline_ms
             : client_now(c) + req->timeout_ms) +
        c->opts.topology_stale_ms;
    b->pending_count++;
    c->stats.requests_sent++;
    if (call != NULL) {
        call->broker = b;
        call->request_id = req->id;
    }
    return 0;
}

static void broker_topology_request(struct client_broker *b)
{
    Tandem__Command__Request req = TANDEM__COMMAND__REQUEST__INIT;
    Tandem__Command__TopologyRequest body =
        TANDEM__COMMAND__TOPOLOGY_REQUEST__INIT;

    if (b->state != BROKER_CONNECTED || b->topology_inflight) {
        return;
    }
    req.body_case = TANDEM__COMMAND__REQUEST__BODY_TOPOLOGY;
    req.topology = &body;
    req.timeout_ms = b->client->opts.topology_stale_ms;
    if (broker_send(b, &req, NULL) == 0) {
        b->topology_inflight = true;
    }
}

/* Removes and returns the pending slot with id; false if none. */
static bool broker_pending_take(struct client_broker *b, uint64_t id,
                                struct client_pending *out)
{
    uint32_t i;

    for (i = 0; i < b->pending_count; i++) {
        if (b->pending[i].id == id) {
            *out = b->pending[i];
            b->pending[i] = b->pending[--b->pending_count];
            return true;
        }
    }
    return false;
}

/* Forgets the call of the pending slot it occupies (the answer will be
 * dropped). */
static void broker_pending_detach(struct client_broker *b, uint64_t id)
{
    uint32_t i;

    for (i = 0; i < b->pending_count; i++) {
        if (b->pending[i].id == id) {
            b->pending[i].call = NULL;
            return;
        }
    }
    assert(false && "a call's pending slot exists");
}

/* Learns the brokers a report names: a new address is added and
 * connected to; a known node id that moved gets its new address. */
static void broker_members_learn(struct gateway_client *c,
                                 const Tandem__Command__BrokerTopology *t)
{
    size_t i;

    for (i = 0; i < t->n_members; i++) {
        const Tandem__Command__Member *m = t->members[i];
        struct client_broker *known;
        if (m->command_host[0] == '\0' ||
            strlen(m->command_host) > GATEWAY_CLIENT_HOST_BYTES_MAX) {
            continue;
        }
        if (client_broker_find(c, m->command_host,
                               (uint16_t)m->command_port) != NULL) {
            continue;
        }
        known = client_broker_by_node(c, m->node_id);
        if (known != NULL) {
            if (known->state == BROKER_IDLE) {
                /* It moved (restarted elsewhere): reconnect there. */
                strcpy(known->host, m->command_host);
                known->port = (uint16_t)m->command_port;
            }
            continue;
        }
        known = client_broker_add(c, m->command_host,
                                  (uint16_t)m->command_port);
        if (known != NULL) {
            broker_connect(known);
        }
    }
}

/* Takes ownership of resp (a topology answer). */
static void broker_report_store(struct client_broker *b,
                                Tandem__Command__Response *resp)
{
    struct gateway_client *c = b->client;
    const Tandem__Command__BrokerTopology *t = resp->topology;

    assert(resp->body_case == TANDEM__COMMAND__RESPONSE__BODY_TOPOLOGY);
    if (b->report != NULL) {
        tandem__command__response__free_unpacked(b->report, NULL);
    }
    b->report = resp;
    b->report_at_ms = client_now(c);
    b->node_id = t->node_id;
    b->backoff_ms = c->opts.reconnect_ms_min;
    c->ever_topology = true;
    c->stats.topology_responses++;
    broker_members_learn(c, t);
}

/* Dispatches one response. Takes ownership of resp. */
static void broker_on_response(struct client_broker *b,
                               Tandem__Command__Response *resp)
{
    struct gateway_client *c = b->client;
    struct client_pending slot;

    if (!broker_pending_take(b, resp->id, &slot)) {
        /* Not ours (a confused broker): ignore rather than hang up. */
        tandem__command__response__free_unpacked(resp, NULL);
        return;
    }
    if (slot.topology) {
        b->topology_inflight = false;
        if (resp->body_case == TANDEM__COMMAND__RESPONSE__BODY_TOPOLOGY) {
            broker_report_store(b, resp);
            return;
        }
        tandem__command__response__free_unpacked(resp, NULL);
        return;
    }
    if (slot.call != NULL) {
        assert(slot.call->broker == b);
        assert(slot.call->request_id == resp->id);
        slot.call->broker = NULL;
        call_on_response(c, slot.call, b, resp);
    }
    tandem__command__response__free_unpacked(resp, NULL);
}

static void broker_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client_broker *b = h->data;

    (void)suggested;
    *buf = uv_buf_init((char *)b->read_buf, sizeof(b->read_buf));
}

static void broker_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client_broker *b = s->data;
    struct gateway_client *c = b->client;
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t left;

    if (nread < 0) {
        broker_disconnect(b, nread == UV_EOF ? "closed by the broker"
                                              : uv_strerror((int)nread));
        return;
    }
    left = (size_t)nread;
    while (left > 0 && b->state == BROKER_CONNECTED) {
        struct proto_frame frame;
        size_t used = 0;
        Tandem__Command__Response *resp;
        char errmsg[PROTO_ERRMSG_SIZE];
        int rv = proto_frame_splitter_feed(&b->splitter, p, left, &used,
                                           &frame);
        if (rv < 0) {
            c->stats.protocol_errors++;
            broker_disconnect(b, b->splitter.errmsg);
            return;
        }
        p += used;
        left -= used;
        if (rv == 0) {
            break;
        }
        if (proto_command_response_unpack(NULL, frame.base, frame.len, &resp,
                                          errmsg) != 0) {
            c->stats.protocol_errors++;
            broker_disconnect(b, errmsg);
            return;
        }
        broker_on_response(b, resp);
    }
    client_calls_schedule(c);
}

static void broker_connect_cb(uv_connect_t *req, int status)
{
    struct client_broker *b = req->data;
    struct gateway_client *c = b->client;
    int rv;

    if (status == UV_ECANCELED || b->state != BROKER_CONNECTING) {
        return; /* closing */
    }
    if (status < 0) {
        broker_disconnect(b, uv_strerror(status));
        return;
    }
    b->state = BROKER_CONNECTED;
    uv_tcp_nodelay(&b->tcp, 1);
    proto_frame_splitter_init(&b->splitter, c->opts.frame_bytes_max);
    rv = uv_read_start((uv_stream_t *)&b->tcp, broker_alloc_cb,
                       broker_read_cb);
    if (rv != 0) {
        broker_disconnect(b, uv_strerror(rv)); /* UNTESTED */
        return;
    }
    c->stats.connects++;
    broker_topology_request(b);
}

static void broker_resolve_cb(uv_getaddrinfo_t *req, int status,
                              struct addrinfo *res)
{
    struct client_broker *b = req->data;
    struct gateway_client *c = b->client;
    int rv;

    assert(b->state == BROKER_RESOLVING);
    assert(c->handles_open > 0);
    c->handles_open--;
    if (c->closing) {
        uv_freeaddrinfo(res);
        b->state = BROKER_IDLE;
        client_close_maybe_done(c);
        return;
    }
    if (status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        b->state = BROKER_IDLE;
        broker_reconnect_later(b);
        return;
    }
    uv_tcp_init(c->loop, &b->tcp);
    b->tcp.data = b;
    c->handles_open++;
    b->state = BROKER_CONNECTING;
    b->connect.data = b;
    rv = uv_tcp_connect(&b->connect, &b->tcp, res->ai_addr,
                        broker_connect_cb);
    uv_freeaddrinfo(res);
    if (rv != 0) {
        broker_disconnect(b, uv_strerror(rv));
    }
}

static void broker_connect(struct client_broker *b)
{
    struct gateway_client *c = b->client;
    struct addrinfo hints;
    char port[8];
    int rv;

    assert(b->state == BROKER_IDLE);
    assert(!c->closing);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", (unsigned)b->port);
    b->resolve.data = b;
    b->state = BROKER_RESOLVING;
    rv = uv_getaddrinfo(c->loop, &b->resolve, broker_resolve_cb, b->host, port,
                        &hints);
    if (rv != 0) {
        b->state = BROKER_IDLE; /* UNTESTED: resolver refused to start */
        broker_reconnect_later(b);
        return;
    }
    c->handles_open++;
}

/* Closes the connection of b (CONNECTING or CONNECTED); every call
 * pending on it is retried. */
static void broker_disconnect(struct client_broker *b, const char *why)
{
    struct gateway_client *c = b->client;
    struct client_pending slot;
    char reason[160];

    if (b->state != BROKER_CONNECTING && b->state != BROKER_CONNECTED) {
        return;
    }
    if (b->state == BROKER_CONNECTED) {
        c->stats.disconnects++;
        proto_frame_splitter_close(&b->splitter);
    }
    b->state = BROKER_CLOSING;
    b->topology_inflight = false;
    outq_free(b); /* not sent: their calls are retried below */
    uv_close((uv_handle_t *)&b->tcp, broker_tcp_closed_cb);
    client_errmsg(reason, sizeof(reason), "connection to broker %s:%u: %s",
                  b->host, (unsigned)b->port, why);
    while (b->pending_count > 0) {
        slot = b->pending[--b->pending_count];
        if (slot.call != NULL) {
            slot.call->broker = NULL;
            call_retry(c, slot.call, reason);
        }
    }
    client_calls_schedule(c);
}

static void client_refresh_cb(uv_timer_t *t)
{
    struct gateway_client *c = t->data;
    uint64_t now = client_now(c);
    uint32_t i, k;

    for (i = 0; i < c->broker_count; i++) {
        struct client_broker *b = c->brokers[i];
        /* Unanswered requests hold slots: a broker that leaves them past
         * their expiry is disconnected, which frees them all. */
        for (k = 0; k < b->pending_count; k++) {
            if (b->pending[k].expires_ms < now) {
                broker_disconnect(b, "requests unanswered past deadline");
                break;
            }
        }
        broker_topology_request(b);
    }
    client_calls_schedule(c);
}

/* ------------------------------------------------------------------------
 * Calls
 * --------------------------------------------------------------------- */

static void call_unlink(struct gateway_client *c, struct client_call *call)
{
    if (call->broker != NULL) {
        broker_pending_detach(call->broker, call->request_id);
        call->broker = NULL;
    }
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else {
        assert(c->calls == call);
        c->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
    call->prev = call->next = NULL;
    assert(c->call_count > 0);
    c->call_count--;
    if (call->body != NULL) {
        protobuf_c_message_free_unpacked(call->body, NULL);
        call->body = NULL;
    }
}

/* Completes a call: unlinks and frees it, then runs its cb (through the
 * answer conversion, if any). */
static void call_finish(struct gateway_client *c, struct client_call *call,
                        int status, const char *message,
                        const ProtobufCMessage *response)
{
    gateway_backend_cb cb = call->cb;
    void *req_data = call->req_data;
    client_answer_convert_fn convert = call->convert;
    char msg[256];

    assert(cb != NULL);
    if (status == GATEWAY_STATUS_OK) {
        assert(response != NULL);
    }
    snprintf(msg, sizeof(msg), "%s", message != NULL ? message : "");
    call_unlink(c, call);
    free(call);
    if (status == GATEWAY_STATUS_OK && convert != NULL) {
        convert(response, cb, req_data);
        return;
    }
    cb(req_data, status, msg, response);
}

/* The partition count a round-robin or correlation route works with. */
uint32_t client__partitions_count(struct gateway_client *c)
{
    const Tandem__Command__BrokerTopology *cfg = client_config_report(c);

    return cfg != NULL ? cfg->partitions_count : 0;
}

bool client__leader_known(struct gateway_client *c, uint32_t partition_id)
{
    return client_leader_find(c, partition_id) != NULL;
}

/* Chooses the call's partition on its first attempt (and the next one of
 * a round robin after a failure). Returns 0, or -1 with why set when the
 * call must wait (no topology) or fail (fail_status set). */
static int call_route(struct gateway_client *c, struct client_call *call,
                      char *why, size_t why_size)
{
    uint32_t count;

    if (call->partition_id != 0 && call->route != CLIENT_ROUTE_ROUND_ROBIN) {
        return 0;
    }
    count = client__partitions_count(c);
    if (count == 0) {
        snprintf(why, why_size, "no topology available");
        return -1;
    }
    switch (call->route) {
    case CLIENT_ROUTE_CORRELATION:
        assert(call->body_case ==
               TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE);
        call->partition_id = gateway_client_partition_of_key(
            ((GatewayProtocol__PublishMessageRequest *)call->body)
                ->correlationkey,
            count);
        return 0;
    case CLIENT_ROUTE_KEY: {
        uint64_t p = (uint64_t)call->key >> CLIENT_KEY_PARTITION_SHIFT;
        if (call->key <= 0 || p < 1 || p > count) {
            /* Zeebe's PartitionNotFoundException (zeebe-facts 3.4). */
            snprintf(why, why_size,
                     "This command refers to an element that doesn't "
                     "exist. The request targeted an element on partition "
                     "'%llu', which cannot be found in the cluster. Check "
                     "the command arguments.",
                     (unsigned long long)p);
            call->fail_status = GATEWAY_STATUS_UNAVAILABLE;
            return -1;
        }
        call->partition_id = (uint32_t)p;
        return 0;
    }
    case CLIENT_ROUTE_ROUND_ROBIN:
        if (call->rr_count == 0 || call->rr_count != count) {
            /* First attempt (or the partitions changed): a full turn
             * starting at the client's cursor. */
            call->rr_count = count;
            call->rr_tried = 0;
            call->partition_id = c->rr_next % count + 1;
            c->rr_next++;
        }
        /* Skip partitions without a known leader (Zeebe's
         * RoundRobinDispatchStrategy). */
        while (call->rr_tried < call->rr_count &&
               !client__leader_known(c, call->partition_id)) {
            call->rr_tried++;
            call->partition_id = call->partition_id % count + 1;
        }
        if (call->rr_tried >= call->rr_count) {
            snprintf(why, why_size,
                     "Expected to execute the command on one of the "
                     "partitions, but all failed; there are no more "
                     "partitions available to retry. Please try again. If "
                     "the error persists contact your zeebe operator");
            call->fail_status = GATEWAY_STATUS_RESOURCE_EXHAUSTED;
            return -1;
        }
        return 0;
    case CLIENT_ROUTE_FIXED:
    default:
        assert(false && "a fixed route has its partition");
        return 0;
    }
}

/* Sends the call's request to the leader of its partition, or schedules
 * a retry when none is reachable. */
static void call_attempt(struct gateway_client *c, struct client_call *call)
{
    Tandem__Command__Request req = TANDEM__COMMAND__REQUEST__INIT;
    struct client_broker *b = NULL;
    uint64_t now = client_now(c);
    char why[224];
    int status;

    assert(call->broker == NULL);
    assert(call->fail_status == 0);
    call->retry_at_ms = 0;
    if (call_route(c, call, why, sizeof(why)) != 0) {
        if (call->fail_status != 0) {
            int fail = call->fail_status;
            call_finish(c, call, fail, why, NULL);
            return;
        }
        call_retry(c, call, why);
        return;
    }
    assert(call->partition_id >= 1);
    if (call->hint_node >= 0) {
        b = client_broker_by_node(c, call->hint_node);
        call->hint_node = -1;
        if (b != NULL && b->state != BROKER_CONNECTED) {
            b = NULL;
        }
    }
    if (b == NULL) {
        b = client_leader_find(c, call->partition_id);
    }
    if (b == NULL) {
        client_errmsg(why, sizeof(why), "no leader known for partition %u",
                      (unsigned)call->partition_id);
        call_retry(c, call, why);
        return;
    }
    req.partition_id = call->partition_id;
    req.timeout_ms = call->deadline_ms > now ? call->deadline_ms - now : 1;
    if (call->broker_timeout_ms != 0 &&
        call->broker_timeout_ms < req.timeout_ms) {
        req.timeout_ms = call->broker_timeout_ms;
    }
    client__request_body_set(&req, call->body_case, call->body);
    status = broker_send(b, &req, call);
    if (status == GATEWAY_STATUS_RESOURCE_EXHAUSTED) {
        c->stats.calls_rejected++;
        client_errmsg(why, sizeof(why),
                      "too many requests in flight to broker %lld "
                      "(%u); try again later",
                      (long long)b->node_id,
                      (unsigned)c->opts.connection_requests_max);
        if (call->route == CLIENT_ROUTE_ROUND_ROBIN) {
            call_retry(c, call, why); /* the next partition may have room */
            return;
        }
        call_finish(c, call, status, why, NULL);
        return;
    }
    if (status != 0) {
        call_finish(c, call, status,
                    status == GATEWAY_STATUS_INVALID_ARGUMENT
                        ? "request exceeds the maximum message size"
                        : "cannot encode the request",
                    NULL);
    }
}

/* The attempt failed for a reason worth another try: a fixed partition
 * is retried after a backoff (the deadline ends it); a round robin moves
 * on to the next partition at once; a once-only call fails (from the
 * timer, so that no cb runs inside a connection's bookkeeping). */
static void call_retry(struct gateway_client *c, struct client_call *call,
                       const char *why)
{
    uint64_t delay;
    uint32_t shift = call->attempts < 8 ? call->attempts : 8;

    assert(call->broker == NULL);
    snprintf(call->last_error, sizeof(call->last_error), "%s", why);
    call->attempts++;
    c->stats.calls_retried++;
    if (call->once) {
        call->fail_status = GATEWAY_STATUS_UNAVAILABLE;
        call->retry_at_ms = client_now(c);
        return;
    }
    if (call->route == CLIENT_ROUTE_ROUND_ROBIN && call->rr_count > 0) {
        call->rr_tried++;
        call->partition_id = call->partition_id % call->rr_count + 1;
        call->retry_at_ms = client_now(c);
        return;
    }
    delay = (uint64_t)GATEWAY_CLIENT_RETRY_MS_MIN << shift;
    if (delay > GATEWAY_CLIENT_RETRY_MS_MAX) {
        delay = GATEWAY_CLIENT_RETRY_MS_MAX;
    }
    call->retry_at_ms = client_now(c) + delay;
}

static void call_on_response(struct gateway_client *c,
                             struct client_call *call,
                             struct client_broker *b,
                             const Tandem__Command__Response *resp)
{
    const Tandem__Command__Error *err = resp->error;
    const ProtobufCMessage *answer;
    int status;
    char why[256];

    assert(call->broker == NULL);
    if (resp->body_case != TANDEM__COMMAND__RESPONSE__BODY_ERROR) {
        answer = client__response_answer(resp, call->body_case);
        if (answer == NULL) {
            client_errmsg(why, sizeof(why),
                          "unexpected response from broker %lld (body %d)",
                          (long long)b->node_id, (int)resp->body_case);
            call_finish(c, call, GATEWAY_STATUS_INTERNAL, why, NULL);
            return;
        }
        call_finish(c, call, GATEWAY_STATUS_OK, NULL, answer);
        return;
    }
    if (err->code == TANDEM__COMMAND__CODE__NOT_LEADER ||
        err->code == TANDEM__COMMAND__CODE__PARTITION_UNAVAILABLE ||
        (err->code == TANDEM__COMMAND__CODE__RESOURCE_EXHAUSTED &&
         call->route == CLIENT_ROUTE_ROUND_ROBIN)) {
        /* Leader changed: go where the broker points, else refresh. A
         * round robin moves on to the next partition instead. */
        client_errmsg(why, sizeof(why), "broker %lld: %s",
                      (long long)b->node_id, err->message);
        call->hint_node =
            err->leader_hint > 0 ? (int64_t)err->leader_hint - 1 : -1;
        if (err->code != TANDEM__COMMAND__CODE__RESOURCE_EXHAUSTED) {
            broker_topology_request(b);
        }
        call_retry(c, call, why);
        return;
    }
    status = client__error_status(err->code);
    if (status == GATEWAY_STATUS_INTERNAL) {
        client_errmsg(why, sizeof(why),
                      "Unexpected error occurred between gateway and broker "
                      "(code: %d) (message: %s)",
                      (int)err->code, err->message);
        call_finish(c, call, GATEWAY_STATUS_INTERNAL, why, NULL);
        return;
    }
    call_finish(c, call, status, err->message, NULL);
}

/* Fails the call at its deadline. */
static void call_expire(struct gateway_client *c, struct client_call *call)
{
    char why[320];

    c->stats.calls_expired++;
    if (!c->ever_topology) {
        call_finish(c, call, GATEWAY_STATUS_UNAVAILABLE,
                    "No topology available: no broker answered", NULL);
        return;
    }
    client_errmsg(why, sizeof(why), "Time out between gateway and broker: %s",
                  call->last_error[0] != '\0' ? call->last_error
                                              : "no answer in time");
    call_finish(c, call, GATEWAY_STATUS_DEADLINE_EXCEEDED, why, NULL);
}

static void client_call_timer_cb(uv_timer_t *t)
{
    struct gateway_client *c = t->data;
    struct client_call *call;
    bool again = true;

    /* Restart the scan after every action: a cb may change the list. */
    while (again && !c->closing) {
        uint64_t now = client_now(c);
        again = false;
        for (call = c->calls; call != NULL; call = call->next) {
            if (call->retry_at_ms != 0 && call->retry_at_ms <= now &&
                call->fail_status != 0) {
                int fail = call->fail_status;
                char why[sizeof(call->last_error)];
                memcpy(why, call->last_error, sizeof(why));
                call_finish(c, call, fail, why, NULL);
                again = true;
                break;
            }
            if (call->deadline_ms <= now) {
                call_expire(c, call);
                again = true;
                break;
            }
            if (call->retry_at_ms != 0 && call->retry_at_ms <= now) {
                call_attempt(c, call);
                again = true;
                break;
            }
        }
    }
    client_calls_schedule(c);
}

/* Arms call_timer for the earliest deadline or retry. */
static void client_calls_schedule(struct gateway_client *c)
{
    uint64_t due = 0;
    uint64_t now = client_now(c);
    struct client_call *call;

    if (c->closing) {
        return;
    }
    for (call = c->calls; call != NULL; call = call->next) {
        uint64_t d = call->deadline_ms;
        if (call->retry_at_ms != 0 && call->retry_at_ms < d) {
            d = call->retry_at_ms;
        }
        if (due == 0 || d < due) {
            due = d;
        }
    }
    if (due == 0) {
        uv_timer_stop(&c->call_timer);
        return;
    }
    uv_timer_start(&c->call_timer, client_call_timer_cb,
                   due > now ? due - now : 0, 0);
}

ProtobufCMessage *client__message_copy(const ProtobufCMessage *m)
{
    size_t len;
    uint8_t *packed;
    ProtobufCMessage *copy;

    assert(m != NULL);
    len = protobuf_c_message_get_packed_size(m);
    packed = malloc(len + 1);
    if (packed == NULL) {
        return NULL; /* UNTESTED: malloc failure */
    }
    protobuf_c_message_pack(m, packed);
    copy = protobuf_c_message_unpack(m->descriptor, NULL, len, packed);
    free(packed);
    return copy;
}

int client__call_start(struct gateway_client *c,
                       const struct client_call_spec *spec,
                       gateway_backend_cb cb, void *req_data,
                       struct client_call **out)
{
    struct client_call *call;
    uint64_t now;

    assert(spec != NULL);
    assert(spec->body != NULL);
    assert(cb != NULL);
    if (spec->route == CLIENT_ROUTE_FIXED) {
        assert(spec->partition_id >= 1);
    }
    if (out != NULL) {
        *out = NULL;
    }
    if (c->closing) {
        return GATEWAY_STATUS_UNAVAILABLE;
    }
    if (c->call_count >= c->opts.calls_max) {
        c->stats.calls_rejected++;
        return GATEWAY_STATUS_RESOURCE_EXHAUSTED;
    }
    call = calloc(1, sizeof(*call));
    if (call == NULL) {
        return GATEWAY_STATUS_RESOURCE_EXHAUSTED; /* UNTESTED: malloc */
    }
    /* The request is borrowed only until cb or cancel: keep a copy. */
    call->body = client__message_copy(spec->body);
    if (call->body == NULL) {
        free(call); /* UNTESTED: malloc failure */
        return GATEWAY_STATUS_RESOURCE_EXHAUSTED;
    }
    now = client_now(c);
    call->cb = cb;
    call->req_data = req_data;
    call->body_case = spec->body_case;
    call->convert = spec->convert;
    call->route = spec->route;
    call->key = spec->key;
    call->partition_id =
        spec->route == CLIENT_ROUTE_FIXED ? spec->partition_id : 0;
    call->broker_timeout_ms = spec->broker_timeout_ms;
    call->once = spec->once;
    call->hint_node = -1;
    call->deadline_ms = spec->deadline_ms != 0
                            ? spec->deadline_ms
                            : now + c->opts.request_timeout_ms;
    call->next = c->calls;
    if (c->calls != NULL) {
        c->calls->prev = call;
    }
    c->calls = call;
    c->call_count++;
    c->stats.calls_started++;
    if (call->once) {
        /* The first attempt runs from the timer, at once: cb never runs
         * before this returns, and *out stays valid until it does. */
        if (out != NULL) {
            *out = call;
        }
        call->retry_at_ms = now;
    } else {
        assert(out == NULL); /* cb may have run and freed the call */
        if (call->deadline_ms <= now) {
            call_expire(c, call);
        } else {
            call_attempt(c, call);
        }
    }
    client_calls_schedule(c);
    return 0;
}

void client__call_cancel(struct gateway_client *c, struct client_call *call)
{
    assert(call != NULL);
    call_unlink(c, call);
    free(call);
    client_calls_schedule(c);
}

/* ------------------------------------------------------------------------
 * Backend interface
 * --------------------------------------------------------------------- */

static int client_backend_call(struct gateway_backend *backend,
                               const char *rpc,
                               const ProtobufCMessage *request,
                               uint64_t deadline_ms, gateway_backend_cb cb,
                               void *req_data)
{
    struct gateway_client *c = backend->data;

    if (c == NULL || rpc == NULL || cb == NULL) {
        return -1;
    }
    if (strcmp(rpc, "Topology") == 0) {
        cb(req_data, GATEWAY_STATUS_OK, NULL,
           &gateway_client_topology(c)->base);
        return 0;
    }
    if (request == NULL) {
        return -1;
    }
    if (c->closing) {
        cb(req_data, GATEWAY_STATUS_UNAVAILABLE, "gateway is shutting down",
           NULL);
        return 0;
    }
    if (client__rpc_call(c, rpc, request, deadline_ms, cb, req_data)) {
        return 0;
    }
    {
        char why[96];
        client_errmsg(why, sizeof(why), "%.48s is not implemented yet", rpc);
        cb(req_data, GATEWAY_STATUS_UNIMPLEMENTED, why, NULL);
    }
    return 0;
}

static int client_backend_call_stream(struct gateway_backend *backend,
                                      const char *rpc,
                                      const ProtobufCMessage *request,
                                      uint64_t deadline_ms,
                                      gateway_backend_send_cb send,
                                      gateway_backend_cb cb, void *req_data)
{
    struct gateway_client *c = backend->data;

    if (c == NULL || rpc == NULL || request == NULL || send == NULL ||
        cb == NULL) {
        return -1;
    }
    if (c->closing) {
        cb(req_data, GATEWAY_STATUS_UNAVAILABLE, "gateway is shutting down",
           NULL);
        return 0;
    }
    if (client__jobs_call(c, rpc, request, deadline_ms, send, cb,
                          req_data)) {
        return 0;
    }
    return client_backend_call(backend, rpc, request, deadline_ms, cb,
                               req_data);
}

static void client_backend_cancel(struct gateway_backend *backend,
                                  void *req_data)
{
    struct gateway_client *c = backend->data;
    struct client_call *call;

    if (client__jobs_cancel(c, req_data)) {
        return;
    }
    for (call = c->calls; call != NULL; call = call->next) {
        if (call->req_data == req_data) {
            client__call_cancel(c, call);
            return;
        }
    }
}

struct gateway_backend *gateway_client_backend(struct gateway_client *client)
{
    assert(client != NULL);
    return &client->backend;
}

static void client_jobs_timer_cb(uv_timer_t *t)
{
    struct gateway_client *c = t->data;

    if (!c->closing) {
        client__jobs_timer_cb(c);
    }
}

void client__jobs_timer_arm(struct gateway_client *c, uint64_t due_ms)
{
    uint64_t now = client_now(c);

    if (c->closing) {
        return;
    }
    if (due_ms == 0) {
        uv_timer_stop(&c->jobs_timer);
        return;
    }
    uv_timer_start(&c->jobs_timer, client_jobs_timer_cb,
                   due_ms > now ? due_ms - now : 0, 0);
}

/* ------------------------------------------------------------------------
 * Lifecycle
 * --------------------------------------------------------------------- */

void gateway_client_options_default(struct gateway_client_options *opts)
{
    assert(opts != NULL);
    memset(opts, 0, sizeof(*opts));
    opts->request_timeout_ms = GATEWAY_CLIENT_REQUEST_TIMEOUT_MS_DEFAULT;
    opts->topology_refresh_ms = GATEWAY_CLIENT_TOPOLOGY_REFRESH_MS_DEFAULT;
    opts->topology_stale_ms = GATEWAY_CLIENT_TOPOLOGY_REFRESH_MS_DEFAULT *
                              GATEWAY_CLIENT_STALE_REFRESHES;
    opts->reconnect_ms_min = GATEWAY_CLIENT_RECONNECT_MS_MIN_DEFAULT;
    opts->reconnect_ms_max = GATEWAY_CLIENT_RECONNECT_MS_MAX_DEFAULT;
    opts->calls_max = GATEWAY_CLIENT_CALLS_MAX_DEFAULT;
    opts->connection_requests_max =
        GATEWAY_CLIENT_CONNECTION_REQUESTS_MAX_DEFAULT;
    opts->brokers_max = GATEWAY_CLIENT_BROKERS_MAX_DEFAULT;
    opts->jobs_max = GATEWAY_CLIENT_JOBS_MAX_DEFAULT;
    opts->job_streams_max = GATEWAY_CLIENT_JOB_STREAMS_MAX_DEFAULT;
    opts->long_polling_ms = GATEWAY_CLIENT_LONG_POLLING_MS_DEFAULT;
    opts->job_probe_ms = GATEWAY_CLIENT_JOB_PROBE_MS_DEFAULT;
    opts->stream_batch = GATEWAY_CLIENT_STREAM_BATCH_DEFAULT;
    opts->frame_bytes_max = PROTO_COMMAND_FRAME_BYTES_DEFAULT;
    opts->gateway_version = GATEWAY_CLIENT_VERSION_DEFAULT;
}

int gateway_client_init(uv_loop_t *loop, struct gateway_client *c,
                        const struct gateway_client_options *opts)
{
    size_t i;

    assert(loop != NULL);
    assert(c != NULL);
    assert(opts != NULL);
    memset(c, 0, sizeof(*c));
    if (opts->contact_point_count == 0 ||
        opts->contact_point_count > GATEWAY_CLIENT_CONTACT_POINTS_MAX ||
        opts->contact_points == NULL) {
        client_errmsg(c->errmsg, sizeof(c->errmsg),
                      "need 1..%u contact points",
                      GATEWAY_CLIENT_CONTACT_POINTS_MAX);
        return GATEWAY_CLIENT_E_INVALID;
    }
    if (opts->request_timeout_ms == 0 || opts->topology_refresh_ms == 0 ||
        opts->topology_stale_ms == 0 || opts->reconnect_ms_min == 0 ||
        opts->reconnect_ms_max < opts->reconnect_ms_min ||
        opts->calls_max == 0 || opts->connection_requests_max == 0 ||
        opts->brokers_max < opts->contact_point_count ||
        opts->jobs_max == 0 || opts->job_streams_max == 0 ||
        opts->long_polling_ms == 0 || opts->job_probe_ms == 0 ||
        opts->stream_batch == 0 || opts->stream_batch > INT32_MAX ||
        opts->frame_bytes_max == 0 ||
        opts->frame_bytes_max > PROTO_FRAME_BYTES_LIMIT) {
        client_errmsg(c->errmsg, sizeof(c->errmsg),
                      "invalid client options (zero bound or limit)");
        return GATEWAY_CLIENT_E_INVALID;
    }
    for (i = 0; i < opts->contact_point_count; i++) {
        char host[GATEWAY_CLIENT_HOST_BYTES_MAX + 1];
        uint16_t port;
        if (address_parse(opts->contact_points[i], host, sizeof(host),
                          &port) != 0) {
            client_errmsg(c->errmsg, sizeof(c->errmsg),
                          "contact point '%.64s' is not host:port",
                          opts->contact_points[i] != NULL
                              ? opts->contact_points[i]
                              : "(null)");
            return GATEWAY_CLIENT_E_INVALID;
        }
    }
    c->loop = loop;
    c->opts = *opts;
    c->opts.contact_points = NULL; /* copied into brokers below */
    c->next_request_id = 1;
    c->gateway_version = strdup(opts->gateway_version != NULL
                                    ? opts->gateway_version
                                    : GATEWAY_CLIENT_VERSION_DEFAULT);
    c->brokers = calloc(opts->brokers_max, sizeof(*c->brokers));
    if (c->gateway_version == NULL || c->brokers == NULL) {
        free(c->gateway_version); /* UNTESTED: malloc failure */
        free(c->brokers);
        return GATEWAY_CLIENT_E_NOMEM;
    }
    c->topology.gatewayversion = c->gateway_version;
    c->backend.call = client_backend_call;
    c->backend.call_stream = client_backend_call_stream;
    c->backend.cancel = client_backend_cancel;
    c->backend.data = c;
    uv_timer_init(loop, &c->refresh_timer);
    uv_timer_init(loop, &c->call_timer);
    uv_timer_init(loop, &c->jobs_timer);
    uv_prepare_init(loop, &c->flusher);
    c->refresh_timer.data = c;
    c->call_timer.data = c;
    c->jobs_timer.data = c;
    c->flusher.data = c;
    c->handles_open = 4;
    for (i = 0; i < opts->contact_point_count; i++) {
        char host[GATEWAY_CLIENT_HOST_BYTES_MAX + 1];
        uint16_t port;
        (void)address_parse(opts->contact_points[i], host, sizeof(host),
                            &port);
        if (client_broker_find(c, host, port) == NULL &&
            client_broker_add(c, host, port) == NULL) {
            /* UNTESTED: malloc failure; the close frees what exists */
            client_errmsg(c->errmsg, sizeof(c->errmsg), "out of memory");
        }
    }
    return 0;
}

int gateway_client_start(struct gateway_client *c)
{
    uint32_t i;

    assert(c != NULL);
    if (c->started || c->closing) {
        return GATEWAY_CLIENT_E_STATE;
    }
    c->started = true;
    for (i = 0; i < c->broker_count; i++) {
        if (c->brokers[i]->state == BROKER_IDLE) {
            broker_connect(c->brokers[i]);
        }
    }
    uv_timer_start(&c->refresh_timer, client_refresh_cb,
                   c->opts.topology_refresh_ms, c->opts.topology_refresh_ms);
    return 0;
}

static void client_close_maybe_done(struct gateway_client *c)
{
    uint32_t i;
    gateway_client_close_cb cb;

    if (!c->closing || c->handles_open > 0 || c->close_cb == NULL) {
        return;
    }
    for (i = 0; i < c->broker_count; i++) {
        struct client_broker *b = c->brokers[i];
        assert(b->state == BROKER_IDLE);
        if (b->report != NULL) {
            tandem__command__response__free_unpacked(b->report, NULL);
        }
        free(b->pending);
        outq_free(b);
        free(b);
    }
    free(c->brokers);
    c->brokers = NULL;
    c->broker_count = 0;
    free(c->gateway_version);
    c->gateway_version = NULL;
    free(c->topology_mem);
    c->topology_mem = NULL;
    cb = c->close_cb;
    c->close_cb = NULL;
    cb(c);
}

static void client_close_noop_cb(struct gateway_client *c)
{
    (void)c;
}

void gateway_client_close(struct gateway_client *c,
                          gateway_client_close_cb close_cb)
{
    uint32_t i;

    assert(c != NULL);
    if (c->closing) {
        return;
    }
    /* Closing first: a cb run below that calls back into the backend is
     * answered UNAVAILABLE at once, so the list only shrinks. */
    c->closing = true;
    c->close_cb = close_cb != NULL ? close_cb : client_close_noop_cb;
    client__jobs_close(c); /* their internal calls end below */
    while (c->calls != NULL) {
        call_finish(c, c->calls, GATEWAY_STATUS_UNAVAILABLE,
                    "gateway is shutting down", NULL);
    }
    uv_close((uv_handle_t *)&c->refresh_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&c->call_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&c->jobs_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&c->flusher, handle_closed_cb);
    for (i = 0; i < c->broker_count; i++) {
        struct client_broker *b = c->brokers[i];
        b->reconnect_timer.data = c;
        uv_close((uv_handle_t *)&b->reconnect_timer, handle_closed_cb);
        switch (b->state) {
        case BROKER_RESOLVING:
            uv_cancel((uv_req_t *)&b->resolve); /* cb still runs */
            break;
        case BROKER_CONNECTING:
        case BROKER_CONNECTED:
            broker_disconnect(b, "gateway is shutting down");
            break;
        default:
            break;
        }
    }
    client_close_maybe_done(c);
}
