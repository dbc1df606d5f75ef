/* Monitor mode: what `jepa-edge stream BEAT_BUNDLE` runs (devices/stream/monitor.py), from int16 frames on stdin,
 * and with a window classifier beside it what `jepa-edge stream WINDOW_BUNDLE --beats BEAT_BUNDLE` runs.
 *
 *   frames -> windows (jefw_stream.c): the window classifier's, scored and quality-checked, or without one quality
 *             only: the beat lead and one other lead at the header's JEPA_EDGE_QUALITY_* rate, window and hop
 *          -> the beat lead (and the template's second lead) -> resampler -> R peaks (jefw_qrs.c, settled only)
 *                                                            -> band-pass + normalisation -> history
 *   each settled beat, once its window, its quality verdict and the next beat are known -> engine (batched)
 *   -> RR / template fusion (toolkit/tasks/beats.py RrFusion) -> N / S / V, or withheld when the first window
 *   covering it was flagged -> rhythm episodes (jefw_rhythm.c).
 *
 * The steps, their order and their numbers are Python's, so the labels agree beat for beat with the Python
 * monitor (tests/test_firmware_monitor.py). Memory is bounded: the history keeps history_s of signal, and beats,
 * verdicts and cached segments are dropped once no later beat can look at them. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jefw.h"
#include "jefw_qrs.h"
#include "jefw_rhythm.h"

#define MAX_CLASSES 16
#define MAX_FEATURES 16
#define MAX_BATCH 32      /* MonitorConfig.max_batch: within the batch profile of jetson engines (max 32) */
#define HISTORY_S 20.0    /* MonitorConfig.history_s */
#define NUM_RHYTHMS 4

static const char *const RHYTHM_NAMES[NUM_RHYTHMS] = {"AFIB", "B", "T", "VT"}; /* sorted, as the summary */

typedef struct {
    long long sample;
    double *seg;    /* template QRS, template_leads x 2 * half; NULL: none (near either end) */
    double *atrial; /* pre-QRS stretch for AF; NULL: none */
    int n_atrial, seg_done, atrial_done;
} beat_t;

typedef struct {
    long long end;
    int flagged;
} verdict_t;

typedef struct {
    const jefw_model_t *m;
    const jefw_model_t *wm; /* the windows' model: the window classifier's, or qm */
    jefw_model_t bm;      /* the rows the beat chain filters: the model lead, then the template's second lead */
    jefw_model_t qm;      /* the quality-only windows of a monitor without a window classifier */
    double bm_mean[2], bm_std[2], qm_mean[2], qm_std[2];
    const char *q_names[2];
    char lead_buf[2][64];
    jefw_engine_t *e;
    jefw_stream_options_t *o;
    jefw_stream_t *windows;
    FILE *out;
    int R, cols[2], num_classes, num_features;
    double lo, hi;
    jefw_resampler_t rs;
    jefw_filter_t flt;
    jefw_qrs_t *qrs;
    jefw_rhythm_t *rhythm;
    jefw_rhythm_config_t rcfg;
    float *hist; /* R rows of hist_cap; sample k (absolute) of row r at hist[r * hist_cap + k - hist_start] */
    long hist_cap, hist_len, keep;
    long long hist_start, model_samples;
    double *x, *raw0;
    uint8_t *xflags; /* the beat chain carries no sample flags: quality is the windows' business */
    long x_cap, raw_cap, flags_cap;
    long long *pending;
    long npending, cap_pending;
    beat_t *recent;
    long nrecent, cap_recent;
    verdict_t *verdicts;
    long nverdicts, cap_verdicts;
    long long quality_upto;
    float *batch;
    long long counts[4]; /* beats, labelled, withheld, no_window */
    long long class_counts[MAX_CLASSES], episode_counts[NUM_RHYTHMS];
    double engine_time, busy;
    int engine_failed;
} monitor_t;

static int grow(void **p, long *cap, long need, size_t size) {
    long c = *cap ? *cap : 64;
    void *q;
    if (need <= *cap) return 0;
    while (c < need) c *= 2;
    q = realloc(*p, (size_t)c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void beat_free(beat_t *b) {
    free(b->seg), free(b->atrial);
    b->seg = b->atrial = NULL;
}

/* rr_features(...)[-1] of beat i of `recent`: the RR history before it and the beat after it, when known; with
 * the spread, rr_spread_features(...)[-1] after them (one beat further back). Returns the number of features. */
static int rr_feature_row(const monitor_t *s, long i, double *out) {
    long h = s->m->rr_history, lo = i - h > 0 ? i - h : 0, k;
    long long beats[258], next = i + 1 < s->nrecent ? s->recent[i + 1].sample : 0;
    for (k = lo; k <= i; k++) beats[k - lo] = s->recent[k].sample;
    jefw_rr_features(beats, i - lo + 1, i + 1 < s->nrecent ? &next : NULL, s->m->rr_clip, out);
    if (!s->m->rr_spread) return 3;
    lo = i - h - 1 > 0 ? i - h - 1 : 0;
    for (k = lo; k <= i; k++) beats[k - lo] = s->recent[k].sample;
    jefw_rr_spread_features(beats, i - lo + 1, (int)h, s->m->rr_clip, out + 3);
    return 6;
}

/* BeatTemplate.features of beat i: its QRS against those of the template_beats beats before it that have one. */
static int template_feature_row(const monitor_t *s, long i, double *out) {
    const jefw_model_t *m = s->m;
    const double *prev[256];
    long j, lo = i - m->template_beats > 0 ? i - m->template_beats : 0;
    int np = 0;
    for (j = lo; j < i; j++)
        if (s->recent[j].seg) prev[np++] = s->recent[j].seg;
    return jefw_template_features(s->recent[i].seg, prev, np, m->template_leads, 2 * m->template_half, m->rr_clip,
                                  out);
}

static long find_recent(const monitor_t *s, long long b) {
    long lo = 0, hi = s->nrecent;
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (s->recent[mid].sample < b) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->nrecent && s->recent[lo].sample == b ? lo : -1;
}

/* A beat is withheld when the first window covering it (the first to end after it) was flagged. */
static int is_withheld(const monitor_t *s, long long b) {
    long i;
    for (i = 0; i < s->nverdicts; i++)
        if (s->verdicts[i].end > b) return s->verdicts[i].flagged;
    return 0;
}

static void on_window(void *ctx, long long end, int flagged) {
    monitor_t *s = (monitor_t *)ctx;
    /* window ends at the windows' rate -> the beat model's rate, as Python's round(t_end * fs) */
    double t_end = (double)end / (double)s->wm->fs;
    long long e = (long long)jefw_round_half_even(t_end * (double)s->m->fs);
    if (grow((void **)&s->verdicts, &s->cap_verdicts, s->nverdicts + 1, sizeof *s->verdicts) != 0) {
        s->engine_failed = -1; /* reported as out of memory by the caller */
        return;
    }
    s->verdicts[s->nverdicts].end = e;
    s->verdicts[s->nverdicts++].flagged = flagged;
    s->quality_upto = e;
}

static void print_episode(monitor_t *s, const jefw_episode_t *ep) {
    int k;
    for (k = 0; k < NUM_RHYTHMS; k++)
        if (strcmp(RHYTHM_NAMES[k], ep->rhythm) == 0) s->episode_counts[k]++;
    fprintf(s->out, "{\"offset\": %lld, \"onset\": %lld, \"rhythm\": \"%s\", \"t_offset\": %.4f, \"t_onset\": %.4f, "
                    "\"type\": \"episode\"}\n", ep->offset, ep->onset, ep->rhythm,
            jefw_round_half_even((double)ep->offset / s->m->fs * 1e4) / 1e4,
            jefw_round_half_even((double)ep->onset / s->m->fs * 1e4) / 1e4);
}

static double beat_time(const monitor_t *s, long long b) {
    return jefw_round_half_even((double)b / s->m->fs * 1e4) / 1e4;
}

static int rhythm_push(monitor_t *s, long long b, const char *label, char *err) {
    jefw_episode_t eps[JEFW_RHYTHM_MAX_OUT];
    long i = find_recent(s, b);
    const beat_t *r = i >= 0 ? &s->recent[i] : NULL;
    int n = jefw_rhythm_push(s->rhythm, b, label, r && r->atrial ? r->atrial : NULL, r ? r->n_atrial : 0, eps,
                             JEFW_RHYTHM_MAX_OUT, err), k;
    if (n < 0) return -1;
    for (k = 0; k < n; k++) print_episode(s, &eps[k]);
    return 0;
}

/* Label a batch of beats (all with a full window, none withheld) and print their events in order. */
static int label_batch(monitor_t *s, const long long *todo, int n, char *err) {
    const jefw_model_t *m = s->m;
    int C = s->num_classes, i, c;
    long W = m->window;
    const float *logits;
    size_t count;
    double t0;
    for (i = 0; i < n; i++) {
        long long a = todo[i] - m->beat_before - s->hist_start;
        memcpy(s->batch + (long)i * W, s->hist + a, sizeof(float) * (size_t)W); /* row 0: the model lead */
    }
    t0 = jefw_now();
    if (jefw_engine_infer(s->e, s->batch, n, err) != 0 || jefw_engine_output(s->e, "logits", &logits, &count, err) != 0) {
        s->engine_failed = 1;
        return -1;
    }
    s->engine_time += jefw_now() - t0;
    if ((long)count != (long)n * C) {
        jefw_errf(err, "engine logits have %lu values for %d beats x %d classes", (unsigned long)count, n, C);
        s->engine_failed = 1;
        return -1;
    }
    for (i = 0; i < n; i++) {
        double f[MAX_FEATURES], p[MAX_CLASSES];
        long r = find_recent(s, todo[i]);
        int best;
        if (m->rr_fusion) {
            int nrr = rr_feature_row(s, r, f);
            if (m->template_leads && template_feature_row(s, r, f + nrr) != 0) {
                jefw_errf(err, "out of memory");
                return -1;
            }
        }
        best = jefw_beat_decode(m, logits + (long)i * C, m->rr_fusion ? f : NULL, p);
        s->counts[1]++;
        s->class_counts[best]++;
        fprintf(s->out, "{\"label\": ");
        jefw_json_string(s->out, m->labels[best]);
        fputs(", \"p\": [", s->out);
        for (c = 0; c < C; c++) fprintf(s->out, "%s%.4f", c ? ", " : "", jefw_round_half_even(p[c] * 1e4) / 1e4);
        fprintf(s->out, "], \"sample\": %lld, \"t\": %.4f, \"type\": \"beat\"}\n", todo[i], beat_time(s, todo[i]));
        if (rhythm_push(s, todo[i], m->labels[best], err) != 0) return -1;
    }
    return 0;
}

/* Every pending beat whose window, quality verdict and next beat are known (all of them at the end). */
static int label_ready(monitor_t *s, int final, char *err) {
    const jefw_model_t *m = s->m;
    long long todo[MAX_BATCH];
    int nt = 0;
    long i, done = 0;
    for (i = 0; i < s->npending; i++) {
        long long b = s->pending[i];
        int ready = final || (b + m->beat_after <= s->model_samples && s->quality_upto > b &&
                              (!m->rr_fusion || b != s->recent[s->nrecent - 1].sample));
        if (!ready) break;
        done++;
        s->counts[0]++;
        if (b - m->beat_before < s->hist_start || b + m->beat_after > s->model_samples) {
            if (nt && label_batch(s, todo, nt, err) != 0) return -1;
            nt = 0;
            s->counts[3]++;
            fprintf(s->out, "{\"label\": null, \"reason\": \"no full window (stream start or end)\", \"sample\": %lld, "
                            "\"t\": %.4f, \"type\": \"beat\"}\n", b, beat_time(s, b));
        } else if (is_withheld(s, b)) {
            if (nt && label_batch(s, todo, nt, err) != 0) return -1;
            nt = 0;
            s->counts[2]++;
            fprintf(s->out, "{\"label\": \"withheld\", \"reason\": \"noisy window\", \"sample\": %lld, \"t\": %.4f, "
                            "\"type\": \"beat\"}\n", b, beat_time(s, b));
            if (rhythm_push(s, b, "withheld", err) != 0) return -1;
        } else {
            todo[nt++] = b;
            if (nt == MAX_BATCH) {
                if (label_batch(s, todo, nt, err) != 0) return -1;
                nt = 0;
            }
        }
    }
    if (nt && label_batch(s, todo, nt, err) != 0) return -1;
    memmove(s->pending, s->pending + done, sizeof(long long) * (size_t)(s->npending - done));
    s->npending -= done;
    return 0;
}

/* Each recent beat's pre-QRS stretch (as soon as it is detected) and its QRS (once the signal after it came). */
static int cache_segments(monitor_t *s, int final) {
    const jefw_model_t *m = s->m;
    long i;
    int h = m->template_half, L = m->template_leads, w = 2 * h, l, k;
    for (i = 0; i < s->nrecent; i++) {
        beat_t *r = &s->recent[i];
        if (!r->atrial_done) {
            long long a, b;
            long long len = jefw_af_segment_bounds(&s->rcfg, (double)m->fs, r->sample, &a, &b);
            r->atrial_done = 1;
            if (a - s->hist_start >= 0 && b - s->hist_start <= s->hist_len) {
                r->atrial = (double *)malloc(sizeof(double) * (size_t)(len > 0 ? len : 1));
                if (!r->atrial) return -1;
                for (k = 0; k < len; k++) r->atrial[k] = (double)s->hist[a - s->hist_start + k];
                r->n_atrial = (int)len;
            }
        }
        if (m->rr_fusion && L && !r->seg_done && (r->sample + h <= s->model_samples || final)) {
            long long a = r->sample - h - s->hist_start, b = r->sample + h - s->hist_start;
            r->seg_done = 1;
            if (a >= 0 && b <= s->hist_len) {
                r->seg = (double *)malloc(sizeof(double) * (size_t)(L * w));
                if (!r->seg) return -1;
                for (l = 0; l < L; l++)
                    for (k = 0; k < w; k++) r->seg[l * w + k] = (double)s->hist[(long)l * s->hist_cap + a + k];
            }
        }
    }
    return 0;
}

/* Newly settled R peaks: each waits for its label (pending) and joins the beats the features look at (recent). */
static int add_peaks(monitor_t *s, const long long *peaks, long n) {
    long k;
    if (grow((void **)&s->pending, &s->cap_pending, s->npending + n, sizeof(long long)) != 0 ||
        grow((void **)&s->recent, &s->cap_recent, s->nrecent + n, sizeof(beat_t)) != 0)
        return -1;
    for (k = 0; k < n; k++) {
        s->pending[s->npending++] = peaks[k];
        memset(&s->recent[s->nrecent], 0, sizeof(beat_t));
        s->recent[s->nrecent++].sample = peaks[k];
    }
    return 0;
}

/* Model-rate samples of the beat rows: filter, normalise, append to the history; their R peaks become pending. */
static int beat_samples(monitor_t *s, const double *y, long count, int final, char *err) {
    const jefw_model_t *m = s->m;
    const long long *peaks;
    long j, np, k, history;
    int r;
    if (s->hist_len + count > s->hist_cap) { /* room for this block (the history is trimmed after each block) */
        long cap = 2 * (s->hist_len + count), rr;
        float *h = (float *)malloc(sizeof(float) * (size_t)(cap * s->R));
        if (!h) goto oom;
        for (rr = 0; rr < s->R; rr++) memcpy(h + rr * cap, s->hist + rr * s->hist_cap, sizeof(float) * (size_t)s->hist_len);
        free(s->hist);
        s->hist = h, s->hist_cap = cap;
    }
    if (grow((void **)&s->raw0, &s->raw_cap, count + 1, sizeof(double)) != 0) goto oom;
    for (j = 0; j < count; j++) {
        double v[2];
        for (r = 0; r < s->R; r++) v[r] = y[j * s->R + r];
        s->raw0[j] = v[0];
        jefw_filter_sample(&s->flt, v);
        for (r = 0; r < s->R; r++) s->hist[(long)r * s->hist_cap + s->hist_len] = jefw_normalise(&s->bm, r, v[r]);
        s->hist_len++;
    }
    s->model_samples += count;
    if (count) {
        np = jefw_qrs_push(s->qrs, s->raw0, count, &peaks, err);
        if (np < 0) return -1;
        if (add_peaks(s, peaks, np) != 0) goto oom;
    }
    if (final) {
        np = jefw_qrs_finish(s->qrs, &peaks, err);
        if (np < 0) return -1;
        if (add_peaks(s, peaks, np) != 0) goto oom;
    }
    if (cache_segments(s, final) != 0) goto oom;
    if (label_ready(s, final, err) != 0) return -1;
    /* trim as Python does: the history beyond `keep` unless a pending beat still needs it ... */
    if (s->hist_len > s->keep) {
        long long oldest = s->model_samples - s->keep, drop = s->hist_len - s->keep;
        for (k = 0; k < s->npending; k++)
            if (s->pending[k] - m->beat_before < oldest) oldest = s->pending[k] - m->beat_before;
        if (oldest - s->hist_start < drop) drop = oldest - s->hist_start;
        if (drop > 0) {
            for (r = 0; r < s->R; r++)
                memmove(s->hist + (long)r * s->hist_cap, s->hist + (long)r * s->hist_cap + drop,
                        sizeof(float) * (size_t)(s->hist_len - drop));
            s->hist_len -= (long)drop;
            s->hist_start += drop;
        }
    }
    { /* ... the verdicts no pending beat can need ... */
        long long floor = s->model_samples - s->keep;
        long cut = 0;
        for (k = 0; k < s->npending; k++)
            if (s->pending[k] < floor) floor = s->pending[k];
        while (cut < s->nverdicts && s->verdicts[cut].end <= floor) cut++;
        memmove(s->verdicts, s->verdicts + cut, sizeof(verdict_t) * (size_t)(s->nverdicts - cut));
        s->nverdicts -= cut;
    }
    /* ... and the beats (with their segments) before the history the first pending beat's features read */
    history = m->rr_fusion ? (m->rr_history > m->template_beats ? m->rr_history : m->template_beats) : 0;
    {
        long first = s->nrecent, cut;
        if (s->npending) {
            long idx = find_recent(s, s->pending[0]);
            if (idx >= 0) first = idx;
        }
        cut = first - history - 1;
        if (cut > 0) {
            for (k = 0; k < cut; k++) beat_free(&s->recent[k]);
            memmove(s->recent, s->recent + cut, sizeof(beat_t) * (size_t)(s->nrecent - cut));
            s->nrecent -= cut;
        }
    }
    return 0;
oom:
    jefw_errf(err, "out of memory in the beat monitor");
    return -1;
}

static int beat_frames(monitor_t *s, const unsigned char *bytes, long frames, char *err) {
    const double *y;
    const uint8_t *yf;
    long i, count;
    int r, nl = s->o->num_leads;
    if (grow((void **)&s->x, &s->x_cap, (frames + 1) * s->R, sizeof(double)) != 0 ||
        grow((void **)&s->xflags, &s->flags_cap, frames + 1, 1) != 0) {
        jefw_errf(err, "out of memory");
        return -1;
    }
    if (frames > 0) memset(s->xflags, 0, (size_t)frames);
    for (i = 0; i < frames; i++)
        for (r = 0; r < s->R; r++) {
            const unsigned char *b = bytes + 2 * ((size_t)i * (size_t)nl + (size_t)s->cols[r]);
            int16_t raw = (int16_t)(uint16_t)(b[0] | (b[1] << 8));
            s->x[i * s->R + r] = ((double)raw - s->o->baseline) / s->o->gain;
        }
    count = jefw_resampler_push(&s->rs, s->x, s->xflags, frames, &y, &yf);
    if (count < 0) {
        jefw_errf(err, "out of memory in the resampler");
        return -1;
    }
    return beat_samples(s, y, count, 0, err);
}

static int consume(void *ctx, const unsigned char *frames, long n, char *err) {
    monitor_t *s = (monitor_t *)ctx;
    double t0 = jefw_now();
    int rc = jefw_stream_push(s->windows, frames, n, err);
    if (rc != JEFW_EXIT_OK) return rc;
    if (s->engine_failed < 0) {
        jefw_errf(err, "out of memory");
        return JEFW_EXIT_SYSTEM;
    }
    if (beat_frames(s, frames, n, err) != 0) return s->engine_failed > 0 ? JEFW_EXIT_ENGINE : JEFW_EXIT_SYSTEM;
    fflush(s->out);
    s->busy += jefw_now() - t0;
    return JEFW_EXIT_OK;
}

static int finish_beats(monitor_t *s, char *err) {
    const double *y;
    const uint8_t *yf;
    long count = jefw_resampler_flush(&s->rs, &y, &yf);
    jefw_episode_t eps[JEFW_RHYTHM_MAX_OUT];
    int n, k;
    if (count < 0) {
        jefw_errf(err, "out of memory in the resampler");
        return JEFW_EXIT_SYSTEM;
    }
    if (beat_samples(s, y, count, 1, err) != 0) return s->engine_failed > 0 ? JEFW_EXIT_ENGINE : JEFW_EXIT_SYSTEM;
    n = jefw_rhythm_finish(s->rhythm, s->model_samples, eps, JEFW_RHYTHM_MAX_OUT);
    for (k = 0; k < n; k++) print_episode(s, &eps[k]);
    return JEFW_EXIT_OK;
}

/* The monitor's part of the summary line (BeatStream.summary and MonitorStream's timing). */
static char *summary_extra(monitor_t *s, double signal_s) {
    const jefw_model_t *m = s->m;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int c, k, first = 1;
    if (!f) return NULL;
    fprintf(f, ", \"beats\": {\"after_samples\": %d, \"before_samples\": %d, \"beats\": {\"beats\": %lld, "
               "\"labelled\": %lld, \"no_window\": %lld, \"withheld\": %lld}, \"classes\": {",
            m->beat_after, m->beat_before, s->counts[0], s->counts[1], s->counts[3], s->counts[2]);
    for (c = 0; c < s->num_classes; c++) {
        fputs(c ? ", " : "", f);
        jefw_json_string(f, m->labels[c]);
        fprintf(f, ": %lld", s->class_counts[c]);
    }
    fprintf(f, "}, \"engine_s\": %.4f, \"episodes\": {", s->engine_time);
    for (k = 0; k < NUM_RHYTHMS; k++)
        if (s->episode_counts[k]) {
            fprintf(f, "%s\"%s\": %lld", first ? "" : ", ", RHYTHM_NAMES[k], s->episode_counts[k]);
            first = 0;
        }
    fprintf(f, "}, \"fs_model\": %d, \"leads\": [", m->fs);
    jefw_json_string(f, m->lead_names[0]);
    fputs("], \"model\": ", f);
    jefw_json_string(f, m->model_name);
    fputs(", \"template_leads\": [", f);
    for (k = 0; k < (m->rr_fusion ? m->template_leads : 0); k++) {
        fputs(k ? ", " : "", f);
        jefw_json_string(f, k == 0 ? m->lead_names[0] : s->q_names[1]);
    }
    fprintf(f, "]}, \"monitor_processing_s\": %.4f, \"monitor_real_time_factor\": ", s->busy);
    if (s->busy > 0) fprintf(f, "%.1f", signal_s / s->busy);
    else fputs("null", f);
    fclose(f);
    return text;
}

static void monitor_free(monitor_t *s) {
    long i;
    for (i = 0; i < s->nrecent; i++) beat_free(&s->recent[i]);
    free(s->recent), free(s->pending), free(s->verdicts), free(s->hist), free(s->x), free(s->raw0), free(s->xflags), free(s->batch);
    jefw_resampler_free(&s->rs);
    jefw_filter_free(&s->flt);
    if (s->qrs) jefw_qrs_close(s->qrs);
    if (s->rhythm) jefw_rhythm_close(s->rhythm);
    if (s->windows) jefw_stream_close(s->windows);
}

/* The stream's leads: the beat lead's column, the first other lead's (the template's and the quality windows'
 * second lead). */
static int choose_leads(monitor_t *s, char *err) {
    char names[JEFW_MAX_LEADS][64];
    int n = jefw_parse_leads(s->o->leads, names, JEFW_MAX_LEADS, err), k, first = -1, other = -1;
    if (n < 0) return -1;
    for (k = 0; k < n; k++) {
        if (strcmp(names[k], s->m->lead_names[0]) == 0) {
            if (first < 0) first = k;
        } else if (other < 0) {
            other = k;
            memcpy(s->lead_buf[1], names[k], sizeof s->lead_buf[1]); /* both 64 bytes, NUL-terminated */
        }
    }
    s->o->num_leads = n;
    if (first < 0) {
        jefw_errf(err, "stdin: the beat model needs lead %s; the frames carry %s", s->m->lead_names[0], s->o->leads);
        return -1;
    }
    if (s->m->rr_fusion && s->m->template_leads == 2 && other < 0) {
        jefw_errf(err, "stdin: the beat fusion compares beats on %s and a second lead; the frames carry %s",
                  s->m->lead_names[0], s->o->leads);
        return -1;
    }
    s->cols[0] = first;
    s->cols[1] = other;
    s->R = s->m->rr_fusion && s->m->template_leads == 2 ? 2 : 1;
    snprintf(s->lead_buf[0], sizeof s->lead_buf[0], "%s", s->m->lead_names[0]);
    s->q_names[0] = s->lead_buf[0];
    s->q_names[1] = other >= 0 ? s->lead_buf[1] : NULL;
    return 0;
}

int jefw_run_monitor(const jefw_model_t *m, jefw_engine_t *e, const jefw_model_t *wm, jefw_engine_t *we,
                     jefw_stream_options_t *o, FILE *in, FILE *out, FILE *report) {
    monitor_t *s = (monitor_t *)calloc(1, sizeof *s);
    jefw_qrs_config_t qc;
    char err[JEFW_ERR], *extra = NULL;
    int rc = JEFW_EXIT_OK;
    if (!s) {
        fprintf(report, "error: out of memory\n");
        return JEFW_EXIT_SYSTEM;
    }
    s->m = m, s->e = e, s->o = o, s->out = out;
    s->num_classes = m->num_labels;
    s->num_features = m->rr_fusion ? m->rr_num_features : 0;
    if (m->num_leads != 1 || m->num_labels > MAX_CLASSES || s->num_features > MAX_FEATURES ||
        (m->rr_fusion && (s->num_features != (m->rr_spread ? 6 : 3) + 3 * m->template_leads ||
                          m->rr_history > 255 || m->template_beats > 255))) {
        fprintf(report, "error: a beat model with %d leads, %d classes and %d fusion features: this runner takes one "
                        "lead, at most %d classes and the RR + template features of toolkit/tasks/beats.py (histories up to 255 beats)\n",
                m->num_leads, m->num_labels, s->num_features, MAX_CLASSES);
        free(s);
        return JEFW_EXIT_UNSUPPORTED;
    }
    if (choose_leads(s, err) != 0) { /* --gain and --chunk: checked by jefw_stream_open below */
        fprintf(report, "error: %s\n", err);
        free(s);
        return JEFW_EXIT_INPUT;
    }
    /* the beat rows: the model lead, then the template's second lead scaled by the model lead's constants */
    s->bm = *m;
    s->bm.num_leads = s->R;
    s->bm_mean[0] = s->bm_mean[1] = m->mean[0];
    s->bm_std[0] = s->bm_std[1] = m->std[0];
    s->bm.mean = s->bm_mean, s->bm.std = s->bm_std;
    /* the quality windows: not normalised, no labels, their own rate and band-pass */
    s->qm = *m;
    s->qm.fs = m->quality_fs, s->qm.window = m->quality_window, s->qm.hop = m->quality_hop;
    s->qm.window_s = m->quality_window_s, s->qm.hop_s = m->quality_hop_s;
    s->qm.num_leads = s->q_names[1] ? 2 : 1;
    s->qm.lead_names = s->q_names;
    s->qm.num_sos = m->quality_num_sos, s->qm.sos = m->quality_sos, s->qm.sos_zi = m->quality_sos_zi;
    s->qm.normalised = 0;
    s->qm_mean[0] = s->qm_mean[1] = 0.0, s->qm_std[0] = s->qm_std[1] = 1.0;
    s->qm.mean = s->qm_mean, s->qm.std = s->qm_std;
    s->qm.num_labels = 0;
    s->wm = wm ? wm : &s->qm;
    jefw_qrs_config_defaults(&qc);
    jefw_rhythm_config_defaults(&s->rcfg);
    s->keep = (long)(HISTORY_S * m->fs) > 2L * m->window ? (long)(HISTORY_S * m->fs) : 2L * m->window;
    s->batch = (float *)malloc(sizeof(float) * (size_t)MAX_BATCH * (size_t)m->window);
    if (!s->batch || jefw_filter_init(&s->flt, &s->bm) != 0) {
        fprintf(report, "error: out of memory\n");
        rc = JEFW_EXIT_SYSTEM;
        goto done;
    }
    if ((rc = jefw_stream_open(&s->windows, s->wm, wm ? we : NULL, o, out, err)) != JEFW_EXIT_OK ||
        (jefw_resampler_init(&s->rs, s->R, o->fs, &s->bm, err) != 0 && (rc = JEFW_EXIT_USAGE)) ||
        (jefw_qrs_open(&s->qrs, (double)m->fs, &qc, err) != 0 && (rc = JEFW_EXIT_USAGE)) ||
        (jefw_rhythm_open(&s->rhythm, (double)m->fs, &s->rcfg, err) != 0 && (rc = JEFW_EXIT_USAGE))) {
        fprintf(report, "error: %s\n", err);
        goto done;
    }
    jefw_stream_on_window(s->windows, on_window, s);
    rc = jefw_read_frames(in, report, o->num_leads, o->chunk, consume, s);
    if (rc == JEFW_EXIT_OK) {
        double t0 = jefw_now();
        if ((rc = jefw_stream_flush(s->windows, err)) == JEFW_EXIT_OK) rc = finish_beats(s, err);
        s->busy += jefw_now() - t0;
        if (rc != JEFW_EXIT_OK) fprintf(report, "error: %s\n", err);
    }
    if (rc == JEFW_EXIT_OK) {
        extra = summary_extra(s, (double)jefw_stream_samples_in(s->windows) / (double)o->fs);
        if (!extra) {
            fprintf(report, "error: out of memory\n");
            rc = JEFW_EXIT_SYSTEM;
        } else
            rc = jefw_stream_finish(s->windows, extra, report);
    }
done:
    free(extra);
    monitor_free(s);
    free(s);
    return rc;
}
