/* impure.c: a deliberately impure "raft" file for the lint self-test.
 *
 * tests/lint/meson.build runs check_raft_purity.py on this directory and
 * expects it to FAIL (should_fail: true). Every line marked VIOLATION must
 * be reported; the file is never compiled.
 */
#include <stdint.h>
#include <stdio.h>    /* VIOLATION: stdio.h is not on the allow-list */
#include <time.h>     /* VIOLATION */
#include <uv.h>       /* VIOLATION */
#include "missing.h"  /* VIOLATION: not a header of this directory */
#include "impure.h"

static uint64_t impure_seed(void)
{
    return (uint64_t)time(NULL) ^ (uint64_t)rand(); /* VIOLATION x2 */
}

static void *impure_alloc(size_t size)
{
    void *p = malloc(size); /* VIOLATION: only heap.c may allocate */
    printf("allocated %zu\n", size); /* VIOLATION */
    return p;
}

static int impure_io(void)
{
    int fd = open("/tmp/x", 0);             /* VIOLATION */
    int s = socket(2, 1, 0);                /* VIOLATION */
    pthread_mutex_lock(NULL);               /* VIOLATION */
    free(impure_alloc(1));                  /* VIOLATION */
    return fd + s + (int)impure_seed();
}
