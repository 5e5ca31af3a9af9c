/* test_engine.c: tests of the partition stream processing engine
 * (broker/engine/engine*.c) driven the way a partition drives it.
 *
 * Data flow of the harness: requests -> engine_command_from_request() ->
 * h_round(): engine_process() (state hash checked unchanged) -> the packed
 * batch is decoded -> engine_apply_begin/entry/end at the next index ->
 * the answer hook collects answering records, the jobs_available hook the
 * job types. Tests then look at the batch (records, types, intents, keys,
 * values), the answers (through engine_response_build) and the state
 * (engine_stats_get, engine_state_hash, follow-up commands).
 *
 * State directories live under a mkdtemp() in /tmp and are removed at the
 * end of each test. BPMN models come from testdata/bpmn (the working
 * directory) or are written inline.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "broker/engine/engine.h"
#include "proto/proto.h"

#define H_ANSWERS_MAX 256
#define H_NODE 7
#define T0 1700000000000ull

/* ------------------------------------------------------------------------
 * Harness
 * --------------------------------------------------------------------- */

struct h {
    struct engine *e;
    char dir[128];
    uint32_t pid;
    uint64_t index;
    uint64_t now;
    uint64_t next_req;
    Tandem__Record__RecordBatch *last; /* records of the last round */
    Tandem__Record__Record *answers[H_ANSWERS_MAX];
    size_t n_answers;
    size_t jobs_available;
};

static void h_open(struct h *h, const char *root, uint32_t pid, uint32_t count)
{
    char err[256];
    struct engine_options o = {0};

    memset(h, 0, sizeof *h);
    snprintf(h->dir, sizeof h->dir, "%s/p%u", root, pid);
    o.dir = h->dir;
    o.partition_id = pid;
    o.partitions_count = count;
    o.broker_version = "8.4.0";
    o.map_size = 64u << 20;
    h->pid = pid;
    h->now = T0;
    h->next_req = 1;
    int rc = engine_open(&h->e, &o, err, sizeof err);
    if (rc != 0)
        fail_msg("engine_open: %s", err);
}

static void h_clear_answers(struct h *h)
{
    for (size_t i = 0; i < h->n_answers; i++)
        tandem__record__record__free_unpacked(h->answers[i], NULL);
    h->n_answers = 0;
}

static void h_close(struct h *h)
{
    h_clear_answers(h);
    if (h->last)
        tandem__record__record_batch__free_unpacked(h->last, NULL);
    engine_close(h->e);
    h->e = NULL;
}

static void h_on_answer(void *data, const Tandem__Record__Record *rec,
                        uint64_t position)
{
    struct h *h = data;
    (void)position;
    assert_true(h->n_answers < H_ANSWERS_MAX);
    size_t len = tandem__record__record__get_packed_size(rec);
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    tandem__record__record__pack(rec, buf);
    h->answers[h->n_answers++] = tandem__record__record__unpack(NULL, len, buf);
    free(buf);
}

static void h_on_jobs(void *data, const char *type)
{
    struct h *h = data;
    (void)type;
    h->jobs_available++;
}

/* With ENGINE_TEST_TRACE set, prints every record of every round. */
static void h_trace(const Tandem__Record__RecordBatch *b, uint64_t index)
{
    if (getenv("ENGINE_TEST_TRACE") == NULL)
        return;
    for (size_t i = 0; i < b->n_records; i++) {
        const Tandem__Record__Record *r = b->records[i];
        const char *extra = "";
        Tandem__Record__ProcessInstanceRecordValue *pv = NULL;
        if (r->value_type == TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE) {
            pv = tandem__record__process_instance_record_value__unpack(
                NULL, r->value.len, r->value.data);
            if (pv != NULL)
                extra = pv->element_id;
        }
        Tandem__Record__JobRecordValue *jv = NULL;
        if (r->value_type == TANDEM__RECORD__VALUE_TYPE__JOB) {
            jv = tandem__record__job_record_value__unpack(NULL, r->value.len,
                                                          r->value.data);
            if (jv != NULL)
                extra = jv->type;
        }
        fprintf(stderr, "  %llu.%zu rt=%d vt=%d intent=%u key=%llu %s %s\n",
                (unsigned long long)index, i, r->record_type, r->value_type,
                r->intent, (unsigned long long)r->key, extra,
                r->rejection_reason);
        if (pv != NULL)
            tandem__record__process_instance_record_value__free_unpacked(pv,
                                                                         NULL);
        if (jv != NULL)
            tandem__record__job_record_value__free_unpacked(jv, NULL);
    }
}

/* Applies a packed batch at the next index. */
static void h_apply(struct h *h, const void *batch, size_t len)
{
    struct engine_apply_hooks hooks = {h_on_answer, h_on_jobs, h};
    Tandem__Record__RecordBatch *b =
        tandem__record__record_batch__unpack(NULL, len, batch);
    assert_non_null(b);
    h->index++;
    h_trace(b, h->index);
    assert_int_equal(engine_apply_begin(h->e), 0);
    assert_int_equal(engine_apply_entry(h->e, h->index, b, &hooks), 0);
    assert_int_equal(engine_apply_end(h->e), 0);
    if (h->last)
        tandem__record__record_batch__free_unpacked(h->last, NULL);
    h->last = b;
}

/* One processing round + apply; returns the records written. */
static Tandem__Record__RecordBatch *
h_round_n(struct h *h, Tandem__Record__Record **cmds, size_t n)
{
    struct engine_round r;
    uint64_t before = engine_state_hash(h->e);

    h_clear_answers(h);
    int rc = engine_process(h->e, h->now, (h->index + 1) << 16, cmds, n, &r);
    assert_int_equal(rc, 0);
    assert_int_equal(engine_state_hash(h->e), before); /* rolled back */
    for (size_t i = 0; i < n; i++)
        engine_record_free(cmds[i]);
    assert_int_equal(r.consumed, n);
    if (r.batch == NULL) {
        if (h->last)
            tandem__record__record_batch__free_unpacked(h->last, NULL);
        h->last = NULL;
        return NULL;
    }
    h_apply(h, r.batch, r.batch_len);
    engine_round_free(&r);
    return h->last;
}

static Tandem__Record__RecordBatch *h_round(struct h *h,
                                            Tandem__Record__Record *cmd)
{
    return h_round_n(h, cmd ? &cmd : NULL, cmd ? 1 : 0);
}

static Tandem__Record__Record *h_cmd(struct h *h, Tandem__Command__Request *q)
{
    Tandem__Record__Record *rec = NULL;
    char err[1024];
    int rc = engine_command_from_request(h->e, q, H_NODE, h->next_req++, &rec,
                                         err, sizeof err);
    if (rc != 0)
        fail_msg("engine_command_from_request: %s", err);
    return rec;
}

/* Index of the n-th record (0-based) with this type/intent, or -1. */
static int h_find(const Tandem__Record__RecordBatch *b, int rt, int vt,
                  uint32_t intent, int nth)
{
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < b->n_records; i++) {
        const Tandem__Record__Record *r = b->records[i];
        if ((int)r->record_type == rt && (int)r->value_type == vt &&
            r->intent == intent && nth-- == 0)
            return (int)i;
    }
    return -1;
}

static size_t h_count(const Tandem__Record__RecordBatch *b, int rt, int vt,
                      uint32_t intent)
{
    size_t n = 0;
    while (h_find(b, rt, vt, intent, (int)n) >= 0)
        n++;
    return n;
}

/* The PI event (intent) of element_id in the batch, or -1. */
static int h_find_elem(const Tandem__Record__RecordBatch *b, uint32_t intent,
                       const char *element_id)
{
    for (int n = 0;; n++) {
        int i = h_find(b, TANDEM__RECORD__RECORD_TYPE__EVENT,
                       TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE, intent, n);
        if (i < 0)
            return -1;
        Tandem__Record__ProcessInstanceRecordValue *v =
            tandem__record__process_instance_record_value__unpack(
                NULL, b->records[i]->value.len, b->records[i]->value.data);
        assert_non_null(v);
        bool match = strcmp(v->element_id, element_id) == 0;
        tandem__record__process_instance_record_value__free_unpacked(v, NULL);
        if (match)
            return i;
    }
}

static Tandem__Command__Response *h_response(const Tandem__Record__Record *a)
{
    Tandem__Command__Response *resp = NULL;
    assert_int_equal(engine_response_build(a, 99, &resp), 0);
    assert_non_null(resp);
    assert_int_equal(resp->id, 99);
    if (resp->body_case == TANDEM__COMMAND__RESPONSE__BODY_ERROR)
        fprintf(stderr, "  (answer: error %d: %s)\n", resp->error->code,
                resp->error->message);
    return resp;
}

/* The single answer of the last round, as a response. */
static Tandem__Command__Response *h_answer(struct h *h)
{
    assert_int_equal(h->n_answers, 1);
    return h_response(h->answers[0]);
}

static char *h_read(const char *name, size_t *len)
{
    FILE *f = fopen(name, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", name);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[*len] = 0;
    return buf;
}

/* Deploys resources (name, xml) and runs the rounds a one-partition
 * engine needs; returns the response. */
static Tandem__Command__Response *h_deploy_xml(struct h *h, const char *name,
                                               const char *xml, size_t len)
{
    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__DeployResourceRequest d =
        GATEWAY_PROTOCOL__DEPLOY_RESOURCE_REQUEST__INIT;
    GatewayProtocol__Resource r = GATEWAY_PROTOCOL__RESOURCE__INIT;
    GatewayProtocol__Resource *rp = &r;
    r.name = (char *)name;
    r.content.data = (uint8_t *)xml;
    r.content.len = len;
    d.resources = &rp;
    d.n_resources = 1;
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE;
    q.deploy_resource = &d;
    h_round(h, h_cmd(h, &q));
    if (h->n_answers == 0)
        return NULL;
    return h_answer(h);
}

static Tandem__Command__Response *h_deploy_file(struct h *h, const char *file)
{
    size_t len;
    char *xml = h_read(file, &len);
    Tandem__Command__Response *resp = h_deploy_xml(h, file, xml, len);
    free(xml);
    return resp;
}

static Tandem__Record__Record *h_create_cmd(struct h *h, const char *id,
                                            const char *vars)
{
    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__CreateProcessInstanceRequest c =
        GATEWAY_PROTOCOL__CREATE_PROCESS_INSTANCE_REQUEST__INIT;
    c.bpmnprocessid = (char *)id;
    c.version = -1;
    c.variables = (char *)(vars ? vars : "");
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE;
    q.create_process_instance = &c;
    return h_cmd(h, &q);
}

/* Creates an instance; returns its key. */
static int64_t h_create(struct h *h, const char *id, const char *vars)
{
    h_round(h, h_create_cmd(h, id, vars));
    Tandem__Command__Response *resp = h_answer(h);
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_CREATE_PROCESS_INSTANCE);
    int64_t key = resp->create_process_instance->processinstancekey;
    assert_string_equal(resp->create_process_instance->bpmnprocessid, id);
    engine_response_free(resp);
    return key;
}

/* Activates up to max jobs of type; returns the response (caller frees). */
static Tandem__Command__Response *h_activate(struct h *h, const char *type,
                                             int max, int64_t timeout)
{
    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__ActivateJobsRequest a =
        GATEWAY_PROTOCOL__ACTIVATE_JOBS_REQUEST__INIT;
    a.type = (char *)type;
    a.worker = (char *)"w1";
    a.timeout = timeout;
    a.maxjobstoactivate = max;
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_ACTIVATE_JOBS;
    q.activate_jobs = &a;
    h_round(h, h_cmd(h, &q));
    Tandem__Command__Response *resp = h_answer(h);
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_ACTIVATE_JOBS);
    return resp;
}

/* Activates exactly one job of type and returns its key. */
static int64_t h_activate_one(struct h *h, const char *type)
{
    Tandem__Command__Response *resp = h_activate(h, type, 1, 60000);
    assert_int_equal(resp->activate_jobs->n_jobs, 1);
    int64_t key = resp->activate_jobs->jobs[0]->key;
    engine_response_free(resp);
    return key;
}

static Tandem__Command__Response *h_complete(struct h *h, int64_t job,
                                             const char *vars)
{
    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__CompleteJobRequest c =
        GATEWAY_PROTOCOL__COMPLETE_JOB_REQUEST__INIT;
    c.jobkey = job;
    c.variables = (char *)(vars ? vars : "");
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB;
    q.complete_job = &c;
    h_round(h, h_cmd(h, &q));
    return h_answer(h);
}

static Tandem__Command__Response *h_fail(struct h *h, int64_t job, int retries,
                                         int64_t backoff, const char *msg)
{
    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__FailJobRequest f =
        GATEWAY_PROTOCOL__FAIL_JOB_REQUEST__INIT;
    f.jobkey = job;
    f.retries = retries;
    f.retrybackoff = backoff;
    f.errormessage = (char *)(msg ? msg : "");
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB;
    q.fail_job = &f;
    h_round(h, h_cmd(h, &q));
    return h_answer(h);
}

static void h_expect_error(Tandem__Command__Response *resp, int code,
                           const char *message)
{
    assert_int_equal(resp->body_case, TANDEM__COMMAND__RESPONSE__BODY_ERROR);
    assert_int_equal(resp->error->code, code);
    if (strcmp(resp->error->message, message) != 0)
        fail_msg("message\n  got:  %s\n  want: %s", resp->error->message,
                 message);
    engine_response_free(resp);
}

static uint64_t h_incident_key(const Tandem__Record__RecordBatch *b,
                               const char *type, char *msg, size_t msglen)
{
    int i = h_find(b, TANDEM__RECORD__RECORD_TYPE__EVENT,
                   TANDEM__RECORD__VALUE_TYPE__INCIDENT,
                   TANDEM__RECORD__INCIDENT_INTENT__INCIDENT_CREATED, 0);
    assert_true(i >= 0);
    Tandem__Record__IncidentRecordValue *v =
        tandem__record__incident_record_value__unpack(
            NULL, b->records[i]->value.len, b->records[i]->value.data);
    assert_non_null(v);
    assert_string_equal(v->error_type, type);
    if (msg != NULL)
        snprintf(msg, msglen, "%s", v->error_message);
    tandem__record__incident_record_value__free_unpacked(v, NULL);
    return b->records[i]->key;
}

static Tandem__Command__Response *h_resolve(struct h *h, uint64_t incident)
{
    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__ResolveIncidentRequest r =
        GATEWAY_PROTOCOL__RESOLVE_INCIDENT_REQUEST__INIT;
    r.incidentkey = (int64_t)incident;
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_RESOLVE_INCIDENT;
    q.resolve_incident = &r;
    h_round(h, h_cmd(h, &q));
    return h_answer(h);
}

static char g_root[64];

static int setup(void **state)
{
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/tandem-engine-XXXXXX");
    if (mkdtemp(g_root) == NULL)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    return system(cmd) == 0 ? 0 : -1;
}

#define EV TANDEM__RECORD__RECORD_TYPE__EVENT
#define CMD TANDEM__RECORD__RECORD_TYPE__COMMAND
#define REJ TANDEM__RECORD__RECORD_TYPE__COMMAND_REJECTION
#define VT(x) TANDEM__RECORD__VALUE_TYPE__##x
#define PI(x) TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_##x
#define JOB(x) TANDEM__RECORD__JOB_INTENT__JOB_##x

/* ------------------------------------------------------------------------
 * Tests
 * --------------------------------------------------------------------- */

/* Deploy, create, activate, complete: the whole one-task flow. */
static void test_one_task_flow(void **state)
{
    struct h h;
    (void)state;
    h_open(&h, g_root, 1, 1);

    Tandem__Command__Response *resp = h_deploy_file(&h, "one-task.bpmn");
    assert_non_null(resp);
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_DEPLOY_RESOURCE);
    assert_int_equal(resp->deploy_resource->n_deployments, 1);
    GatewayProtocol__ProcessMetadata *pm =
        resp->deploy_resource->deployments[0]->process;
    assert_string_equal(pm->bpmnprocessid, "one-task");
    assert_int_equal(pm->version, 1);
    assert_int_equal((uint64_t)pm->processdefinitionkey >> 51, 1);
    assert_string_equal(pm->resourcename, "one-task.bpmn");
    assert_string_equal(resp->deploy_resource->tenantid, "<default>");
    engine_response_free(resp);
    assert_true(h_find(h.last, EV, VT(PROCESS),
                       TANDEM__RECORD__PROCESS_INTENT__PROCESS_CREATED,
                       0) >= 0);

    int64_t pi = h_create(&h, "one-task", "{\"x\":1}");
    assert_int_equal((uint64_t)pi >> 51, 1);
    /* The instance ran to the task and created its job. */
    assert_true(h_find_elem(h.last, PI(ELEMENT_ACTIVATED), "one-task") >= 0);
    assert_true(h_find_elem(h.last, PI(ELEMENT_COMPLETED), "start") >= 0);
    assert_true(h_find_elem(h.last, PI(SEQUENCE_FLOW_TAKEN), "to-work") >= 0);
    assert_true(h_find_elem(h.last, PI(ELEMENT_ACTIVATED), "work") >= 0);
    assert_int_equal(h_count(h.last, EV, VT(JOB), JOB(CREATED)), 1);
    assert_true(h.jobs_available > 0);
    assert_true(engine_jobs_activatable(h.e, "work"));
    assert_false(engine_jobs_activatable(h.e, "other"));

    struct engine_stats st;
    engine_stats_get(h.e, &st);
    assert_int_equal(st.processes, 1);
    assert_int_equal(st.instances_active, 1);
    assert_int_equal(st.jobs_activatable, 1);

    resp = h_activate(&h, "work", 5, 30000);
    assert_int_equal(resp->activate_jobs->n_jobs, 1);
    GatewayProtocol__ActivatedJob *job = resp->activate_jobs->jobs[0];
    int64_t job_key = job->key;
    assert_string_equal(job->type, "work");
    assert_string_equal(job->worker, "w1");
    assert_string_equal(job->variables, "{\"x\":1}");
    assert_string_equal(job->elementid, "work");
    assert_int_equal(job->processinstancekey, pi);
    assert_int_equal(job->deadline, (int64_t)T0 + 30000);
    assert_int_equal(job->retries, 3);
    engine_response_free(resp);
    engine_stats_get(h.e, &st);
    assert_int_equal(st.jobs_activatable, 0);
    assert_int_equal(st.jobs_activated, 1);
    assert_int_equal(engine_next_due(h.e), T0 + 30000);

    resp = h_complete(&h, job_key, "{\"y\":2}");
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_COMPLETE_JOB);
    engine_response_free(resp);
    assert_true(h_find_elem(h.last, PI(ELEMENT_COMPLETED), "work") >= 0);
    assert_true(h_find_elem(h.last, PI(ELEMENT_COMPLETED), "end") >= 0);
    assert_true(h_find_elem(h.last, PI(ELEMENT_COMPLETED), "one-task") >= 0);
    engine_stats_get(h.e, &st);
    assert_int_equal(st.instances_active, 0);
    assert_int_equal(st.jobs_activated, 0);
    assert_int_equal(engine_next_due(h.e), UINT64_MAX);

    /* Completing again: the job is gone. */
    resp = h_complete(&h, job_key, NULL);
    char want[256];
    snprintf(want, sizeof want,
             "Command 'COMPLETE' rejected with code 'NOT_FOUND': Expected to "
             "complete job with key '%lld', but no such job was found",
             (long long)job_key);
    h_expect_error(resp, TANDEM__COMMAND__CODE__NOT_FOUND, want);
    h_close(&h);
}

/* Replicas applying the same batches agree; snapshots round-trip;
 * entries at or below the applied index are skipped. */
static void test_determinism_snapshot(void **state)
{
    struct h a, b, c;
    (void)state;
    h_open(&a, g_root, 1, 1);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/replica", g_root);
    struct engine_options o = {dir, 1, 1, "8.4.0", 64u << 20};
    char err[256];
    memset(&b, 0, sizeof b);
    assert_int_equal(engine_open(&b.e, &o, err, sizeof err), 0);

    Tandem__Command__Response *resp = h_deploy_file(&a, "one-task.bpmn");
    engine_response_free(resp);
    h_create(&a, "one-task", "{\"n\":1}");
    h_create(&a, "one-task", NULL);
    int64_t job = h_activate_one(&a, "work");
    (void)job;

    /* Replay a's log into b: re-encode each applied batch. */
    /* (a keeps only the last batch, so replay from the start instead.) */
    h_close(&a);
    h_open(&a, g_root, 1, 1); /* same dir: state persisted */
    assert_int_equal(engine_applied_index(a.e), 4);
    uint64_t ha = engine_state_hash(a.e);

    /* b: fresh engine fed the same commands with the same clock. */
    b.pid = 1;
    b.now = T0;
    b.next_req = 1;
    resp = h_deploy_file(&b, "one-task.bpmn");
    engine_response_free(resp);
    h_create(&b, "one-task", "{\"n\":1}");
    h_create(&b, "one-task", NULL);
    h_activate_one(&b, "work");
    assert_int_equal(engine_state_hash(b.e), ha);

    /* Re-applying index 4 is a no-op. */
    struct engine_round r;
    Tandem__Record__Record *cmd = h_create_cmd(&b, "one-task", NULL);
    assert_int_equal(engine_process(b.e, b.now, 5 << 16, &cmd, 1, &r), 0);
    engine_record_free(cmd);
    Tandem__Record__RecordBatch *batch =
        tandem__record__record_batch__unpack(NULL, r.batch_len, r.batch);
    assert_non_null(batch);
    assert_int_equal(engine_apply_begin(b.e), 0);
    assert_int_equal(engine_apply_entry(b.e, 4, batch, NULL), 0);
    assert_int_equal(engine_apply_end(b.e), 0);
    assert_int_equal(engine_state_hash(b.e), ha);
    tandem__record__record_batch__free_unpacked(batch, NULL);
    engine_round_free(&r);

    /* Snapshot round trip into a third engine. */
    void *snap;
    size_t snap_len;
    assert_int_equal(engine_snapshot_encode(a.e, &snap, &snap_len), 0);
    snprintf(dir, sizeof dir, "%s/restored", g_root);
    o.dir = dir;
    memset(&c, 0, sizeof c);
    assert_int_equal(engine_open(&c.e, &o, err, sizeof err), 0);
    assert_int_equal(engine_snapshot_restore(c.e, snap, snap_len), 0);
    assert_int_equal(engine_state_hash(c.e), ha);
    assert_int_equal(engine_applied_index(c.e), 4);
    assert_int_equal(engine_next_due(c.e), engine_next_due(a.e));
    /* A damaged snapshot is refused and changes nothing. */
    ((unsigned char *)snap)[snap_len / 2] ^= 0x5a;
    assert_int_not_equal(engine_snapshot_restore(c.e, snap, snap_len), 0);
    assert_int_equal(engine_state_hash(c.e), ha);
    assert_int_equal(engine_snapshot_restore(c.e, "junk", 4), ENGINE_E_CORRUPT);
    free(snap);

    /* The restored engine continues the flow like the original. */
    c.pid = 1;
    c.now = T0;
    c.index = 4;
    c.next_req = 100;
    int64_t k2 = h_activate_one(&c, "work");
    resp = h_complete(&c, k2, NULL);
    engine_response_free(resp);
    h_close(&a);
    h_close(&b);
    h_close(&c);
}

/* Deploy with 3 partitions: distribution, acknowledgements, the answer;
 * duplicates and new versions. */
static void test_deploy_distribution(void **state)
{
    struct h p[3];
    (void)state;
    for (uint32_t i = 0; i < 3; i++)
        h_open(&p[i], g_root, i + 1, 3);

    Tandem__Command__Response *resp = h_deploy_file(&p[0], "one-task.bpmn");
    assert_null(resp); /* not answered before every partition has it */
    assert_int_equal(
        h_count(p[0].last, EV, VT(COMMAND_DISTRIBUTION),
                TANDEM__RECORD__COMMAND_DISTRIBUTION_INTENT__CD_DISTRIBUTING),
        2);
    struct engine_distribution d[4];
    size_t n = engine_distributions_pending(p[0].e, d, 4);
    assert_int_equal(n, 2);
    assert_int_equal(d[0].partition_id, 2);
    assert_int_equal(d[1].partition_id, 3);
    uint64_t dkey = d[0].distribution_key;

    /* Creating on partition 2 before the deployment arrives fails. */
    h_round(&p[1], h_create_cmd(&p[1], "one-task", NULL));
    h_expect_error(h_answer(&p[1]), TANDEM__COMMAND__CODE__NOT_FOUND,
                   "Command 'CREATE' rejected with code 'NOT_FOUND': Expected "
                   "to find process definition with process ID 'one-task', "
                   "but none found");

    for (size_t i = 0; i < n; i++) {
        struct h *t = &p[d[i].partition_id - 1];
        Tandem__Command__DistributeRequest dr =
            TANDEM__COMMAND__DISTRIBUTE_REQUEST__INIT;
        Tandem__Record__Record *cmd = NULL;
        char err[256];
        dr.source_partition_id = 1;
        dr.distribution_key = d[i].distribution_key;
        dr.record.data = d[i].record;
        dr.record.len = d[i].record_len;
        assert_int_equal(
            engine_command_from_distribute(t->e, &dr, &cmd, err, sizeof err),
            0);
        cmd->request_node = H_NODE;
        cmd->request_id = 500 + i;
        /* Delivered twice (a retry): processed idempotently. */
        Tandem__Record__Record *again = NULL;
        assert_int_equal(
            engine_command_from_distribute(t->e, &dr, &again, err, sizeof err),
            0);
        h_round(t, cmd);
        resp = h_answer(t);
        assert_int_equal(resp->body_case,
                         TANDEM__COMMAND__RESPONSE__BODY_DISTRIBUTE);
        engine_response_free(resp);
        assert_int_equal(h_count(t->last, EV, VT(PROCESS), 0), 1);
        h_round(t, again);
        assert_int_equal(h_count(t->last, EV, VT(PROCESS), 0), 0);
        free(d[i].record);
    }
    /* Partition 2 now runs instances of it with partition 1's keys. */
    int64_t pi = h_create(&p[1], "one-task", NULL);
    assert_int_equal((uint64_t)pi >> 51, 2);

    /* Acknowledgements: the last one answers the deploy. */
    Tandem__Record__Record *ack = NULL;
    assert_int_equal(engine_distribution_ack_command(p[0].e, dkey, 2, &ack), 0);
    assert_true(engine_command_is_exempt(ack));
    h_round(&p[0], ack);
    assert_int_equal(p[0].n_answers, 0);
    assert_int_equal(engine_distributions_pending(p[0].e, d, 4), 1);
    free(d[0].record);
    /* A duplicate acknowledgement is rejected, nobody answered. */
    assert_int_equal(engine_distribution_ack_command(p[0].e, dkey, 2, &ack), 0);
    h_round(&p[0], ack);
    assert_int_equal(
        h_count(p[0].last, REJ, VT(COMMAND_DISTRIBUTION),
                TANDEM__RECORD__COMMAND_DISTRIBUTION_INTENT__CD_ACKNOWLEDGE),
        1);
    assert_int_equal(p[0].n_answers, 0);
    assert_int_equal(engine_distribution_ack_command(p[0].e, dkey, 3, &ack), 0);
    h_round(&p[0], ack);
    resp = h_answer(&p[0]);
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_DEPLOY_RESOURCE);
    assert_int_equal(resp->deploy_resource->key, (int64_t)dkey);
    assert_int_equal(p[0].answers[0]->request_id, 1); /* the deploy's id */
    int64_t def1 =
        resp->deploy_resource->deployments[0]->process->processdefinitionkey;
    engine_response_free(resp);
    assert_int_equal(engine_distributions_pending(p[0].e, d, 4), 0);

    /* The same resource again: same version and key, no PROCESS record. */
    size_t len;
    char *xml = h_read("one-task.bpmn", &len);
    h_deploy_xml(&p[0], "one-task.bpmn", xml, len);
    assert_int_equal(h_count(p[0].last, EV, VT(PROCESS), 0), 0);
    n = engine_distributions_pending(p[0].e, d, 4);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        Tandem__Record__Record *a = NULL;
        free(d[i].record);
        assert_int_equal(engine_distribution_ack_command(p[0].e,
                                                         d[i].distribution_key,
                                                         d[i].partition_id, &a),
                         0);
        h_round(&p[0], a);
    }
    resp = h_answer(&p[0]);
    GatewayProtocol__ProcessMetadata *pm =
        resp->deploy_resource->deployments[0]->process;
    assert_int_equal(pm->version, 1);
    assert_int_equal(pm->processdefinitionkey, def1);
    engine_response_free(resp);

    /* A changed resource: the next version. */
    char *changed = malloc(len + 64);
    assert_non_null(changed);
    memcpy(changed, xml, len);
    memcpy(changed + len, "<!-- v2 -->", 12);
    h_deploy_xml(&p[0], "one-task.bpmn", changed, len + 11);
    int i = h_find(p[0].last, EV, VT(PROCESS), 0, 0);
    assert_true(i >= 0);
    Tandem__Record__ProcessRecordValue *pv =
        tandem__record__process_record_value__unpack(
            NULL, p[0].last->records[i]->value.len,
            p[0].last->records[i]->value.data);
    assert_int_equal(pv->version, 2);
    assert_int_not_equal(pv->process_definition_key, def1);
    assert_int_equal(pv->checksum.len, 32);
    tandem__record__process_record_value__free_unpacked(pv, NULL);
    n = engine_distributions_pending(p[0].e, d, 4);
    for (size_t k = 0; k < n; k++)
        free(d[k].record);
    free(changed);
    free(xml);

    /* Deploying on another partition or a non-BPMN file is refused. */
    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__DeployResourceRequest dq =
        GATEWAY_PROTOCOL__DEPLOY_RESOURCE_REQUEST__INIT;
    GatewayProtocol__Resource r = GATEWAY_PROTOCOL__RESOURCE__INIT;
    GatewayProtocol__Resource *rp = &r;
    r.name = (char *)"rules.dmn";
    r.content.data = (uint8_t *)"<x/>";
    r.content.len = 4;
    dq.resources = &rp;
    dq.n_resources = 1;
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE;
    q.deploy_resource = &dq;
    Tandem__Record__Record *rec = NULL;
    char err[512];
    assert_int_equal(
        engine_command_from_request(p[0].e, &q, 1, 1, &rec, err, sizeof err),
        ENGINE_E_INVALID);
    assert_non_null(strstr(err, "rules.dmn"));
    for (int k = 0; k < 3; k++)
        h_close(&p[k]);
}

/* FailJob with backoff, the backoff timer, retries exhausted -> incident,
 * UpdateJobRetries + ResolveIncident, job timeout. */
static void test_job_fail_timeout(void **state)
{
    struct h h;
    (void)state;
    h_open(&h, g_root, 1, 1);
    engine_response_free(h_deploy_file(&h, "one-task.bpmn"));
    h_create(&h, "one-task", NULL);
    int64_t job = h_activate_one(&h, "work");

    /* Fail with retries left and a backoff: not activatable until due. */
    Tandem__Command__Response *resp = h_fail(&h, job, 2, 1000, "boom");
    assert_int_equal(resp->body_case, TANDEM__COMMAND__RESPONSE__BODY_FAIL_JOB);
    engine_response_free(resp);
    assert_false(engine_jobs_activatable(h.e, "work"));
    assert_int_equal(engine_next_due(h.e), T0 + 1000);
    resp = h_activate(&h, "work", 1, 1000);
    assert_int_equal(resp->activate_jobs->n_jobs, 0);
    engine_response_free(resp);
    /* Failing it again now: it is in state FAILED. */
    resp = h_fail(&h, job, 1, 0, NULL);
    char want[256];
    snprintf(want, sizeof want,
             "Command 'FAIL' rejected with code 'INVALID_STATE': Expected to "
             "fail job with key '%lld', but it is in state 'FAILED'",
             (long long)job);
    h_expect_error(resp, TANDEM__COMMAND__CODE__FAILED_PRECONDITION, want);

    h.now = T0 + 999;
    assert_null(h_round(&h, NULL));
    h.now = T0 + 1000;
    Tandem__Record__RecordBatch *b = h_round(&h, NULL);
    assert_true(h_find(b, CMD, VT(JOB), JOB(RECUR_AFTER_BACKOFF), 0) >= 0);
    assert_true(h_find(b, EV, VT(JOB), JOB(RECURRED_AFTER_BACKOFF), 0) >= 0);
    assert_true(engine_jobs_activatable(h.e, "work"));
    resp = h_activate(&h, "work", 1, 500);
    assert_int_equal(resp->activate_jobs->n_jobs, 1);
    assert_int_equal(resp->activate_jobs->jobs[0]->retries, 2);
    engine_response_free(resp);

    /* The activation times out: activatable again, retries unchanged. */
    h.now = T0 + 1500;
    b = h_round(&h, NULL);
    assert_true(h_find(b, EV, VT(JOB), JOB(TIMED_OUT), 0) >= 0);
    resp = h_activate(&h, "work", 1, 60000);
    assert_int_equal(resp->activate_jobs->n_jobs, 1);
    assert_int_equal(resp->activate_jobs->jobs[0]->retries, 2);
    engine_response_free(resp);

    /* UpdateJobTimeout moves the deadline. */
    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__UpdateJobTimeoutRequest ut =
        GATEWAY_PROTOCOL__UPDATE_JOB_TIMEOUT_REQUEST__INIT;
    ut.jobkey = job;
    ut.timeout = 5000;
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_TIMEOUT;
    q.update_job_timeout = &ut;
    h_round(&h, h_cmd(&h, &q));
    resp = h_answer(&h);
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_UPDATE_JOB_TIMEOUT);
    engine_response_free(resp);
    assert_int_equal(engine_next_due(h.e), h.now + 5000);

    /* No retries left: an incident. */
    resp = h_fail(&h, job, 0, 0, "");
    engine_response_free(resp);
    char msg[256];
    uint64_t inc = h_incident_key(h.last, "JOB_NO_RETRIES", msg, sizeof msg);
    assert_string_equal(msg, "No more retries left.");
    struct engine_stats st;
    engine_stats_get(h.e, &st);
    assert_int_equal(st.incidents_open, 1);
    assert_false(engine_jobs_activatable(h.e, "work"));

    /* Retries raised, incident resolved: activatable again. */
    GatewayProtocol__UpdateJobRetriesRequest ur =
        GATEWAY_PROTOCOL__UPDATE_JOB_RETRIES_REQUEST__INIT;
    ur.jobkey = job;
    ur.retries = 3;
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_RETRIES;
    q.update_job_retries = &ur;
    h_round(&h, h_cmd(&h, &q));
    engine_response_free(h_answer(&h));
    assert_false(engine_jobs_activatable(h.e, "work"));
    resp = h_resolve(&h, inc);
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_RESOLVE_INCIDENT);
    engine_response_free(resp);
    assert_true(engine_jobs_activatable(h.e, "work"));
    resp = h_resolve(&h, inc);
    snprintf(want, sizeof want,
             "Command 'RESOLVE' rejected with code 'NOT_FOUND': Expected to "
             "resolve incident with key '%llu', but no such incident was "
             "found",
             (unsigned long long)inc);
    h_expect_error(resp, TANDEM__COMMAND__CODE__NOT_FOUND, want);
    h_close(&h);
}

/* PublishMessage: TTL expiry by timer, dedup by id, ttl 0. */
static void test_messages(void **state)
{
    struct h h;
    (void)state;
    h_open(&h, g_root, 1, 1);
    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__PublishMessageRequest m =
        GATEWAY_PROTOCOL__PUBLISH_MESSAGE_REQUEST__INIT;
    m.name = (char *)"order";
    m.correlationkey = (char *)"42";
    m.timetolive = 1000;
    m.messageid = (char *)"m-1";
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE;
    q.publish_message = &m;

    h_round(&h, h_cmd(&h, &q));
    Tandem__Command__Response *resp = h_answer(&h);
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_PUBLISH_MESSAGE);
    assert_int_equal((uint64_t)resp->publish_message->key >> 51, 1);
    assert_string_equal(resp->publish_message->tenantid, "<default>");
    engine_response_free(resp);
    assert_int_equal(engine_next_due(h.e), T0 + 1000);

    h_round(&h, h_cmd(&h, &q));
    h_expect_error(h_answer(&h), TANDEM__COMMAND__CODE__ALREADY_EXISTS,
                   "Command 'PUBLISH' rejected with code 'ALREADY_EXISTS': "
                   "Expected to publish a new message with id 'm-1', but a "
                   "message with that id was already published");

    h.now = T0 + 1000;
    Tandem__Record__RecordBatch *b = h_round(&h, NULL);
    assert_true(h_find(b, CMD, VT(MESSAGE),
                       TANDEM__RECORD__MESSAGE_INTENT__EXPIRE, 0) >= 0);
    assert_true(h_find(b, EV, VT(MESSAGE),
                       TANDEM__RECORD__MESSAGE_INTENT__EXPIRED, 0) >= 0);
    struct engine_stats st;
    engine_stats_get(h.e, &st);
    assert_int_equal(st.messages_alive, 0);
    assert_int_equal(engine_next_due(h.e), UINT64_MAX);

    /* Expired: the id is free again. ttl 0 expires in the same round. */
    m.timetolive = 0;
    b = h_round(&h, h_cmd(&h, &q));
    engine_response_free(h_answer(&h));
    assert_int_equal(
        h_count(b, EV, VT(MESSAGE), TANDEM__RECORD__MESSAGE_INTENT__EXPIRED),
        1);
    engine_stats_get(h.e, &st);
    assert_int_equal(st.messages_alive, 0);

    /* Bad variables are refused before they reach the log. */
    m.variables = (char *)"[1,2]";
    Tandem__Record__Record *rec = NULL;
    char err[256];
    assert_int_equal(
        engine_command_from_request(h.e, &q, 1, 1, &rec, err, sizeof err),
        ENGINE_E_INVALID);
    assert_string_equal(err, "Expected variables to be a JSON object, but "
                             "was 'ARRAY'");
    h_close(&h);
}

/* Exclusive and parallel gateways. */
static void test_gateways(void **state)
{
    struct h h;
    (void)state;
    h_open(&h, g_root, 1, 1);
    engine_response_free(h_deploy_file(&h, "gateways.bpmn"));
    h_create(&h, "gateways", "{\"amount\":150}");
    int64_t job = h_activate_one(&h, "prepare");
    engine_response_free(h_complete(&h, job, NULL));
    assert_true(h_find_elem(h.last, PI(SEQUENCE_FLOW_TAKEN), "f-big") >= 0);
    assert_int_equal(h_find_elem(h.last, PI(SEQUENCE_FLOW_TAKEN), "f-small"),
                     -1);
    assert_false(engine_jobs_activatable(h.e, "small"));
    job = h_activate_one(&h, "big");
    engine_response_free(h_complete(&h, job, NULL));
    /* Fork: both branches. */
    assert_true(engine_jobs_activatable(h.e, "left"));
    assert_true(engine_jobs_activatable(h.e, "right"));
    job = h_activate_one(&h, "left");
    engine_response_free(h_complete(&h, job, NULL));
    assert_int_equal(h_find_elem(h.last, PI(ELEMENT_ACTIVATING), "join"), -1);
    job = h_activate_one(&h, "right");
    engine_response_free(h_complete(&h, job, NULL));
    assert_true(h_find_elem(h.last, PI(ELEMENT_COMPLETED), "join") >= 0);
    assert_true(h_find_elem(h.last, PI(ELEMENT_COMPLETED), "gateways") >= 0);

    /* The default flow. */
    h_create(&h, "gateways", "{\"amount\":5}");
    job = h_activate_one(&h, "prepare");
    engine_response_free(h_complete(&h, job, NULL));
    assert_true(h_find_elem(h.last, PI(SEQUENCE_FLOW_TAKEN), "f-small") >= 0);
    struct engine_stats st;
    engine_stats_get(h.e, &st);
    assert_int_equal(st.instances_active, 1);
    h_close(&h);
}

static const char *NO_DEFAULT_XML =
    "<?xml version=\"1.0\"?>\n"
    "<definitions xmlns=\"http://www.omg.org/spec/BPMN/20100524/MODEL\" "
    "xmlns:zeebe=\"http://camunda.org/schema/zeebe/1.0\" "
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" id=\"d\">\n"
    "<process id=\"choose\" isExecutable=\"true\">\n"
    "<startEvent id=\"s\"/>\n"
    "<sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"g\"/>\n"
    "<exclusiveGateway id=\"g\"/>\n"
    "<sequenceFlow id=\"f-yes\" sourceRef=\"g\" targetRef=\"t\">"
    "<conditionExpression xsi:type=\"tFormalExpression\">=ok = true"
    "</conditionExpression></sequenceFlow>\n"
    "<sequenceFlow id=\"f-no\" sourceRef=\"g\" targetRef=\"e\">"
    "<conditionExpression xsi:type=\"tFormalExpression\">=ok = false"
    "</conditionExpression></sequenceFlow>\n"
    "<serviceTask id=\"t\"><extensionElements>"
    "<zeebe:taskDefinition type=\"yes\"/></extensionElements></serviceTask>\n"
    "<sequenceFlow id=\"f2\" sourceRef=\"t\" targetRef=\"e\"/>\n"
    "<endEvent id=\"e\"/>\n"
    "</process></definitions>\n";

/* No condition true and no default: an incident; fixed by SetVariables
 * and ResolveIncident. */
static void test_condition_incident(void **state)
{
    struct h h;
    (void)state;
    h_open(&h, g_root, 1, 1);
    engine_response_free(h_deploy_xml(&h, "choose.bpmn", NO_DEFAULT_XML,
                                      strlen(NO_DEFAULT_XML)));
    int64_t pi = h_create(&h, "choose", "{\"ok\":\"maybe\"}");
    char msg[256];
    uint64_t inc = h_incident_key(h.last, "CONDITION_ERROR", msg, sizeof msg);
    assert_string_equal(msg, "Expected at least one condition to evaluate "
                             "to true, or to have a default flow");

    /* Set ok = true on the instance (propagates to the root scope). */
    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__SetVariablesRequest sv =
        GATEWAY_PROTOCOL__SET_VARIABLES_REQUEST__INIT;
    sv.elementinstancekey = pi;
    sv.variables = (char *)"{\"ok\":true}";
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_SET_VARIABLES;
    q.set_variables = &sv;
    Tandem__Record__RecordBatch *b = h_round(&h, h_cmd(&h, &q));
    Tandem__Command__Response *resp = h_answer(&h);
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_SET_VARIABLES);
    assert_true(resp->set_variables->key > 0);
    engine_response_free(resp);
    assert_int_equal(h_count(b, EV, VT(VARIABLE),
                             TANDEM__RECORD__VARIABLE_INTENT__VARIABLE_UPDATED),
                     1);

    resp = h_resolve(&h, inc);
    engine_response_free(resp);
    assert_true(h_find_elem(h.last, PI(SEQUENCE_FLOW_TAKEN), "f-yes") >= 0);
    assert_true(engine_jobs_activatable(h.e, "yes"));

    /* SetVariables on an unknown scope. */
    sv.elementinstancekey = (int64_t)(1ull << 51 | 999999);
    h_round(&h, h_cmd(&h, &q));
    h_expect_error(h_answer(&h), TANDEM__COMMAND__CODE__NOT_FOUND,
                   "Command 'UPDATE' rejected with code 'NOT_FOUND': Expected "
                   "to update variables for element with key "
                   "'2251799814685247', but no such element was found");
    h_close(&h);
}

/* ThrowError: caught by the boundary event, or an incident. */
static void test_error_boundary(void **state)
{
    struct h h;
    (void)state;
    h_open(&h, g_root, 1, 1);
    engine_response_free(h_deploy_file(&h, "error-boundary.bpmn"));
    h_create(&h, "error-boundary", NULL);
    int64_t job = h_activate_one(&h, "lookup");

    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__ThrowErrorRequest te =
        GATEWAY_PROTOCOL__THROW_ERROR_REQUEST__INIT;
    te.jobkey = job;
    te.errorcode = (char *)"NOT_FOUND";
    te.errormessage = (char *)"no such thing";
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_THROW_ERROR;
    q.throw_error = &te;
    h_round(&h, h_cmd(&h, &q));
    Tandem__Command__Response *resp = h_answer(&h);
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_THROW_ERROR);
    engine_response_free(resp);
    assert_true(h_find_elem(h.last, PI(ELEMENT_TERMINATED), "lookup") >= 0);
    assert_true(h_find_elem(h.last, PI(ELEMENT_COMPLETED), "not-found") >= 0);
    assert_true(h_find_elem(h.last, PI(ELEMENT_COMPLETED), "end-not-found") >=
                0);
    assert_true(h_find_elem(h.last, PI(ELEMENT_COMPLETED), "error-boundary") >=
                0);
    struct engine_stats st;
    engine_stats_get(h.e, &st);
    assert_int_equal(st.instances_active, 0);
    assert_int_equal(st.jobs_activated + st.jobs_activatable, 0);

    /* An uncaught code: incident; resolving makes the job activatable. */
    h_create(&h, "error-boundary", NULL);
    job = h_activate_one(&h, "lookup");
    te.jobkey = job;
    te.errorcode = (char *)"OTHER";
    h_round(&h, h_cmd(&h, &q));
    engine_response_free(h_answer(&h));
    char msg[512];
    uint64_t inc =
        h_incident_key(h.last, "UNHANDLED_ERROR_EVENT", msg, sizeof msg);
    assert_string_equal(msg, "Expected to throw an error event with the code "
                             "'OTHER' with message 'no such thing', but it "
                             "was not caught. No error events are available "
                             "in the scope.");
    assert_false(engine_jobs_activatable(h.e, "lookup"));
    engine_response_free(h_resolve(&h, inc));
    assert_true(engine_jobs_activatable(h.e, "lookup"));
    h_close(&h);
}

/* CancelProcessInstance. */
static void test_cancel(void **state)
{
    struct h h;
    (void)state;
    h_open(&h, g_root, 1, 1);
    engine_response_free(h_deploy_file(&h, "one-task.bpmn"));
    int64_t pi = h_create(&h, "one-task", NULL);
    h_activate_one(&h, "work");

    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__CancelProcessInstanceRequest c =
        GATEWAY_PROTOCOL__CANCEL_PROCESS_INSTANCE_REQUEST__INIT;
    c.processinstancekey = pi;
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_CANCEL_PROCESS_INSTANCE;
    q.cancel_process_instance = &c;
    Tandem__Record__RecordBatch *b = h_round(&h, h_cmd(&h, &q));
    Tandem__Command__Response *resp = h_answer(&h);
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_CANCEL_PROCESS_INSTANCE);
    engine_response_free(resp);
    assert_int_equal(h.answers[0]->intent, PI(ELEMENT_TERMINATING));
    assert_true(h_find(b, EV, VT(JOB), JOB(CANCELED), 0) >= 0);
    assert_true(h_find_elem(b, PI(ELEMENT_TERMINATED), "work") >= 0);
    assert_true(h_find_elem(b, PI(ELEMENT_TERMINATED), "one-task") >= 0);
    struct engine_stats st;
    engine_stats_get(h.e, &st);
    assert_int_equal(st.instances_active, 0);
    assert_int_equal(st.jobs_activated, 0);

    h_round(&h, h_cmd(&h, &q));
    char want[256];
    snprintf(want, sizeof want,
             "Command 'CANCEL' rejected with code 'NOT_FOUND': Expected to "
             "cancel a process instance with key '%lld', but no such process "
             "was found",
             (long long)pi);
    h_expect_error(h_answer(&h), TANDEM__COMMAND__CODE__NOT_FOUND, want);

    /* A key of another partition never reaches the log. */
    c.processinstancekey = (int64_t)(2ull << 51 | 5);
    Tandem__Record__Record *rec = NULL;
    char err[256];
    assert_int_equal(
        engine_command_from_request(h.e, &q, 1, 1, &rec, err, sizeof err),
        ENGINE_E_INVALID);
    h_close(&h);
}

static const char *EXPR_XML =
    "<?xml version=\"1.0\"?>\n"
    "<definitions xmlns=\"http://www.omg.org/spec/BPMN/20100524/MODEL\" "
    "xmlns:zeebe=\"http://camunda.org/schema/zeebe/1.0\" id=\"d\">\n"
    "<process id=\"expr\" isExecutable=\"true\">\n"
    "<startEvent id=\"s\"/>\n"
    "<sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"t\"/>\n"
    "<serviceTask id=\"t\"><extensionElements>"
    "<zeebe:taskDefinition type=\"= &quot;ship-&quot; + carrier\" "
    "retries=\"=maxRetries\"/></extensionElements></serviceTask>\n"
    "<sequenceFlow id=\"f2\" sourceRef=\"t\" targetRef=\"e\"/>\n"
    "<endEvent id=\"e\"/>\n"
    "</process></definitions>\n";

/* CreateProcessInstanceWithResult and IO mappings with expressions. */
static void test_with_result_io_mapping(void **state)
{
    struct h h;
    (void)state;
    h_open(&h, g_root, 1, 1);
    engine_response_free(h_deploy_file(&h, "io-mapping.bpmn"));

    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__CreateProcessInstanceRequest c =
        GATEWAY_PROTOCOL__CREATE_PROCESS_INSTANCE_REQUEST__INIT;
    GatewayProtocol__CreateProcessInstanceWithResultRequest w =
        GATEWAY_PROTOCOL__CREATE_PROCESS_INSTANCE_WITH_RESULT_REQUEST__INIT;
    char *fetch[] = {(char *)"order"};
    c.bpmnprocessid = (char *)"io-mapping";
    c.version = -1;
    c.variables = (char *)"{\"order\":{\"id\":7}}";
    w.request = &c;
    w.fetchvariables = fetch;
    w.n_fetchvariables = 1;
    q.body_case =
        TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT;
    q.create_process_instance_with_result = &w;
    h_round(&h, h_cmd(&h, &q));
    assert_int_equal(h.n_answers, 0); /* answered at completion */

    Tandem__Command__Response *resp = h_activate(&h, "ship", 1, 10000);
    assert_int_equal(resp->activate_jobs->n_jobs, 1);
    GatewayProtocol__ActivatedJob *j = resp->activate_jobs->jobs[0];
    assert_int_equal(j->retries, 2);
    json_t *vars = json_loads(j->variables, 0, NULL);
    assert_non_null(vars);
    assert_int_equal(json_integer_value(json_object_get(vars, "orderId")), 7);
    json_t *shipping = json_object_get(vars, "shipping");
    assert_string_equal(json_string_value(json_object_get(shipping, "mode")),
                        "express");
    json_decref(vars);
    json_t *hdrs = json_loads(j->customheaders, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(hdrs, "priority")),
                        "high");
    json_decref(hdrs);
    int64_t job = j->key;
    engine_response_free(resp);

    Tandem__Command__Request cq = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__CompleteJobRequest cj =
        GATEWAY_PROTOCOL__COMPLETE_JOB_REQUEST__INIT;
    cj.jobkey = job;
    cj.variables = (char *)"{\"trackingNumber\":\"T-1\"}";
    cq.body_case = TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB;
    cq.complete_job = &cj;
    h_round(&h, h_cmd(&h, &cq));
    assert_int_equal(h.n_answers, 2); /* the completion and the result */
    resp = h_response(h.answers[0]);
    assert_int_equal(resp->body_case,
                     TANDEM__COMMAND__RESPONSE__BODY_COMPLETE_JOB);
    engine_response_free(resp);
    resp = h_response(h.answers[1]);
    assert_int_equal(
        resp->body_case,
        TANDEM__COMMAND__RESPONSE__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT);
    vars = json_loads(resp->create_process_instance_with_result->variables, 0,
                      NULL);
    assert_non_null(vars);
    assert_int_equal(json_object_size(vars), 1); /* fetchVariables */
    json_t *order = json_object_get(vars, "order");
    assert_int_equal(json_integer_value(json_object_get(order, "id")), 7);
    assert_string_equal(json_string_value(json_object_get(order, "tracking")),
                        "T-1");
    json_decref(vars);
    engine_response_free(resp);

    /* Job type and retries from expressions; a failing one raises an
     * incident, never a crash. */
    engine_response_free(
        h_deploy_xml(&h, "expr.bpmn", EXPR_XML, strlen(EXPR_XML)));
    h_create(&h, "expr", "{\"carrier\":\"dhl\",\"maxRetries\":4}");
    resp = h_activate(&h, "ship-dhl", 1, 10000);
    assert_int_equal(resp->activate_jobs->n_jobs, 1);
    assert_int_equal(resp->activate_jobs->jobs[0]->retries, 4);
    engine_response_free(resp);
    h_create(&h, "expr", "{\"carrier\":5,\"maxRetries\":4}");
    char msg[256];
    h_incident_key(h.last, "EXTRACT_VALUE_ERROR", msg, sizeof msg);
    assert_non_null(strstr(msg, "to be 'STRING'"));
    h_close(&h);
}

/* Round limits: a command whose results exceed the batch is rejected
 * alone; later ones wait for the next round. */
static void test_round_limits(void **state)
{
    struct h h;
    (void)state;
    h_open(&h, g_root, 1, 1);
    Tandem__Command__Request q = TANDEM__COMMAND__REQUEST__INIT;
    GatewayProtocol__PublishMessageRequest m =
        GATEWAY_PROTOCOL__PUBLISH_MESSAGE_REQUEST__INIT;
    size_t big = 900 * 1024;
    char *vars = malloc(big + 16);
    assert_non_null(vars);
    memcpy(vars, "{\"a\":\"", 6);
    memset(vars + 6, 'x', big);
    memcpy(vars + 6 + big, "\"}", 3);
    m.name = (char *)"big";
    m.correlationkey = (char *)"k";
    m.timetolive = 10000;
    m.variables = vars;
    q.body_case = TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE;
    q.publish_message = &m;
    Tandem__Record__Record *cmds[4];
    for (int i = 0; i < 4; i++)
        cmds[i] = h_cmd(&h, &q);
    free(vars);
    struct engine_round r;
    assert_int_equal(engine_process(h.e, h.now, 1 << 16, cmds, 4, &r), 0);
    assert_true(r.consumed >= 1 && r.consumed < 4);
    assert_true(r.batch_len <= ENGINE_BATCH_BYTES_MAX);
    engine_round_free(&r);
    for (int i = 0; i < 4; i++)
        engine_record_free(cmds[i]);
    h_close(&h);
}

/* The exporters' positions: EXPORTER UPDATE -> UPDATED in the state
 * (survives a snapshot round trip), positions only move forward, DELETE
 * forgets the row. */
static void test_exporter_positions(void **state)
{
    struct h h;
    struct h g;
    Tandem__Record__Record *cmd = NULL;
    Tandem__Record__RecordBatch *b;
    int64_t position;
    void *meta = NULL;
    size_t meta_len = 0;
    void *snap;
    size_t snap_len;
    (void)state;
    h_open(&h, g_root, 1, 1);
    assert_int_equal(engine_exporter_get(h.e, "region0", &position, NULL,
                                         NULL, NULL),
                     1);
    assert_int_equal(position, -1);
    assert_int_equal(engine_exporter_command(h.e, false, "region0",
                                             (5 << 16) | 2, "meta", 4, 0,
                                             &cmd),
                     0);
    assert_true(engine_command_is_exempt(cmd));
    b = h_round(&h, cmd);
    assert_non_null(b);
    assert_true(h_find(b, TANDEM__RECORD__RECORD_TYPE__EVENT, TANDEM__RECORD__VALUE_TYPE__EXPORTER,
                       TANDEM__RECORD__EXPORTER_INTENT__EXPORTER_UPDATED, 0) >= 0);
    assert_int_equal(engine_exporter_get(h.e, "region0", &position, &meta,
                                         &meta_len, NULL),
                     0);
    assert_int_equal(position, (5 << 16) | 2);
    assert_int_equal(meta_len, 4);
    assert_memory_equal(meta, "meta", 4);
    free(meta);
    /* An older position is refused, the row unchanged. */
    assert_int_equal(engine_exporter_command(h.e, false, "region0", 7, NULL,
                                             0, 0, &cmd),
                     0);
    b = h_round(&h, cmd);
    assert_true(h_find(b, TANDEM__RECORD__RECORD_TYPE__COMMAND_REJECTION,
                       TANDEM__RECORD__VALUE_TYPE__EXPORTER,
                       TANDEM__RECORD__EXPORTER_INTENT__EXPORTER_UPDATE, 0) >= 0);
    assert_int_equal(engine_exporter_get(h.e, "region0", &position, NULL,
                                         NULL, NULL),
                     0);
    assert_int_equal(position, (5 << 16) | 2);
    /* A snapshot carries the row to another replica. */
    assert_int_equal(engine_snapshot_encode(h.e, &snap, &snap_len), 0);
    h_open(&g, g_root, 2, 2);
    assert_int_equal(engine_snapshot_restore(g.e, snap, snap_len), 0);
    free(snap);
    assert_int_equal(engine_exporter_get(g.e, "region0", &position, NULL,
                                         NULL, NULL),
                     0);
    assert_int_equal(position, (5 << 16) | 2);
    h_close(&g);
    /* DELETE (exporter disabled) forgets it. */
    assert_int_equal(engine_exporter_command(h.e, true, "region0", -1, NULL,
                                             0, 0, &cmd),
                     0);
    b = h_round(&h, cmd);
    assert_true(h_find(b, TANDEM__RECORD__RECORD_TYPE__EVENT, TANDEM__RECORD__VALUE_TYPE__EXPORTER,
                       TANDEM__RECORD__EXPORTER_INTENT__EXPORTER_DELETED, 0) >= 0);
    assert_int_equal(engine_exporter_get(h.e, "region0", &position, NULL,
                                         NULL, NULL),
                     1);
    assert_int_equal(engine_exporter_command(h.e, false, "", 1, NULL, 0, 0,
                                             &cmd),
                     ENGINE_E_INVALID);
    h_close(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_task_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_determinism_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deploy_distribution, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_job_fail_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_condition_incident, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_error_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_with_result_io_mapping, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_round_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exporter_positions, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
