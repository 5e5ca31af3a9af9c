/* impure.h: header of the deliberately impure lint fixture (see impure.c).
 * Its include of <pthread.h> must be reported. */
#ifndef IMPURE_H
#define IMPURE_H
#include <pthread.h> /* VIOLATION */
#define IMPURE_LOG(msg) fprintf(stderr, "%s\n", msg) /* VIOLATION */
#endif
