/* bpmn.c: being written (see bpmn.h). */
typedef int tandem_bpmn_unused;
