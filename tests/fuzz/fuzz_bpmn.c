/* fuzz_bpmn.c: fuzz target for broker/engine/bpmn.c (bpmn_parse).
 *
 * Input byte 0 picks the mode. When it is 0 modulo 4 (as for the sample
 * models in the corpus, which start with '<'), the whole input is the BPMN
 * resource as a deployment would carry it: arbitrary bytes, not
 * NUL-terminated (the driver's buffer is exactly size bytes). Otherwise
 * the remaining bytes drive a small generator (fuzz_generate) that writes
 * a BPMN document from fragments: flow nodes and flows with ids from small
 * pools, so that references dangle, collide and form every shape of
 * graph, and (when byte 0 is 3 modulo 4) raw bytes seeded between them;
 * so random inputs reach the validator, not just the XML parser. Every
 * parse either fails with a bpmn_errno, no model and a message, or
 * returns a model whose every index, array and string is consistent: the
 * checks below walk it all (under ASan any stray pointer shows). Inputs
 * whose size is a multiple of 7 are parsed a second time with a 16-byte
 * error buffer, which must hold a truncated, terminated message and give
 * the same result. Any crash, sanitizer report or failed check aborts. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "broker/engine/bpmn.h"
#include "fuzz.h"

static void fuzz_check(int cond)
{
    if (!cond) {
        abort();
    }
}

static void fuzz_indices(const struct bpmn_process *p, const uint32_t *list,
                         size_t n, enum bpmn_element_type type)
{
    fuzz_check(n == 0 || list != NULL);
    for (size_t i = 0; i < n; i++) {
        fuzz_check(list[i] < p->n_elements);
        fuzz_check(p->elements[list[i]].type == type);
    }
}

static void fuzz_mappings(const struct bpmn_mapping *m, size_t n)
{
    fuzz_check(n == 0 || m != NULL);
    for (size_t i = 0; i < n; i++) {
        fuzz_check(m[i].source != NULL && m[i].source[0] != '\0');
        fuzz_check(m[i].target != NULL && m[i].target[0] != '\0');
    }
}

static void fuzz_element(const struct bpmn_process *p, uint32_t index)
{
    const struct bpmn_element *e = &p->elements[index];

    fuzz_check(e->id != NULL && e->id[0] != '\0');
    fuzz_check(bpmn_element_find(p, e->id) == index);
    fuzz_check(strcmp(bpmn_element_type_name(e->type), "UNKNOWN") != 0);
    fuzz_indices(p, e->incoming, e->n_incoming, BPMN_SEQUENCE_FLOW);
    fuzz_indices(p, e->outgoing, e->n_outgoing, BPMN_SEQUENCE_FLOW);
    for (size_t i = 0; i < e->n_incoming; i++) {
        fuzz_check(p->elements[e->incoming[i]].target == index);
    }
    for (size_t i = 0; i < e->n_outgoing; i++) {
        fuzz_check(p->elements[e->outgoing[i]].source == index);
    }
    switch (e->type) {
    case BPMN_SEQUENCE_FLOW:
        fuzz_check(e->source < p->n_elements);
        fuzz_check(e->target < p->n_elements);
        fuzz_check(e->condition == NULL || e->condition[0] != '\0');
        break;
    case BPMN_START_EVENT:
        fuzz_check(index == p->start);
        fuzz_check(e->n_incoming == 0);
        break;
    case BPMN_END_EVENT:
        fuzz_check(e->n_outgoing == 0);
        break;
    case BPMN_SERVICE_TASK:
        fuzz_check(e->job_type.text != NULL && e->job_type.text[0] != '\0');
        fuzz_check(e->job_retries.text != NULL);
        fuzz_check(e->n_headers == 0 || e->headers != NULL);
        for (size_t i = 0; i < e->n_headers; i++) {
            fuzz_check(e->headers[i].key != NULL);
            fuzz_check(e->headers[i].value != NULL);
        }
        fuzz_mappings(e->inputs, e->n_inputs);
        fuzz_mappings(e->outputs, e->n_outputs);
        fuzz_indices(p, e->boundaries, e->n_boundaries, BPMN_BOUNDARY_EVENT);
        for (size_t i = 0; i < e->n_boundaries; i++) {
            fuzz_check(p->elements[e->boundaries[i]].attached_to == index);
        }
        break;
    case BPMN_EXCLUSIVE_GATEWAY:
        if (e->default_flow != BPMN_NONE) {
            fuzz_check(e->default_flow < p->n_elements);
            fuzz_check(p->elements[e->default_flow].source == index);
        }
        break;
    case BPMN_BOUNDARY_EVENT:
        fuzz_check(e->attached_to < p->n_elements);
        fuzz_check(p->elements[e->attached_to].type == BPMN_SERVICE_TASK);
        fuzz_check(e->cancel_activity);
        fuzz_check(e->n_outgoing > 0);
        break;
    case BPMN_PARALLEL_GATEWAY:
    case BPMN_PROCESS:
        break;
    }
}

static void fuzz_model(const struct bpmn_definitions *defs)
{
    fuzz_check(defs->n_processes >= 1);
    for (size_t i = 0; i < defs->n_processes; i++) {
        const struct bpmn_process *p = &defs->processes[i];
        fuzz_check(p->id != NULL && p->id[0] != '\0');
        fuzz_check(p->n_elements >= 1);
        fuzz_check(p->n_elements <= BPMN_ELEMENTS_MAX);
        fuzz_check(p->start < p->n_elements);
        fuzz_check(p->elements[p->start].type == BPMN_START_EVENT);
        for (size_t k = 0; k < p->n_elements; k++) {
            fuzz_element(p, (uint32_t)k);
        }
    }
}

/* Parses one resource and checks the outcome. */
static void fuzz_parse(const uint8_t *data, size_t size)
{
    struct bpmn_definitions *defs = (struct bpmn_definitions *)1;
    char err[512], small[16];
    int rv;

    err[0] = 'x';
    rv = bpmn_parse((const char *)data, size, "fuzz.bpmn", &defs, err,
                    sizeof(err));
    if (rv == 0) {
        fuzz_check(defs != NULL);
        fuzz_model(defs);
        bpmn_definitions_free(defs);
    } else {
        fuzz_check(rv == BPMN_E_INVALID || rv == BPMN_E_NOMEM ||
                   rv == BPMN_E_LIMIT);
        fuzz_check(defs == NULL);
        fuzz_check(memchr(err, '\0', sizeof(err)) != NULL);
        fuzz_check(strncmp(err, "'fuzz.bpmn': ", 13) == 0);
        fuzz_check(strlen(err) > 13);
    }
    if (size % 7 == 0) {
        struct bpmn_definitions *again = NULL;
        int rv2 = bpmn_parse((const char *)data, size, "fuzz.bpmn", &again,
                             small, sizeof(small));
        fuzz_check(rv2 == rv);
        fuzz_check((again != NULL) == (rv == 0));
        fuzz_check(memchr(small, '\0', sizeof(small)) != NULL);
        bpmn_definitions_free(again);
    }
}

/* ------------------------------------------------------------------------
 * The generator
 * --------------------------------------------------------------------- */

#define GEN_BYTES_MAX 16384
#define GEN_IDS 8 /* node ids n0..n7, flow ids f0..f7 */

struct gen {
    char buf[GEN_BYTES_MAX];
    size_t len;
    const uint8_t *in;
    size_t in_len;
    bool raw; /* raw input bytes may be seeded between fragments */
};

static unsigned gen_byte(struct gen *g)
{
    unsigned b = 0;

    if (g->in_len > 0) {
        b = *g->in++;
        g->in_len--;
    }
    return b;
}

static void gen_put(struct gen *g, const char *s)
{
    size_t n = strlen(s);

    if (g->len + n < sizeof(g->buf)) {
        memcpy(g->buf + g->len, s, n);
        g->len += n;
    }
}

static void gen_id(struct gen *g, char kind)
{
    char id[4] = {kind, (char)('0' + gen_byte(g) % GEN_IDS), '"', '\0'};

    gen_put(g, id);
}

/* Up to 8 raw input bytes, as they are. */
static void gen_raw(struct gen *g)
{
    unsigned n = gen_byte(g) % 8;

    for (unsigned i = 0; i < n && g->in_len > 0; i++) {
        char c[2] = {(char)gen_byte(g), '\0'};
        if (c[0] != '\0') {
            gen_put(g, c);
        }
    }
}

static void gen_task(struct gen *g)
{
    static const char *const types[] = {
        " type=\"work\"",         " type=\"= kind\"", " type=\"\"", "",
        " zeebe:type=\"legacy\"", " type=\"=\"",
    };
    static const char *const retries[] = {
        "",
        " retries=\"5\"",
        " retries=\"=r\"",
        " retries=\"-1\"",
        " retries=\"99999999999\"",
    };
    unsigned flags = gen_byte(g);

    gen_put(g, "<serviceTask id=\"");
    gen_id(g, 'n');
    gen_put(g, "><extensionElements>");
    if ((flags & 0xe1) != 0xe1) { /* mostly valid: missing 1 in 16 */
        unsigned type = gen_byte(g) % 32, retry = gen_byte(g) % 32;
        gen_put(g, "<zeebe:taskDefinition");
        gen_put(g, types[type < 6 ? type : 0]);
        gen_put(g, retries[retry < 5 ? retry : 0]);
        gen_put(g, "/>");
    }
    if (flags & 2) {
        gen_put(g, "<zeebe:ioMapping><zeebe:input source=\"=a\" "
                   "target=\"b.c\"/><zeebe:output source=\"x&quot;\" "
                   "target=\"");
        gen_put(g, (flags & 0x24) == 0x24 ? "1bad" : "out");
        gen_put(g, "\"/></zeebe:ioMapping>");
    }
    if (flags & 8) {
        gen_put(g, "<zeebe:taskHeaders><zeebe:header key=\"k\" "
                   "value=\"v\"/></zeebe:taskHeaders>");
    }
    if (flags & 16) {
        gen_put(g, "<other:x xmlns:other=\"urn:x\"/>");
    }
    gen_put(g, "</extensionElements></serviceTask>");
}

static void gen_flow(struct gen *g)
{
    static const char *const conditions[] = {
        "= amount > 100",
        "${legacy}",
        "=",
        " = x ",
    };
    unsigned flags = gen_byte(g), condition;

    gen_put(g, "<sequenceFlow id=\"");
    gen_id(g, 'f');
    gen_put(g, " sourceRef=\"");
    gen_id(g, flags & 1 ? 'f' : 'n');
    gen_put(g, " targetRef=\"");
    gen_id(g, 'n');
    if (flags & 2) {
        gen_put(g, "><conditionExpression>");
        condition = gen_byte(g) % 8;
        gen_put(g, conditions[condition < 4 ? condition : 0]);
        gen_put(g, "</conditionExpression></sequenceFlow>");
    } else {
        gen_put(g, "/>");
    }
}

/* Writes a document from the input bytes into g->buf. */
static void fuzz_generate(struct gen *g)
{
    static const char *const errors[] = {
        "/>",
        " errorRef=\"e0\"/>",
        " errorRef=\"e1\"/>",
    };
    unsigned steps_max = 1 + gen_byte(g) % 16;

    gen_put(g, "<definitions xmlns=\"http://www.omg.org/spec/BPMN/20100524/"
               "MODEL\" xmlns:zeebe=\"http://camunda.org/schema/zeebe/1.0\">"
               "<error id=\"e0\" errorCode=\"NOT_FOUND\"/><error id=\"e1\"/>"
               "<process id=\"p\" isExecutable=\"true\">");
    for (unsigned steps = 0; g->in_len > 0 && steps < steps_max; steps++) {
        switch (gen_byte(g) % 10) {
        case 0:
            gen_put(g, "<startEvent id=\"");
            gen_id(g, 'n');
            gen_put(g, "/>");
            break;
        case 1:
            gen_put(g, "<endEvent id=\"");
            gen_id(g, 'n');
            gen_put(g, "/>");
            break;
        case 2:
        case 3:
            gen_task(g);
            break;
        case 4:
            gen_put(g, "<exclusiveGateway id=\"");
            gen_id(g, 'n');
            if (gen_byte(g) & 1) {
                gen_put(g, " default=\"");
                gen_id(g, 'f');
            }
            gen_put(g, "/>");
            break;
        case 5:
            gen_put(g, "<parallelGateway id=\"");
            gen_id(g, 'n');
            gen_put(g, "/>");
            break;
        case 6:
            gen_put(g, "<boundaryEvent id=\"");
            gen_id(g, 'n');
            gen_put(g, " attachedToRef=\"");
            gen_id(g, 'n');
            gen_put(g, "><errorEventDefinition");
            gen_put(g, errors[gen_byte(g) % 3]);
            gen_put(g, "</boundaryEvent>");
            break;
        case 7:
        case 8:
            gen_flow(g);
            break;
        default:
            if (g->raw) {
                gen_raw(g);
            }
            break;
        }
    }
    gen_put(g, "</process></definitions>");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct gen g;

    if (size == 0 || data[0] % 4 == 0) {
        fuzz_parse(data, size);
        return 0;
    }
    g.len = 0;
    g.in = data + 1;
    g.in_len = size - 1;
    g.raw = data[0] % 4 == 3;
    fuzz_generate(&g);
    fuzz_parse((const uint8_t *)g.buf, g.len);
    return 0;
}
