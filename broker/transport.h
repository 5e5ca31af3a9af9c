/* transport.h: the cluster transport of a broker (the internal port, 26502).
 *
 * A transport connects this broker to every other broker of the cluster
 * with ONE TCP connection per broker pair, carrying the Raft messages of
 * every partition they share, and finds the other brokers by gossip.
 *
 * Data flow:
 *
 *   sending:   raft update --transport_send(to, partition, m)--> encoded NOW
 *              (broker/codec.h) into the peer's queue --transport_flush(),
 *              once per loop turn (and automatically from a uv_prepare
 *              handle, right before the loop blocks)--> ONE uv_write per
 *              peer carrying every queued frame of every partition.
 *   receiving: socket --codec_splitter--> frames --codec_frame_decode-->
 *              on_raft(from, partition, m) (pointers valid only during the
 *              call) --> RAFT_EVENT_RECEIVE.
 *
 * Connections: both brokers of a pair may dial; each side first sends a
 * Hello (protocol version, node id, cluster name) and a peer whose version
 * or cluster name differs is logged and hung up on. When two connections
 * end up between the same pair, the one dialled by the LOWER node id is
 * kept, so both sides agree without talking (ties: the older one; only
 * its dialler closes the other). Lost connections are redialled with
 * exponential backoff (reconnect_ms_min doubling up to reconnect_ms_max)
 * with jitter from a PRNG seeded by the options (never rand()).
 *
 * Discovery (gossip): the member table starts with this broker itself.
 * The contact points ("host:port" of other brokers' internal ports) are
 * dialled until they answer. Every gossip_interval_ms the broker
 * increments its own heartbeat counter and sends the whole table (node id,
 * internal address, command address, version, heartbeat) to every
 * connected peer; it also sends it right after a Hello exchange. A
 * receiver merges entry by entry: an entry with a larger heartbeat than
 * the one known replaces it; a new member or a changed address, version
 * or liveness is reported through on_member; members with an address and
 * no connection are dialled. An entry about the receiver itself with a
 * heartbeat >= its own makes it jump past that value (a restarted broker
 * starts again at 1 and would otherwise be ignored until it caught up).
 * A member whose heartbeat has not grown and from which nothing arrived
 * directly for dead_intervals gossip intervals (default 10) is marked not
 * alive; hearing from it again marks it alive.
 *
 * Cluster configuration (broker/cluster_config.h): the broker hands the
 * transport its current configuration as a version and opaque packed
 * bytes (transport_set_cluster_config()). Every gossip frame advertises
 * that version; the bytes ride along only in gossip to a peer whose last
 * advertised version is lower (or not yet known), so in a converged
 * cluster gossip carries 8 extra bytes. When a peer's gossip carries a
 * version above ours, the transport offers it to the broker
 * (transport_set_cluster_config_cb()); if the broker accepts, the
 * transport advertises it from then on, and so it spreads further. The
 * version known to the transport never decreases.
 *
 * Threading: single-threaded, on the loop given to transport_init().
 * Callbacks run on that loop; they may call transport_send(),
 * transport_flush(), transport_members() and transport_close().
 *
 * Limits: connections (TRANSPORT_CONNS_MAX), members
 * (TRANSPORT_MEMBERS_MAX), queued bytes and frames per peer
 * (peer_queue_bytes_max, TRANSPORT_PEER_FRAMES_MAX), frame size
 * (frame_bytes_max). A peer that sends a frame the codec refuses, or an
 * oversized length prefix, is disconnected and logged; nothing a peer
 * sends can crash the broker.
 */
#ifndef TANDEM_BROKER_TRANSPORT_H
#define TANDEM_BROKER_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "broker/codec.h"
#include "raft/raft.h"

/* ------------------------------------------------------------------------
 * Limits and defaults
 * --------------------------------------------------------------------- */

#define TRANSPORT_PORT_DEFAULT 26502

/* Open connections (inbound, outbound and half-open together). */
#define TRANSPORT_CONNS_MAX 256u
/* Entries of the member table, this broker included. */
#define TRANSPORT_MEMBERS_MAX 256u
/* Contact points given to transport_start(). */
#define TRANSPORT_CONTACT_POINTS_MAX 64u
/* Frames queued per peer (besides the byte limit). */
#define TRANSPORT_PEER_FRAMES_MAX 65536u
/* Longest host name and version string, in bytes (without the NUL). */
#define TRANSPORT_HOST_MAX 255u
#define TRANSPORT_VERSION_MAX 63u
#define TRANSPORT_CLUSTER_NAME_MAX 255u
/* A connection that has not completed the Hello exchange after this long
 * is closed. */
#define TRANSPORT_HELLO_TIMEOUT_MS 5000u

#define TRANSPORT_PEER_QUEUE_BYTES_DEFAULT ((size_t)64 << 20)
#define TRANSPORT_RECONNECT_MS_MIN_DEFAULT 50u
#define TRANSPORT_RECONNECT_MS_MAX_DEFAULT 2000u
#define TRANSPORT_GOSSIP_INTERVAL_MS_DEFAULT 250u
#define TRANSPORT_DEAD_INTERVALS_DEFAULT 10u

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

#define TRANSPORT_ERRNO_MAP(X)                                                 \
    X(NOMEM, -1, "out of memory")                                              \
    X(INVALID, -2, "invalid argument")                                         \
    X(BUSY, -3, "peer queue full, message dropped")                            \
    X(UNKNOWN_PEER, -4, "no connection or address known for the node")         \
    X(TOO_BIG, -5, "message exceeds the frame size limit")                     \
    X(IO, -6, "socket error (address, bind or listen)")                        \
    X(STATE, -7, "not allowed in the transport's current state")

enum transport_errno {
#define TRANSPORT__ERRNO_ENUM(name, value, text) TRANSPORT_E_##name = (value),
    TRANSPORT_ERRNO_MAP(TRANSPORT__ERRNO_ENUM)
#undef TRANSPORT__ERRNO_ENUM
};

/* Returns a static, human-readable string for a TRANSPORT_E_* code (or 0).
 * Never NULL. */
const char *transport_strerror(int rv);

/* ------------------------------------------------------------------------
 * Options, callbacks, members
 * --------------------------------------------------------------------- */

enum transport_log_level {
    TRANSPORT_LOG_DEBUG = 1,
    TRANSPORT_LOG_INFO = 2,
    TRANSPORT_LOG_WARN = 3,
    TRANSPORT_LOG_ERROR = 4,
};

/* A log sink: one line (no newline) per call. message is only valid
 * during the call. */
typedef void (*transport_log_fn)(void *data, enum transport_log_level level,
                                 uint32_t node_id, const char *message);

/* Zero (or NULL) in any field means its default. Strings are copied by
 * transport_init(). */
struct transport_options {
    uint32_t node_id;            /* this broker, non-zero */
    const char *cluster_name;    /* peers must match; default "" */
    const char *listen_host;     /* numeric IPv4/IPv6; default "0.0.0.0" */
    uint16_t listen_port;        /* 0: ephemeral */
    const char *advertised_host; /* what others dial; default listen_host,
                                    required if that is a wildcard */
    uint16_t advertised_port;    /* 0: the bound port */
    const char *command_host;    /* gossiped command API address, may be
                                    NULL (none) */
    uint16_t command_port;       /* gossiped command API port, 0: none */
    const char *version;         /* gossiped software version, may be NULL */
    size_t peer_queue_bytes_max; /* default 64 MiB */
    size_t frame_bytes_max;      /* default CODEC_FRAME_BYTES_DEFAULT */
    uint32_t reconnect_ms_min;   /* default 50 */
    uint32_t reconnect_ms_max;   /* default 2000 */
    uint32_t gossip_interval_ms; /* default 250 */
    uint32_t dead_intervals;     /* default 10 */
    uint64_t seed;               /* jitter PRNG seed; default node_id */
    transport_log_fn log;        /* default: one line to stderr */
    void *log_data;              /* passed to log */
    enum transport_log_level log_level; /* lower levels are dropped;
                                           default (0) INFO */
};

/* One row of the member table. */
struct transport_member {
    uint32_t node_id;
    char host[TRANSPORT_HOST_MAX + 1]; /* internal address; "" until known */
    uint16_t port;                     /* 0 until known */
    char command_host[TRANSPORT_HOST_MAX + 1]; /* "" when none */
    uint16_t command_port;                     /* 0 when none */
    char version[TRANSPORT_VERSION_MAX + 1];   /* "" when unknown */
    uint64_t heartbeat;    /* the member's counter as last heard; 0: never */
    uint64_t last_seen_ms; /* uv_now() when last heard from (directly or a
                              larger heartbeat) */
    bool alive;            /* heard from within the dead interval */
    bool connected;        /* a connection to it is established */
    bool self;             /* this broker */
    uint64_t config_version; /* cluster config version the member last
                                advertised directly to us (ours for
                                self); 0: none or not heard yet */
};

struct transport_callbacks {
    /* A Raft message of a partition arrived from from_node. m and
     * everything it points to are valid only during the call. */
    void (*on_raft)(void *data, uint32_t from_node, uint32_t partition,
                    const struct raft_message *m);
    /* A member was learned, or its addresses, version or liveness changed
     * (not called for heartbeat-only changes, nor for this broker). m is
     * valid only during the call. May be NULL. */
    void (*on_member)(void *data, const struct transport_member *m);
    /* The first connection to node_id was established, or the last one
     * was lost. May be NULL. */
    void (*on_peer)(void *data, uint32_t node_id, bool connected);
    /* A command between partitions arrived (broker/codec.h struct
     * codec_command; c->record points into memory valid only during the
     * call). May be NULL (such frames are then dropped). */
    void (*on_command)(void *data, uint32_t from_node, uint32_t partition,
                       const struct codec_command *c);
    /* A peer asked this broker to rebalance its leaderships. May be
     * NULL (such frames are then dropped). */
    void (*on_rebalance)(void *data, uint32_t from_node);
    /* A forwarded cluster change request, or the reply to one
     * (broker/codec.h struct codec_forward; fw->payload points into
     * memory valid only during the call). May be NULL (dropped). */
    void (*on_forward)(void *data, uint32_t from_node,
                       const struct codec_forward *fw);
    void *data;
};

struct transport; /* opaque */

/* ------------------------------------------------------------------------
 * Lifecycle
 * --------------------------------------------------------------------- */

/* Fills *o with zeroes (all defaults) and the node id. */
void transport_options_default(struct transport_options *o, uint32_t node_id);

/* Allocates and initialises a transport on loop; nothing is bound or
 * dialled yet. options and callbacks are copied (strings too). Returns 0
 * and sets *out, or TRANSPORT_E_INVALID (node id 0, a string too long, a
 * wildcard listen host without advertised host, reconnect_ms_min >
 * reconnect_ms_max, on_raft NULL, a limit beyond its bound) or
 * TRANSPORT_E_NOMEM; on failure nothing is left to clean up. After
 * success transport_close() is required. */
int transport_init(uv_loop_t *loop, struct transport **out,
                   const struct transport_options *options,
                   const struct transport_callbacks *callbacks);

/* Binds and listens on listen_host:listen_port, starts the gossip timer
 * and the automatic flush, and dials the contact points ("host:port" or
 * "[v6]:port"; names are resolved with getaddrinfo; this broker's own
 * address may be among them). contact_points is borrowed for the call.
 * Returns 0, TRANSPORT_E_INVALID (a malformed contact point, more than
 * TRANSPORT_CONTACT_POINTS_MAX), TRANSPORT_E_IO (address, bind or listen
 * failed; the reason is logged), TRANSPORT_E_STATE (started twice or
 * closing). On failure the transport must still be closed. */
int transport_start(struct transport *t, const char *const *contact_points,
                    size_t count);

/* Encodes m for partition into to_node's queue now; m is borrowed for the
 * call only. Returns 0, or:
 *   TRANSPORT_E_BUSY          the peer's queue holds >= peer_queue_bytes_max
 *                             bytes or TRANSPORT_PEER_FRAMES_MAX frames
 *                             (the message is dropped; raft tolerates
 *                             loss). A queue may thus exceed its byte
 *                             limit by at most one frame.
 *   TRANSPORT_E_UNKNOWN_PEER  no connection to to_node and no address
 *                             known for it (yet).
 *   TRANSPORT_E_INVALID       to_node is this broker, or m fails
 *                             codec_raft_check().
 *   TRANSPORT_E_TOO_BIG       the frame would exceed frame_bytes_max.
 *   TRANSPORT_E_STATE         not started, or closing.
 *   TRANSPORT_E_NOMEM.
 * Messages queued for a peer that is not connected are sent once it is,
 * unless it is declared dead first (then they are dropped). */
int transport_send(struct transport *t, uint32_t to_node, uint32_t partition,
                   const struct raft_message *m);

/* Starts writing every peer's queued frames with ONE uv_write per peer.
 * A peer whose previous write is still in flight is skipped; its frames
 * go out with the next flush after that write completes. Also runs
 * automatically right before the loop blocks. No-op when closing. */
void transport_flush(struct transport *t);

/* Sets *out to the member table (this broker first) and *count to its
 * length. The table belongs to the transport and is valid until control
 * returns to the loop or the next call on t. Returns 0. */
/* Like transport_send() for a command between partitions (struct
 * codec_command), with the same errors. */
int transport_send_command(struct transport *t, uint32_t to_node,
                           uint32_t partition, const struct codec_command *c);

/* Queues a Rebalance frame for to_node; errors as transport_send(). */
int transport_send_rebalance(struct transport *t, uint32_t to_node);

/* Queues a ManagementForward frame for to_node; errors as
 * transport_send(), TRANSPORT_E_INVALID also for a bad fw. */
int transport_send_forward(struct transport *t, uint32_t to_node,
                           const struct codec_forward *fw);

int transport_members(struct transport *t, const struct transport_member **out,
                      size_t *count);

/* Returns callbacks->data as given to transport_init() (useful in
 * close_cb). */
void *transport_data(const struct transport *t);

/* Returns the bound port after a successful transport_start(), otherwise
 * TRANSPORT_E_STATE. */
int transport_bound_port(struct transport *t);

/* ------------------------------------------------------------------------
 * Cluster configuration spreading
 * --------------------------------------------------------------------- */

/* The largest packed cluster configuration the transport carries. */
#define TRANSPORT_CLUSTER_CONFIG_BYTES_MAX ((size_t)1 << 20)

/* Offered a cluster configuration that from_node's gossip carries with a
 * version above the transport's (bytes: the packed configuration, valid
 * only during the call; the transport has not looked inside). Return 0 to
 * adopt it: the transport then advertises and spreads exactly these bytes,
 * as if transport_set_cluster_config(t, version, bytes, len) had been
 * called. Return non-zero to refuse (invalid, cannot be persisted): a
 * version at or below a refused one is not offered again for
 * dead_intervals gossip intervals. Offers come in no particular order but
 * each is above the version held at that moment, so versions seen by the
 * callback after an adoption only grow. May call any transport function
 * (transport_close() included). */
typedef int (*transport_cluster_config_fn)(void *data, uint32_t from_node,
                                           uint64_t version, const void *bytes,
                                           size_t len);

/* Sets (or, with cb NULL, clears) the callback offered newer
 * configurations; data is passed back to it. Without a callback newer
 * configurations are ignored. Allowed any time before transport_close(). */
void transport_set_cluster_config_cb(struct transport *t,
                                     transport_cluster_config_fn cb,
                                     void *data);

/* Makes version and a copy of bytes[0..len) the configuration this broker
 * advertises and spreads. Allowed any time before transport_close(),
 * including before transport_start(). Returns 0 (also when version and
 * bytes equal the current ones), or:
 *   TRANSPORT_E_INVALID  version 0, len 0 or above
 *                        TRANSPORT_CLUSTER_CONFIG_BYTES_MAX, bytes NULL,
 *                        version below the current one (versions never go
 *                        backwards), or the current version with other
 *                        bytes.
 *   TRANSPORT_E_STATE    closing.
 *   TRANSPORT_E_NOMEM. */
int transport_set_cluster_config(struct transport *t, uint64_t version,
                                 const void *bytes, size_t len);

/* The version of the configuration the transport advertises (0: none). */
uint64_t transport_cluster_config_version(const struct transport *t);

/* Closes the listener, every connection and timer; queued messages are
 * dropped and no callback of transport_callbacks runs any more. close_cb
 * (may be NULL) runs once everything is closed; t is freed right after it
 * returns. Must be called exactly once after a successful init. */
void transport_close(struct transport *t,
                     void (*close_cb)(struct transport *t));

#endif /* TANDEM_BROKER_TRANSPORT_H */
