/* feel.c: being written (see feel.h). */
typedef int tandem_feel_unused;
