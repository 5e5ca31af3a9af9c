/* test_command_frame.c: unit tests of proto/frame.c, the length-prefixed
 * framing and the tandem.command Request/Response helpers.
 *
 * Messages are packed into frames, cut back out of a byte stream fed to
 * the splitter in chunks of every size, unpacked and compared; then the
 * failure paths: oversize prefixes (sticky), bad prefixes, garbage, and
 * structurally invalid commands. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

/* A PublishMessage Request for partition 3. */
static size_t pack_publish(uint64_t id, uint8_t **out)
{
    Tandem__Command__Request req = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__PublishMessageRequest pm =
        GATEWAY_PROTOCOL__PUBLISH_MESSAGE_REQUEST__INIT;
    size_t len = 0;

    pm.name = "order-paid";
    pm.correlationkey = "order-42";
    pm.timetolive = 60000;
    pm.variables = "{\"a\":1}";
    req.id = id;
    req.partition_id = 3;
    req.timeout_ms = 15000;
    req.body_case = TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE;
    req.publish_message = &pm;
    assert_int_equal(proto_command_request_pack(
                         &req, PROTO_COMMAND_FRAME_BYTES_DEFAULT, out, &len),
                     0);
    assert_true(len > PROTO_FRAME_PREFIX_BYTES);
    return len;
}

static void request_round_trip(void **state)
{
    uint8_t *frame;
    size_t len = pack_publish(7, &frame);
    Tandem__Command__Request *req = NULL;
    char errmsg[PROTO_ERRMSG_SIZE] = "";

    (void)state;
    assert_int_equal(proto_frame_prefix_get(frame),
                     len - PROTO_FRAME_PREFIX_BYTES);
    assert_int_equal(
        proto_command_request_unpack(NULL, frame, len, &req, errmsg), 0);
    assert_non_null(req);
    assert_int_equal(req->id, 7);
    assert_int_equal(req->partition_id, 3);
    assert_int_equal(req->timeout_ms, 15000);
    assert_int_equal(req->body_case,
                     TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE);
    assert_string_equal(req->publish_message->correlationkey, "order-42");
    assert_int_equal(proto_command_request_check(req, errmsg), 0);
    tandem__command__request__free_unpacked(req, NULL);
    free(frame);
}

static void response_round_trip_topology(void **state)
{
    Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
    Tandem__Command__BrokerTopology topo =
        TANDEM__COMMAND__BROKER_TOPOLOGY__INIT;
    Tandem__Command__Member m = TANDEM__COMMAND__MEMBER__INIT;
    Tandem__Command__Member *members[1] = {&m};
    Tandem__Command__PartitionState p = TANDEM__COMMAND__PARTITION_STATE__INIT;
    Tandem__Command__PartitionState *parts[1] = {&p};
    Tandem__Command__Response *out = NULL;
    uint8_t *frame;
    size_t len;

    (void)state;
    m.node_id = 2;
    m.command_host = "127.0.0.1";
    m.command_port = 26501;
    m.version = "8.4.0";
    p.partition_id = 1;
    p.role = TANDEM__COMMAND__ROLE__LEADER;
    p.health = TANDEM__COMMAND__HEALTH__HEALTHY;
    p.term = 9;
    topo.node_id = 2;
    topo.cluster_size = 3;
    topo.partitions_count = 1;
    topo.replication_factor = 3;
    topo.n_members = 1;
    topo.members = members;
    topo.n_partitions = 1;
    topo.partitions = parts;
    resp.id = 11;
    resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_TOPOLOGY;
    resp.topology = &topo;
    assert_int_equal(proto_command_response_pack(&resp, 1 << 16, &frame, &len),
                     0);
    assert_int_equal(proto_command_response_unpack(NULL, frame, len, &out,
                                                   NULL),
                     0);
    assert_int_equal(out->id, 11);
    assert_int_equal(out->topology->n_partitions, 1);
    assert_int_equal(out->topology->partitions[0]->term, 9);
    assert_int_equal(out->topology->partitions[0]->role,
                     TANDEM__COMMAND__ROLE__LEADER);
    assert_string_equal(out->topology->members[0]->command_host, "127.0.0.1");
    tandem__command__response__free_unpacked(out, NULL);
    free(frame);

    /* An out-of-range role fails the check, on both sides. */
    p.role = (Tandem__Command__Role)7;
    assert_int_equal(proto_command_response_pack(&resp, 1 << 16, &frame, &len),
                     PROTO_E_INVALID);
    assert_null(frame);
    {
        uint8_t buf[256];
        char errmsg[PROTO_ERRMSG_SIZE] = "";
        assert_int_equal(
            proto_frame_pack(&resp.base, 1 << 16, buf, sizeof(buf), &len), 0);
        assert_int_equal(
            proto_command_response_unpack(NULL, buf, len, &out, errmsg),
            PROTO_E_MALFORMED);
        assert_null(out);
        assert_non_null(strstr(errmsg, "role"));
    }
}

/* Many frames in one stream, fed in chunks of 1..n bytes. */
static void splitter_chunks(void **state)
{
    enum { FRAMES = 5 };
    uint8_t *frames[FRAMES];
    size_t lens[FRAMES];
    uint8_t stream[4096];
    size_t total = 0;
    size_t step;
    int i;

    (void)state;
    for (i = 0; i < FRAMES; i++) {
        lens[i] = pack_publish((uint64_t)i + 1, &frames[i]);
        assert_true(total + lens[i] <= sizeof(stream));
        memcpy(stream + total, frames[i], lens[i]);
        total += lens[i];
    }
    for (step = 1; step <= total; step++) {
        struct proto_frame_splitter s;
        size_t off = 0;
        int got = 0;

        proto_frame_splitter_init(&s, 1024);
        while (off < total) {
            size_t n = total - off < step ? total - off : step;
            const uint8_t *p = stream + off;
            off += n;
            while (n > 0) {
                struct proto_frame f;
                size_t used = 0;
                int rv = proto_frame_splitter_feed(&s, p, n, &used, &f);
                assert_true(rv == 0 || rv == 1);
                assert_true(used <= n);
                p += used;
                n -= used;
                if (rv == 1) {
                    Tandem__Command__Request *req = NULL;
                    assert_true(got < FRAMES);
                    assert_int_equal(f.len, lens[got]);
                    assert_memory_equal(f.base, frames[got], f.len);
                    assert_int_equal(proto_command_request_unpack(
                                         NULL, f.base, f.len, &req, NULL),
                                     0);
                    assert_int_equal(req->id, (uint64_t)got + 1);
                    tandem__command__request__free_unpacked(req, NULL);
                    got++;
                }
            }
        }
        assert_int_equal(got, FRAMES);
        proto_frame_splitter_close(&s);
    }
    for (i = 0; i < FRAMES; i++) {
        free(frames[i]);
    }
}

static void splitter_oversize_is_sticky(void **state)
{
    struct proto_frame_splitter s;
    uint8_t big[8];
    struct proto_frame f;
    size_t used;

    (void)state;
    proto_frame_prefix_put(big, 101);
    memset(big + 4, 0, 4);
    proto_frame_splitter_init(&s, 100);
    /* Split prefix: the error shows once the prefix is whole. */
    assert_int_equal(proto_frame_splitter_feed(&s, big, 2, &used, &f), 0);
    assert_int_equal(used, 2);
    assert_int_equal(proto_frame_splitter_feed(&s, big + 2, 6, &used, &f),
                     PROTO_E_TOO_BIG);
    assert_non_null(strstr(s.errmsg, "101"));
    assert_int_equal(proto_frame_splitter_feed(&s, big, 8, &used, &f),
                     PROTO_E_TOO_BIG);
    assert_null(f.base);
    proto_frame_splitter_close(&s);

    /* Whole prefix at once (fast path). */
    proto_frame_splitter_init(&s, 100);
    assert_int_equal(proto_frame_splitter_feed(&s, big, 8, &used, &f),
                     PROTO_E_TOO_BIG);
    proto_frame_splitter_close(&s);

    /* An empty body is a valid frame. */
    proto_frame_splitter_init(&s, 100);
    proto_frame_prefix_put(big, 0);
    assert_int_equal(proto_frame_splitter_feed(&s, big, 4, &used, &f), 1);
    assert_int_equal(f.len, 4);
    assert_int_equal(used, 4);
    proto_frame_splitter_close(&s);
    assert_string_equal(proto_strerror(PROTO_E_TOO_BIG),
                        "frame exceeds the size limit");
    assert_string_equal(proto_strerror(-99), "unknown error");
}

static void unpack_rejects_bad_frames(void **state)
{
    Tandem__Command__Request *req = (void *)1;
    Tandem__Command__Response *resp = (void *)1;
    char errmsg[PROTO_ERRMSG_SIZE];
    static const uint8_t short_frame[] = {0, 0};
    static const uint8_t wrong_len[] = {0, 0, 0, 5, 8, 1};
    static const uint8_t garbage[] = {0, 0, 0, 3, 0xff, 0xff, 0xff};
    static const uint8_t no_id[] = {0, 0, 0, 2, 0x52, 0x00}; /* topology {} */
    static const uint8_t no_body[] = {0, 0, 0, 2, 0x08, 0x05}; /* id 5 */
    uint8_t buf[64];
    size_t len;

    (void)state;
    assert_int_equal(proto_command_request_unpack(NULL, short_frame,
                                                  sizeof(short_frame), &req,
                                                  errmsg),
                     PROTO_E_MALFORMED);
    assert_null(req);
    assert_int_equal(proto_command_request_unpack(NULL, wrong_len,
                                                  sizeof(wrong_len), &req,
                                                  errmsg),
                     PROTO_E_MALFORMED);
    assert_non_null(strstr(errmsg, "length prefix"));
    assert_int_equal(proto_command_response_unpack(NULL, garbage,
                                                   sizeof(garbage), &resp,
                                                   errmsg),
                     PROTO_E_MALFORMED);
    assert_null(resp);
    assert_int_equal(proto_command_request_unpack(NULL, no_id, sizeof(no_id),
                                                  &req, errmsg),
                     PROTO_E_MALFORMED);
    assert_non_null(strstr(errmsg, "id"));
    /* A request with an id but no body unpacks (the broker answers it)
     * and fails the check; a response without a body is malformed. */
    assert_int_equal(proto_command_request_unpack(NULL, no_body,
                                                  sizeof(no_body), &req,
                                                  errmsg),
                     0);
    assert_int_equal(proto_command_request_check(req, errmsg),
                     PROTO_E_INVALID);
    tandem__command__request__free_unpacked(req, NULL);
    assert_int_equal(proto_command_response_unpack(NULL, no_body,
                                                   sizeof(no_body), &resp,
                                                   errmsg),
                     PROTO_E_MALFORMED);
    assert_non_null(strstr(errmsg, "no body"));

    /* A command without partition, an error without code. */
    {
        Tandem__Command__Request r = TANDEM__COMMAND__REQUEST__INIT;
        GatewayProtocol__PublishMessageRequest pm =
            GATEWAY_PROTOCOL__PUBLISH_MESSAGE_REQUEST__INIT;
        Tandem__Command__Response e = TANDEM__COMMAND__RESPONSE__INIT;
        Tandem__Command__Error err = TANDEM__COMMAND__ERROR__INIT;
        uint8_t *out;

        r.id = 1;
        r.body_case = TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE;
        r.publish_message = &pm;
        assert_int_equal(proto_command_request_pack(&r, 1024, &out, &len),
                         PROTO_E_INVALID);
        e.id = 1;
        e.body_case = TANDEM__COMMAND__RESPONSE__BODY_ERROR;
        e.error = &err;
        assert_int_equal(proto_command_response_pack(&e, 1024, &out, &len),
                         PROTO_E_INVALID);
        err.code = TANDEM__COMMAND__CODE__NOT_LEADER;
        err.message = "not leader";
        err.leader_hint = 3;
        assert_int_equal(
            proto_frame_pack(&e.base, 1024, buf, sizeof(buf), &len), 0);
        assert_int_equal(
            proto_command_response_unpack(NULL, buf, len, &resp, NULL), 0);
        assert_int_equal(resp->error->code, TANDEM__COMMAND__CODE__NOT_LEADER);
        assert_int_equal(resp->error->leader_hint, 3);
        tandem__command__response__free_unpacked(resp, NULL);
        /* Too big for the limit, too big for the buffer. */
        assert_int_equal(proto_frame_pack(&e.base, 4, buf, sizeof(buf), &len),
                         PROTO_E_TOO_BIG);
        assert_int_equal(proto_frame_pack(&e.base, 1024, buf, 5, &len),
                         PROTO_E_INVALID);
        assert_int_equal(proto_command_response_pack(&e, 4, &out, &len),
                         PROTO_E_TOO_BIG);
    }
}

/* The checks of the command bodies added for the engine: each body is
 * accepted with a partition, and the structural rules hold. */
static void request_check_command_bodies(void **state)
{
    Tandem__Command__Request r = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__CompleteJobRequest cj =
        GATEWAY_PROTOCOL__COMPLETE_JOB_REQUEST__INIT;
    GatewayProtocol__DeployResourceRequest dr =
        GATEWAY_PROTOCOL__DEPLOY_RESOURCE_REQUEST__INIT;
    GatewayProtocol__CreateProcessInstanceWithResultRequest wr =
        GATEWAY_PROTOCOL__CREATE_PROCESS_INSTANCE_WITH_RESULT_REQUEST__INIT;
    GatewayProtocol__CreateProcessInstanceRequest ci =
        GATEWAY_PROTOCOL__CREATE_PROCESS_INSTANCE_REQUEST__INIT;
    Tandem__Command__AwaitJobsRequest aw =
        TANDEM__COMMAND__AWAIT_JOBS_REQUEST__INIT;
    Tandem__Command__DistributeRequest di =
        TANDEM__COMMAND__DISTRIBUTE_REQUEST__INIT;
    char *types[2] = {"t", ""};
    uint8_t rec[1] = {8};
    char errmsg[PROTO_ERRMSG_SIZE];
    uint8_t *frame;
    size_t len;

    (void)state;
    r.id = 9;
    r.partition_id = 2;
    r.body_case = TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB;
    r.complete_job = &cj;
    assert_int_equal(proto_command_request_check(&r, errmsg), 0);
    assert_int_equal(proto_command_request_pack(&r, 4096, &frame, &len), 0);
    free(frame);
    r.partition_id = 0;
    assert_int_equal(proto_command_request_check(&r, errmsg),
                     PROTO_E_INVALID);
    assert_non_null(strstr(errmsg, "without partition"));

    /* Deployments: partition 1 only. */
    r.body_case = TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE;
    r.deploy_resource = &dr;
    r.partition_id = 2;
    assert_int_equal(proto_command_request_check(&r, errmsg),
                     PROTO_E_INVALID);
    assert_non_null(strstr(errmsg, "deployment partition 1"));
    r.partition_id = 1;
    assert_int_equal(proto_command_request_check(&r, errmsg), 0);

    /* With result: the inner request must be there. */
    r.body_case =
        TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT;
    r.create_process_instance_with_result = &wr;
    assert_int_equal(proto_command_request_check(&r, errmsg),
                     PROTO_E_INVALID);
    wr.request = &ci;
    assert_int_equal(proto_command_request_check(&r, errmsg), 0);

    /* AwaitJobs: one or more non-empty types. */
    r.body_case = TANDEM__COMMAND__REQUEST__BODY_AWAIT_JOBS;
    r.await_jobs = &aw;
    assert_int_equal(proto_command_request_check(&r, errmsg),
                     PROTO_E_INVALID);
    assert_non_null(strstr(errmsg, "without types"));
    aw.types = types;
    aw.n_types = 2;
    assert_int_equal(proto_command_request_check(&r, errmsg),
                     PROTO_E_INVALID);
    assert_non_null(strstr(errmsg, "type 1 is empty"));
    aw.n_types = 1;
    assert_int_equal(proto_command_request_check(&r, errmsg), 0);

    /* Distribute: from another partition, with a record. */
    r.body_case = TANDEM__COMMAND__REQUEST__BODY_DISTRIBUTE;
    r.distribute = &di;
    r.partition_id = 2;
    di.source_partition_id = 2;
    assert_int_equal(proto_command_request_check(&r, errmsg),
                     PROTO_E_INVALID);
    di.source_partition_id = 1;
    assert_int_equal(proto_command_request_check(&r, errmsg),
                     PROTO_E_INVALID);
    assert_non_null(strstr(errmsg, "without a record"));
    di.record.data = rec;
    di.record.len = sizeof(rec);
    assert_int_equal(proto_command_request_check(&r, errmsg), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_round_trip),
        cmocka_unit_test(response_round_trip_topology),
        cmocka_unit_test(splitter_chunks),
        cmocka_unit_test(splitter_oversize_is_sticky),
        cmocka_unit_test(unpack_rejects_bad_frames),
        cmocka_unit_test(request_check_command_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
