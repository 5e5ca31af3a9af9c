/* test_record_json.c: unit tests of exporter/record_json.c: the record
 * envelope, every value type's Zeebe field names and conversions, intent
 * names, malformed input, and RecordBatch splitting.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "exporter/record_json.h"

#define PACK(type, msg, buf) type##__pack((msg), (buf))

/* Wraps a packed value in a record and returns the view's JSON parsed. */
static json_t *record_with(int value_type, uint32_t intent,
                           const uint8_t *value, size_t value_len,
                           struct record_json_view *view_out)
{
    Tandem__Record__Record r = TANDEM__RECORD__RECORD__INIT;
    r.key = 2251799813685249ull;
    r.timestamp = 1711584000123LL;
    r.record_type = TANDEM__RECORD__RECORD_TYPE__EVENT;
    r.value_type = value_type;
    r.intent = intent;
    r.broker_version = "8.4.5";
    r.source_record_position = 65536;
    r.value.data = (uint8_t *)(uintptr_t)value;
    r.value.len = value_len;
    uint8_t buf[8192];
    size_t len = tandem__record__record__pack(&r, buf);
    struct record_json_view v;
    char err[256];
    int rc = record_json_view_init(&v, 2, 131073, buf, len, err, sizeof(err));
    assert_int_equal(rc, 0);
    json_error_t je;
    json_t *o = json_loads(v.record.json, 0, &je);
    assert_non_null(o);
    assert_int_equal(strlen(v.record.json), v.record.json_len);
    assert_null(strchr(v.record.json, '\n'));
    if (view_out != NULL) {
        *view_out = v;
    } else {
        record_json_view_close(&v);
    }
    return o;
}

static json_t *value_of(json_t *o)
{
    json_t *v = json_object_get(o, "value");
    assert_true(json_is_object(v));
    return v;
}

static void assert_str(json_t *o, const char *k, const char *want)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v)) {
        fail_msg("member %s is not a string", k);
    }
    assert_string_equal(json_string_value(v), want);
}

static void assert_int(json_t *o, const char *k, json_int_t want)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v)) {
        fail_msg("member %s is not an integer", k);
    }
    assert_int_equal(json_integer_value(v), want);
}

/* Every member of o is one of names, and all names are present. */
static void assert_members(json_t *o, const char *const *names, size_t n)
{
    assert_int_equal(json_object_size(o), n);
    for (size_t i = 0; i < n; i++) {
        if (json_object_get(o, names[i]) == NULL) {
            fail_msg("member %s missing", names[i]);
        }
    }
}

#define MEMBERS(o, ...)                                                        \
    do {                                                                       \
        static const char *const names_[] = {__VA_ARGS__};                     \
        assert_members((o), names_, sizeof(names_) / sizeof(names_[0]));       \
    } while (0)

/* ------------------------------------------------------------------------ */

static void test_envelope(void **state)
{
    (void)state;
    Tandem__Record__ProcessInstanceRecordValue v =
        TANDEM__RECORD__PROCESS_INSTANCE_RECORD_VALUE__INIT;
    v.bpmn_process_id = "order";
    uint8_t buf[1024];
    size_t len = PACK(tandem__record__process_instance_record_value, &v, buf);
    struct record_json_view view;
    json_t *o = record_with(
        TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE,
        TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_ELEMENT_ACTIVATED, buf, len,
        &view);
    MEMBERS(o, "partitionId", "value", "key", "position", "timestamp",
            "valueType", "intent", "recordType", "rejectionType",
            "rejectionReason", "brokerVersion", "sourceRecordPosition",
            "authorizations", "recordVersion");
    assert_int(o, "partitionId", 2);
    assert_int(o, "key", 2251799813685249LL);
    assert_int(o, "position", 131073);
    assert_int(o, "timestamp", 1711584000123LL);
    assert_str(o, "valueType", "PROCESS_INSTANCE");
    assert_str(o, "intent", "ELEMENT_ACTIVATED");
    assert_str(o, "recordType", "EVENT");
    assert_str(o, "rejectionType", "NULL_VAL");
    assert_str(o, "rejectionReason", "");
    assert_str(o, "brokerVersion", "8.4.5");
    assert_int(o, "sourceRecordPosition", 65536);
    assert_int(o, "recordVersion", 1);
    json_t *tenants = json_object_get(json_object_get(o, "authorizations"),
                                      "authorized_tenants");
    assert_int_equal(json_array_size(tenants), 1);
    assert_string_equal(json_string_value(json_array_get(tenants, 0)),
                        "<default>");
    /* The struct mirrors the JSON. */
    assert_int_equal(view.record.partition_id, 2);
    assert_int_equal(view.record.position, 131073);
    assert_int_equal(view.record.key, 2251799813685249LL);
    assert_int_equal(view.record.source_position, 65536);
    assert_string_equal(view.record.intent_name, "ELEMENT_ACTIVATED");
    assert_string_equal(view.record.value_type_name, "PROCESS_INSTANCE");
    assert_string_equal(view.record.record_type_name, "EVENT");
    assert_string_equal(view.record.rejection_type_name, "NULL_VAL");
    assert_int_equal(view.record.value_len, len);
    record_json_view_close(&view);
    json_decref(o);
}

static void test_command_without_key_and_rejection(void **state)
{
    (void)state;
    Tandem__Record__MessageRecordValue m =
        TANDEM__RECORD__MESSAGE_RECORD_VALUE__INIT;
    uint8_t value[256];
    size_t value_len = PACK(tandem__record__message_record_value, &m, value);
    Tandem__Record__Record r = TANDEM__RECORD__RECORD__INIT;
    r.record_type = TANDEM__RECORD__RECORD_TYPE__COMMAND_REJECTION;
    r.value_type = TANDEM__RECORD__VALUE_TYPE__MESSAGE;
    r.intent = TANDEM__RECORD__MESSAGE_INTENT__PUBLISH;
    r.rejection_type = TANDEM__RECORD__REJECTION_TYPE__ALREADY_EXISTS;
    r.rejection_reason = "message with id 'x' was already published";
    r.value.data = value;
    r.value.len = value_len;
    json_t *o = NULL;
    char err[256];
    assert_int_equal(record_json_build(1, 65536, &r, &o, err, sizeof(err)), 0);
    assert_int(o, "key", -1);
    assert_int(o, "sourceRecordPosition", -1);
    assert_str(o, "recordType", "COMMAND_REJECTION");
    assert_str(o, "intent", "PUBLISH");
    assert_str(o, "rejectionType", "ALREADY_EXISTS");
    assert_str(o, "rejectionReason",
               "message with id 'x' was already published");
    json_t *v = value_of(o);
    assert_str(v, "tenantId", "<default>"); /* empty -> default tenant */
    assert_true(json_is_object(json_object_get(v, "variables")));
    json_decref(o);
}

static void test_message(void **state)
{
    (void)state;
    Tandem__Record__MessageRecordValue m =
        TANDEM__RECORD__MESSAGE_RECORD_VALUE__INIT;
    m.name = "order-paid";
    m.correlation_key = "42";
    m.time_to_live = 60000;
    m.message_id = "m-1";
    m.variables = "{\"amount\":12.5,\"ok\":true}";
    m.deadline = 1711584060123LL;
    m.tenant_id = "<default>";
    uint8_t buf[512];
    size_t len = PACK(tandem__record__message_record_value, &m, buf);
    json_t *o =
        record_with(TANDEM__RECORD__VALUE_TYPE__MESSAGE,
                    TANDEM__RECORD__MESSAGE_INTENT__PUBLISHED, buf, len, NULL);
    assert_str(o, "intent", "PUBLISHED");
    json_t *v = value_of(o);
    MEMBERS(v, "name", "correlationKey", "timeToLive", "deadline", "messageId",
            "variables", "tenantId");
    assert_str(v, "name", "order-paid");
    assert_str(v, "correlationKey", "42");
    assert_int(v, "timeToLive", 60000);
    assert_int(v, "deadline", 1711584060123LL);
    assert_str(v, "messageId", "m-1");
    assert_true(
        json_is_true(json_object_get(json_object_get(v, "variables"), "ok")));
    json_decref(o);
}

static void fill_job(Tandem__Record__JobRecordValue *j)
{
    j->type = "payment";
    j->worker = "w1";
    j->retries = 3;
    j->retry_backoff = 1000;
    j->recurring_time = -1;
    j->deadline = 1711584099000LL;
    j->timeout = 300000;
    j->error_message = "";
    j->error_code = "";
    j->custom_headers = "{\"h\":\"v\"}";
    j->variables = "{\"x\":1}";
    j->bpmn_process_id = "order";
    j->process_definition_key = 2251799813685250LL;
    j->process_definition_version = 2;
    j->process_instance_key = 2251799813685251LL;
    j->element_id = "pay";
    j->element_instance_key = 2251799813685252LL;
    j->tenant_id = "<default>";
}

static void assert_job(json_t *v)
{
    MEMBERS(v, "bpmnProcessId", "processDefinitionKey",
            "processDefinitionVersion", "processInstanceKey", "elementId",
            "elementInstanceKey", "worker", "type", "variables", "retries",
            "retryBackoff", "recurringTime", "errorMessage", "errorCode",
            "customHeaders", "deadline", "timeout", "tenantId");
    assert_str(v, "type", "payment");
    assert_str(v, "worker", "w1");
    assert_int(v, "retries", 3);
    assert_int(v, "retryBackoff", 1000);
    assert_int(v, "recurringTime", -1);
    assert_int(v, "deadline", 1711584099000LL);
    assert_int(v, "timeout", 300000);
    assert_int(v, "processDefinitionVersion", 2);
    assert_int(v, "processInstanceKey", 2251799813685251LL);
    assert_int(v, "elementInstanceKey", 2251799813685252LL);
    assert_str(json_object_get(v, "customHeaders"), "h", "v");
    assert_int(json_object_get(v, "variables"), "x", 1);
}

static void test_job(void **state)
{
    (void)state;
    Tandem__Record__JobRecordValue j = TANDEM__RECORD__JOB_RECORD_VALUE__INIT;
    fill_job(&j);
    uint8_t buf[1024];
    size_t len = PACK(tandem__record__job_record_value, &j, buf);
    json_t *o = record_with(TANDEM__RECORD__VALUE_TYPE__JOB,
                            TANDEM__RECORD__JOB_INTENT__JOB_RETRIES_UPDATED,
                            buf, len, NULL);
    assert_str(o, "intent", "RETRIES_UPDATED");
    assert_job(value_of(o));
    json_decref(o);
}

static void test_job_batch(void **state)
{
    (void)state;
    Tandem__Record__JobRecordValue j = TANDEM__RECORD__JOB_RECORD_VALUE__INIT;
    fill_job(&j);
    Tandem__Record__JobRecordValue *jobs[] = {&j};
    int64_t keys[] = {2251799813685253LL};
    char *tenants[] = {"<default>"};
    Tandem__Record__JobBatchRecordValue b =
        TANDEM__RECORD__JOB_BATCH_RECORD_VALUE__INIT;
    b.type = "payment";
    b.worker = "w1";
    b.timeout = 300000;
    b.max_jobs_to_activate = 10;
    b.n_job_keys = 1;
    b.job_keys = keys;
    b.n_jobs = 1;
    b.jobs = jobs;
    b.truncated = true;
    b.n_tenant_ids = 1;
    b.tenant_ids = tenants;
    uint8_t buf[2048];
    size_t len = PACK(tandem__record__job_batch_record_value, &b, buf);
    json_t *o = record_with(
        TANDEM__RECORD__VALUE_TYPE__JOB_BATCH,
        TANDEM__RECORD__JOB_BATCH_INTENT__JOB_BATCH_ACTIVATED, buf, len, NULL);
    assert_str(o, "intent", "ACTIVATED");
    json_t *v = value_of(o);
    MEMBERS(v, "type", "worker", "timeout", "maxJobsToActivate", "jobKeys",
            "jobs", "truncated", "tenantIds");
    assert_int(v, "maxJobsToActivate", 10);
    assert_true(json_is_true(json_object_get(v, "truncated")));
    assert_int_equal(
        json_integer_value(json_array_get(json_object_get(v, "jobKeys"), 0)),
        2251799813685253LL);
    assert_job(json_array_get(json_object_get(v, "jobs"), 0));
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(v, "tenantIds"), 0)),
        "<default>");
    json_decref(o);
}

static void test_deployment(void **state)
{
    (void)state;
    Tandem__Record__DeploymentResource res =
        TANDEM__RECORD__DEPLOYMENT_RESOURCE__INIT;
    res.resource_name = "order.bpmn";
    res.resource.data = (uint8_t *)"<xml/>";
    res.resource.len = 6;
    Tandem__Record__DeploymentResource *resources[] = {&res};
    Tandem__Record__ProcessMetadata pm = TANDEM__RECORD__PROCESS_METADATA__INIT;
    pm.bpmn_process_id = "order";
    pm.version = 1;
    pm.process_definition_key = 2251799813685250LL;
    pm.resource_name = "order.bpmn";
    pm.checksum.data = (uint8_t *)"\x01\x02\x03\x04";
    pm.checksum.len = 4;
    pm.tenant_id = "<default>";
    pm.deployment_key = 2251799813685249LL;
    Tandem__Record__ProcessMetadata *pms[] = {&pm};
    Tandem__Record__DeploymentRecordValue d =
        TANDEM__RECORD__DEPLOYMENT_RECORD_VALUE__INIT;
    d.n_resources = 1;
    d.resources = resources;
    d.n_processes_metadata = 1;
    d.processes_metadata = pms;
    d.tenant_id = "<default>";
    uint8_t buf[1024];
    size_t len = PACK(tandem__record__deployment_record_value, &d, buf);
    json_t *o = record_with(
        TANDEM__RECORD__VALUE_TYPE__DEPLOYMENT,
        TANDEM__RECORD__DEPLOYMENT_INTENT__DEPLOYMENT_CREATED, buf, len, NULL);
    assert_str(o, "intent", "CREATED");
    json_t *v = value_of(o);
    MEMBERS(v, "resources", "processesMetadata", "decisionRequirementsMetadata",
            "decisionsMetadata", "formMetadata", "tenantId");
    json_t *r0 = json_array_get(json_object_get(v, "resources"), 0);
    assert_str(r0, "resourceName", "order.bpmn");
    assert_str(r0, "resource", "PHhtbC8+"); /* base64("<xml/>") */
    json_t *p0 = json_array_get(json_object_get(v, "processesMetadata"), 0);
    MEMBERS(p0, "bpmnProcessId", "version", "processDefinitionKey",
            "resourceName", "checksum", "duplicate", "tenantId",
            "deploymentKey");
    assert_str(p0, "checksum", "AQIDBA==");
    assert_true(json_is_false(json_object_get(p0, "duplicate")));
    json_decref(o);
}

static void test_process(void **state)
{
    (void)state;
    Tandem__Record__ProcessRecordValue p =
        TANDEM__RECORD__PROCESS_RECORD_VALUE__INIT;
    p.bpmn_process_id = "order";
    p.version = 3;
    p.process_definition_key = 5;
    p.resource_name = "order.bpmn";
    p.checksum.data = (uint8_t *)"ab";
    p.checksum.len = 2;
    p.resource.data = (uint8_t *)"abc";
    p.resource.len = 3;
    p.duplicate = true;
    uint8_t buf[512];
    size_t len = PACK(tandem__record__process_record_value, &p, buf);
    json_t *o = record_with(TANDEM__RECORD__VALUE_TYPE__PROCESS,
                            TANDEM__RECORD__PROCESS_INTENT__PROCESS_CREATED,
                            buf, len, NULL);
    assert_str(o, "intent", "CREATED");
    assert_str(o, "valueType", "PROCESS");
    json_t *v = value_of(o);
    MEMBERS(v, "bpmnProcessId", "version", "processDefinitionKey",
            "resourceName", "checksum", "resource", "duplicate", "tenantId",
            "deploymentKey");
    assert_str(v, "checksum", "YWI=");
    assert_str(v, "resource", "YWJj");
    assert_int(v, "version", 3);
    json_decref(o);
}

static void test_process_instance(void **state)
{
    (void)state;
    Tandem__Record__ProcessInstanceRecordValue p =
        TANDEM__RECORD__PROCESS_INSTANCE_RECORD_VALUE__INIT;
    p.bpmn_process_id = "order";
    p.version = 1;
    p.process_definition_key = 10;
    p.process_instance_key = 11;
    p.element_id = "order";
    p.flow_scope_key = -1;
    p.bpmn_element_type = "PROCESS";
    p.parent_process_instance_key = -1;
    p.parent_element_instance_key = -1;
    p.tenant_id = "<default>";
    uint8_t buf[512];
    size_t len = PACK(tandem__record__process_instance_record_value, &p, buf);
    json_t *o = record_with(
        TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE,
        TANDEM__RECORD__PROCESS_INSTANCE_INTENT__PI_SEQUENCE_FLOW_TAKEN, buf,
        len, NULL);
    assert_str(o, "intent", "SEQUENCE_FLOW_TAKEN");
    json_t *v = value_of(o);
    MEMBERS(v, "bpmnProcessId", "version", "processDefinitionKey",
            "processInstanceKey", "elementId", "flowScopeKey",
            "bpmnElementType", "parentProcessInstanceKey",
            "parentElementInstanceKey", "bpmnEventType", "tenantId");
    assert_int(v, "flowScopeKey", -1);
    assert_str(v, "bpmnElementType", "PROCESS");
    assert_str(v, "bpmnEventType", "UNSPECIFIED"); /* unset -> default */
    json_decref(o);
}

static void test_incident(void **state)
{
    (void)state;
    Tandem__Record__IncidentRecordValue i =
        TANDEM__RECORD__INCIDENT_RECORD_VALUE__INIT;
    i.error_type = "JOB_NO_RETRIES";
    i.error_message = "boom";
    i.bpmn_process_id = "order";
    i.job_key = 99;
    i.variable_scope_key = 98;
    uint8_t buf[512];
    size_t len = PACK(tandem__record__incident_record_value, &i, buf);
    json_t *o = record_with(TANDEM__RECORD__VALUE_TYPE__INCIDENT,
                            TANDEM__RECORD__INCIDENT_INTENT__INCIDENT_RESOLVED,
                            buf, len, NULL);
    assert_str(o, "intent", "RESOLVED");
    json_t *v = value_of(o);
    MEMBERS(v, "errorType", "errorMessage", "bpmnProcessId",
            "processDefinitionKey", "processInstanceKey", "elementId",
            "elementInstanceKey", "jobKey", "variableScopeKey", "tenantId");
    assert_str(v, "errorType", "JOB_NO_RETRIES");
    assert_int(v, "jobKey", 99);
    json_decref(o);
}

static void test_variable(void **state)
{
    (void)state;
    Tandem__Record__VariableRecordValue x =
        TANDEM__RECORD__VARIABLE_RECORD_VALUE__INIT;
    x.name = "amount";
    x.value = "12.5";
    x.scope_key = 7;
    x.process_instance_key = 8;
    x.process_definition_key = 9;
    x.bpmn_process_id = "order";
    uint8_t buf[512];
    size_t len = PACK(tandem__record__variable_record_value, &x, buf);
    json_t *o = record_with(TANDEM__RECORD__VALUE_TYPE__VARIABLE,
                            TANDEM__RECORD__VARIABLE_INTENT__VARIABLE_UPDATED,
                            buf, len, NULL);
    assert_str(o, "intent", "UPDATED");
    json_t *v = value_of(o);
    MEMBERS(v, "name", "value", "scopeKey", "processInstanceKey",
            "processDefinitionKey", "bpmnProcessId", "tenantId");
    assert_str(v, "value", "12.5"); /* JSON text, as Zeebe keeps it */
    assert_int(v, "scopeKey", 7);
    json_decref(o);
}

static void test_variable_document(void **state)
{
    (void)state;
    Tandem__Record__VariableDocumentRecordValue x =
        TANDEM__RECORD__VARIABLE_DOCUMENT_RECORD_VALUE__INIT;
    x.scope_key = 5;
    x.update_semantics = "LOCAL";
    x.variables = "{\"a\":[1,2]}";
    uint8_t buf[512];
    size_t len = PACK(tandem__record__variable_document_record_value, &x, buf);
    json_t *o = record_with(
        TANDEM__RECORD__VALUE_TYPE__VARIABLE_DOCUMENT,
        TANDEM__RECORD__VARIABLE_DOCUMENT_INTENT__VARIABLE_DOCUMENT_UPDATE, buf,
        len, NULL);
    assert_str(o, "intent", "UPDATE");
    json_t *v = value_of(o);
    MEMBERS(v, "scopeKey", "updateSemantics", "variables", "tenantId");
    assert_str(v, "updateSemantics", "LOCAL");
    assert_int_equal(
        json_array_size(json_object_get(json_object_get(v, "variables"), "a")),
        2);
    json_decref(o);
}

static void test_process_instance_creation(void **state)
{
    (void)state;
    char *fetch[] = {"a", "b"};
    Tandem__Record__ProcessInstanceCreationRecordValue x =
        TANDEM__RECORD__PROCESS_INSTANCE_CREATION_RECORD_VALUE__INIT;
    x.bpmn_process_id = "order";
    x.version = -1;
    x.variables = "not json";
    x.n_fetch_variables = 2;
    x.fetch_variables = fetch;
    x.process_instance_key = 12;
    uint8_t buf[512];
    size_t len =
        PACK(tandem__record__process_instance_creation_record_value, &x, buf);
    json_t *o = record_with(
        TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE_CREATION,
        TANDEM__RECORD__PROCESS_INSTANCE_CREATION_INTENT__PIC_CREATED, buf, len,
        NULL);
    assert_str(o, "intent", "CREATED");
    json_t *v = value_of(o);
    MEMBERS(v, "bpmnProcessId", "processDefinitionKey", "version", "variables",
            "fetchVariables", "startInstructions", "processInstanceKey",
            "tenantId");
    assert_int(v, "version", -1);
    assert_str(v, "variables", "not json"); /* kept, never a crash */
    assert_int_equal(json_array_size(json_object_get(v, "fetchVariables")), 2);
    json_decref(o);
}

static void test_error(void **state)
{
    (void)state;
    Tandem__Record__ErrorRecordValue x =
        TANDEM__RECORD__ERROR_RECORD_VALUE__INIT;
    x.exception_message = "oops";
    x.stacktrace = "at x";
    x.error_event_position = 65536;
    x.process_instance_key = 4;
    uint8_t buf[512];
    size_t len = PACK(tandem__record__error_record_value, &x, buf);
    json_t *o = record_with(TANDEM__RECORD__VALUE_TYPE__ERROR,
                            TANDEM__RECORD__ERROR_INTENT__ERROR_CREATED, buf,
                            len, NULL);
    assert_str(o, "intent", "CREATED");
    json_t *v = value_of(o);
    MEMBERS(v, "exceptionMessage", "stacktrace", "errorEventPosition",
            "processInstanceKey");
    assert_int(v, "errorEventPosition", 65536);
    json_decref(o);
}

static void test_process_instance_result(void **state)
{
    (void)state;
    Tandem__Record__ProcessInstanceResultRecordValue x =
        TANDEM__RECORD__PROCESS_INSTANCE_RESULT_RECORD_VALUE__INIT;
    x.bpmn_process_id = "order";
    x.process_definition_key = 1;
    x.version = 2;
    x.process_instance_key = 3;
    x.variables = "{}";
    uint8_t buf[512];
    size_t len =
        PACK(tandem__record__process_instance_result_record_value, &x, buf);
    json_t *o = record_with(
        TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE_RESULT,
        TANDEM__RECORD__PROCESS_INSTANCE_RESULT_INTENT__PIR_COMPLETED, buf, len,
        NULL);
    assert_str(o, "intent", "COMPLETED");
    json_t *v = value_of(o);
    MEMBERS(v, "bpmnProcessId", "processDefinitionKey", "version",
            "processInstanceKey", "variables", "tenantId");
    json_decref(o);
}

static void test_command_distribution(void **state)
{
    (void)state;
    Tandem__Record__DeploymentRecordValue d =
        TANDEM__RECORD__DEPLOYMENT_RECORD_VALUE__INIT;
    uint8_t inner[256];
    size_t inner_len = PACK(tandem__record__deployment_record_value, &d, inner);
    Tandem__Record__CommandDistributionRecordValue x =
        TANDEM__RECORD__COMMAND_DISTRIBUTION_RECORD_VALUE__INIT;
    x.partition_id = 3;
    x.value_type = TANDEM__RECORD__VALUE_TYPE__DEPLOYMENT;
    x.intent = TANDEM__RECORD__DEPLOYMENT_INTENT__DEPLOYMENT_CREATE;
    x.command_value.data = inner;
    x.command_value.len = inner_len;
    uint8_t buf[512];
    size_t len =
        PACK(tandem__record__command_distribution_record_value, &x, buf);
    json_t *o = record_with(
        TANDEM__RECORD__VALUE_TYPE__COMMAND_DISTRIBUTION,
        TANDEM__RECORD__COMMAND_DISTRIBUTION_INTENT__CD_DISTRIBUTING, buf, len,
        NULL);
    assert_str(o, "intent", "DISTRIBUTING");
    json_t *v = value_of(o);
    MEMBERS(v, "partitionId", "valueType", "intent", "commandValue");
    assert_int(v, "partitionId", 3);
    assert_str(v, "valueType", "DEPLOYMENT");
    assert_str(v, "intent", "CREATE");
    assert_true(json_is_array(
        json_object_get(json_object_get(v, "commandValue"), "resources")));
    json_decref(o);
}

static void test_names(void **state)
{
    (void)state;
    for (int vt = 1; vt <= RECORD_JSON_VALUE_TYPE_LAST; vt++) {
        assert_non_null(record_json_value_type_name(vt));
        assert_non_null(record_json_intent_name(vt, 0));
    }
    assert_null(record_json_value_type_name(0));
    assert_null(record_json_value_type_name(RECORD_JSON_VALUE_TYPE_LAST + 1));
    assert_null(record_json_record_type_name(0));
    assert_string_equal(
        record_json_intent_name(TANDEM__RECORD__VALUE_TYPE__JOB,
                                TANDEM__RECORD__JOB_INTENT__JOB_TIMED_OUT),
        "TIMED_OUT");
    assert_null(record_json_intent_name(TANDEM__RECORD__VALUE_TYPE__JOB, 999));
}

static void test_malformed(void **state)
{
    (void)state;
    struct record_json_view v;
    char err[256];
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(
        record_json_view_init(&v, 1, 5, junk, sizeof(junk), err, sizeof(err)),
        EXPORTER_E_DECODE);
    assert_non_null(strstr(err, "position 5"));
    /* Unknown value type. */
    Tandem__Record__Record r = TANDEM__RECORD__RECORD__INIT;
    r.record_type = TANDEM__RECORD__RECORD_TYPE__EVENT;
    r.value_type = 77;
    uint8_t buf[128];
    size_t len = tandem__record__record__pack(&r, buf);
    assert_int_equal(
        record_json_view_init(&v, 1, 6, buf, len, err, sizeof(err)),
        EXPORTER_E_DECODE);
    assert_non_null(strstr(err, "unknown value type 77"));
    /* A value that does not unpack as its type. */
    r.value_type = TANDEM__RECORD__VALUE_TYPE__JOB;
    r.value.data = (uint8_t *)junk;
    r.value.len = sizeof(junk);
    len = tandem__record__record__pack(&r, buf);
    assert_int_equal(
        record_json_view_init(&v, 1, 7, buf, len, err, sizeof(err)),
        EXPORTER_E_DECODE);
    assert_non_null(strstr(err, "JOB value"));
    /* Unset record type. */
    r.record_type = 0;
    r.value.len = 0;
    len = tandem__record__record__pack(&r, buf);
    assert_int_equal(
        record_json_view_init(&v, 1, 8, buf, len, err, sizeof(err)),
        EXPORTER_E_DECODE);
}

static void test_batch_split(void **state)
{
    (void)state;
    Tandem__Record__Record a = TANDEM__RECORD__RECORD__INIT;
    a.key = 1;
    a.broker_version = "8.4.5";
    Tandem__Record__Record b = TANDEM__RECORD__RECORD__INIT;
    b.key = 2;
    Tandem__Record__Record *records[] = {&a, &b};
    Tandem__Record__RecordBatch batch = TANDEM__RECORD__RECORD_BATCH__INIT;
    batch.n_records = 2;
    batch.records = records;
    uint8_t buf[256];
    size_t len = tandem__record__record_batch__pack(&batch, buf);
    struct record_json_slice slices[4];
    assert_int_equal(record_json_batch_split(buf, len, slices, 4), 2);
    Tandem__Record__Record *u =
        tandem__record__record__unpack(NULL, slices[1].len, slices[1].bytes);
    assert_non_null(u);
    assert_int_equal(u->key, 2);
    tandem__record__record__free_unpacked(u, NULL);
    assert_int_equal(record_json_batch_split(buf, len, slices, 1),
                     EXPORTER_E_LIMIT);
    assert_int_equal(record_json_batch_split(buf, len - 1, slices, 4),
                     EXPORTER_E_DECODE);
    assert_int_equal(record_json_batch_split(buf, 0, slices, 4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_command_without_key_and_rejection),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_job),
        cmocka_unit_test(test_job_batch),
        cmocka_unit_test(test_deployment),
        cmocka_unit_test(test_process),
        cmocka_unit_test(test_process_instance),
        cmocka_unit_test(test_incident),
        cmocka_unit_test(test_variable),
        cmocka_unit_test(test_variable_document),
        cmocka_unit_test(test_process_instance_creation),
        cmocka_unit_test(test_error),
        cmocka_unit_test(test_process_instance_result),
        cmocka_unit_test(test_command_distribution),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_batch_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
