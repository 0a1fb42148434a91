/* A small WASI program: greets, shows its arguments and environment, then
 * sleeps so that `kubectl logs` has something to follow. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *name = getenv("NAME");
    printf("hello from wasm, %s!\n", name ? name : "world");
    for (int i = 1; i < argc; i++) {
        printf("argument %d: %s\n", i, argv[i]);
    }
    for (int tick = 0;; tick++) {
        printf("tick %d\n", tick);
        fflush(stdout);
        sleep(5);
    }
}
