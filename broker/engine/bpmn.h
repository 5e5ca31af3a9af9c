/* bpmn.h: BPMN 2.0 XML -> the process model the engine executes.
 *
 * Data flow:
 *
 *   deployment resource bytes --bpmn_parse()--> libxml2 (no network, no
 *   external entities, no entity expansion, DTDs refused, size and depth
 *   bounded) --> walk of <definitions>/<process> --> struct
 *   bpmn_definitions (one struct bpmn_process per executable process),
 *   validated (references resolve, exactly one none start event, every
 *   service task has a job type, gateways well-formed) --> engine.
 *
 * Supported elements (anything else inside a process fails the parse with
 * a message naming the element, its id and its line, e.g.
 * "unsupported element 'userTask' (id 'Task_1') at line 12"):
 *   process, startEvent (none), endEvent (none), serviceTask with
 *   extensionElements/zeebe:taskDefinition (type, retries),
 *   zeebe:taskHeaders/zeebe:header (key, value), zeebe:ioMapping with
 *   zeebe:input / zeebe:output (source, target), sequenceFlow with
 *   conditionExpression, exclusiveGateway (default attribute),
 *   parallelGateway, boundaryEvent with errorEventDefinition (errorRef to a
 *   top-level <error errorCode=...>, or none = catch every error),
 *   attached to a service task (cancelActivity true only).
 *   Ignored (layout, documentation): bpmndi:*, documentation,
 *   incoming/outgoing child elements (recomputed from sequence flows),
 *   extensionElements of other namespaces and zeebe:properties (other
 *   zeebe:* extensions fail), collaboration/participant, and inside a
 *   process laneSet, textAnnotation, association and group (no execution
 *   semantics). Elements are matched by namespace URI and local name
 *   (bpmn = http://www.omg.org/spec/BPMN/20100524/MODEL, zeebe =
 *   http://camunda.org/schema/zeebe/1.0), whatever the prefix.
 *
 * Validation, beyond the supported set: every process with
 * isExecutable="false" is skipped (absent counts as executable) and at
 * least one must remain; ids are unique; exactly one none start event,
 * without incoming flows; end events have no outgoing flows; sequence
 * flows join existing flow nodes, never into a start or boundary event;
 * conditions only on flows out of exclusive gateways, written "= expr"
 * (not ${...}); a diverging exclusive gateway's outgoing flows other than
 * its default have a condition, and the default is one of its outgoing
 * flows; service tasks have a non-empty job type and retries that are an
 * expression or a number 0..2147483647; mapping targets are names or
 * dotted paths; boundary events are interrupting error events attached to
 * a service task, with at least one outgoing flow, and an errorRef names
 * a top-level <error> that has an errorCode.
 *
 * Expressions: attribute values starting with '=' are FEEL expressions
 * (stored without the '=' and trimmed); others are static strings. The
 * parser only stores the text; the engine parses it with feel_parse().
 * Mapping sources are always FEEL: a static source becomes a FEEL string
 * literal ("express" -> "\"express\""), an absent one "null".
 *
 * Hardening: DOCTYPEs are refused before any entity is declared, nothing
 * is fetched from the network or the file system, and the resource size
 * (BPMN_RESOURCE_BYTES_MAX), XML element count and nesting depth, and
 * flow elements per process (BPMN_ELEMENTS_MAX) are bounded. Nothing is
 * printed. bpmn_parse() may be called from several threads at once.
 */
#ifndef TANDEM_ENGINE_BPMN_H
#define TANDEM_ENGINE_BPMN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BPMN_RESOURCE_BYTES_MAX (4u << 20) /* 4 MiB per resource */
#define BPMN_ELEMENTS_MAX 10000            /* per process */
#define BPMN_NONE UINT32_MAX               /* "no element" index */

enum bpmn_errno {
    BPMN_E_INVALID = -1, /* not well-formed, unsupported or invalid model */
    BPMN_E_NOMEM = -2,
    BPMN_E_LIMIT = -3,   /* resource too big or too deep */
};

enum bpmn_element_type {
    BPMN_PROCESS = 1,
    BPMN_START_EVENT,
    BPMN_END_EVENT,
    BPMN_SERVICE_TASK,
    BPMN_EXCLUSIVE_GATEWAY,
    BPMN_PARALLEL_GATEWAY,
    BPMN_BOUNDARY_EVENT,
    BPMN_SEQUENCE_FLOW,
};

/* A value that is either static text or a FEEL expression. */
struct bpmn_value {
    char *text;   /* NULL when absent */
    bool is_expr; /* text was given as "=expr" (text holds expr) */
};

struct bpmn_mapping {
    char *source; /* FEEL expression (leading '=' removed) */
    char *target; /* variable name or dotted path */
};

struct bpmn_header {
    char *key;
    char *value;
};

struct bpmn_element {
    enum bpmn_element_type type;
    char *id;
    char *name;     /* NULL when absent */
    int line;       /* line of the element in the XML */
    /* Flow nodes: indices of sequence flows (elements) in and out. */
    uint32_t *incoming;
    size_t n_incoming;
    uint32_t *outgoing;
    size_t n_outgoing;
    /* Sequence flows. */
    uint32_t source;          /* element index */
    uint32_t target;          /* element index */
    char *condition;          /* FEEL (without '='), NULL = none */
    /* Exclusive gateways: the default flow or BPMN_NONE. */
    uint32_t default_flow;
    /* Service tasks. */
    struct bpmn_value job_type;    /* required */
    struct bpmn_value job_retries; /* default static "3" */
    struct bpmn_header *headers;
    size_t n_headers;
    struct bpmn_mapping *inputs;
    size_t n_inputs;
    struct bpmn_mapping *outputs;
    size_t n_outputs;
    uint32_t *boundaries;     /* boundary events attached to this task */
    size_t n_boundaries;
    /* Boundary events. */
    uint32_t attached_to;     /* element index */
    char *error_code;         /* NULL = catches any error */
    bool cancel_activity;
};

struct bpmn_process {
    char *id;                  /* bpmnProcessId */
    char *name;                /* NULL when absent */
    struct bpmn_element *elements;
    size_t n_elements;
    uint32_t start;            /* index of the none start event */
};

struct bpmn_definitions {
    struct bpmn_process *processes; /* executable processes, in order */
    size_t n_processes;             /* >= 1 on success */
};

/* Parses and validates one BPMN resource (xml, len bytes; need not be
 * NUL-terminated). On success *out holds the model (free with
 * bpmn_definitions_free()) and 0 is returned; otherwise a negative
 * bpmn_errno, *out is NULL and err holds a message naming the problem and,
 * where there is one, the element and line. resource_name is used in
 * messages only: when it is non-NULL and non-empty, the message starts
 * with "'<resource_name>': ". err may be NULL (errlen 0); a message longer
 * than errlen - 1 bytes is cut, always NUL-terminated. The model owns all
 * its memory (malloc'd); nothing points into xml. */
int bpmn_parse(const char *xml, size_t len, const char *resource_name,
               struct bpmn_definitions **out, char *err, size_t errlen);

void bpmn_definitions_free(struct bpmn_definitions *defs);

/* Index of the element with this id in p, or BPMN_NONE (also for a NULL
 * id). A linear scan: callers on a hot path keep their own index. */
uint32_t bpmn_element_find(const struct bpmn_process *p, const char *id);

/* Zeebe's BpmnElementType name: "PROCESS", "START_EVENT", "END_EVENT",
 * "SERVICE_TASK", "EXCLUSIVE_GATEWAY", "PARALLEL_GATEWAY",
 * "BOUNDARY_EVENT", "SEQUENCE_FLOW". */
const char *bpmn_element_type_name(enum bpmn_element_type type);

#endif /* TANDEM_ENGINE_BPMN_H */
