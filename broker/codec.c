/* codec.c: encodes and decodes the frames brokers exchange (codec.h).
 *
 * Sending: codec_raft_encode() maps a struct raft_message onto the
 * protobuf-c structs generated from proto/raft.proto (built in the arena,
 * payloads borrowed, not copied), packs them behind a length prefix into
 * one arena buffer, and returns that buffer as the frame.
 *
 * Receiving: codec_splitter_feed() cuts the TCP byte stream into frames
 * with proto/frame.c's splitter, never buffering more than one frame of
 * at most frame_bytes_max bytes;
 * codec_frame_decode() unpacks a frame with protobuf-c using the arena as
 * its allocator (so the decoded payloads live in the arena and a hostile
 * frame cannot make us allocate more than the arena's limit), validates
 * it, and converts it into a struct raft_message whose pointers lead into
 * the arena.
 *
 * Wire format of one frame (all of it is produced by frame_pack()):
 *
 *    0       1       2       3       4                              4 + L
 *   +-------+-------+-------+-------+---------------------------//--+
 *   | L: body length, uint32, big-  | body: tandem.raft.Frame,       |
 *   |    endian, <= frame_bytes_max |       protobuf-packed, L bytes |
 *   +-------+-------+-------+-------+---------------------------//--+
 *
 *   Frame (field number: name type)
 *   +--------------------+------------------------------------------+
 *   | 1: partition uint32| oneof body: 2: raft  RaftMessage         |
 *   |    (0 for Hello)   |             3: hello Hello               |
 *   |                    |             4: members MemberList        |
 *   |                    |             5..31 reserved               |
 *   +--------------------+------------------------------------------+
 *
 *   RaftMessage (mirrors struct raft_message)
 *   +---------+---------+---------+---------+----------+-------------+
 *   | 1 type  | 2 from  | 3 to    | 4 term  | 5 index  | 6 log_term  |
 *   +---------+---------+---------+---------+----------+-------------+
 *   | 7 commit| 8 hint_index      | 9 hint_term        | 10 reject   |
 *   +---------+-------------------+--------------------+-------------+
 *   | 11 transfer | 12 done | 13 entries: repeated Entry (APPEND)    |
 *   +-------------+---------+----------------------------------------+
 *   | 14 snapshot: SnapshotMeta (SNAPSHOT) | 15 offset | 16 total    |
 *   +--------------------------------------+-----------+-------------+
 *   | 17 data: bytes, a snapshot chunk (SNAPSHOT)                    |
 *   +----------------------------------------------------------------+
 *
 *   Entry: 1 term, 2 index, 3 type (EntryType), 4 data (bytes)
 *   SnapshotMeta: 1 index, 2 term, 3 config (Config), 4 config_index,
 *                 5 config_term
 *   Config: 1 members (repeated Member: 1 id, 2 role, 3 priority),
 *           2 old_voters (repeated uint64, packed)
 *   Hello: 1 protocol_version, 2 node_id, 3 cluster_name
 *
 * protobuf omits zero-valued fields, so a heartbeat is about 20 bytes.
 * Unknown fields are ignored (protobuf-c keeps them in the arena, within
 * its limit), which lets a newer peer add fields that an older one may
 * skip; anything older peers must understand needs a new
 * Hello.protocol_version.
 */
#include "broker/codec.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

_Static_assert(CODEC_PREFIX_BYTES == sizeof(uint32_t),
               "the length prefix is a uint32");
_Static_assert(CODEC_FRAME_BYTES_DEFAULT <= CODEC_FRAME_BYTES_LIMIT,
               "default frame limit within the hard limit");
_Static_assert(CODEC_FRAME_BYTES_LIMIT <= UINT32_MAX,
               "frame bodies must fit the 32-bit prefix");
/* The proto enums mirror raft's numbering, so conversions are casts. */
#define CODEC__SAME(raft_value, proto_value)                                   \
    _Static_assert((int)(raft_value) == (int)(proto_value),                    \
                   #raft_value " matches " #proto_value)
CODEC__SAME(RAFT_MSG_APPEND, TANDEM__RAFT__MESSAGE_TYPE__MESSAGE_TYPE_APPEND);
CODEC__SAME(RAFT_MSG_APPEND_RESP,
            TANDEM__RAFT__MESSAGE_TYPE__MESSAGE_TYPE_APPEND_RESP);
CODEC__SAME(RAFT_MSG_VOTE, TANDEM__RAFT__MESSAGE_TYPE__MESSAGE_TYPE_VOTE);
CODEC__SAME(RAFT_MSG_VOTE_RESP,
            TANDEM__RAFT__MESSAGE_TYPE__MESSAGE_TYPE_VOTE_RESP);
CODEC__SAME(RAFT_MSG_PRE_VOTE,
            TANDEM__RAFT__MESSAGE_TYPE__MESSAGE_TYPE_PRE_VOTE);
CODEC__SAME(RAFT_MSG_PRE_VOTE_RESP,
            TANDEM__RAFT__MESSAGE_TYPE__MESSAGE_TYPE_PRE_VOTE_RESP);
CODEC__SAME(RAFT_MSG_SNAPSHOT,
            TANDEM__RAFT__MESSAGE_TYPE__MESSAGE_TYPE_SNAPSHOT);
CODEC__SAME(RAFT_MSG_SNAPSHOT_RESP,
            TANDEM__RAFT__MESSAGE_TYPE__MESSAGE_TYPE_SNAPSHOT_RESP);
CODEC__SAME(RAFT_MSG_TIMEOUT_NOW,
            TANDEM__RAFT__MESSAGE_TYPE__MESSAGE_TYPE_TIMEOUT_NOW);
CODEC__SAME(RAFT_MSG_TYPE_MAX,
            TANDEM__RAFT__MESSAGE_TYPE__MESSAGE_TYPE_TIMEOUT_NOW);
CODEC__SAME(RAFT_ENTRY_NORMAL, TANDEM__RAFT__ENTRY_TYPE__ENTRY_TYPE_NORMAL);
CODEC__SAME(RAFT_ENTRY_CONFIG, TANDEM__RAFT__ENTRY_TYPE__ENTRY_TYPE_CONFIG);
CODEC__SAME(RAFT_ENTRY_NOOP, TANDEM__RAFT__ENTRY_TYPE__ENTRY_TYPE_NOOP);
CODEC__SAME(RAFT_VOTER, TANDEM__RAFT__MEMBER_ROLE__MEMBER_ROLE_VOTER);
CODEC__SAME(RAFT_LEARNER, TANDEM__RAFT__MEMBER_ROLE__MEMBER_ROLE_LEARNER);
#undef CODEC__SAME
_Static_assert(RAFT_PRIORITY_MAX <= UINT8_MAX, "priorities fit uint8_t");

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

const char *codec_strerror(int rv)
{
    switch (rv) {
    case 0:
        return "success";
#define CODEC__ERRNO_CASE(name, value, text)                                   \
    case (value):                                                              \
        return (text);
        CODEC_ERRNO_MAP(CODEC__ERRNO_CASE)
#undef CODEC__ERRNO_CASE
    default:
        return "unknown codec error";
    }
}

/* Writes a formatted reason into errmsg (CODEC_ERRMSG_SIZE bytes) unless it
 * is NULL, and returns rv, so that callers can `return fail(...)`. */
__attribute__((format(printf, 3, 4))) static int fail(int rv, char *errmsg,
                                                      const char *fmt, ...)
{
    va_list ap;

    assert(rv < 0);
    if (errmsg != NULL) {
        va_start(ap, fmt);
        vsnprintf(errmsg, CODEC_ERRMSG_SIZE, fmt, ap);
        va_end(ap);
    }
    return rv;
}

/* The length prefix is proto/frame.h's. */
static uint32_t be32_get(const uint8_t *p)
{
    return proto_frame_prefix_get(p);
}

static void be32_put(uint8_t *p, uint32_t v)
{
    proto_frame_prefix_put(p, v);
}

/* ------------------------------------------------------------------------
 * Arena
 * --------------------------------------------------------------------- */

/* A block of arena memory; data[] starts suitably aligned because the
 * flexible member has the strictest alignment. */
struct codec_arena_block {
    struct codec_arena_block *next; /* older block */
    size_t size;                    /* bytes of data[] */
    size_t used;                    /* bytes of data[] handed out */
    max_align_t data[];
};

#define ARENA_ALIGN (_Alignof(max_align_t))
#define ARENA_BLOCK_BYTES ((size_t)64 << 10) /* usual block payload */
#define ARENA_KEEP_BYTES ((size_t)256 << 10) /* largest block reset keeps */
#define ARENA_REQUEST_MAX ((size_t)1 << 40)  /* rejects absurd sizes early */

_Static_assert((ARENA_ALIGN & (ARENA_ALIGN - 1)) == 0, "power of two");

void codec_arena_init(struct codec_arena *arena, size_t bytes_max)
{
    assert(arena != NULL);
    memset(arena, 0, sizeof(*arena));
    arena->bytes_max = bytes_max;
}

void *codec_arena_alloc(struct codec_arena *arena, size_t size)
{
    struct codec_arena_block *b;
    size_t need;
    size_t payload;
    size_t room;
    void *p;

    assert(arena != NULL);
    assert(arena->bytes <= arena->bytes_max);
    if (size > ARENA_REQUEST_MAX) {
        arena->full = true;
        return NULL;
    }
    need = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (need == 0) {
        need = ARENA_ALIGN; /* distinct non-NULL pointers for size 0 */
    }
    b = arena->head;
    if (b == NULL || b->size - b->used < need) {
        room = arena->bytes_max - arena->bytes;
        payload = need > ARENA_BLOCK_BYTES ? need : ARENA_BLOCK_BYTES;
        if (sizeof(*b) + payload > room) {
            payload = need; /* near the limit: take only what is needed */
        }
        if (sizeof(*b) + payload > room) {
            arena->full = true;
            return NULL;
        }
        b = malloc(sizeof(*b) + payload);
        if (b == NULL) {
            return NULL; /* UNTESTED: malloc failure */
        }
        b->next = arena->head;
        b->size = payload;
        b->used = 0;
        arena->head = b;
        arena->bytes += sizeof(*b) + payload;
    }
    p = (char *)b->data + b->used;
    b->used += need;
    assert(b->used <= b->size);
    assert(((uintptr_t)p & (ARENA_ALIGN - 1)) == 0);
    return p;
}

void codec_arena_reset(struct codec_arena *arena)
{
    struct codec_arena_block *keep = NULL;
    struct codec_arena_block *b;

    assert(arena != NULL);
    b = arena->head;
    if (b != NULL && b->size <= ARENA_KEEP_BYTES) {
        keep = b;
        b = b->next;
    }
    while (b != NULL) {
        struct codec_arena_block *next = b->next;
        free(b);
        b = next;
    }
    arena->head = keep;
    arena->bytes = 0;
    if (keep != NULL) {
        keep->next = NULL;
        keep->used = 0;
        arena->bytes = sizeof(*keep) + keep->size;
    }
    arena->full = false;
    assert(arena->bytes <= arena->bytes_max);
}

void codec_arena_close(struct codec_arena *arena)
{
    struct codec_arena_block *b;

    assert(arena != NULL);
    b = arena->head;
    while (b != NULL) {
        struct codec_arena_block *next = b->next;
        free(b);
        b = next;
    }
    arena->head = NULL;
    arena->bytes = 0;
    arena->full = false;
}

/* protobuf-c's allocator interface over an arena. Freeing is a no-op: the
 * arena is released as a whole. */
static void *arena_pb_alloc(void *data, size_t size)
{
    return codec_arena_alloc(data, size);
}

static void arena_pb_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr;
}

/* ------------------------------------------------------------------------
 * Structural checks (shared by encode and decode)
 * --------------------------------------------------------------------- */

static int config_check(const struct raft_config *c, char *errmsg)
{
    if (c->count > RAFT_MEMBERS_MAX) {
        return fail(CODEC_E_INVALID, errmsg,
                    "configuration has %u members, more than %u", c->count,
                    RAFT_MEMBERS_MAX);
    }
    if (c->old_count > RAFT_MEMBERS_MAX) {
        return fail(CODEC_E_INVALID, errmsg,
                    "configuration has %u old voters, more than %u",
                    c->old_count, RAFT_MEMBERS_MAX);
    }
    for (uint32_t i = 0; i < c->count; i++) {
        uint8_t role = c->members[i].role;
        if (role != RAFT_VOTER && role != RAFT_LEARNER) {
            return fail(CODEC_E_INVALID, errmsg,
                        "configuration member %u has unknown role %u", i, role);
        }
    }
    return 0;
}

static bool snapshot_meta_empty(const struct raft_snapshot_meta *s)
{
    return s->index == 0 && s->term == 0 && s->config_index == 0 &&
           s->config_term == 0 && s->config.count == 0 &&
           s->config.old_count == 0;
}

int codec_raft_check(const struct raft_message *m, char *errmsg)
{
    assert(m != NULL);
    if (m->type < RAFT_MSG_APPEND || m->type > RAFT_MSG_TYPE_MAX) {
        return fail(CODEC_E_INVALID, errmsg, "unknown message type %u",
                    m->type);
    }
    if (m->from == 0 || m->to == 0) {
        return fail(CODEC_E_INVALID, errmsg,
                    "message type %u from %llu to %llu: id 0", m->type,
                    (unsigned long long)m->from, (unsigned long long)m->to);
    }
    if (m->entry_count > 0 && m->type != RAFT_MSG_APPEND) {
        return fail(CODEC_E_INVALID, errmsg, "message type %u carries entries",
                    m->type);
    }
    if (m->entry_count > CODEC_ENTRIES_MAX) {
        return fail(CODEC_E_INVALID, errmsg, "%zu entries, more than %u",
                    m->entry_count, CODEC_ENTRIES_MAX);
    }
    if (m->entry_count > 0 && m->entries == NULL) {
        return fail(CODEC_E_INVALID, errmsg, "entry array missing");
    }
    for (size_t i = 0; i < m->entry_count; i++) {
        const struct raft_entry *e = &m->entries[i];
        if (e->type < RAFT_ENTRY_NORMAL || e->type > RAFT_ENTRY_NOOP) {
            return fail(CODEC_E_INVALID, errmsg,
                        "entry %zu has unknown type %u", i, e->type);
        }
        if (e->buf.len > 0 && e->buf.base == NULL) {
            return fail(CODEC_E_INVALID, errmsg, "entry %zu payload missing",
                        i);
        }
    }
    if (m->type != RAFT_MSG_SNAPSHOT) {
        if (m->data.len > 0) {
            return fail(CODEC_E_INVALID, errmsg,
                        "message type %u carries snapshot data", m->type);
        }
        if (!snapshot_meta_empty(&m->snapshot)) {
            return fail(CODEC_E_INVALID, errmsg,
                        "message type %u carries snapshot metadata", m->type);
        }
        return 0;
    }
    if (m->data.len > 0 && m->data.base == NULL) {
        return fail(CODEC_E_INVALID, errmsg, "snapshot chunk missing");
    }
    return config_check(&m->snapshot.config, errmsg);
}

/* ------------------------------------------------------------------------
 * Encoding
 * --------------------------------------------------------------------- */

/* protobuf-c wants mutable byte pointers even for packing, which only
 * reads them. */
static ProtobufCBinaryData bytes_borrow(const void *base, size_t len)
{
    ProtobufCBinaryData b;
    b.len = len;
    b.data = len > 0 ? (uint8_t *)(uintptr_t)base : NULL;
    return b;
}

/* Packs f behind a length prefix into one arena buffer. */
static int frame_pack(struct codec_arena *arena, const Tandem__Raft__Frame *f,
                      size_t frame_bytes_max, struct raft_buf *frame)
{
    size_t body;
    size_t written;
    uint8_t *buf;

    assert(frame_bytes_max <= CODEC_FRAME_BYTES_LIMIT);
    assert(f->body_case != TANDEM__RAFT__FRAME__BODY__NOT_SET);
    body = tandem__raft__frame__get_packed_size(f);
    if (body > frame_bytes_max) {
        return CODEC_E_TOO_BIG;
    }
    buf = codec_arena_alloc(arena, CODEC_PREFIX_BYTES + body);
    if (buf == NULL) {
        return CODEC_E_NOMEM;
    }
    be32_put(buf, (uint32_t)body);
    written = tandem__raft__frame__pack(f, buf + CODEC_PREFIX_BYTES);
    assert(written == body);
    frame->base = buf;
    frame->len = CODEC_PREFIX_BYTES + written;
    return 0;
}

int codec_raft_encode(struct codec_arena *arena, uint32_t partition,
                      const struct raft_message *m, size_t frame_bytes_max,
                      struct raft_buf *frame)
{
    Tandem__Raft__Frame f = TANDEM__RAFT__FRAME__INIT;
    Tandem__Raft__RaftMessage rm = TANDEM__RAFT__RAFT_MESSAGE__INIT;
    Tandem__Raft__SnapshotMeta sm = TANDEM__RAFT__SNAPSHOT_META__INIT;
    Tandem__Raft__Config cfg = TANDEM__RAFT__CONFIG__INIT;
    Tandem__Raft__Member members[RAFT_MEMBERS_MAX];
    Tandem__Raft__Member *member_ptrs[RAFT_MEMBERS_MAX];
    uint64_t old_voters[RAFT_MEMBERS_MAX];
    int rv;

    assert(arena != NULL);
    assert(m != NULL);
    assert(frame != NULL);
    frame->base = NULL;
    frame->len = 0;
    rv = codec_raft_check(m, NULL);
    if (rv != 0) {
        return rv;
    }

    rm.type = (Tandem__Raft__MessageType)m->type;
    rm.from = m->from;
    rm.to = m->to;
    rm.term = m->term;
    rm.index = m->index;
    rm.log_term = m->log_term;
    rm.commit = m->commit;
    rm.hint_index = m->hint_index;
    rm.hint_term = m->hint_term;
    rm.reject = m->reject;
    rm.transfer = m->transfer;
    rm.done = m->done;
    rm.offset = m->offset;
    rm.total = m->total;
    rm.data = bytes_borrow(m->data.base, m->data.len);

    if (m->entry_count > 0) {
        Tandem__Raft__Entry *es =
            codec_arena_alloc(arena, m->entry_count * sizeof(*es));
        Tandem__Raft__Entry **eps =
            codec_arena_alloc(arena, m->entry_count * sizeof(*eps));
        if (es == NULL || eps == NULL) {
            return CODEC_E_NOMEM;
        }
        for (size_t i = 0; i < m->entry_count; i++) {
            const struct raft_entry *e = &m->entries[i];
            tandem__raft__entry__init(&es[i]);
            es[i].term = e->term;
            es[i].index = e->index;
            es[i].type = (Tandem__Raft__EntryType)e->type;
            es[i].data = bytes_borrow(e->buf.base, e->buf.len);
            eps[i] = &es[i];
        }
        rm.n_entries = m->entry_count;
        rm.entries = eps;
    }

    if (m->type == RAFT_MSG_SNAPSHOT) {
        const struct raft_config *c = &m->snapshot.config;
        for (uint32_t i = 0; i < c->count; i++) {
            tandem__raft__member__init(&members[i]);
            members[i].id = c->members[i].id;
            members[i].role = (Tandem__Raft__MemberRole)c->members[i].role;
            members[i].priority = c->members[i].priority;
            member_ptrs[i] = &members[i];
        }
        for (uint32_t i = 0; i < c->old_count; i++) {
            old_voters[i] = c->old_voters[i];
        }
        cfg.n_members = c->count;
        cfg.members = member_ptrs;
        cfg.n_old_voters = c->old_count;
        cfg.old_voters = old_voters;
        sm.index = m->snapshot.index;
        sm.term = m->snapshot.term;
        sm.config = &cfg;
        sm.config_index = m->snapshot.config_index;
        sm.config_term = m->snapshot.config_term;
        rm.snapshot = &sm;
    }

    f.partition = partition;
    f.body_case = TANDEM__RAFT__FRAME__BODY_RAFT;
    f.raft = &rm;
    return frame_pack(arena, &f, frame_bytes_max, frame);
}

int codec_command_encode(struct codec_arena *arena, uint32_t partition,
                         const struct codec_command *c,
                         size_t frame_bytes_max, struct raft_buf *frame)
{
    Tandem__Raft__Frame f = TANDEM__RAFT__FRAME__INIT;
    Tandem__Raft__PartitionCommand pc = TANDEM__RAFT__PARTITION_COMMAND__INIT;

    assert(arena != NULL);
    assert(c != NULL);
    assert(frame != NULL);
    frame->base = NULL;
    frame->len = 0;
    if (partition == 0 || c->source_partition == 0 ||
        c->target_partition == 0 || (!c->ack && c->record_len == 0)) {
        return CODEC_E_INVALID;
    }
    pc.source_partition = c->source_partition;
    pc.target_partition = c->target_partition;
    pc.distribution_key = c->distribution_key;
    pc.record.data = (uint8_t *)c->record;
    pc.record.len = c->record_len;
    pc.ack = c->ack;
    f.partition = partition;
    f.body_case = TANDEM__RAFT__FRAME__BODY_COMMAND;
    f.command = &pc;
    return frame_pack(arena, &f, frame_bytes_max, frame);
}

int codec_forward_encode(struct codec_arena *arena, size_t frame_bytes_max,
                         const struct codec_forward *fw,
                         struct raft_buf *frame)
{
    Tandem__Raft__Frame f = TANDEM__RAFT__FRAME__INIT;
    Tandem__Raft__ManagementForward m = TANDEM__RAFT__MANAGEMENT_FORWARD__INIT;

    assert(arena != NULL);
    assert(fw != NULL);
    assert(frame != NULL);
    frame->base = NULL;
    frame->len = 0;
    if (fw->id == 0 || fw->payload_len > CODEC_FORWARD_PAYLOAD_MAX ||
        (fw->payload == NULL && fw->payload_len > 0)) {
        return CODEC_E_INVALID;
    }
    m.id = fw->id;
    m.reply = fw->reply;
    m.payload.data = (uint8_t *)(uintptr_t)fw->payload;
    m.payload.len = fw->payload_len;
    f.body_case = TANDEM__RAFT__FRAME__BODY_FORWARD;
    f.forward = &m;
    return frame_pack(arena, &f, frame_bytes_max, frame);
}

int codec_rebalance_encode(struct codec_arena *arena, size_t frame_bytes_max,
                           struct raft_buf *frame)
{
    Tandem__Raft__Frame f = TANDEM__RAFT__FRAME__INIT;
    Tandem__Raft__Rebalance r = TANDEM__RAFT__REBALANCE__INIT;

    assert(arena != NULL);
    assert(frame != NULL);
    frame->base = NULL;
    frame->len = 0;
    f.body_case = TANDEM__RAFT__FRAME__BODY_REBALANCE;
    f.rebalance = &r;
    return frame_pack(arena, &f, frame_bytes_max, frame);
}

int codec_hello_encode(struct codec_arena *arena,
                       const struct codec_hello *hello, struct raft_buf *frame)
{
    Tandem__Raft__Frame f = TANDEM__RAFT__FRAME__INIT;
    Tandem__Raft__Hello h = TANDEM__RAFT__HELLO__INIT;

    assert(arena != NULL);
    assert(hello != NULL);
    assert(frame != NULL);
    frame->base = NULL;
    frame->len = 0;
    if (hello->protocol_version == 0 || hello->node_id == 0 ||
        hello->cluster_name == NULL ||
        strlen(hello->cluster_name) > CODEC_CLUSTER_NAME_MAX) {
        return CODEC_E_INVALID;
    }
    h.protocol_version = hello->protocol_version;
    h.node_id = hello->node_id;
    h.cluster_name = (char *)(uintptr_t)hello->cluster_name;
    f.partition = 0;
    f.body_case = TANDEM__RAFT__FRAME__BODY_HELLO;
    f.hello = &h;
    return frame_pack(arena, &f, CODEC_FRAME_BYTES_LIMIT, frame);
}

/* ------------------------------------------------------------------------
 * Decoding
 * --------------------------------------------------------------------- */

static int decode_config(const Tandem__Raft__Config *in,
                         struct raft_config *out, char *errmsg)
{
    raft_config_init(out);
    if (in == NULL) {
        return fail(CODEC_E_MALFORMED, errmsg,
                    "snapshot metadata without configuration");
    }
    if (in->n_members > RAFT_MEMBERS_MAX ||
        in->n_old_voters > RAFT_MEMBERS_MAX) {
        return fail(CODEC_E_MALFORMED, errmsg,
                    "configuration with %zu members and %zu old voters, "
                    "more than %u",
                    in->n_members, in->n_old_voters, RAFT_MEMBERS_MAX);
    }
    for (size_t i = 0; i < in->n_members; i++) {
        const Tandem__Raft__Member *mb = in->members[i];
        int role;
        assert(mb != NULL);
        role = (int)mb->role;
        if (role != RAFT_VOTER && role != RAFT_LEARNER) {
            return fail(CODEC_E_MALFORMED, errmsg,
                        "configuration member %zu has unknown role %d", i,
                        role);
        }
        if (mb->priority > RAFT_PRIORITY_MAX) {
            return fail(CODEC_E_MALFORMED, errmsg,
                        "configuration member %zu has priority %u", i,
                        (unsigned)mb->priority);
        }
        out->members[i].id = mb->id;
        out->members[i].role = (uint8_t)role;
        out->members[i].priority = (uint8_t)mb->priority;
    }
    out->count = (uint32_t)in->n_members;
    for (size_t i = 0; i < in->n_old_voters; i++) {
        out->old_voters[i] = in->old_voters[i];
    }
    out->old_count = (uint32_t)in->n_old_voters;
    return 0;
}

static int decode_raft(struct codec_arena *arena,
                       const Tandem__Raft__RaftMessage *in,
                       struct raft_message *out, char *errmsg)
{
    int type = (int)in->type;
    int rv;

    if (type < RAFT_MSG_APPEND || type > RAFT_MSG_TYPE_MAX) {
        return fail(CODEC_E_MALFORMED, errmsg, "unknown message type %d", type);
    }
    if (in->n_entries > CODEC_ENTRIES_MAX) {
        return fail(CODEC_E_MALFORMED, errmsg, "%zu entries, more than %u",
                    in->n_entries, CODEC_ENTRIES_MAX);
    }
    out->type = (uint8_t)type;
    out->from = in->from;
    out->to = in->to;
    out->term = in->term;
    out->index = in->index;
    out->log_term = in->log_term;
    out->commit = in->commit;
    out->hint_index = in->hint_index;
    out->hint_term = in->hint_term;
    out->reject = in->reject != 0;
    out->transfer = in->transfer != 0;
    out->done = in->done != 0;
    out->offset = in->offset;
    out->total = in->total;
    out->data.len = in->data.len;
    out->data.base = in->data.len > 0 ? in->data.data : NULL;

    if (in->n_entries > 0) {
        struct raft_entry *es =
            codec_arena_alloc(arena, in->n_entries * sizeof(*es));
        if (es == NULL) {
            return fail(CODEC_E_NOMEM, errmsg,
                        "no arena memory for %zu entries", in->n_entries);
        }
        for (size_t i = 0; i < in->n_entries; i++) {
            const Tandem__Raft__Entry *e = in->entries[i];
            int etype;
            assert(e != NULL);
            etype = (int)e->type;
            if (etype < RAFT_ENTRY_NORMAL || etype > RAFT_ENTRY_NOOP) {
                return fail(CODEC_E_MALFORMED, errmsg,
                            "entry %zu has unknown type %d", i, etype);
            }
            es[i].term = e->term;
            es[i].index = e->index;
            es[i].type = (uint8_t)etype;
            es[i].buf.len = e->data.len;
            es[i].buf.base = e->data.len > 0 ? e->data.data : NULL;
        }
        out->entries = es;
        out->entry_count = in->n_entries;
    }

    if (in->snapshot != NULL) {
        if (type != RAFT_MSG_SNAPSHOT) {
            return fail(CODEC_E_MALFORMED, errmsg,
                        "message type %d carries snapshot metadata", type);
        }
        rv = decode_config(in->snapshot->config, &out->snapshot.config, errmsg);
        if (rv != 0) {
            return rv;
        }
        out->snapshot.index = in->snapshot->index;
        out->snapshot.term = in->snapshot->term;
        out->snapshot.config_index = in->snapshot->config_index;
        out->snapshot.config_term = in->snapshot->config_term;
    } else if (type == RAFT_MSG_SNAPSHOT) {
        return fail(CODEC_E_MALFORMED, errmsg,
                    "snapshot message without metadata");
    }

    /* The same rules encode enforced, now on what the peer sent. */
    rv = codec_raft_check(out, errmsg);
    if (rv != 0) {
        return CODEC_E_MALFORMED;
    }
    return 0;
}

static int decode_hello(const Tandem__Raft__Hello *in, uint32_t partition,
                        struct codec_hello *out, char *errmsg)
{
    if (partition != 0) {
        return fail(CODEC_E_MALFORMED, errmsg, "hello on partition %u",
                    partition);
    }
    if (in->protocol_version == 0 || in->node_id == 0) {
        return fail(CODEC_E_MALFORMED, errmsg,
                    "hello with protocol version %u, node id %llu",
                    in->protocol_version, (unsigned long long)in->node_id);
    }
    assert(in->cluster_name != NULL);
    if (strlen(in->cluster_name) > CODEC_CLUSTER_NAME_MAX) {
        return fail(CODEC_E_MALFORMED, errmsg,
                    "hello with a cluster name longer than %u bytes",
                    CODEC_CLUSTER_NAME_MAX);
    }
    out->protocol_version = in->protocol_version;
    out->node_id = in->node_id;
    out->cluster_name = in->cluster_name;
    return 0;
}

/* Checks the length prefix of a whole frame and unpacks its body into the
 * arena (bounded by the arena's limit). Returns 0 and sets *out, or
 * CODEC_E_MALFORMED / CODEC_E_NOMEM with a reason. */
static int frame_unpack(struct codec_arena *arena, const void *data,
                        size_t len, Tandem__Raft__Frame **out, char *errmsg)
{
    ProtobufCAllocator allocator;
    const uint8_t *p = data;
    uint32_t body;
    bool was_full;
    bool full;

    assert(arena != NULL);
    assert(data != NULL || len == 0);
    if (len < CODEC_PREFIX_BYTES) {
        return fail(CODEC_E_MALFORMED, errmsg,
                    "frame of %zu bytes has no length prefix", len);
    }
    body = be32_get(p);
    if ((size_t)body != len - CODEC_PREFIX_BYTES) {
        return fail(CODEC_E_MALFORMED, errmsg,
                    "length prefix %u but %zu body bytes", (unsigned)body,
                    len - CODEC_PREFIX_BYTES);
    }
    allocator.alloc = arena_pb_alloc;
    allocator.free = arena_pb_free;
    allocator.allocator_data = arena;
    was_full = arena->full;
    arena->full = false;
    *out = tandem__raft__frame__unpack(&allocator, body,
                                       p + CODEC_PREFIX_BYTES);
    full = arena->full;
    arena->full = was_full || full;
    if (*out == NULL) {
        if (full) {
            return fail(CODEC_E_NOMEM, errmsg,
                        "decoding %u bytes needs more than the arena limit "
                        "of %zu bytes",
                        (unsigned)body, arena->bytes_max);
        }
        return fail(CODEC_E_MALFORMED, errmsg,
                    "body is not a valid protobuf Frame");
    }
    return 0;
}

static int decode_gossip(struct codec_arena *arena,
                         const Tandem__Raft__Frame *f, struct codec_gossip *out,
                         struct codec_gossip_config *cfg, char *errmsg);

int codec_frame_decode_any(struct codec_arena *arena, const void *data,
                           size_t len, struct codec_frame *out,
                           struct codec_gossip *gossip,
                           struct codec_gossip_config *cfg, char *errmsg)
{
    Tandem__Raft__Frame *f = NULL;
    int rv;

    assert(out != NULL);
    assert(gossip != NULL);
    memset(out, 0, sizeof(*out));
    memset(gossip, 0, sizeof(*gossip));
    if (cfg != NULL) {
        memset(cfg, 0, sizeof(*cfg));
    }
    rv = frame_unpack(arena, data, len, &f, errmsg);
    if (rv != 0) {
        return rv;
    }
    out->partition = f->partition;
    switch (f->body_case) {
    case TANDEM__RAFT__FRAME__BODY_RAFT:
        out->body = CODEC_BODY_RAFT;
        rv = decode_raft(arena, f->raft, &out->raft, errmsg);
        break;
    case TANDEM__RAFT__FRAME__BODY_HELLO:
        out->body = CODEC_BODY_HELLO;
        rv = decode_hello(f->hello, f->partition, &out->hello, errmsg);
        break;
    case TANDEM__RAFT__FRAME__BODY_MEMBERS:
        out->body = CODEC_BODY_GOSSIP;
        rv = decode_gossip(arena, f, gossip, cfg, errmsg);
        break;
    case TANDEM__RAFT__FRAME__BODY_REBALANCE:
        out->body = CODEC_BODY_REBALANCE;
        break;
    case TANDEM__RAFT__FRAME__BODY_FORWARD:
        out->body = CODEC_BODY_FORWARD;
        if (f->partition != 0 || f->forward->id == 0 ||
            f->forward->payload.len > CODEC_FORWARD_PAYLOAD_MAX) {
            rv = fail(CODEC_E_MALFORMED, errmsg,
                      "management forward with a partition, id 0 or a "
                      "payload over %u bytes",
                      CODEC_FORWARD_PAYLOAD_MAX);
            break;
        }
        out->forward.id = f->forward->id;
        out->forward.reply = f->forward->reply;
        out->forward.payload =
            f->forward->payload.len > 0 ? f->forward->payload.data : NULL;
        out->forward.payload_len = f->forward->payload.len;
        break;
    case TANDEM__RAFT__FRAME__BODY_COMMAND:
        out->body = CODEC_BODY_COMMAND;
        if (f->partition == 0 || f->command->source_partition == 0 ||
            f->command->target_partition == 0 ||
            (!f->command->ack && f->command->record.len == 0)) {
            rv = fail(CODEC_E_MALFORMED, errmsg,
                      "partition command without partitions or record");
            break;
        }
        out->command.source_partition = f->command->source_partition;
        out->command.target_partition = f->command->target_partition;
        out->command.distribution_key = f->command->distribution_key;
        out->command.record = f->command->record.len > 0
                                  ? f->command->record.data
                                  : NULL;
        out->command.record_len = f->command->record.len;
        out->command.ack = f->command->ack;
        break;
    case TANDEM__RAFT__FRAME__BODY__NOT_SET:
    default:
        rv = fail(CODEC_E_MALFORMED, errmsg, "frame has no body");
        break;
    }
    if (rv != 0) {
        memset(out, 0, sizeof(*out));
        memset(gossip, 0, sizeof(*gossip));
        if (cfg != NULL) {
            memset(cfg, 0, sizeof(*cfg));
        }
        return rv;
    }
    /* f itself stays in the arena until the caller resets it. */
    return 0;
}

int codec_frame_decode(struct codec_arena *arena, const void *data, size_t len,
                       struct codec_frame *out, char *errmsg)
{
    struct codec_gossip gossip;
    int rv = codec_frame_decode_any(arena, data, len, out, &gossip, NULL,
                                    errmsg);

    if (rv == 0 && out->body == CODEC_BODY_GOSSIP) {
        memset(out, 0, sizeof(*out));
        return fail(CODEC_E_MALFORMED, errmsg,
                    "a gossip frame where a Raft frame or Hello belongs");
    }
    assert(rv != 0 || out->body == CODEC_BODY_RAFT ||
           out->body == CODEC_BODY_HELLO || out->body == CODEC_BODY_COMMAND ||
           out->body == CODEC_BODY_REBALANCE ||
           out->body == CODEC_BODY_FORWARD);
    return rv;
}

/* ------------------------------------------------------------------------
 * Splitter
 * --------------------------------------------------------------------- */

/* The byte-level work is proto/frame.c's generic splitter; this wrapper
 * maps its errors onto CODEC_E_* and its frames onto struct raft_buf. */
_Static_assert(CODEC_PREFIX_BYTES == PROTO_FRAME_PREFIX_BYTES,
               "the codec frames like every Tandem stream");
_Static_assert(CODEC_FRAME_BYTES_LIMIT == PROTO_FRAME_BYTES_LIMIT,
               "the codec's frame limit is the generic one");
_Static_assert(CODEC_ERRMSG_SIZE == PROTO_ERRMSG_SIZE,
               "splitter messages are copied whole");

void codec_splitter_init(struct codec_splitter *s, size_t frame_bytes_max)
{
    assert(s != NULL);
    assert(frame_bytes_max >= 1);
    assert(frame_bytes_max <= CODEC_FRAME_BYTES_LIMIT);
    memset(s, 0, sizeof(*s));
    proto_frame_splitter_init(&s->frames, frame_bytes_max);
}

void codec_splitter_close(struct codec_splitter *s)
{
    assert(s != NULL);
    proto_frame_splitter_close(&s->frames);
}

int codec_splitter_feed(struct codec_splitter *s, const void *data, size_t len,
                        size_t *consumed, struct raft_buf *frame)
{
    struct proto_frame f;
    int rv;

    assert(s != NULL);
    assert(consumed != NULL);
    assert(frame != NULL);
    frame->base = NULL;
    frame->len = 0;
    if (s->error != 0) {
        *consumed = 0;
        return s->error;
    }
    rv = proto_frame_splitter_feed(&s->frames, data, len, consumed, &f);
    if (rv < 0) {
        s->error = rv == PROTO_E_TOO_BIG ? CODEC_E_TOO_BIG : CODEC_E_NOMEM;
        memcpy(s->errmsg, s->frames.errmsg, sizeof(s->errmsg));
        return s->error;
    }
    assert(rv == 0 || rv == 1);
    assert(*consumed <= len);
    frame->base = f.base;
    frame->len = f.len;
    return rv;
}

/* ------------------------------------------------------------------------
 * Gossip
 *
 *   MemberList (Frame field 4, partition 0)
 *   +----------------------------------------------------------------+
 *   | 1 members: repeated GossipMember                               |
 *   | 2 config_version: uint64 (0: none)                             |
 *   | 3 cluster_config: bytes, a packed ClusterConfig, usually empty |
 *   +----------------------------------------------------------------+
 *   GossipMember: 1 node_id, 2 host, 3 port, 4 command_host,
 *                 5 command_port, 6 version, 7 heartbeat
 * --------------------------------------------------------------------- */

/* The rules every gossip member obeys, before encoding and after decoding. */
static int gossip_member_check(raft_id node_id, const char *host, uint64_t port,
                               const char *command_host, uint64_t command_port,
                               const char *version, uint64_t heartbeat,
                               char *errmsg)
{
    if (node_id == 0 || port == 0 || port > UINT16_MAX ||
        command_port > UINT16_MAX || heartbeat == 0) {
        return fail(CODEC_E_INVALID, errmsg,
                    "gossip member %llu with port %llu, command port %llu, "
                    "heartbeat %llu",
                    (unsigned long long)node_id, (unsigned long long)port,
                    (unsigned long long)command_port,
                    (unsigned long long)heartbeat);
    }
    if (host == NULL || command_host == NULL || version == NULL ||
        host[0] == '\0' || strlen(host) > CODEC_GOSSIP_HOST_MAX ||
        strlen(command_host) > CODEC_GOSSIP_HOST_MAX ||
        strlen(version) > CODEC_GOSSIP_VERSION_MAX) {
        return fail(CODEC_E_INVALID, errmsg,
                    "gossip member %llu has a missing or overlong string",
                    (unsigned long long)node_id);
    }
    return 0;
}

/* The rules of an advertised configuration, before encoding and after
 * decoding. */
static int gossip_config_check(uint64_t version, const void *bytes,
                               size_t len, char *errmsg)
{
    if ((len > 0 && (version == 0 || bytes == NULL)) ||
        len > CODEC_GOSSIP_CONFIG_BYTES_MAX) {
        return fail(CODEC_E_INVALID, errmsg,
                    "gossip carries %zu config bytes with version %llu "
                    "(limit %zu bytes, version >= 1)",
                    len, (unsigned long long)version,
                    CODEC_GOSSIP_CONFIG_BYTES_MAX);
    }
    return 0;
}

int codec_gossip_encode(struct codec_arena *arena, const struct codec_gossip *g,
                        size_t frame_bytes_max, struct raft_buf *frame)
{
    return codec_gossip_encode_ex(arena, g, NULL, frame_bytes_max, frame);
}

int codec_gossip_encode_ex(struct codec_arena *arena,
                           const struct codec_gossip *g,
                           const struct codec_gossip_config *cfg,
                           size_t frame_bytes_max, struct raft_buf *frame)
{
    Tandem__Raft__Frame f = TANDEM__RAFT__FRAME__INIT;
    Tandem__Raft__MemberList ml = TANDEM__RAFT__MEMBER_LIST__INIT;
    Tandem__Raft__GossipMember *ms;
    Tandem__Raft__GossipMember **mps;
    int rv;

    assert(arena != NULL);
    assert(g != NULL);
    assert(frame != NULL);
    assert(g->members != NULL || g->count == 0);
    frame->base = NULL;
    frame->len = 0;
    if (g->count > CODEC_GOSSIP_MEMBERS_MAX) {
        return CODEC_E_INVALID;
    }
    if (cfg != NULL) {
        rv = gossip_config_check(cfg->version, cfg->bytes, cfg->len, NULL);
        if (rv != 0) {
            return rv;
        }
        ml.config_version = cfg->version;
        ml.cluster_config.len = cfg->len;
        ml.cluster_config.data = (uint8_t *)(uintptr_t)cfg->bytes;
    }
    for (size_t i = 0; i < g->count; i++) {
        const struct codec_gossip_member *m = &g->members[i];
        rv = gossip_member_check(m->node_id, m->host, m->port, m->command_host,
                                 m->command_port, m->version, m->heartbeat,
                                 NULL);
        if (rv != 0) {
            return rv;
        }
    }
    ms = codec_arena_alloc(arena, g->count * sizeof(*ms));
    mps = codec_arena_alloc(arena, g->count * sizeof(*mps));
    if (ms == NULL || mps == NULL) {
        return CODEC_E_NOMEM;
    }
    for (size_t i = 0; i < g->count; i++) {
        const struct codec_gossip_member *m = &g->members[i];
        tandem__raft__gossip_member__init(&ms[i]);
        ms[i].node_id = m->node_id;
        ms[i].host = (char *)(uintptr_t)m->host;
        ms[i].port = m->port;
        ms[i].command_host = (char *)(uintptr_t)m->command_host;
        ms[i].command_port = m->command_port;
        ms[i].version = (char *)(uintptr_t)m->version;
        ms[i].heartbeat = m->heartbeat;
        mps[i] = &ms[i];
    }
    ml.n_members = g->count;
    ml.members = mps;
    f.partition = 0;
    f.body_case = TANDEM__RAFT__FRAME__BODY_MEMBERS;
    f.members = &ml;
    return frame_pack(arena, &f, frame_bytes_max, frame);
}

int codec_gossip_decode(struct codec_arena *arena, const void *data, size_t len,
                        struct codec_gossip *out, char *errmsg)
{
    return codec_gossip_decode_ex(arena, data, len, out, NULL, errmsg);
}

static int decode_gossip(struct codec_arena *arena,
                         const Tandem__Raft__Frame *f, struct codec_gossip *out,
                         struct codec_gossip_config *cfg, char *errmsg)
{
    struct codec_gossip_member *ms;
    int rv;

    assert(f->body_case == TANDEM__RAFT__FRAME__BODY_MEMBERS);
    if (f->partition != 0) {
        return fail(CODEC_E_MALFORMED, errmsg,
                    "gossip frame names partition %u", f->partition);
    }
    if (f->members->n_members > CODEC_GOSSIP_MEMBERS_MAX) {
        return fail(CODEC_E_MALFORMED, errmsg,
                    "gossip of %zu members, more than %u",
                    f->members->n_members, CODEC_GOSSIP_MEMBERS_MAX);
    }
    if (gossip_config_check(f->members->config_version,
                            f->members->cluster_config.data,
                            f->members->cluster_config.len, errmsg) != 0) {
        return CODEC_E_MALFORMED;
    }
    ms = codec_arena_alloc(arena, f->members->n_members * sizeof(*ms));
    if (ms == NULL) {
        return fail(CODEC_E_NOMEM, errmsg, "no arena memory for gossip");
    }
    for (size_t i = 0; i < f->members->n_members; i++) {
        const Tandem__Raft__GossipMember *in = f->members->members[i];
        assert(in != NULL);
        rv = gossip_member_check(in->node_id, in->host, in->port,
                                 in->command_host, in->command_port,
                                 in->version, in->heartbeat, errmsg);
        if (rv != 0) {
            return CODEC_E_MALFORMED;
        }
        ms[i].node_id = in->node_id;
        ms[i].host = in->host;
        ms[i].port = (uint16_t)in->port;
        ms[i].command_host = in->command_host;
        ms[i].command_port = (uint16_t)in->command_port;
        ms[i].version = in->version;
        ms[i].heartbeat = in->heartbeat;
    }
    out->members = ms;
    out->count = f->members->n_members;
    if (cfg != NULL) {
        cfg->version = f->members->config_version;
        cfg->len = f->members->cluster_config.len;
        cfg->bytes = cfg->len > 0 ? f->members->cluster_config.data : NULL;
    }
    return 0;
}

int codec_gossip_decode_ex(struct codec_arena *arena, const void *data,
                           size_t len, struct codec_gossip *out,
                           struct codec_gossip_config *cfg, char *errmsg)
{
    struct codec_frame frame;
    int rv = codec_frame_decode_any(arena, data, len, &frame, out, cfg,
                                    errmsg);

    if (rv == 0 && frame.body != CODEC_BODY_GOSSIP) {
        memset(out, 0, sizeof(*out));
        if (cfg != NULL) {
            memset(cfg, 0, sizeof(*cfg));
        }
        return fail(CODEC_E_MALFORMED, errmsg,
                    "not a gossip frame (body %u, partition %u)",
                    (unsigned)frame.body, frame.partition);
    }
    return rv;
}
