/* A beat's fusion features and its decoded class: toolkit/tasks/beats.py's rr_features, BeatTemplate.features
 * and RrFusion, number for number (means as numpy's pairwise sums, medians as np.median), so the C monitor labels
 * beats as the Python one does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jefw.h"

#define FEATURE_EPS 1e-3 /* log((range + eps) / (template range + eps)) and the same for the slope length */
/* rr_spread_features (toolkit/tasks/beats.py RR_SPREAD_*; tests/test_firmware_monitor.py keeps them equal) */
#define RR_SPREAD_EPS 0.01
#define RR_MAD_SCALE 1.4826
#define RR_Z_EPS 0.02
#define RR_Z_MAX 10.0
#define RR_SPREAD_FLOOR -5.0
#define MAX_SPREAD_HISTORY 256
#define MAX_TEMPLATE_BEATS 256

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double clip_feature(double v, double c) {
    if (isnan(v)) return 0.0; /* np.nan_to_num, then the clip (infinities end at +-c) */
    return v < -c ? -c : (v > c ? c : v);
}

void jefw_rr_features(const long long *beats, long n, const long long *next, double clip, double out[3]) {
    double pre = NAN, post = NAN, mean;
    int k;
    if (n < 2 && !next) {
        out[0] = out[1] = out[2] = 0.0;
        return;
    }
    if (n >= 2) pre = (double)(beats[n - 1] - beats[n - 2]);
    if (next) post = (double)(*next - beats[n - 1]);
    if (isnan(pre)) pre = post;
    if (isnan(post)) post = pre;
    mean = n > 1 ? (double)(beats[n - 1] - beats[0]) / (double)(n - 1) : pre; /* integer RRs: their sum is exact */
    out[0] = log(pre / mean), out[1] = log(post / mean), out[2] = log(pre / post);
    for (k = 0; k < 3; k++) out[k] = clip_feature(out[k], clip);
}

static double sorted_median(double *v, long n) { /* np.median: sorts, the middle one or the mean of the two */
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

void jefw_rr_spread_features(const long long *beats, long n, int history, double clip, double out[3]) {
    double past[MAX_SPREAD_HISTORY], tmp[MAX_SPREAD_HISTORY], med, mad, mean, sd, z, pre;
    long first = n - 2 - history > 0 ? n - 2 - history : 0, m = n - 2 - first, k;
    out[0] = out[1] = log(RR_SPREAD_EPS), out[2] = 0.0;
    if (n < 3 || m < 2 || m > MAX_SPREAD_HISTORY) return; /* fewer than two intervals before the pre-RR */
    for (k = 0; k < m; k++) past[k] = log((double)(beats[first + k + 1] - beats[first + k]));
    memcpy(tmp, past, sizeof(double) * (size_t)m);
    med = sorted_median(tmp, m);
    for (k = 0; k < m; k++) tmp[k] = fabs(past[k] - med);
    mad = RR_MAD_SCALE * sorted_median(tmp, m);
    mean = jefw_np_sum(past, m) / (double)m; /* np.std: pairwise sums, as numpy */
    for (k = 0; k < m; k++) tmp[k] = (past[k] - mean) * (past[k] - mean);
    sd = sqrt(jefw_np_sum(tmp, m) / (double)m);
    pre = log((double)(beats[n - 1] - beats[n - 2]));
    z = (pre - med) / (mad + RR_Z_EPS);
    z = isnan(z) ? 0.0 : (z < -RR_Z_MAX ? -RR_Z_MAX : (z > RR_Z_MAX ? RR_Z_MAX : z));
    out[0] = log(sd + RR_SPREAD_EPS), out[1] = log(mad + RR_SPREAD_EPS), out[2] = z * (clip / RR_Z_MAX);
    for (k = 0; k < 2; k++) /* np.nan_to_num, then np.clip to [floor, clip] */
        out[k] = isnan(out[k]) ? 0.0 : (out[k] < RR_SPREAD_FLOOR ? RR_SPREAD_FLOOR : (out[k] > clip ? clip : out[k]));
    out[2] = clip_feature(out[2], clip);
}

int jefw_template_features(const double *seg, const double *const *prev, int np, int leads, int width, double clip,
                           double *out) {
    int l, k, q;
    double *t, *g, *d, *col;
    memset(out, 0, sizeof(double) * (size_t)(3 * leads));
    if (!seg || np == 0) return 0;
    t = (double *)malloc(sizeof(double) * (size_t)(3 * width + np));
    if (!t) return -1;
    g = t + width, d = g + width, col = d + width;
    for (l = 0; l < leads; l++) {
        double gm, tm, dot = 0.0, ng = 0.0, nt = 0.0, gmin, gmax, tmin, tmax;
        for (k = 0; k < width; k++) { /* the template: np.median over the previous beats, sample by sample */
            for (q = 0; q < np; q++) col[q] = prev[q][l * width + k];
            t[k] = sorted_median(col, np);
            g[k] = seg[l * width + k];
        }
        gm = jefw_np_sum(g, width) / width, tm = jefw_np_sum(t, width) / width;
        for (k = 0; k < width; k++) g[k] -= gm, t[k] -= tm;
        gmin = gmax = g[0], tmin = tmax = t[0];
        for (k = 0; k < width; k++) {
            dot += g[k] * t[k], ng += g[k] * g[k], nt += t[k] * t[k];
            gmin = g[k] < gmin ? g[k] : gmin, gmax = g[k] > gmax ? g[k] : gmax;
            tmin = t[k] < tmin ? t[k] : tmin, tmax = t[k] > tmax ? t[k] : tmax;
        }
        out[3 * l] = 1.0 - dot / (sqrt(ng) * sqrt(nt) + 1e-9);
        out[3 * l + 1] = log((gmax - gmin + FEATURE_EPS) / (tmax - tmin + FEATURE_EPS));
        for (k = 0; k + 1 < width; k++) d[k] = fabs(g[k + 1] - g[k]);
        gm = jefw_np_sum(d, width - 1);
        for (k = 0; k + 1 < width; k++) d[k] = fabs(t[k + 1] - t[k]);
        tm = jefw_np_sum(d, width - 1);
        out[3 * l + 2] = log((gm + FEATURE_EPS) / (tm + FEATURE_EPS));
    }
    for (k = 0; k < 3 * leads; k++) out[k] = clip_feature(out[k], clip);
    free(t);
    return 0;
}

int jefw_beat_decode(const jefw_model_t *m, const float *logits, const double *features, double *p) {
    int C = m->num_labels, F = m->rr_num_features, c, k, best = 0;
    double z[64], fused[64], zmean = 0.0, zmax, sum = 0.0;
    for (c = 0; c < C; c++) z[c] = (double)logits[c], zmean += z[c];
    zmean /= C;
    for (c = 0; c < C; c++) {
        if (features) { /* fused = weight @ [logits - mean(logits), features] + bias */
            const double *w = m->rr_weight + (long)c * (C + F);
            double acc = 0.0;
            for (k = 0; k < C; k++) acc += (z[k] - zmean) * w[k];
            for (k = 0; k < F; k++) acc += features[k] * w[C + k];
            fused[c] = acc + m->rr_bias[c];
        } else
            fused[c] = z[c];
    }
    zmax = fused[0];
    for (c = 1; c < C; c++) zmax = fused[c] > zmax ? fused[c] : zmax;
    for (c = 0; c < C; c++) p[c] = exp(fused[c] - zmax), sum += p[c];
    for (c = 0; c < C; c++) {
        p[c] /= sum;
        if (p[c] > p[best]) best = c;
    }
    return best;
}
