/* fuzz.h: the libFuzzer entry point every fuzz target in tests/fuzz/
 * defines, shared with the standalone driver (fuzz_main.c) that replays a
 * corpus and a bounded number of seeded random inputs in the normal test
 * suite when libFuzzer is not in use. */
#ifndef TANDEM_TESTS_FUZZ_H
#define TANDEM_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
