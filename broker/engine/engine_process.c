/* engine_process.c: one processing round, and the command processors of
 * deployments, distributions, jobs, job batches, messages and incidents
 * (BPMN element processors are in engine_bpmn.c).
 *
 * Data flow of a round (engine_process):
 *
 *   begin an LMDB write transaction (never committed)
 *   for each queued command, in a nested transaction:
 *     append the command to the batch; dispatch it to its processor; the
 *     processor reads state and eng_emit()s events (applied at once, so
 *     later records see them), rejections and follow-up commands; every
 *     follow-up command in the batch is processed in turn (FIFO) until
 *     none is left; if the batch grew past ENGINE_RECORDS_PER_BATCH_MAX /
 *     ENGINE_BATCH_BYTES_MAX, the nested transaction is rolled back and
 *     the command stays queued (the first command of a round is rejected
 *     instead, so a round always consumes one)
 *   then the due timers (job deadlines, job backoffs, message TTLs) become
 *   commands processed the same way
 *   abort the transaction; pack the records into one RecordBatch.
 */
#define _POSIX_C_SOURCE 200809L
#include "broker/engine/engine_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Records of the round
 * --------------------------------------------------------------------- */

static void eng_rec_free(Tandem__Record__Record *r)
{
    if (r == NULL)
        return;
    free(r->value.data);
    if (r->broker_version != protobuf_c_empty_string)
        free(r->broker_version);
    if (r->rejection_reason != protobuf_c_empty_string)
        free(r->rejection_reason);
    free(r);
}

static int eng_nomem(struct eng_ctx *c)
{
    if (c->fail == 0)
        c->fail = ENGINE_E_NOMEM;
    return ENGINE_E_NOMEM;
}

uint64_t eng_key_next(struct eng_ctx *c)
{
    ENGINE_ASSERT(c->processing);
    *c->key_counter += 1;
    ENGINE_ASSERT(*c->key_counter < (UINT64_C(1) << ENGINE_KEY_BITS));
    return (uint64_t)c->e->partition_id << ENGINE_KEY_BITS | *c->key_counter;
}

const Tandem__Record__Record *eng_cur(const struct eng_ctx *c)
{
    ENGINE_ASSERT(c->cur < c->n);
    return c->recs[c->cur];
}

struct eng_answer eng_answer_of(const Tandem__Record__Record *rec)
{
    struct eng_answer a = {rec->request_node, rec->request_id};
    return a;
}

/* Appends a fully built record (takes ownership) and applies it. */
static int eng_append(struct eng_ctx *c, Tandem__Record__Record *r)
{
    size_t size = tandem__record__record__get_packed_size(r) + 8;

    if (c->n >= ENGINE_RECORDS_PER_BATCH_MAX ||
        c->bytes + size > ENGINE_BATCH_BYTES_MAX) {
        eng_rec_free(r);
        if (c->fail == 0)
            c->fail = ENGINE_E_FULL;
        return ENGINE_E_FULL;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        Tandem__Record__Record **p = realloc(c->recs, cap * sizeof *p);
        if (p == NULL) {
            eng_rec_free(r);
            return eng_nomem(c);
        }
        c->recs = p;
        c->cap = cap;
    }
    c->recs[c->n++] = r;
    c->bytes += size;
    int rc = eng_apply_record(c, r, c->first_position + c->n - 1);
    if (rc < 0 && c->fail == 0)
        c->fail = rc;
    return rc < 0 ? rc : 0;
}

static Tandem__Record__Record *eng_rec_new(struct eng_ctx *c)
{
    Tandem__Record__Record *r = malloc(sizeof *r);
    if (r == NULL)
        return NULL;
    tandem__record__record__init(r);
    r->timestamp = c->now;
    r->broker_version = strdup(c->e->broker_version);
    if (r->broker_version == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

static int eng_emit_raw(struct eng_ctx *c, Tandem__Record__RecordType rt,
                        Tandem__Record__ValueType vt, uint32_t intent,
                        uint64_t key, const void *value, size_t len,
                        const struct eng_answer *ans)
{
    Tandem__Record__Record *r;

    if (c->fail != 0)
        return c->fail;
    r = eng_rec_new(c);
    if (r == NULL)
        return eng_nomem(c);
    r->record_type = rt;
    r->value_type = vt;
    r->intent = intent;
    r->key = key;
    r->source_record_position = c->first_position + c->cur;
    if (len > 0) {
        r->value.data = malloc(len);
        if (r->value.data == NULL) {
            eng_rec_free(r);
            return eng_nomem(c);
        }
        memcpy(r->value.data, value, len);
        r->value.len = len;
    }
    if (ans != NULL) {
        r->request_node = ans->node;
        r->request_id = ans->id;
    }
    return eng_append(c, r);
}

int eng_emit(struct eng_ctx *c, Tandem__Record__RecordType rt,
             Tandem__Record__ValueType vt, uint32_t intent, uint64_t key,
             const ProtobufCMessage *value, const struct eng_answer *ans)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc;

    ENGINE_ASSERT(c->processing);
    ENGINE_ASSERT(rt == RT_COMMAND || rt == RT_EVENT);
    if (c->fail != 0)
        return c->fail;
    if (value != NULL) {
        len = protobuf_c_message_get_packed_size(value);
        if (len > ENGINE_BATCH_BYTES_MAX) {
            if (c->fail == 0)
                c->fail = ENGINE_E_FULL;
            return ENGINE_E_FULL;
        }
        buf = malloc(len + 1);
        if (buf == NULL)
            return eng_nomem(c);
        protobuf_c_message_pack(value, buf);
    }
    rc = eng_emit_raw(c, rt, vt, intent, key, buf, len, ans);
    free(buf);
    return rc;
}

int eng_emit_rejection(struct eng_ctx *c, Tandem__Record__ValueType vt,
                       uint32_t intent, uint64_t key,
                       Tandem__Record__RejectionType type, const char *reason,
                       const struct eng_answer *ans)
{
    int rc = eng_emit_raw(c, RT_REJECTION, vt, intent, key, NULL, 0, ans);
    if (rc != 0)
        return rc;
    Tandem__Record__Record *r = c->recs[c->n - 1];
    r->rejection_type = type;
    r->rejection_reason = strdup(reason);
    if (r->rejection_reason == NULL) {
        r->rejection_reason = (char *)protobuf_c_empty_string;
        return eng_nomem(c);
    }
    c->bytes += strlen(reason) + 4;
    return 0;
}

int eng_reject(struct eng_ctx *c, Tandem__Record__RejectionType type,
               const char *fmt, ...)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    struct eng_answer ans = eng_answer_of(cmd);
    char reason[1024];
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    rc = eng_emit_raw(c, RT_REJECTION, cmd->value_type, cmd->intent, cmd->key,
                      cmd->value.data, cmd->value.len,
                      cmd->request_id ? &ans : NULL);
    if (rc != 0)
        return rc;
    Tandem__Record__Record *r = c->recs[c->n - 1];
    r->rejection_type = type;
    r->rejection_reason = strdup(reason);
    if (r->rejection_reason == NULL) {
        r->rejection_reason = (char *)protobuf_c_empty_string;
        return eng_nomem(c);
    }
    /* The packed size grew by the reason: account for it. */
    c->bytes += strlen(reason) + 4;
    return 0;
}

/* ------------------------------------------------------------------------
 * Validation shared with engine_command_from_request
 * --------------------------------------------------------------------- */

static const char *eng_json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "OBJECT";
    case JSON_ARRAY:
        return "ARRAY";
    case JSON_STRING:
        return "STRING";
    case JSON_INTEGER:
    case JSON_REAL:
        return "NUMBER";
    case JSON_TRUE:
    case JSON_FALSE:
        return "BOOLEAN";
    default:
        return "NIL";
    }
}

int eng_json_object_check(const char *what, const char *text, char *err,
                          size_t errlen)
{
    json_error_t je;
    json_t *j;
    size_t n = text != NULL ? strlen(text) : 0;

    if (n == 0)
        return 0;
    if (n > ENG_JSON_BYTES_MAX) {
        snprintf(err, errlen,
                 "Expected %s to be a JSON object of at most %u bytes, but "
                 "it has %zu bytes",
                 what, ENG_JSON_BYTES_MAX, n);
        return ENGINE_E_INVALID;
    }
    j = json_loadb(text, n, JSON_DECODE_ANY, &je);
    if (j == NULL) {
        snprintf(err, errlen,
                 "Expected %s to be a JSON object, but it is not valid JSON: "
                 "%s (line %d, column %d)",
                 what, je.text, je.line, je.column);
        return ENGINE_E_INVALID;
    }
    if (!json_is_object(j)) {
        snprintf(err, errlen, "Expected %s to be a JSON object, but was '%s'",
                 what, eng_json_type_name(j));
        json_decref(j);
        return ENGINE_E_INVALID;
    }
    const char *name;
    json_t *val;
    json_object_foreach(j, name, val)
    {
        size_t nl = strlen(name);
        if (nl == 0 || nl > ENG_NAME_BYTES_MAX) {
            snprintf(err, errlen,
                     "Expected %s to have variable names of 1 to %u bytes, "
                     "but one has %zu bytes",
                     what, ENG_NAME_BYTES_MAX, nl);
            json_decref(j);
            return ENGINE_E_INVALID;
        }
    }
    json_decref(j);
    return 0;
}

static bool eng_has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int eng_feel_check(const char *res, const struct bpmn_element *el,
                          const char *text, char *err, size_t errlen)
{
    struct feel_expr *x = NULL;
    char ferr[256];

    if (text == NULL)
        return 0;
    if (feel_parse(text, &x, ferr, sizeof ferr) != 0) {
        snprintf(err, errlen,
                 "Expected to deploy new resources, but encountered the "
                 "following errors:\n'%s': invalid expression '%s' of "
                 "element '%s': %s",
                 res, text, el->id, ferr);
        return ENGINE_E_INVALID;
    }
    feel_expr_free(x);
    return 0;
}

static int eng_defs_check(const char *res, const struct bpmn_definitions *d,
                          char *err, size_t errlen)
{
    for (size_t p = 0; p < d->n_processes; p++) {
        const struct bpmn_process *pr = &d->processes[p];
        if (strlen(pr->id) > ENG_NAME_BYTES_MAX) {
            snprintf(err, errlen,
                     "Expected to deploy new resources, but encountered the "
                     "following errors:\n'%s': process id longer than %u "
                     "bytes",
                     res, ENG_NAME_BYTES_MAX);
            return ENGINE_E_INVALID;
        }
        for (size_t i = 0; i < pr->n_elements; i++) {
            const struct bpmn_element *el = &pr->elements[i];
            int rc = 0;
            if (strlen(el->id) > ENG_NAME_BYTES_MAX) {
                snprintf(err, errlen,
                         "Expected to deploy new resources, but encountered "
                         "the following errors:\n'%s': element id longer "
                         "than %u bytes",
                         res, ENG_NAME_BYTES_MAX);
                return ENGINE_E_INVALID;
            }
            rc = eng_feel_check(res, el, el->condition, err, errlen);
            if (rc == 0 && el->job_type.is_expr)
                rc = eng_feel_check(res, el, el->job_type.text, err, errlen);
            if (rc == 0 && el->job_retries.is_expr)
                rc = eng_feel_check(res, el, el->job_retries.text, err, errlen);
            for (size_t m = 0; rc == 0 && m < el->n_inputs; m++)
                rc = eng_feel_check(res, el, el->inputs[m].source, err, errlen);
            for (size_t m = 0; rc == 0 && m < el->n_outputs; m++)
                rc =
                    eng_feel_check(res, el, el->outputs[m].source, err, errlen);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

int eng_deploy_validate(const Tandem__Record__DeploymentRecordValue *v,
                        char *err, size_t errlen)
{
    const char **ids = NULL, **owners = NULL;
    size_t n_ids = 0;
    int rv = 0;

    if (v->n_resources == 0) {
        snprintf(err, errlen,
                 "Expected to deploy at least one resource, but none given");
        return ENGINE_E_INVALID;
    }
    for (size_t i = 0; i < v->n_resources && rv == 0; i++) {
        const Tandem__Record__DeploymentResource *r = v->resources[i];
        struct bpmn_definitions *d = NULL;
        char perr[512];

        if (!eng_has_suffix(r->resource_name, ".bpmn") &&
            !eng_has_suffix(r->resource_name, ".xml")) {
            snprintf(err, errlen,
                     "Expected to deploy BPMN resources (file names ending in "
                     "'.bpmn' or '.xml'), but resource '%s' is not a BPMN "
                     "file (DMN and forms are not supported)",
                     r->resource_name);
            rv = ENGINE_E_INVALID;
            break;
        }
        int prc = bpmn_parse((const char *)r->resource.data, r->resource.len,
                             r->resource_name, &d, perr, sizeof perr);
        if (prc == BPMN_E_NOMEM) {
            rv = ENGINE_E_NOMEM;
            break;
        }
        if (prc != 0) {
            snprintf(err, errlen,
                     "Expected to deploy new resources, but encountered the "
                     "following errors:\n'%s': %s",
                     r->resource_name, perr);
            rv = ENGINE_E_INVALID;
            break;
        }
        rv = eng_defs_check(r->resource_name, d, err, errlen);
        for (size_t p = 0; rv == 0 && p < d->n_processes; p++) {
            for (size_t q = 0; q < n_ids; q++) {
                if (strcmp(ids[q], d->processes[p].id) == 0) {
                    snprintf(err, errlen,
                             "Expected to deploy new resources, but "
                             "encountered the following errors:\nDuplicated "
                             "process id in resources '%s' and '%s'",
                             owners[q], r->resource_name);
                    rv = ENGINE_E_INVALID;
                    break;
                }
            }
            if (rv != 0)
                break;
            const char **ni = realloc(ids, (n_ids + 1) * sizeof *ni);
            if (ni == NULL) {
                rv = ENGINE_E_NOMEM;
                break;
            }
            ids = ni;
            const char **no = realloc(owners, (n_ids + 1) * sizeof *no);
            if (no == NULL) {
                rv = ENGINE_E_NOMEM;
                break;
            }
            owners = no;
            /* Points into v (the resource name) and a copy of the id. */
            ids[n_ids] = strdup(d->processes[p].id);
            owners[n_ids] = r->resource_name;
            if (ids[n_ids] == NULL) {
                rv = ENGINE_E_NOMEM;
                break;
            }
            n_ids++;
        }
        bpmn_definitions_free(d);
    }
    for (size_t q = 0; q < n_ids; q++)
        free((char *)ids[q]);
    free(ids);
    free(owners);
    if (rv == ENGINE_E_NOMEM)
        snprintf(err, errlen, "out of memory while validating resources");
    return rv;
}

/* ------------------------------------------------------------------------
 * Messages
 * --------------------------------------------------------------------- */

static const char *eng_tenant(const char *t)
{
    return t != NULL && t[0] != 0 ? t : ENGINE_DEFAULT_TENANT;
}

static int eng_proc_msg_publish(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    struct eng_answer ans = eng_answer_of(cmd);
    Tandem__Record__MessageRecordValue *m;
    unsigned char idk[32];
    char err[ENG_ERR_BYTES];
    MDB_val v;
    int rc;

    m = tandem__record__message_record_value__unpack(NULL, cmd->value.len,
                                                     cmd->value.data);
    if (m == NULL)
        return eng_reject(c, REJ_INVALID_ARGUMENT,
                          "Expected a message record, but the value does "
                          "not decode");
    if (m->name[0] == 0) {
        rc = eng_reject(c, REJ_INVALID_ARGUMENT,
                        "Expected to publish a message with a name, but the "
                        "name is empty");
        goto out;
    }
    if (eng_json_object_check("variables", m->variables, err, sizeof err)) {
        rc = eng_reject(c, REJ_INVALID_ARGUMENT, "%s", err);
        goto out;
    }
    if (m->message_id[0] != 0) {
        eng_msg_id_key(m, idk);
        rc = eng_get(c, ENG_T_MSG_ID, idk, 32, &v);
        if (rc < 0)
            goto out;
        if (rc == 0) {
            rc = eng_reject(c, REJ_ALREADY_EXISTS,
                            "Expected to publish a new message with id '%s', "
                            "but a message with that id was already "
                            "published",
                            m->message_id);
            goto out;
        }
    }
    uint64_t key = eng_key_next(c);
    int64_t ttl = m->time_to_live > 0 ? m->time_to_live : 0;
    Tandem__Record__MessageRecordValue ev = *m;
    ev.deadline = c->now + ttl;
    ev.time_to_live = ttl;
    ev.tenant_id = (char *)eng_tenant(m->tenant_id);
    if (m->variables[0] == 0)
        ev.variables = (char *)"{}";
    rc = eng_emit(c, RT_EVENT, VT_MESSAGE, MSG_PUBLISHED, key,
                  (const ProtobufCMessage *)&ev, cmd->request_id ? &ans : NULL);
    /* A message without a TTL is never stored (Zeebe): expired at once. */
    if (rc == 0 && ttl == 0)
        rc = eng_emit(c, RT_EVENT, VT_MESSAGE, MSG_EXPIRED, key,
                      (const ProtobufCMessage *)&ev, NULL);
out:
    tandem__record__message_record_value__free_unpacked(m, NULL);
    return rc;
}

static int eng_proc_msg_expire(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    unsigned char k[8];
    MDB_val v;
    int rc;

    eng_key8(k, cmd->key);
    rc = eng_get(c, ENG_T_MSG, k, 8, &v);
    if (rc < 0)
        return rc;
    if (rc == ENG_NOTFOUND)
        return eng_reject(c, REJ_NOT_FOUND,
                          "Expected to expire message with key '%" PRIu64
                          "', but no such message was found",
                          cmd->key);
    /* Copy: the emit below writes to the same transaction. */
    void *copy = malloc(v.mv_size + 1);
    if (copy == NULL)
        return eng_nomem(c);
    memcpy(copy, v.mv_data, v.mv_size);
    rc = eng_emit_raw(c, RT_EVENT, VT_MESSAGE, MSG_EXPIRED, cmd->key, copy,
                      v.mv_size, NULL);
    free(copy);
    return rc;
}

/* ------------------------------------------------------------------------
 * Jobs
 * --------------------------------------------------------------------- */

#define ENG_MASK(s) (1u << (s))

/* Loads the job of the current command; rejects (returning 1) when it is
 * missing or in a state outside valid_mask. */
static int eng_job_load(struct eng_ctx *c, const char *verb,
                        uint32_t valid_mask, uint32_t *state,
                        Tandem__Record__JobRecordValue **job)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    int rc = eng_job_get(c, cmd->key, state, job);

    if (rc < 0)
        return rc;
    if (rc == ENG_NOTFOUND) {
        rc = eng_reject(c, REJ_NOT_FOUND,
                        "Expected to %s job with key '%" PRIu64
                        "', but no such job was found",
                        verb, cmd->key);
        return rc < 0 ? rc : 1;
    }
    if ((ENG_MASK(*state) & valid_mask) == 0) {
        rc = eng_reject(c, REJ_INVALID_STATE,
                        "Expected to %s job with key '%" PRIu64
                        "', but it is in state '%s'",
                        verb, cmd->key, eng_job_state_name(*state));
        tandem__record__job_record_value__free_unpacked(*job, NULL);
        *job = NULL;
        return rc < 0 ? rc : 1;
    }
    return 0;
}

static Tandem__Record__JobRecordValue *eng_job_cmd_value(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    return tandem__record__job_record_value__unpack(NULL, cmd->value.len,
                                                    cmd->value.data);
}

static int eng_job_incident(struct eng_ctx *c, const char *type,
                            const char *msg, uint64_t job_key,
                            const Tandem__Record__JobRecordValue *job)
{
    Tandem__Record__IncidentRecordValue inc =
        TANDEM__RECORD__INCIDENT_RECORD_VALUE__INIT;
    inc.error_type = (char *)type;
    inc.error_message = (char *)msg;
    inc.bpmn_process_id = job->bpmn_process_id;
    inc.process_definition_key = job->process_definition_key;
    inc.process_instance_key = job->process_instance_key;
    inc.element_id = job->element_id;
    inc.element_instance_key = job->element_instance_key;
    inc.job_key = (int64_t)job_key;
    inc.variable_scope_key = job->element_instance_key;
    inc.tenant_id = job->tenant_id;
    return eng_emit(c, RT_EVENT, VT_INCIDENT, INC_CREATED, eng_key_next(c),
                    (const ProtobufCMessage *)&inc, NULL);
}

static int eng_proc_job(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    struct eng_answer ans = eng_answer_of(cmd);
    const struct eng_answer *a = cmd->request_id ? &ans : NULL;
    const uint32_t open_mask =
        ENG_MASK(ENG_JOB_ACTIVATABLE) | ENG_MASK(ENG_JOB_ACTIVATED);
    Tandem__Record__JobRecordValue *cv, *job = NULL, ev;
    char err[ENG_ERR_BYTES];
    uint32_t st = 0;
    int rc = 0;

    cv = eng_job_cmd_value(c);
    if (cv == NULL)
        return eng_reject(c, REJ_INVALID_ARGUMENT,
                          "Expected a job record, but the value does not "
                          "decode");
    switch (cmd->intent) {
    case JOB_COMPLETE:
        if (eng_json_object_check("variables", cv->variables, err,
                                  sizeof err)) {
            rc = eng_reject(c, REJ_INVALID_ARGUMENT, "%s", err);
            break;
        }
        rc = eng_job_load(c, "complete", open_mask, &st, &job);
        if (rc != 0)
            break;
        ev = *job;
        ev.variables = cv->variables[0] ? cv->variables : (char *)"{}";
        rc = eng_emit(c, RT_EVENT, VT_JOB, JOB_COMPLETED, cmd->key,
                      (const ProtobufCMessage *)&ev, a);
        if (rc == 0)
            rc = eng_bpmn_job_completed(c, &ev);
        break;
    case JOB_FAIL: {
        if (eng_json_object_check("variables", cv->variables, err,
                                  sizeof err)) {
            rc = eng_reject(c, REJ_INVALID_ARGUMENT, "%s", err);
            break;
        }
        rc = eng_job_load(c, "fail", open_mask, &st, &job);
        if (rc != 0)
            break;
        ev = *job;
        ev.retries = cv->retries;
        ev.error_message = cv->error_message;
        ev.retry_backoff = cv->retry_backoff > 0 ? cv->retry_backoff : 0;
        ev.recurring_time = cv->retries > 0 && cv->retry_backoff > 0
                                ? c->now + cv->retry_backoff
                                : -1;
        ev.deadline = -1;
        ev.variables = cv->variables[0] ? cv->variables : (char *)"{}";
        rc = eng_emit(c, RT_EVENT, VT_JOB, JOB_FAILED, cmd->key,
                      (const ProtobufCMessage *)&ev, a);
        if (rc == 0 && cv->variables[0] != 0 && job->element_instance_key > 0) {
            json_t *doc = json_loads(cv->variables, 0, NULL);
            if (doc != NULL && json_object_size(doc) > 0)
                rc = eng_vars_merge(c, (uint64_t)job->element_instance_key, doc,
                                    true);
            json_decref(doc);
        }
        if (rc == 0 && cv->retries <= 0)
            rc =
                eng_job_incident(c, "JOB_NO_RETRIES",
                                 cv->error_message[0] ? cv->error_message
                                                      : "No more retries left.",
                                 cmd->key, job);
        break;
    }
    case JOB_UPDATE_RETRIES:
        if (cv->retries <= 0) {
            rc = eng_reject(
                c, REJ_INVALID_ARGUMENT,
                "Expected to update retries for job with key '%" PRIu64
                "' with a positive amount of retries, but the "
                "amount given was '%d'",
                cmd->key, cv->retries);
            break;
        }
        rc = eng_job_get(c, cmd->key, &st, &job);
        if (rc == ENG_NOTFOUND) {
            rc = eng_reject(
                c, REJ_NOT_FOUND,
                "Expected to update retries for job with key '%" PRIu64
                "', but no such job was found",
                cmd->key);
            break;
        }
        if (rc != 0)
            break;
        job->retries = cv->retries;
        rc = eng_emit(c, RT_EVENT, VT_JOB, JOB_RETRIES_UPDATED, cmd->key,
                      (const ProtobufCMessage *)job, a);
        break;
    case JOB_UPDATE_TIMEOUT:
        rc = eng_job_get(c, cmd->key, &st, &job);
        if (rc == ENG_NOTFOUND) {
            rc = eng_reject(c, REJ_NOT_FOUND,
                            "Expected to update job deadline with key '%" PRIu64
                            "', but no such job was found",
                            cmd->key);
            break;
        }
        if (rc != 0)
            break;
        if (st != ENG_JOB_ACTIVATED) {
            rc = eng_reject(c, REJ_INVALID_STATE,
                            "Expected to update the timeout of job with key "
                            "'%" PRIu64 "', but it is not active",
                            cmd->key);
            break;
        }
        job->timeout = cv->timeout;
        job->deadline = c->now + (cv->timeout > 0 ? cv->timeout : 0);
        rc = eng_emit(c, RT_EVENT, VT_JOB, JOB_TIMEOUT_UPDATED, cmd->key,
                      (const ProtobufCMessage *)job, a);
        break;
    case JOB_THROW_ERROR:
        if (eng_json_object_check("variables", cv->variables, err,
                                  sizeof err)) {
            rc = eng_reject(c, REJ_INVALID_ARGUMENT, "%s", err);
            break;
        }
        rc = eng_job_load(c, "throw an error for", open_mask, &st, &job);
        if (rc != 0)
            break;
        ev = *job;
        ev.error_code = cv->error_code;
        ev.error_message = cv->error_message;
        ev.variables = cv->variables[0] ? cv->variables : (char *)"{}";
        ev.deadline = -1;
        rc = eng_emit(c, RT_EVENT, VT_JOB, JOB_ERROR_THROWN, cmd->key,
                      (const ProtobufCMessage *)&ev, a);
        if (rc == 0)
            rc = eng_bpmn_error_thrown(c, cmd->key, &ev);
        break;
    case JOB_TIME_OUT:
        rc =
            eng_job_load(c, "time out", ENG_MASK(ENG_JOB_ACTIVATED), &st, &job);
        if (rc != 0)
            break;
        if (job->deadline > c->now) {
            rc = eng_reject(c, REJ_INVALID_STATE,
                            "Expected to time out job with key '%" PRIu64
                            "', but its deadline has not passed",
                            cmd->key);
            break;
        }
        rc = eng_emit(c, RT_EVENT, VT_JOB, JOB_TIMED_OUT, cmd->key,
                      (const ProtobufCMessage *)job, NULL);
        break;
    case JOB_RECUR:
        rc = eng_job_load(c, "recur after backoff", ENG_MASK(ENG_JOB_FAILED),
                          &st, &job);
        if (rc != 0)
            break;
        if (job->recurring_time < 0 || job->recurring_time > c->now) {
            rc = eng_reject(c, REJ_INVALID_STATE,
                            "Expected to recur job with key '%" PRIu64
                            "' after its backoff, but no backoff is due",
                            cmd->key);
            break;
        }
        rc = eng_emit(c, RT_EVENT, VT_JOB, JOB_RECURRED, cmd->key,
                      (const ProtobufCMessage *)job, NULL);
        break;
    default:
        rc = eng_reject(c, REJ_INVALID_ARGUMENT,
                        "Expected a supported job command, but got intent %u",
                        cmd->intent);
        break;
    }
    if (job != NULL)
        tandem__record__job_record_value__free_unpacked(job, NULL);
    tandem__record__job_record_value__free_unpacked(cv, NULL);
    return rc < 0 ? rc : 0;
}

struct eng_keys {
    uint64_t *keys;
    size_t n, max;
};

static int eng_collect_act(void *arg, const MDB_val *k, const MDB_val *v)
{
    struct eng_keys *ks = arg;
    (void)v;
    if (k->mv_size != 24 || ks->n >= ks->max)
        return 1;
    ks->keys[ks->n++] = eng_get_u64((const unsigned char *)k->mv_data + 16);
    return 0;
}

/* The variables a job carries: fetch (names) or every visible one. */
static char *eng_job_variables(struct eng_ctx *c, int64_t elem, char **fetch,
                               size_t n_fetch)
{
    json_t *all = NULL;
    char *s;

    if (elem <= 0 || eng_vars_visible(c, (uint64_t)elem, &all) != 0)
        return strdup("{}");
    if (n_fetch > 0) {
        json_t *sel = json_object();
        for (size_t i = 0; sel != NULL && i < n_fetch; i++) {
            json_t *x = json_object_get(all, fetch[i]);
            if (x != NULL)
                json_object_set(sel, fetch[i], x);
        }
        json_decref(all);
        all = sel;
    }
    s = all != NULL ? eng_json_dump(all) : NULL;
    json_decref(all);
    return s;
}

static int eng_proc_job_batch(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    struct eng_answer ans = eng_answer_of(cmd);
    Tandem__Record__JobBatchRecordValue *b;
    Tandem__Record__JobRecordValue **jobs = NULL;
    int64_t *job_keys = NULL;
    unsigned char sum[32];
    struct eng_keys ks = {0};
    size_t n = 0, bytes = 0;
    int rc = 0;

    b = tandem__record__job_batch_record_value__unpack(NULL, cmd->value.len,
                                                       cmd->value.data);
    if (b == NULL)
        return eng_reject(c, REJ_INVALID_ARGUMENT,
                          "Expected a job batch record, but the value does "
                          "not decode");
    if (b->type[0] == 0) {
        rc = eng_reject(c, REJ_INVALID_ARGUMENT,
                        "Expected to activate job batch with type to be "
                        "present, but it was blank");
        goto out;
    }
    if (b->max_jobs_to_activate < 1) {
        rc = eng_reject(c, REJ_INVALID_ARGUMENT,
                        "Expected to activate job batch with max jobs to "
                        "activate to be greater than zero, but it was '%d'",
                        b->max_jobs_to_activate);
        goto out;
    }
    if (b->timeout < 1) {
        rc = eng_reject(c, REJ_INVALID_ARGUMENT,
                        "Expected to activate job batch with timeout to be "
                        "greater than zero, but it was '%" PRId64 "'",
                        b->timeout);
        goto out;
    }
    ks.max = (size_t)b->max_jobs_to_activate;
    if (ks.max > ENGINE_RECORDS_PER_BATCH_MAX)
        ks.max = ENGINE_RECORDS_PER_BATCH_MAX;
    ks.keys = calloc(ks.max, sizeof *ks.keys);
    jobs = calloc(ks.max, sizeof *jobs);
    job_keys = calloc(ks.max, sizeof *job_keys);
    if (ks.keys == NULL || jobs == NULL || job_keys == NULL) {
        rc = eng_nomem(c);
        goto out;
    }
    eng_sha256(b->type, strlen(b->type), sum);
    rc = eng_each_prefix(c, ENG_T_JOB_ACT, sum, 16, ks.max, eng_collect_act,
                         &ks);
    if (rc < 0)
        goto out;
    rc = 0;
    for (size_t i = 0; i < ks.n; i++) {
        Tandem__Record__JobRecordValue *j = NULL;
        uint32_t st;
        int g = eng_job_get(c, ks.keys[i], &st, &j);
        if (g != 0) {
            rc = g < 0 ? g : eng_nomem(c);
            goto out;
        }
        ENGINE_ASSERT(st == ENG_JOB_ACTIVATABLE);
        char *vars =
            eng_job_variables(c, j->element_instance_key, b->fetch_variables,
                              b->n_fetch_variables);
        if (vars == NULL) {
            tandem__record__job_record_value__free_unpacked(j, NULL);
            rc = eng_nomem(c);
            goto out;
        }
        size_t sz = strlen(vars) + strlen(j->custom_headers) + 256;
        if (n > 0 && bytes + sz > ENG_JOBS_BYTES_MAX) {
            free(vars);
            tandem__record__job_record_value__free_unpacked(j, NULL);
            b->truncated = true;
            break;
        }
        bytes += sz;
        /* j owns its strings; swap in the worker and variables. */
        if (j->variables != protobuf_c_empty_string)
            free(j->variables);
        j->variables = vars;
        if (j->worker != protobuf_c_empty_string)
            free(j->worker);
        j->worker = strdup(b->worker);
        if (j->worker == NULL) {
            j->worker = (char *)protobuf_c_empty_string;
            tandem__record__job_record_value__free_unpacked(j, NULL);
            rc = eng_nomem(c);
            goto out;
        }
        j->deadline = c->now + b->timeout;
        j->timeout = b->timeout;
        jobs[n] = j;
        job_keys[n] = (int64_t)ks.keys[i];
        n++;
    }
    {
        Tandem__Record__JobBatchRecordValue out = *b;
        out.jobs = jobs;
        out.n_jobs = n;
        out.job_keys = job_keys;
        out.n_job_keys = n;
        rc = eng_emit(c, RT_EVENT, VT_JOB_BATCH, JB_ACTIVATED, eng_key_next(c),
                      (const ProtobufCMessage *)&out,
                      cmd->request_id ? &ans : NULL);
    }
out:
    for (size_t i = 0; i < n; i++)
        tandem__record__job_record_value__free_unpacked(jobs[i], NULL);
    free(jobs);
    free(job_keys);
    free(ks.keys);
    tandem__record__job_batch_record_value__free_unpacked(b, NULL);
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------------
 * Incidents
 * --------------------------------------------------------------------- */

static int eng_proc_incident_resolve(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    struct eng_answer ans = eng_answer_of(cmd);
    Tandem__Record__IncidentRecordValue *inc;
    unsigned char k[8];
    MDB_val v;
    int rc;

    eng_key8(k, cmd->key);
    rc = eng_get(c, ENG_T_INCIDENT, k, 8, &v);
    if (rc < 0)
        return rc;
    if (rc == ENG_NOTFOUND)
        return eng_reject(c, REJ_NOT_FOUND,
                          "Expected to resolve incident with key '%" PRIu64
                          "', but no such incident was found",
                          cmd->key);
    inc = tandem__record__incident_record_value__unpack(NULL, v.mv_size,
                                                        v.mv_data);
    if (inc == NULL)
        return c->fail = ENGINE_E_CORRUPT;
    rc = eng_emit(c, RT_EVENT, VT_INCIDENT, INC_RESOLVED, cmd->key,
                  (const ProtobufCMessage *)inc, cmd->request_id ? &ans : NULL);
    if (rc == 0 && inc->job_key <= 0 && inc->element_instance_key > 0)
        rc = eng_bpmn_retry_element(c, (uint64_t)inc->element_instance_key);
    tandem__record__incident_record_value__free_unpacked(inc, NULL);
    return rc;
}

/* ------------------------------------------------------------------------
 * Deployments and their distribution
 * --------------------------------------------------------------------- */

static int eng_proc_sum(struct eng_ctx *c, uint64_t key, unsigned char *sum)
{
    unsigned char k[8];
    MDB_val v;
    int rc;

    eng_key8(k, key);
    rc = eng_get(c, ENG_T_PROC, k, 8, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size < 32)
        return c->fail = ENGINE_E_CORRUPT;
    memcpy(sum, v.mv_data, 32);
    return 0;
}

static int eng_emit_process(struct eng_ctx *c, uint64_t key, const char *id,
                            int32_t version,
                            const Tandem__Record__DeploymentResource *res,
                            const unsigned char *sum, const char *tenant,
                            int64_t deployment_key)
{
    Tandem__Record__ProcessRecordValue p =
        TANDEM__RECORD__PROCESS_RECORD_VALUE__INIT;
    p.bpmn_process_id = (char *)id;
    p.version = version;
    p.process_definition_key = (int64_t)key;
    p.resource_name = res->resource_name;
    p.checksum.data = (uint8_t *)sum;
    p.checksum.len = 32;
    p.resource = res->resource;
    p.tenant_id = (char *)tenant;
    p.deployment_key = deployment_key;
    return eng_emit(c, RT_EVENT, VT_PROCESS, PROC_CREATED, key,
                    (const ProtobufCMessage *)&p, NULL);
}

static int eng_pack_dup(const ProtobufCMessage *m, ProtobufCBinaryData *out)
{
    out->len = protobuf_c_message_get_packed_size(m);
    out->data = malloc(out->len + 1);
    if (out->data == NULL)
        return ENGINE_E_NOMEM;
    protobuf_c_message_pack(m, out->data);
    return 0;
}

static int eng_deploy_new(struct eng_ctx *c,
                          Tandem__Record__DeploymentRecordValue *dv)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    struct eng_answer ans = eng_answer_of(cmd);
    Tandem__Record__ProcessMetadata *metas = NULL, **mptr = NULL;
    const char *tenant = eng_tenant(dv->tenant_id);
    size_t n_meta = 0, cap = 0;
    char err[1024];
    int rc;

    rc = eng_deploy_validate(dv, err, sizeof err);
    if (rc == ENGINE_E_NOMEM)
        return eng_nomem(c);
    if (rc != 0)
        return eng_reject(c, REJ_INVALID_ARGUMENT, "%s", err);

    uint64_t dkey = eng_key_next(c);
    unsigned char(*sums)[32] = calloc(dv->n_resources, 32);
    char **ids = NULL;
    if (sums == NULL)
        return eng_nomem(c);
    for (size_t r = 0; r < dv->n_resources && rc == 0; r++) {
        const Tandem__Record__DeploymentResource *res = dv->resources[r];
        struct bpmn_definitions *d = NULL;
        eng_sha256(res->resource.data, res->resource.len, sums[r]);
        if (bpmn_parse((const char *)res->resource.data, res->resource.len,
                       res->resource_name, &d, err, sizeof err) != 0) {
            rc = eng_reject(c, REJ_INVALID_ARGUMENT, "%s", err);
            break;
        }
        for (size_t p = 0; p < d->n_processes && rc == 0; p++) {
            const char *id = d->processes[p].id;
            uint32_t lv = 0;
            uint64_t lk = 0;
            unsigned char lsum[32];
            bool dup = false;
            int g = eng_proc_latest(c, id, &lv, &lk);
            if (g < 0) {
                rc = g;
                break;
            }
            if (g == 0) {
                g = eng_proc_sum(c, lk, lsum);
                if (g < 0) {
                    rc = g;
                    break;
                }
                dup = g == 0 && memcmp(lsum, sums[r], 32) == 0;
            }
            if (n_meta == cap) {
                size_t ncap = cap ? cap * 2 : 4;
                void *nm = realloc(metas, ncap * sizeof *metas);
                if (nm == NULL) {
                    rc = eng_nomem(c);
                    break;
                }
                metas = nm;
                void *ni = realloc(ids, ncap * sizeof *ids);
                if (ni == NULL) {
                    rc = eng_nomem(c);
                    break;
                }
                ids = ni;
                cap = ncap;
            }
            ids[n_meta] = strdup(id);
            if (ids[n_meta] == NULL) {
                rc = eng_nomem(c);
                break;
            }
            Tandem__Record__ProcessMetadata *m = &metas[n_meta];
            tandem__record__process_metadata__init(m);
            m->bpmn_process_id = ids[n_meta];
            m->resource_name = res->resource_name;
            m->checksum.data = sums[r];
            m->checksum.len = 32;
            m->tenant_id = (char *)tenant;
            m->deployment_key = (int64_t)dkey;
            m->duplicate = dup;
            n_meta++;
            if (dup) {
                m->version = (int32_t)lv;
                m->process_definition_key = (int64_t)lk;
            } else {
                uint64_t pkey = eng_key_next(c);
                m->version = (int32_t)(g == 0 ? lv + 1 : 1);
                m->process_definition_key = (int64_t)pkey;
                rc = eng_emit_process(c, pkey, ids[n_meta - 1], m->version, res,
                                      sums[r], tenant, (int64_t)dkey);
            }
        }
        bpmn_definitions_free(d);
    }
    if (rc == 0 && c->fail == 0) {
        mptr = calloc(n_meta ? n_meta : 1, sizeof *mptr);
        if (mptr == NULL)
            rc = eng_nomem(c);
    }
    if (rc == 0 && c->fail == 0) {
        for (size_t i = 0; i < n_meta; i++)
            mptr[i] = &metas[i];
        Tandem__Record__DeploymentRecordValue out = *dv;
        out.processes_metadata = mptr;
        out.n_processes_metadata = n_meta;
        out.tenant_id = (char *)tenant;
        rc = eng_emit(c, RT_EVENT, VT_DEPLOYMENT, DEP_CREATED, dkey,
                      (const ProtobufCMessage *)&out, NULL);

        Tandem__Record__CommandDistributionRecordValue cd =
            TANDEM__RECORD__COMMAND_DISTRIBUTION_RECORD_VALUE__INIT;
        cd.value_type = VT_DEPLOYMENT;
        cd.intent = DEP_CREATE;
        if (rc == 0 && eng_pack_dup((const ProtobufCMessage *)&out,
                                    &cd.command_value) != 0)
            rc = eng_nomem(c);
        if (rc == 0)
            rc = eng_emit(c, RT_EVENT, VT_CD, CD_STARTED, dkey,
                          (const ProtobufCMessage *)&cd, NULL);
        free(cd.command_value.data);
        cd.command_value.data = NULL;
        cd.command_value.len = 0;
        for (uint32_t p = 1; rc == 0 && p <= c->e->partitions_count; p++) {
            if (p == c->e->partition_id)
                continue;
            cd.partition_id = p;
            rc = eng_emit(c, RT_EVENT, VT_CD, CD_DISTRIBUTING, dkey,
                          (const ProtobufCMessage *)&cd, NULL);
        }
        if (rc == 0 && c->e->partitions_count <= 1) {
            /* Nothing to distribute: finished in the same round. The
             * answer needs the metadata only, not the resources. */
            out.n_resources = 0;
            out.resources = NULL;
            cd.partition_id = 0;
            if (eng_pack_dup((const ProtobufCMessage *)&out,
                             &cd.command_value) != 0)
                rc = eng_nomem(c);
            if (rc == 0)
                rc = eng_emit(c, RT_EVENT, VT_CD, CD_FINISHED, dkey,
                              (const ProtobufCMessage *)&cd,
                              cmd->request_id ? &ans : NULL);
            free(cd.command_value.data);
        }
    }
    for (size_t i = 0; i < n_meta; i++)
        free(ids[i]);
    free(ids);
    free(mptr);
    free(metas);
    free(sums);
    return rc < 0 ? rc : 0;
}

/* A deployment distributed by partition 1: same keys and versions. */
static int eng_deploy_distributed(struct eng_ctx *c,
                                  Tandem__Record__DeploymentRecordValue *dv)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    struct eng_answer ans = eng_answer_of(cmd);
    int rc = 0;

    for (size_t i = 0; i < dv->n_processes_metadata && rc == 0; i++) {
        const Tandem__Record__ProcessMetadata *m = dv->processes_metadata[i];
        const Tandem__Record__DeploymentResource *res = NULL;
        unsigned char sum[32];
        if (m->process_definition_key <= 0 || m->version <= 0)
            return eng_reject(c, REJ_INVALID_ARGUMENT,
                              "Expected a distributed deployment with "
                              "process keys and versions, but process '%s' "
                              "has none",
                              m->bpmn_process_id);
        int g = eng_proc_sum(c, (uint64_t)m->process_definition_key, sum);
        if (g < 0)
            return g;
        if (g == 0)
            continue; /* already here (a retried distribution) */
        for (size_t r = 0; r < dv->n_resources; r++)
            if (strcmp(dv->resources[r]->resource_name, m->resource_name) == 0)
                res = dv->resources[r];
        if (res == NULL)
            return eng_reject(c, REJ_INVALID_ARGUMENT,
                              "Expected the distributed deployment to hold "
                              "resource '%s', but it does not",
                              m->resource_name);
        eng_sha256(res->resource.data, res->resource.len, sum);
        rc = eng_emit_process(c, (uint64_t)m->process_definition_key,
                              m->bpmn_process_id, m->version, res, sum,
                              eng_tenant(m->tenant_id), m->deployment_key);
    }
    if (rc != 0)
        return rc;
    return eng_emit_raw(c, RT_EVENT, VT_DEPLOYMENT, DEP_CREATED, cmd->key,
                        cmd->value.data, cmd->value.len,
                        cmd->request_id ? &ans : NULL);
}

static int eng_proc_deploy(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    Tandem__Record__DeploymentRecordValue *dv;
    int rc;

    dv = tandem__record__deployment_record_value__unpack(NULL, cmd->value.len,
                                                         cmd->value.data);
    if (dv == NULL)
        return eng_reject(c, REJ_INVALID_ARGUMENT,
                          "Expected a deployment record, but the value does "
                          "not decode");
    if (cmd->key != 0)
        rc = eng_deploy_distributed(c, dv);
    else if (c->e->partition_id != 1)
        rc = eng_reject(c, REJ_INVALID_ARGUMENT,
                        "Expected to deploy on the deployment partition 1, "
                        "but this is partition %u",
                        c->e->partition_id);
    else
        rc = eng_deploy_new(c, dv);
    tandem__record__deployment_record_value__free_unpacked(dv, NULL);
    return rc;
}

struct eng_count {
    size_t n;
};

static int eng_count_one(void *arg, const MDB_val *k, const MDB_val *v)
{
    (void)k;
    (void)v;
    ((struct eng_count *)arg)->n++;
    return 0;
}

static int eng_proc_cd_ack(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    Tandem__Record__CommandDistributionRecordValue *v;
    unsigned char k[12];
    MDB_val dv;
    int rc;

    v = tandem__record__command_distribution_record_value__unpack(
        NULL, cmd->value.len, cmd->value.data);
    if (v == NULL)
        return eng_reject(c, REJ_INVALID_ARGUMENT,
                          "Expected a command distribution record, but the "
                          "value does not decode");
    eng_key8(k, cmd->key);
    eng_put_u32(k + 8, v->partition_id);
    rc = eng_get(c, ENG_T_DIST_PENDING, k, 12, &dv);
    if (rc == ENG_NOTFOUND) {
        rc = eng_reject(c, REJ_NOT_FOUND,
                        "Expected to acknowledge the distribution of command "
                        "'%" PRIu64 "' to partition %u, but it is not "
                        "pending",
                        cmd->key, v->partition_id);
        goto out;
    }
    if (rc < 0)
        goto out;
    rc = eng_emit(c, RT_EVENT, VT_CD, CD_ACKNOWLEDGED, cmd->key,
                  (const ProtobufCMessage *)v, NULL);
    struct eng_count cnt = {0};
    if (rc == 0)
        rc = eng_each_prefix(c, ENG_T_DIST_PENDING, k, 8, SIZE_MAX,
                             eng_count_one, &cnt);
    if (rc != 0 || cnt.n > 0)
        goto out;
    /* The last acknowledgement: finish, answering the original request. */
    rc = eng_get(c, ENG_T_DIST, k, 8, &dv);
    if (rc != 0) {
        rc = rc == ENG_NOTFOUND ? (c->fail = ENGINE_E_CORRUPT) : rc;
        goto out;
    }
    if (dv.mv_size < 20) {
        rc = c->fail = ENGINE_E_CORRUPT;
        goto out;
    }
    {
        const unsigned char *p = dv.mv_data;
        struct eng_answer ans = {eng_get_u32(p), eng_get_u64(p + 4)};
        Tandem__Record__CommandDistributionRecordValue fin =
            TANDEM__RECORD__COMMAND_DISTRIBUTION_RECORD_VALUE__INIT;
        Tandem__Record__DeploymentRecordValue *dep = NULL;
        fin.value_type = (Tandem__Record__ValueType)eng_get_u32(p + 12);
        fin.intent = eng_get_u32(p + 16);
        if (fin.value_type == VT_DEPLOYMENT) {
            dep = tandem__record__deployment_record_value__unpack(
                NULL, dv.mv_size - 20, p + 20);
            if (dep == NULL) {
                rc = c->fail = ENGINE_E_CORRUPT;
                goto out;
            }
            size_t nr = dep->n_resources;
            dep->n_resources = 0; /* the answer needs the metadata only */
            rc =
                eng_pack_dup((const ProtobufCMessage *)dep, &fin.command_value);
            dep->n_resources = nr;
            tandem__record__deployment_record_value__free_unpacked(dep, NULL);
            if (rc != 0) {
                rc = eng_nomem(c);
                goto out;
            }
        }
        rc =
            eng_emit(c, RT_EVENT, VT_CD, CD_FINISHED, cmd->key,
                     (const ProtobufCMessage *)&fin, ans.id != 0 ? &ans : NULL);
        free(fin.command_value.data);
    }
out:
    tandem__record__command_distribution_record_value__free_unpacked(v, NULL);
    return rc < 0 ? rc : 0;
}

/* EXPORTER UPDATE / DELETE: the leader's exporter bookkeeping; the event
 * carries the same value (positions only move forward). */
static int eng_proc_exporter(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    Tandem__Record__ExporterRecordValue *v;
    MDB_val old;
    int rc;

    v = tandem__record__exporter_record_value__unpack(NULL, cmd->value.len,
                                                      cmd->value.data);
    if (v == NULL || v->exporter_id[0] == '\0' ||
        strlen(v->exporter_id) > ENG_NAME_BYTES_MAX) {
        if (v != NULL)
            tandem__record__exporter_record_value__free_unpacked(v, NULL);
        return eng_reject(c, REJ_INVALID_ARGUMENT,
                          "Expected an exporter record with an exporter id");
    }
    if (cmd->intent == EXP_UPDATE) {
        rc = eng_get(c, ENG_T_EXPORTER, v->exporter_id,
                     strlen(v->exporter_id), &old);
        if (rc == 0) {
            Tandem__Record__ExporterRecordValue *o =
                tandem__record__exporter_record_value__unpack(
                    NULL, old.mv_size, old.mv_data);
            bool stale = o != NULL && o->position >= v->position &&
                         o->metadata_version == v->metadata_version;
            if (o != NULL)
                tandem__record__exporter_record_value__free_unpacked(o, NULL);
            if (stale) {
                tandem__record__exporter_record_value__free_unpacked(v, NULL);
                return eng_reject(c, REJ_INVALID_STATE,
                                  "Expected a position above the exporter's "
                                  "acknowledged one");
            }
        } else if (rc < 0) {
            tandem__record__exporter_record_value__free_unpacked(v, NULL);
            return rc;
        }
        rc = eng_emit(c, RT_EVENT, VT_EXPORTER, EXP_UPDATED, 0,
                      (const ProtobufCMessage *)v, NULL);
    } else if (cmd->intent == EXP_DELETE) {
        rc = eng_emit(c, RT_EVENT, VT_EXPORTER, EXP_DELETED, 0,
                      (const ProtobufCMessage *)v, NULL);
    } else {
        rc = eng_reject(c, REJ_INVALID_ARGUMENT,
                        "Expected an exporter command, got intent %u",
                        cmd->intent);
    }
    tandem__record__exporter_record_value__free_unpacked(v, NULL);
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------------
 * Dispatch and the round
 * --------------------------------------------------------------------- */

static int eng_dispatch(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);

    ENGINE_ASSERT(cmd->record_type == RT_COMMAND);
    switch (cmd->value_type) {
    case VT_MESSAGE:
        if (cmd->intent == MSG_PUBLISH)
            return eng_proc_msg_publish(c);
        if (cmd->intent == MSG_EXPIRE)
            return eng_proc_msg_expire(c);
        break;
    case VT_JOB:
        return eng_proc_job(c);
    case VT_JOB_BATCH:
        if (cmd->intent == JB_ACTIVATE)
            return eng_proc_job_batch(c);
        break;
    case VT_DEPLOYMENT:
        if (cmd->intent == DEP_CREATE)
            return eng_proc_deploy(c);
        break;
    case VT_PIC:
        if (cmd->intent == PIC_CREATE)
            return eng_proc_pic_create(c);
        break;
    case VT_PI:
        switch (cmd->intent) {
        case PI_CANCEL:
            return eng_proc_pi_cancel(c);
        case PI_ACTIVATE:
            return eng_proc_pi_activate(c);
        case PI_COMPLETE:
            return eng_proc_pi_complete(c);
        case PI_TERMINATE:
            return eng_proc_pi_terminate(c);
        default:
            break;
        }
        break;
    case VT_VARDOC:
        if (cmd->intent == VD_UPDATE)
            return eng_proc_vardoc_update(c);
        break;
    case VT_INCIDENT:
        if (cmd->intent == INC_RESOLVE)
            return eng_proc_incident_resolve(c);
        break;
    case VT_CD:
        if (cmd->intent == CD_ACKNOWLEDGE)
            return eng_proc_cd_ack(c);
        break;
    case VT_EXPORTER:
        return eng_proc_exporter(c);
    default:
        break;
    }
    return eng_reject(c, REJ_INVALID_ARGUMENT,
                      "Expected a supported command, but got value type %d "
                      "with intent %u",
                      (int)cmd->value_type, cmd->intent);
}

/* Copies a queued command into a record the round owns. */
static Tandem__Record__Record *eng_rec_copy(struct eng_ctx *c,
                                            const Tandem__Record__Record *in)
{
    Tandem__Record__Record *r = eng_rec_new(c);
    if (r == NULL)
        return NULL;
    r->key = in->key;
    r->record_type = RT_COMMAND;
    r->value_type = in->value_type;
    r->intent = in->intent;
    r->request_node = in->request_node;
    r->request_id = in->request_id;
    if (in->value.len > 0) {
        r->value.data = malloc(in->value.len);
        if (r->value.data == NULL) {
            eng_rec_free(r);
            return NULL;
        }
        memcpy(r->value.data, in->value.data, in->value.len);
        r->value.len = in->value.len;
    }
    return r;
}

static void eng_truncate(struct eng_ctx *c, size_t n, size_t bytes)
{
    while (c->n > n)
        eng_rec_free(c->recs[--c->n]);
    c->bytes = bytes;
}

/* Processes one command and its follow-ups in a nested transaction. */
static int eng_round_command(struct eng_ctx *c,
                             const Tandem__Record__Record *in, bool first)
{
    MDB_txn *parent = c->txn, *child;
    size_t save_n = c->n, save_bytes = c->bytes;
    uint64_t save_counter = *c->key_counter;
    int rc, fail;

    ENGINE_ASSERT(c->fail == 0);
    if (mdb_txn_begin(c->e->env, parent, 0, &child) != 0)
        return ENGINE_E_IO;
    c->txn = child;
    Tandem__Record__Record *r = eng_rec_copy(c, in);
    if (r == NULL) {
        eng_nomem(c);
    } else {
        c->cur = c->n;
        r->source_record_position = 0;
        if (eng_append(c, r) == 0) {
            for (size_t i = save_n; i < c->n && c->fail == 0; i++) {
                if (c->recs[i]->record_type != RT_COMMAND)
                    continue;
                c->cur = i;
                rc = eng_dispatch(c);
                if (rc < 0 && c->fail == 0)
                    c->fail = rc;
            }
        }
    }
    fail = c->fail;
    if (fail == 0) {
        rc = mdb_txn_commit(child);
        c->txn = parent;
        return rc == 0 ? 0 : ENGINE_E_IO;
    }
    mdb_txn_abort(child);
    c->txn = parent;
    eng_truncate(c, save_n, save_bytes);
    *c->key_counter = save_counter;
    c->fail = 0;
    if (fail == ENGINE_E_NOMEM || fail == ENGINE_E_IO)
        return fail;
    if (fail == ENGINE_E_FULL && !first)
        return ENGINE_E_FULL;
    /* The first command does not fit (or hit an inconsistency): reject it
     * on its own so the round still consumes it. */
    if (mdb_txn_begin(c->e->env, parent, 0, &child) != 0)
        return ENGINE_E_IO;
    c->txn = child;
    r = eng_rec_copy(c, in);
    if (r == NULL) {
        mdb_txn_abort(child);
        c->txn = parent;
        return ENGINE_E_NOMEM;
    }
    size_t vlen = r->value.len;
    if (fail == ENGINE_E_FULL) {
        /* Keep the rejection small: drop the value. */
        free(r->value.data);
        r->value.data = NULL;
        r->value.len = 0;
    }
    c->cur = c->n;
    r->source_record_position = 0;
    rc = eng_append(c, r);
    if (rc == 0) {
        if (fail == ENGINE_E_FULL)
            rc = eng_reject(c, REJ_EXCEEDED,
                            "Expected to process the command (value of %zu "
                            "bytes) within one batch of %u records and %u "
                            "bytes, but its results exceed it",
                            vlen, ENGINE_RECORDS_PER_BATCH_MAX,
                            ENGINE_BATCH_BYTES_MAX);
        else
            rc = eng_reject(c, REJ_PROCESSING_ERROR,
                            "Expected to process the command, but the state "
                            "is inconsistent (error %d)",
                            fail);
    }
    fail = c->fail;
    c->fail = 0;
    if (rc != 0 || fail != 0) {
        mdb_txn_abort(child);
        c->txn = parent;
        eng_truncate(c, save_n, save_bytes);
        return fail != 0 ? fail : rc;
    }
    rc = mdb_txn_commit(child);
    c->txn = parent;
    return rc == 0 ? 0 : ENGINE_E_IO;
}

struct eng_due {
    uint64_t keys[ENG_TIMERS_PER_ROUND_MAX];
    size_t n;
    uint64_t now;
};

static int eng_collect_due(void *arg, const MDB_val *k, const MDB_val *v)
{
    struct eng_due *d = arg;
    (void)v;
    if (k->mv_size != 16 || d->n >= ENG_TIMERS_PER_ROUND_MAX)
        return 1;
    if (eng_get_u64(k->mv_data) > d->now)
        return 1;
    d->keys[d->n++] = eng_get_u64((const unsigned char *)k->mv_data + 8);
    return 0;
}

/* Turns due timers of one table into commands and processes them. */
static int eng_round_timers_of(struct eng_ctx *c, enum eng_table t,
                               Tandem__Record__ValueType vt, uint32_t intent)
{
    struct eng_due *d = calloc(1, sizeof *d);
    int rc;

    if (d == NULL)
        return ENGINE_E_NOMEM;
    d->now = c->now < 0 ? 0 : (uint64_t)c->now;
    rc = eng_each_prefix(c, t, "", 0, ENG_TIMERS_PER_ROUND_MAX, eng_collect_due,
                         d);
    if (rc < 0) {
        free(d);
        return rc;
    }
    c->fail = 0;
    for (size_t i = 0; i < d->n; i++) {
        Tandem__Record__Record cmd = TANDEM__RECORD__RECORD__INIT;
        cmd.record_type = RT_COMMAND;
        cmd.value_type = vt;
        cmd.intent = intent;
        cmd.key = d->keys[i];
        /* The value: the stored job/message (packed as stored). */
        unsigned char k[8];
        MDB_val v;
        eng_key8(k, d->keys[i]);
        rc = eng_get(c, vt == VT_JOB ? ENG_T_JOB : ENG_T_MSG, k, 8, &v);
        if (rc < 0)
            break;
        if (rc == 0 && vt == VT_JOB && v.mv_size >= 4) {
            cmd.value.data = (uint8_t *)v.mv_data + 4;
            cmd.value.len = v.mv_size - 4;
        } else if (rc == 0) {
            cmd.value.data = v.mv_data;
            cmd.value.len = v.mv_size;
        }
        rc = eng_round_command(c, &cmd, false);
        if (rc == ENGINE_E_FULL) {
            rc = 0;
            break;
        }
        if (rc != 0)
            break;
    }
    free(d);
    return rc < 0 ? rc : 0;
}

int engine_process(struct engine *e, uint64_t now_ms, uint64_t first_position,
                   Tandem__Record__Record *const *commands, size_t n,
                   struct engine_round *out)
{
    struct eng_ctx c = {0};
    uint64_t counter;
    int rc = 0;

    ENGINE_ASSERT(e != NULL && out != NULL);
    ENGINE_ASSERT(e->apply_txn == NULL); /* one write transaction at once */
    ENGINE_ASSERT(n == 0 || commands != NULL);
    memset(out, 0, sizeof *out);
    counter = e->key_counter;
    c.e = e;
    c.processing = true;
    c.now = (int64_t)now_ms;
    c.first_position = first_position;
    c.key_counter = &counter;
    if (mdb_txn_begin(e->env, NULL, 0, &c.txn) != 0)
        return ENGINE_E_IO;
    for (size_t i = 0; i < n; i++) {
        ENGINE_ASSERT(commands[i] != NULL);
        rc = eng_round_command(&c, commands[i], out->consumed == 0);
        if (rc == ENGINE_E_FULL) {
            rc = 0;
            break;
        }
        if (rc != 0)
            goto done;
        out->consumed++;
    }
    if (c.n < ENGINE_RECORDS_PER_BATCH_MAX) {
        rc = eng_round_timers_of(&c, ENG_T_JOB_DEADLINE, VT_JOB, JOB_TIME_OUT);
        if (rc == 0)
            rc = eng_round_timers_of(&c, ENG_T_JOB_BACKOFF, VT_JOB, JOB_RECUR);
        if (rc == 0)
            rc = eng_round_timers_of(&c, ENG_T_MSG_DEADLINE, VT_MESSAGE,
                                     MSG_EXPIRE);
        if (rc != 0)
            goto done;
    }
    if (c.n > 0) {
        Tandem__Record__RecordBatch b = TANDEM__RECORD__RECORD_BATCH__INIT;
        b.records = c.recs;
        b.n_records = c.n;
        size_t len = tandem__record__record_batch__get_packed_size(&b);
        out->batch = malloc(len);
        if (out->batch == NULL) {
            rc = ENGINE_E_NOMEM;
            goto done;
        }
        out->batch_len = tandem__record__record_batch__pack(&b, out->batch);
        ENGINE_ASSERT(out->batch_len == len);
    }
done:
    mdb_txn_abort(c.txn);
    eng_truncate(&c, 0, 0);
    free(c.recs);
    if (rc != 0) {
        free(out->batch);
        memset(out, 0, sizeof *out);
    }
    ENGINE_ASSERT(rc != 0 || n == 0 || out->consumed > 0);
    return rc;
}

void engine_round_free(struct engine_round *round)
{
    if (round == NULL)
        return;
    free(round->batch);
    memset(round, 0, sizeof *round);
}
