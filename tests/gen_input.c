/* gen_input NAME OUT — write a vector input (see gen.c) to OUT. */
#include <stdio.h>
#include <stdlib.h>
#include "gen.h"
int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen_input NAME OUT\n");
        return 2;
    }
    unsigned char *buf = malloc(4 << 20);
    if (!buf)
        return 1;
    long n = gen_named(argv[1], buf);
    if (n < 0) {
        fprintf(stderr, "unknown input %s\n", argv[1]);
        free(buf);
        return 2;
    }
    FILE *f = fopen(argv[2], "wb");
    int rc = 0;
    if (!f || fwrite(buf, 1, (size_t)n, f) != (size_t)n || fclose(f) != 0) {
        perror(argv[2]);
        rc = 1;
    }
    free(buf);
    return rc;
}
