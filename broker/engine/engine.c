/* engine.c: being written (see engine.h). */
typedef int tandem_engine_unused;
