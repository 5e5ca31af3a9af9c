/* frame.h: length-prefixed framing of protobuf messages on a byte stream,
 * shared by every Tandem TCP protocol (broker-to-broker raft frames,
 * gateway-to-broker command frames).
 *
 * A stream is a sequence of frames; each is a 4-byte big-endian body
 * length L followed by L bytes of one packed protobuf message (the format
 * is drawn in frame.c). This header offers:
 *
 *   sending:   message --proto_frame_pack()--> prefix + body in a buffer
 *              (caller's buffer, or malloc()ed by proto_frame_pack_alloc())
 *   receiving: socket --chunks--> proto_frame_splitter_feed() --> one
 *              whole frame (prefix included) --proto_frame_body()-->
 *              the packed message --<type>__unpack()-->
 *   commands:  typed helpers for tandem.command.Request/Response
 *              (proto/command.proto) that pack and that unpack + validate.
 *
 * Nothing here does I/O or keeps global state; objects are single-threaded
 * and caller-allocated. Errors are negative PROTO_E_* codes; a splitter
 * error is sticky and means the connection must be closed, because the
 * stream can no longer be framed.
 */
#ifndef TANDEM_PROTO_FRAME_H
#define TANDEM_PROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "proto/command.pb-c.h"

/* ------------------------------------------------------------------------
 * Limits
 * --------------------------------------------------------------------- */

/* Bytes of the length prefix in front of every frame. */
#define PROTO_FRAME_PREFIX_BYTES 4u

/* Hard upper bound for any frame body (the prefix is 32-bit; 1 GiB keeps
 * sizes far from overflow). */
#define PROTO_FRAME_BYTES_LIMIT ((size_t)1 << 30)

/* Default body limit of a command frame. Zeebe's default maxMessageSize
 * is 4 MB; a PublishMessage carries its variables as JSON. */
#define PROTO_COMMAND_FRAME_BYTES_DEFAULT ((size_t)4 << 20)

/* Size of the error message buffers (including the NUL). */
#define PROTO_ERRMSG_SIZE 128

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

#define PROTO_ERRNO_MAP(X)                                                     \
    X(NOMEM, -1, "out of memory")                                              \
    X(INVALID, -2, "invalid argument")                                         \
    X(TOO_BIG, -3, "frame exceeds the size limit")                             \
    X(MALFORMED, -4, "malformed frame")

enum proto_errno {
#define PROTO__ERRNO_ENUM(name, value, text) PROTO_E_##name = (value),
    PROTO_ERRNO_MAP(PROTO__ERRNO_ENUM)
#undef PROTO__ERRNO_ENUM
};

/* Returns a static, human-readable string for a PROTO_E_* code (or 0).
 * Never NULL. */
const char *proto_strerror(int rv);

/* ------------------------------------------------------------------------
 * Prefix and packing
 * --------------------------------------------------------------------- */

/* A view of bytes; never owns them. */
struct proto_frame {
    const uint8_t *base;
    size_t len;
};

/* Writes the big-endian prefix for a body of body_len bytes to out[0..4).
 * body_len must be <= PROTO_FRAME_BYTES_LIMIT. */
void proto_frame_prefix_put(uint8_t *out, size_t body_len);

/* Reads the body length from a prefix at p[0..4). */
uint32_t proto_frame_prefix_get(const uint8_t *p);

/* Returns the bytes of the frame for message m: prefix + packed size. */
size_t proto_frame_size(const ProtobufCMessage *m);

/* Packs m behind its prefix into buf[0..cap). On success *len is the frame
 * length. Returns 0, PROTO_E_TOO_BIG (body > frame_bytes_max, which must
 * be <= PROTO_FRAME_BYTES_LIMIT) or PROTO_E_INVALID (cap too small).
 * m is borrowed for the call. */
int proto_frame_pack(const ProtobufCMessage *m, size_t frame_bytes_max,
                     uint8_t *buf, size_t cap, size_t *len);

/* Like proto_frame_pack() into a malloc()ed buffer of exactly the frame's
 * size; on success the caller owns *out and frees it with free(). Returns
 * 0, PROTO_E_TOO_BIG or PROTO_E_NOMEM; on failure *out is NULL. */
int proto_frame_pack_alloc(const ProtobufCMessage *m, size_t frame_bytes_max,
                           uint8_t **out, size_t *len);

/* Checks that frame[0..len) is one whole frame whose prefix matches len
 * and points *body at its body. Returns 0 or PROTO_E_MALFORMED. */
int proto_frame_body(const void *frame, size_t len, struct proto_frame *body);

/* ------------------------------------------------------------------------
 * Splitter: byte stream -> frames
 * --------------------------------------------------------------------- */

/* Cuts a byte stream into frames. A frame that arrives whole inside one
 * chunk is returned in place (no copy); only a frame split across chunks
 * is assembled in an internal buffer, which never grows beyond
 * PROTO_FRAME_PREFIX_BYTES + frame_bytes_max. Fields are private. */
struct proto_frame_splitter {
    size_t frame_bytes_max;                 /* largest accepted prefix */
    uint8_t head[PROTO_FRAME_PREFIX_BYTES]; /* partial prefix */
    uint8_t *buf;                           /* the frame being assembled */
    size_t buf_cap;                         /* bytes allocated at buf */
    size_t have;  /* bytes of the current frame received */
    size_t need;  /* whole frame length once the prefix is known, else 0 */
    bool ready;   /* buf holds a frame returned by the last feed */
    int error;    /* sticky error, 0 if none */
    char errmsg[PROTO_ERRMSG_SIZE]; /* reason of error */
};

/* Initialises a splitter accepting bodies of 1..frame_bytes_max bytes
 * (frame_bytes_max in 1..PROTO_FRAME_BYTES_LIMIT). Allocates nothing. */
void proto_frame_splitter_init(struct proto_frame_splitter *s,
                               size_t frame_bytes_max);

/* Frees the splitter's buffer. It may be initialised again afterwards. */
void proto_frame_splitter_close(struct proto_frame_splitter *s);

/* Consumes bytes from data[0..len) until one frame is complete or the
 * bytes run out; *consumed says how many were used. Returns:
 *   1  a frame is complete: *frame is the whole frame (prefix included),
 *      pointing into data or into the splitter. It stays valid until the
 *      next call on the splitter (and, if in data, while data is). Call
 *      again with the unconsumed rest.
 *   0  all len bytes consumed, no complete frame yet; *frame is empty.
 *   PROTO_E_TOO_BIG  a length prefix exceeds frame_bytes_max.
 *   PROTO_E_NOMEM    the frame buffer could not be allocated.
 * Errors are sticky (every later call returns the same code) and
 * s->errmsg says why. A zero-length body is a valid (empty) frame. */
int proto_frame_splitter_feed(struct proto_frame_splitter *s,
                              const void *data, size_t len, size_t *consumed,
                              struct proto_frame *frame);

/* ------------------------------------------------------------------------
 * Command frames (tandem.command, proto/command.proto)
 * --------------------------------------------------------------------- */

/* Packs a Request / Response into a malloc()ed frame (see
 * proto_frame_pack_alloc()) after checking it as the unpack helpers do.
 * Returns 0, PROTO_E_INVALID (the check fails), PROTO_E_TOO_BIG or
 * PROTO_E_NOMEM. */
int proto_command_request_pack(const Tandem__Command__Request *req,
                               size_t frame_bytes_max, uint8_t **out,
                               size_t *len);
int proto_command_response_pack(const Tandem__Command__Response *resp,
                                size_t frame_bytes_max, uint8_t **out,
                                size_t *len);

/* Checks the structure of a Request: id != 0; a known body is set; a
 * command body names a partition >= 1; deploy_resource goes to partition
 * 1; create_process_instance_with_result carries its request; await_jobs
 * names one or more non-empty types; distribute names a source partition
 * other than the target and carries a record. Returns 0 or
 * PROTO_E_INVALID with a reason in errmsg (PROTO_ERRMSG_SIZE bytes, may be
 * NULL). */
int proto_command_request_check(const Tandem__Command__Request *req,
                                char *errmsg);

/* Checks the structure of a Response: id != 0; a body is set; an error
 * carries a code != CODE_UNSPECIFIED; a topology has node_id-consistent
 * fields (partition ids >= 1, roles and health within their enums).
 * Unknown error codes are accepted (a newer broker); the receiver treats
 * them as INTERNAL. Returns 0 or PROTO_E_INVALID with a reason. */
int proto_command_response_check(const Tandem__Command__Response *resp,
                                 char *errmsg);

/* Unpacks one whole frame (prefix included, as the splitter returns it)
 * into a Request / Response. allocator may be NULL (malloc). On success
 * *out is owned by the caller: free it with
 * tandem__command__request__free_unpacked(*out, allocator) (resp. the
 * response variant). Returns 0 or PROTO_E_MALFORMED (bad prefix, not a
 * valid message, id 0) with a reason in errmsg (may be NULL); protobuf-c
 * does not tell allocation failures apart, so they are reported as
 * MALFORMED too. On failure *out is NULL and the peer is broken: close
 * the connection.
 *
 * A Response is fully checked (proto_command_response_check()). A Request
 * is checked for its id only, so that the broker can still answer it:
 * it runs proto_command_request_check() itself and answers a failing
 * request with Error{INVALID_ARGUMENT} (or UNIMPLEMENTED when the body is
 * unset: a newer gateway's command). */
int proto_command_request_unpack(ProtobufCAllocator *allocator,
                                 const void *frame, size_t len,
                                 Tandem__Command__Request **out, char *errmsg);
int proto_command_response_unpack(ProtobufCAllocator *allocator,
                                  const void *frame, size_t len,
                                  Tandem__Command__Response **out,
                                  char *errmsg);

#endif /* TANDEM_PROTO_FRAME_H */
