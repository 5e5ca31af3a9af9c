/* fuzz_grpc.c: fuzz target for the gRPC server's connection input: the
 * bytes are fed, as one client's side of an HTTP/2 connection, into a
 * socket-less server connection (grpc__conn_open_detached and
 * grpc__conn_feed), so they go through nghttp2's server session and all
 * of grpc_session.c: headers, gRPC framing, protobuf decoding, backend
 * calls (the fake backend answers Topology, PublishMessage; holds
 * CompleteJob until the connection closes, which cancels it), responses
 * and trailers. The output is produced and dropped.
 *
 * Input layout: byte 0 is control: bit 0 set prepends the 24-byte client
 * preface (so mutations need not find it), bits 1..7 pick a split point
 * so input arrives in two reads. Per input: a fresh loop, server and
 * connection; everything is closed and uv_loop_close() must return 0. */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "fuzz.h"
#include "gateway/grpc_server.h"
#include "test_grpc_fake_backend.h"

static const char fuzz_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";


static bool fuzz_closed;

static void fuzz_close_cb(struct grpc_server *srv)
{
    (void)srv;
    fuzz_closed = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uv_loop_t loop;
    struct grpc_fake_backend fake;
    struct grpc_server srv;
    struct grpc_server_options opts;
    struct grpc_conn *conn;
    size_t split;
    int rv;

    if (size == 0) {
        return 0;
    }
    rv = uv_loop_init(&loop);
    assert(rv == 0);
    grpc_fake_backend_init(&fake, &loop);
    grpc_server_options_default(&opts);
    opts.streams_max = 8;
    opts.message_bytes_max = 4096;
    opts.request_bytes_max = 16384;
    opts.stream_queue_bytes_max = 8192;
    rv = grpc_server_init(&loop, &srv, &opts, &fake.base);
    assert(rv == 0);
    rv = grpc__conn_open_detached(&srv, &conn);
    assert(rv == 0);

    if (data[0] & 1u) {
        rv = grpc__conn_feed(conn, (const uint8_t *)fuzz_preface,
                             sizeof(fuzz_preface) - 1);
        assert(rv == 0);
    }
    split = (size_t)(data[0] >> 1);
    data++;
    size--;
    if (split > size) {
        split = size;
    }
    rv = grpc__conn_feed(conn, data, split);
    if (rv == 0) {
        /* Held calls get a chance to expire (grpc-timeout of 0). */
        fake.hold = (split & 1u) != 0;
        uv_run(&loop, UV_RUN_NOWAIT);
        rv = grpc__conn_feed(conn, data + split, size - split);
    }
    if (rv == 0) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    grpc__conn_close(conn);
    fuzz_closed = false;
    grpc_server_close(&srv, fuzz_close_cb);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert(fuzz_closed);
    grpc_fake_backend_flush(&fake); /* nothing left: all were cancelled */
    assert(fake.pending_count == 0);
    grpc_fake_backend_close(&fake);
    uv_run(&loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(&loop);
    assert(rv == 0);
    return 0;
}
