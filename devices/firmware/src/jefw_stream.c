/* Streaming mode: little-endian int16 frames (lead-interleaved) on stdin -> one JSON line per hop.
 * The same steps as devices/stream's StreamClassifier: mV conversion and ADC-rail flags, causal polyphase
 * resampler, band-pass with carried state, normalisation, a ring of one window, a window every hop, quality
 * checks (saturation, flat line, noise: jefw_quality.c), the engine on clean windows, sigmoid scores, hysteresis decisions. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jefw.h"
#include "jefw_config.h"

#define FLAG_NAN 1
#define FLAG_SATURATED 2
#define FLAG_GAP 4

void jefw_stream_config_defaults(jefw_stream_config_t *c) {
    c->flat_ptp_mv = JEFW_QUALITY_FLAT_PTP_MV;
    c->flat_s = JEFW_QUALITY_FLAT_S;
    c->saturation_max_fraction = JEFW_QUALITY_SATURATION_MAX_FRACTION;
    c->noise_hf_mv = JEFW_QUALITY_NOISE_HF_MV;
    c->noise_band_std_mv = JEFW_QUALITY_NOISE_BAND_STD_MV;
    c->artefact_w[0] = JEFW_QUALITY_ARTEFACT_W_HF_MV;
    c->artefact_w[1] = JEFW_QUALITY_ARTEFACT_W_BAND_STD_MV;
    c->artefact_w[2] = JEFW_QUALITY_ARTEFACT_W_LF_RATIO;
    c->artefact_w[3] = JEFW_QUALITY_ARTEFACT_W_PTP_RATIO;
    c->artefact_w[4] = JEFW_QUALITY_ARTEFACT_W_PERIODICITY;
    c->artefact_max = JEFW_QUALITY_ARTEFACT_MAX;
    c->segment_s = JEFW_QUALITY_SEGMENT_S;
    c->periodicity_fs = JEFW_QUALITY_PERIODICITY_FS;
    c->period_min_s = JEFW_QUALITY_PERIOD_MIN_S;
    c->period_max_s = JEFW_QUALITY_PERIOD_MAX_S;
    c->hysteresis = JEFW_STREAM_HYSTERESIS;
    c->on_windows = JEFW_STREAM_ON_WINDOWS;
    c->off_windows = JEFW_STREAM_OFF_WINDOWS;
}

typedef struct {
    const jefw_model_t *m;
    jefw_engine_t *e;
    jefw_stream_options_t *o;
    FILE *out, *report;
    int L, cols[JEFW_MAX_LEADS];
    double lo, hi; /* ADC rails in mV */
    jefw_resampler_t rs;
    jefw_filter_t flt;
    double *raw, *band, *wraw, *wband, *x, *extremes; /* extremes: 4 x window scratch for the flat-run test */
    float *norm, *wnorm;
    uint8_t *flags, *wflags, *xflags;
    long long model_samples, next_end, samples_in, windows, classified, flagged_counts[5];
    unsigned char *decision;
    int *run;
    double *on_since, *on_seconds, busy, engine_time, tick, *latency;
    size_t nlat, caplat;
    int engine_failed;
    jefw_window_cb on_window; /* told each window's end (model samples) and whether it was flagged */
    void *on_window_ctx;
} stream_t;

struct jefw_stream {
    stream_t s;
};

static const char *const FLAG_NAMES[5] = {"flatline", "gap", "nan", "noise", "saturation"}; /* sorted, as Python */

/* Python's canonical_lead: header spellings (MLII, D2, AVR, ...) to I, II, III, aVR, aVL, aVF, V1..V6. */
void jefw_canonical_lead(const char *in, char *out, size_t n) {
    static const char *const std[] = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
    static const char *const alias[][2] = {{"MLI", "I"}, {"MLII", "II"}, {"MLIII", "III"}, {"D1", "I"},
                                           {"D2", "II"}, {"D3", "III"}};
    char up[64];
    size_t i, k = 0;
    for (i = 0; in[i] && k + 1 < sizeof up; i++)
        if (!isspace((unsigned char)in[i])) up[k++] = (char)toupper((unsigned char)in[i]);
    up[k] = '\0';
    for (i = 0; i < sizeof std / sizeof std[0]; i++) {
        char su[8];
        size_t j;
        for (j = 0; std[i][j]; j++) su[j] = (char)toupper((unsigned char)std[i][j]);
        su[j] = '\0';
        if (strcmp(up, su) == 0) {
            snprintf(out, n, "%s", std[i]);
            return;
        }
    }
    for (i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (strcmp(up, alias[i][0]) == 0) {
            snprintf(out, n, "%s", alias[i][1]);
            return;
        }
    snprintf(out, n, "%s", in);
}

int jefw_parse_leads(const char *list, char (*names)[64], int max, char *err) {
    char copy[JEFW_ERR], *tok, *save = NULL;
    int n = 0;
    snprintf(copy, sizeof copy, "%s", list);
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        if (n == max) {
            jefw_errf(err, "--leads: more than %d leads", max);
            return -1;
        }
        jefw_canonical_lead(tok, names[n], sizeof names[n]);
        n++;
    }
    if (n == 0) {
        jefw_errf(err, "stdin: give the lead order of the int16 frames (e.g. --leads II,V1)");
        return -1;
    }
    return n;
}

static int map_leads(stream_t *s, char *err) {
    char names[JEFW_MAX_LEADS][64];
    int n = jefw_parse_leads(s->o->leads, names, JEFW_MAX_LEADS, err), l, k;
    if (n < 0) return -1;
    s->o->num_leads = n;
    for (l = 0; l < s->m->num_leads; l++) {
        s->cols[l] = -1;
        for (k = 0; k < n; k++)
            if (strcmp(names[k], s->m->lead_names[l]) == 0) s->cols[l] = k;
        if (s->cols[l] < 0) {
            char need[JEFW_ERR] = "";
            size_t used = 0;
            int i;
            for (i = 0; i < s->m->num_leads && used + 8 < sizeof need; i++)
                used += (size_t)snprintf(need + used, sizeof need - used, "%s%s", i ? "," : "", s->m->lead_names[i]);
            jefw_errf(err, "stdin: the model needs %d leads (%s) but the frames carry %d (%s); lead %s is missing: "
                           "use a model trained for the stream's leads", s->m->num_leads, need, n, s->o->leads,
                      s->m->lead_names[l]);
            return -1;
        }
    }
    return 0;
}

static double percentile(double *v, size_t n, double q) { /* numpy's default (linear) on sorted data */
    double pos, frac;
    size_t i;
    if (n == 0) return 0.0;
    pos = q / 100.0 * (double)(n - 1);
    i = (size_t)floor(pos);
    frac = pos - (double)i;
    return i + 1 < n ? v[i] + (v[i + 1] - v[i]) * frac : v[i];
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_str_list(FILE *out, const char *const *names, const unsigned char *take, int n) {
    int i, first = 1;
    fputc('[', out);
    for (i = 0; i < n; i++)
        if (take[i]) {
            if (!first) fputs(", ", out);
            jefw_json_string(out, names[i]);
            first = 0;
        }
    fputc(']', out);
}

/* Quality flags of the window in wraw/wband/wflags: sets present[5] (FLAG_NAMES order); each lead's noise measures
 * go to meas (lead-major, JEFW_QUALITY_MEASURES each), its artefact score to score[lead]. */
static void quality(stream_t *s, int present[5], unsigned char *flat, unsigned char *noisy, double *meas,
                    double *score, long long counts[3]) {
    const jefw_model_t *m = s->m;
    const jefw_stream_config_t *q = &s->o->config;
    long n = m->window, i, w;
    int l;
    memset(present, 0, 5 * sizeof present[0]);
    counts[0] = counts[1] = counts[2] = 0; /* nan, gap, saturated samples */
    for (i = 0; i < n; i++) {
        if (s->wflags[i] & FLAG_NAN) counts[0]++;
        if (s->wflags[i] & FLAG_GAP) counts[1]++;
        if (s->wflags[i] & FLAG_SATURATED) counts[2]++;
    }
    present[2] = counts[0] > 0;
    present[1] = counts[1] > 0;
    present[4] = (double)counts[2] > q->saturation_max_fraction * (double)n;
    /* flat runs of flat_s, exactly (jefw_has_flat_run) */
    w = (long)jefw_round_half_even(q->flat_s * (double)m->fs);
    if (w < 1) w = 1;
    for (l = 0; l < m->num_leads; l++) {
        const double *r = s->wraw + (long)l * n, *bd = s->wband + (long)l * n;
        double *v = meas + (long)l * JEFW_QUALITY_MEASURES;
        flat[l] = (unsigned char)jefw_has_flat_run(r, n, w, q->flat_ptp_mv, s->extremes);
        jefw_lead_measures(r, bd, n, (double)m->fs, q, s->extremes, v);
        score[l] = jefw_artefact_score(v, q);
        noisy[l] = (unsigned char)jefw_lead_noisy(v, score[l], q);
        if (flat[l]) present[0] = 1;
        if (noisy[l]) present[3] = 1;
    }
}

static void decide(stream_t *s, const double *p, double t_end, unsigned char *onset, unsigned char *offset) {
    const jefw_model_t *m = s->m;
    const jefw_stream_config_t *c = &s->o->config;
    int i;
    for (i = 0; i < m->num_labels; i++) {
        int high = p[i] >= m->thresholds[i] + c->hysteresis, low = p[i] < m->thresholds[i] - c->hysteresis;
        int toward = s->decision[i] ? low : high, need = s->decision[i] ? c->off_windows : c->on_windows, sw;
        s->run[i] = toward ? s->run[i] + 1 : 0;
        sw = s->run[i] >= need;
        onset[i] = (unsigned char)(sw && !s->decision[i]);
        offset[i] = (unsigned char)(sw && s->decision[i]);
        if (sw) {
            s->decision[i] = (unsigned char)!s->decision[i];
            s->run[i] = 0;
        }
        if (onset[i]) s->on_since[i] = t_end;
        if (offset[i]) s->on_seconds[i] += t_end - s->on_since[i];
    }
}

static int window_event(stream_t *s, long long start, char *err) {
    const jefw_model_t *m = s->m;
    int L = m->num_leads, present[5], any = 0, i, l;
    long n = m->window, k, pos = (long)(start % n);
    unsigned char flat[JEFW_MAX_LEADS], noisy[JEFW_MAX_LEADS], onset[256], offset[256], above[256], none[256];
    double meas[JEFW_MAX_LEADS * JEFW_QUALITY_MEASURES], score[JEFW_MAX_LEADS], p[256], t_start = (double)start / m->fs, t_end = (double)(start + n) / m->fs;
    long long counts[3];
    for (l = 0; l < L; l++) /* the ring holds exactly one window; oldest sample at start % window */
        for (k = 0; k < n; k++) {
            long r = (long)l * n + (pos + k) % n;
            s->wraw[(long)l * n + k] = s->raw[r];
            s->wband[(long)l * n + k] = s->band[r];
            s->wnorm[(long)l * n + k] = s->norm[r];
        }
    for (k = 0; k < n; k++) s->wflags[k] = s->flags[(pos + k) % n];
    quality(s, present, flat, noisy, meas, score, counts);
    for (i = 0; i < 5; i++) any |= present[i];
    memset(none, 0, sizeof none);
    if (!any && s->e) {
        const float *logits;
        size_t count;
        double t0 = jefw_now();
        if (jefw_engine_infer(s->e, s->wnorm, 1, err) != 0 || jefw_engine_output(s->e, "logits", &logits, &count, err) != 0) {
            s->engine_failed = 1;
            return -1;
        }
        s->engine_time += jefw_now() - t0;
        if ((int)count != m->num_labels) {
            jefw_errf(err, "engine logits have %lu values for %d labels", (unsigned long)count, m->num_labels);
            s->engine_failed = 1;
            return -1;
        }
        for (i = 0; i < m->num_labels; i++) p[i] = 1.0 / (1.0 + exp(-(double)logits[i]));
        decide(s, p, t_end, onset, offset);
        for (i = 0; i < m->num_labels; i++) above[i] = (unsigned char)(p[i] >= m->thresholds[i]);
        s->classified++;
    } else
        for (i = 0; i < 5; i++) s->flagged_counts[i] += present[i];
    fprintf(s->out, "{\"above\": ");
    if (any || !s->e) fputs("null", s->out);
    else print_str_list(s->out, m->labels, above, m->num_labels);
    fputs(", \"decisions\": ", s->out);
    print_str_list(s->out, m->labels, s->decision, m->num_labels);
    fputs(", \"flag_detail\": {", s->out);
    {
        int first = 1;
        if (present[0]) {
            fputs("\"flatline\": {\"leads\": ", s->out);
            print_str_list(s->out, m->lead_names, flat, L);
            fputc('}', s->out);
            first = 0;
        }
        if (present[1]) fprintf(s->out, "%s\"gap\": {\"samples\": %lld}", first ? "" : ", ", counts[1]), first = 0;
        if (present[2]) fprintf(s->out, "%s\"nan\": {\"samples\": %lld}", first ? "" : ", ", counts[0]), first = 0;
        if (present[3]) { /* keys sorted as Python's json.dumps(sort_keys=True); index = MEASURES order */
            static const char *const keys[JEFW_QUALITY_MEASURES] = {"band_std_mv", "hf_mv", "lf_ratio", "periodicity",
                                                                    "ptp_ratio"};
            static const int index[JEFW_QUALITY_MEASURES] = {1, 0, 2, 4, 3};
            int k;
            fprintf(s->out, "%s\"noise\": {\"artefact\": [", first ? "" : ", ");
            for (l = 0; l < L; l++) fprintf(s->out, "%s%.4f", l ? ", " : "", score[l]);
            fputc(']', s->out);
            for (k = 0; k < JEFW_QUALITY_MEASURES; k++) {
                fprintf(s->out, ", \"%s\": [", keys[k]);
                for (l = 0; l < L; l++) fprintf(s->out, "%s%.4f", l ? ", " : "", meas[l * JEFW_QUALITY_MEASURES + index[k]]);
                fputc(']', s->out);
                if (k == 1) {
                    fputs(", \"leads\": ", s->out);
                    print_str_list(s->out, m->lead_names, noisy, L);
                }
            }
            fputc('}', s->out);
            first = 0;
        }
        if (present[4]) fprintf(s->out, "%s\"saturation\": {\"samples\": %lld}", first ? "" : ", ", counts[2]);
    }
    fputs("}, \"flags\": [", s->out);
    for (i = 0, l = 0; i < 5; i++)
        if (present[i]) fprintf(s->out, "%s\"%s\"", l++ ? ", " : "", FLAG_NAMES[i]);
    fprintf(s->out, "], \"index\": %lld, \"latency_ms\": %.3f, \"offset\": ", s->windows, (jefw_now() - s->tick) * 1e3);
    print_str_list(s->out, m->labels, any || !s->e ? none : offset, m->num_labels);
    fputs(", \"onset\": ", s->out);
    print_str_list(s->out, m->labels, any || !s->e ? none : onset, m->num_labels);
    fprintf(s->out, ", \"quality\": \"%s\", \"scores\": ", any ? "flagged" : "ok");
    if (any || !s->e) fputs("null", s->out);
    else {
        fputc('{', s->out);
        for (i = 0; i < m->num_labels; i++) {
            fprintf(s->out, "%s", i ? ", " : "");
            jefw_json_string(s->out, m->labels[i]);
            fprintf(s->out, ": %.9g", p[i]);
        }
        fputc('}', s->out);
    }
    fprintf(s->out, ", \"t_end\": %.10g, \"t_start\": %.10g, \"type\": \"window\"}\n", t_end, t_start);
    if (s->nlat == s->caplat) {
        size_t cap = s->caplat ? 2 * s->caplat : 1024;
        double *lat = (double *)realloc(s->latency, cap * sizeof *lat);
        if (!lat) {
            jefw_errf(err, "out of memory");
            return -1;
        }
        s->latency = lat;
        s->caplat = cap;
    }
    s->latency[s->nlat++] = (jefw_now() - s->tick) * 1e3;
    s->windows++;
    if (s->on_window) s->on_window(s->on_window_ctx, start + n, any);
    return 0;
}

/* Band-pass, normalise and store model-rate samples; cut, check and classify every window they complete. */
static int ingest(stream_t *s, const double *y, const uint8_t *yflags, long count, char *err) {
    const jefw_model_t *m = s->m;
    double v[JEFW_MAX_LEADS];
    long j, n = m->window;
    int l;
    for (j = 0; j < count; j++) {
        long pos = (long)(s->model_samples % n);
        memcpy(v, y + j * m->num_leads, sizeof(double) * (size_t)m->num_leads);
        for (l = 0; l < m->num_leads; l++) s->raw[(long)l * n + pos] = v[l];
        jefw_filter_sample(&s->flt, v);
        for (l = 0; l < m->num_leads; l++) {
            s->band[(long)l * n + pos] = v[l];
            s->norm[(long)l * n + pos] = jefw_normalise(m, l, v[l]);
        }
        s->flags[pos] = yflags[j];
        s->model_samples++;
        if (s->model_samples == s->next_end) {
            if (window_event(s, s->next_end - n, err) != 0) return -1;
            s->next_end += m->hop;
        }
    }
    return 0;
}

static int push_frames(stream_t *s, const unsigned char *bytes, long frames, char *err) {
    const double *y;
    const uint8_t *yf;
    long i, count;
    int l, nl = s->o->num_leads;
    for (i = 0; i < frames; i++) {
        uint8_t f = 0;
        for (l = 0; l < s->m->num_leads; l++) {
            const unsigned char *b = bytes + 2 * ((size_t)i * (size_t)nl + (size_t)s->cols[l]);
            int16_t raw = (int16_t)(uint16_t)(b[0] | (b[1] << 8));
            double mv = ((double)raw - s->o->baseline) / s->o->gain;
            s->x[i * s->m->num_leads + l] = mv;
            if (mv <= s->lo || mv >= s->hi) f = FLAG_SATURATED;
        }
        s->xflags[i] = f;
    }
    s->samples_in += frames;
    count = jefw_resampler_push(&s->rs, s->x, s->xflags, frames, &y, &yf);
    if (count < 0) {
        jefw_errf(err, "out of memory in the resampler");
        return -1;
    }
    return ingest(s, y, yf, count, err);
}

static void summary(stream_t *s, int ok_checks[4], int ok, const char *extra) {
    const jefw_model_t *m = s->m;
    const jefw_stream_config_t *c = &s->o->config;
    double signal_s = (double)s->samples_in / (double)s->o->fs, t_end = (double)s->model_samples / m->fs;
    long long possible = s->model_samples < m->window ? 0 : 1 + (s->model_samples - m->window) / m->hop;
    long long covered = s->windows == 0 ? 0 : (s->windows - 1) * m->hop + m->window;
    int i, first = 1;
    qsort(s->latency, s->nlat, sizeof(double), cmp_double);
    fprintf(s->out, "{\"accounting\": {\"checks\": {\"model_samples_equal_filtered\": %s, "
                    "\"model_samples_equal_offline_length\": %s, \"samples_in_equals_consumed\": %s, "
                    "\"windows_equal_possible\": %s}, \"model_samples\": %lld, \"model_samples_after_last_window\": "
                    "%lld, \"model_samples_expected\": %lld, \"model_samples_in_windows\": %lld, \"ok\": %s, "
                    "\"samples_consumed\": %lld, \"samples_filled_for_gaps\": 0, \"samples_in\": %lld, "
                    "\"windows\": %lld, \"windows_possible\": %lld}",
            ok_checks[0] ? "true" : "false", ok_checks[1] ? "true" : "false", ok_checks[2] ? "true" : "false",
            ok_checks[3] ? "true" : "false", s->model_samples, s->model_samples - covered,
            jefw_resampler_expected(&s->rs, s->rs.consumed), covered, ok ? "true" : "false", s->rs.consumed,
            s->samples_in, s->windows, possible);
    fprintf(s->out, ", \"classified\": %lld, \"config\": {\"artefact_max\": %g, \"artefact_weights\": [%g, %g, %g, %g, %g], "
                    "\"flat_ptp_mv\": %g, \"flat_s\": %g, \"hysteresis\": %g, \"noise_band_std_mv\": %g, "
                    "\"noise_hf_mv\": %g, \"off_windows\": %d, \"on_windows\": %d, \"period_max_s\": %g, "
                    "\"period_min_s\": %g, \"periodicity_fs\": %g, \"saturation_max_fraction\": %g, "
                    "\"segment_s\": %g}, \"decision_seconds\": {",
            s->classified, c->artefact_max, c->artefact_w[0], c->artefact_w[1], c->artefact_w[2], c->artefact_w[3],
            c->artefact_w[4], c->flat_ptp_mv, c->flat_s, c->hysteresis, c->noise_band_std_mv, c->noise_hf_mv,
            c->off_windows, c->on_windows, c->period_max_s, c->period_min_s, c->periodicity_fs,
            c->saturation_max_fraction, c->segment_s);
    for (i = 0; i < m->num_labels; i++) {
        double secs = s->on_seconds[i] + (s->decision[i] ? t_end - s->on_since[i] : 0.0);
        fprintf(s->out, "%s", i ? ", " : "");
        jefw_json_string(s->out, m->labels[i]);
        fprintf(s->out, ": %.3f", secs);
    }
    fputs("}, \"engine\": ", s->out);
    if (s->e) jefw_engine_info(s->e, s->out);
    else fputs("{\"engine\": null, \"mode\": \"quality only\"}", s->out);
    fprintf(s->out, ", \"engine_s\": %.4f, \"flagged\": {", s->engine_time);
    for (i = 0; i < 5; i++)
        if (s->flagged_counts[i]) {
            fprintf(s->out, "%s\"%s\": %lld", first ? "" : ", ", FLAG_NAMES[i], s->flagged_counts[i]);
            first = 0;
        }
    fprintf(s->out, "}, \"flagged_windows\": %lld, \"fs_in\": %ld, \"fs_model\": %d, \"hop_s\": %g, \"latency_ms\": "
                    "{\"max\": %.3f, \"p50\": %.3f, \"p99\": %.3f}, \"leads\": [",
            s->windows - s->classified, s->o->fs, m->fs, m->hop_s, s->nlat ? s->latency[s->nlat - 1] : 0.0,
            percentile(s->latency, s->nlat, 50.0), percentile(s->latency, s->nlat, 99.0));
    for (i = 0; i < m->num_leads; i++) {
        fprintf(s->out, "%s", i ? ", " : "");
        jefw_json_string(s->out, m->lead_names[i]);
    }
    fputs("], \"model\": ", s->out);
    jefw_json_string(s->out, m->model_name);
    fprintf(s->out, ", \"processing_s\": %.4f, \"real_time_factor\": ", s->busy);
    if (s->busy > 0) fprintf(s->out, "%.1f", signal_s / s->busy);
    else fputs("null", s->out);
    fprintf(s->out, ", \"resampler\": {\"down\": %ld, \"latency_input_samples\": %ld, \"up\": %ld}, \"runner\": \"c\", "
                    "\"signal_s\": %.3f, \"source\": \"stdin\", \"type\": \"summary\", \"version\": 1, "
                    "\"window_s\": %g%s}\n",
            s->rs.down, jefw_resampler_latency(&s->rs), s->rs.up, signal_s, m->window_s, extra ? extra : "");
}

static void stream_free(stream_t *s) {
    free(s->raw), free(s->band), free(s->wraw), free(s->wband), free(s->x), free(s->extremes);
    free(s->norm), free(s->wnorm), free(s->flags), free(s->wflags), free(s->xflags);
    free(s->decision), free(s->run), free(s->on_since), free(s->on_seconds), free(s->latency);
    jefw_resampler_free(&s->rs);
    jefw_filter_free(&s->flt);
}

void jefw_stream_close(jefw_stream_t *st) {
    if (!st) return;
    stream_free(&st->s);
    free(st);
}

int jefw_stream_open(jefw_stream_t **out_st, const jefw_model_t *m, jefw_engine_t *e, jefw_stream_options_t *o,
                     FILE *out, char *err) {
    jefw_stream_t *st = (jefw_stream_t *)calloc(1, sizeof *st);
    stream_t *s;
    long n = m->window;
    int L = m->num_leads;
    *out_st = NULL;
    if (!st) {
        jefw_errf(err, "out of memory");
        return JEFW_EXIT_SYSTEM;
    }
    s = &st->s;
    s->m = m, s->e = e, s->o = o, s->out = out;
    if (L > JEFW_MAX_LEADS || m->num_labels > 256) {
        jefw_errf(err, "%d leads / %d labels: more than this runner handles", L, m->num_labels);
        free(st);
        return JEFW_EXIT_UNSUPPORTED;
    }
    if (o->gain <= 0 || o->chunk < 1) {
        jefw_errf(err, "--gain must be positive (ADC units per mV) and --chunk >= 1");
        free(st);
        return JEFW_EXIT_USAGE;
    }
    if (map_leads(s, err) != 0) {
        free(st);
        return JEFW_EXIT_INPUT;
    }
    if (jefw_resampler_init(&s->rs, L, o->fs, m, err) != 0) {
        jefw_stream_close(st);
        return JEFW_EXIT_USAGE;
    }
    s->lo = (-32768.0 - o->baseline) / o->gain;
    s->hi = (32767.0 - o->baseline) / o->gain;
    s->next_end = n;
    s->raw = (double *)calloc((size_t)(L * n), sizeof(double));
    s->band = (double *)calloc((size_t)(L * n), sizeof(double));
    s->wraw = (double *)calloc((size_t)(L * n), sizeof(double));
    s->wband = (double *)calloc((size_t)(L * n), sizeof(double));
    s->extremes = (double *)calloc((size_t)(4 * n), sizeof(double));
    s->norm = (float *)calloc((size_t)(L * n), sizeof(float));
    s->wnorm = (float *)calloc((size_t)(L * n), sizeof(float));
    s->flags = (uint8_t *)calloc((size_t)n, 1);
    s->wflags = (uint8_t *)calloc((size_t)n, 1);
    s->x = (double *)calloc((size_t)(o->chunk + 1) * (size_t)L, sizeof(double));
    s->xflags = (uint8_t *)calloc((size_t)o->chunk + 1, 1);
    s->decision = (unsigned char *)calloc((size_t)m->num_labels + 1, 1);
    s->run = (int *)calloc((size_t)m->num_labels + 1, sizeof(int));
    s->on_since = (double *)calloc((size_t)m->num_labels + 1, sizeof(double));
    s->on_seconds = (double *)calloc((size_t)m->num_labels + 1, sizeof(double));
    if (!s->raw || !s->band || !s->wraw || !s->wband || !s->extremes || !s->norm || !s->wnorm || !s->flags ||
        !s->wflags || !s->x || !s->xflags || !s->decision || !s->run || !s->on_since || !s->on_seconds ||
        jefw_filter_init(&s->flt, m) != 0) {
        jefw_errf(err, "out of memory");
        jefw_stream_close(st);
        return JEFW_EXIT_SYSTEM;
    }
    *out_st = st;
    return JEFW_EXIT_OK;
}

void jefw_stream_on_window(jefw_stream_t *st, jefw_window_cb cb, void *ctx) {
    st->s.on_window = cb;
    st->s.on_window_ctx = ctx;
}

int jefw_stream_push(jefw_stream_t *st, const unsigned char *frames, long n, char *err) {
    stream_t *s = &st->s;
    int rc;
    s->tick = jefw_now();
    rc = push_frames(s, frames, n, err);
    s->busy += jefw_now() - s->tick;
    return rc != 0 ? (s->engine_failed ? JEFW_EXIT_ENGINE : JEFW_EXIT_SYSTEM) : JEFW_EXIT_OK;
}

int jefw_stream_flush(jefw_stream_t *st, char *err) {
    stream_t *s = &st->s;
    const double *y;
    const uint8_t *yf;
    long count;
    s->tick = jefw_now();
    count = jefw_resampler_flush(&s->rs, &y, &yf);
    if (count < 0) {
        jefw_errf(err, "out of memory in the resampler");
        return JEFW_EXIT_SYSTEM;
    }
    if (ingest(s, y, yf, count, err) != 0) return s->engine_failed ? JEFW_EXIT_ENGINE : JEFW_EXIT_SYSTEM;
    s->busy += jefw_now() - s->tick;
    return JEFW_EXIT_OK;
}

double jefw_stream_busy(const jefw_stream_t *st) { return st->s.busy; }
long long jefw_stream_samples_in(const jefw_stream_t *st) { return st->s.samples_in; }

int jefw_stream_finish(jefw_stream_t *st, const char *extra, FILE *report) {
    stream_t *s = &st->s;
    const jefw_model_t *m = s->m;
    int checks[4], ok;
    checks[0] = s->rs.produced == s->model_samples;
    checks[1] = s->model_samples == jefw_resampler_expected(&s->rs, s->rs.consumed);
    checks[2] = s->samples_in == s->rs.consumed;
    checks[3] = s->windows == (s->model_samples < m->window ? 0 : 1 + (s->model_samples - m->window) / m->hop);
    ok = checks[0] && checks[1] && checks[2] && checks[3];
    summary(s, checks, ok, extra);
    fflush(s->out);
    if (s->windows == 0) {
        fprintf(report, "error: stdin: %lld frames (%.3f s) ended before the first window of %g s: nothing was "
                        "classified\n", s->samples_in, (double)s->samples_in / (double)s->o->fs, m->window_s);
        return JEFW_EXIT_INPUT;
    }
    if (!ok) {
        fprintf(report, "FAIL stream accounting: samples in %lld, consumed %lld, model samples %lld (expected %lld), "
                        "windows %lld\n", s->samples_in, s->rs.consumed, s->model_samples,
                jefw_resampler_expected(&s->rs, s->rs.consumed), s->windows);
        return JEFW_EXIT_MISMATCH;
    }
    return JEFW_EXIT_OK;
}

int jefw_read_frames(FILE *in, FILE *report, int num_leads, long chunk, jefw_frames_cb consume, void *ctx) {
    size_t frame_bytes = 2 * (size_t)num_leads, leftover = 0, got;
    unsigned char *buf = (unsigned char *)malloc(((size_t)chunk + 1) * frame_bytes);
    char err[JEFW_ERR];
    int rc = JEFW_EXIT_OK;
    if (!buf) {
        fprintf(report, "error: out of memory\n");
        return JEFW_EXIT_SYSTEM;
    }
    while ((got = fread(buf + leftover, 1, (size_t)chunk * frame_bytes, in)) > 0) {
        size_t total = leftover + got, usable = total - total % frame_bytes;
        if (usable && (rc = consume(ctx, buf, (long)(usable / frame_bytes), err)) != JEFW_EXIT_OK) {
            fprintf(report, "error: %s\n", err);
            goto done;
        }
        memmove(buf, buf + usable, total - usable);
        leftover = total - usable;
    }
    if (ferror(in)) {
        fprintf(report, "error: stdin: read error\n");
        rc = JEFW_EXIT_INPUT;
    } else if (leftover) {
        fprintf(report, "error: stdin: stream ended inside a frame (%lu stray bytes; frames are %lu bytes = %d leads "
                        "x int16)\n", (unsigned long)leftover, (unsigned long)frame_bytes, num_leads);
        rc = JEFW_EXIT_INPUT;
    }
done:
    free(buf);
    return rc;
}

static int consume_windows(void *ctx, const unsigned char *frames, long n, char *err) {
    jefw_stream_t *st = (jefw_stream_t *)ctx;
    int rc = jefw_stream_push(st, frames, n, err);
    fflush(st->s.out);
    return rc;
}

int jefw_run_stream(const jefw_bundle_t *b, const jefw_model_t *m, jefw_engine_t *e,
                    jefw_stream_options_t *o, FILE *in, FILE *out, FILE *report) {
    jefw_stream_t *st;
    char err[JEFW_ERR];
    int rc;
    (void)b;
    if ((rc = jefw_stream_open(&st, m, e, o, out, err)) != JEFW_EXIT_OK) {
        fprintf(report, "error: %s\n", err);
        return rc;
    }
    rc = jefw_read_frames(in, report, o->num_leads, o->chunk, consume_windows, st);
    if (rc == JEFW_EXIT_OK && (rc = jefw_stream_flush(st, err)) != JEFW_EXIT_OK) fprintf(report, "error: %s\n", err);
    if (rc == JEFW_EXIT_OK) rc = jefw_stream_finish(st, NULL, report);
    jefw_stream_close(st);
    return rc;
}
