/* pure.h: lint fixture header; only allowed headers, own quoted includes. */
#ifndef PURE_H
#define PURE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pure_heap {
    void *(*malloc)(void *data, size_t size);
    void (*free)(void *data, void *ptr);
    void *data;
};

void *pure_heap_malloc(size_t size);
void pure_heap_free(void *ptr);
#endif
