/* codec.h: Raft messages on the broker-to-broker wire.
 *
 * Two brokers talk over one TCP connection that carries every partition
 * they share. The byte stream is a sequence of frames: a 4-byte big-endian
 * length, then a protobuf-packed tandem.raft.Frame (proto/raft.proto) that
 * holds a partition id and a body, either a Hello (connection setup) or a
 * RaftMessage (struct raft_message). The format is drawn in codec.c.
 *
 * Data flow:
 *
 *   sending:   struct raft_message --codec_raft_encode()--> frame bytes
 *                                     (in a codec_arena)     --> socket
 *   receiving: socket --chunks--> codec_splitter_feed() --> one frame
 *              --codec_frame_decode()--> struct codec_frame (partition +
 *              struct raft_message, pointers into a codec_arena)
 *              --> RAFT_EVENT_RECEIVE
 *
 * Memory: everything the codec produces lives in a caller-owned
 * struct codec_arena and stays valid until the caller resets or closes that
 * arena. The arena has a byte limit; with the splitter's frame limit it
 * bounds what one peer can make us allocate: a frame whose length prefix
 * exceeds the limit, or whose decoding would need more arena than allowed,
 * is an error and the caller must close the connection.
 *
 * Errors: functions return 0 (or 1, see the splitter) on success and a
 * negative CODEC_E_* code on failure; decode errors also fill a message.
 * Nothing here does I/O or keeps global state; objects are single-threaded.
 */
#ifndef TANDEM_BROKER_CODEC_H
#define TANDEM_BROKER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"
#include "raft/raft.h"

/* ------------------------------------------------------------------------
 * Limits
 * --------------------------------------------------------------------- */

/* Bytes of the length prefix in front of every frame. */
#define CODEC_PREFIX_BYTES 4u

/* Default and hard upper bound for the length of one frame body (the
 * packed Frame, prefix excluded). A snapshot chunk or an append batch is
 * at most 1 MiB with raft's default options, so 4 MiB leaves headroom. */
#define CODEC_FRAME_BYTES_DEFAULT ((size_t)4 << 20)
#define CODEC_FRAME_BYTES_LIMIT ((size_t)1 << 30)

/* The most entries one APPEND message may carry on the wire (raft's own
 * default batch is 256). */
#define CODEC_ENTRIES_MAX 65536u

/* The longest cluster name a Hello may carry, in bytes. */
#define CODEC_CLUSTER_NAME_MAX 255u

/* An arena limit that lets every frame of up to frame_bytes_max bytes be
 * encoded or decoded: one copy of the payload bytes plus the frame buffer,
 * plus generous per-entry bookkeeping for CODEC_ENTRIES_MAX entries. */
#define CODEC_ARENA_BYTES_FOR(frame_bytes_max)                                 \
    (2 * (size_t)(frame_bytes_max) + (size_t)CODEC_ENTRIES_MAX * 256 +         \
     ((size_t)1 << 20))

/* Size of the error message buffers (including the NUL). */
#define CODEC_ERRMSG_SIZE 128

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

#define CODEC_ERRNO_MAP(X)                                                     \
    X(NOMEM, -1, "out of memory or arena limit reached")                       \
    X(INVALID, -2, "invalid argument or message")                              \
    X(TOO_BIG, -3, "frame exceeds the size limit")                             \
    X(MALFORMED, -4, "malformed frame")

enum codec_errno {
#define CODEC__ERRNO_ENUM(name, value, text) CODEC_E_##name = (value),
    CODEC_ERRNO_MAP(CODEC__ERRNO_ENUM)
#undef CODEC__ERRNO_ENUM
};

/* Returns a static, human-readable string for a CODEC_E_* code (or 0).
 * Never NULL. */
const char *codec_strerror(int rv);

/* ------------------------------------------------------------------------
 * Arena: where encoded frames and decoded messages live
 * --------------------------------------------------------------------- */

struct codec_arena_block; /* private to codec.c */

/* A bump allocator made of malloc()ed blocks. Allocations are freed all at
 * once by codec_arena_reset() or codec_arena_close(). Caller-allocated. */
struct codec_arena {
    struct codec_arena_block *head; /* newest block, NULL when empty */
    size_t bytes;                   /* bytes of all blocks held */
    size_t bytes_max;               /* limit on bytes */
    bool full;                      /* an allocation hit bytes_max since
                                       the last reset */
};

/* Initialises an empty arena that will never hold more than bytes_max bytes
 * (blocks included). Allocates nothing and cannot fail. */
void codec_arena_init(struct codec_arena *arena, size_t bytes_max);

/* Returns size bytes aligned for any type, or NULL when malloc fails or the
 * limit would be exceeded (then arena->full is set). The memory is owned by
 * the arena until the next reset or close. */
void *codec_arena_alloc(struct codec_arena *arena, size_t size);

/* Invalidates everything allocated from the arena. Keeps one small block
 * for reuse, so a steady stream of small frames does not call malloc.
 * Clears arena->full. */
void codec_arena_reset(struct codec_arena *arena);

/* Frees all memory of the arena. It may be initialised again afterwards. */
void codec_arena_close(struct codec_arena *arena);

/* ------------------------------------------------------------------------
 * Frames
 * --------------------------------------------------------------------- */

/* Connection setup: the first frame each side sends (partition 0). */
struct codec_hello {
    uint32_t protocol_version; /* PROTO_RAFT_VERSION of the sender, >= 1 */
    raft_id node_id;           /* the sender, non-zero */
    const char *cluster_name;  /* NUL-terminated, at most
                                  CODEC_CLUSTER_NAME_MAX bytes; "" allowed */
};

enum codec_body {
    CODEC_BODY_RAFT = 1,  /* frame.raft is set */
    CODEC_BODY_HELLO = 2, /* frame.hello is set */
    CODEC_BODY_GOSSIP = 3, /* only from codec_frame_decode_any() */
    CODEC_BODY_COMMAND = 4, /* frame.command is set */
    CODEC_BODY_REBALANCE = 5, /* no payload */
    CODEC_BODY_FORWARD = 6, /* frame.forward is set */
};

/* A forwarded cluster change request or its reply (proto/raft.proto
 * ManagementForward). */
#define CODEC_FORWARD_PAYLOAD_MAX (64u * 1024u)
struct codec_forward {
    uint64_t id;         /* non-zero */
    bool reply;
    const void *payload; /* JSON text, not NUL-terminated; may be NULL
                            when payload_len is 0 */
    size_t payload_len;  /* <= CODEC_FORWARD_PAYLOAD_MAX */
};

/* A decoded frame. Every pointer inside points into the arena passed to
 * codec_frame_decode(). Fields of the other body are zero. */
/* A command between partitions (proto/raft.proto PartitionCommand). */
struct codec_command {
    uint32_t source_partition;
    uint32_t target_partition;
    uint64_t distribution_key;
    const void *record; /* packed tandem.record.Record; NULL for acks */
    size_t record_len;
    bool ack;
};

struct codec_frame {
    uint32_t partition;       /* partition id; 0 for Hello */
    uint8_t body;             /* enum codec_body */
    struct raft_message raft; /* when body == CODEC_BODY_RAFT */
    struct codec_hello hello; /* when body == CODEC_BODY_HELLO */
    struct codec_command command; /* when body == CODEC_BODY_COMMAND;
                                     record points into the arena */
    struct codec_forward forward; /* when body == CODEC_BODY_FORWARD;
                                     payload points into the arena */
};

/* Checks the structure of a message, as encode does before writing and
 * decode does after reading: type within enum raft_message_type, from and
 * to non-zero, entries only in APPEND (at most CODEC_ENTRIES_MAX, non-NULL
 * when counted, valid entry types, payload pointers set when non-empty),
 * snapshot metadata and data only in SNAPSHOT, configuration counts within
 * RAFT_MEMBERS_MAX with valid roles. Protocol rules (terms, index
 * continuity, configuration semantics) are raft's job. Returns 0 or
 * CODEC_E_INVALID; on failure writes a reason to errmsg (CODEC_ERRMSG_SIZE
 * bytes) unless it is NULL. */
int codec_raft_check(const struct raft_message *m, char *errmsg);

/* Encodes one message for a partition into a complete frame (prefix
 * included) allocated from arena; *frame points at it until the arena is
 * reset. The message is borrowed for the call. Returns 0,
 * CODEC_E_INVALID (codec_raft_check() fails), CODEC_E_TOO_BIG (the body
 * would exceed frame_bytes_max, which must be at most
 * CODEC_FRAME_BYTES_LIMIT) or CODEC_E_NOMEM. On failure *frame is empty
 * and the arena may hold garbage until its next reset. */
int codec_raft_encode(struct codec_arena *arena, uint32_t partition,
                      const struct raft_message *m, size_t frame_bytes_max,
                      struct raft_buf *frame);

/* Encodes a Hello frame (partition 0) like codec_raft_encode(). Returns 0,
 * CODEC_E_INVALID (version 0, node id 0, name NULL or too long) or
 * CODEC_E_NOMEM. */
int codec_hello_encode(struct codec_arena *arena,
                       const struct codec_hello *hello, struct raft_buf *frame);

/* Encodes a PartitionCommand frame for partition into arena. Returns 0,
 * CODEC_E_INVALID (no partitions, or neither record nor ack),
 * CODEC_E_TOO_BIG, CODEC_E_NOMEM. */
int codec_command_encode(struct codec_arena *arena, uint32_t partition,
                         const struct codec_command *c,
                         size_t frame_bytes_max, struct raft_buf *frame);

/* Encodes a ManagementForward frame (partition 0) into arena. Returns
 * 0, CODEC_E_INVALID (id 0, payload too long), CODEC_E_TOO_BIG,
 * CODEC_E_NOMEM. */
int codec_forward_encode(struct codec_arena *arena, size_t frame_bytes_max,
                         const struct codec_forward *fw,
                         struct raft_buf *frame);

/* Encodes a Rebalance frame into arena. Returns 0, CODEC_E_TOO_BIG,
 * CODEC_E_NOMEM. */
int codec_rebalance_encode(struct codec_arena *arena, size_t frame_bytes_max,
                           struct raft_buf *frame);

/* Decodes one complete frame (prefix included, as codec_splitter_feed()
 * returns it) into *out. Payloads are copied into the arena, so data may
 * be released after the call; *out stays valid until the arena is reset.
 * Returns 0, CODEC_E_MALFORMED (prefix does not match len, not a valid
 * Frame, no body, unknown enum value, counts beyond the limits, fields
 * that do not belong to the type, bad Hello) or CODEC_E_NOMEM (malloc
 * failed or the arena limit was reached). On failure *out is zeroed and
 * errmsg (CODEC_ERRMSG_SIZE bytes, may be NULL) says why. Any error means
 * the peer is broken or hostile: close the connection. */
int codec_frame_decode(struct codec_arena *arena, const void *data, size_t len,
                       struct codec_frame *out, char *errmsg);

/* ------------------------------------------------------------------------
 * Splitter: byte stream -> frames
 * --------------------------------------------------------------------- */

/* Cuts a byte stream into frames. Frames that arrive whole inside one chunk
 * are returned in place (no copy); only a frame split across chunks is
 * assembled in an internal buffer, which never grows beyond
 * CODEC_PREFIX_BYTES + frame_bytes_max. Caller-allocated; fields are
 * private. */
struct codec_splitter {
    struct proto_frame_splitter frames; /* does the work (proto/frame.h) */
    int error; /* sticky CODEC_E_* error, 0 if none */
    char errmsg[CODEC_ERRMSG_SIZE]; /* reason of error */
};

/* Initialises a splitter accepting frame bodies of up to frame_bytes_max
 * bytes (1..CODEC_FRAME_BYTES_LIMIT; use CODEC_FRAME_BYTES_DEFAULT).
 * Allocates nothing. */
void codec_splitter_init(struct codec_splitter *s, size_t frame_bytes_max);

/* Frees the splitter's buffer. */
void codec_splitter_close(struct codec_splitter *s);

/* Consumes bytes from data[0..len) until one frame is complete or the bytes
 * run out; *consumed says how many were used. Returns:
 *   1  a frame is complete: *frame is the whole frame (prefix included),
 *      pointing into data or into the splitter. It stays valid until the
 *      next call on the splitter (and, if in data, while data is). Call
 *      again with the unconsumed rest.
 *   0  all len bytes consumed, no complete frame yet; *frame is empty.
 *   CODEC_E_TOO_BIG  a length prefix exceeds frame_bytes_max.
 *   CODEC_E_NOMEM    the frame buffer could not be allocated.
 * Errors are sticky (every later call returns the same code) and
 * s->errmsg says why: the caller must close the connection, as the stream
 * can no longer be framed. Garbage bytes are not detected here; they fail
 * codec_frame_decode() or the length check. */
int codec_splitter_feed(struct codec_splitter *s, const void *data, size_t len,
                        size_t *consumed, struct raft_buf *frame);

/* ------------------------------------------------------------------------
 * Gossip: the member table brokers spread (broker/transport_tcp.c)
 * --------------------------------------------------------------------- */

/* The most members one gossip frame may list, and the longest host and
 * version strings, in bytes. */
#define CODEC_GOSSIP_MEMBERS_MAX 1024u
#define CODEC_GOSSIP_HOST_MAX 255u
#define CODEC_GOSSIP_VERSION_MAX 63u

/* One member as gossip describes it. Strings are NUL-terminated. */
struct codec_gossip_member {
    raft_id node_id;          /* non-zero */
    const char *host;         /* internal address, 1..HOST_MAX bytes */
    uint16_t port;            /* internal port, non-zero */
    const char *command_host; /* command API address, may be "" */
    uint16_t command_port;    /* 0 when there is none */
    const char *version;      /* may be "" */
    uint64_t heartbeat;       /* the member's counter, non-zero */
};

/* A gossip frame's body: the sender's member table. */
struct codec_gossip {
    const struct codec_gossip_member *members;
    size_t count; /* at most CODEC_GOSSIP_MEMBERS_MAX */
};

/* Encodes a gossip frame (partition 0) like codec_raft_encode(); the
 * members are borrowed for the call. Returns 0, CODEC_E_INVALID (too many
 * members, a member with id 0, port 0, heartbeat 0, a NULL or overlong
 * string), CODEC_E_TOO_BIG (the body would exceed frame_bytes_max, at most
 * CODEC_FRAME_BYTES_LIMIT) or CODEC_E_NOMEM. */
int codec_gossip_encode(struct codec_arena *arena, const struct codec_gossip *g,
                        size_t frame_bytes_max, struct raft_buf *frame);

/* Decodes one complete gossip frame (prefix included) into *out; members
 * and strings live in the arena until its reset. Returns 0,
 * CODEC_E_MALFORMED (bad prefix, not a valid Frame, a body other than
 * gossip, a member breaking the rules of codec_gossip_encode()) or
 * CODEC_E_NOMEM (arena limit). codec_frame_decode() refuses gossip frames
 * ("no body"), so a receiver tries this function when that one fails. On
 * failure *out is zeroed and errmsg (may be NULL) says why. */
int codec_gossip_decode(struct codec_arena *arena, const void *data, size_t len,
                        struct codec_gossip *out, char *errmsg);

/* The largest encoded cluster configuration a gossip frame may carry. A
 * configuration at every limit of broker/placement.h packs to about
 * 100 KiB (broker/cluster_config.h), so this leaves room to grow. */
#define CODEC_GOSSIP_CONFIG_BYTES_MAX ((size_t)1 << 20)

/* The cluster configuration a gossip frame advertises (MemberList fields
 * config_version and cluster_config). The codec does not look inside
 * bytes: broker/cluster_config.c decodes and validates them. */
struct codec_gossip_config {
    uint64_t version;  /* the sender's config version; 0: it has none */
    const void *bytes; /* the packed configuration, or NULL */
    size_t len;        /* 0 when the frame carries only the version */
};

/* As codec_gossip_encode(), also advertising cfg (NULL: version 0, no
 * bytes). cfg and its bytes are borrowed for the call. Returns what
 * codec_gossip_encode() returns; CODEC_E_INVALID also when cfg carries
 * bytes with version 0, NULL bytes with len > 0, or more than
 * CODEC_GOSSIP_CONFIG_BYTES_MAX bytes. */
int codec_gossip_encode_ex(struct codec_arena *arena,
                           const struct codec_gossip *g,
                           const struct codec_gossip_config *cfg,
                           size_t frame_bytes_max, struct raft_buf *frame);

/* As codec_gossip_decode(), also filling *cfg (may be NULL) with what the
 * frame advertises; cfg->bytes points into the arena. The frame is
 * CODEC_E_MALFORMED also when it carries bytes with version 0 or more
 * than CODEC_GOSSIP_CONFIG_BYTES_MAX bytes. On failure *cfg is zeroed.
 * codec_gossip_decode() accepts frames with a configuration and ignores
 * it, so old and new receivers read the same frames. */
int codec_gossip_decode_ex(struct codec_arena *arena, const void *data,
                           size_t len, struct codec_gossip *out,
                           struct codec_gossip_config *cfg, char *errmsg);

/* Decodes any frame a broker connection carries with ONE unpack: a Raft
 * message or Hello into *out (as codec_frame_decode()), or a gossip frame
 * (out->body == CODEC_BODY_GOSSIP) into *gossip and *cfg (as
 * codec_gossip_decode_ex(); cfg may be NULL). Both wrappers are this
 * function refusing the other kind. Returns 0, CODEC_E_MALFORMED or
 * CODEC_E_NOMEM with a reason; on failure the outputs are zeroed. */
int codec_frame_decode_any(struct codec_arena *arena, const void *data,
                           size_t len, struct codec_frame *out,
                           struct codec_gossip *gossip,
                           struct codec_gossip_config *cfg, char *errmsg);

#endif /* TANDEM_BROKER_CODEC_H */
