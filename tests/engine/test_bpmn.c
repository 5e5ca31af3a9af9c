/* test_bpmn.c: unit tests of broker/engine/bpmn.c.
 *
 * Run from tests/engine/testdata/bpmn (meson's workdir): every valid
 * sample there is parsed and compared element by element with the model
 * it describes; every invalid-*.bpmn must fail with its exact message.
 * Inline documents cover the remaining rules, the namespaces (prefixes,
 * default namespace), the limits (size, element count, nesting), hostile
 * input (DTDs, bad encodings, no NUL terminator: nothing printed, nothing
 * read out of bounds) and parsing on two threads at once. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/engine/bpmn.h"

#define ERR_BYTES 512

/* ------------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

/* Reads a whole file into an exactly sized buffer (no NUL terminator, so
 * ASan catches the parser reading past len). */
static char *file_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *buf;

    assert_non_null(f);
    assert_int_equal(fstat(fileno(f), &st), 0);
    assert_true(st.st_size > 0);
    buf = malloc((size_t)st.st_size);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    *len = (size_t)st.st_size;
    return buf;
}

static struct bpmn_definitions *parse_file_ok(const char *path)
{
    struct bpmn_definitions *defs = NULL;
    char err[ERR_BYTES] = "";
    size_t len;
    char *xml = file_read(path, &len);
    int rv = bpmn_parse(xml, len, path, &defs, err, sizeof(err));

    if (rv != 0) {
        fail_msg("%s: %d %s", path, rv, err);
    }
    free(xml);
    assert_non_null(defs);
    return defs;
}

/* Parses text (without its NUL) and returns the result; err receives the
 * message. */
static int parse_text(const char *text, struct bpmn_definitions **defs,
                      char *err)
{
    size_t len = strlen(text);
    char *copy = malloc(len > 0 ? len : 1);
    int rv;

    assert_non_null(copy);
    memcpy(copy, text, len);
    rv = bpmn_parse(copy, len, NULL, defs, err, ERR_BYTES);
    free(copy);
    if (rv != 0) {
        assert_null(*defs);
        assert_true(err[0] != '\0');
    } else {
        assert_non_null(*defs);
    }
    return rv;
}

/* Asserts that text fails with rv and exactly the message want. */
static void parse_text_fails(const char *text, int rv, const char *want)
{
    struct bpmn_definitions *defs = NULL;
    char err[ERR_BYTES] = "";

    assert_int_equal(parse_text(text, &defs, err), rv);
    assert_string_equal(err, want);
}

static const struct bpmn_element *element(const struct bpmn_process *p,
                                          const char *id,
                                          enum bpmn_element_type type)
{
    uint32_t i = bpmn_element_find(p, id);

    if (i == BPMN_NONE) {
        fail_msg("no element '%s'", id);
    }
    assert_true(i < p->n_elements);
    assert_int_equal(p->elements[i].type, type);
    assert_string_equal(p->elements[i].id, id);
    return &p->elements[i];
}

/* Asserts that flow id goes from source to target and is listed in their
 * outgoing and incoming arrays. */
static void assert_flow(const struct bpmn_process *p, const char *id,
                        const char *source, const char *target)
{
    const struct bpmn_element *f = element(p, id, BPMN_SEQUENCE_FLOW);
    uint32_t fi = (uint32_t)(f - p->elements);
    const struct bpmn_element *s = &p->elements[f->source];
    const struct bpmn_element *t = &p->elements[f->target];
    bool in_s = false, in_t = false;

    assert_string_equal(s->id, source);
    assert_string_equal(t->id, target);
    for (size_t i = 0; i < s->n_outgoing; i++) {
        in_s = in_s || s->outgoing[i] == fi;
    }
    for (size_t i = 0; i < t->n_incoming; i++) {
        in_t = in_t || t->incoming[i] == fi;
    }
    assert_true(in_s);
    assert_true(in_t);
}

static void assert_task(const struct bpmn_process *p, const char *id,
                        const char *type, const char *retries)
{
    const struct bpmn_element *t = element(p, id, BPMN_SERVICE_TASK);

    assert_string_equal(t->job_type.text, type);
    assert_false(t->job_type.is_expr);
    assert_string_equal(t->job_retries.text, retries);
    assert_false(t->job_retries.is_expr);
}

/* A one-process document around body (BPMN as prefix "bpmn", Zeebe as
 * "zeebe"). The result is static: use it before the next call. */
static const char *doc(const char *body)
{
    static char buf[8192];
    int n = snprintf(buf, sizeof(buf),
                     "<?xml version=\"1.0\"?>\n"
                     "<bpmn:definitions "
                     "xmlns:bpmn=\"http://www.omg.org/spec/BPMN/20100524/"
                     "MODEL\" "
                     "xmlns:zeebe=\"http://camunda.org/schema/zeebe/1.0\">\n"
                     "<bpmn:process id=\"p\" isExecutable=\"true\">\n"
                     "%s\n"
                     "</bpmn:process>\n"
                     "</bpmn:definitions>\n",
                     body);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    return buf;
}

#define START_TO_TASK                                                          \
    "<bpmn:startEvent id=\"s\"/>\n"                                            \
    "<bpmn:sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"t\"/>\n"

/* ------------------------------------------------------------------------
 * The valid samples
 * --------------------------------------------------------------------- */

static void test_one_task(void **state)
{
    struct bpmn_definitions *defs = parse_file_ok("one-task.bpmn");
    const struct bpmn_process *p;
    const struct bpmn_element *start, *task, *end;

    (void)state;
    assert_int_equal(defs->n_processes, 1);
    p = &defs->processes[0];
    assert_string_equal(p->id, "one-task");
    assert_string_equal(p->name, "One task");
    assert_int_equal(p->n_elements, 5);
    start = element(p, "start", BPMN_START_EVENT);
    assert_int_equal(p->start, bpmn_element_find(p, "start"));
    assert_string_equal(start->name, "Start");
    assert_int_equal(start->line, 6);
    assert_int_equal(start->n_incoming, 0);
    assert_int_equal(start->n_outgoing, 1);
    assert_task(p, "work", "work", "3");
    task = element(p, "work", BPMN_SERVICE_TASK);
    assert_int_equal(task->n_incoming, 1);
    assert_int_equal(task->n_outgoing, 1);
    assert_int_equal(task->n_headers, 0);
    assert_int_equal(task->n_inputs, 0);
    assert_int_equal(task->n_outputs, 0);
    assert_int_equal(task->n_boundaries, 0);
    end = element(p, "end", BPMN_END_EVENT);
    assert_int_equal(end->n_incoming, 1);
    assert_int_equal(end->n_outgoing, 0);
    assert_flow(p, "to-work", "start", "work");
    assert_flow(p, "to-end", "work", "end");
    assert_null(element(p, "to-end", BPMN_SEQUENCE_FLOW)->condition);
    assert_int_equal(bpmn_element_find(p, "start_di"), BPMN_NONE);
    bpmn_definitions_free(defs);
}

static void test_gateways(void **state)
{
    struct bpmn_definitions *defs = parse_file_ok("gateways.bpmn");
    const struct bpmn_process *p = &defs->processes[0];
    const struct bpmn_element *split, *merge, *fork, *join, *big;

    (void)state;
    assert_int_equal(defs->n_processes, 1);
    assert_string_equal(p->id, "gateways");
    assert_int_equal(p->n_elements, 23);
    assert_task(p, "prepare", "prepare", "5");
    assert_task(p, "big", "big", "3");
    assert_task(p, "small", "small", "3");
    assert_task(p, "left", "left", "3");
    assert_task(p, "right", "right", "3");

    split = element(p, "split", BPMN_EXCLUSIVE_GATEWAY);
    assert_string_equal(split->name, "How much?");
    assert_int_equal(split->n_incoming, 1);
    assert_int_equal(split->n_outgoing, 2);
    assert_int_equal(split->default_flow, bpmn_element_find(p, "f-small"));
    assert_flow(p, "f-big", "split", "big");
    assert_flow(p, "f-small", "split", "small");
    big = element(p, "f-big", BPMN_SEQUENCE_FLOW);
    assert_string_equal(big->condition, "amount > 100");
    assert_string_equal(big->name, "big");
    assert_null(element(p, "f-small", BPMN_SEQUENCE_FLOW)->condition);
    /* Outgoing flows are listed in document order. */
    assert_int_equal(split->outgoing[0], bpmn_element_find(p, "f-big"));
    assert_int_equal(split->outgoing[1], bpmn_element_find(p, "f-small"));

    merge = element(p, "merge", BPMN_EXCLUSIVE_GATEWAY);
    assert_int_equal(merge->n_incoming, 2);
    assert_int_equal(merge->n_outgoing, 1);
    assert_int_equal(merge->default_flow, BPMN_NONE);
    fork = element(p, "fork", BPMN_PARALLEL_GATEWAY);
    assert_int_equal(fork->n_incoming, 1);
    assert_int_equal(fork->n_outgoing, 2);
    assert_flow(p, "f-left", "fork", "left");
    assert_flow(p, "f-right", "fork", "right");
    join = element(p, "join", BPMN_PARALLEL_GATEWAY);
    assert_int_equal(join->n_incoming, 2);
    assert_int_equal(join->n_outgoing, 1);
    assert_flow(p, "f-end", "join", "end");
    assert_flow(p, "f-merge", "merge", "fork");
    assert_int_equal(p->start, bpmn_element_find(p, "start"));
    bpmn_definitions_free(defs);
}

static void test_error_boundary(void **state)
{
    struct bpmn_definitions *defs = parse_file_ok("error-boundary.bpmn");
    const struct bpmn_process *p = &defs->processes[0];
    const struct bpmn_element *task, *boundary;

    (void)state;
    assert_string_equal(p->id, "error-boundary");
    assert_task(p, "lookup", "lookup", "1");
    task = element(p, "lookup", BPMN_SERVICE_TASK);
    boundary = element(p, "not-found", BPMN_BOUNDARY_EVENT);
    assert_int_equal(task->n_boundaries, 1);
    assert_int_equal(task->boundaries[0], bpmn_element_find(p, "not-found"));
    assert_int_equal(task->n_outgoing, 1);
    assert_int_equal(boundary->attached_to, bpmn_element_find(p, "lookup"));
    assert_string_equal(boundary->error_code, "NOT_FOUND");
    assert_true(boundary->cancel_activity);
    assert_int_equal(boundary->n_incoming, 0);
    assert_int_equal(boundary->n_outgoing, 1);
    assert_flow(p, "f-not-found", "not-found", "end-not-found");
    assert_flow(p, "f-found", "lookup", "end-found");
    bpmn_definitions_free(defs);
}

static void test_io_mapping(void **state)
{
    struct bpmn_definitions *defs = parse_file_ok("io-mapping.bpmn");
    const struct bpmn_process *p = &defs->processes[0];
    const struct bpmn_element *t;

    (void)state;
    assert_task(p, "ship", "ship", "2");
    t = element(p, "ship", BPMN_SERVICE_TASK);
    assert_int_equal(t->n_inputs, 2);
    assert_string_equal(t->inputs[0].source, "order.id");
    assert_string_equal(t->inputs[0].target, "orderId");
    /* A static source becomes a FEEL string literal. */
    assert_string_equal(t->inputs[1].source, "\"express\"");
    assert_string_equal(t->inputs[1].target, "shipping.mode");
    assert_int_equal(t->n_outputs, 1);
    assert_string_equal(t->outputs[0].source, "trackingNumber");
    assert_string_equal(t->outputs[0].target, "order.tracking");
    assert_int_equal(t->n_headers, 2);
    assert_string_equal(t->headers[0].key, "carrier-url");
    assert_string_equal(t->headers[0].value, "https://example.com/track");
    assert_string_equal(t->headers[1].key, "priority");
    assert_string_equal(t->headers[1].value, "high");
    bpmn_definitions_free(defs);
}

/* ------------------------------------------------------------------------
 * The invalid samples
 * --------------------------------------------------------------------- */

static void test_invalid_files(void **state)
{
    static const struct {
        const char *file;
        int rv;
        const char *message; /* after "'<file>': " */
    } cases[] = {
        {"invalid-unsupported-element.bpmn", BPMN_E_INVALID,
         "unsupported element 'userTask' (id 'Task_1') at line 7"},
        {"invalid-missing-job-type.bpmn", BPMN_E_INVALID,
         "service task 'task' has no job type (zeebe:taskDefinition type) "
         "at line 8"},
        {"invalid-dangling-flow.bpmn", BPMN_E_INVALID,
         "sequence flow 'f2' references unknown targetRef 'nowhere' at "
         "line 13"},
        {"invalid-xxe.bpmn", BPMN_E_INVALID,
         "DOCTYPE at line 3: DTDs and entity declarations are not allowed "
         "in a BPMN resource"},
        {"invalid-entity-expansion.bpmn", BPMN_E_INVALID,
         "DOCTYPE at line 3: DTDs and entity declarations are not allowed "
         "in a BPMN resource"},
        {"invalid-not-well-formed.bpmn", BPMN_E_INVALID,
         "not well-formed XML at line 6: Opening and ending tag mismatch: "
         "startEvent line 5 and process"},
        {"invalid-two-starts.bpmn", BPMN_E_INVALID,
         "process 'two-starts' has more than one none start event: "
         "'start-a' at line 5 and 'start-b' at line 6"},
        {"invalid-missing-condition.bpmn", BPMN_E_INVALID,
         "sequence flow 'f-b' at line 12 leaves exclusive gateway 'gw' "
         "without a condition and is not its default flow"},
        {"invalid-default-flow.bpmn", BPMN_E_INVALID,
         "default flow 'f1' of exclusive gateway 'gw' at line 8 is not one "
         "of its outgoing sequence flows"},
        {"invalid-end-outgoing.bpmn", BPMN_E_INVALID,
         "end event 'end' at line 7 has an outgoing sequence flow 'f2'"},
        {"invalid-duplicate-id.bpmn", BPMN_E_INVALID,
         "duplicate id 'end' at line 8 (first used at line 7)"},
        {"invalid-boundary-target.bpmn", BPMN_E_INVALID,
         "boundary event 'catch' is attached to 'gw', which is not a "
         "service task, at line 11"},
        {"invalid-not-executable.bpmn", BPMN_E_INVALID,
         "no executable process: the definitions hold 1 process(es), none "
         "with isExecutable=\"true\""},
        {"invalid-legacy-condition.bpmn", BPMN_E_INVALID,
         "condition '${amount > 100}' of sequence flow 'f-a' at line 10 is "
         "not a FEEL expression (write it as '= expression')"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bpmn_definitions *defs = (struct bpmn_definitions *)&cases;
        char err[ERR_BYTES], want[ERR_BYTES];
        size_t len;
        char *xml = file_read(cases[i].file, &len);
        int rv = bpmn_parse(xml, len, cases[i].file, &defs, err, sizeof(err));

        free(xml);
        snprintf(want, sizeof(want), "'%s': %s", cases[i].file,
                 cases[i].message);
        if (rv != cases[i].rv || strcmp(err, want) != 0) {
            fail_msg("%s: got %d \"%s\", want %d \"%s\"", cases[i].file, rv,
                     err, cases[i].rv, want);
        }
        assert_null(defs);
    }
}

/* ------------------------------------------------------------------------
 * Inline documents: the remaining rules
 * --------------------------------------------------------------------- */

static void test_rules(void **state)
{
    (void)state;
    /* Events other than none start/end events. */
    parse_text_fails(
        doc("<bpmn:startEvent id=\"s\">\n"
            "<bpmn:timerEventDefinition/>\n</bpmn:startEvent>"),
        BPMN_E_INVALID,
        "unsupported event definition 'timerEventDefinition' on startEvent "
        "'s' at line 5 (only none start and end events are supported)");
    parse_text_fails(doc("<bpmn:endEvent id=\"e\"/>"), BPMN_E_INVALID,
                     "process 'p' has no none start event");
    /* Start events have no incoming flows. */
    parse_text_fails(
        doc("<bpmn:startEvent id=\"s\"/>\n<bpmn:endEvent id=\"e\"/>\n"
            "<bpmn:sequenceFlow id=\"f\" sourceRef=\"s\" targetRef=\"s\"/>"),
        BPMN_E_INVALID,
        "start event 's' at line 4 has an incoming sequence flow 'f'");
    /* Flows reference flow nodes. */
    parse_text_fails(
        doc("<bpmn:startEvent id=\"s\"/>\n"
            "<bpmn:sequenceFlow id=\"f\" sourceRef=\"s\" targetRef=\"f\"/>"),
        BPMN_E_INVALID,
        "sequence flow 'f' has targetRef 'f', which is not a flow node, at "
        "line 5");
    parse_text_fails(doc("<bpmn:startEvent id=\"s\"/>\n"
                         "<bpmn:sequenceFlow id=\"f\" sourceRef=\"s\"/>"),
                     BPMN_E_INVALID,
                     "sequence flow 'f' has no targetRef at line 5");
    /* Conditions only out of exclusive gateways. */
    parse_text_fails(doc(START_TO_TASK
                         "<bpmn:endEvent id=\"t\"/>\n"
                         "<bpmn:sequenceFlow id=\"f2\" sourceRef=\"s\" "
                         "targetRef=\"t\">\n"
                         "<bpmn:conditionExpression>=a</"
                         "bpmn:conditionExpression>\n"
                         "</bpmn:sequenceFlow>"),
                     BPMN_E_INVALID,
                     "sequence flow 'f2' at line 7 has a condition but does "
                     "not leave an exclusive gateway");
    parse_text_fails(doc("<bpmn:sequenceFlow id=\"f\" sourceRef=\"s\" "
                         "targetRef=\"t\">\n"
                         "<bpmn:conditionExpression> = </"
                         "bpmn:conditionExpression>\n"
                         "</bpmn:sequenceFlow>"),
                     BPMN_E_INVALID,
                     "condition '=' of sequence flow 'f' at line 5 is not a "
                     "FEEL expression (write it as '= expression')");
    /* Default flows that are not flows at all. */
    parse_text_fails(doc("<bpmn:startEvent id=\"s\"/>\n"
                         "<bpmn:exclusiveGateway id=\"g\" default=\"s\"/>"),
                     BPMN_E_INVALID,
                     "default flow 's' of exclusive gateway 'g' at line 5 is "
                     "not a sequence flow of the process");
    /* Ids. */
    parse_text_fails(doc("<bpmn:startEvent/>"), BPMN_E_INVALID,
                     "element 'startEvent' without an id at line 4");
    parse_text_fails(doc("<bpmn:startEvent id=\"p\"/>"), BPMN_E_INVALID,
                     "duplicate id 'p' at line 4 (also the process id)");
    /* Unsupported elements in a process and in its elements. */
    parse_text_fails(doc("<bpmn:subProcess id=\"sub\"/>"), BPMN_E_INVALID,
                     "unsupported element 'subProcess' (id 'sub') at line 4");
    parse_text_fails(
        doc("<bpmn:serviceTask id=\"t\">\n"
            "<bpmn:multiInstanceLoopCharacteristics/>\n</bpmn:serviceTask>"),
        BPMN_E_INVALID,
        "unsupported element 'multiInstanceLoopCharacteristics' in "
        "serviceTask 't' at line 5");
    parse_text_fails(doc("<bpmn:serviceTask id=\"t\">\n"
                         "<bpmn:extensionElements>\n"
                         "<zeebe:taskDefinition type=\"a\"/>\n"
                         "<zeebe:executionListeners/>\n"
                         "</bpmn:extensionElements>\n</bpmn:serviceTask>"),
                     BPMN_E_INVALID,
                     "unsupported element 'zeebe:executionListeners' in "
                     "serviceTask 't' at line 7");
    parse_text_fails(doc("<bpmn:endEvent id=\"e\">\n"
                         "<bpmn:extensionElements>\n"
                         "<zeebe:ioMapping/>\n"
                         "</bpmn:extensionElements>\n</bpmn:endEvent>"),
                     BPMN_E_INVALID,
                     "unsupported element 'zeebe:ioMapping' in endEvent 'e' "
                     "at line 6");
    /* Service task extensions. */
    parse_text_fails(doc("<bpmn:serviceTask id=\"t\">\n"
                         "<bpmn:extensionElements>\n"
                         "<zeebe:taskDefinition type=\"\"/>\n"
                         "</bpmn:extensionElements>\n</bpmn:serviceTask>"),
                     BPMN_E_INVALID,
                     "service task 't' has an empty job type "
                     "(zeebe:taskDefinition type) at line 6");
    parse_text_fails(doc("<bpmn:serviceTask id=\"t\">\n"
                         "<bpmn:extensionElements>\n"
                         "<zeebe:taskDefinition type=\"a\" retries=\"x\"/>\n"
                         "</bpmn:extensionElements>\n</bpmn:serviceTask>"),
                     BPMN_E_INVALID,
                     "invalid retries 'x' of service task 't' at line 6 (a "
                     "number 0..2147483647 or =expression)");
    parse_text_fails(doc("<bpmn:serviceTask id=\"t\">\n"
                         "<bpmn:extensionElements>\n"
                         "<zeebe:taskDefinition type=\"a\"/>\n"
                         "<zeebe:taskDefinition type=\"b\"/>\n"
                         "</bpmn:extensionElements>\n</bpmn:serviceTask>"),
                     BPMN_E_INVALID,
                     "service task 't' has more than one "
                     "zeebe:taskDefinition (line 7)");
    parse_text_fails(doc("<bpmn:serviceTask id=\"t\">\n"
                         "<bpmn:extensionElements>\n"
                         "<zeebe:taskDefinition type=\"a\"/>\n"
                         "<zeebe:ioMapping>\n"
                         "<zeebe:input source=\"=x\" target=\"a..b\"/>\n"
                         "</zeebe:ioMapping>\n"
                         "</bpmn:extensionElements>\n</bpmn:serviceTask>"),
                     BPMN_E_INVALID,
                     "invalid target 'a..b' of zeebe:input in service task "
                     "'t' at line 8 (a variable name or a.b.c path)");
    parse_text_fails(doc("<bpmn:serviceTask id=\"t\">\n"
                         "<bpmn:extensionElements>\n"
                         "<zeebe:taskDefinition type=\"a\"/>\n"
                         "<zeebe:taskHeaders><zeebe:header key=\"k\"/>"
                         "</zeebe:taskHeaders>\n"
                         "</bpmn:extensionElements>\n</bpmn:serviceTask>"),
                     BPMN_E_INVALID,
                     "zeebe:header 'k' without a value in service task 't' "
                     "at line 7");
    /* Boundary events. */
    parse_text_fails(doc(START_TO_TASK
                         "<bpmn:serviceTask id=\"t\"><bpmn:extensionElements>"
                         "<zeebe:taskDefinition type=\"a\"/>"
                         "</bpmn:extensionElements></bpmn:serviceTask>\n"
                         "<bpmn:boundaryEvent id=\"b\" attachedToRef=\"t\" "
                         "cancelActivity=\"false\">\n"
                         "<bpmn:errorEventDefinition/></bpmn:boundaryEvent>"),
                     BPMN_E_INVALID,
                     "unsupported cancelActivity 'false' of boundary event "
                     "'b' at line 7 (only interrupting boundary events are "
                     "supported)");
    parse_text_fails(doc(START_TO_TASK
                         "<bpmn:serviceTask id=\"t\"><bpmn:extensionElements>"
                         "<zeebe:taskDefinition type=\"a\"/>"
                         "</bpmn:extensionElements></bpmn:serviceTask>\n"
                         "<bpmn:boundaryEvent id=\"b\" attachedToRef=\"t\">\n"
                         "<bpmn:errorEventDefinition errorRef=\"nope\"/>"
                         "</bpmn:boundaryEvent>"),
                     BPMN_E_INVALID,
                     "errorRef 'nope' of boundary event 'b' at line 8 names "
                     "no <error> of the definitions");
    parse_text_fails(doc(START_TO_TASK
                         "<bpmn:serviceTask id=\"t\"><bpmn:extensionElements>"
                         "<zeebe:taskDefinition type=\"a\"/>"
                         "</bpmn:extensionElements></bpmn:serviceTask>\n"
                         "<bpmn:boundaryEvent id=\"b\" attachedToRef=\"t\">\n"
                         "<bpmn:timerEventDefinition/></bpmn:boundaryEvent>"),
                     BPMN_E_INVALID,
                     "unsupported event definition 'timerEventDefinition' on "
                     "boundaryEvent 'b' at line 8 (only one "
                     "errorEventDefinition is supported)");
    parse_text_fails(doc(START_TO_TASK
                         "<bpmn:serviceTask id=\"t\"><bpmn:extensionElements>"
                         "<zeebe:taskDefinition type=\"a\"/>"
                         "</bpmn:extensionElements></bpmn:serviceTask>\n"
                         "<bpmn:boundaryEvent id=\"b\" attachedToRef=\"t\">\n"
                         "<bpmn:errorEventDefinition/></bpmn:boundaryEvent>"),
                     BPMN_E_INVALID,
                     "boundary event 'b' at line 7 has no outgoing sequence "
                     "flow");
    parse_text_fails(doc(START_TO_TASK
                         "<bpmn:serviceTask id=\"t\"><bpmn:extensionElements>"
                         "<zeebe:taskDefinition type=\"a\"/>"
                         "</bpmn:extensionElements></bpmn:serviceTask>\n"
                         "<bpmn:boundaryEvent id=\"b\" attachedToRef=\"x\">\n"
                         "<bpmn:errorEventDefinition/></bpmn:boundaryEvent>"),
                     BPMN_E_INVALID,
                     "boundary event 'b' is attached to unknown element 'x' "
                     "at line 7");
}

/* Documents that must parse: namespaces, legacy and optional forms. */
static void test_accepted_forms(void **state)
{
    struct bpmn_definitions *defs = NULL;
    const struct bpmn_process *p;
    const struct bpmn_element *e;
    char err[ERR_BYTES] = "";

    (void)state;
    /* Odd prefixes, legacy zeebe:type, CDATA condition, catch-all error
     * boundary, no isExecutable attribute, a non-executable process
     * skipped, lanes and text annotations ignored. */
    assert_int_equal(
        parse_text(
            "<?xml version=\"1.0\"?>\n"
            "<b:definitions xmlns:b=\"http://www.omg.org/spec/BPMN/20100524/"
            "MODEL\" xmlns:zb=\"http://camunda.org/schema/zeebe/1.0\" "
            "xmlns:other=\"urn:other\">\n"
            "<b:process id=\"draft\" isExecutable=\"false\"><b:userTask "
            "id=\"u\"/></b:process>\n"
            "<b:process id=\"p2\" name=\"Two\">\n"
            "<b:laneSet id=\"ls\"><b:lane id=\"l\"/></b:laneSet>\n"
            "<b:textAnnotation id=\"ta\"><b:text>hi</b:text>"
            "</b:textAnnotation>\n"
            "<b:startEvent id=\"s\"><b:extensionElements><other:x/>"
            "</b:extensionElements></b:startEvent>\n"
            "<b:sequenceFlow id=\"f1\" sourceRef=\"s\" targetRef=\"g\"/>\n"
            "<b:exclusiveGateway id=\"g\"/>\n"
            "<b:sequenceFlow id=\"f2\" sourceRef=\"g\" targetRef=\"t\">"
            "<b:conditionExpression><![CDATA[= a < 1 && true]]>"
            "</b:conditionExpression></b:sequenceFlow>\n"
            "<b:serviceTask id=\"t\"><b:extensionElements>"
            "<zb:taskDefinition zb:type=\"legacy\" zb:retries=\"0\"/>"
            "<other:y/></b:extensionElements></b:serviceTask>\n"
            "<b:boundaryEvent id=\"b\" attachedToRef=\"t\" "
            "cancelActivity=\"true\"><b:errorEventDefinition/>"
            "</b:boundaryEvent>\n"
            "<b:sequenceFlow id=\"f3\" sourceRef=\"b\" targetRef=\"e\"/>\n"
            "<b:endEvent id=\"e\"/>\n"
            "</b:process>\n"
            "<b:error id=\"unused\"/>\n"
            "</b:definitions>\n",
            &defs, err),
        0);
    assert_int_equal(defs->n_processes, 1);
    p = &defs->processes[0];
    assert_string_equal(p->id, "p2");
    assert_string_equal(p->name, "Two");
    assert_int_equal(p->n_elements, 8);
    e = element(p, "f2", BPMN_SEQUENCE_FLOW);
    assert_string_equal(e->condition, "a < 1 && true");
    assert_task(p, "t", "legacy", "0");
    e = element(p, "b", BPMN_BOUNDARY_EVENT);
    assert_null(e->error_code);
    assert_true(e->cancel_activity);
    assert_null(element(p, "g", BPMN_EXCLUSIVE_GATEWAY)->name);
    assert_int_equal(bpmn_element_find(p, "ta"), BPMN_NONE);
    assert_int_equal(bpmn_element_find(p, NULL), BPMN_NONE);
    bpmn_definitions_free(defs);

    /* Two executable processes, in order; static sources escaped. */
    defs = NULL;
    assert_int_equal(
        parse_text("<definitions xmlns=\"http://www.omg.org/spec/BPMN/"
                   "20100524/MODEL\" xmlns:zeebe=\"http://camunda.org/schema/"
                   "zeebe/1.0\">"
                   "<process id=\"a\" isExecutable=\"true\"><startEvent "
                   "id=\"s\"/></process>"
                   "<process id=\"b\" isExecutable=\"true\"><startEvent "
                   "id=\"s\"/><serviceTask id=\"t\"><extensionElements>"
                   "<zeebe:taskDefinition type=\"= &quot;ship-&quot; + "
                   "carrier \" retries=\" =maxRetries\"/><zeebe:ioMapping>"
                   "<zeebe:input source=\"say &quot;hi&quot;\\&#10;\" "
                   "target=\"m\"/><zeebe:output target=\"n\"/>"
                   "</zeebe:ioMapping></extensionElements></serviceTask>"
                   "</process></definitions>",
                   &defs, err),
        0);
    assert_int_equal(defs->n_processes, 2);
    assert_string_equal(defs->processes[0].id, "a");
    assert_string_equal(defs->processes[1].id, "b");
    assert_int_equal(defs->processes[0].n_elements, 1);
    e = element(&defs->processes[1], "t", BPMN_SERVICE_TASK);
    assert_true(e->job_type.is_expr);
    assert_string_equal(e->job_type.text, "\"ship-\" + carrier");
    assert_true(e->job_retries.is_expr);
    assert_string_equal(e->job_retries.text, "maxRetries");
    assert_string_equal(e->inputs[0].source, "\"say \\\"hi\\\"\\\\\\n\"");
    assert_string_equal(e->outputs[0].source, "null");
    bpmn_definitions_free(defs);

    parse_text_fails("<definitions xmlns=\"http://www.omg.org/spec/BPMN/"
                     "20100524/MODEL\"><process id=\"a\"><startEvent "
                     "id=\"s\"/></process>\n<process id=\"a\"><startEvent "
                     "id=\"s\"/></process></definitions>",
                     BPMN_E_INVALID, "duplicate process id 'a' at line 2");
    parse_text_fails("<definitions xmlns=\"http://www.omg.org/spec/BPMN/"
                     "20100524/MODEL\"><process id=\"a\"><startEvent "
                     "id=\"s\"/><serviceTask id=\"t\"><extensionElements>"
                     "<taskDefinition xmlns=\"http://camunda.org/schema/zeebe/"
                     "1.0\" type=\"a\"/></extensionElements></serviceTask>\n"
                     "<boundaryEvent id=\"b\" attachedToRef=\"t\">"
                     "<errorEventDefinition errorRef=\"e\"/></boundaryEvent>"
                     "</process><error id=\"e\" errorCode=\"\"/>"
                     "</definitions>",
                     BPMN_E_INVALID,
                     "error 'e' caught by boundary event 'b' at line 2 has no "
                     "errorCode");
    parse_text_fails("<definitions xmlns=\"http://www.omg.org/spec/BPMN/"
                     "20100524/MODEL\"><error id=\"e\"/>\n<error id=\"x\"/>"
                     "<error id=\"e\" errorCode=\"E\"/></definitions>",
                     BPMN_E_INVALID,
                     "duplicate error id 'e' at line 2 (first used at line "
                     "1)");
    parse_text_fails("<definitions xmlns=\"http://www.omg.org/spec/BPMN/"
                     "20100524/MODEL\"><process id=\"a\" isExecutable=\"yes\">"
                     "</process></definitions>",
                     BPMN_E_INVALID,
                     "invalid isExecutable 'yes' of the process at line 1 "
                     "(true or false)");
}

/* ------------------------------------------------------------------------
 * Hostile and malformed input
 * --------------------------------------------------------------------- */

static void test_not_bpmn(void **state)
{
    (void)state;
    parse_text_fails("", BPMN_E_INVALID, "empty BPMN resource");
    parse_text_fails("<definitions/>", BPMN_E_INVALID,
                     "root element is 'definitions' at line 1, expected "
                     "'definitions' in namespace "
                     "http://www.omg.org/spec/BPMN/20100524/MODEL");
    parse_text_fails("{\"json\": true}", BPMN_E_INVALID,
                     "not well-formed XML at line 1: Start tag expected, '<' "
                     "not found");
    parse_text_fails("<a:definitions/>", BPMN_E_INVALID,
                     "not well-formed XML at line 1: Namespace prefix a on "
                     "definitions is not defined");
    parse_text_fails("<?xml version=\"1.0\"?>\n<x>&undeclared;</x>",
                     BPMN_E_INVALID,
                     "not well-formed XML at line 2: Entity 'undeclared' not "
                     "defined");
    /* An external DTD is refused as well, before anything is fetched. */
    parse_text_fails("<!DOCTYPE definitions SYSTEM "
                     "\"http://127.0.0.1:1/x.dtd\">\n<definitions/>",
                     BPMN_E_INVALID,
                     "DOCTYPE at line 1: DTDs and entity declarations are not "
                     "allowed in a BPMN resource");
}

/* libxml2 must print nothing, whatever the input. */
static void test_silent(void **state)
{
    static const char *const inputs[] = {
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<a/>",
        "<?xml version=\"1.0\" encoding=\"no-such-charset\"?>\n<a/>",
        "<?xml version=\"1.0\" encoding=\"ISO-2022-JP\"?>\n<a>\x1b$B\xff</a>",
        "<a>\xc3\x28 invalid UTF-8</a>",
        "<a xmlns:b=\"rel/uri\"><b:c/></a>",
        "<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><a>&e;</a>",
        "\xfe\xff\x00<\x00a",
    };
    char path[] = "/tmp/test-bpmn-stderr-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    struct stat st;

    (void)state;
    assert_true(fd >= 0);
    assert_true(saved >= 0);
    fflush(stderr);
    assert_int_equal(dup2(fd, 2), 2);
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        struct bpmn_definitions *defs = NULL;
        char err[ERR_BYTES] = "";
        int rv = bpmn_parse(inputs[i], strlen(inputs[i]) + (i == 6 ? 1 : 0),
                            "x", &defs, err, sizeof(err));
        if (rv == 0 || err[0] == '\0') {
            dup2(saved, 2);
            fail_msg("input %zu: %d '%s'", i, rv, err);
        }
        /* Nothing of the file an entity points at leaks into messages. */
        assert_null(strstr(err, "root:"));
    }
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    unlink(path);
    assert_int_equal(st.st_size, 0);
}

static void test_limits(void **state)
{
    struct bpmn_definitions *defs = NULL;
    char err[ERR_BYTES] = "";
    size_t cap = (size_t)BPMN_ELEMENTS_MAX * 48 + 4096, len;
    char *big = malloc(BPMN_RESOURCE_BYTES_MAX + 1);

    (void)state;
    assert_non_null(big);
    /* Size: refused before libxml2 sees a byte. */
    memset(big, ' ', BPMN_RESOURCE_BYTES_MAX + 1);
    assert_int_equal(bpmn_parse(big, BPMN_RESOURCE_BYTES_MAX + 1, "big", &defs,
                                err, sizeof(err)),
                     BPMN_E_LIMIT);
    assert_string_equal(err, "'big': BPMN resource of 4194305 bytes is "
                             "larger than the limit of 4194304 bytes");
    assert_null(defs);

    /* Exactly BPMN_ELEMENTS_MAX elements parse; one more does not. */
    for (int extra = 0; extra <= 1; extra++) {
        len = (size_t)snprintf(big, cap,
                               "<definitions xmlns=\"http://www.omg.org/"
                               "spec/BPMN/20100524/MODEL\"><process "
                               "id=\"p\"><startEvent id=\"s\"/>\n");
        for (int i = 1; i < BPMN_ELEMENTS_MAX + extra; i++) {
            len += (size_t)snprintf(big + len, cap - len,
                                    "<endEvent id=\"e%d\"/>\n", i);
        }
        len +=
            (size_t)snprintf(big + len, cap - len, "</process></definitions>");
        assert_true(len < cap);
        defs = NULL;
        if (extra == 0) {
            assert_int_equal(
                bpmn_parse(big, len, NULL, &defs, err, sizeof(err)), 0);
            assert_int_equal(defs->processes[0].n_elements, BPMN_ELEMENTS_MAX);
            assert_int_equal(bpmn_element_find(&defs->processes[0], "e9999"),
                             9999);
            bpmn_definitions_free(defs);
        } else {
            assert_int_equal(
                bpmn_parse(big, len, NULL, &defs, err, sizeof(err)),
                BPMN_E_LIMIT);
            assert_string_equal(err, "process 'p' has more than 10000 "
                                     "elements (line 10001)");
        }
    }

    /* Lines past 65535 are reported exactly. */
    len = (size_t)snprintf(big, cap,
                           "<definitions xmlns=\"http://www.omg.org/spec/"
                           "BPMN/20100524/MODEL\"><process id=\"p\">");
    memset(big + len, '\n', 70000);
    len += 70000;
    len += (size_t)snprintf(big + len, cap - len,
                            "<userTask id=\"u\"/></process></definitions>");
    assert_int_equal(bpmn_parse(big, len, NULL, &defs, err, sizeof(err)),
                     BPMN_E_INVALID);
    assert_string_equal(err, "unsupported element 'userTask' (id 'u') at line "
                             "70001");

    /* XML elements nested too deeply. */
    len = 0;
    for (int i = 0; i < 100; i++) {
        len += (size_t)snprintf(big + len, cap - len, "<a>");
    }
    assert_int_equal(bpmn_parse(big, len, NULL, &defs, err, sizeof(err)),
                     BPMN_E_LIMIT);
    assert_string_equal(err, "XML elements nested too deeply at line 1 (at "
                             "most 200000 elements, nested at most 64 deep)");

    /* Too many XML elements in all (in a diagram, say). */
    len = (size_t)snprintf(big, BPMN_RESOURCE_BYTES_MAX, "<a>\n");
    for (int i = 0; i < 200001; i++) {
        memcpy(big + len, "<b/>", 4);
        len += 4;
    }
    assert_int_equal(bpmn_parse(big, len, NULL, &defs, err, sizeof(err)),
                     BPMN_E_LIMIT);
    assert_string_equal(err, "more XML elements than allowed at line 2 (at "
                             "most 200000 elements, nested at most 64 deep)");
    free(big);
}

/* Error buffers: truncated but terminated, or absent. */
static void test_error_buffer(void **state)
{
    struct bpmn_definitions *defs = NULL;
    char small[12];
    const char *bad = "<x";

    (void)state;
    memset(small, 'z', sizeof(small));
    assert_int_equal(
        bpmn_parse(bad, strlen(bad), "name.bpmn", &defs, small, sizeof(small)),
        BPMN_E_INVALID);
    assert_string_equal(small, "'name.bpmn'");
    assert_int_equal(bpmn_parse(bad, strlen(bad), "name.bpmn", &defs, NULL, 0),
                     BPMN_E_INVALID);
    assert_int_equal(bpmn_parse(bad, strlen(bad), NULL, &defs, small, 1),
                     BPMN_E_INVALID);
    assert_string_equal(small, "");
    assert_int_equal(bpmn_parse(NULL, 0, NULL, &defs, small, sizeof(small)),
                     BPMN_E_INVALID);
    assert_null(defs);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(bpmn_element_type_name(BPMN_PROCESS), "PROCESS");
    assert_string_equal(bpmn_element_type_name(BPMN_START_EVENT),
                        "START_EVENT");
    assert_string_equal(bpmn_element_type_name(BPMN_END_EVENT), "END_EVENT");
    assert_string_equal(bpmn_element_type_name(BPMN_SERVICE_TASK),
                        "SERVICE_TASK");
    assert_string_equal(bpmn_element_type_name(BPMN_EXCLUSIVE_GATEWAY),
                        "EXCLUSIVE_GATEWAY");
    assert_string_equal(bpmn_element_type_name(BPMN_PARALLEL_GATEWAY),
                        "PARALLEL_GATEWAY");
    assert_string_equal(bpmn_element_type_name(BPMN_BOUNDARY_EVENT),
                        "BOUNDARY_EVENT");
    assert_string_equal(bpmn_element_type_name(BPMN_SEQUENCE_FLOW),
                        "SEQUENCE_FLOW");
    bpmn_definitions_free(NULL);
}

/* ------------------------------------------------------------------------
 * Two threads at once
 * --------------------------------------------------------------------- */

#define THREAD_ROUNDS 40

struct thread_arg {
    const char *xml;
    size_t len;
    const char *bad;
    int failures;
};

static void *thread_main(void *data)
{
    struct thread_arg *a = data;

    for (int i = 0; i < THREAD_ROUNDS; i++) {
        struct bpmn_definitions *defs = NULL;
        char err[ERR_BYTES] = "";

        if (bpmn_parse(a->xml, a->len, NULL, &defs, err, sizeof(err)) != 0 ||
            defs->processes[0].n_elements != 23) {
            a->failures++;
        }
        bpmn_definitions_free(defs);
        defs = NULL;
        if (bpmn_parse(a->bad, strlen(a->bad), NULL, &defs, err, sizeof(err)) !=
                BPMN_E_INVALID ||
            strstr(err, "Opening and ending tag mismatch") == NULL) {
            a->failures++;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct thread_arg args[2];
    pthread_t threads[2];
    size_t len;
    char *xml = file_read("gateways.bpmn", &len);

    (void)state;
    for (int i = 0; i < 2; i++) {
        args[i] = (struct thread_arg){xml, len, "<a>\n<b></a>", 0};
        assert_int_equal(
            pthread_create(&threads[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
    free(xml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_task),
        cmocka_unit_test(test_gateways),
        cmocka_unit_test(test_error_boundary),
        cmocka_unit_test(test_io_mapping),
        cmocka_unit_test(test_invalid_files),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_accepted_forms),
        cmocka_unit_test(test_not_bpmn),
        cmocka_unit_test(test_silent),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_error_buffer),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
