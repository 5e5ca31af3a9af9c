/* fuzz_command.c: fuzz target for proto/frame.c on the command protocol
 * (gateway <-> broker, proto/command.proto).
 *
 * Input byte 0: bits 0-3 pick the chunk size the stream is fed in (0 =
 * all at once), bits 4-5 the frame limit (16 B, 256 B, 4 KiB, 4 MiB).
 * The rest is a byte stream from a peer, cut into frames by a
 * proto_frame_splitter. Every frame is unpacked both as a Response (what
 * the gateway reads) and as a Request (what a broker reads). Whatever
 * unpacks must pass the checks, re-pack to a frame of the same length and
 * unpack again to a message that re-packs to identical bytes. Splitter
 * errors must be sticky and explained. Any crash, sanitizer report or
 * failed check aborts. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/proto.h"

static void fuzz_check(int cond)
{
    if (!cond) {
        abort();
    }
}

/* Packs m, unpacks it with unpack, packs again: same bytes. */
static void fuzz_repack(const ProtobufCMessage *m, size_t limit)
{
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    ProtobufCMessage *again;
    struct proto_frame body;

    if (proto_frame_pack_alloc(m, limit, &a, &alen) != 0) {
        return; /* unknown fields may have grown past the limit: fine */
    }
    fuzz_check(proto_frame_body(a, alen, &body) == 0);
    again = protobuf_c_message_unpack(m->descriptor, NULL, body.len,
                                      body.base);
    fuzz_check(again != NULL);
    fuzz_check(proto_frame_pack_alloc(again, PROTO_FRAME_BYTES_LIMIT, &b,
                                      &blen) == 0);
    fuzz_check(alen == blen);
    fuzz_check(memcmp(a, b, alen) == 0);
    protobuf_c_message_free_unpacked(again, NULL);
    free(a);
    free(b);
}

static void fuzz_frame(const uint8_t *frame, size_t len, size_t limit)
{
    Tandem__Command__Response *resp = NULL;
    Tandem__Command__Request *req = NULL;
    char errmsg[PROTO_ERRMSG_SIZE];

    errmsg[0] = '\0';
    if (proto_command_response_unpack(NULL, frame, len, &resp, errmsg) == 0) {
        fuzz_check(resp != NULL);
        fuzz_check(proto_command_response_check(resp, NULL) == 0);
        fuzz_repack(&resp->base, PROTO_FRAME_BYTES_LIMIT);
        tandem__command__response__free_unpacked(resp, NULL);
    } else {
        fuzz_check(resp == NULL);
        fuzz_check(errmsg[0] != '\0');
    }
    if (proto_command_request_unpack(NULL, frame, len, &req, NULL) == 0) {
        fuzz_check(req != NULL);
        fuzz_check(req->id != 0);
        (void)proto_command_request_check(req, errmsg);
        fuzz_repack(&req->base, limit);
        tandem__command__request__free_unpacked(req, NULL);
    } else {
        fuzz_check(req == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[4] = {16, 256, 4096, (size_t)4 << 20};
    struct proto_frame_splitter s;
    size_t chunk, limit, off = 1;

    if (size < 1) {
        return 0;
    }
    chunk = data[0] & 0x0f;
    limit = limits[(data[0] >> 4) & 3];
    proto_frame_splitter_init(&s, limit);
    while (off < size) {
        size_t n = chunk == 0 || size - off < chunk ? size - off : chunk;
        const uint8_t *p = data + off;
        off += n;
        while (n > 0) {
            struct proto_frame frame;
            size_t used = 0;
            int rv = proto_frame_splitter_feed(&s, p, n, &used, &frame);
            fuzz_check(used <= n);
            if (rv < 0) {
                struct proto_frame again;
                fuzz_check(rv == PROTO_E_TOO_BIG);
                fuzz_check(s.errmsg[0] != '\0');
                fuzz_check(proto_frame_splitter_feed(&s, p, n, &used,
                                                     &again) == rv);
                goto done;
            }
            p += used;
            n -= used;
            if (rv == 1) {
                fuzz_check(frame.len >= PROTO_FRAME_PREFIX_BYTES);
                fuzz_check(frame.len - PROTO_FRAME_PREFIX_BYTES <= limit);
                fuzz_check(proto_frame_prefix_get(frame.base) ==
                           frame.len - PROTO_FRAME_PREFIX_BYTES);
                fuzz_frame(frame.base, frame.len, limit);
            } else {
                fuzz_check(rv == 0);
                fuzz_check(n == 0);
            }
        }
    }
done:
    proto_frame_splitter_close(&s);
    return 0;
}
