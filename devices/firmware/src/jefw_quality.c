/* Per-window signal-quality measures of one lead, the same definitions as devices/stream/quality.py
 * (lead_measures, and the flat-run test of window_quality); jefw_stream.c's quality() applies the limits. */
#include <math.h>

#include "jefw.h"
#include "jefw_config.h"

/* 1 when some `w` consecutive samples of r[0..n) span less than `ptp`: running max/min over w samples from
 * prefix and suffix extremes within blocks of w (van Herk / Gil-Werman, O(n)), scratch `g` of 4 n doubles.
 * The same exact test as window_quality() in Python: every flat run of >= flat_s is caught, none shorter. */
int jefw_has_flat_run(const double *r, long n, long w, double ptp, double *g) {
    double *gmax = g, *gmin = g + n, *hmax = g + 2 * n, *hmin = g + 3 * n;
    long i;
    if (w < 1 || w > n) return 0;
    for (i = 0; i < n; i++) {
        if (i % w == 0) {
            gmax[i] = gmin[i] = r[i];
        } else {
            gmax[i] = r[i] > gmax[i - 1] ? r[i] : gmax[i - 1];
            gmin[i] = r[i] < gmin[i - 1] ? r[i] : gmin[i - 1];
        }
    }
    for (i = n - 1; i >= 0; i--) {
        if (i == n - 1 || (i + 1) % w == 0) {
            hmax[i] = hmin[i] = r[i];
        } else {
            hmax[i] = r[i] > hmax[i + 1] ? r[i] : hmax[i + 1];
            hmin[i] = r[i] < hmin[i + 1] ? r[i] : hmin[i + 1];
        }
    }
    for (i = 0; i + w <= n; i++) {
        double hi = hmax[i] > gmax[i + w - 1] ? hmax[i] : gmax[i + w - 1];
        double lo = hmin[i] < gmin[i + w - 1] ? hmin[i] : gmin[i + w - 1];
        if (hi - lo < ptp) return 1;
    }
    return 0;
}

static double std_of(const double *x, long n) { /* population standard deviation, as numpy's std() */
    double mean = 0.0, var = 0.0;
    long i;
    for (i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    return sqrt(var / (double)n);
}

/* Largest segment_s peak-to-peak of the band-passed signal over the median one (0 when not judged). */
static double ptp_ratio(const double *bd, long n, double fs, double segment_s, double *ptp) {
    long seg = (long)jefw_round_half_even(segment_s * fs), k, j, i;
    double med, top = 0.0;
    if (seg < 1) seg = 1;
    k = n / seg;
    if (k < 2) return 0.0;
    for (j = 0; j < k; j++) {
        double hi = bd[j * seg], lo = bd[j * seg], v;
        for (i = 1; i < seg; i++) {
            v = bd[j * seg + i];
            if (v > hi) hi = v;
            if (v < lo) lo = v;
        }
        ptp[j] = hi - lo;
        if (j == 0 || ptp[j] > top) top = ptp[j];
    }
    for (j = 1; j < k; j++) { /* insertion sort for the median (k is small: 10 for 10 s of 1 s segments) */
        double v = ptp[j];
        for (i = j - 1; i >= 0 && ptp[i] > v; i--) ptp[i + 1] = ptp[i];
        ptp[i + 1] = v;
    }
    med = k % 2 ? ptp[k / 2] : (ptp[k / 2 - 1] + ptp[k / 2]) / 2.0;
    return med > 0 ? top / med : 0.0;
}

/* Best normalised autocorrelation of the mean-removed, decimated band-passed signal at lags of one heart period
 * (period_min_s .. period_max_s): sum a b / sqrt(sum a^2 sum b^2) over the overlap; 1.0 when not judged. */
static double periodicity(const double *bd, long n, double fs, const jefw_stream_config_t *q, double *d) {
    long step = (long)jefw_round_half_even(fs / q->periodicity_fs), m, i, lag, lo, hi;
    double mean = 0.0, energy = 0.0, best = -HUGE_VAL, fsd;
    if (step < 1) step = 1;
    m = (n + step - 1) / step;
    for (i = 0; i < m; i++) mean += (d[i] = bd[i * step]);
    mean /= (double)m;
    for (i = 0; i < m; i++) {
        d[i] -= mean;
        energy += d[i] * d[i];
    }
    fsd = fs / (double)step;
    lo = (long)(q->period_min_s * fsd);
    hi = (long)(q->period_max_s * fsd);
    if (lo < 1) lo = 1;
    if (hi > m - 2) hi = m - 2;
    if (lo > hi) return 1.0;
    for (lag = lo; lag <= hi; lag++) {
        double num = 0.0, ea = 0.0, eb = 0.0, den, r;
        for (i = 0; i + lag < m; i++) {
            num += d[i] * d[i + lag];
            ea += d[i] * d[i];
            eb += d[i + lag] * d[i + lag];
        }
        den = ea * eb;
        r = den > 0 ? num / sqrt(den) : 0.0;
        if (r > best) best = r;
    }
    return energy > 0 ? best : 1.0;
}

void jefw_lead_measures(const double *raw, const double *bd, long n, double fs, const jefw_stream_config_t *q,
                        double *scratch, double out[JEFW_QUALITY_MEASURES]) {
    double acc = 0.0, std, lf;
    long i;
    for (i = 0; i + 2 < n; i++) {
        double d2 = (raw[i + 2] - raw[i + 1]) - (raw[i + 1] - raw[i]);
        acc += d2 * d2;
    }
    out[0] = n > 2 ? sqrt(acc / (double)(n - 2) / 6.0) : 0.0; /* hf_mv */
    out[1] = std = std_of(bd, n);                               /* band_std_mv */
    for (i = 0; i < n; i++) scratch[i] = raw[i] - bd[i];
    lf = std_of(scratch, n);
    out[2] = std > 0 ? lf / std : 0.0;                          /* lf_ratio */
    out[3] = ptp_ratio(bd, n, fs, q->segment_s, scratch);       /* ptp_ratio */
    out[4] = periodicity(bd, n, fs, q, scratch);                /* periodicity */
}

double jefw_artefact_score(const double v[JEFW_QUALITY_MEASURES], const jefw_stream_config_t *q) {
    double total = 0.0;
    int i;
    for (i = 0; i < 4; i++) total = total + q->artefact_w[i] * log(v[i] + JEFW_QUALITY_LOG_EPS);
    return total + q->artefact_w[4] * v[4];
}

int jefw_lead_noisy(const double v[JEFW_QUALITY_MEASURES], double score, const jefw_stream_config_t *q) {
    return v[0] > q->noise_hf_mv || v[1] > q->noise_band_std_mv || score > q->artefact_max;
}
