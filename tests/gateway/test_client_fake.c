/* test_client_fake.c: fake broker command servers (test_client_fake.h).
 *
 * Each accepted connection reads frames with proto/frame.h's splitter,
 * unpacks Requests and writes Response frames built from the fake's
 * fields at the time the request arrives (AwaitJobs: possibly later, from
 * fake_broker_jobs_add). */
#define _POSIX_C_SOURCE 200809L
#include "tests/gateway/test_client_fake.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fake_conn {
    struct fake_broker *f;
    uv_tcp_t tcp;
    uint32_t slot;
    bool closing;
    struct proto_frame_splitter splitter;
    char buf[65536];
};

struct fake_write {
    uv_write_t req;
    uint8_t *frame;
};

static void fake_handle_closed(uv_handle_t *h)
{
    struct fake_broker *f = h->data;
    assert(f->handles_open > 0);
    f->handles_open--;
}

static void fake_conn_closed(uv_handle_t *h)
{
    struct fake_conn *conn = h->data;
    struct fake_broker *f = conn->f;

    proto_frame_splitter_close(&conn->splitter);
    free(conn);
    assert(f->handles_open > 0);
    f->handles_open--;
}

static void fake_conn_close(struct fake_conn *conn)
{
    struct fake_broker *f = conn->f;

    if (conn->closing) {
        return;
    }
    for (uint32_t i = 0; i < FAKE_AWAITS_MAX; i++) {
        if (f->awaits[i].conn == conn) {
            f->awaits[i].conn = NULL;
            f->await_count--;
        }
    }
    conn->closing = true;
    conn->f->conns[conn->slot] = NULL;
    uv_close((uv_handle_t *)&conn->tcp, fake_conn_closed);
}

static void fake_write_cb(uv_write_t *req, int status)
{
    struct fake_write *w = (struct fake_write *)req;
    (void)status;
    free(w->frame);
    free(w);
}

static void fake_send(struct fake_conn *conn, Tandem__Command__Response *resp)
{
    struct fake_write *w = malloc(sizeof(*w));
    size_t len;
    uv_buf_t buf;
    int rv;

    assert(w != NULL);
    rv = proto_command_response_pack(resp, PROTO_COMMAND_FRAME_BYTES_DEFAULT,
                                     &w->frame, &len);
    assert(rv == 0);
    buf = uv_buf_init((char *)w->frame, (unsigned)len);
    rv = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, fake_write_cb);
    if (rv != 0) {
        free(w->frame);
        free(w);
    }
}

static void fake_answer_topology(struct fake_conn *conn, uint64_t id)
{
    struct fake_broker *f = conn->f;
    Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
    Tandem__Command__BrokerTopology t = TANDEM__COMMAND__BROKER_TOPOLOGY__INIT;
    Tandem__Command__Member members[FAKE_CLUSTER_MAX];
    Tandem__Command__Member *mp[FAKE_CLUSTER_MAX];
    Tandem__Command__PartitionState parts[FAKE_PARTITIONS_MAX];
    Tandem__Command__PartitionState *pp[FAKE_PARTITIONS_MAX];
    uint32_t i;

    t.node_id = f->node_id;
    t.cluster_name = "fake";
    t.cluster_size = f->cluster_size;
    t.partitions_count = f->partitions_count;
    t.replication_factor = f->replication_factor;
    t.config_version = f->config_version;
    t.version = "8.4.0-fake";
    for (i = 0; i < f->cluster_count; i++) {
        Tandem__Command__Member m = TANDEM__COMMAND__MEMBER__INIT;
        if (f->cluster[i] != f && f->cluster[i]->dead_to_others) {
            continue;
        }
        m.node_id = f->cluster[i]->node_id;
        m.command_host = "127.0.0.1";
        m.command_port = f->cluster[i]->port;
        m.version = "8.4.0-fake";
        members[t.n_members] = m;
        mp[t.n_members] = &members[t.n_members];
        t.n_members++;
    }
    t.members = mp;
    for (i = 0; i < f->partition_count; i++) {
        Tandem__Command__PartitionState p =
            TANDEM__COMMAND__PARTITION_STATE__INIT;
        p.partition_id = f->partitions[i].id;
        p.role = f->partitions[i].role;
        p.health = f->partitions[i].health;
        p.term = f->partitions[i].term;
        parts[i] = p;
        pp[i] = &parts[i];
    }
    t.n_partitions = f->partition_count;
    t.partitions = pp;
    resp.id = id;
    resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_TOPOLOGY;
    resp.topology = &t;
    fake_send(conn, &resp);
}

/* The answer of one command in ANSWER mode (resp->id set). */
static void fake_answer_command(struct fake_conn *conn,
                                const Tandem__Command__Request *req,
                                Tandem__Command__Response *resp)
{
    struct fake_broker *f = conn->f;
    uint32_t p = req->partition_id;
    int64_t base = (int64_t)((uint64_t)p << 51);
    union {
        GatewayProtocol__PublishMessageResponse pm;
        GatewayProtocol__DeployResourceResponse dr;
        GatewayProtocol__CreateProcessInstanceResponse ci;
        GatewayProtocol__CreateProcessInstanceWithResultResponse cr;
        GatewayProtocol__CancelProcessInstanceResponse cancel;
        GatewayProtocol__SetVariablesResponse sv;
        GatewayProtocol__ActivateJobsResponse aj;
        GatewayProtocol__CompleteJobResponse complete;
        GatewayProtocol__FailJobResponse fail;
        GatewayProtocol__UpdateJobRetriesResponse retries;
        GatewayProtocol__UpdateJobTimeoutResponse timeout;
        GatewayProtocol__ThrowErrorResponse throw_error;
        GatewayProtocol__ResolveIncidentResponse resolve;
        Tandem__Command__AwaitJobsResponse await;
    } u;
    GatewayProtocol__Deployment deps[8], *depp[8];
    GatewayProtocol__ProcessMetadata procs[8];
    GatewayProtocol__ActivatedJob jobs[16], *jobp[16];
    char ids[8][64];
    uint32_t i, n;

    switch (req->body_case) {
    case TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE:
        gateway_protocol__publish_message_response__init(&u.pm);
        u.pm.key = base + (int64_t)f->publishes;
        u.pm.tenantid = "<default>";
        resp->body_case = TANDEM__COMMAND__RESPONSE__BODY_PUBLISH_MESSAGE;
        resp->publish_message = &u.pm;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE:
        gateway_protocol__deploy_resource_response__init(&u.dr);
        n = (uint32_t)req->deploy_resource->n_resources;
        n = n < 8 ? n : 8;
        for (i = 0; i < n; i++) {
            const char *name = req->deploy_resource->resources[i]->name;
            const char *dot = strrchr(name, '.');
            int len = dot != NULL ? (int)(dot - name) : (int)strlen(name);
            gateway_protocol__deployment__init(&deps[i]);
            gateway_protocol__process_metadata__init(&procs[i]);
            snprintf(ids[i], sizeof(ids[i]), "%.*s", len < 60 ? len : 60,
                     name);
            procs[i].bpmnprocessid = ids[i];
            procs[i].version = 1;
            procs[i].processdefinitionkey = base + 100 + (int64_t)i;
            procs[i].resourcename = (char *)(uintptr_t)name;
            procs[i].tenantid = "<default>";
            deps[i].metadata_case =
                GATEWAY_PROTOCOL__DEPLOYMENT__METADATA_PROCESS;
            deps[i].process = &procs[i];
            depp[i] = &deps[i];
        }
        u.dr.key = base + 99;
        u.dr.n_deployments = n;
        u.dr.deployments = depp;
        u.dr.tenantid = "<default>";
        resp->body_case = TANDEM__COMMAND__RESPONSE__BODY_DEPLOY_RESOURCE;
        resp->deploy_resource = &u.dr;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE:
        f->created++;
        if (f->create_adds_job && p <= FAKE_PARTITIONS_MAX) {
            fake_broker_jobs_add(f, p, 1);
        }
        gateway_protocol__create_process_instance_response__init(&u.ci);
        u.ci.processdefinitionkey = INT64_C(2251799813685349);
        u.ci.bpmnprocessid = req->create_process_instance->bpmnprocessid;
        u.ci.version = 1;
        u.ci.processinstancekey = base + 500 + (int64_t)f->created;
        u.ci.tenantid = "<default>";
        resp->body_case =
            TANDEM__COMMAND__RESPONSE__BODY_CREATE_PROCESS_INSTANCE;
        resp->create_process_instance = &u.ci;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT:
        f->created++;
        gateway_protocol__create_process_instance_with_result_response__init(
            &u.cr);
        u.cr.processdefinitionkey = INT64_C(2251799813685349);
        u.cr.bpmnprocessid =
            req->create_process_instance_with_result->request->bpmnprocessid;
        u.cr.version = 1;
        u.cr.processinstancekey = base + 500 + (int64_t)f->created;
        u.cr.variables = "{\"done\":true}";
        u.cr.tenantid = "<default>";
        resp->body_case =
            TANDEM__COMMAND__RESPONSE__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT;
        resp->create_process_instance_with_result = &u.cr;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_CANCEL_PROCESS_INSTANCE:
        gateway_protocol__cancel_process_instance_response__init(&u.cancel);
        resp->body_case =
            TANDEM__COMMAND__RESPONSE__BODY_CANCEL_PROCESS_INSTANCE;
        resp->cancel_process_instance = &u.cancel;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_SET_VARIABLES:
        gateway_protocol__set_variables_response__init(&u.sv);
        u.sv.key = base + 700;
        resp->body_case = TANDEM__COMMAND__RESPONSE__BODY_SET_VARIABLES;
        resp->set_variables = &u.sv;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_ACTIVATE_JOBS:
        gateway_protocol__activate_jobs_response__init(&u.aj);
        n = p <= FAKE_PARTITIONS_MAX ? f->jobs_available[p] : 0;
        if (req->activate_jobs->maxjobstoactivate >= 0 &&
            n > (uint32_t)req->activate_jobs->maxjobstoactivate) {
            n = (uint32_t)req->activate_jobs->maxjobstoactivate;
        }
        n = n < 16 ? n : 16;
        for (i = 0; i < n; i++) {
            gateway_protocol__activated_job__init(&jobs[i]);
            f->jobs_handed++;
            jobs[i].key = base + 1000 + (int64_t)f->jobs_handed;
            jobs[i].type = req->activate_jobs->type;
            jobs[i].processinstancekey = base + 500;
            jobs[i].bpmnprocessid = "process";
            jobs[i].processdefinitionversion = 1;
            jobs[i].processdefinitionkey = INT64_C(2251799813685349);
            jobs[i].elementid = "task";
            jobs[i].elementinstancekey = base + 600;
            jobs[i].customheaders = "{}";
            jobs[i].worker = req->activate_jobs->worker;
            jobs[i].retries = 3;
            jobs[i].deadline = 1700000000000 + req->activate_jobs->timeout;
            jobs[i].variables = "{\"a\":1}";
            jobs[i].tenantid = "<default>";
            jobp[i] = &jobs[i];
        }
        if (p <= FAKE_PARTITIONS_MAX) {
            f->jobs_available[p] -= n;
        }
        u.aj.n_jobs = n;
        u.aj.jobs = jobp;
        resp->body_case = TANDEM__COMMAND__RESPONSE__BODY_ACTIVATE_JOBS;
        resp->activate_jobs = &u.aj;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB:
        gateway_protocol__complete_job_response__init(&u.complete);
        resp->body_case = TANDEM__COMMAND__RESPONSE__BODY_COMPLETE_JOB;
        resp->complete_job = &u.complete;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB:
        gateway_protocol__fail_job_response__init(&u.fail);
        resp->body_case = TANDEM__COMMAND__RESPONSE__BODY_FAIL_JOB;
        resp->fail_job = &u.fail;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_RETRIES:
        gateway_protocol__update_job_retries_response__init(&u.retries);
        resp->body_case = TANDEM__COMMAND__RESPONSE__BODY_UPDATE_JOB_RETRIES;
        resp->update_job_retries = &u.retries;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_TIMEOUT:
        gateway_protocol__update_job_timeout_response__init(&u.timeout);
        resp->body_case = TANDEM__COMMAND__RESPONSE__BODY_UPDATE_JOB_TIMEOUT;
        resp->update_job_timeout = &u.timeout;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_THROW_ERROR:
        gateway_protocol__throw_error_response__init(&u.throw_error);
        resp->body_case = TANDEM__COMMAND__RESPONSE__BODY_THROW_ERROR;
        resp->throw_error = &u.throw_error;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_RESOLVE_INCIDENT:
        gateway_protocol__resolve_incident_response__init(&u.resolve);
        resp->body_case = TANDEM__COMMAND__RESPONSE__BODY_RESOLVE_INCIDENT;
        resp->resolve_incident = &u.resolve;
        break;
    default:
        assert(false && "a command the fake knows");
        return;
    }
    fake_send(conn, resp);
}

/* An AwaitJobs request: answered now when jobs exist, else held. */
static void fake_await(struct fake_conn *conn,
                       const Tandem__Command__Request *req)
{
    struct fake_broker *f = conn->f;
    uint32_t p = req->partition_id;
    Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
    Tandem__Command__AwaitJobsResponse ar =
        TANDEM__COMMAND__AWAIT_JOBS_RESPONSE__INIT;

    if (p > FAKE_PARTITIONS_MAX || f->jobs_available[p] == 0) {
        for (uint32_t i = 0; i < FAKE_AWAITS_MAX; i++) {
            if (f->awaits[i].conn == NULL) {
                f->awaits[i].conn = conn;
                f->awaits[i].id = req->id;
                f->awaits[i].partition = p;
                f->await_count++;
                return;
            }
        }
        ar.available = false; /* full: "nothing now" */
    } else {
        ar.available = true;
    }
    resp.id = req->id;
    resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_AWAIT_JOBS;
    resp.await_jobs = &ar;
    fake_send(conn, &resp);
}

/* Returns false when the connection was closed. */
static bool fake_answer_publish(struct fake_conn *conn,
                                const Tandem__Command__Request *req)
{
    struct fake_broker *f = conn->f;
    Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
    Tandem__Command__Error err = TANDEM__COMMAND__ERROR__INIT;
    enum fake_publish_mode mode = f->publish_mode;
    size_t len;

    if ((uint32_t)req->body_case < FAKE_BODIES_MAX) {
        f->commands[req->body_case]++;
    }
    if (req->body_case == TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE) {
        f->publishes++;
    }
    f->last_partition = req->partition_id;
    f->last_timeout_ms = req->timeout_ms;
    len = tandem__command__request__get_packed_size(req);
    f->last_request_len = 0;
    if (len <= sizeof(f->last_request)) {
        f->last_request_len =
            tandem__command__request__pack(req, f->last_request);
    }
    if (f->drop_first > 0) {
        f->drop_first--;
        mode = FAKE_PUBLISH_DROP;
    }
    resp.id = req->id;
    switch (mode) {
    case FAKE_PUBLISH_ANSWER:
        if (req->body_case == TANDEM__COMMAND__REQUEST__BODY_AWAIT_JOBS) {
            fake_await(conn, req);
        } else {
            fake_answer_command(conn, req, &resp);
        }
        return true;
    case FAKE_PUBLISH_ERROR:
        err.code = f->error_code;
        err.message = "fake error";
        err.leader_hint = f->leader_hint;
        resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_ERROR;
        resp.error = &err;
        fake_send(conn, &resp);
        return true;
    case FAKE_PUBLISH_SILENT:
        return true;
    case FAKE_PUBLISH_DROP:
    default:
        fake_conn_close(conn);
        return false;
    }
}

void fake_broker_jobs_add(struct fake_broker *f, uint32_t partition,
                          uint32_t n)
{
    assert(partition >= 1 && partition <= FAKE_PARTITIONS_MAX);
    f->jobs_available[partition] += n;
    for (uint32_t i = 0; i < FAKE_AWAITS_MAX && f->await_count > 0; i++) {
        Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
        Tandem__Command__AwaitJobsResponse ar =
            TANDEM__COMMAND__AWAIT_JOBS_RESPONSE__INIT;
        if (f->awaits[i].conn == NULL ||
            f->awaits[i].partition != partition) {
            continue;
        }
        ar.available = true;
        resp.id = f->awaits[i].id;
        resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_AWAIT_JOBS;
        resp.await_jobs = &ar;
        fake_send(f->awaits[i].conn, &resp);
        f->awaits[i].conn = NULL;
        f->await_count--;
    }
}

Tandem__Command__Request *fake_broker_last(const struct fake_broker *f)
{
    if (f->last_request_len == 0) {
        return NULL;
    }
    return tandem__command__request__unpack(NULL, f->last_request_len,
                                            f->last_request);
}

static void fake_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct fake_conn *conn = h->data;
    (void)size;
    *buf = uv_buf_init(conn->buf, sizeof(conn->buf));
}

static void fake_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct fake_conn *conn = s->data;
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t left;

    if (nread < 0) {
        fake_conn_close(conn);
        return;
    }
    left = (size_t)nread;
    while (left > 0 && !conn->closing) {
        struct proto_frame frame;
        size_t used;
        Tandem__Command__Request *req;
        int rv = proto_frame_splitter_feed(&conn->splitter, p, left, &used,
                                           &frame);
        assert(rv >= 0);
        p += used;
        left -= used;
        if (rv == 0) {
            break;
        }
        rv = proto_command_request_unpack(NULL, frame.base, frame.len, &req,
                                          NULL);
        assert(rv == 0);
        assert(proto_command_request_check(req, NULL) == 0);
        if (req->body_case == TANDEM__COMMAND__REQUEST__BODY_TOPOLOGY) {
            conn->f->topology_requests++;
            if (!conn->f->topology_silent) {
                fake_answer_topology(conn, req->id);
            }
        } else {
            (void)fake_answer_publish(conn, req);
        }
        tandem__command__request__free_unpacked(req, NULL);
    }
}

static void fake_accept(uv_stream_t *server, int status)
{
    struct fake_broker *f = server->data;
    struct fake_conn *conn;
    uint32_t slot;

    assert(status == 0);
    conn = calloc(1, sizeof(*conn));
    assert(conn != NULL);
    conn->f = f;
    uv_tcp_init(f->loop, &conn->tcp);
    conn->tcp.data = conn;
    f->handles_open++;
    proto_frame_splitter_init(&conn->splitter,
                              PROTO_COMMAND_FRAME_BYTES_DEFAULT);
    if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
        conn->closing = true;
        uv_close((uv_handle_t *)&conn->tcp, fake_conn_closed);
        return;
    }
    for (slot = 0; slot < FAKE_CONNS_MAX && f->conns[slot] != NULL; slot++) {
    }
    if (slot == FAKE_CONNS_MAX) {
        conn->closing = true;
        uv_close((uv_handle_t *)&conn->tcp, fake_conn_closed);
        return;
    }
    conn->slot = slot;
    f->conns[slot] = conn;
    uv_read_start((uv_stream_t *)&conn->tcp, fake_alloc, fake_read);
}

void fake_broker_init(uv_loop_t *loop, struct fake_broker *f,
                      uint32_t node_id)
{
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    int rv;

    memset(f, 0, sizeof(*f));
    f->loop = loop;
    f->node_id = node_id;
    f->cluster_size = 1;
    f->partitions_count = 1;
    f->replication_factor = 1;
    f->config_version = 1;
    f->error_code = TANDEM__COMMAND__CODE__NOT_LEADER;
    uv_tcp_init(loop, &f->listener);
    f->listener.data = f;
    f->handles_open = 1;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    rv = uv_tcp_bind(&f->listener, (const struct sockaddr *)&addr, 0);
    assert(rv == 0);
    rv = uv_listen((uv_stream_t *)&f->listener, 16, fake_accept);
    assert(rv == 0);
    uv_tcp_getsockname(&f->listener, (struct sockaddr *)&bound, &len);
    f->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    f->listening = true;
    (void)rv;
}

void fake_broker_partition(struct fake_broker *f, uint32_t id,
                           Tandem__Command__Role role, uint64_t term)
{
    uint32_t i;

    for (i = 0; i < f->partition_count; i++) {
        if (f->partitions[i].id == id) {
            break;
        }
    }
    assert(i < FAKE_PARTITIONS_MAX);
    if (i == f->partition_count) {
        f->partition_count++;
    }
    f->partitions[i].id = id;
    f->partitions[i].role = role;
    f->partitions[i].health = TANDEM__COMMAND__HEALTH__HEALTHY;
    f->partitions[i].term = term;
}

void fake_broker_drop(struct fake_broker *f)
{
    uint32_t i;
    for (i = 0; i < FAKE_CONNS_MAX; i++) {
        if (f->conns[i] != NULL) {
            fake_conn_close(f->conns[i]);
        }
    }
}

void fake_broker_close(struct fake_broker *f)
{
    fake_broker_drop(f);
    if (f->listening) {
        f->listening = false;
        uv_close((uv_handle_t *)&f->listener, fake_handle_closed);
    }
}

void fake_broker_address(const struct fake_broker *f, char *buf)
{
    snprintf(buf, 32, "127.0.0.1:%u", (unsigned)f->port);
}

static void run_tick(uv_timer_t *t)
{
    (void)t;
}

bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg,
               uint64_t timeout_ms)
{
    uv_timer_t tick;
    uint64_t end;
    bool ok;

    uv_update_time(loop);
    end = uv_now(loop) + timeout_ms;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, run_tick, 5, 5);
    while (!(ok = pred(arg)) && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static bool run_never(void *arg)
{
    (void)arg;
    return false;
}

void run_for(uv_loop_t *loop, uint64_t ms)
{
    (void)run_until(loop, run_never, NULL, ms);
}
