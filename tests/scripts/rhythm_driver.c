/* Test driver for devices/firmware/src/jefw_rhythm.c (tests/test_firmware_rhythm.py).
 *
 *   rhythm_driver FS [key=value ...]      beats on stdin, one a line: `<sample> <label> <n> <v1> ... <vn>` (n = 0:
 *                                         no pre-QRS stretch), then `end <end_sample>`; prints each closed episode
 *                                         as `<onset> <offset> <rhythm>`, in emission order. Keys: the fields of
 *                                         jefw_rhythm_config_t; normal_labels=N,S; and show_open=1: after each
 *                                         beat's episodes a line `open <rhythm> ...` (jefw_rhythm_open_rhythms)
 *   rhythm_driver --measures              lines `irr <n> <s1> ... <sn>` and `plike <k> <len> <k*len values>`:
 *                                         prints rr_irregularity / p_likeness with %.17g
 *   rhythm_driver --segment FS FAR NEAR   lines `<beat> <start> <n_lead>` against the lead start, start+1, ...:
 *                                         prints `none`, `empty` or `<n> <first> <last>` (jefw_af_segment)
 * Errors: one line on stderr, exit status 1 (2: bad command line). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jefw_rhythm.h"

static int fail(const char *what, const char *err) {
    fprintf(stderr, "rhythm_driver: %s: %s\n", what, err);
    return 1;
}

static int set_key(jefw_rhythm_config_t *c, int *show_open, const char *kv) {
    const char *eq = strchr(kv, '=');
    const char *v;
    size_t k;
    if (!eq) return -1;
    v = eq + 1;
    k = (size_t)(eq - kv);
#define KEY(name) (k == strlen(name) && strncmp(kv, name, k) == 0)
    if (KEY("show_open")) *show_open = atoi(v);
    else if (KEY("vt_min_beats")) c->vt_min_beats = atoi(v);
    else if (KEY("vt_min_rate_bpm")) c->vt_min_rate_bpm = strtod(v, NULL);
    else if (KEY("bigeminy_onset_pairs")) c->bigeminy_onset_pairs = atoi(v);
    else if (KEY("trigeminy_onset_cycles")) c->trigeminy_onset_cycles = atoi(v);
    else if (KEY("offset_beats")) c->offset_beats = atoi(v);
    else if (KEY("af_intervals")) c->af_intervals = atoi(v);
    else if (KEY("af_min_irregularity")) c->af_min_irregularity = strtod(v, NULL);
    else if (KEY("af_max_p_likeness")) c->af_max_p_likeness = strtod(v, NULL);
    else if (KEY("af_p_far_s")) c->af_p_far_s = strtod(v, NULL);
    else if (KEY("af_p_near_s")) c->af_p_near_s = strtod(v, NULL);
    else if (KEY("af_onset_windows")) c->af_onset_windows = atoi(v);
    else if (KEY("af_offset_windows")) c->af_offset_windows = atoi(v);
    else if (KEY("af_max_gap_s")) c->af_max_gap_s = strtod(v, NULL);
    else if (KEY("normal_labels")) {
        char buf[64], *tok;
        strncpy(buf, v, sizeof buf - 1);
        buf[sizeof buf - 1] = '\0';
        c->normal_labels = 0;
        for (tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            int l = jefw_beat_label(tok);
            if (l < 0) return -1;
            c->normal_labels |= JEFW_BEAT_BIT(l);
        }
    } else return -1;
#undef KEY
    return 0;
}

static void print_episodes(const jefw_episode_t *e, int n) {
    int i;
    for (i = 0; i < n; i++) printf("%lld %lld %s\n", e[i].onset, e[i].offset, e[i].rhythm);
}

static int run_beats(int argc, char **argv) {
    jefw_rhythm_config_t c;
    jefw_rhythm_t *r;
    jefw_episode_t ep[JEFW_RHYTHM_MAX_OUT];
    char err[JEFW_ERR], label[64];
    double *atrial = NULL;
    int cap = 0, i, n, line = 0, rc = 1, show_open = 0;
    double fs = strtod(argv[1], NULL);
    jefw_rhythm_config_defaults(&c);
    for (i = 2; i < argc; i++)
        if (set_key(&c, &show_open, argv[i]) != 0) {
            fprintf(stderr, "rhythm_driver: bad config argument %s\n", argv[i]);
            return 2;
        }
    if (jefw_rhythm_open(&r, fs, &c, err) != 0) return fail("open", err);
    for (;;) {
        long long sample;
        char first[64];
        line++;
        if (scanf("%63s", first) != 1) {
            fprintf(stderr, "rhythm_driver: line %d: input ended before `end <end_sample>`\n", line);
            goto done;
        }
        if (strcmp(first, "end") == 0) {
            long long end;
            if (scanf("%lld", &end) != 1) {
                fprintf(stderr, "rhythm_driver: line %d: `end` needs the end sample\n", line);
                goto done;
            }
            n = jefw_rhythm_finish(r, end, ep, JEFW_RHYTHM_MAX_OUT);
            print_episodes(ep, n);
            rc = 0;
            goto done;
        }
        sample = strtoll(first, NULL, 10);
        if (scanf("%63s %d", label, &n) != 2 || n < 0) {
            fprintf(stderr, "rhythm_driver: line %d: expected `<sample> <label> <n> <values>`\n", line);
            goto done;
        }
        if (n > cap) {
            double *a = (double *)realloc(atrial, sizeof(double) * (size_t)n);
            if (!a) {
                fprintf(stderr, "rhythm_driver: out of memory\n");
                goto done;
            }
            atrial = a;
            cap = n;
        }
        for (i = 0; i < n; i++)
            if (scanf("%lf", &atrial[i]) != 1) {
                fprintf(stderr, "rhythm_driver: line %d: %d values expected\n", line, n);
                goto done;
            }
        n = jefw_rhythm_push(r, sample, label, n ? atrial : NULL, n, ep, JEFW_RHYTHM_MAX_OUT, err);
        if (n < 0) {
            fail("push", err);
            goto done;
        }
        print_episodes(ep, n);
        if (show_open) {
            const char *names[JEFW_RHYTHM_MAX_OUT];
            int k = jefw_rhythm_open_rhythms(r, names, JEFW_RHYTHM_MAX_OUT);
            printf("open");
            for (i = 0; i < k; i++) printf(" %s", names[i]);
            printf("\n");
        }
    }
done:
    free(atrial);
    jefw_rhythm_close(r);
    return rc;
}

static int run_measures(void) {
    char what[16];
    while (scanf("%15s", what) == 1) {
        if (strcmp(what, "irr") == 0) {
            int n, i;
            long long *s;
            if (scanf("%d", &n) != 1 || n < 0 || !(s = (long long *)malloc(sizeof *s * (size_t)(n + 1)))) return 1;
            for (i = 0; i < n; i++)
                if (scanf("%lld", &s[i]) != 1) return 1;
            printf("%.17g\n", jefw_rr_irregularity(s, n));
            free(s);
        } else if (strcmp(what, "plike") == 0) {
            int k, len;
            long i;
            double *seg, *scratch;
            if (scanf("%d %d", &k, &len) != 2 || k < 1 || len < 0) return 1;
            seg = (double *)malloc(sizeof(double) * (size_t)((long)k * len + 1));
            scratch = (double *)malloc(sizeof(double) * (size_t)JEFW_P_LIKENESS_SCRATCH(k, len));
            if (!seg || !scratch) return 1;
            for (i = 0; i < (long)k * len; i++)
                if (scanf("%lf", &seg[i]) != 1) return 1;
            printf("%.17g\n", jefw_p_likeness(seg, k, len, scratch));
            free(seg);
            free(scratch);
        } else {
            fprintf(stderr, "rhythm_driver: unknown measure %s\n", what);
            return 1;
        }
    }
    return 0;
}

static int run_segment(char **argv) {
    jefw_rhythm_config_t c;
    double fs = strtod(argv[2], NULL), out[4096];
    long long beat, start, n_lead;
    char err[JEFW_ERR];
    jefw_rhythm_config_defaults(&c);
    c.af_p_far_s = strtod(argv[3], NULL);
    c.af_p_near_s = strtod(argv[4], NULL);
    while (scanf("%lld %lld %lld", &beat, &start, &n_lead) == 3) {
        double *lead = (double *)malloc(sizeof(double) * (size_t)(n_lead + 1));
        long long i;
        int n, got;
        if (!lead) return 1;
        for (i = 0; i < n_lead; i++) lead[i] = (double)(start + i);
        got = jefw_af_segment(&c, fs, lead, n_lead, start, beat, out, 4096, &n, err);
        free(lead);
        if (got < 0) return fail("segment", err);
        if (got == 0) printf("none\n");
        else if (n == 0) printf("empty\n");
        else printf("%d %.17g %.17g\n", n, out[0], out[n - 1]);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--measures") == 0) return run_measures();
    if (argc == 5 && strcmp(argv[1], "--segment") == 0) return run_segment(argv);
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: rhythm_driver FS [key=value ...] | --measures | --segment FS FAR NEAR\n");
        return 2;
    }
    return run_beats(argc, argv);
}
