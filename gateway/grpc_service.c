/* grpc_service.c: the method table of gateway_protocol.Gateway (Zeebe
 * 8.4, 21 RPCs) and the lookup of an HTTP/2 :path in it.
 *
 * Data flow: grpc_session.c hands the :path of each request here and gets
 * back the method: its name (passed to backend->call as the rpc), the
 * protobuf-c descriptor to unpack the request with, the descriptor the
 * response must have, and whether the response is a stream of messages
 * (ActivateJobs, StreamActivatedJobs). The table is written out rather
 * than read from the generated ProtobufCServiceDescriptor because the
 * streaming flag is not in the descriptor; grpc_service_method_find()
 * checks the two agree (names, types, count), a pair check against the
 * generated code. */
#define _POSIX_C_SOURCE 200809L
#include "gateway/grpc_server.h"

#include <assert.h>
#include <string.h>

#include "proto/proto.h"

/* Same order as the service in proto/gateway.proto and its descriptor. */
static const struct grpc_method service_methods[] = {
    {"ActivateJobs",
     &gateway_protocol__activate_jobs_request__descriptor,
     &gateway_protocol__activate_jobs_response__descriptor, true},
    {"StreamActivatedJobs",
     &gateway_protocol__stream_activated_jobs_request__descriptor,
     &gateway_protocol__activated_job__descriptor, true},
    {"CancelProcessInstance",
     &gateway_protocol__cancel_process_instance_request__descriptor,
     &gateway_protocol__cancel_process_instance_response__descriptor, false},
    {"CompleteJob",
     &gateway_protocol__complete_job_request__descriptor,
     &gateway_protocol__complete_job_response__descriptor, false},
    {"CreateProcessInstance",
     &gateway_protocol__create_process_instance_request__descriptor,
     &gateway_protocol__create_process_instance_response__descriptor, false},
    {"CreateProcessInstanceWithResult",
     &gateway_protocol__create_process_instance_with_result_request__descriptor,
     &gateway_protocol__create_process_instance_with_result_response__descriptor, false},
    {"EvaluateDecision",
     &gateway_protocol__evaluate_decision_request__descriptor,
     &gateway_protocol__evaluate_decision_response__descriptor, false},
    {"DeployProcess",
     &gateway_protocol__deploy_process_request__descriptor,
     &gateway_protocol__deploy_process_response__descriptor, false},
    {"DeployResource",
     &gateway_protocol__deploy_resource_request__descriptor,
     &gateway_protocol__deploy_resource_response__descriptor, false},
    {"FailJob",
     &gateway_protocol__fail_job_request__descriptor,
     &gateway_protocol__fail_job_response__descriptor, false},
    {"ThrowError",
     &gateway_protocol__throw_error_request__descriptor,
     &gateway_protocol__throw_error_response__descriptor, false},
    {"PublishMessage",
     &gateway_protocol__publish_message_request__descriptor,
     &gateway_protocol__publish_message_response__descriptor, false},
    {"ResolveIncident",
     &gateway_protocol__resolve_incident_request__descriptor,
     &gateway_protocol__resolve_incident_response__descriptor, false},
    {"SetVariables",
     &gateway_protocol__set_variables_request__descriptor,
     &gateway_protocol__set_variables_response__descriptor, false},
    {"Topology",
     &gateway_protocol__topology_request__descriptor,
     &gateway_protocol__topology_response__descriptor, false},
    {"UpdateJobRetries",
     &gateway_protocol__update_job_retries_request__descriptor,
     &gateway_protocol__update_job_retries_response__descriptor, false},
    {"ModifyProcessInstance",
     &gateway_protocol__modify_process_instance_request__descriptor,
     &gateway_protocol__modify_process_instance_response__descriptor, false},
    {"MigrateProcessInstance",
     &gateway_protocol__migrate_process_instance_request__descriptor,
     &gateway_protocol__migrate_process_instance_response__descriptor, false},
    {"UpdateJobTimeout",
     &gateway_protocol__update_job_timeout_request__descriptor,
     &gateway_protocol__update_job_timeout_response__descriptor, false},
    {"DeleteResource",
     &gateway_protocol__delete_resource_request__descriptor,
     &gateway_protocol__delete_resource_response__descriptor, false},
    {"BroadcastSignal",
     &gateway_protocol__broadcast_signal_request__descriptor,
     &gateway_protocol__broadcast_signal_response__descriptor, false},
};

#define SERVICE_METHOD_COUNT \
    (sizeof(service_methods) / sizeof(service_methods[0]))

_Static_assert(SERVICE_METHOD_COUNT == PROTO_GATEWAY_RPC_COUNT,
               "the table lists every RPC of gateway_protocol.Gateway");

/* The longest method name, bounding the :path we look at. */
#define SERVICE_METHOD_NAME_MAX 64u

/* Checks once that the table matches the generated service descriptor. */
static void service_check(void)
{
    static bool checked;
    const ProtobufCServiceDescriptor *d = &gateway_protocol__gateway__descriptor;

    if (checked) {
        return;
    }
    assert(d->n_methods == SERVICE_METHOD_COUNT);
    assert(strcmp(d->name, PROTO_GATEWAY_SERVICE) == 0);
    for (size_t i = 0; i < SERVICE_METHOD_COUNT; i++) {
        assert(strcmp(d->methods[i].name, service_methods[i].name) == 0);
        assert(d->methods[i].input == service_methods[i].input);
        assert(d->methods[i].output == service_methods[i].output);
        assert(strlen(service_methods[i].name) < SERVICE_METHOD_NAME_MAX);
    }
    checked = true;
}

const struct grpc_method *grpc_service_method_find(const char *path,
                                                   size_t path_len,
                                                   enum grpc_lookup *why)
{
    static const char service[] = PROTO_GATEWAY_SERVICE;
    const size_t service_len = sizeof(service) - 1;
    const char *name;
    size_t name_len;
    const char *slash;

    assert(why != NULL);
    assert(path != NULL || path_len == 0);
    service_check();

    /* "/" service "/" method, nothing else. */
    if (path_len < 3 || path[0] != '/') {
        *why = GRPC_LOOKUP_BAD_PATH;
        return NULL;
    }
    slash = memchr(path + 1, '/', path_len - 1);
    if (slash == NULL || slash == path + 1 || slash == path + path_len - 1) {
        *why = GRPC_LOOKUP_BAD_PATH;
        return NULL;
    }
    if ((size_t)(slash - path - 1) != service_len ||
        memcmp(path + 1, service, service_len) != 0) {
        *why = GRPC_LOOKUP_NO_SERVICE;
        return NULL;
    }
    name = slash + 1;
    name_len = path_len - (size_t)(name - path);
    assert(name_len > 0);
    for (size_t i = 0; i < SERVICE_METHOD_COUNT; i++) {
        const struct grpc_method *m = &service_methods[i];
        if (strlen(m->name) == name_len &&
            memcmp(m->name, name, name_len) == 0) {
            *why = GRPC_LOOKUP_FOUND;
            return m;
        }
    }
    *why = GRPC_LOOKUP_NO_METHOD;
    return NULL;
}

size_t grpc_service_method_count(void)
{
    return SERVICE_METHOD_COUNT;
}

const struct grpc_method *grpc_service_method_at(size_t index)
{
    assert(index < SERVICE_METHOD_COUNT);
    service_check();
    return &service_methods[index];
}
