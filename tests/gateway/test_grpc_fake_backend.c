/* test_grpc_fake_backend.c: the fake gateway_backend of the gRPC tests
 * (see test_grpc_fake_backend.h). Requests come in through base.call,
 * are answered at once or kept in a bounded pending array until the
 * timer (delay_ms), a flush, or a cancel from the server. */
#define _POSIX_C_SOURCE 200809L
#include "test_grpc_fake_backend.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"

#define FAKE_BROKERS 3
#define FAKE_PARTITIONS 3

/* The fixed topology: 3 brokers, 3 partitions, replication factor 3.
 * Partition p is led by broker (p - 1); broker 2 is unhealthy on
 * partition 1 to show a non-healthy entry. */
static void fake_topology_answer(gateway_backend_cb cb, void *req_data)
{
    GatewayProtocol__TopologyResponse resp =
        GATEWAY_PROTOCOL__TOPOLOGY_RESPONSE__INIT;
    GatewayProtocol__BrokerInfo brokers[FAKE_BROKERS];
    GatewayProtocol__BrokerInfo *broker_ptrs[FAKE_BROKERS];
    GatewayProtocol__Partition parts[FAKE_BROKERS][FAKE_PARTITIONS];
    GatewayProtocol__Partition *part_ptrs[FAKE_BROKERS][FAKE_PARTITIONS];
    static char hosts[FAKE_BROKERS][32];

    for (int b = 0; b < FAKE_BROKERS; b++) {
        GatewayProtocol__BrokerInfo bi = GATEWAY_PROTOCOL__BROKER_INFO__INIT;
        snprintf(hosts[b], sizeof(hosts[b]), "tandem-%d", b);
        bi.nodeid = b;
        bi.host = hosts[b];
        bi.port = 26501;
        bi.version = "8.4.0";
        for (int p = 0; p < FAKE_PARTITIONS; p++) {
            GatewayProtocol__Partition pi = GATEWAY_PROTOCOL__PARTITION__INIT;
            pi.partitionid = p + 1;
            pi.role = p == b
                          ? GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_ROLE__LEADER
                          : GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_ROLE__FOLLOWER;
            pi.health =
                (b == 2 && p == 0)
                    ? GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_HEALTH__UNHEALTHY
                    : GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_HEALTH__HEALTHY;
            parts[b][p] = pi;
            part_ptrs[b][p] = &parts[b][p];
        }
        bi.n_partitions = FAKE_PARTITIONS;
        bi.partitions = part_ptrs[b];
        brokers[b] = bi;
        broker_ptrs[b] = &brokers[b];
    }
    resp.n_brokers = FAKE_BROKERS;
    resp.brokers = broker_ptrs;
    resp.clustersize = FAKE_BROKERS;
    resp.partitionscount = FAKE_PARTITIONS;
    resp.replicationfactor = 3;
    resp.gatewayversion = "8.4.0";
    cb(req_data, GATEWAY_STATUS_OK, NULL, &resp.base);
}

static void fake_answer(struct grpc_fake_backend *fake,
                        const struct grpc_fake_call *call)
{
    char msg[128];

    fake->answers++;
    if (fake->fail_status != 0) {
        call->cb(call->req_data, fake->fail_status, fake->fail_message, NULL);
        return;
    }
    if (strcmp(call->rpc, "Topology") == 0) {
        assert(call->request->descriptor ==
               &gateway_protocol__topology_request__descriptor);
        fake_topology_answer(call->cb, call->req_data);
        return;
    }
    if (strcmp(call->rpc, "PublishMessage") == 0) {
        GatewayProtocol__PublishMessageResponse resp =
            GATEWAY_PROTOCOL__PUBLISH_MESSAGE_RESPONSE__INIT;
        assert(call->request->descriptor ==
               &gateway_protocol__publish_message_request__descriptor);
        resp.key = GRPC_FAKE_KEY_FIRST + fake->published++;
        resp.tenantid = "<default>";
        call->cb(call->req_data, GATEWAY_STATUS_OK, NULL, &resp.base);
        return;
    }
    if (strcmp(call->rpc, "ActivateJobs") == 0 && fake->activate_jobs) {
        GatewayProtocol__ActivateJobsResponse resp =
            GATEWAY_PROTOCOL__ACTIVATE_JOBS_RESPONSE__INIT;
        GatewayProtocol__ActivatedJob job = GATEWAY_PROTOCOL__ACTIVATED_JOB__INIT;
        GatewayProtocol__ActivatedJob *jobs[1] = {&job};
        job.key = GRPC_FAKE_KEY_FIRST + 10;
        job.type = "fake";
        job.retries = 3;
        job.customheaders = "{}";
        job.variables = "{}";
        resp.n_jobs = 1;
        resp.jobs = jobs;
        call->cb(call->req_data, GATEWAY_STATUS_OK, NULL, &resp.base);
        return;
    }
    snprintf(msg, sizeof(msg), "%s is not implemented by the fake backend",
             call->rpc);
    call->cb(call->req_data, GATEWAY_STATUS_UNIMPLEMENTED, msg, NULL);
}

static void fake_timer_cb(uv_timer_t *timer)
{
    grpc_fake_backend_flush(timer->data);
}

void grpc_fake_backend_flush(struct grpc_fake_backend *fake)
{
    /* Answer in arrival order; answers may not add calls (no re-entry
     * from the server into call during a callback). */
    while (fake->pending_count > 0) {
        struct grpc_fake_call call = fake->pending[0];
        memmove(&fake->pending[0], &fake->pending[1],
                (fake->pending_count - 1) * sizeof(fake->pending[0]));
        fake->pending_count--;
        fake_answer(fake, &call);
    }
}

static int fake_call(struct gateway_backend *backend, const char *rpc,
                     const ProtobufCMessage *request, uint64_t deadline_ms,
                     gateway_backend_cb cb, void *req_data)
{
    struct grpc_fake_backend *fake = backend->data;
    struct grpc_fake_call call;

    assert(fake != NULL);
    assert(rpc != NULL);
    assert(request != NULL);
    assert(cb != NULL);
    fake->calls++;
    fake->last_deadline_ms = deadline_ms;
    snprintf(fake->last_rpc, sizeof(fake->last_rpc), "%s", rpc);
    memset(&call, 0, sizeof(call));
    snprintf(call.rpc, sizeof(call.rpc), "%s", rpc);
    call.request = request;
    call.cb = cb;
    call.req_data = req_data;
    call.deadline_ms = deadline_ms;
    if (!fake->hold && fake->delay_ms == 0) {
        fake_answer(fake, &call);
        return 0;
    }
    if (fake->pending_count == GRPC_FAKE_PENDING_MAX) {
        cb(req_data, GATEWAY_STATUS_RESOURCE_EXHAUSTED, "fake backend full",
           NULL);
        return 0;
    }
    fake->pending[fake->pending_count++] = call;
    if (!fake->hold) {
        uv_timer_start(&fake->timer, fake_timer_cb, fake->delay_ms, 0);
    }
    return 0;
}

static void fake_cancel(struct gateway_backend *backend, void *req_data)
{
    struct grpc_fake_backend *fake = backend->data;

    for (unsigned i = 0; i < fake->pending_count; i++) {
        if (fake->pending[i].req_data == req_data) {
            memmove(&fake->pending[i], &fake->pending[i + 1],
                    (fake->pending_count - i - 1) * sizeof(fake->pending[0]));
            fake->pending_count--;
            fake->cancels++;
            return;
        }
    }
    assert(!"cancel of a call the fake backend does not hold");
}

void grpc_fake_backend_init(struct grpc_fake_backend *fake, uv_loop_t *loop)
{
    memset(fake, 0, sizeof(*fake));
    fake->base.call = fake_call;
    fake->base.cancel = fake_cancel;
    fake->base.data = fake;
    fake->loop = loop;
    uv_timer_init(loop, &fake->timer);
    fake->timer.data = fake;
}

void grpc_fake_backend_close(struct grpc_fake_backend *fake)
{
    assert(fake->pending_count == 0);
    uv_close((uv_handle_t *)&fake->timer, NULL);
}
