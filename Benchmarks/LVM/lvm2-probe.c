/* Per-command cost of liblvm2cmd in-process: runs the given command lines in turn, N rounds, through
 * one handle, and prints each one's median. Run it with LVM_SYSTEM_DIR pointing at different
 * configurations to compare (run.sh: the host's lvm.conf, then with global/use_aio = 0 appended).
 * usage: lvm2-probe N 'command line'... */
#include <lvm2cmd.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void quiet(int level, const char *file, int line, int dm_errno, const char *message) {
    (void)level; (void)file; (void)line; (void)dm_errno; (void)message;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: lvm2-probe N 'command line'...\n"); return 2; }
    int n = atoi(argv[1]);
    if (n < 1 || n > 10000) n = 10;
    int commands = argc - 2;
    double *samples = calloc((size_t)(n * commands), sizeof *samples);
    lvm2_log_fn(quiet);
    void *handle = lvm2_init();
    lvm2_run(handle, "version");  /* not measured: first-use setup */
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < commands; c++) {
            double start = now_ms();
            int rc = lvm2_run(handle, argv[c + 2]);
            samples[c * n + i] = now_ms() - start;
            if (rc != 1) { fprintf(stderr, "rc=%d: %s\n", rc, argv[c + 2]); return 1; }
        }
    }
    for (int c = 0; c < commands; c++) {
        qsort(samples + c * n, (size_t)n, sizeof *samples, compare);
        printf("  median %7.2f ms  min %7.2f ms : %s\n", samples[c * n + n / 2], samples[c * n], argv[c + 2]);
    }
    lvm2_exit(handle);
    free(samples);
    return 0;
}
