/* A WASI preview 1 program for Skiff's Wasm tests: prints its arguments,
 * one environment variable and a file, writes a file, and exits with a
 * chosen code.
 *
 *   argv[1..]          printed as "arg N=VALUE"
 *   $GREETING          printed as "env GREETING=VALUE"
 *   $READ_FILE         a file to print as "file: CONTENTS"
 *   $WRITE_FILE        a file to write "written by wasm\n" into
 *   $EXIT_CODE         the exit code (default 0)
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        printf("arg %d=%s\n", i, argv[i]);
    }
    const char *greeting = getenv("GREETING");
    printf("env GREETING=%s\n", greeting ? greeting : "(unset)");
    const char *read = getenv("READ_FILE");
    if (read) {
        FILE *f = fopen(read, "r");
        if (!f) {
            perror(read);
            return 2;
        }
        char line[256];
        while (fgets(line, sizeof line, f)) {
            printf("file: %s", line);
        }
        fclose(f);
    }
    const char *write = getenv("WRITE_FILE");
    if (write) {
        FILE *f = fopen(write, "w");
        if (!f) {
            perror(write);
            return 2;
        }
        fputs("written by wasm\n", f);
        fclose(f);
    }
    fprintf(stderr, "done\n");
    fflush(stdout);
    const char *code = getenv("EXIT_CODE");
    return code ? atoi(code) : 0;
}
