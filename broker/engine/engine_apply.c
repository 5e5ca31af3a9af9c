/* engine_apply.c: the event appliers, the only code that writes the
 * engine's state.
 *
 * Data flow: eng_apply_record(record) -> advance the key counter from the
 * record's key (every record of this partition, commands included) ->
 * for EVENTs, the applier of (value type, intent) decodes the value and
 * updates the tables. Processing calls it for each record it writes
 * (inside the round's rolled-back transaction); engine_apply_entry() calls
 * it for each committed record. Appliers read only the record, the state
 * and the records of the same entry (eng_record_at, for the request ids of
 * a command), never the clock, so every replica reaches the same state.
 */
#include "broker/engine/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#define ENG_KEY_MASK ((UINT64_C(1) << ENGINE_KEY_BITS) - 1)

const Tandem__Record__Record *eng_record_at(const struct eng_ctx *c,
                                            uint64_t pos)
{
    if (c->processing) {
        if (pos < c->first_position || pos - c->first_position >= c->n)
            return NULL;
        return c->recs[pos - c->first_position];
    }
    if (c->view == NULL || pos < c->view_first ||
        pos - c->view_first >= c->view_n)
        return NULL;
    return c->view[pos - c->view_first];
}

static int eng_corrupt(struct eng_ctx *c)
{
    if (c->fail == 0)
        c->fail = ENGINE_E_CORRUPT;
    return ENGINE_E_CORRUPT;
}

static void eng_jobs_available(struct eng_ctx *c, const char *type)
{
    if (!c->processing && c->hooks != NULL && c->hooks->jobs_available)
        c->hooks->jobs_available(c->hooks->data, type);
}

static enum bpmn_element_type eng_type_of(const char *name)
{
    for (int t = BPMN_PROCESS; t <= BPMN_SEQUENCE_FLOW; t++)
        if (strcmp(bpmn_element_type_name((enum bpmn_element_type)t), name) ==
            0)
            return (enum bpmn_element_type)t;
    return 0;
}

/* ------------------------------------------------------------------------
 * Messages
 * --------------------------------------------------------------------- */

void eng_msg_id_key(const Tandem__Record__MessageRecordValue *m,
                    unsigned char out[32])
{
    size_t a = strlen(m->name), b = strlen(m->correlation_key),
           d = strlen(m->message_id);
    char *buf = malloc(a + b + d + 3);
    if (buf == NULL) {
        memset(out, 0, 32);
        return;
    }
    memcpy(buf, m->name, a + 1);
    memcpy(buf + a + 1, m->correlation_key, b + 1);
    memcpy(buf + a + b + 2, m->message_id, d + 1);
    eng_sha256(buf, a + b + d + 3, out);
    free(buf);
}

static int eng_apply_message(struct eng_ctx *c, const Tandem__Record__Record *r)
{
    unsigned char k[8], dk[16], idk[32];
    Tandem__Record__MessageRecordValue *m;
    MDB_val v;
    int rc = 0;

    eng_key8(k, r->key);
    if (r->intent == MSG_PUBLISHED) {
        m = tandem__record__message_record_value__unpack(NULL, r->value.len,
                                                         r->value.data);
        if (m == NULL)
            return eng_corrupt(c);
        rc = eng_put(c, ENG_T_MSG, k, 8, r->value.data, r->value.len);
        if (rc == 0 && m->message_id[0] != 0) {
            eng_msg_id_key(m, idk);
            rc = eng_put(c, ENG_T_MSG_ID, idk, 32, k, 8);
        }
        eng_key16(dk, m->deadline < 0 ? 0 : (uint64_t)m->deadline, r->key);
        if (rc == 0)
            rc = eng_put(c, ENG_T_MSG_DEADLINE, dk, 16, "", 0);
        tandem__record__message_record_value__free_unpacked(m, NULL);
        return rc;
    }
    if (r->intent == MSG_EXPIRED) {
        rc = eng_get(c, ENG_T_MSG, k, 8, &v);
        if (rc == ENG_NOTFOUND)
            return 0;
        if (rc != 0)
            return rc;
        m = tandem__record__message_record_value__unpack(NULL, v.mv_size,
                                                         v.mv_data);
        if (m == NULL)
            return eng_corrupt(c);
        if (m->message_id[0] != 0) {
            eng_msg_id_key(m, idk);
            eng_del(c, ENG_T_MSG_ID, idk, 32);
        }
        eng_key16(dk, m->deadline < 0 ? 0 : (uint64_t)m->deadline, r->key);
        eng_del(c, ENG_T_MSG_DEADLINE, dk, 16);
        eng_del(c, ENG_T_MSG, k, 8);
        tandem__record__message_record_value__free_unpacked(m, NULL);
        return c->fail;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Jobs
 * --------------------------------------------------------------------- */

static void eng_job_act_key(unsigned char out[24], const char *type,
                            uint64_t key)
{
    unsigned char sum[32];
    eng_sha256(type, strlen(type), sum);
    memcpy(out, sum, 16);
    eng_put_u64(out + 16, key);
}

/* Removes the job from the index its state puts it in. */
static int eng_job_unindex(struct eng_ctx *c, uint64_t key, uint32_t state,
                           const Tandem__Record__JobRecordValue *j)
{
    unsigned char k[24];
    switch (state) {
    case ENG_JOB_ACTIVATABLE:
        eng_job_act_key(k, j->type, key);
        return eng_del(c, ENG_T_JOB_ACT, k, 24) < 0 ? c->fail : 0;
    case ENG_JOB_ACTIVATED:
        eng_key16(k, j->deadline < 0 ? 0 : (uint64_t)j->deadline, key);
        return eng_del(c, ENG_T_JOB_DEADLINE, k, 16) < 0 ? c->fail : 0;
    case ENG_JOB_FAILED:
        if (j->recurring_time < 0)
            return 0;
        eng_key16(k, (uint64_t)j->recurring_time, key);
        return eng_del(c, ENG_T_JOB_BACKOFF, k, 16) < 0 ? c->fail : 0;
    default:
        return 0;
    }
}

static int eng_job_index(struct eng_ctx *c, uint64_t key, uint32_t state,
                         const Tandem__Record__JobRecordValue *j)
{
    unsigned char k[24];
    switch (state) {
    case ENG_JOB_ACTIVATABLE:
        eng_job_act_key(k, j->type, key);
        if (eng_put(c, ENG_T_JOB_ACT, k, 24, "", 0) != 0)
            return c->fail;
        eng_jobs_available(c, j->type);
        return 0;
    case ENG_JOB_ACTIVATED:
        eng_key16(k, j->deadline < 0 ? 0 : (uint64_t)j->deadline, key);
        return eng_put(c, ENG_T_JOB_DEADLINE, k, 16, "", 0);
    case ENG_JOB_FAILED:
        if (j->recurring_time < 0)
            return 0;
        eng_key16(k, (uint64_t)j->recurring_time, key);
        return eng_put(c, ENG_T_JOB_BACKOFF, k, 16, "", 0);
    default:
        return 0;
    }
}

/* Moves a stored job to a new state (value already updated by caller). */
static int eng_job_move(struct eng_ctx *c, uint64_t key, uint32_t old_state,
                        const Tandem__Record__JobRecordValue *old,
                        uint32_t state, Tandem__Record__JobRecordValue *j)
{
    int rc = eng_job_unindex(c, key, old_state, old);
    if (rc == 0)
        rc = eng_job_put(c, key, state, j);
    if (rc == 0)
        rc = eng_job_index(c, key, state, j);
    return rc;
}

static int eng_elem_set_job(struct eng_ctx *c, int64_t elem, uint64_t job)
{
    struct eng_elem_hdr h;
    int rc;
    if (elem <= 0)
        return 0;
    rc = eng_elem_get(c, (uint64_t)elem, &h, NULL);
    if (rc == ENG_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    h.job_key = job;
    return eng_elem_put_hdr(c, (uint64_t)elem, &h);
}

static int eng_job_delete(struct eng_ctx *c, uint64_t key)
{
    Tandem__Record__JobRecordValue *old = NULL;
    unsigned char k[8];
    uint32_t st;
    int rc = eng_job_get(c, key, &st, &old);

    if (rc != 0)
        return rc == ENG_NOTFOUND ? 0 : rc;
    rc = eng_job_unindex(c, key, st, old);
    eng_key8(k, key);
    if (rc == 0 && eng_del(c, ENG_T_JOB, k, 8) < 0)
        rc = c->fail;
    tandem__record__job_record_value__free_unpacked(old, NULL);
    return rc;
}

static int eng_apply_job(struct eng_ctx *c, const Tandem__Record__Record *r)
{
    Tandem__Record__JobRecordValue *v, *old = NULL;
    uint32_t st = 0;
    int rc;

    v = tandem__record__job_record_value__unpack(NULL, r->value.len,
                                                 r->value.data);
    if (v == NULL)
        return eng_corrupt(c);
    if (r->intent == JOB_CREATED) {
        rc = eng_job_put(c, r->key, ENG_JOB_ACTIVATABLE, v);
        if (rc == 0)
            rc = eng_job_index(c, r->key, ENG_JOB_ACTIVATABLE, v);
        if (rc == 0)
            rc = eng_elem_set_job(c, v->element_instance_key, r->key);
        goto out;
    }
    rc = eng_job_get(c, r->key, &st, &old);
    if (rc == ENG_NOTFOUND) {
        rc = eng_corrupt(c); /* events only follow a valid command */
        goto out;
    }
    if (rc != 0)
        goto out;
    /* old is the stored value: a second decoded copy carries the new
     * state, so unindexing still sees the old deadline/recurring time. */
    Tandem__Record__JobRecordValue *nv = NULL;
    rc = eng_job_get(c, r->key, NULL, &nv);
    if (rc != 0)
        goto out;
    switch (r->intent) {
    case JOB_COMPLETED:
        rc = eng_job_delete(c, r->key);
        if (rc == 0 && v->element_instance_key > 0) {
            unsigned char k[8];
            const char *vars = v->variables[0] ? v->variables : "{}";
            eng_key8(k, (uint64_t)v->element_instance_key);
            rc = eng_put(c, ENG_T_TMPVAR, k, 8, vars, strlen(vars));
        }
        if (rc == 0)
            rc = eng_elem_set_job(c, nv->element_instance_key, 0);
        break;
    case JOB_CANCELED:
        rc = eng_job_delete(c, r->key);
        if (rc == 0)
            rc = eng_elem_set_job(c, nv->element_instance_key, 0);
        break;
    case JOB_TIMED_OUT:
        nv->deadline = -1;
        rc = eng_job_move(c, r->key, st, old, ENG_JOB_ACTIVATABLE, nv);
        break;
    case JOB_FAILED: {
        uint32_t ns;
        Tandem__Record__JobRecordValue x = *nv;
        x.retries = v->retries;
        x.error_message = v->error_message;
        x.retry_backoff = v->retry_backoff;
        x.deadline = -1;
        x.recurring_time = -1;
        if (v->retries > 0 && v->retry_backoff > 0) {
            ns = ENG_JOB_FAILED;
            x.recurring_time = v->recurring_time;
        } else if (v->retries > 0) {
            ns = ENG_JOB_ACTIVATABLE;
        } else {
            ns = ENG_JOB_FAILED;
        }
        rc = eng_job_move(c, r->key, st, old, ns, &x);
        break;
    }
    case JOB_RECURRED:
        nv->recurring_time = -1;
        rc = eng_job_move(c, r->key, st, old, ENG_JOB_ACTIVATABLE, nv);
        break;
    case JOB_RETRIES_UPDATED:
        nv->retries = v->retries;
        rc = eng_job_move(c, r->key, st, old, st, nv);
        break;
    case JOB_TIMEOUT_UPDATED:
        nv->deadline = v->deadline;
        nv->timeout = v->timeout;
        rc = eng_job_move(c, r->key, st, old, st, nv);
        break;
    case JOB_ERROR_THROWN: {
        Tandem__Record__JobRecordValue x = *nv;
        x.error_code = v->error_code;
        x.error_message = v->error_message;
        x.deadline = -1;
        rc = eng_job_move(c, r->key, st, old, ENG_JOB_ERROR_THROWN, &x);
        break;
    }
    default:
        break;
    }
    if (nv != NULL)
        tandem__record__job_record_value__free_unpacked(nv, NULL);
out:
    if (old != NULL)
        tandem__record__job_record_value__free_unpacked(old, NULL);
    tandem__record__job_record_value__free_unpacked(v, NULL);
    return rc < 0 ? rc : 0;
}

static int eng_apply_job_batch(struct eng_ctx *c,
                               const Tandem__Record__Record *r)
{
    Tandem__Record__JobBatchRecordValue *b;
    int rc = 0;

    if (r->intent != JB_ACTIVATED)
        return 0;
    b = tandem__record__job_batch_record_value__unpack(NULL, r->value.len,
                                                       r->value.data);
    if (b == NULL)
        return eng_corrupt(c);
    if (b->n_jobs != b->n_job_keys) {
        tandem__record__job_batch_record_value__free_unpacked(b, NULL);
        return eng_corrupt(c);
    }
    for (size_t i = 0; i < b->n_job_keys && rc == 0; i++) {
        Tandem__Record__JobRecordValue *old = NULL, *nv = NULL;
        uint64_t key = (uint64_t)b->job_keys[i];
        uint32_t st;
        rc = eng_job_get(c, key, &st, &old);
        if (rc == 0)
            rc = eng_job_get(c, key, NULL, &nv);
        if (rc == 0) {
            Tandem__Record__JobRecordValue x = *nv;
            x.worker = b->jobs[i]->worker;
            x.deadline = b->jobs[i]->deadline;
            x.timeout = b->jobs[i]->timeout;
            rc = eng_job_move(c, key, st, old, ENG_JOB_ACTIVATED, &x);
        } else if (rc == ENG_NOTFOUND) {
            rc = eng_corrupt(c);
        }
        if (old != NULL)
            tandem__record__job_record_value__free_unpacked(old, NULL);
        if (nv != NULL)
            tandem__record__job_record_value__free_unpacked(nv, NULL);
    }
    tandem__record__job_batch_record_value__free_unpacked(b, NULL);
    return rc;
}

/* ------------------------------------------------------------------------
 * Incidents
 * --------------------------------------------------------------------- */

static int eng_apply_incident(struct eng_ctx *c,
                              const Tandem__Record__Record *r)
{
    Tandem__Record__IncidentRecordValue *v;
    unsigned char k[8], ek[16];
    int rc = 0;

    v = tandem__record__incident_record_value__unpack(NULL, r->value.len,
                                                      r->value.data);
    if (v == NULL)
        return eng_corrupt(c);
    eng_key8(k, r->key);
    eng_key16(ek, (uint64_t)v->element_instance_key, r->key);
    if (r->intent == INC_CREATED) {
        rc = eng_put(c, ENG_T_INCIDENT, k, 8, r->value.data, r->value.len);
        if (rc == 0 && v->element_instance_key > 0)
            rc = eng_put(c, ENG_T_INCIDENT_ELEM, ek, 16, "", 0);
    } else if (r->intent == INC_RESOLVED) {
        eng_del(c, ENG_T_INCIDENT, k, 8);
        if (v->element_instance_key > 0)
            eng_del(c, ENG_T_INCIDENT_ELEM, ek, 16);
        rc = c->fail;
        if (rc == 0 && v->job_key > 0) {
            Tandem__Record__JobRecordValue *old = NULL, *nv = NULL;
            uint32_t st;
            int g = eng_job_get(c, (uint64_t)v->job_key, &st, &old);
            if (g == 0)
                g = eng_job_get(c, (uint64_t)v->job_key, NULL, &nv);
            if (g == 0 && ((st == ENG_JOB_FAILED && nv->retries > 0) ||
                           st == ENG_JOB_ERROR_THROWN)) {
                nv->recurring_time = -1;
                rc = eng_job_move(c, (uint64_t)v->job_key, st, old,
                                  ENG_JOB_ACTIVATABLE, nv);
            } else if (g < 0) {
                rc = g;
            }
            if (old != NULL)
                tandem__record__job_record_value__free_unpacked(old, NULL);
            if (nv != NULL)
                tandem__record__job_record_value__free_unpacked(nv, NULL);
        }
    }
    tandem__record__incident_record_value__free_unpacked(v, NULL);
    return rc;
}

/* ------------------------------------------------------------------------
 * Variables, processes, creation, distribution
 * --------------------------------------------------------------------- */

static int eng_apply_variable(struct eng_ctx *c,
                              const Tandem__Record__Record *r)
{
    Tandem__Record__VariableRecordValue *v;
    unsigned char k[8 + ENG_NAME_BYTES_MAX];
    size_t n;
    int rc;

    v = tandem__record__variable_record_value__unpack(NULL, r->value.len,
                                                      r->value.data);
    if (v == NULL)
        return eng_corrupt(c);
    n = strlen(v->name);
    if (n == 0 || n > ENG_NAME_BYTES_MAX) {
        tandem__record__variable_record_value__free_unpacked(v, NULL);
        return eng_corrupt(c);
    }
    eng_put_u64(k, (uint64_t)v->scope_key);
    memcpy(k + 8, v->name, n);
    size_t vl = strlen(v->value);
    unsigned char *val = malloc(8 + vl);
    if (val == NULL) {
        tandem__record__variable_record_value__free_unpacked(v, NULL);
        return c->fail = ENGINE_E_NOMEM;
    }
    eng_put_u64(val, r->key);
    memcpy(val + 8, v->value, vl);
    rc = eng_put(c, ENG_T_VAR, k, 8 + n, val, 8 + vl);
    free(val);
    tandem__record__variable_record_value__free_unpacked(v, NULL);
    return rc;
}

static int eng_apply_process(struct eng_ctx *c, const Tandem__Record__Record *r)
{
    Tandem__Record__ProcessRecordValue *p;
    unsigned char k[8], vk[ENG_NAME_BYTES_MAX + 5], lv[12];
    uint32_t latest_version;
    uint64_t latest_key;
    size_t n;
    int rc;

    p = tandem__record__process_record_value__unpack(NULL, r->value.len,
                                                     r->value.data);
    if (p == NULL)
        return eng_corrupt(c);
    n = strlen(p->bpmn_process_id);
    if (n == 0 || n > ENG_NAME_BYTES_MAX || p->checksum.len != 32 ||
        p->version <= 0) {
        tandem__record__process_record_value__free_unpacked(p, NULL);
        return eng_corrupt(c);
    }
    eng_key8(k, r->key);
    unsigned char *val = malloc(32 + r->value.len);
    if (val == NULL) {
        tandem__record__process_record_value__free_unpacked(p, NULL);
        return c->fail = ENGINE_E_NOMEM;
    }
    memcpy(val, p->checksum.data, 32);
    memcpy(val + 32, r->value.data, r->value.len);
    rc = eng_put(c, ENG_T_PROC, k, 8, val, 32 + r->value.len);
    free(val);
    memcpy(vk, p->bpmn_process_id, n);
    vk[n] = 0;
    eng_put_u32(vk + n + 1, (uint32_t)p->version);
    if (rc == 0)
        rc = eng_put(c, ENG_T_PROC_VER, vk, n + 5, k, 8);
    int g =
        eng_proc_latest(c, p->bpmn_process_id, &latest_version, &latest_key);
    if (rc == 0 && g < 0)
        rc = g;
    if (rc == 0 &&
        (g == ENG_NOTFOUND || (uint32_t)p->version > latest_version)) {
        eng_put_u32(lv, (uint32_t)p->version);
        eng_put_u64(lv + 4, r->key);
        rc = eng_put(c, ENG_T_PROC_LATEST, p->bpmn_process_id, n, lv, 12);
    }
    tandem__record__process_record_value__free_unpacked(p, NULL);
    return rc;
}

static int eng_apply_pic(struct eng_ctx *c, const Tandem__Record__Record *r)
{
    Tandem__Record__ProcessInstanceCreationRecordValue *v;
    const Tandem__Record__Record *src;
    unsigned char k[8], hdr[12];
    int rc = 0;

    if (r->intent != PIC_CREATED)
        return 0;
    v = tandem__record__process_instance_creation_record_value__unpack(
        NULL, r->value.len, r->value.data);
    if (v == NULL)
        return eng_corrupt(c);
    src = eng_record_at(c, r->source_record_position);
    if (v->await_result && src != NULL && src->request_id != 0) {
        eng_key8(k, (uint64_t)v->process_instance_key);
        eng_put_u32(hdr, src->request_node);
        eng_put_u64(hdr + 4, src->request_id);
        rc = eng_put_msg(c, ENG_T_AWAIT, k, 8, hdr, 12,
                         (const ProtobufCMessage *)v);
    }
    tandem__record__process_instance_creation_record_value__free_unpacked(v,
                                                                          NULL);
    return rc;
}

static int eng_apply_pir(struct eng_ctx *c, const Tandem__Record__Record *r)
{
    Tandem__Record__ProcessInstanceResultRecordValue *v;
    unsigned char k[8];

    v = tandem__record__process_instance_result_record_value__unpack(
        NULL, r->value.len, r->value.data);
    if (v == NULL)
        return eng_corrupt(c);
    eng_key8(k, (uint64_t)v->process_instance_key);
    eng_del(c, ENG_T_AWAIT, k, 8);
    tandem__record__process_instance_result_record_value__free_unpacked(v,
                                                                        NULL);
    return c->fail;
}

static int eng_apply_cd(struct eng_ctx *c, const Tandem__Record__Record *r)
{
    Tandem__Record__CommandDistributionRecordValue *v;
    unsigned char k[12];
    int rc = 0;

    v = tandem__record__command_distribution_record_value__unpack(
        NULL, r->value.len, r->value.data);
    if (v == NULL)
        return eng_corrupt(c);
    eng_key8(k, r->key);
    eng_put_u32(k + 8, v->partition_id);
    switch (r->intent) {
    case CD_STARTED: {
        const Tandem__Record__Record *src =
            eng_record_at(c, r->source_record_position);
        size_t n = 20 + v->command_value.len;
        unsigned char *val = malloc(n);
        if (val == NULL) {
            rc = c->fail = ENGINE_E_NOMEM;
            break;
        }
        eng_put_u32(val, src != NULL ? src->request_node : 0);
        eng_put_u64(val + 4, src != NULL ? src->request_id : 0);
        eng_put_u32(val + 12, (uint32_t)v->value_type);
        eng_put_u32(val + 16, v->intent);
        if (v->command_value.len > 0)
            memcpy(val + 20, v->command_value.data, v->command_value.len);
        rc = eng_put(c, ENG_T_DIST, k, 8, val, n);
        free(val);
        break;
    }
    case CD_DISTRIBUTING:
        rc = eng_put(c, ENG_T_DIST_PENDING, k, 12, "", 0);
        break;
    case CD_ACKNOWLEDGED:
        eng_del(c, ENG_T_DIST_PENDING, k, 12);
        rc = c->fail;
        break;
    case CD_FINISHED:
        eng_del(c, ENG_T_DIST, k, 8);
        rc = eng_del_prefix(c, ENG_T_DIST_PENDING, k, 8);
        break;
    default:
        break;
    }
    tandem__record__command_distribution_record_value__free_unpacked(v, NULL);
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------------
 * Process instances
 * --------------------------------------------------------------------- */

/* Counts a token arriving at (or leaving) a join: scope || flow id. */
static int eng_join_add(struct eng_ctx *c, uint64_t scope, const char *flow,
                        int delta)
{
    unsigned char k[8 + ENG_NAME_BYTES_MAX], cnt[4];
    size_t n = strlen(flow);
    uint32_t count = 0;
    MDB_val v;
    int rc;

    if (n == 0 || n > ENG_NAME_BYTES_MAX)
        return eng_corrupt(c);
    eng_put_u64(k, scope);
    memcpy(k + 8, flow, n);
    rc = eng_get(c, ENG_T_JOIN, k, 8 + n, &v);
    if (rc < 0)
        return rc;
    if (rc == 0 && v.mv_size == 4)
        count = eng_get_u32(v.mv_data);
    if (delta < 0 && count == 0)
        return 0;
    count = (uint32_t)((int64_t)count + delta);
    if (count == 0)
        return eng_del(c, ENG_T_JOIN, k, 8 + n) < 0 ? c->fail : 0;
    eng_put_u32(cnt, count);
    return eng_put(c, ENG_T_JOIN, k, 8 + n, cnt, 4);
}

static int eng_apply_activating(struct eng_ctx *c,
                                const Tandem__Record__Record *r,
                                Tandem__Record__ProcessInstanceRecordValue *v)
{
    struct eng_elem_hdr h = {0}, ph;
    enum bpmn_element_type type = eng_type_of(v->bpmn_element_type);
    int rc;

    if (type == 0)
        return eng_corrupt(c);
    h.state = PI_ACTIVATING;
    h.type = (uint32_t)type;
    rc = eng_elem_put(c, r->key, &h, v);
    if (rc != 0 || v->flow_scope_key <= 0)
        return rc;
    uint64_t scope = (uint64_t)v->flow_scope_key;
    rc = eng_elem_get(c, scope, &ph, NULL);
    if (rc == ENG_NOTFOUND)
        return eng_corrupt(c);
    if (rc != 0)
        return rc;
    ph.children++;
    if (type == BPMN_PARALLEL_GATEWAY) {
        char err[ENG_ERR_BYTES];
        const struct eng_model *m = eng_model_get(
            c, (uint64_t)v->process_definition_key, err, sizeof err);
        uint32_t idx =
            m ? bpmn_element_find(m->proc, v->element_id) : BPMN_NONE;
        if (idx == BPMN_NONE)
            return eng_corrupt(c);
        const struct bpmn_element *g = &m->proc->elements[idx];
        ph.flows =
            ph.flows >= g->n_incoming ? ph.flows - (uint32_t)g->n_incoming : 0;
        if (g->n_incoming > 1) {
            for (size_t i = 0; i < g->n_incoming && rc == 0; i++)
                rc = eng_join_add(c, scope,
                                  m->proc->elements[g->incoming[i]].id, -1);
        }
    } else if (type != BPMN_START_EVENT && type != BPMN_BOUNDARY_EVENT) {
        if (ph.flows > 0)
            ph.flows--;
    }
    if (rc == 0)
        rc = eng_elem_put_hdr(c, scope, &ph);
    unsigned char ck[16];
    eng_key16(ck, scope, r->key);
    if (rc == 0)
        rc = eng_put(c, ENG_T_ELEM_CHILD, ck, 16, "", 0);
    return rc;
}

static int eng_apply_ended(struct eng_ctx *c, const Tandem__Record__Record *r,
                           Tandem__Record__ProcessInstanceRecordValue *v)
{
    struct eng_elem_hdr h, ph;
    unsigned char k[8], ck[16];
    int rc = eng_elem_get(c, r->key, &h, NULL);

    if (rc == ENG_NOTFOUND)
        return eng_corrupt(c);
    if (rc != 0)
        return rc;
    eng_key8(k, r->key);
    if (h.job_key != 0 && (rc = eng_job_delete(c, h.job_key)) != 0)
        return rc;
    eng_del(c, ENG_T_ELEM, k, 8);
    eng_del(c, ENG_T_TMPVAR, k, 8);
    if (eng_del_prefix(c, ENG_T_VAR, k, 8) != 0 ||
        eng_del_prefix(c, ENG_T_JOIN, k, 8) != 0 ||
        eng_del_prefix(c, ENG_T_ELEM_CHILD, k, 8) != 0)
        return c->fail;
    if (r->intent == PI_TERMINATED && v->flow_scope_key <= 0)
        eng_del(c, ENG_T_AWAIT, k, 8);
    if (c->fail != 0)
        return c->fail;
    if (v->flow_scope_key <= 0)
        return 0;
    uint64_t scope = (uint64_t)v->flow_scope_key;
    rc = eng_elem_get(c, scope, &ph, NULL);
    if (rc == ENG_NOTFOUND)
        return eng_corrupt(c);
    if (rc != 0)
        return rc;
    if (ph.children > 0)
        ph.children--;
    eng_key16(ck, scope, r->key);
    eng_del(c, ENG_T_ELEM_CHILD, ck, 16);
    return eng_elem_put_hdr(c, scope, &ph);
}

static int eng_apply_flow_taken(struct eng_ctx *c,
                                Tandem__Record__ProcessInstanceRecordValue *v)
{
    struct eng_elem_hdr ph;
    char err[ENG_ERR_BYTES];
    uint64_t scope = (uint64_t)v->flow_scope_key;
    int rc;

    if (v->flow_scope_key <= 0)
        return eng_corrupt(c);
    rc = eng_elem_get(c, scope, &ph, NULL);
    if (rc == ENG_NOTFOUND)
        return eng_corrupt(c);
    if (rc != 0)
        return rc;
    ph.flows++;
    rc = eng_elem_put_hdr(c, scope, &ph);
    if (rc != 0)
        return rc;
    const struct eng_model *m =
        eng_model_get(c, (uint64_t)v->process_definition_key, err, sizeof err);
    uint32_t idx = m ? bpmn_element_find(m->proc, v->element_id) : BPMN_NONE;
    if (idx == BPMN_NONE)
        return eng_corrupt(c);
    const struct bpmn_element *f = &m->proc->elements[idx];
    const struct bpmn_element *t = &m->proc->elements[f->target];
    if (t->type == BPMN_PARALLEL_GATEWAY && t->n_incoming > 1)
        return eng_join_add(c, scope, f->id, 1);
    return 0;
}

static int eng_apply_pi(struct eng_ctx *c, const Tandem__Record__Record *r)
{
    Tandem__Record__ProcessInstanceRecordValue *v;
    struct eng_elem_hdr h;
    int rc = 0;

    v = tandem__record__process_instance_record_value__unpack(
        NULL, r->value.len, r->value.data);
    if (v == NULL)
        return eng_corrupt(c);
    switch (r->intent) {
    case PI_ACTIVATING:
        rc = eng_apply_activating(c, r, v);
        break;
    case PI_ACTIVATED:
    case PI_COMPLETING:
    case PI_TERMINATING:
        rc = eng_elem_get(c, r->key, &h, NULL);
        if (rc == ENG_NOTFOUND) {
            rc = eng_corrupt(c);
            break;
        }
        if (rc == 0) {
            h.state = r->intent;
            rc = eng_elem_put_hdr(c, r->key, &h);
        }
        break;
    case PI_COMPLETED:
    case PI_TERMINATED:
        rc = eng_apply_ended(c, r, v);
        break;
    case PI_FLOW_TAKEN:
        rc = eng_apply_flow_taken(c, v);
        break;
    default:
        break;
    }
    tandem__record__process_instance_record_value__free_unpacked(v, NULL);
    return rc;
}

/* EXPORTER UPDATED / DELETED: the exporter's row (id -> value). */
static int eng_apply_exporter(struct eng_ctx *c, const Tandem__Record__Record *r)
{
    Tandem__Record__ExporterRecordValue *v;
    int rc;

    v = tandem__record__exporter_record_value__unpack(NULL, r->value.len,
                                                      r->value.data);
    if (v == NULL || v->exporter_id[0] == '\0' ||
        strlen(v->exporter_id) > ENG_NAME_BYTES_MAX) {
        if (v != NULL)
            tandem__record__exporter_record_value__free_unpacked(v, NULL);
        return eng_corrupt(c);
    }
    if (r->intent == EXP_UPDATED) {
        rc = eng_put(c, ENG_T_EXPORTER, v->exporter_id, strlen(v->exporter_id),
                     r->value.data, r->value.len);
    } else if (r->intent == EXP_DELETED) {
        rc = eng_del(c, ENG_T_EXPORTER, v->exporter_id,
                     strlen(v->exporter_id));
        if (rc == ENG_NOTFOUND)
            rc = 0;
    } else {
        rc = 0;
    }
    tandem__record__exporter_record_value__free_unpacked(v, NULL);
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------------
 * Dispatch
 * --------------------------------------------------------------------- */

int eng_apply_record(struct eng_ctx *c, const Tandem__Record__Record *rec,
                     uint64_t position)
{
    ENGINE_ASSERT(c != NULL && rec != NULL);
    ENGINE_ASSERT(c->key_counter != NULL);
    (void)position;
    if (rec->key != 0 && (rec->key >> ENGINE_KEY_BITS) == c->e->partition_id) {
        uint64_t ctr = rec->key & ENG_KEY_MASK;
        if (ctr > *c->key_counter)
            *c->key_counter = ctr;
    }
    if (rec->record_type != RT_EVENT)
        return 0;
    switch (rec->value_type) {
    case VT_MESSAGE:
        return eng_apply_message(c, rec);
    case VT_JOB:
        return eng_apply_job(c, rec);
    case VT_JOB_BATCH:
        return eng_apply_job_batch(c, rec);
    case VT_INCIDENT:
        return eng_apply_incident(c, rec);
    case VT_VARIABLE:
        return eng_apply_variable(c, rec);
    case VT_PROCESS:
        return eng_apply_process(c, rec);
    case VT_PIC:
        return eng_apply_pic(c, rec);
    case VT_PIR:
        return eng_apply_pir(c, rec);
    case VT_CD:
        return eng_apply_cd(c, rec);
    case VT_PI:
        return eng_apply_pi(c, rec);
    case VT_EXPORTER:
        return eng_apply_exporter(c, rec);
    case VT_DEPLOYMENT:
    case VT_VARDOC:
    case TANDEM__RECORD__VALUE_TYPE__ERROR:
        return 0;
    default:
        return eng_corrupt(c);
    }
}
