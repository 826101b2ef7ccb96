/* replay.c — main() for a harness built without libFuzzer: every file named
 * on the command line (for a directory, every regular file in it, sorted)
 * goes once through LLVMFuzzerTestOneInput.  Prints how many inputs ran;
 * fails when none did (a missing corpus must not pass silently). */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf)
            abort();
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        fprintf(stderr, "replay: %s: read error\n", path);
        return -1;
    }
    /* exactly len bytes, so reads past the end are caught under ASan */
    uint8_t *in = fz_dup(buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(in, len);
    free(in);
    return 0;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    long n = 0;
    int fails = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            fails++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            fails += run_file(argv[i]) < 0;
            n++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            fails++;
            continue;
        }
        char **names = NULL;
        size_t nn = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            names = realloc(names, (nn + 1) * sizeof *names);
            if (!names || !(names[nn] = malloc(strlen(argv[i]) + strlen(e->d_name) + 2)))
                abort();
            sprintf(names[nn++], "%s/%s", argv[i], e->d_name);
        }
        closedir(d);
        if (nn)
            qsort(names, nn, sizeof *names, cmp);
        for (size_t k = 0; k < nn; k++) {
            if (stat(names[k], &st) == 0 && S_ISREG(st.st_mode)) {
                fails += run_file(names[k]) < 0;
                n++;
            }
            free(names[k]);
        }
        free(names);
    }
    printf("replay: %ld inputs, %d unreadable\n", n, fails);
    return n > 0 && fails == 0 ? 0 : 1;
}
