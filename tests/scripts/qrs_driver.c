/* Test driver for jefw_qrs.c (tests/test_firmware_qrs.py): little-endian float64 samples on stdin, pushed in
 * chunks of a given size, then finish; each settled R peak's sample index on its own line.
 *
 *   qrs_driver FS CHUNK [LOOKBACK_S HOP_S SETTLE_S REFRACTORY_S MIN_SEGMENT_S]
 *
 * Exit 0 ok, 1 detector error, 2 bad command line, 3 unreadable input; errors one line on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jefw_util.h"
#include "jefw_qrs.h"

static int parse_double(const char *s, double *v) {
    char *end;
    *v = strtod(s, &end);
    return end != s && *end == '\0';
}

static double le_double(const unsigned char *b) {
    unsigned long long u = 0;
    double v;
    int i;
    for (i = 7; i >= 0; i--) u = (u << 8) | b[i];
    memcpy(&v, &u, sizeof v);
    return v;
}

static int print_peaks(const long long *p, long n) {
    long i;
    for (i = 0; i < n; i++)
        if (printf("%lld\n", p[i]) < 0) return -1;
    return 0;
}

int main(int argc, char **argv) {
    double fs, chunk_d, *x;
    unsigned char *raw;
    long chunk, got, n;
    jefw_qrs_config_t cfg, *pc = NULL;
    jefw_qrs_t *q;
    const long long *peaks;
    char err[JEFW_ERR];
    int rc = 0;
    if ((argc != 3 && argc != 8) || !parse_double(argv[1], &fs) || !parse_double(argv[2], &chunk_d) ||
        chunk_d < 1 || chunk_d > 1e9 || chunk_d != (long)chunk_d) {
        fprintf(stderr, "usage: qrs_driver FS CHUNK [LOOKBACK_S HOP_S SETTLE_S REFRACTORY_S MIN_SEGMENT_S] "
                        "< float64 samples\n");
        return 2;
    }
    chunk = (long)chunk_d;
    if (argc == 8) {
        if (!parse_double(argv[3], &cfg.lookback_s) || !parse_double(argv[4], &cfg.hop_s) ||
            !parse_double(argv[5], &cfg.settle_s) || !parse_double(argv[6], &cfg.refractory_s) ||
            !parse_double(argv[7], &cfg.min_segment_s)) {
            fprintf(stderr, "qrs_driver: the config must be five numbers\n");
            return 2;
        }
        pc = &cfg;
    }
    if (jefw_qrs_open(&q, fs, pc, err) != 0) {
        fprintf(stderr, "qrs_driver: %s\n", err);
        return 1;
    }
    raw = malloc((size_t)chunk * 8);
    x = malloc((size_t)chunk * sizeof *x);
    if (!raw || !x) {
        fprintf(stderr, "qrs_driver: out of memory for a chunk of %ld samples\n", chunk);
        rc = 3;
        goto done;
    }
    for (;;) {
        long i;
        got = (long)fread(raw, 1, (size_t)chunk * 8, stdin);
        if (got % 8 != 0) {
            fprintf(stderr, "qrs_driver: stdin ends inside a sample (%ld stray bytes)\n", got % 8);
            rc = 3;
            goto done;
        }
        if (got == 0) break;
        for (i = 0; i < got / 8; i++) x[i] = le_double(raw + 8 * i);
        n = jefw_qrs_push(q, x, got / 8, &peaks, err);
        if (n < 0) {
            fprintf(stderr, "qrs_driver: %s\n", err);
            rc = 1;
            goto done;
        }
        if (print_peaks(peaks, n) != 0) {
            rc = 3;
            goto done;
        }
        if (got < chunk * 8) break;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "qrs_driver: cannot read stdin\n");
        rc = 3;
        goto done;
    }
    n = jefw_qrs_finish(q, &peaks, err);
    if (n < 0) {
        fprintf(stderr, "qrs_driver: %s\n", err);
        rc = 1;
        goto done;
    }
    if (print_peaks(peaks, n) != 0) rc = 3;
done:
    free(raw);
    free(x);
    jefw_qrs_close(q);
    if (fflush(stdout) != 0) rc = rc ? rc : 3;
    return rc;
}
