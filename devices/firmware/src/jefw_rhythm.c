/* Rhythm episodes from labelled beats: devices/stream/beats.py (RhythmTracker: VT, B, T) and devices/stream/af.py
 * (AfTracker, rr_irregularity, p_likeness: AFIB), ported rule for rule. The sums numpy computes with add.reduce
 * (np.mean, np.linalg.norm along an axis) use numpy's pairwise summation, so they give the same doubles; the two
 * products numpy hands to BLAS in p_likeness (s @ t and norm(t)) are plain loops here and may differ from
 * OpenBLAS's kernels in the last bit (see tests/test_firmware_rhythm.py). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jefw_rhythm.h"
#include "jefw_util.h"

static const char *const beat_names[JEFW_BEAT_LABELS] = {"N", "S", "V", "F", "Q", "withheld"};



static long long floor_div2(long long x) { /* Python's x // 2 */
    return x / 2 - (x % 2 < 0 ? 1 : 0);
}


/* np.median of v[0..n) (n >= 1, v reordered): NaN when any is NaN; even n: the mean of the two middle values. */
static double median(double *v, int n) {
    int i, j;
    for (i = 0; i < n; i++)
        if (isnan(v[i])) return v[i];
    for (i = 1; i < n; i++) { /* insertion sort: n is a window of beats */
        double x = v[i];
        for (j = i - 1; j >= 0 && v[j] > x; j--) v[j + 1] = v[j];
        v[j + 1] = x;
    }
    if (n % 2) return (0.0 + v[n / 2]) / 1.0;
    return ((0.0 + v[n / 2 - 1]) + v[n / 2]) / 2.0;
}

/* rr_irregularity with a scratch of 2 (n - 1) doubles. */
static double rr_irregularity(const long long *samples, int n, double *rr) {
    double *sq = rr + (n > 1 ? n - 1 : 0);
    int i, m = n - 1;
    if (m < 2) return 0.0;
    for (i = 0; i < m; i++) rr[i] = (double)samples[i + 1] - (double)samples[i]; /* np.diff of float64 */
    for (i = 0; i + 1 < m; i++) {
        double d = rr[i + 1] - rr[i];
        sq[i] = d * d;
    }
    return sqrt(jefw_np_sum(sq, m - 1) / (double)(m - 1)) / (jefw_np_sum(rr, m) / (double)m);
}

double jefw_rr_irregularity(const long long *samples, int n) {
    double buf[128], *rr = n <= 64 ? buf : (double *)malloc(sizeof(double) * 2 * (size_t)n), out;
    if (!rr) return NAN;
    out = rr_irregularity(samples, n, rr);
    if (rr != buf) free(rr);
    return out;
}

double jefw_p_likeness(const double *seg, int k, int len, double *scratch) {
    double *s = scratch, *t = s + (long)k * len, *col = t + len, *corr = col + k, tt = 0.0, nt;
    int i, j;
    for (i = 0; i < k; i++) { /* s = segments - their row means (np.mean: pairwise sum / count) */
        const double *row = seg + (long)i * len;
        double mean = jefw_np_sum(row, len) / (double)len;
        for (j = 0; j < len; j++) s[(long)i * len + j] = row[j] - mean;
    }
    for (j = 0; j < len; j++) { /* t = np.median(s, axis=0) */
        for (i = 0; i < k; i++) col[i] = s[(long)i * len + j];
        t[j] = median(col, k);
    }
    for (j = 0; j < len; j++) tt += t[j] * t[j]; /* np.linalg.norm(t): a BLAS ddot in numpy */
    nt = sqrt(tt);
    for (i = 0; i < k; i++) {
        double *row = s + (long)i * len, dot = 0.0;
        for (j = 0; j < len; j++) dot += row[j] * t[j]; /* s @ t: a BLAS dgemv in numpy */
        /* np.linalg.norm(s, axis=1) = sqrt(add.reduce(s * s, axis=1)): the squares in place, pairwise */
        for (j = 0; j < len; j++) row[j] = row[j] * row[j];
        corr[i] = dot / (sqrt(jefw_np_sum(row, len)) * nt + 1e-9);
    }
    return median(corr, k);
}

/* ---- the tracker ---- */
typedef struct {
    const char *rhythm;
    int period, onset_cycles;
    long long start, last_v, after_v; /* start 0 when None (Python reads it as `p.start or 0`) */
    int has_last_v, has_after_v, open;
    long long normals, cycles, misses;
} pattern_t;

struct jefw_rhythm {
    jefw_rhythm_config_t c;
    double fs, max_vt_rr, max_gap;
    int has_prev;
    long long prev;
    long long vt_count, vt_first, vt_last; /* the current run of V beats */
    pattern_t pat[2];
    /* AF: the window (a ring of k = af_intervals + 1 beats, oldest at head) and its hysteresis */
    int k, count, head, len; /* len: samples of every stretch in the window */
    long long *beats, *ordered;
    double *rr;                /* rr_irregularity's scratch, 2 k doubles */
    double *stretch, *scratch; /* k * len stretches (slot i at i * len); p_likeness scratch */
    long cap;                  /* stretch length the buffers hold */
    long long hits, misses, run_start, last_af, onset;
    int has_last_af, has_onset;
    jefw_episode_t *out;
    int n_out;
};

void jefw_rhythm_config_defaults(jefw_rhythm_config_t *c) {
    memset(c, 0, sizeof *c);
    c->vt_min_beats = 3;
    c->vt_min_rate_bpm = 100.0;
    c->bigeminy_onset_pairs = 3;
    c->trigeminy_onset_cycles = 3;
    c->offset_beats = 1;
    c->normal_labels = JEFW_BEAT_BIT(JEFW_BEAT_N) | JEFW_BEAT_BIT(JEFW_BEAT_S);
    c->af_intervals = 6;
    c->af_min_irregularity = 0.08;
    c->af_max_p_likeness = 0.6;
    c->af_p_far_s = 0.25;
    c->af_p_near_s = 0.08;
    c->af_onset_windows = 2;
    c->af_offset_windows = 4;
    c->af_max_gap_s = 2.0;
}

int jefw_rhythm_config_check(const jefw_rhythm_config_t *c, char *err) {
    if (c->vt_min_beats < 2 || c->bigeminy_onset_pairs < 2 || c->trigeminy_onset_cycles < 2) {
        jefw_errf(err, "vt_min_beats, bigeminy_onset_pairs and trigeminy_onset_cycles must be >= 2");
        return -1;
    }
    if (c->offset_beats < 1 || c->vt_min_rate_bpm <= 0) {
        jefw_errf(err, "offset_beats must be >= 1 and vt_min_rate_bpm > 0");
        return -1;
    }
    if (c->af_intervals < 3 || c->af_onset_windows < 1 || c->af_offset_windows < 1) {
        jefw_errf(err, "AF needs intervals >= 3, onset_windows >= 1 and offset_windows >= 1");
        return -1;
    }
    if (!(c->af_p_far_s > c->af_p_near_s && c->af_p_near_s >= 0) || c->af_max_gap_s <= 0 ||
        c->af_min_irregularity < 0) {
        jefw_errf(err, "AF p_window_s (%g, %g) must be (far, near) before the R peak, far > near >= 0; max_gap_s > 0; "
                  "min_irregularity >= 0", c->af_p_far_s, c->af_p_near_s);
        return -1;
    }
    if (c->normal_labels & ~((1u << JEFW_BEAT_LABELS) - 1u)) {
        jefw_errf(err, "normal_labels 0x%x names no beat label (bits of JEFW_BEAT_*)", c->normal_labels);
        return -1;
    }
    if (c->af_intervals > 1000000) {
        jefw_errf(err, "AF intervals %d: at most 1000000", c->af_intervals);
        return -1;
    }
    return 0;
}

int jefw_beat_label(const char *name) {
    int i;
    if (!name) return -1;
    for (i = 0; i < JEFW_BEAT_LABELS; i++)
        if (strcmp(name, beat_names[i]) == 0) return i;
    return -1;
}

static void pattern_reset(pattern_t *p) {
    p->start = p->last_v = p->after_v = 0;
    p->has_last_v = p->has_after_v = p->open = 0;
    p->normals = p->cycles = p->misses = 0;
}

int jefw_rhythm_open(jefw_rhythm_t **rp, double fs, const jefw_rhythm_config_t *c, char *err) {
    jefw_rhythm_t *r;
    jefw_rhythm_config_t def;
    *rp = NULL;
    if (!c) {
        jefw_rhythm_config_defaults(&def);
        c = &def;
    }
    if (!isfinite(fs) || fs <= 0) {
        jefw_errf(err, "sampling rate %g must be a positive number", fs);
        return -1;
    }
    if (jefw_rhythm_config_check(c, err) != 0) return -1;
    r = (jefw_rhythm_t *)calloc(1, sizeof *r);
    if (r) {
        r->k = c->af_intervals + 1;
        r->beats = (long long *)malloc(sizeof(long long) * 2 * (size_t)r->k);
        r->rr = (double *)malloc(sizeof(double) * 2 * (size_t)r->k);
    }
    if (!r || !r->beats || !r->rr) {
        if (r) free(r->beats), free(r->rr);
        free(r);
        jefw_errf(err, "out of memory for a rhythm tracker");
        return -1;
    }
    r->ordered = r->beats + r->k;
    r->c = *c;
    r->fs = fs;
    r->max_vt_rr = 60.0 / c->vt_min_rate_bpm * fs;
    r->max_gap = c->af_max_gap_s * fs;
    r->pat[0].rhythm = "B";
    r->pat[0].period = 2;
    r->pat[0].onset_cycles = c->bigeminy_onset_pairs;
    r->pat[1].rhythm = "T";
    r->pat[1].period = 3;
    r->pat[1].onset_cycles = c->trigeminy_onset_cycles;
    pattern_reset(&r->pat[0]);
    pattern_reset(&r->pat[1]);
    *rp = r;
    return 0;
}

void jefw_rhythm_close(jefw_rhythm_t *r) {
    if (!r) return;
    free(r->beats);
    free(r->rr);
    free(r->stretch);
    free(r->scratch);
    free(r);
}

static void emit(jefw_rhythm_t *r, long long onset, long long offset, const char *rhythm) {
    jefw_episode_t *e = &r->out[r->n_out++];
    e->onset = onset;
    e->offset = offset;
    memset(e->rhythm, 0, sizeof e->rhythm);
    strncpy(e->rhythm, rhythm, sizeof e->rhythm - 1);
}

/* ---- VT ---- */
static void close_vt(jefw_rhythm_t *r) {
    if (r->vt_count >= r->c.vt_min_beats) emit(r, r->vt_first, r->vt_last, "VT");
    r->vt_count = 0;
}

static void push_vt(jefw_rhythm_t *r, long long sample, int label) {
    if (label == JEFW_BEAT_V && (r->vt_count == 0 || (double)(sample - r->vt_last) <= r->max_vt_rr)) {
        if (r->vt_count == 0) r->vt_first = sample;
        r->vt_last = sample;
        r->vt_count++;
        return;
    }
    close_vt(r);
    if (label == JEFW_BEAT_V) { /* a slow V ends the run and may start the next */
        r->vt_first = r->vt_last = sample;
        r->vt_count = 1;
    }
}

/* ---- B and T ---- */
static long long pattern_offset(const pattern_t *p, long long fallback) {
    return floor_div2(p->last_v + (p->has_after_v ? p->after_v : fallback));
}

static void push_pattern(jefw_rhythm_t *r, pattern_t *p, long long sample, int label) {
    int is_normal = (r->c.normal_labels & JEFW_BEAT_BIT(label)) != 0, fits_v, fits_n;
    if (p->has_last_v && !p->has_after_v) {
        p->after_v = sample;
        p->has_after_v = 1;
    }
    fits_v = label == JEFW_BEAT_V && p->has_last_v && p->normals == p->period - 1;
    fits_n = is_normal && p->has_last_v && p->normals < p->period - 1;
    if (fits_v || fits_n) {
        if (fits_v) {
            p->last_v = sample;
            p->has_after_v = 0;
            p->after_v = 0;
            p->normals = 0;
            p->cycles++;
        } else {
            p->normals++;
        }
        p->misses = 0;
        if (!p->open && p->cycles >= p->onset_cycles && p->normals == p->period - 1) p->open = 1;
        return;
    }
    /* this beat breaks the pattern */
    if (p->open) {
        p->misses++;
        if (p->misses < r->c.offset_beats) {
            if (label == JEFW_BEAT_V) { /* count the spacing anew from this V; the episode stays open */
                p->last_v = sample;
                p->has_after_v = 0;
                p->after_v = 0;
                p->normals = 0;
            }
            return;
        }
        emit(r, p->start, pattern_offset(p, sample), p->rhythm);
    }
    pattern_reset(p);
    if (label == JEFW_BEAT_V) { /* a V may start the next run */
        long long prev = r->has_prev ? r->prev : sample;
        p->start = floor_div2(prev + sample);
        p->last_v = sample;
        p->has_last_v = 1;
        p->cycles = 1;
    }
}

/* ---- AF ---- */
static void af_clear(jefw_rhythm_t *r) {
    r->count = 0;
    r->head = 0;
    r->len = 0;
}

static int af_gap(const jefw_rhythm_t *r, long long sample) { /* the window's last beat is too long ago */
    return r->count > 0 && (double)(sample - r->beats[(r->head + r->count - 1) % r->k]) > r->max_gap;
}

static void af_close(jefw_rhythm_t *r, long long offset) {
    long long onset = r->onset;
    r->has_onset = 0;
    r->onset = 0;
    r->misses = 0;
    emit(r, onset, offset, "AFIB");
}

static void af_push(jefw_rhythm_t *r, long long sample, int label, const double *atrial, int n) {
    const jefw_rhythm_config_t *c = &r->c;
    int slot, i, af;
    if (af_gap(r, sample)) af_clear(r);
    if ((label != JEFW_BEAT_N && label != JEFW_BEAT_S) || atrial == NULL) {
        af_clear(r); /* a ventricular, withheld or unclassed beat (or one with no stretch) breaks it */
        return;
    }
    if (r->count == 0) r->len = n;
    if (r->count < r->k) {
        slot = (r->head + r->count) % r->k;
        r->count++;
    } else { /* deque(maxlen=k): the oldest leaves */
        slot = r->head;
        r->head = (r->head + 1) % r->k;
    }
    r->beats[slot] = sample;
    if (n > 0) memcpy(r->stretch + (long)slot * n, atrial, sizeof(double) * (size_t)n);
    if (r->count <= c->af_intervals) return;
    for (i = 0; i < r->k; i++) r->ordered[i] = r->beats[(r->head + i) % r->k];
    /* p_likeness is order-free in its rows (means, medians, correlations), so the ring goes in as it is */
    af = rr_irregularity(r->ordered, r->k, r->rr) > c->af_min_irregularity &&
         jefw_p_likeness(r->stretch, r->k, r->len, r->scratch) < c->af_max_p_likeness;
    if (af) {
        if (r->hits == 0) r->run_start = r->ordered[0];
        r->hits++;
        r->misses = 0;
        r->last_af = sample;
        r->has_last_af = 1;
        if (!r->has_onset && r->hits >= c->af_onset_windows) {
            r->onset = r->run_start;
            r->has_onset = 1;
        }
        return;
    }
    r->hits = 0;
    if (r->has_onset) {
        r->misses++;
        if (r->misses >= c->af_offset_windows) af_close(r, r->has_last_af ? r->last_af : sample);
    }
}

/* Room for k stretches of n samples and p_likeness's scratch. */
static int af_reserve(jefw_rhythm_t *r, long n) {
    double *s, *w;
    if (n <= r->cap && r->stretch) return 0;
    s = (double *)malloc(sizeof(double) * (size_t)((long)r->k * (n > 0 ? n : 1)));
    w = (double *)malloc(sizeof(double) * (size_t)JEFW_P_LIKENESS_SCRATCH(r->k, n > 0 ? n : 1));
    if (!s || !w) {
        free(s);
        free(w);
        return -1;
    }
    free(r->stretch);
    free(r->scratch);
    r->stretch = s;
    r->scratch = w;
    r->cap = n;
    return 0;
}

int jefw_rhythm_push_beat(jefw_rhythm_t *r, long long sample, int label, const double *atrial, int n_atrial,
                          jefw_episode_t *out, int max_out, char *err) {
    int i, appends;
    if (max_out < JEFW_RHYTHM_MAX_OUT || !out) {
        jefw_errf(err, "room for %d episodes given; one beat can close up to %d (JEFW_RHYTHM_MAX_OUT)", max_out,
             JEFW_RHYTHM_MAX_OUT);
        return -1;
    }
    if (label < 0 || label >= JEFW_BEAT_LABELS) {
        jefw_errf(err, "beat label %d is not one of N, S, V, F, Q, withheld (JEFW_BEAT_*)", label);
        return -1;
    }
    if (r->has_prev && sample <= r->prev) {
        jefw_errf(err, "beats must come in time order: %lld after %lld", sample, r->prev);
        return -1;
    }
    if (atrial && n_atrial < 0) {
        jefw_errf(err, "beat at %lld: pre-QRS stretch of %d samples", sample, n_atrial);
        return -1;
    }
    appends = (label == JEFW_BEAT_N || label == JEFW_BEAT_S) && atrial != NULL;
    if (appends) {
        if (r->count > 0 && !af_gap(r, sample)) {
            if (n_atrial != r->len) {
                jefw_errf(err, "beat at %lld: pre-QRS stretch of %d samples, but the AF window's stretches have %d "
                          "(every beat's stretch must be AfConfig.segment at one rate)", sample, n_atrial, r->len);
                return -1;
            }
        } else if (af_reserve(r, n_atrial) != 0) {
            jefw_errf(err, "out of memory for %d pre-QRS stretches of %d samples", r->k, n_atrial);
            return -1;
        }
    }
    r->out = out;
    r->n_out = 0;
    push_vt(r, sample, label);
    for (i = 0; i < 2; i++) push_pattern(r, &r->pat[i], sample, label);
    af_push(r, sample, label, atrial, n_atrial);
    r->prev = sample;
    r->has_prev = 1;
    r->out = NULL;
    return r->n_out;
}

int jefw_rhythm_push(jefw_rhythm_t *r, long long sample, const char *label, const double *atrial, int n_atrial,
                     jefw_episode_t *out, int max_out, char *err) {
    int l = jefw_beat_label(label);
    if (l < 0) {
        jefw_errf(err, "beat label \"%.40s\" is not one of N, S, V, F, Q, withheld", label ? label : "(null)");
        return -1;
    }
    return jefw_rhythm_push_beat(r, sample, l, atrial, n_atrial, out, max_out, err);
}

int jefw_rhythm_finish(jefw_rhythm_t *r, long long end_sample, jefw_episode_t *out, int max_out) {
    int i;
    if (max_out < JEFW_RHYTHM_MAX_OUT || !out) return -1;
    r->out = out;
    r->n_out = 0;
    close_vt(r);
    for (i = 0; i < 2; i++) {
        pattern_t *p = &r->pat[i];
        if (p->open) emit(r, p->start, p->misses == 0 ? end_sample : pattern_offset(p, end_sample), p->rhythm);
        pattern_reset(p);
    }
    if (r->has_onset) /* Python: `end_sample if misses == 0 else self._last_af or end_sample` */
        af_close(r, r->misses == 0 ? end_sample : (r->has_last_af && r->last_af != 0 ? r->last_af : end_sample));
    af_clear(r);
    r->hits = 0;
    r->out = NULL;
    return r->n_out;
}

int jefw_rhythm_open_rhythms(const jefw_rhythm_t *r, const char **names, int max_names) {
    const char *open[4];
    int n = 0, i;
    if (r->vt_count >= r->c.vt_min_beats) open[n++] = "VT";
    for (i = 0; i < 2; i++)
        if (r->pat[i].open) open[n++] = r->pat[i].rhythm;
    if (r->has_onset) open[n++] = "AFIB";
    for (i = 0; i < n && i < max_names; i++) names[i] = open[i];
    return n;
}

long long jefw_af_segment_bounds(const jefw_rhythm_config_t *c, double fs, long long beat, long long *a,
                                 long long *b) {
    *a = beat - (long long)jefw_round_half_even(c->af_p_far_s * fs);
    *b = beat - (long long)jefw_round_half_even(c->af_p_near_s * fs);
    return *b - *a;
}

int jefw_af_segment(const jefw_rhythm_config_t *c, double fs, const double *lead, long long n_lead, long long start,
                    long long beat, double *out, int max_out, int *n_out, char *err) {
    long long a, b;
    jefw_af_segment_bounds(c, fs, beat, &a, &b);
    a -= start;
    b -= start;
    *n_out = 0;
    if (a < 0 || b > n_lead) return 0;
    if (b - a > max_out) {
        jefw_errf(err, "pre-QRS stretch of %lld samples; room for %d given", b - a, max_out);
        return -1;
    }
    if (b > a) memcpy(out, lead + a, sizeof(double) * (size_t)(b - a));
    *n_out = (int)(b - a);
    return 1;
}
