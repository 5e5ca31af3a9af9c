/* frame.c: length-prefixed frames of protobuf messages (frame.h).
 *
 * Wire format of one frame, on every Tandem TCP stream:
 *
 *    0       1       2       3       4                              4 + L
 *   +-------+-------+-------+-------+---------------------------//--+
 *   | L: body length, uint32, big-  | body: one protobuf-packed      |
 *   |    endian, <= frame_bytes_max |       message, L bytes         |
 *   +-------+-------+-------+-------+---------------------------//--+
 *
 * The message type is implied by the stream (tandem.raft.Frame between
 * brokers, tandem.command.Request from gateway to broker and
 * tandem.command.Response back).
 *
 * Sending packs a message straight behind its prefix (proto_frame_pack).
 * Receiving runs the splitter: with nothing buffered, a frame that lies
 * whole in the chunk is returned in place; otherwise the prefix is
 * collected in `head`, the frame is assembled in `buf` (allocated to the
 * announced size, so a peer can make us hold at most one frame of
 * frame_bytes_max) and returned once complete. Command frames are then
 * unpacked with protobuf-c and checked (proto_command_*_unpack), since
 * protobuf-c validates neither oneofs nor enum values.
 */
#include "proto/frame.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(PROTO_FRAME_PREFIX_BYTES == sizeof(uint32_t),
               "the length prefix is a uint32");
_Static_assert(PROTO_FRAME_BYTES_LIMIT <= UINT32_MAX,
               "frame bodies must fit the 32-bit prefix");
_Static_assert(PROTO_COMMAND_FRAME_BYTES_DEFAULT <= PROTO_FRAME_BYTES_LIMIT,
               "default command frame limit within the hard limit");

const char *proto_strerror(int rv)
{
    switch (rv) {
    case 0:
        return "success";
#define PROTO__ERRNO_TEXT(name, value, text)                                   \
    case (value):                                                              \
        return text;
        PROTO_ERRNO_MAP(PROTO__ERRNO_TEXT)
#undef PROTO__ERRNO_TEXT
    default:
        return "unknown error";
    }
}

/* Formats a reason into errmsg (PROTO_ERRMSG_SIZE bytes) unless NULL and
 * returns rv. */
__attribute__((format(printf, 3, 4))) static int
frame_fail(int rv, char *errmsg, const char *fmt, ...)
{
    va_list ap;

    assert(rv < 0);
    if (errmsg != NULL) {
        va_start(ap, fmt);
        vsnprintf(errmsg, PROTO_ERRMSG_SIZE, fmt, ap);
        va_end(ap);
    }
    return rv;
}

/* ------------------------------------------------------------------------
 * Prefix and packing
 * --------------------------------------------------------------------- */

void proto_frame_prefix_put(uint8_t *out, size_t body_len)
{
    assert(out != NULL);
    assert(body_len <= PROTO_FRAME_BYTES_LIMIT);
    out[0] = (uint8_t)(body_len >> 24);
    out[1] = (uint8_t)(body_len >> 16);
    out[2] = (uint8_t)(body_len >> 8);
    out[3] = (uint8_t)body_len;
}

uint32_t proto_frame_prefix_get(const uint8_t *p)
{
    assert(p != NULL);
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

size_t proto_frame_size(const ProtobufCMessage *m)
{
    assert(m != NULL);
    return PROTO_FRAME_PREFIX_BYTES + protobuf_c_message_get_packed_size(m);
}

int proto_frame_pack(const ProtobufCMessage *m, size_t frame_bytes_max,
                     uint8_t *buf, size_t cap, size_t *len)
{
    size_t body;
    size_t written;

    assert(m != NULL);
    assert(len != NULL);
    assert(buf != NULL || cap == 0);
    assert(frame_bytes_max <= PROTO_FRAME_BYTES_LIMIT);
    *len = 0;
    body = protobuf_c_message_get_packed_size(m);
    if (body > frame_bytes_max) {
        return PROTO_E_TOO_BIG;
    }
    if (cap < PROTO_FRAME_PREFIX_BYTES + body) {
        return PROTO_E_INVALID;
    }
    proto_frame_prefix_put(buf, body);
    written = protobuf_c_message_pack(m, buf + PROTO_FRAME_PREFIX_BYTES);
    assert(written == body);
    *len = PROTO_FRAME_PREFIX_BYTES + written;
    return 0;
}

int proto_frame_pack_alloc(const ProtobufCMessage *m, size_t frame_bytes_max,
                           uint8_t **out, size_t *len)
{
    size_t size;
    uint8_t *buf;
    int rv;

    assert(out != NULL);
    assert(len != NULL);
    *out = NULL;
    *len = 0;
    size = proto_frame_size(m);
    if (size - PROTO_FRAME_PREFIX_BYTES > frame_bytes_max) {
        return PROTO_E_TOO_BIG;
    }
    buf = malloc(size);
    if (buf == NULL) {
        /* UNTESTED: malloc failure */
        return PROTO_E_NOMEM;
    }
    rv = proto_frame_pack(m, frame_bytes_max, buf, size, len);
    assert(rv == 0);
    assert(*len == size);
    *out = buf;
    return rv;
}

int proto_frame_body(const void *frame, size_t len, struct proto_frame *body)
{
    const uint8_t *p = frame;
    uint32_t body_len;

    assert(body != NULL);
    assert(frame != NULL || len == 0);
    body->base = NULL;
    body->len = 0;
    if (len < PROTO_FRAME_PREFIX_BYTES) {
        return PROTO_E_MALFORMED;
    }
    body_len = proto_frame_prefix_get(p);
    if ((size_t)body_len != len - PROTO_FRAME_PREFIX_BYTES) {
        return PROTO_E_MALFORMED;
    }
    body->base = p + PROTO_FRAME_PREFIX_BYTES;
    body->len = body_len;
    return 0;
}

/* ------------------------------------------------------------------------
 * Splitter
 * --------------------------------------------------------------------- */

/* A buffer above this size is released after its frame was handed out, so
 * that an idle connection does not pin a multi-megabyte buffer. */
#define SPLITTER_KEEP_BYTES ((size_t)64 << 10)

void proto_frame_splitter_init(struct proto_frame_splitter *s,
                               size_t frame_bytes_max)
{
    assert(s != NULL);
    assert(frame_bytes_max >= 1);
    assert(frame_bytes_max <= PROTO_FRAME_BYTES_LIMIT);
    memset(s, 0, sizeof(*s));
    s->frame_bytes_max = frame_bytes_max;
}

void proto_frame_splitter_close(struct proto_frame_splitter *s)
{
    assert(s != NULL);
    free(s->buf);
    s->buf = NULL;
    s->buf_cap = 0;
    s->have = 0;
    s->need = 0;
    s->ready = false;
}

__attribute__((format(printf, 3, 4))) static int
splitter_fail(struct proto_frame_splitter *s, int rv, const char *fmt, ...)
{
    va_list ap;

    assert(rv < 0);
    s->error = rv;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
    va_end(ap);
    return rv;
}

/* Starts the next frame after the previous one was handed out. */
static void splitter_rewind(struct proto_frame_splitter *s)
{
    assert(s->ready);
    assert(s->have == s->need);
    s->have = 0;
    s->need = 0;
    s->ready = false;
    if (s->buf_cap > SPLITTER_KEEP_BYTES) {
        free(s->buf);
        s->buf = NULL;
        s->buf_cap = 0;
    }
}

/* Reads a complete length prefix and prepares the buffer for the frame. */
static int splitter_start(struct proto_frame_splitter *s)
{
    uint32_t body = proto_frame_prefix_get(s->head);

    assert(s->have == PROTO_FRAME_PREFIX_BYTES);
    assert(s->need == 0);
    if (body > s->frame_bytes_max) {
        return splitter_fail(s, PROTO_E_TOO_BIG,
                             "frame length %u exceeds the limit of %zu bytes",
                             (unsigned)body, s->frame_bytes_max);
    }
    s->need = PROTO_FRAME_PREFIX_BYTES + (size_t)body;
    if (s->buf_cap < s->need) {
        free(s->buf);
        s->buf_cap = 0;
        s->buf = malloc(s->need);
        if (s->buf == NULL) {
            /* UNTESTED: malloc failure */
            return splitter_fail(s, PROTO_E_NOMEM,
                                 "cannot allocate %zu bytes for a frame",
                                 s->need);
        }
        s->buf_cap = s->need;
    }
    memcpy(s->buf, s->head, PROTO_FRAME_PREFIX_BYTES);
    return 0;
}

int proto_frame_splitter_feed(struct proto_frame_splitter *s,
                              const void *data, size_t len, size_t *consumed,
                              struct proto_frame *frame)
{
    const uint8_t *p = data;
    size_t used = 0;
    size_t take;
    int rv;

    assert(s != NULL);
    assert(consumed != NULL);
    assert(frame != NULL);
    assert(data != NULL || len == 0);
    *consumed = 0;
    frame->base = NULL;
    frame->len = 0;
    if (s->error != 0) {
        return s->error;
    }
    if (s->ready) {
        splitter_rewind(s);
    }

    /* Fast path: nothing buffered and a whole frame at the front of data. */
    if (s->have == 0 && len >= PROTO_FRAME_PREFIX_BYTES) {
        uint32_t body = proto_frame_prefix_get(p);
        if (body > s->frame_bytes_max) {
            return splitter_fail(
                s, PROTO_E_TOO_BIG,
                "frame length %u exceeds the limit of %zu bytes",
                (unsigned)body, s->frame_bytes_max);
        }
        if (len - PROTO_FRAME_PREFIX_BYTES >= body) {
            frame->base = p;
            frame->len = PROTO_FRAME_PREFIX_BYTES + (size_t)body;
            *consumed = frame->len;
            return 1;
        }
    }

    /* Slow path: assemble the frame in s->buf. */
    while (used < len) {
        if (s->need == 0) {
            take = PROTO_FRAME_PREFIX_BYTES - s->have;
            take = take < len - used ? take : len - used;
            memcpy(s->head + s->have, p + used, take);
            s->have += take;
            used += take;
            if (s->have < PROTO_FRAME_PREFIX_BYTES) {
                break;
            }
            rv = splitter_start(s);
            if (rv != 0) {
                *consumed = used;
                return rv;
            }
        }
        assert(s->need >= PROTO_FRAME_PREFIX_BYTES);
        assert(s->have <= s->need);
        take = s->need - s->have;
        take = take < len - used ? take : len - used;
        if (take > 0) {
            memcpy(s->buf + s->have, p + used, take);
            s->have += take;
            used += take;
        }
        if (s->have == s->need) {
            s->ready = true;
            frame->base = s->buf;
            frame->len = s->need;
            *consumed = used;
            return 1;
        }
    }
    assert(used == len);
    *consumed = used;
    return 0;
}

/* ------------------------------------------------------------------------
 * Command frames
 * --------------------------------------------------------------------- */

/* The message of a Request's command body, NULL when the body is unset
 * or unknown here (a newer gateway's command). */
static const ProtobufCMessage *
request_body(const Tandem__Command__Request *req)
{
    switch (req->body_case) {
    case TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE:
        return (const ProtobufCMessage *)req->publish_message;
    case TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE:
        return (const ProtobufCMessage *)req->deploy_resource;
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE:
        return (const ProtobufCMessage *)req->create_process_instance;
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT:
        return (const ProtobufCMessage *)
            req->create_process_instance_with_result;
    case TANDEM__COMMAND__REQUEST__BODY_CANCEL_PROCESS_INSTANCE:
        return (const ProtobufCMessage *)req->cancel_process_instance;
    case TANDEM__COMMAND__REQUEST__BODY_SET_VARIABLES:
        return (const ProtobufCMessage *)req->set_variables;
    case TANDEM__COMMAND__REQUEST__BODY_ACTIVATE_JOBS:
        return (const ProtobufCMessage *)req->activate_jobs;
    case TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB:
        return (const ProtobufCMessage *)req->complete_job;
    case TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB:
        return (const ProtobufCMessage *)req->fail_job;
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_RETRIES:
        return (const ProtobufCMessage *)req->update_job_retries;
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_TIMEOUT:
        return (const ProtobufCMessage *)req->update_job_timeout;
    case TANDEM__COMMAND__REQUEST__BODY_THROW_ERROR:
        return (const ProtobufCMessage *)req->throw_error;
    case TANDEM__COMMAND__REQUEST__BODY_RESOLVE_INCIDENT:
        return (const ProtobufCMessage *)req->resolve_incident;
    case TANDEM__COMMAND__REQUEST__BODY_AWAIT_JOBS:
        return (const ProtobufCMessage *)req->await_jobs;
    case TANDEM__COMMAND__REQUEST__BODY_DISTRIBUTE:
        return (const ProtobufCMessage *)req->distribute;
    default:
        return NULL;
    }
}

int proto_command_request_check(const Tandem__Command__Request *req,
                                char *errmsg)
{
    const ProtobufCMessage *body;

    assert(req != NULL);
    if (req->id == 0) {
        return frame_fail(PROTO_E_INVALID, errmsg, "request id is 0");
    }
    if (req->body_case == TANDEM__COMMAND__REQUEST__BODY_TOPOLOGY) {
        if (req->topology == NULL) {
            return frame_fail(PROTO_E_INVALID, errmsg, "topology body unset");
        }
        return 0;
    }
    body = request_body(req);
    if (body == NULL) {
        /* protobuf-c keeps an unknown oneof member (a newer gateway's
         * command) among the unknown fields: the body reads as unset. */
        return frame_fail(PROTO_E_INVALID, errmsg,
                          req->body_case ==
                                  TANDEM__COMMAND__REQUEST__BODY__NOT_SET
                              ? "request has no body known here"
                              : "command body %d unset",
                          (int)req->body_case);
    }
    if (req->partition_id == 0) {
        return frame_fail(PROTO_E_INVALID, errmsg,
                          "command request without partition");
    }
    switch (req->body_case) {
    case TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE:
        if (req->partition_id != 1) {
            return frame_fail(PROTO_E_INVALID, errmsg,
                              "deploy_resource sent to partition %u, not "
                              "to the deployment partition 1",
                              (unsigned)req->partition_id);
        }
        break;
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT:
        if (req->create_process_instance_with_result->request == NULL) {
            return frame_fail(PROTO_E_INVALID, errmsg,
                              "create_process_instance_with_result without "
                              "its request");
        }
        break;
    case TANDEM__COMMAND__REQUEST__BODY_AWAIT_JOBS:
        if (req->await_jobs->n_types == 0) {
            return frame_fail(PROTO_E_INVALID, errmsg,
                              "await_jobs without types");
        }
        for (size_t i = 0; i < req->await_jobs->n_types; i++) {
            if (req->await_jobs->types[i] == NULL ||
                req->await_jobs->types[i][0] == '\0') {
                return frame_fail(PROTO_E_INVALID, errmsg,
                                  "await_jobs type %zu is empty", i);
            }
        }
        break;
    case TANDEM__COMMAND__REQUEST__BODY_DISTRIBUTE:
        if (req->distribute->source_partition_id == 0 ||
            req->distribute->source_partition_id == req->partition_id) {
            return frame_fail(PROTO_E_INVALID, errmsg,
                              "distribute from partition %u to %u",
                              (unsigned)req->distribute->source_partition_id,
                              (unsigned)req->partition_id);
        }
        if (req->distribute->record.len == 0) {
            return frame_fail(PROTO_E_INVALID, errmsg,
                              "distribute without a record");
        }
        break;
    default:
        break;
    }
    return 0;
}

static int topology_check(const Tandem__Command__BrokerTopology *t,
                          char *errmsg)
{
    size_t i;

    for (i = 0; i < t->n_members; i++) {
        const Tandem__Command__Member *m = t->members[i];
        if (m == NULL || m->command_host == NULL) {
            return frame_fail(PROTO_E_INVALID, errmsg, "member %zu unset", i);
        }
        if (m->command_port == 0 || m->command_port > 65535) {
            return frame_fail(PROTO_E_INVALID, errmsg,
                              "member %u has command port %u",
                              (unsigned)m->node_id,
                              (unsigned)m->command_port);
        }
    }
    for (i = 0; i < t->n_partitions; i++) {
        const Tandem__Command__PartitionState *p = t->partitions[i];
        if (p == NULL || p->partition_id == 0) {
            return frame_fail(PROTO_E_INVALID, errmsg,
                              "partition entry %zu without id", i);
        }
        if ((int)p->role < TANDEM__COMMAND__ROLE__ROLE_UNSPECIFIED ||
            (int)p->role > TANDEM__COMMAND__ROLE__INACTIVE) {
            return frame_fail(PROTO_E_INVALID, errmsg,
                              "partition %u has role %d",
                              (unsigned)p->partition_id, (int)p->role);
        }
        if ((int)p->health < TANDEM__COMMAND__HEALTH__HEALTH_UNSPECIFIED ||
            (int)p->health > TANDEM__COMMAND__HEALTH__DEAD) {
            return frame_fail(PROTO_E_INVALID, errmsg,
                              "partition %u has health %d",
                              (unsigned)p->partition_id, (int)p->health);
        }
    }
    return 0;
}

int proto_command_response_check(const Tandem__Command__Response *resp,
                                 char *errmsg)
{
    assert(resp != NULL);
    if (resp->id == 0) {
        return frame_fail(PROTO_E_INVALID, errmsg, "response id is 0");
    }
    switch (resp->body_case) {
    case TANDEM__COMMAND__RESPONSE__BODY_TOPOLOGY:
        if (resp->topology == NULL) {
            return frame_fail(PROTO_E_INVALID, errmsg, "topology body unset");
        }
        return topology_check(resp->topology, errmsg);
    case TANDEM__COMMAND__RESPONSE__BODY_PUBLISH_MESSAGE:
    case TANDEM__COMMAND__RESPONSE__BODY_DEPLOY_RESOURCE:
    case TANDEM__COMMAND__RESPONSE__BODY_CREATE_PROCESS_INSTANCE:
    case TANDEM__COMMAND__RESPONSE__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT:
    case TANDEM__COMMAND__RESPONSE__BODY_CANCEL_PROCESS_INSTANCE:
    case TANDEM__COMMAND__RESPONSE__BODY_SET_VARIABLES:
    case TANDEM__COMMAND__RESPONSE__BODY_ACTIVATE_JOBS:
    case TANDEM__COMMAND__RESPONSE__BODY_COMPLETE_JOB:
    case TANDEM__COMMAND__RESPONSE__BODY_FAIL_JOB:
    case TANDEM__COMMAND__RESPONSE__BODY_UPDATE_JOB_RETRIES:
    case TANDEM__COMMAND__RESPONSE__BODY_UPDATE_JOB_TIMEOUT:
    case TANDEM__COMMAND__RESPONSE__BODY_THROW_ERROR:
    case TANDEM__COMMAND__RESPONSE__BODY_RESOLVE_INCIDENT:
    case TANDEM__COMMAND__RESPONSE__BODY_AWAIT_JOBS:
    case TANDEM__COMMAND__RESPONSE__BODY_DISTRIBUTE:
        /* All members of the oneof are message pointers at one place. */
        if (resp->publish_message == NULL) {
            return frame_fail(PROTO_E_INVALID, errmsg, "body %d unset",
                              (int)resp->body_case);
        }
        return 0;
    case TANDEM__COMMAND__RESPONSE__BODY_ERROR:
        if (resp->error == NULL) {
            return frame_fail(PROTO_E_INVALID, errmsg, "error body unset");
        }
        if (resp->error->code == TANDEM__COMMAND__CODE__CODE_UNSPECIFIED) {
            return frame_fail(PROTO_E_INVALID, errmsg,
                              "error without code");
        }
        return 0;
    case TANDEM__COMMAND__RESPONSE__BODY__NOT_SET:
        return frame_fail(PROTO_E_INVALID, errmsg, "response has no body");
    default:
        /* A newer broker's response body: left to the receiver. */
        return 0;
    }
}

int proto_command_request_pack(const Tandem__Command__Request *req,
                               size_t frame_bytes_max, uint8_t **out,
                               size_t *len)
{
    assert(out != NULL);
    assert(len != NULL);
    *out = NULL;
    *len = 0;
    if (proto_command_request_check(req, NULL) != 0) {
        return PROTO_E_INVALID;
    }
    return proto_frame_pack_alloc(&req->base, frame_bytes_max, out, len);
}

int proto_command_response_pack(const Tandem__Command__Response *resp,
                                size_t frame_bytes_max, uint8_t **out,
                                size_t *len)
{
    assert(out != NULL);
    assert(len != NULL);
    *out = NULL;
    *len = 0;
    if (proto_command_response_check(resp, NULL) != 0) {
        return PROTO_E_INVALID;
    }
    return proto_frame_pack_alloc(&resp->base, frame_bytes_max, out, len);
}

int proto_command_request_unpack(ProtobufCAllocator *allocator,
                                 const void *frame, size_t len,
                                 Tandem__Command__Request **out, char *errmsg)
{
    struct proto_frame body;
    Tandem__Command__Request *req;

    assert(out != NULL);
    *out = NULL;
    if (proto_frame_body(frame, len, &body) != 0) {
        return frame_fail(PROTO_E_MALFORMED, errmsg,
                          "length prefix does not match %zu bytes", len);
    }
    req = tandem__command__request__unpack(allocator, body.len, body.base);
    if (req == NULL) {
        return frame_fail(PROTO_E_MALFORMED, errmsg,
                          "not a tandem.command.Request");
    }
    if (req->id == 0) {
        tandem__command__request__free_unpacked(req, allocator);
        return frame_fail(PROTO_E_MALFORMED, errmsg, "request id is 0");
    }
    *out = req;
    return 0;
}

int proto_command_response_unpack(ProtobufCAllocator *allocator,
                                  const void *frame, size_t len,
                                  Tandem__Command__Response **out,
                                  char *errmsg)
{
    struct proto_frame body;
    Tandem__Command__Response *resp;

    assert(out != NULL);
    *out = NULL;
    if (proto_frame_body(frame, len, &body) != 0) {
        return frame_fail(PROTO_E_MALFORMED, errmsg,
                          "length prefix does not match %zu bytes", len);
    }
    resp = tandem__command__response__unpack(allocator, body.len, body.base);
    if (resp == NULL) {
        return frame_fail(PROTO_E_MALFORMED, errmsg,
                          "not a tandem.command.Response");
    }
    if (proto_command_response_check(resp, errmsg) != 0) {
        tandem__command__response__free_unpacked(resp, allocator);
        return PROTO_E_MALFORMED;
    }
    *out = resp;
    return 0;
}
