/* client_rpc.c: the unary command RPCs of the broker client: for each
 * gateway_protocol RPC, the checks Zeebe's gateway makes, the command
 * body it becomes on the brokers' command API (proto/command.proto) and
 * its route; plus the mapping of broker error codes to gRPC statuses and
 * the DeployProcess <-> DeployResource conversion.
 *
 * Data flow:
 *
 *   backend->call(rpc, request) (client.c) --> client__rpc_call():
 *     the rpc's row in rpc_table --> check(request): INVALID_ARGUMENT with
 *     Zeebe's message, answered at once --> a struct client_call_spec
 *     (body case, route, deadline) --> client__call_start() (client.c)
 *     --> Request{body} to a partition leader --> Response{answer}
 *     --> client__response_answer() --> cb(OK, answer) (DeployProcess:
 *     the DeployResourceResponse converted to a DeployProcessResponse)
 *
 * Routes (zeebe-facts 3.4): deployments go to partition 1; instance
 * creation round-robins; commands on an existing entity go to the
 * partition of its key (key >> 51); PublishMessage to the partition of
 * its correlation key.
 *
 * The rejection messages are Zeebe's: "Command '<intent>' rejected with
 * code '<type>': <reason>" for what the engine would reject, and the
 * gateway's "Property 'variables' is invalid: ..." for JSON that is not
 * an object. */
#define _POSIX_C_SOURCE 200809L
#include "gateway/client_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ------------------------------------------------------------------------
 * Error codes and oneof bodies
 * --------------------------------------------------------------------- */

int client__error_status(Tandem__Command__Code code)
{
    switch (code) {
    case TANDEM__COMMAND__CODE__RESOURCE_EXHAUSTED:
        return GATEWAY_STATUS_RESOURCE_EXHAUSTED;
    case TANDEM__COMMAND__CODE__INVALID_ARGUMENT:
        return GATEWAY_STATUS_INVALID_ARGUMENT;
    case TANDEM__COMMAND__CODE__DEADLINE_EXCEEDED:
        return GATEWAY_STATUS_DEADLINE_EXCEEDED;
    case TANDEM__COMMAND__CODE__ALREADY_EXISTS:
        return GATEWAY_STATUS_ALREADY_EXISTS;
    case TANDEM__COMMAND__CODE__NOT_FOUND:
        return GATEWAY_STATUS_NOT_FOUND;
    case TANDEM__COMMAND__CODE__FAILED_PRECONDITION:
        return GATEWAY_STATUS_FAILED_PRECONDITION;
    case TANDEM__COMMAND__CODE__UNIMPLEMENTED:
        return GATEWAY_STATUS_UNIMPLEMENTED;
    case TANDEM__COMMAND__CODE__NOT_LEADER:
    case TANDEM__COMMAND__CODE__PARTITION_UNAVAILABLE:
        return GATEWAY_STATUS_UNAVAILABLE;
    default:
        return GATEWAY_STATUS_INTERNAL; /* INTERNAL and unknown codes */
    }
}

void client__request_body_set(Tandem__Command__Request *req,
                              Tandem__Command__Request__BodyCase body_case,
                              ProtobufCMessage *body)
{
    assert(req != NULL);
    assert(body != NULL);
    req->body_case = body_case;
    switch (body_case) {
    case TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE:
        req->publish_message = (GatewayProtocol__PublishMessageRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE:
        req->deploy_resource = (GatewayProtocol__DeployResourceRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE:
        req->create_process_instance =
            (GatewayProtocol__CreateProcessInstanceRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT:
        req->create_process_instance_with_result =
            (GatewayProtocol__CreateProcessInstanceWithResultRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_CANCEL_PROCESS_INSTANCE:
        req->cancel_process_instance =
            (GatewayProtocol__CancelProcessInstanceRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_SET_VARIABLES:
        req->set_variables = (GatewayProtocol__SetVariablesRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_ACTIVATE_JOBS:
        req->activate_jobs = (GatewayProtocol__ActivateJobsRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB:
        req->complete_job = (GatewayProtocol__CompleteJobRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB:
        req->fail_job = (GatewayProtocol__FailJobRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_RETRIES:
        req->update_job_retries =
            (GatewayProtocol__UpdateJobRetriesRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_TIMEOUT:
        req->update_job_timeout =
            (GatewayProtocol__UpdateJobTimeoutRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_THROW_ERROR:
        req->throw_error = (GatewayProtocol__ThrowErrorRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_RESOLVE_INCIDENT:
        req->resolve_incident = (GatewayProtocol__ResolveIncidentRequest *)body;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_AWAIT_JOBS:
        req->await_jobs = (Tandem__Command__AwaitJobsRequest *)body;
        break;
    default:
        assert(false && "a command body the gateway sends");
        break;
    }
}

const ProtobufCMessage *
client__response_answer(const Tandem__Command__Response *resp,
                        Tandem__Command__Request__BodyCase body_case)
{
    const ProtobufCMessage *m = NULL;
    Tandem__Command__Response__BodyCase want;

    assert(resp != NULL);
    switch (body_case) {
    case TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE:
        want = TANDEM__COMMAND__RESPONSE__BODY_PUBLISH_MESSAGE;
        m = resp->body_case == want ? &resp->publish_message->base : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE:
        want = TANDEM__COMMAND__RESPONSE__BODY_DEPLOY_RESOURCE;
        m = resp->body_case == want ? &resp->deploy_resource->base : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE:
        want = TANDEM__COMMAND__RESPONSE__BODY_CREATE_PROCESS_INSTANCE;
        m = resp->body_case == want ? &resp->create_process_instance->base
                                    : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT:
        want =
            TANDEM__COMMAND__RESPONSE__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT;
        m = resp->body_case == want
                ? &resp->create_process_instance_with_result->base
                : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_CANCEL_PROCESS_INSTANCE:
        want = TANDEM__COMMAND__RESPONSE__BODY_CANCEL_PROCESS_INSTANCE;
        m = resp->body_case == want ? &resp->cancel_process_instance->base
                                    : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_SET_VARIABLES:
        want = TANDEM__COMMAND__RESPONSE__BODY_SET_VARIABLES;
        m = resp->body_case == want ? &resp->set_variables->base : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_ACTIVATE_JOBS:
        want = TANDEM__COMMAND__RESPONSE__BODY_ACTIVATE_JOBS;
        m = resp->body_case == want ? &resp->activate_jobs->base : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB:
        want = TANDEM__COMMAND__RESPONSE__BODY_COMPLETE_JOB;
        m = resp->body_case == want ? &resp->complete_job->base : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB:
        want = TANDEM__COMMAND__RESPONSE__BODY_FAIL_JOB;
        m = resp->body_case == want ? &resp->fail_job->base : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_RETRIES:
        want = TANDEM__COMMAND__RESPONSE__BODY_UPDATE_JOB_RETRIES;
        m = resp->body_case == want ? &resp->update_job_retries->base : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_TIMEOUT:
        want = TANDEM__COMMAND__RESPONSE__BODY_UPDATE_JOB_TIMEOUT;
        m = resp->body_case == want ? &resp->update_job_timeout->base : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_THROW_ERROR:
        want = TANDEM__COMMAND__RESPONSE__BODY_THROW_ERROR;
        m = resp->body_case == want ? &resp->throw_error->base : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_RESOLVE_INCIDENT:
        want = TANDEM__COMMAND__RESPONSE__BODY_RESOLVE_INCIDENT;
        m = resp->body_case == want ? &resp->resolve_incident->base : NULL;
        break;
    case TANDEM__COMMAND__REQUEST__BODY_AWAIT_JOBS:
        want = TANDEM__COMMAND__RESPONSE__BODY_AWAIT_JOBS;
        m = resp->body_case == want ? &resp->await_jobs->base : NULL;
        break;
    default:
        m = NULL;
        break;
    }
    return m;
}

/* ------------------------------------------------------------------------
 * Checks
 * --------------------------------------------------------------------- */

/* The MessagePack type names Zeebe's document check reports. */
static const char *json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_ARRAY:
        return "ARRAY";
    case JSON_STRING:
        return "STRING";
    case JSON_INTEGER:
        return "INTEGER";
    case JSON_REAL:
        return "FLOAT";
    case JSON_TRUE:
    case JSON_FALSE:
        return "BOOLEAN";
    case JSON_NULL:
        return "NIL";
    default:
        return "MAP";
    }
}

bool client__variables_valid(const char *name, const char *json, char *why,
                             size_t why_size)
{
    json_error_t error;
    json_t *doc;
    bool ok;

    assert(name != NULL);
    if (json == NULL || json[0] == '\0') {
        return true; /* no variables */
    }
    doc = json_loads(json, JSON_DECODE_ANY, &error);
    if (doc == NULL) {
        snprintf(why, why_size,
                 "Property '%s' is invalid: Expected document to be a root "
                 "level object, but it is not valid JSON: %s (line %d, "
                 "column %d)",
                 name, error.text, error.line, error.column);
        return false;
    }
    ok = json_is_object(doc);
    if (!ok) {
        snprintf(why, why_size,
                 "Property '%s' is invalid: Expected document to be a root "
                 "level object, but was '%s'",
                 name, json_type_name(doc));
    }
    json_decref(doc);
    return ok;
}

/* A check returns 0 or a gRPC status with why set. */
typedef int (*rpc_check_fn)(const ProtobufCMessage *request, char *why,
                            size_t why_size);

static int check_variables(const char *json, char *why, size_t why_size)
{
    return client__variables_valid("variables", json, why, why_size)
               ? 0
               : GATEWAY_STATUS_INVALID_ARGUMENT;
}

static int check_publish(const ProtobufCMessage *m, char *why, size_t size)
{
    const GatewayProtocol__PublishMessageRequest *r = (const void *)m;
    return check_variables(r->variables, why, size);
}

static int check_create(const GatewayProtocol__CreateProcessInstanceRequest *r,
                        char *why, size_t size)
{
    if (r == NULL ||
        ((r->bpmnprocessid == NULL || r->bpmnprocessid[0] == '\0') &&
         r->processdefinitionkey <= 0)) {
        /* The engine's CreateProcessInstanceProcessor rejection. */
        snprintf(why, size,
                 "Command 'CREATE' rejected with code 'INVALID_ARGUMENT': "
                 "Expected at least a bpmnProcessId or a key greater than -1, "
                 "but none given");
        return GATEWAY_STATUS_INVALID_ARGUMENT;
    }
    return check_variables(r->variables, why, size);
}

static int check_create_instance(const ProtobufCMessage *m, char *why,
                                 size_t size)
{
    return check_create((const void *)m, why, size);
}

static int check_create_with_result(const ProtobufCMessage *m, char *why,
                                    size_t size)
{
    const GatewayProtocol__CreateProcessInstanceWithResultRequest *r =
        (const void *)m;
    return check_create(r->request, why, size);
}

static int check_set_variables(const ProtobufCMessage *m, char *why,
                               size_t size)
{
    const GatewayProtocol__SetVariablesRequest *r = (const void *)m;
    return check_variables(r->variables, why, size);
}

static int check_complete(const ProtobufCMessage *m, char *why, size_t size)
{
    const GatewayProtocol__CompleteJobRequest *r = (const void *)m;
    return check_variables(r->variables, why, size);
}

static int check_fail(const ProtobufCMessage *m, char *why, size_t size)
{
    const GatewayProtocol__FailJobRequest *r = (const void *)m;
    return check_variables(r->variables, why, size);
}

static int check_throw_error(const ProtobufCMessage *m, char *why, size_t size)
{
    const GatewayProtocol__ThrowErrorRequest *r = (const void *)m;
    return check_variables(r->variables, why, size);
}

static int check_deploy(const ProtobufCMessage *m, char *why, size_t size)
{
    const GatewayProtocol__DeployResourceRequest *r = (const void *)m;
    if (r->n_resources == 0) {
        /* The engine's DeploymentCreateProcessor rejection. */
        snprintf(why, size,
                 "Command 'CREATE' rejected with code 'INVALID_ARGUMENT': "
                 "Expected to deploy at least one resource, but none given");
        return GATEWAY_STATUS_INVALID_ARGUMENT;
    }
    return 0;
}

/* Keys of the key-routed commands. */
static int64_t key_cancel(const ProtobufCMessage *m)
{
    return ((const GatewayProtocol__CancelProcessInstanceRequest *)m)
        ->processinstancekey;
}
static int64_t key_set_variables(const ProtobufCMessage *m)
{
    return ((const GatewayProtocol__SetVariablesRequest *)m)
        ->elementinstancekey;
}
static int64_t key_complete(const ProtobufCMessage *m)
{
    return ((const GatewayProtocol__CompleteJobRequest *)m)->jobkey;
}
static int64_t key_fail(const ProtobufCMessage *m)
{
    return ((const GatewayProtocol__FailJobRequest *)m)->jobkey;
}
static int64_t key_retries(const ProtobufCMessage *m)
{
    return ((const GatewayProtocol__UpdateJobRetriesRequest *)m)->jobkey;
}
static int64_t key_timeout(const ProtobufCMessage *m)
{
    return ((const GatewayProtocol__UpdateJobTimeoutRequest *)m)->jobkey;
}
static int64_t key_throw_error(const ProtobufCMessage *m)
{
    return ((const GatewayProtocol__ThrowErrorRequest *)m)->jobkey;
}
static int64_t key_incident(const ProtobufCMessage *m)
{
    return ((const GatewayProtocol__ResolveIncidentRequest *)m)->incidentkey;
}

/* ------------------------------------------------------------------------
 * DeployProcess (deprecated): converted to DeployResource and back
 * --------------------------------------------------------------------- */

/* DeployResourceResponse -> DeployProcessResponse{key, processes}: the
 * process entries of the deployment, borrowed from the answer. */
static void deploy_process_convert(const ProtobufCMessage *answer,
                                   gateway_backend_cb cb, void *req_data)
{
    const GatewayProtocol__DeployResourceResponse *r = (const void *)answer;
    GatewayProtocol__DeployProcessResponse out =
        GATEWAY_PROTOCOL__DEPLOY_PROCESS_RESPONSE__INIT;
    GatewayProtocol__ProcessMetadata **procs = NULL;
    size_t i;

    assert(answer->descriptor ==
           &gateway_protocol__deploy_resource_response__descriptor);
    if (r->n_deployments > 0) {
        procs = calloc(r->n_deployments, sizeof(*procs));
        if (procs == NULL) {
            /* UNTESTED: malloc failure */
            cb(req_data, GATEWAY_STATUS_RESOURCE_EXHAUSTED, "out of memory",
               NULL);
            return;
        }
    }
    out.key = r->key;
    for (i = 0; i < r->n_deployments; i++) {
        const GatewayProtocol__Deployment *d = r->deployments[i];
        if (d->metadata_case ==
            GATEWAY_PROTOCOL__DEPLOYMENT__METADATA_PROCESS) {
            procs[out.n_processes++] = d->process;
        }
    }
    out.processes = procs;
    cb(req_data, GATEWAY_STATUS_OK, NULL, &out.base);
    free(procs);
}

/* DeployProcessRequest{processes[name, definition]} ->
 * DeployResourceRequest{resources[name, content]} (strings and bytes
 * borrowed from request; the call copies the result). */
static void deploy_process_call(struct gateway_client *c,
                                const ProtobufCMessage *request,
                                uint64_t deadline_ms, gateway_backend_cb cb,
                                void *req_data)
{
    const GatewayProtocol__DeployProcessRequest *r = (const void *)request;
    GatewayProtocol__DeployResourceRequest dr =
        GATEWAY_PROTOCOL__DEPLOY_RESOURCE_REQUEST__INIT;
    GatewayProtocol__Resource *res = NULL;
    GatewayProtocol__Resource **ptrs = NULL;
    struct client_call_spec spec;
    char why[256];
    size_t i;
    int status;

    if (r->n_processes > 0) {
        res = calloc(r->n_processes, sizeof(*res));
        ptrs = calloc(r->n_processes, sizeof(*ptrs));
        if (res == NULL || ptrs == NULL) {
            free(res); /* UNTESTED: malloc failure */
            free(ptrs);
            cb(req_data, GATEWAY_STATUS_RESOURCE_EXHAUSTED, "out of memory",
               NULL);
            return;
        }
    }
    for (i = 0; i < r->n_processes; i++) {
        GatewayProtocol__Resource one = GATEWAY_PROTOCOL__RESOURCE__INIT;
        one.name = r->processes[i]->name;
        one.content = r->processes[i]->definition;
        res[i] = one;
        ptrs[i] = &res[i];
    }
    dr.n_resources = r->n_processes;
    dr.resources = ptrs;
    status = check_deploy(&dr.base, why, sizeof(why));
    if (status != 0) {
        free(res);
        free(ptrs);
        cb(req_data, status, why, NULL);
        return;
    }
    memset(&spec, 0, sizeof(spec));
    spec.body_case = TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE;
    spec.body = &dr.base;
    spec.route = CLIENT_ROUTE_FIXED;
    spec.partition_id = 1;
    spec.deadline_ms = uv_now(c->loop) + c->opts.request_timeout_ms;
    if (deadline_ms != 0 && deadline_ms < spec.deadline_ms) {
        spec.deadline_ms = deadline_ms;
    }
    spec.convert = deploy_process_convert;
    status = client__call_start(c, &spec, cb, req_data, NULL);
    free(res);
    free(ptrs);
    if (status != 0) {
        cb(req_data, status,
           "Reached maximum capacity of requests handled by "
           "the gateway",
           NULL);
    }
}

/* ------------------------------------------------------------------------
 * The table
 * --------------------------------------------------------------------- */

struct client_rpc {
    const char *name; /* gateway_protocol.Gateway method */
    const ProtobufCMessageDescriptor *input;
    Tandem__Command__Request__BodyCase body_case;
    enum client_route route;
    int64_t (*key)(const ProtobufCMessage *request); /* ROUTE_KEY */
    rpc_check_fn check;                              /* may be NULL */
};

static const struct client_rpc rpc_table[] = {
    {"PublishMessage", &gateway_protocol__publish_message_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_PUBLISH_MESSAGE, CLIENT_ROUTE_CORRELATION,
     NULL, check_publish},
    {"DeployResource", &gateway_protocol__deploy_resource_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE, CLIENT_ROUTE_FIXED, NULL,
     check_deploy},
    {"CreateProcessInstance",
     &gateway_protocol__create_process_instance_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE,
     CLIENT_ROUTE_ROUND_ROBIN, NULL, check_create_instance},
    {"CreateProcessInstanceWithResult",
     &gateway_protocol__create_process_instance_with_result_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT,
     CLIENT_ROUTE_ROUND_ROBIN, NULL, check_create_with_result},
    {"CancelProcessInstance",
     &gateway_protocol__cancel_process_instance_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_CANCEL_PROCESS_INSTANCE, CLIENT_ROUTE_KEY,
     key_cancel, NULL},
    {"SetVariables", &gateway_protocol__set_variables_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_SET_VARIABLES, CLIENT_ROUTE_KEY,
     key_set_variables, check_set_variables},
    {"CompleteJob", &gateway_protocol__complete_job_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB, CLIENT_ROUTE_KEY,
     key_complete, check_complete},
    {"FailJob", &gateway_protocol__fail_job_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB, CLIENT_ROUTE_KEY, key_fail,
     check_fail},
    {"UpdateJobRetries",
     &gateway_protocol__update_job_retries_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_RETRIES, CLIENT_ROUTE_KEY,
     key_retries, NULL},
    {"UpdateJobTimeout",
     &gateway_protocol__update_job_timeout_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_TIMEOUT, CLIENT_ROUTE_KEY,
     key_timeout, NULL},
    {"ThrowError", &gateway_protocol__throw_error_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_THROW_ERROR, CLIENT_ROUTE_KEY,
     key_throw_error, check_throw_error},
    {"ResolveIncident", &gateway_protocol__resolve_incident_request__descriptor,
     TANDEM__COMMAND__REQUEST__BODY_RESOLVE_INCIDENT, CLIENT_ROUTE_KEY,
     key_incident, NULL},
};

#define RPC_TABLE_COUNT (sizeof(rpc_table) / sizeof(rpc_table[0]))

static const struct client_rpc *rpc_find(const char *name)
{
    for (size_t i = 0; i < RPC_TABLE_COUNT; i++) {
        if (strcmp(rpc_table[i].name, name) == 0) {
            return &rpc_table[i];
        }
    }
    return NULL;
}

bool client__rpc_call(struct gateway_client *c, const char *rpc,
                      const ProtobufCMessage *request, uint64_t deadline_ms,
                      gateway_backend_cb cb, void *req_data)
{
    const struct client_rpc *r;
    struct client_call_spec spec;
    char why[320];
    int status;
    uint64_t now = uv_now(c->loop);

    assert(rpc != NULL);
    assert(request != NULL);
    if (strcmp(rpc, "DeployProcess") == 0) {
        if (request->descriptor !=
            &gateway_protocol__deploy_process_request__descriptor) {
            cb(req_data, GATEWAY_STATUS_INTERNAL, "wrong request type", NULL);
            return true;
        }
        deploy_process_call(c, request, deadline_ms, cb, req_data);
        return true;
    }
    r = rpc_find(rpc);
    if (r == NULL) {
        return false;
    }
    if (request->descriptor != r->input) {
        cb(req_data, GATEWAY_STATUS_INTERNAL, "wrong request type", NULL);
        return true; /* a programming error in the server */
    }
    if (r->check != NULL) {
        status = r->check(request, why, sizeof(why));
        if (status != 0) {
            cb(req_data, status, why, NULL);
            return true;
        }
    }
    memset(&spec, 0, sizeof(spec));
    spec.body_case = r->body_case;
    spec.body = request;
    spec.route = r->route;
    spec.partition_id = r->route == CLIENT_ROUTE_FIXED ? 1u : 0u;
    spec.key = r->key != NULL ? r->key(request) : 0;
    spec.deadline_ms = now + c->opts.request_timeout_ms;
    if (r->body_case ==
        TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT) {
        /* The broker waits for the instance to complete: requestTimeout
         * when > 0, else the gateway's request timeout; the call waits a
         * little longer for the broker's own timeout answer. */
        const GatewayProtocol__CreateProcessInstanceWithResultRequest *w =
            (const void *)request;
        spec.broker_timeout_ms = w->requesttimeout > 0
                                     ? (uint64_t)w->requesttimeout
                                     : c->opts.request_timeout_ms;
        spec.deadline_ms =
            now + spec.broker_timeout_ms + CLIENT_BROKER_SLACK_MS;
    }
    if (deadline_ms != 0 && deadline_ms < spec.deadline_ms) {
        spec.deadline_ms = deadline_ms;
    }
    if (spec.deadline_ms == 0) {
        spec.deadline_ms = 1; /* already due: expires at once */
    }
    status = client__call_start(c, &spec, cb, req_data, NULL);
    if (status != 0) {
        cb(req_data, status,
           status == GATEWAY_STATUS_UNAVAILABLE
               ? "gateway is shutting down"
               : "Reached maximum capacity of requests handled by the gateway",
           NULL);
    }
    return true;
}
