/* fuzz_main.c: runs a fuzz target without libFuzzer.
 *
 * Usage: fuzz-X [--random N] [--seed S] [FILE|DIR]...
 * Every FILE (and every regular file in DIR: the checked-in corpus) is fed
 * to LLVMFuzzerTestOneInput once; then N inputs of random length and bytes
 * from a seeded PRNG, so the normal test suite exercises the target in a
 * bounded, reproducible way. A crash or a failed assertion inside the
 * target fails the test. Prints "N passed, 0 failed" at the end. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define FUZZ_INPUT_MAX (1u << 20)

static unsigned long fuzz_runs;

static int fuzz_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "fuzz: cannot open %s\n", path);
        return -1;
    }
    buf = malloc(FUZZ_INPUT_MAX);
    if (buf == NULL) {
        fclose(f);
        return -1;
    }
    n = fread(buf, 1, FUZZ_INPUT_MAX, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    fuzz_runs++;
    return 0;
}

static int fuzz_path(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    int rv = 0;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz: no such file or directory: %s\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        return fuzz_file(path);
    }
    d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        char full[4096];
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
        if (fuzz_file(full) != 0) {
            rv = -1;
        }
    }
    closedir(d);
    return rv;
}

static uint64_t fuzz_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    unsigned long random_runs = 0;
    uint64_t seed = 1;
    int rv = 0;
    uint8_t *buf;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--random") == 0 && i + 1 < argc) {
            random_runs = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (fuzz_path(argv[i]) != 0) {
            rv = 1;
        }
    }
    buf = malloc(4096);
    if (buf == NULL) {
        return 1;
    }
    for (unsigned long r = 0; r < random_runs; r++) {
        size_t n = (size_t)(fuzz_next(&seed) % 4096);
        for (size_t k = 0; k < n; k++) {
            buf[k] = (uint8_t)fuzz_next(&seed);
        }
        LLVMFuzzerTestOneInput(buf, n);
        fuzz_runs++;
    }
    free(buf);
    printf("%lu passed, %d failed\n", fuzz_runs, rv);
    return rv;
}
