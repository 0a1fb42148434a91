/* Allocates memory 1 MiB at a time, touching it, until malloc fails or
 * $LIMIT_MIB is reached; prints progress. Under a Wasm memory limit the
 * guest is stopped when the linear memory cannot grow. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every block stays reachable, so the compiler cannot drop the allocations. */
static char *blocks[4096];

int main(void) {
    const char *limit = getenv("LIMIT_MIB");
    int max = limit ? atoi(limit) : 4096;
    for (int i = 1; i <= max; i++) {
        char *block = malloc(1 << 20);
        if (!block) {
            printf("malloc failed after %d MiB\n", i - 1);
            return 3;
        }
        memset(block, i, 1 << 20);
        blocks[i % 4096] = block;
        if (i % 16 == 0) {
            printf("%d MiB\n", i);
            fflush(stdout);
        }
    }
    unsigned sum = 0;
    for (int i = 1; i <= max && i < 4096; i++) {
        sum += (unsigned char)blocks[i][i];
    }
    printf("allocated %d MiB (checksum %u)\n", max, sum);
    return 0;
}
