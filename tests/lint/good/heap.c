/* heap.c: lint fixture standing in for raft/heap.c, the one file allowed
 * to call the libc allocator. check_raft_purity.py must accept this
 * directory (the "lint-checker-accepts" test); it is never compiled. */
#include <stdlib.h>

#include "pure.h"

void *pure_heap_malloc(size_t size)
{
    return malloc(size);
}

void pure_heap_free(void *ptr)
{
    free(ptr);
}
