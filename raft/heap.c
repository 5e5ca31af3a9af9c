/* heap.c: the injectable allocator behind every allocation raft makes.
 *
 * raft_options.heap may name custom functions (tests inject allocation
 * failures through it); otherwise libc's allocator is used. This is the only
 * file of raft/ that calls malloc, realloc and free. */
#include <stdlib.h>

#include "raft/impl.h"

void *raft__malloc(const struct raft_heap *heap, size_t size)
{
    RAFT_ASSERT(size > 0);
    if (heap->malloc != NULL) {
        return heap->malloc(heap->data, size);
    }
    return malloc(size);
}

void *raft__realloc(const struct raft_heap *heap, void *ptr, size_t size)
{
    RAFT_ASSERT(size > 0);
    if (heap->realloc != NULL) {
        return heap->realloc(heap->data, ptr, size);
    }
    return realloc(ptr, size);
}

void raft__free(const struct raft_heap *heap, void *ptr)
{
    if (ptr == NULL) {
        return;
    }
    if (heap->free != NULL) {
        heap->free(heap->data, ptr);
        return;
    }
    free(ptr);
}
