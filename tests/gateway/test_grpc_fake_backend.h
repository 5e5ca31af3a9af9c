/* test_grpc_fake_backend.h: a struct gateway_backend for the gRPC server's
 * tests (test_grpc.c, the grpc-fake-gateway binary used with the real
 * zbctl, and the fuzz target).
 *
 * Answers: "Topology" a fixed 3-broker, 3-partition topology;
 * "PublishMessage" a key (2251799813685249, the first key of partition 1,
 * plus the number of messages published before); "ActivateJobs", when
 * activate_jobs is set, one ActivateJobsResponse of one job; anything
 * else UNIMPLEMENTED. Knobs: fail_status (answer every call with it),
 * hold (never answer: the call waits for its deadline or a cancel),
 * delay_ms (answer from a timer). Counters record what the server did. */
#ifndef TANDEM_TESTS_GRPC_FAKE_BACKEND_H
#define TANDEM_TESTS_GRPC_FAKE_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "gateway/backend.h"

#define GRPC_FAKE_PENDING_MAX 64u
#define GRPC_FAKE_KEY_FIRST INT64_C(2251799813685249)

struct grpc_fake_call {
    char rpc[64];
    const ProtobufCMessage *request; /* borrowed until answered */
    gateway_backend_cb cb;
    void *req_data;
    uint64_t deadline_ms;
};

struct grpc_fake_backend {
    struct gateway_backend base; /* first: a gateway_backend pointer */
    uv_loop_t *loop;
    uv_timer_t timer; /* delayed answers */

    /* Knobs. */
    int fail_status;          /* != 0: every call fails with it */
    const char *fail_message; /* its message */
    bool hold;                /* calls are never answered */
    uint64_t delay_ms;        /* answers after this long (0: at once) */
    bool activate_jobs;       /* ActivateJobs answers one job */

    /* Calls waiting (hold or delay). */
    struct grpc_fake_call pending[GRPC_FAKE_PENDING_MAX];
    unsigned pending_count;

    /* Counters. */
    unsigned calls;
    unsigned cancels;
    unsigned answers;
    uint64_t last_deadline_ms;
    char last_rpc[64];
    int64_t published;
};

/* Initializes fake on loop (opens its timer). */
void grpc_fake_backend_init(struct grpc_fake_backend *fake, uv_loop_t *loop);

/* Answers every pending call now (as if the delay had passed). */
void grpc_fake_backend_flush(struct grpc_fake_backend *fake);

/* Closes the timer; no call may be pending (the server cancelled them). */
void grpc_fake_backend_close(struct grpc_fake_backend *fake);

#endif
