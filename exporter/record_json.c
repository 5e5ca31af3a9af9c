/* record_json.c: tandem.record.Record -> struct exporter_record and Zeebe
 * 8.4's record JSON (jansson).
 *
 * Data flow: packed Record bytes -> tandem__record__record__unpack ->
 * enum checks (record type, value type) -> the value unpacked with the
 * protobuf-c descriptor its value type names (record_json_types[]) ->
 * one value_<type>() function per value type building the "value" object
 * with Zeebe's field names -> the record object around it -> compact
 * JSON text. Names of value types, record types, rejection types and
 * intents come from the generated enum descriptors; intents drop the
 * per-type prefix record.proto uses to keep enum values unique
 * ("PI_ELEMENT_ACTIVATED" -> "ELEMENT_ACTIVATED").
 */
#define _POSIX_C_SOURCE 200809L

#include "exporter/record_json.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/exporter_assert.h"

#define RECORD_JSON_DEFAULT_TENANT "<default>"

/* ------------------------------------------------------------------------
 * Small builders
 * --------------------------------------------------------------------- */

/* Each setter adds one member; a NULL from a jansson constructor makes
 * json_object_set_new fail, which the builders fold into one flag. */
static bool set_str(json_t *o, const char *k, const char *s)
{
    return json_object_set_new(o, k, json_string(s != NULL ? s : "")) == 0;
}

static bool set_int(json_t *o, const char *k, int64_t v)
{
    return json_object_set_new(o, k, json_integer((json_int_t)v)) == 0;
}

static bool set_bool(json_t *o, const char *k, bool v)
{
    return json_object_set_new(o, k, json_boolean(v)) == 0;
}

static bool set_tenant(json_t *o, const char *tenant)
{
    return set_str(o, "tenantId",
                   tenant != NULL && tenant[0] != '\0'
                       ? tenant
                       : RECORD_JSON_DEFAULT_TENANT);
}

/* A JSON document held as a string: "" -> {}, valid JSON -> that value,
 * anything else -> the raw string (never fails on bad data). */
static bool set_doc(json_t *o, const char *k, const char *doc)
{
    json_t *v = NULL;
    if (doc == NULL || doc[0] == '\0') {
        v = json_object();
    } else {
        v = json_loads(doc, JSON_DECODE_ANY, NULL);
        if (v == NULL) {
            v = json_string(doc);
        }
    }
    return json_object_set_new(o, k, v) == 0;
}

static const char record_json_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Bytes as standard base64 with padding (Jackson's byte[] encoding). */
static bool set_b64(json_t *o, const char *k, ProtobufCBinaryData b)
{
    EXPORTER_ASSERT(b.data != NULL || b.len == 0);
    size_t out_len = 4 * ((b.len + 2) / 3);
    char *s = malloc(out_len + 1);
    if (s == NULL) {
        return false;
    }
    size_t j = 0;
    for (size_t i = 0; i < b.len; i += 3) {
        uint32_t n = (uint32_t)b.data[i] << 16;
        if (i + 1 < b.len) {
            n |= (uint32_t)b.data[i + 1] << 8;
        }
        if (i + 2 < b.len) {
            n |= b.data[i + 2];
        }
        s[j++] = record_json_b64[(n >> 18) & 63];
        s[j++] = record_json_b64[(n >> 12) & 63];
        s[j++] = i + 1 < b.len ? record_json_b64[(n >> 6) & 63] : '=';
        s[j++] = i + 2 < b.len ? record_json_b64[n & 63] : '=';
    }
    EXPORTER_ASSERT(j == out_len);
    s[j] = '\0';
    bool ok = json_object_set_new(o, k, json_string(s)) == 0;
    free(s);
    return ok;
}

static bool set_str_array(json_t *o, const char *k, char **items, size_t n)
{
    json_t *a = json_array();
    bool ok = a != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        ok = json_array_append_new(a, json_string(items[i])) == 0;
    }
    if (!ok) {
        json_decref(a);
        return false;
    }
    return json_object_set_new(o, k, a) == 0;
}

static bool set_empty_array(json_t *o, const char *k)
{
    return json_object_set_new(o, k, json_array()) == 0;
}

/* ------------------------------------------------------------------------
 * Values, one function per value type (Zeebe 8.4 field names)
 * --------------------------------------------------------------------- */

static bool value_message(json_t *o, const ProtobufCMessage *m)
{
    const Tandem__Record__MessageRecordValue *v =
        (const Tandem__Record__MessageRecordValue *)m;
    bool ok = set_str(o, "name", v->name);
    ok = ok && set_str(o, "correlationKey", v->correlation_key);
    ok = ok && set_int(o, "timeToLive", v->time_to_live);
    ok = ok && set_int(o, "deadline", v->deadline);
    ok = ok && set_str(o, "messageId", v->message_id);
    ok = ok && set_doc(o, "variables", v->variables);
    return ok && set_tenant(o, v->tenant_id);
}

static bool value_job_fields(json_t *o, const Tandem__Record__JobRecordValue *v)
{
    bool ok = set_str(o, "bpmnProcessId", v->bpmn_process_id);
    ok = ok && set_int(o, "processDefinitionKey", v->process_definition_key);
    ok = ok &&
         set_int(o, "processDefinitionVersion", v->process_definition_version);
    ok = ok && set_int(o, "processInstanceKey", v->process_instance_key);
    ok = ok && set_str(o, "elementId", v->element_id);
    ok = ok && set_int(o, "elementInstanceKey", v->element_instance_key);
    ok = ok && set_str(o, "worker", v->worker);
    ok = ok && set_str(o, "type", v->type);
    ok = ok && set_doc(o, "variables", v->variables);
    ok = ok && set_int(o, "retries", v->retries);
    ok = ok && set_int(o, "retryBackoff", v->retry_backoff);
    ok = ok && set_int(o, "recurringTime", v->recurring_time);
    ok = ok && set_str(o, "errorMessage", v->error_message);
    ok = ok && set_str(o, "errorCode", v->error_code);
    ok = ok && set_doc(o, "customHeaders", v->custom_headers);
    ok = ok && set_int(o, "deadline", v->deadline);
    ok = ok && set_int(o, "timeout", v->timeout);
    return ok && set_tenant(o, v->tenant_id);
}

static bool value_job(json_t *o, const ProtobufCMessage *m)
{
    return value_job_fields(o, (const Tandem__Record__JobRecordValue *)m);
}

static bool value_job_batch(json_t *o, const ProtobufCMessage *m)
{
    const Tandem__Record__JobBatchRecordValue *v =
        (const Tandem__Record__JobBatchRecordValue *)m;
    bool ok = set_str(o, "type", v->type);
    ok = ok && set_str(o, "worker", v->worker);
    ok = ok && set_int(o, "timeout", v->timeout);
    ok = ok && set_int(o, "maxJobsToActivate", v->max_jobs_to_activate);
    json_t *keys = json_array();
    ok = ok && keys != NULL;
    for (size_t i = 0; ok && i < v->n_job_keys; i++) {
        ok = json_array_append_new(keys, json_integer(v->job_keys[i])) == 0;
    }
    if (ok) {
        ok = json_object_set_new(o, "jobKeys", keys) == 0;
    } else {
        json_decref(keys);
    }
    json_t *jobs = json_array();
    ok = ok && jobs != NULL;
    for (size_t i = 0; ok && i < v->n_jobs; i++) {
        json_t *job = json_object();
        ok = job != NULL && value_job_fields(job, v->jobs[i]);
        if (ok) {
            ok = json_array_append_new(jobs, job) == 0;
        } else {
            json_decref(job);
        }
    }
    if (ok) {
        ok = json_object_set_new(o, "jobs", jobs) == 0;
    } else {
        json_decref(jobs);
    }
    ok = ok && set_bool(o, "truncated", v->truncated);
    return ok && set_str_array(o, "tenantIds", v->tenant_ids, v->n_tenant_ids);
}

static bool value_process_metadata(json_t *o,
                                   const Tandem__Record__ProcessMetadata *v)
{
    bool ok = set_str(o, "bpmnProcessId", v->bpmn_process_id);
    ok = ok && set_int(o, "version", v->version);
    ok = ok && set_int(o, "processDefinitionKey", v->process_definition_key);
    ok = ok && set_str(o, "resourceName", v->resource_name);
    ok = ok && set_b64(o, "checksum", v->checksum);
    ok = ok && set_bool(o, "duplicate", v->duplicate);
    ok = ok && set_tenant(o, v->tenant_id);
    return ok && set_int(o, "deploymentKey", v->deployment_key);
}

static bool value_deployment(json_t *o, const ProtobufCMessage *m)
{
    const Tandem__Record__DeploymentRecordValue *v =
        (const Tandem__Record__DeploymentRecordValue *)m;
    json_t *resources = json_array();
    bool ok = resources != NULL;
    for (size_t i = 0; ok && i < v->n_resources; i++) {
        json_t *r = json_object();
        ok = r != NULL && set_b64(r, "resource", v->resources[i]->resource) &&
             set_str(r, "resourceName", v->resources[i]->resource_name);
        if (ok) {
            ok = json_array_append_new(resources, r) == 0;
        } else {
            json_decref(r);
        }
    }
    if (ok) {
        ok = json_object_set_new(o, "resources", resources) == 0;
    } else {
        json_decref(resources);
    }
    json_t *procs = json_array();
    ok = ok && procs != NULL;
    for (size_t i = 0; ok && i < v->n_processes_metadata; i++) {
        json_t *p = json_object();
        ok = p != NULL && value_process_metadata(p, v->processes_metadata[i]);
        if (ok) {
            ok = json_array_append_new(procs, p) == 0;
        } else {
            json_decref(p);
        }
    }
    if (ok) {
        ok = json_object_set_new(o, "processesMetadata", procs) == 0;
    } else {
        json_decref(procs);
    }
    /* Tandem deploys BPMN only: Zeebe's other metadata lists are empty. */
    ok = ok && set_empty_array(o, "decisionRequirementsMetadata");
    ok = ok && set_empty_array(o, "decisionsMetadata");
    ok = ok && set_empty_array(o, "formMetadata");
    return ok && set_tenant(o, v->tenant_id);
}

static bool value_process(json_t *o, const ProtobufCMessage *m)
{
    const Tandem__Record__ProcessRecordValue *v =
        (const Tandem__Record__ProcessRecordValue *)m;
    bool ok = set_str(o, "bpmnProcessId", v->bpmn_process_id);
    ok = ok && set_int(o, "version", v->version);
    ok = ok && set_int(o, "processDefinitionKey", v->process_definition_key);
    ok = ok && set_str(o, "resourceName", v->resource_name);
    ok = ok && set_b64(o, "checksum", v->checksum);
    ok = ok && set_b64(o, "resource", v->resource);
    ok = ok && set_bool(o, "duplicate", v->duplicate);
    ok = ok && set_tenant(o, v->tenant_id);
    return ok && set_int(o, "deploymentKey", v->deployment_key);
}

static bool value_process_instance(json_t *o, const ProtobufCMessage *m)
{
    const Tandem__Record__ProcessInstanceRecordValue *v =
        (const Tandem__Record__ProcessInstanceRecordValue *)m;
    bool ok = set_str(o, "bpmnProcessId", v->bpmn_process_id);
    ok = ok && set_int(o, "version", v->version);
    ok = ok && set_int(o, "processDefinitionKey", v->process_definition_key);
    ok = ok && set_int(o, "processInstanceKey", v->process_instance_key);
    ok = ok && set_str(o, "elementId", v->element_id);
    ok = ok && set_int(o, "flowScopeKey", v->flow_scope_key);
    ok = ok && set_str(o, "bpmnElementType", v->bpmn_element_type);
    ok = ok &&
         set_int(o, "parentProcessInstanceKey", v->parent_process_instance_key);
    ok = ok &&
         set_int(o, "parentElementInstanceKey", v->parent_element_instance_key);
    ok = ok &&
         set_str(o, "bpmnEventType",
                 v->bpmn_event_type != NULL && v->bpmn_event_type[0] != '\0'
                     ? v->bpmn_event_type
                     : "UNSPECIFIED");
    return ok && set_tenant(o, v->tenant_id);
}

static bool value_incident(json_t *o, const ProtobufCMessage *m)
{
    const Tandem__Record__IncidentRecordValue *v =
        (const Tandem__Record__IncidentRecordValue *)m;
    bool ok = set_str(o, "errorType", v->error_type);
    ok = ok && set_str(o, "errorMessage", v->error_message);
    ok = ok && set_str(o, "bpmnProcessId", v->bpmn_process_id);
    ok = ok && set_int(o, "processDefinitionKey", v->process_definition_key);
    ok = ok && set_int(o, "processInstanceKey", v->process_instance_key);
    ok = ok && set_str(o, "elementId", v->element_id);
    ok = ok && set_int(o, "elementInstanceKey", v->element_instance_key);
    ok = ok && set_int(o, "jobKey", v->job_key);
    ok = ok && set_int(o, "variableScopeKey", v->variable_scope_key);
    return ok && set_tenant(o, v->tenant_id);
}

static bool value_variable(json_t *o, const ProtobufCMessage *m)
{
    const Tandem__Record__VariableRecordValue *v =
        (const Tandem__Record__VariableRecordValue *)m;
    bool ok = set_str(o, "name", v->name);
    /* Zeebe keeps a variable's value as its JSON text. */
    ok = ok && set_str(o, "value", v->value);
    ok = ok && set_int(o, "scopeKey", v->scope_key);
    ok = ok && set_int(o, "processInstanceKey", v->process_instance_key);
    ok = ok && set_int(o, "processDefinitionKey", v->process_definition_key);
    ok = ok && set_str(o, "bpmnProcessId", v->bpmn_process_id);
    return ok && set_tenant(o, v->tenant_id);
}

static bool value_variable_document(json_t *o, const ProtobufCMessage *m)
{
    const Tandem__Record__VariableDocumentRecordValue *v =
        (const Tandem__Record__VariableDocumentRecordValue *)m;
    bool ok = set_int(o, "scopeKey", v->scope_key);
    ok = ok &&
         set_str(o, "updateSemantics",
                 v->update_semantics != NULL && v->update_semantics[0] != '\0'
                     ? v->update_semantics
                     : "PROPAGATE");
    ok = ok && set_doc(o, "variables", v->variables);
    return ok && set_tenant(o, v->tenant_id);
}

static bool value_process_instance_creation(json_t *o,
                                            const ProtobufCMessage *m)
{
    const Tandem__Record__ProcessInstanceCreationRecordValue *v =
        (const Tandem__Record__ProcessInstanceCreationRecordValue *)m;
    bool ok = set_str(o, "bpmnProcessId", v->bpmn_process_id);
    ok = ok && set_int(o, "processDefinitionKey", v->process_definition_key);
    ok = ok && set_int(o, "version", v->version);
    ok = ok && set_doc(o, "variables", v->variables);
    ok = ok && set_str_array(o, "fetchVariables", v->fetch_variables,
                             v->n_fetch_variables);
    ok = ok && set_empty_array(o, "startInstructions");
    ok = ok && set_int(o, "processInstanceKey", v->process_instance_key);
    return ok && set_tenant(o, v->tenant_id);
}

static bool value_error(json_t *o, const ProtobufCMessage *m)
{
    const Tandem__Record__ErrorRecordValue *v =
        (const Tandem__Record__ErrorRecordValue *)m;
    bool ok = set_str(o, "exceptionMessage", v->exception_message);
    ok = ok && set_str(o, "stacktrace", v->stacktrace);
    ok = ok && set_int(o, "errorEventPosition", v->error_event_position);
    return ok && set_int(o, "processInstanceKey", v->process_instance_key);
}

static bool value_process_instance_result(json_t *o, const ProtobufCMessage *m)
{
    const Tandem__Record__ProcessInstanceResultRecordValue *v =
        (const Tandem__Record__ProcessInstanceResultRecordValue *)m;
    bool ok = set_str(o, "bpmnProcessId", v->bpmn_process_id);
    ok = ok && set_int(o, "processDefinitionKey", v->process_definition_key);
    ok = ok && set_int(o, "version", v->version);
    ok = ok && set_int(o, "processInstanceKey", v->process_instance_key);
    ok = ok && set_doc(o, "variables", v->variables);
    return ok && set_tenant(o, v->tenant_id);
}

/* Set by record_json_value() for the nested command value (one level:
 * a distributed command is never itself a COMMAND_DISTRIBUTION). */
static bool value_command_distribution(json_t *o, const ProtobufCMessage *m);

/* ------------------------------------------------------------------------
 * The value type table
 * --------------------------------------------------------------------- */

struct record_json_type {
    const char *intent_prefix;               /* stripped from names */
    const ProtobufCEnumDescriptor *intents;  /* the intent enum */
    const ProtobufCMessageDescriptor *value; /* the value message */
    bool (*build)(json_t *o, const ProtobufCMessage *m);
};

static const struct record_json_type
    record_json_types[RECORD_JSON_VALUE_TYPE_LAST + 1] = {
        [TANDEM__RECORD__VALUE_TYPE__MESSAGE] =
            {"", &tandem__record__message_intent__descriptor,
             &tandem__record__message_record_value__descriptor, value_message},
        [TANDEM__RECORD__VALUE_TYPE__JOB] =
            {"JOB_", &tandem__record__job_intent__descriptor,
             &tandem__record__job_record_value__descriptor, value_job},
        [TANDEM__RECORD__VALUE_TYPE__DEPLOYMENT] =
            {"DEPLOYMENT_", &tandem__record__deployment_intent__descriptor,
             &tandem__record__deployment_record_value__descriptor,
             value_deployment},
        [TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE] =
            {"PI_", &tandem__record__process_instance_intent__descriptor,
             &tandem__record__process_instance_record_value__descriptor,
             value_process_instance},
        [TANDEM__RECORD__VALUE_TYPE__INCIDENT] =
            {"INCIDENT_", &tandem__record__incident_intent__descriptor,
             &tandem__record__incident_record_value__descriptor,
             value_incident},
        [TANDEM__RECORD__VALUE_TYPE__JOB_BATCH] =
            {"JOB_BATCH_", &tandem__record__job_batch_intent__descriptor,
             &tandem__record__job_batch_record_value__descriptor,
             value_job_batch},
        [TANDEM__RECORD__VALUE_TYPE__VARIABLE] =
            {"VARIABLE_", &tandem__record__variable_intent__descriptor,
             &tandem__record__variable_record_value__descriptor,
             value_variable},
        [TANDEM__RECORD__VALUE_TYPE__VARIABLE_DOCUMENT] =
            {"VARIABLE_DOCUMENT_",
             &tandem__record__variable_document_intent__descriptor,
             &tandem__record__variable_document_record_value__descriptor,
             value_variable_document},
        [TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE_CREATION] =
            {"PIC_",
             &tandem__record__process_instance_creation_intent__descriptor,
             &tandem__record__process_instance_creation_record_value__descriptor,
             value_process_instance_creation},
        [TANDEM__RECORD__VALUE_TYPE__ERROR] =
            {"ERROR_", &tandem__record__error_intent__descriptor,
             &tandem__record__error_record_value__descriptor, value_error},
        [TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE_RESULT] =
            {"PIR_",
             &tandem__record__process_instance_result_intent__descriptor,
             &tandem__record__process_instance_result_record_value__descriptor,
             value_process_instance_result},
        [TANDEM__RECORD__VALUE_TYPE__PROCESS] =
            {"PROCESS_", &tandem__record__process_intent__descriptor,
             &tandem__record__process_record_value__descriptor, value_process},
        [TANDEM__RECORD__VALUE_TYPE__COMMAND_DISTRIBUTION] =
            {"CD_", &tandem__record__command_distribution_intent__descriptor,
             &tandem__record__command_distribution_record_value__descriptor,
             value_command_distribution},
};

static const struct record_json_type *record_json_type_get(int value_type)
{
    if (value_type <= 0 || value_type > RECORD_JSON_VALUE_TYPE_LAST) {
        return NULL;
    }
    const struct record_json_type *t = &record_json_types[value_type];
    EXPORTER_ASSERT(t->build != NULL);
    EXPORTER_ASSERT(t->value != NULL);
    return t;
}

/* The proto name of an enum value, NULL when the number is unknown. */
static const char *record_json_enum_name(const ProtobufCEnumDescriptor *d,
                                         int value)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(d, value);
    return v != NULL ? v->name : NULL;
}

const char *record_json_value_type_name(int value_type)
{
    if (record_json_type_get(value_type) == NULL) {
        return NULL;
    }
    return record_json_enum_name(&tandem__record__value_type__descriptor,
                                 value_type);
}

const char *record_json_record_type_name(int record_type)
{
    if (record_type <= 0) {
        return NULL; /* RECORD_TYPE_UNSPECIFIED is not a record type */
    }
    return record_json_enum_name(&tandem__record__record_type__descriptor,
                                 record_type);
}

const char *record_json_rejection_type_name(int rejection_type)
{
    return record_json_enum_name(&tandem__record__rejection_type__descriptor,
                                 rejection_type);
}

const char *record_json_intent_name(int value_type, uint32_t intent)
{
    const struct record_json_type *t = record_json_type_get(value_type);
    if (t == NULL || intent > INT32_MAX) {
        return NULL;
    }
    const char *name = record_json_enum_name(t->intents, (int)intent);
    if (name == NULL) {
        return NULL;
    }
    size_t n = strlen(t->intent_prefix);
    EXPORTER_ASSERT(strncmp(name, t->intent_prefix, n) == 0);
    return name + n;
}

int record_json_value(int value_type, const uint8_t *bytes, size_t len,
                      json_t **out, char *err, size_t err_len)
{
    EXPORTER_ASSERT(out != NULL);
    EXPORTER_ASSERT(bytes != NULL || len == 0);
    const struct record_json_type *t = record_json_type_get(value_type);
    if (t == NULL) {
        snprintf(err, err_len, "unknown value type %d", value_type);
        return EXPORTER_E_DECODE;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(t->value, NULL, len, bytes);
    if (m == NULL) {
        snprintf(err, err_len, "the %s value (%zu bytes) does not unpack",
                 record_json_value_type_name(value_type), len);
        return EXPORTER_E_DECODE;
    }
    json_t *o = json_object();
    bool ok = o != NULL && t->build(o, m);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!ok) {
        json_decref(o);
        snprintf(err, err_len, "out of memory building the %s value",
                 record_json_value_type_name(value_type));
        return EXPORTER_E_NOMEM;
    }
    *out = o;
    return 0;
}

static bool value_command_distribution(json_t *o, const ProtobufCMessage *m)
{
    const Tandem__Record__CommandDistributionRecordValue *v =
        (const Tandem__Record__CommandDistributionRecordValue *)m;
    bool ok = set_int(o, "partitionId", v->partition_id);
    const char *vt = record_json_value_type_name((int)v->value_type);
    const char *in = record_json_intent_name((int)v->value_type, v->intent);
    ok = ok && set_str(o, "valueType", vt != NULL ? vt : "NULL_VAL");
    ok = ok && set_str(o, "intent", in != NULL ? in : "UNKNOWN");
    json_t *inner = NULL;
    char err[EXPORTER_ERRMSG_MAX];
    if (vt == NULL ||
        (int)v->value_type ==
            TANDEM__RECORD__VALUE_TYPE__COMMAND_DISTRIBUTION ||
        record_json_value((int)v->value_type, v->command_value.data,
                          v->command_value.len, &inner, err,
                          sizeof(err)) != 0) {
        inner = json_object(); /* an unreadable inner value: {} */
    }
    return ok && json_object_set_new(o, "commandValue", inner) == 0;
}

/* ------------------------------------------------------------------------
 * Records
 * --------------------------------------------------------------------- */

/* The checks every record passes before its JSON is built. */
static int record_json_check(const Tandem__Record__Record *r, int64_t position,
                             char *err, size_t err_len)
{
    if (record_json_record_type_name(r->record_type) == NULL) {
        snprintf(err, err_len,
                 "record at position %lld: unknown record "
                 "type %d",
                 (long long)position, (int)r->record_type);
        return EXPORTER_E_DECODE;
    }
    if (record_json_type_get(r->value_type) == NULL) {
        snprintf(err, err_len,
                 "record at position %lld: unknown value "
                 "type %d",
                 (long long)position, (int)r->value_type);
        return EXPORTER_E_DECODE;
    }
    if (record_json_rejection_type_name(r->rejection_type) == NULL) {
        snprintf(err, err_len,
                 "record at position %lld: unknown rejection "
                 "type %d",
                 (long long)position, (int)r->rejection_type);
        return EXPORTER_E_DECODE;
    }
    if (r->key > INT64_MAX || r->source_record_position > INT64_MAX) {
        snprintf(err, err_len,
                 "record at position %lld: key or source "
                 "position out of range",
                 (long long)position);
        return EXPORTER_E_DECODE;
    }
    return 0;
}

static int64_t record_json_key(const Tandem__Record__Record *r)
{
    return r->key == 0 ? -1 : (int64_t)r->key;
}

static int64_t record_json_source(const Tandem__Record__Record *r)
{
    return r->source_record_position == 0 ? -1
                                          : (int64_t)r->source_record_position;
}

int record_json_build(uint32_t partition_id, int64_t position,
                      const Tandem__Record__Record *r, json_t **out, char *err,
                      size_t err_len)
{
    EXPORTER_ASSERT(r != NULL);
    EXPORTER_ASSERT(out != NULL);
    int rc = record_json_check(r, position, err, err_len);
    if (rc != 0) {
        return rc;
    }
    json_t *value = NULL;
    char why[EXPORTER_ERRMSG_MAX];
    rc = record_json_value(r->value_type, r->value.data, r->value.len, &value,
                           why, sizeof(why));
    if (rc != 0) {
        snprintf(err, err_len, "record at position %lld: %s",
                 (long long)position, why);
        return rc;
    }
    json_t *o = json_object();
    const char *intent = record_json_intent_name(r->value_type, r->intent);
    bool ok = o != NULL && set_int(o, "partitionId", partition_id);
    ok = ok && json_object_set_new(o, "value", value) == 0;
    value = NULL;
    ok = ok && set_int(o, "key", record_json_key(r));
    ok = ok && set_int(o, "position", position);
    ok = ok && set_int(o, "timestamp", r->timestamp);
    ok = ok &&
         set_str(o, "valueType", record_json_value_type_name(r->value_type));
    ok = ok && set_str(o, "intent", intent != NULL ? intent : "UNKNOWN");
    ok = ok &&
         set_str(o, "recordType", record_json_record_type_name(r->record_type));
    ok = ok && set_str(o, "rejectionType",
                       record_json_rejection_type_name(r->rejection_type));
    ok = ok && set_str(o, "rejectionReason", r->rejection_reason);
    ok = ok && set_str(o, "brokerVersion", r->broker_version);
    ok = ok && set_int(o, "sourceRecordPosition", record_json_source(r));
    json_t *auth =
        json_pack("{s:[s]}", "authorized_tenants", RECORD_JSON_DEFAULT_TENANT);
    ok = ok && json_object_set_new(o, "authorizations", auth) == 0;
    ok = ok && set_int(o, "recordVersion", 1);
    if (!ok) {
        json_decref(o);
        snprintf(err, err_len, "record at position %lld: out of memory",
                 (long long)position);
        return EXPORTER_E_NOMEM;
    }
    *out = o;
    return 0;
}

int record_json_view_init(struct record_json_view *v, uint32_t partition_id,
                          int64_t position, const uint8_t *bytes, size_t len,
                          char *err, size_t err_len)
{
    EXPORTER_ASSERT(v != NULL);
    EXPORTER_ASSERT(bytes != NULL || len == 0);
    memset(v, 0, sizeof(*v));
    Tandem__Record__Record *r =
        tandem__record__record__unpack(NULL, len, bytes);
    if (r == NULL) {
        snprintf(err, err_len,
                 "record at position %lld (%zu bytes) does "
                 "not unpack",
                 (long long)position, len);
        return EXPORTER_E_DECODE;
    }
    json_t *o = NULL;
    int rc = record_json_build(partition_id, position, r, &o, err, err_len);
    if (rc != 0) {
        tandem__record__record__free_unpacked(r, NULL);
        return rc;
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL) {
        tandem__record__record__free_unpacked(r, NULL);
        snprintf(err, err_len, "record at position %lld: out of memory",
                 (long long)position);
        return EXPORTER_E_NOMEM;
    }
    struct exporter_record *e = &v->record;
    e->partition_id = partition_id;
    e->position = position;
    e->key = record_json_key(r);
    e->timestamp = r->timestamp;
    e->record_type = (int)r->record_type;
    e->value_type = (int)r->value_type;
    e->intent = r->intent;
    e->rejection_type = (int)r->rejection_type;
    e->record_type_name = record_json_record_type_name(r->record_type);
    e->value_type_name = record_json_value_type_name(r->value_type);
    e->intent_name = record_json_intent_name(r->value_type, r->intent);
    if (e->intent_name == NULL) {
        e->intent_name = "UNKNOWN";
    }
    e->rejection_type_name = record_json_rejection_type_name(r->rejection_type);
    e->rejection_reason =
        r->rejection_reason != NULL ? r->rejection_reason : "";
    e->source_position = record_json_source(r);
    e->broker_version = r->broker_version != NULL ? r->broker_version : "";
    e->json = text;
    e->json_len = strlen(text);
    e->value = r->value.data;
    e->value_len = r->value.len;
    v->msg = r;
    v->json = text;
    EXPORTER_ASSERT(e->record_type_name != NULL);
    EXPORTER_ASSERT(e->value_type_name != NULL);
    return 0;
}

void record_json_view_close(struct record_json_view *v)
{
    EXPORTER_ASSERT(v != NULL);
    if (v->msg != NULL) {
        tandem__record__record__free_unpacked(v->msg, NULL);
    }
    free(v->json);
    memset(v, 0, sizeof(*v));
}

/* ------------------------------------------------------------------------
 * RecordBatch splitting (protobuf wire format, field 1 = records)
 * --------------------------------------------------------------------- */

/* Reads a varint at *p (< end); false when truncated or over 10 bytes. */
static bool record_json_varint(const uint8_t **p, const uint8_t *end,
                               uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (*p >= end) {
            return false;
        }
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return true;
        }
    }
    return false;
}

int record_json_batch_split(const uint8_t *batch, size_t len,
                            struct record_json_slice *slices, size_t slices_max)
{
    EXPORTER_ASSERT(batch != NULL || len == 0);
    EXPORTER_ASSERT(slices != NULL || slices_max == 0);
    const uint8_t *p = batch;
    const uint8_t *end = batch + len;
    size_t count = 0;
    while (p < end) {
        uint64_t tag = 0;
        uint64_t n = 0;
        if (!record_json_varint(&p, end, &tag)) {
            return EXPORTER_E_DECODE;
        }
        switch (tag & 7) {
        case 0: /* varint */
            if (!record_json_varint(&p, end, &n)) {
                return EXPORTER_E_DECODE;
            }
            break;
        case 1: /* fixed64 */
            if ((size_t)(end - p) < 8) {
                return EXPORTER_E_DECODE;
            }
            p += 8;
            break;
        case 5: /* fixed32 */
            if ((size_t)(end - p) < 4) {
                return EXPORTER_E_DECODE;
            }
            p += 4;
            break;
        case 2: /* length-delimited */
            if (!record_json_varint(&p, end, &n) || n > (uint64_t)(end - p)) {
                return EXPORTER_E_DECODE;
            }
            if ((tag >> 3) == 1) {
                if (count == slices_max) {
                    return EXPORTER_E_LIMIT;
                }
                slices[count].bytes = p;
                slices[count].len = (size_t)n;
                count++;
            }
            p += n;
            break;
        default:
            return EXPORTER_E_DECODE;
        }
    }
    EXPORTER_ASSERT(p == end);
    EXPORTER_ASSERT(count <= slices_max);
    return (int)count;
}
