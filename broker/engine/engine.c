/* engine.c: the public face of the engine (engine.h): opening and closing,
 * client requests -> COMMAND records, answering records -> gateway
 * responses, applying committed entries, and the distribution helpers.
 *
 * Data flow:
 *
 *   Tandem__Command__Request --engine_command_from_request()--> validated
 *     COMMAND record (value packed, request ids set) --> partition queue
 *     --> engine_process() (engine_process.c)
 *   committed RecordBatch --engine_apply_entry()--> eng_apply_record() per
 *     record (engine_apply.c) in the transaction engine_apply_begin()
 *     opened; answering records and activatable job types go to the hooks
 *   answering record --engine_response_build()--> Tandem__Command__Response
 *     (Zeebe's gateway_protocol message, or Error for a rejection)
 *
 * Heap messages returned to callers (records, responses) are built on the
 * stack, packed, and unpacked again with protobuf-c, so one
 * *_free_unpacked() releases each.
 */
#define _POSIX_C_SOURCE 200809L
#include "broker/engine/engine_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Lifecycle
 * --------------------------------------------------------------------- */

int engine_open(struct engine **out, const struct engine_options *opt,
                char *err, size_t errlen)
{
    struct engine *e;
    int rc;

    ENGINE_ASSERT(out != NULL);
    *out = NULL;
    if (opt == NULL || opt->dir == NULL || opt->dir[0] == 0) {
        snprintf(err, errlen, "engine: a state directory is required");
        return ENGINE_E_INVALID;
    }
    if (opt->partition_id < 1 || opt->partitions_count < opt->partition_id) {
        snprintf(err, errlen,
                 "engine: partition %u of %u is not a valid partition",
                 opt->partition_id, opt->partitions_count);
        return ENGINE_E_INVALID;
    }
    if (opt->partition_id >= (1u << (64 - ENGINE_KEY_BITS))) {
        snprintf(err, errlen, "engine: partition id %u does not fit a key",
                 opt->partition_id);
        return ENGINE_E_INVALID;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL) {
        snprintf(err, errlen, "engine: out of memory");
        return ENGINE_E_NOMEM;
    }
    e->partition_id = opt->partition_id;
    e->partitions_count = opt->partitions_count;
    e->broker_version = strdup(opt->broker_version ? opt->broker_version : "");
    if (e->broker_version == NULL) {
        free(e);
        snprintf(err, errlen, "engine: out of memory");
        return ENGINE_E_NOMEM;
    }
    rc = eng_state_open(e, opt->dir, opt->map_size ? opt->map_size : (1u << 30),
                        err, errlen);
    if (rc != 0) {
        free(e->broker_version);
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void engine_close(struct engine *e)
{
    if (e == NULL)
        return;
    if (e->apply_txn != NULL)
        mdb_txn_abort(e->apply_txn);
    eng_models_clear(e);
    eng_state_close(e);
    free(e->broker_version);
    free(e);
}

uint64_t engine_applied_index(const struct engine *e)
{
    ENGINE_ASSERT(e != NULL);
    return e->applied_index;
}

/* ------------------------------------------------------------------------
 * Applying
 * --------------------------------------------------------------------- */

int engine_apply_begin(struct engine *e)
{
    ENGINE_ASSERT(e != NULL);
    ENGINE_ASSERT(e->apply_txn == NULL);
    if (mdb_txn_begin(e->env, NULL, 0, &e->apply_txn) != 0) {
        e->apply_txn = NULL;
        return ENGINE_E_IO;
    }
    e->apply_index = e->applied_index;
    e->apply_counter = e->key_counter;
    return 0;
}

static bool eng_record_sane(const Tandem__Record__Record *r)
{
    return r != NULL && r->record_type >= RT_COMMAND &&
           r->record_type <= RT_REJECTION && r->value_type >= VT_MESSAGE &&
           r->value_type <= VT_EXPORTER;
}

int engine_apply_entry(struct engine *e, uint64_t index,
                       const Tandem__Record__RecordBatch *batch,
                       const struct engine_apply_hooks *hooks)
{
    struct eng_ctx c = {0};

    ENGINE_ASSERT(e != NULL);
    ENGINE_ASSERT(e->apply_txn != NULL);
    if (index <= e->apply_index)
        return 0;
    if (batch == NULL) {
        e->apply_index = index;
        return 0;
    }
    if (batch->n_records > (1u << ENGINE_POSITION_BITS))
        return ENGINE_E_CORRUPT;
    c.e = e;
    c.txn = e->apply_txn;
    c.processing = false;
    c.key_counter = &e->apply_counter;
    c.view = batch->records;
    c.view_n = batch->n_records;
    c.view_first = index << ENGINE_POSITION_BITS;
    c.hooks = hooks;
    for (size_t i = 0; i < batch->n_records; i++) {
        const Tandem__Record__Record *r = batch->records[i];
        uint64_t pos = c.view_first + i;
        if (!eng_record_sane(r))
            return ENGINE_E_CORRUPT;
        c.now = r->timestamp;
        int rc = eng_apply_record(&c, r, pos);
        if (rc < 0 || c.fail != 0)
            return rc < 0 ? (rc == ENGINE_E_NOMEM || rc == ENGINE_E_IO
                                 ? rc
                                 : ENGINE_E_CORRUPT)
                          : ENGINE_E_CORRUPT;
        if (r->request_id != 0 && r->record_type != RT_COMMAND &&
            hooks != NULL && hooks->answer != NULL)
            hooks->answer(hooks->data, r, pos);
    }
    e->apply_index = index;
    return 0;
}

int engine_apply_end(struct engine *e)
{
    int rc;

    ENGINE_ASSERT(e != NULL);
    ENGINE_ASSERT(e->apply_txn != NULL);
    rc = eng_state_save_meta(e, e->apply_txn, e->apply_index, e->apply_counter);
    if (rc != 0) {
        mdb_txn_abort(e->apply_txn);
        e->apply_txn = NULL;
        return rc;
    }
    uint64_t due = eng_state_next_due(e, e->apply_txn);
    if (mdb_txn_commit(e->apply_txn) != 0) {
        e->apply_txn = NULL;
        return ENGINE_E_IO;
    }
    e->apply_txn = NULL;
    e->applied_index = e->apply_index;
    e->key_counter = e->apply_counter;
    e->next_due = due;
    return 0;
}

/* ------------------------------------------------------------------------
 * Requests -> commands
 * --------------------------------------------------------------------- */

void engine_record_free(Tandem__Record__Record *rec)
{
    if (rec != NULL)
        tandem__record__record__free_unpacked(rec, NULL);
}

/* Packs value into a record and returns its heap copy. */
static int eng_make_record(Tandem__Record__ValueType vt, uint32_t intent,
                           uint64_t key, const ProtobufCMessage *value,
                           uint32_t node, uint64_t id,
                           Tandem__Record__Record **out)
{
    Tandem__Record__Record r = TANDEM__RECORD__RECORD__INIT;
    size_t vlen = protobuf_c_message_get_packed_size(value);
    uint8_t *vbuf = malloc(vlen + 1);
    if (vbuf == NULL)
        return ENGINE_E_NOMEM;
    protobuf_c_message_pack(value, vbuf);
    r.key = key;
    r.record_type = RT_COMMAND;
    r.value_type = vt;
    r.intent = intent;
    r.value.data = vbuf;
    r.value.len = vlen;
    r.request_node = node;
    r.request_id = id;
    size_t len = tandem__record__record__get_packed_size(&r);
    uint8_t *buf = malloc(len + 1);
    if (buf == NULL) {
        free(vbuf);
        return ENGINE_E_NOMEM;
    }
    tandem__record__record__pack(&r, buf);
    free(vbuf);
    *out = tandem__record__record__unpack(NULL, len, buf);
    free(buf);
    return *out != NULL ? 0 : ENGINE_E_NOMEM;
}

static int eng_key_check(const struct engine *e, const char *what, int64_t key,
                         char *err, size_t errlen)
{
    if (key <= 0) {
        snprintf(err, errlen,
                 "Expected %s to be a positive key, but it was '%" PRId64 "'",
                 what, key);
        return ENGINE_E_INVALID;
    }
    uint64_t p = (uint64_t)key >> ENGINE_KEY_BITS;
    if (p != e->partition_id) {
        snprintf(err, errlen,
                 "Expected %s '%" PRId64 "' to belong to partition %u, but "
                 "it belongs to partition %" PRIu64,
                 what, key, e->partition_id, p);
        return ENGINE_E_INVALID;
    }
    return 0;
}

static const char *eng_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

int engine_command_from_request(struct engine *e,
                                const Tandem__Command__Request *req,
                                uint32_t request_node, uint64_t request_id,
                                Tandem__Record__Record **out, char *err,
                                size_t errlen)
{
    int rc;

    ENGINE_ASSERT(e != NULL && out != NULL);
    *out = NULL;
    if (req == NULL) {
        snprintf(err, errlen, "Expected a request, but none was given");
        return ENGINE_E_INVALID;
    }
#define BODY_NULL_CHECK(field)                                                 \
    do {                                                                       \
        if (req->field == NULL) {                                              \
            snprintf(err, errlen, "Expected a request body, but it is empty"); \
            return ENGINE_E_INVALID;                                           \
        }                                                                      \
    } while (0)
    switch (req->body_case) {
    case TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE: {
        BODY_NULL_CHECK(publish_message);
        const GatewayProtocol__PublishMessageRequest *q = req->publish_message;
        if (eng_or_empty(q->name)[0] == 0) {
            snprintf(err, errlen,
                     "Expected to publish a message with a name, but the "
                     "name is empty");
            return ENGINE_E_INVALID;
        }
        rc = eng_json_object_check("variables", q->variables, err, errlen);
        if (rc != 0)
            return rc;
        Tandem__Record__MessageRecordValue m =
            TANDEM__RECORD__MESSAGE_RECORD_VALUE__INIT;
        m.name = q->name;
        m.correlation_key = (char *)eng_or_empty(q->correlationkey);
        m.time_to_live = q->timetolive;
        m.message_id = (char *)eng_or_empty(q->messageid);
        m.variables =
            (char *)(eng_or_empty(q->variables)[0] ? q->variables : "{}");
        m.deadline = -1;
        m.tenant_id =
            (char *)(eng_or_empty(q->tenantid)[0] ? q->tenantid
                                                  : ENGINE_DEFAULT_TENANT);
        return eng_make_record(VT_MESSAGE, MSG_PUBLISH, 0,
                               (const ProtobufCMessage *)&m, request_node,
                               request_id, out);
    }
    case TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE: {
        BODY_NULL_CHECK(deploy_resource);
        const GatewayProtocol__DeployResourceRequest *q = req->deploy_resource;
        Tandem__Record__DeploymentRecordValue d =
            TANDEM__RECORD__DEPLOYMENT_RECORD_VALUE__INIT;
        Tandem__Record__DeploymentResource *res =
            calloc(q->n_resources ? q->n_resources : 1, sizeof *res);
        Tandem__Record__DeploymentResource **ptr =
            calloc(q->n_resources ? q->n_resources : 1, sizeof *ptr);
        if (res == NULL || ptr == NULL) {
            free(res);
            free(ptr);
            snprintf(err, errlen, "out of memory");
            return ENGINE_E_NOMEM;
        }
        for (size_t i = 0; i < q->n_resources; i++) {
            tandem__record__deployment_resource__init(&res[i]);
            res[i].resource_name = (char *)eng_or_empty(q->resources[i]->name);
            res[i].resource = q->resources[i]->content;
            ptr[i] = &res[i];
        }
        d.resources = ptr;
        d.n_resources = q->n_resources;
        d.tenant_id =
            (char *)(eng_or_empty(q->tenantid)[0] ? q->tenantid
                                                  : ENGINE_DEFAULT_TENANT);
        rc = eng_deploy_validate(&d, err, errlen);
        if (rc == 0 && e->partition_id != 1) {
            snprintf(err, errlen,
                     "Expected to deploy on the deployment partition 1, but "
                     "this is partition %u",
                     e->partition_id);
            rc = ENGINE_E_INVALID;
        }
        if (rc == 0)
            rc = eng_make_record(VT_DEPLOYMENT, DEP_CREATE, 0,
                                 (const ProtobufCMessage *)&d, request_node,
                                 request_id, out);
        free(res);
        free(ptr);
        return rc;
    }
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE:
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT: {
        const GatewayProtocol__CreateProcessInstanceRequest *q;
        const GatewayProtocol__CreateProcessInstanceWithResultRequest *w = NULL;
        if (req->body_case ==
            TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE) {
            BODY_NULL_CHECK(create_process_instance);
            q = req->create_process_instance;
        } else {
            BODY_NULL_CHECK(create_process_instance_with_result);
            w = req->create_process_instance_with_result;
            q = w->request;
            if (q == NULL) {
                snprintf(err, errlen,
                         "Expected a create process instance request, but "
                         "none was given");
                return ENGINE_E_INVALID;
            }
        }
        if (eng_or_empty(q->bpmnprocessid)[0] == 0 &&
            q->processdefinitionkey <= 0) {
            snprintf(err, errlen,
                     "Expected at least a bpmnProcessId or a key greater "
                     "than -1, but none given");
            return ENGINE_E_INVALID;
        }
        if (q->n_startinstructions > 0) {
            snprintf(err, errlen,
                     "Expected to create a process instance at its none "
                     "start event, but start instructions are not "
                     "supported");
            return ENGINE_E_INVALID;
        }
        rc = eng_json_object_check("variables", q->variables, err, errlen);
        if (rc != 0)
            return rc;
        Tandem__Record__ProcessInstanceCreationRecordValue v =
            TANDEM__RECORD__PROCESS_INSTANCE_CREATION_RECORD_VALUE__INIT;
        v.bpmn_process_id = (char *)eng_or_empty(q->bpmnprocessid);
        v.version = q->version > 0 ? q->version : -1;
        v.process_definition_key =
            v.bpmn_process_id[0] ? -1 : q->processdefinitionkey;
        v.variables =
            (char *)(eng_or_empty(q->variables)[0] ? q->variables : "{}");
        v.process_instance_key = -1;
        v.tenant_id =
            (char *)(eng_or_empty(q->tenantid)[0] ? q->tenantid
                                                  : ENGINE_DEFAULT_TENANT);
        if (w != NULL) {
            v.await_result = true;
            v.request_timeout = w->requesttimeout;
            v.fetch_variables = w->fetchvariables;
            v.n_fetch_variables = w->n_fetchvariables;
        }
        return eng_make_record(VT_PIC, PIC_CREATE, 0,
                               (const ProtobufCMessage *)&v, request_node,
                               request_id, out);
    }
    case TANDEM__COMMAND__REQUEST__BODY_CANCEL_PROCESS_INSTANCE: {
        BODY_NULL_CHECK(cancel_process_instance);
        int64_t key = req->cancel_process_instance->processinstancekey;
        rc = eng_key_check(e, "processInstanceKey", key, err, errlen);
        if (rc != 0)
            return rc;
        Tandem__Record__ProcessInstanceRecordValue v =
            TANDEM__RECORD__PROCESS_INSTANCE_RECORD_VALUE__INIT;
        v.process_instance_key = key;
        v.flow_scope_key = -1;
        v.parent_process_instance_key = -1;
        v.parent_element_instance_key = -1;
        return eng_make_record(VT_PI, PI_CANCEL, (uint64_t)key,
                               (const ProtobufCMessage *)&v, request_node,
                               request_id, out);
    }
    case TANDEM__COMMAND__REQUEST__BODY_SET_VARIABLES: {
        BODY_NULL_CHECK(set_variables);
        const GatewayProtocol__SetVariablesRequest *q = req->set_variables;
        rc = eng_key_check(e, "elementInstanceKey", q->elementinstancekey, err,
                           errlen);
        if (rc == 0)
            rc = eng_json_object_check("variables", q->variables, err, errlen);
        if (rc != 0)
            return rc;
        Tandem__Record__VariableDocumentRecordValue v =
            TANDEM__RECORD__VARIABLE_DOCUMENT_RECORD_VALUE__INIT;
        v.scope_key = q->elementinstancekey;
        v.update_semantics = (char *)(q->local ? "LOCAL" : "PROPAGATE");
        v.variables =
            (char *)(eng_or_empty(q->variables)[0] ? q->variables : "{}");
        v.tenant_id = (char *)ENGINE_DEFAULT_TENANT;
        return eng_make_record(VT_VARDOC, VD_UPDATE, 0,
                               (const ProtobufCMessage *)&v, request_node,
                               request_id, out);
    }
    case TANDEM__COMMAND__REQUEST__BODY_ACTIVATE_JOBS: {
        BODY_NULL_CHECK(activate_jobs);
        const GatewayProtocol__ActivateJobsRequest *q = req->activate_jobs;
        if (eng_or_empty(q->type)[0] == 0) {
            snprintf(err, errlen,
                     "Expected to activate job batch with type to be "
                     "present, but it was blank");
            return ENGINE_E_INVALID;
        }
        if (q->maxjobstoactivate < 1) {
            snprintf(err, errlen,
                     "Expected to activate job batch with max jobs to "
                     "activate to be greater than zero, but it was '%d'",
                     q->maxjobstoactivate);
            return ENGINE_E_INVALID;
        }
        if (q->timeout < 1) {
            snprintf(err, errlen,
                     "Expected to activate job batch with timeout to be "
                     "greater than zero, but it was '%" PRId64 "'",
                     q->timeout);
            return ENGINE_E_INVALID;
        }
        Tandem__Record__JobBatchRecordValue v =
            TANDEM__RECORD__JOB_BATCH_RECORD_VALUE__INIT;
        v.type = q->type;
        v.worker = (char *)eng_or_empty(q->worker);
        v.timeout = q->timeout;
        v.max_jobs_to_activate = q->maxjobstoactivate;
        v.fetch_variables = q->fetchvariable;
        v.n_fetch_variables = q->n_fetchvariable;
        v.tenant_ids = q->tenantids;
        v.n_tenant_ids = q->n_tenantids;
        return eng_make_record(VT_JOB_BATCH, JB_ACTIVATE, 0,
                               (const ProtobufCMessage *)&v, request_node,
                               request_id, out);
    }
    case TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB:
    case TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB:
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_RETRIES:
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_TIMEOUT:
    case TANDEM__COMMAND__REQUEST__BODY_THROW_ERROR: {
        Tandem__Record__JobRecordValue j =
            TANDEM__RECORD__JOB_RECORD_VALUE__INIT;
        const char *vars = NULL;
        int64_t key;
        uint32_t intent;
        j.variables = (char *)"{}";
        j.recurring_time = -1;
        j.deadline = -1;
        switch (req->body_case) {
        case TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB:
            BODY_NULL_CHECK(complete_job);
            key = req->complete_job->jobkey;
            vars = req->complete_job->variables;
            intent = JOB_COMPLETE;
            break;
        case TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB:
            BODY_NULL_CHECK(fail_job);
            key = req->fail_job->jobkey;
            vars = req->fail_job->variables;
            j.retries = req->fail_job->retries;
            j.error_message = (char *)eng_or_empty(req->fail_job->errormessage);
            if (req->fail_job->retrybackoff < 0) {
                snprintf(err, errlen,
                         "Expected the retry backoff to be zero or positive, "
                         "but it was '%" PRId64 "'",
                         req->fail_job->retrybackoff);
                return ENGINE_E_INVALID;
            }
            j.retry_backoff = req->fail_job->retrybackoff;
            intent = JOB_FAIL;
            break;
        case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_RETRIES:
            BODY_NULL_CHECK(update_job_retries);
            key = req->update_job_retries->jobkey;
            j.retries = req->update_job_retries->retries;
            if (j.retries < 1) {
                snprintf(err, errlen,
                         "Expected to update retries for job with key "
                         "'%" PRId64 "' with a positive amount of retries, "
                         "but the amount given was '%d'",
                         key, j.retries);
                return ENGINE_E_INVALID;
            }
            intent = JOB_UPDATE_RETRIES;
            break;
        case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_TIMEOUT:
            BODY_NULL_CHECK(update_job_timeout);
            key = req->update_job_timeout->jobkey;
            j.timeout = req->update_job_timeout->timeout;
            if (j.timeout < 0) {
                snprintf(err, errlen,
                         "Expected the timeout to be zero or positive, but "
                         "it was '%" PRId64 "'",
                         j.timeout);
                return ENGINE_E_INVALID;
            }
            intent = JOB_UPDATE_TIMEOUT;
            break;
        default:
            BODY_NULL_CHECK(throw_error);
            key = req->throw_error->jobkey;
            vars = req->throw_error->variables;
            j.error_code = (char *)eng_or_empty(req->throw_error->errorcode);
            j.error_message =
                (char *)eng_or_empty(req->throw_error->errormessage);
            if (j.error_code[0] == 0) {
                snprintf(err, errlen,
                         "Expected to throw an error with a code, but the "
                         "error code is empty");
                return ENGINE_E_INVALID;
            }
            intent = JOB_THROW_ERROR;
            break;
        }
        rc = eng_key_check(e, "jobKey", key, err, errlen);
        if (rc == 0)
            rc = eng_json_object_check("variables", vars, err, errlen);
        if (rc != 0)
            return rc;
        if (eng_or_empty(vars)[0] != 0)
            j.variables = (char *)vars;
        return eng_make_record(VT_JOB, intent, (uint64_t)key,
                               (const ProtobufCMessage *)&j, request_node,
                               request_id, out);
    }
    case TANDEM__COMMAND__REQUEST__BODY_RESOLVE_INCIDENT: {
        BODY_NULL_CHECK(resolve_incident);
        int64_t key = req->resolve_incident->incidentkey;
        rc = eng_key_check(e, "incidentKey", key, err, errlen);
        if (rc != 0)
            return rc;
        Tandem__Record__IncidentRecordValue v =
            TANDEM__RECORD__INCIDENT_RECORD_VALUE__INIT;
        v.job_key = -1;
        return eng_make_record(VT_INCIDENT, INC_RESOLVE, (uint64_t)key,
                               (const ProtobufCMessage *)&v, request_node,
                               request_id, out);
    }
    default:
        snprintf(err, errlen,
                 "Expected a command the engine processes, but the request "
                 "body is %d",
                 (int)req->body_case);
        return ENGINE_E_INVALID;
    }
#undef BODY_NULL_CHECK
}

bool engine_command_is_exempt(const Tandem__Record__Record *cmd)
{
    if (cmd == NULL)
        return false;
    switch (cmd->value_type) {
    case VT_JOB:
        return cmd->intent == JOB_COMPLETE || cmd->intent == JOB_FAIL;
    case VT_PI:
        return cmd->intent == PI_CANCEL;
    case VT_DEPLOYMENT:
        return cmd->intent == DEP_CREATE;
    case VT_CD:
        return cmd->intent == CD_ACKNOWLEDGE;
    case VT_EXPORTER:
        return true;
    default:
        return false;
    }
}

/* ------------------------------------------------------------------------
 * Records -> responses
 * --------------------------------------------------------------------- */

void engine_response_free(Tandem__Command__Response *resp)
{
    if (resp != NULL)
        tandem__command__response__free_unpacked(resp, NULL);
}

static int eng_response_finish(Tandem__Command__Response *r,
                               Tandem__Command__Response **out)
{
    size_t len = tandem__command__response__get_packed_size(r);
    uint8_t *buf = malloc(len + 1);
    if (buf == NULL)
        return ENGINE_E_NOMEM;
    tandem__command__response__pack(r, buf);
    *out = tandem__command__response__unpack(NULL, len, buf);
    free(buf);
    return *out != NULL ? 0 : ENGINE_E_NOMEM;
}

/* Zeebe's intent name of a command, for rejection messages. */
static const char *eng_intent_name(Tandem__Record__ValueType vt,
                                   uint32_t intent)
{
    switch (vt) {
    case VT_MESSAGE:
        return intent == MSG_EXPIRE ? "EXPIRE" : "PUBLISH";
    case VT_JOB:
        switch (intent) {
        case JOB_COMPLETE:
            return "COMPLETE";
        case JOB_FAIL:
            return "FAIL";
        case JOB_UPDATE_RETRIES:
            return "UPDATE_RETRIES";
        case JOB_UPDATE_TIMEOUT:
            return "UPDATE_TIMEOUT";
        case JOB_THROW_ERROR:
            return "THROW_ERROR";
        case JOB_TIME_OUT:
            return "TIME_OUT";
        case JOB_RECUR:
            return "RECUR_AFTER_BACKOFF";
        default:
            return "UNKNOWN";
        }
    case VT_JOB_BATCH:
        return "ACTIVATE";
    case VT_DEPLOYMENT:
    case VT_PIC:
        return "CREATE";
    case VT_PI:
        switch (intent) {
        case PI_CANCEL:
            return "CANCEL";
        case PI_ACTIVATE:
            return "ACTIVATE_ELEMENT";
        case PI_COMPLETE:
            return "COMPLETE_ELEMENT";
        case PI_TERMINATE:
            return "TERMINATE_ELEMENT";
        default:
            return "UNKNOWN";
        }
    case VT_VARDOC:
        return "UPDATE";
    case VT_INCIDENT:
        return "RESOLVE";
    case VT_CD:
        return "ACKNOWLEDGE";
    default:
        return "UNKNOWN";
    }
}

static const char *eng_rejection_name(Tandem__Record__RejectionType t)
{
    switch (t) {
    case REJ_INVALID_ARGUMENT:
        return "INVALID_ARGUMENT";
    case REJ_NOT_FOUND:
        return "NOT_FOUND";
    case REJ_ALREADY_EXISTS:
        return "ALREADY_EXISTS";
    case REJ_INVALID_STATE:
        return "INVALID_STATE";
    case REJ_PROCESSING_ERROR:
        return "PROCESSING_ERROR";
    case REJ_EXCEEDED:
        return "EXCEEDED_BATCH_RECORD_SIZE";
    default:
        return "NULL_VAL";
    }
}

static Tandem__Command__Code eng_rejection_code(Tandem__Record__RejectionType t)
{
    switch (t) {
    case REJ_INVALID_ARGUMENT:
        return TANDEM__COMMAND__CODE__INVALID_ARGUMENT;
    case REJ_NOT_FOUND:
        return TANDEM__COMMAND__CODE__NOT_FOUND;
    case REJ_ALREADY_EXISTS:
        return TANDEM__COMMAND__CODE__ALREADY_EXISTS;
    case REJ_INVALID_STATE:
        return TANDEM__COMMAND__CODE__FAILED_PRECONDITION;
    default:
        return TANDEM__COMMAND__CODE__INTERNAL;
    }
}

static int eng_response_rejection(const Tandem__Record__Record *a,
                                  Tandem__Command__Response *r,
                                  Tandem__Command__Response **out)
{
    Tandem__Command__Error e = TANDEM__COMMAND__ERROR__INIT;
    char msg[2048];

    snprintf(msg, sizeof msg, "Command '%s' rejected with code '%s': %s",
             eng_intent_name(a->value_type, a->intent),
             eng_rejection_name(a->rejection_type),
             a->rejection_reason ? a->rejection_reason : "");
    e.code = eng_rejection_code(a->rejection_type);
    e.message = msg;
    r->body_case = TANDEM__COMMAND__RESPONSE__BODY_ERROR;
    r->error = &e;
    return eng_response_finish(r, out);
}

static int eng_response_deploy(const Tandem__Record__Record *a,
                               Tandem__Command__Response *r,
                               Tandem__Command__Response **out)
{
    Tandem__Record__CommandDistributionRecordValue *cd;
    Tandem__Record__DeploymentRecordValue *d;
    int rc = ENGINE_E_CORRUPT;

    cd = tandem__record__command_distribution_record_value__unpack(
        NULL, a->value.len, a->value.data);
    if (cd == NULL)
        return ENGINE_E_CORRUPT;
    d = tandem__record__deployment_record_value__unpack(
        NULL, cd->command_value.len, cd->command_value.data);
    if (d != NULL) {
        size_t n = d->n_processes_metadata;
        GatewayProtocol__Deployment *deps = calloc(n ? n : 1, sizeof *deps);
        GatewayProtocol__Deployment **dptr = calloc(n ? n : 1, sizeof *dptr);
        GatewayProtocol__ProcessMetadata *pm = calloc(n ? n : 1, sizeof *pm);
        if (deps != NULL && dptr != NULL && pm != NULL) {
            GatewayProtocol__DeployResourceResponse dr =
                GATEWAY_PROTOCOL__DEPLOY_RESOURCE_RESPONSE__INIT;
            for (size_t i = 0; i < n; i++) {
                const Tandem__Record__ProcessMetadata *m =
                    d->processes_metadata[i];
                gateway_protocol__process_metadata__init(&pm[i]);
                pm[i].bpmnprocessid = m->bpmn_process_id;
                pm[i].version = m->version;
                pm[i].processdefinitionkey = m->process_definition_key;
                pm[i].resourcename = m->resource_name;
                pm[i].tenantid = m->tenant_id;
                gateway_protocol__deployment__init(&deps[i]);
                deps[i].metadata_case =
                    GATEWAY_PROTOCOL__DEPLOYMENT__METADATA_PROCESS;
                deps[i].process = &pm[i];
                dptr[i] = &deps[i];
            }
            dr.key = (int64_t)a->key;
            dr.deployments = dptr;
            dr.n_deployments = n;
            dr.tenantid = (char *)(d->tenant_id[0] ? d->tenant_id
                                                   : ENGINE_DEFAULT_TENANT);
            r->body_case = TANDEM__COMMAND__RESPONSE__BODY_DEPLOY_RESOURCE;
            r->deploy_resource = &dr;
            rc = eng_response_finish(r, out);
        } else {
            rc = ENGINE_E_NOMEM;
        }
        free(deps);
        free(dptr);
        free(pm);
        tandem__record__deployment_record_value__free_unpacked(d, NULL);
    }
    tandem__record__command_distribution_record_value__free_unpacked(cd, NULL);
    return rc;
}

static int eng_response_jobs(const Tandem__Record__Record *a,
                             Tandem__Command__Response *r,
                             Tandem__Command__Response **out)
{
    Tandem__Record__JobBatchRecordValue *b;
    int rc;

    b = tandem__record__job_batch_record_value__unpack(NULL, a->value.len,
                                                       a->value.data);
    if (b == NULL || b->n_jobs != b->n_job_keys) {
        if (b != NULL)
            tandem__record__job_batch_record_value__free_unpacked(b, NULL);
        return ENGINE_E_CORRUPT;
    }
    size_t n = b->n_jobs;
    GatewayProtocol__ActivatedJob *jobs = calloc(n ? n : 1, sizeof *jobs);
    GatewayProtocol__ActivatedJob **ptr = calloc(n ? n : 1, sizeof *ptr);
    if (jobs == NULL || ptr == NULL) {
        free(jobs);
        free(ptr);
        tandem__record__job_batch_record_value__free_unpacked(b, NULL);
        return ENGINE_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const Tandem__Record__JobRecordValue *j = b->jobs[i];
        gateway_protocol__activated_job__init(&jobs[i]);
        jobs[i].key = b->job_keys[i];
        jobs[i].type = j->type;
        jobs[i].processinstancekey = j->process_instance_key;
        jobs[i].bpmnprocessid = j->bpmn_process_id;
        jobs[i].processdefinitionversion = j->process_definition_version;
        jobs[i].processdefinitionkey = j->process_definition_key;
        jobs[i].elementid = j->element_id;
        jobs[i].elementinstancekey = j->element_instance_key;
        jobs[i].customheaders =
            j->custom_headers[0] ? j->custom_headers : (char *)"{}";
        jobs[i].worker = j->worker;
        jobs[i].retries = j->retries;
        jobs[i].deadline = j->deadline;
        jobs[i].variables = j->variables[0] ? j->variables : (char *)"{}";
        jobs[i].tenantid =
            (char *)(j->tenant_id[0] ? j->tenant_id : ENGINE_DEFAULT_TENANT);
        ptr[i] = &jobs[i];
    }
    GatewayProtocol__ActivateJobsResponse ar =
        GATEWAY_PROTOCOL__ACTIVATE_JOBS_RESPONSE__INIT;
    ar.jobs = ptr;
    ar.n_jobs = n;
    r->body_case = TANDEM__COMMAND__RESPONSE__BODY_ACTIVATE_JOBS;
    r->activate_jobs = &ar;
    rc = eng_response_finish(r, out);
    free(jobs);
    free(ptr);
    tandem__record__job_batch_record_value__free_unpacked(b, NULL);
    return rc;
}

int engine_response_build(const Tandem__Record__Record *a, uint64_t response_id,
                          Tandem__Command__Response **out)
{
    Tandem__Command__Response r = TANDEM__COMMAND__RESPONSE__INIT;

    ENGINE_ASSERT(out != NULL);
    *out = NULL;
    if (a == NULL)
        return ENGINE_E_CORRUPT;
    r.id = response_id;
    if (a->record_type == RT_REJECTION)
        return eng_response_rejection(a, &r, out);
    if (a->record_type != RT_EVENT)
        return ENGINE_E_CORRUPT;
    switch (a->value_type) {
    case VT_MESSAGE: {
        if (a->intent != MSG_PUBLISHED)
            break;
        Tandem__Record__MessageRecordValue *m =
            tandem__record__message_record_value__unpack(NULL, a->value.len,
                                                         a->value.data);
        if (m == NULL)
            return ENGINE_E_CORRUPT;
        GatewayProtocol__PublishMessageResponse p =
            GATEWAY_PROTOCOL__PUBLISH_MESSAGE_RESPONSE__INIT;
        p.key = (int64_t)a->key;
        p.tenantid =
            (char *)(m->tenant_id[0] ? m->tenant_id : ENGINE_DEFAULT_TENANT);
        r.body_case = TANDEM__COMMAND__RESPONSE__BODY_PUBLISH_MESSAGE;
        r.publish_message = &p;
        int rc = eng_response_finish(&r, out);
        tandem__record__message_record_value__free_unpacked(m, NULL);
        return rc;
    }
    case VT_CD:
        if (a->intent != CD_FINISHED)
            break;
        return eng_response_deploy(a, &r, out);
    case VT_DEPLOYMENT: {
        if (a->intent != DEP_CREATED)
            break;
        Tandem__Command__DistributeResponse d =
            TANDEM__COMMAND__DISTRIBUTE_RESPONSE__INIT;
        r.body_case = TANDEM__COMMAND__RESPONSE__BODY_DISTRIBUTE;
        r.distribute = &d;
        return eng_response_finish(&r, out);
    }
    case VT_PIC: {
        if (a->intent != PIC_CREATED)
            break;
        Tandem__Record__ProcessInstanceCreationRecordValue *v =
            tandem__record__process_instance_creation_record_value__unpack(
                NULL, a->value.len, a->value.data);
        if (v == NULL)
            return ENGINE_E_CORRUPT;
        GatewayProtocol__CreateProcessInstanceResponse p =
            GATEWAY_PROTOCOL__CREATE_PROCESS_INSTANCE_RESPONSE__INIT;
        p.processdefinitionkey = v->process_definition_key;
        p.bpmnprocessid = v->bpmn_process_id;
        p.version = v->version;
        p.processinstancekey = v->process_instance_key;
        p.tenantid =
            (char *)(v->tenant_id[0] ? v->tenant_id : ENGINE_DEFAULT_TENANT);
        r.body_case = TANDEM__COMMAND__RESPONSE__BODY_CREATE_PROCESS_INSTANCE;
        r.create_process_instance = &p;
        int rc = eng_response_finish(&r, out);
        tandem__record__process_instance_creation_record_value__free_unpacked(
            v, NULL);
        return rc;
    }
    case VT_PIR: {
        Tandem__Record__ProcessInstanceResultRecordValue *v =
            tandem__record__process_instance_result_record_value__unpack(
                NULL, a->value.len, a->value.data);
        if (v == NULL)
            return ENGINE_E_CORRUPT;
        GatewayProtocol__CreateProcessInstanceWithResultResponse p =
            GATEWAY_PROTOCOL__CREATE_PROCESS_INSTANCE_WITH_RESULT_RESPONSE__INIT;
        p.processdefinitionkey = v->process_definition_key;
        p.bpmnprocessid = v->bpmn_process_id;
        p.version = v->version;
        p.processinstancekey = v->process_instance_key;
        p.variables = v->variables[0] ? v->variables : (char *)"{}";
        p.tenantid =
            (char *)(v->tenant_id[0] ? v->tenant_id : ENGINE_DEFAULT_TENANT);
        r.body_case =
            TANDEM__COMMAND__RESPONSE__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT;
        r.create_process_instance_with_result = &p;
        int rc = eng_response_finish(&r, out);
        tandem__record__process_instance_result_record_value__free_unpacked(
            v, NULL);
        return rc;
    }
    case VT_PI: {
        if (a->intent != PI_TERMINATING)
            break;
        GatewayProtocol__CancelProcessInstanceResponse p =
            GATEWAY_PROTOCOL__CANCEL_PROCESS_INSTANCE_RESPONSE__INIT;
        r.body_case = TANDEM__COMMAND__RESPONSE__BODY_CANCEL_PROCESS_INSTANCE;
        r.cancel_process_instance = &p;
        return eng_response_finish(&r, out);
    }
    case VT_VARDOC: {
        GatewayProtocol__SetVariablesResponse p =
            GATEWAY_PROTOCOL__SET_VARIABLES_RESPONSE__INIT;
        p.key = (int64_t)a->key;
        r.body_case = TANDEM__COMMAND__RESPONSE__BODY_SET_VARIABLES;
        r.set_variables = &p;
        return eng_response_finish(&r, out);
    }
    case VT_JOB_BATCH:
        return eng_response_jobs(a, &r, out);
    case VT_JOB: {
        GatewayProtocol__CompleteJobResponse cj =
            GATEWAY_PROTOCOL__COMPLETE_JOB_RESPONSE__INIT;
        GatewayProtocol__FailJobResponse fj =
            GATEWAY_PROTOCOL__FAIL_JOB_RESPONSE__INIT;
        GatewayProtocol__UpdateJobRetriesResponse ur =
            GATEWAY_PROTOCOL__UPDATE_JOB_RETRIES_RESPONSE__INIT;
        GatewayProtocol__UpdateJobTimeoutResponse ut =
            GATEWAY_PROTOCOL__UPDATE_JOB_TIMEOUT_RESPONSE__INIT;
        GatewayProtocol__ThrowErrorResponse te =
            GATEWAY_PROTOCOL__THROW_ERROR_RESPONSE__INIT;
        switch (a->intent) {
        case JOB_COMPLETED:
            r.body_case = TANDEM__COMMAND__RESPONSE__BODY_COMPLETE_JOB;
            r.complete_job = &cj;
            break;
        case JOB_FAILED:
            r.body_case = TANDEM__COMMAND__RESPONSE__BODY_FAIL_JOB;
            r.fail_job = &fj;
            break;
        case JOB_RETRIES_UPDATED:
            r.body_case = TANDEM__COMMAND__RESPONSE__BODY_UPDATE_JOB_RETRIES;
            r.update_job_retries = &ur;
            break;
        case JOB_TIMEOUT_UPDATED:
            r.body_case = TANDEM__COMMAND__RESPONSE__BODY_UPDATE_JOB_TIMEOUT;
            r.update_job_timeout = &ut;
            break;
        case JOB_ERROR_THROWN:
            r.body_case = TANDEM__COMMAND__RESPONSE__BODY_THROW_ERROR;
            r.throw_error = &te;
            break;
        default:
            return ENGINE_E_CORRUPT;
        }
        return eng_response_finish(&r, out);
    }
    case VT_INCIDENT: {
        if (a->intent != INC_RESOLVED)
            break;
        GatewayProtocol__ResolveIncidentResponse p =
            GATEWAY_PROTOCOL__RESOLVE_INCIDENT_RESPONSE__INIT;
        r.body_case = TANDEM__COMMAND__RESPONSE__BODY_RESOLVE_INCIDENT;
        r.resolve_incident = &p;
        return eng_response_finish(&r, out);
    }
    default:
        break;
    }
    return ENGINE_E_CORRUPT;
}

/* ------------------------------------------------------------------------
 * Distribution
 * --------------------------------------------------------------------- */

size_t engine_distributions_pending(struct engine *e,
                                    struct engine_distribution *out, size_t max)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = 0;

    ENGINE_ASSERT(e != NULL);
    ENGINE_ASSERT(max == 0 || out != NULL);
    if (max == 0 || mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_cursor_open(txn, e->dbi[ENG_T_DIST_PENDING], &cur) != 0) {
        mdb_txn_abort(txn);
        return 0;
    }
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && n < max) {
        MDB_val dk = {8, k.mv_data}, dv;
        if (k.mv_size == 12 &&
            mdb_get(txn, e->dbi[ENG_T_DIST], &dk, &dv) == 0 &&
            dv.mv_size >= 20) {
            const unsigned char *p = dv.mv_data;
            Tandem__Record__Record r = TANDEM__RECORD__RECORD__INIT;
            r.key = eng_get_u64(k.mv_data);
            r.record_type = RT_COMMAND;
            r.value_type = (Tandem__Record__ValueType)eng_get_u32(p + 12);
            r.intent = eng_get_u32(p + 16);
            r.value.data = (uint8_t *)p + 20;
            r.value.len = dv.mv_size - 20;
            r.broker_version = e->broker_version;
            size_t len = tandem__record__record__get_packed_size(&r);
            void *buf = malloc(len + 1);
            if (buf == NULL)
                break;
            tandem__record__record__pack(&r, buf);
            out[n].distribution_key = r.key;
            out[n].partition_id =
                eng_get_u32((const unsigned char *)k.mv_data + 8);
            out[n].record = buf;
            out[n].record_len = len;
            n++;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return n;
}

int engine_distribution_ack_command(struct engine *e, uint64_t distribution_key,
                                    uint32_t partition_id,
                                    Tandem__Record__Record **out)
{
    Tandem__Record__CommandDistributionRecordValue v =
        TANDEM__RECORD__COMMAND_DISTRIBUTION_RECORD_VALUE__INIT;

    ENGINE_ASSERT(e != NULL && out != NULL);
    *out = NULL;
    if (distribution_key == 0 || partition_id == 0 ||
        partition_id > e->partitions_count)
        return ENGINE_E_INVALID;
    v.partition_id = partition_id;
    v.value_type = VT_DEPLOYMENT;
    v.intent = DEP_CREATE;
    return eng_make_record(VT_CD, CD_ACKNOWLEDGE, distribution_key,
                           (const ProtobufCMessage *)&v, 0, 0, out);
}

int engine_exporter_command(struct engine *e, bool delete_row, const char *id,
                            int64_t position, const void *metadata,
                            size_t metadata_len, uint32_t metadata_version,
                            Tandem__Record__Record **out)
{
    Tandem__Record__ExporterRecordValue v =
        TANDEM__RECORD__EXPORTER_RECORD_VALUE__INIT;

    ENGINE_ASSERT(e != NULL && out != NULL);
    *out = NULL;
    if (id == NULL || id[0] == '\0' || strlen(id) > ENG_NAME_BYTES_MAX ||
        metadata_len > (1u << 20))
        return ENGINE_E_INVALID;
    v.exporter_id = (char *)id;
    v.position = position;
    v.metadata.data = (uint8_t *)metadata;
    v.metadata.len = metadata_len;
    v.metadata_version = metadata_version;
    return eng_make_record(VT_EXPORTER, delete_row ? EXP_DELETE : EXP_UPDATE,
                           0, (const ProtobufCMessage *)&v, 0, 0, out);
}

int engine_command_from_distribute(struct engine *e,
                                   const Tandem__Command__DistributeRequest *d,
                                   Tandem__Record__Record **out, char *err,
                                   size_t errlen)
{
    Tandem__Record__Record *r;

    ENGINE_ASSERT(e != NULL && out != NULL);
    *out = NULL;
    if (d == NULL || d->record.len == 0) {
        snprintf(err, errlen,
                 "Expected a distributed command record, but none was given");
        return ENGINE_E_INVALID;
    }
    r = tandem__record__record__unpack(NULL, d->record.len, d->record.data);
    if (r == NULL) {
        snprintf(err, errlen,
                 "Expected a distributed command record, but it does not "
                 "decode");
        return ENGINE_E_INVALID;
    }
    if (r->record_type != RT_COMMAND || r->value_type != VT_DEPLOYMENT ||
        r->intent != DEP_CREATE || r->key == 0 ||
        (r->key >> ENGINE_KEY_BITS) != d->source_partition_id) {
        snprintf(err, errlen,
                 "Expected a distributed DEPLOYMENT CREATE command with a key "
                 "of partition %u, but got value type %d intent %u key "
                 "%" PRIu64,
                 d->source_partition_id, (int)r->value_type, r->intent, r->key);
        tandem__record__record__free_unpacked(r, NULL);
        return ENGINE_E_INVALID;
    }
    Tandem__Record__DeploymentRecordValue *dv =
        tandem__record__deployment_record_value__unpack(NULL, r->value.len,
                                                        r->value.data);
    if (dv == NULL) {
        snprintf(err, errlen,
                 "Expected a distributed deployment, but its value does not "
                 "decode");
        tandem__record__record__free_unpacked(r, NULL);
        return ENGINE_E_INVALID;
    }
    tandem__record__deployment_record_value__free_unpacked(dv, NULL);
    r->request_node = 0;
    r->request_id = 0;
    *out = r;
    return 0;
}
