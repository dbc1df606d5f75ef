/* StreamingQrs (devices/stream/beats.py) in C99: see jefw_qrs.h for what it ports and why.
 *
 * Exactness: each step repeats the arithmetic of the numpy / scipy code it stands for, in the same order
 * (numpy's pairwise sum for the mean, its complex multiply and divide in the filter design, scipy's sosfilt
 * section update, uniform_filter1d's running sum), so the peaks are the Python ones, not just close to them.
 * The one input we cannot repeat bit for bit everywhere is tan() in the design: numpy may use its own SIMD tan
 * (SVML on AVX-512 machines), so Python's own coefficients differ by an ulp between machines; libm's is used.
 */
#include "jefw_qrs.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jefw_util.h"

#define QRS_PI 3.14159265358979323846 /* np.pi */
#define QRS_MAX_SAMPLES 4503599627370496.0 /* 2^52: sample counts must stay exact integers in a double */

/* neurokit2 0.3.0 defaults: ecg_clean "pantompkins1985" and _ecg_findpeaks_neurokit */
#define NK_LOWCUT 5.0
#define NK_HIGHCUT 15.0
#define NK_SMOOTHWINDOW 0.1
#define NK_AVGWINDOW 0.75
#define NK_GRADTHRESHWEIGHT 1.5
#define NK_MINLENWEIGHT 0.4
#define NK_MINDELAY 0.3

struct jefw_qrs {
    double fs;
    long long look, hop, settle, refractory, min_segment; /* in samples, as StreamingQrs rounds them */
    /* the band-pass: one section b0 b1 b2 1 a1 a2 and sosfilt_zi's per-unit state; design_err when scipy's
     * butter would raise (then every search raises it) */
    double sos[6], zic[2];
    char design_err[JEFW_ERR];
    long long smooth_kernel, avg_kernel, mindelay;
    /* samples [buf_start, buf_start + len) of the stream; capacity look + hop */
    double *buf;
    long long buf_start, len, cap;
    long long n, next_run, last; /* samples pushed, absolute end of the next run, last emitted peak (-1 none) */
    int finished, failed;
    char fail_err[JEFW_ERR];
    /* scratch for one search (at most look samples) */
    double *clean, *grad, *smooth, *avg, *ext;
    long long *beg, *end, *found;
    long long nfound;
    /* peaks returned by the last call */
    long long *out;
    long nout, out_cap;
};

/* ---- messages ----------------------------------------------------------------------------------------- */

/* A float as Python's repr writes it (shortest round trip, "8.0" not "8"), for messages that read as
 * beats.py's. */
static void py_float(double v, char *buf, size_t size) {
    int prec;
    if (isnan(v)) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v < 0 ? "-inf" : "inf");
        return;
    }
    for (prec = 1; prec <= 25; prec++) { /* fixed notation where Python's repr uses it, else exponent */
        if (fabs(v) >= 1e-4 && fabs(v) < 1e16) snprintf(buf, size, "%.*f", prec - 1, v);
        else snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".en")) {
        size_t k = strlen(buf);
        if (k + 2 < size) memcpy(buf + k, ".0", 3);
    }
}

/* ---- numpy's arithmetic, step by step ------------------------------------------------------------------ */

typedef struct {
    double re, im;
} cplx_t;

static cplx_t c_make(double re, double im) {
    cplx_t c;
    c.re = re;
    c.im = im;
    return c;
}

static cplx_t c_add(cplx_t a, cplx_t b) { return c_make(a.re + b.re, a.im + b.im); }
static cplx_t c_sub(cplx_t a, cplx_t b) { return c_make(a.re - b.re, a.im - b.im); }

static cplx_t c_mul(cplx_t a, cplx_t b) { /* numpy's complex multiply */
    return c_make(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re);
}

static cplx_t c_div(cplx_t a, cplx_t b) { /* numpy's complex divide (Smith's method, reciprocal scale) */
    double br = fabs(b.re), bi = fabs(b.im);
    if (br >= bi) {
        double rat, scl;
        if (br == 0 && bi == 0) return c_make(a.re / br, a.im / br);
        rat = b.im / b.re;
        scl = 1.0 / (b.re + b.im * rat);
        return c_make((a.re + a.im * rat) * scl, (a.im - a.re * rat) * scl);
    } else {
        double rat = b.re / b.im, scl = 1.0 / (b.im + b.re * rat);
        return c_make((a.re * rat + a.im) * scl, (a.im * rat - a.re) * scl);
    }
}

static cplx_t c_sqrt_of_real(cplx_t a) { /* csqrt of a number whose imaginary part is a (signed) zero */
    if (a.re < 0) return c_make(0.0, copysign(sqrt(-a.re), a.im));
    return c_make(sqrt(a.re), copysign(0.0, a.im));
}


/* ---- the band-pass: scipy.signal.butter(1, [5, 15], "bandpass", output="sos", fs=fs), sosfilt_zi -------- */

static int design_bandpass(double fs, double sos[6], double zic[2], char *err) {
    double wn0 = NK_LOWCUT / (fs / 2), wn1 = NK_HIGHCUT / (fs / 2), w0, w1, bw, wo, k;
    cplx_t p, plp, r, s, pb[2], pz[2], p1, p2, num, den;
    double a1, a2, m[2][2], rhs[2], l, u11, x0, x1, tol;
    char f[64];
    if (!(wn0 > 0) || !(wn1 < 1)) {
        py_float(fs, f, sizeof f);
        snprintf(err, JEFW_ERR,
                 "sampling rate %s Hz is too low for neurokit2's pantompkins1985 cleaning: its %g-%g Hz "
                 "band-pass needs fs > %g (scipy: digital filter critical frequencies must be 0 < Wn < fs/2)",
                 f, NK_LOWCUT, NK_HIGHCUT, 2 * NK_HIGHCUT);
        return -1;
    }
    /* prewarp (iirfilter normalises to fs = 2), bandwidth and centre */
    w0 = 2 * 2.0 * tan(QRS_PI * wn0 / 2.0);
    w1 = 2 * 2.0 * tan(QRS_PI * wn1 / 2.0);
    bw = w1 - w0;
    wo = sqrt(w0 * w1);
    /* buttap(1): one pole at -1 (imaginary part -0); lp2bp_zpk: p * bw / 2 +- sqrt((p * bw / 2)^2 - wo^2),
     * one zero at 0, gain bw */
    p = c_make(-1.0, -0.0);
    plp = c_div(c_mul(p, c_make(bw, 0.0)), c_make(2.0, 0.0));
    r = c_sub(c_mul(plp, plp), c_make(wo * wo, 0.0));
    s = c_sqrt_of_real(r);
    pb[0] = c_add(plp, s);
    pb[1] = c_sub(plp, s);
    /* bilinear_zpk at fs = 2: z -> (4 + z) / (4 - z); the zeros go to 1 and -1 */
    pz[0] = c_div(c_add(c_make(4.0, 0.0), pb[0]), c_sub(c_make(4.0, 0.0), pb[0]));
    pz[1] = c_div(c_add(c_make(4.0, 0.0), pb[1]), c_sub(c_make(4.0, 0.0), pb[1]));
    num = c_make(4.0 - 0.0, 0.0 - 0.0);
    den = c_mul(c_sub(c_make(4.0, 0.0), pb[0]), c_sub(c_make(4.0, 0.0), pb[1]));
    k = bw * c_div(num, den).re;
    /* zpk2sos, one section: zeros 1 and -1 give b = k * [1, 0, -1]; the poles a conjugate pair (_cplxreal
     * averages them) or two reals (its tolerance: |imag| <= 100 eps |z|) */
    tol = 100 * DBL_EPSILON;
    if (fabs(pz[0].im) <= tol * hypot(pz[0].re, pz[0].im) && fabs(pz[1].im) <= tol * hypot(pz[1].re, pz[1].im)) {
        a1 = -pz[1].re + -pz[0].re; /* np.poly of the two: which zpk2sos pairs first does not change a */
        a2 = pz[0].re * pz[1].re;
    } else {
        cplx_t zp = pz[0].im > 0 ? pz[0] : pz[1], zn = pz[0].im > 0 ? pz[1] : pz[0];
        p1 = c_div(c_add(zp, c_make(zn.re, -zn.im)), c_make(2.0, 0.0));
        p2 = c_make(p1.re, -p1.im);
        /* np.poly: [1, -p1] convolved with [1, -p2], real part */
        a1 = c_add(c_mul(c_make(1.0, 0.0), c_make(-p2.re, -p2.im)), c_mul(c_make(-p1.re, -p1.im), c_make(1.0, 0.0))).re;
        a2 = c_mul(c_make(-p1.re, -p1.im), c_make(-p2.re, -p2.im)).re;
    }
    sos[0] = 1.0 * k;
    sos[1] = 0.0 * k;
    sos[2] = -1.0 * k;
    sos[3] = 1.0;
    sos[4] = a1;
    sos[5] = a2;
    /* lfilter_zi: solve (I - companion(a).T) zi = b[1:] - a[1:] * b[0] as LAPACK's dgesv does in numpy's
     * OpenBLAS (partial pivoting, the multiplier by the pivot's reciprocal, fused multiply-add updates) */
    m[0][0] = 1 - -a1;
    m[0][1] = 0 - 1.0;
    m[1][0] = 0 - -a2;
    m[1][1] = 1 - 0.0;
    rhs[0] = sos[1] - a1 * sos[0];
    rhs[1] = sos[2] - a2 * sos[0];
    if (fabs(m[1][0]) > fabs(m[0][0])) {
        double t;
        t = m[0][0], m[0][0] = m[1][0], m[1][0] = t;
        t = m[0][1], m[0][1] = m[1][1], m[1][1] = t;
        t = rhs[0], rhs[0] = rhs[1], rhs[1] = t;
    }
    l = m[1][0] * (1.0 / m[0][0]);
    u11 = fma(-l, m[0][1], m[1][1]);
    rhs[1] = fma(-l, rhs[0], rhs[1]);
    x1 = rhs[1] / u11;
    x0 = fma(-m[0][1], x1, rhs[0]) / m[0][0];
    zic[0] = 1.0 * x0;
    zic[1] = 1.0 * x1;
    return 0;
}

/* ---- one search: neurokit2 on one finite stretch ------------------------------------------------------- */

/* scipy.ndimage.uniform_filter1d(x, size, mode="nearest"): a running sum over the edge-extended line,
 * divided at each output. ext holds n + size - 1 values. */
static void uniform_filter(const double *x, long long n, long long size, double *ext, double *out) {
    long long s1 = size / 2, s2 = size - s1 - 1, i;
    double tmp = 0.0;
    for (i = 0; i < s1; i++) ext[i] = x[0];
    memcpy(ext + s1, x, (size_t)n * sizeof *x);
    for (i = 0; i < s2; i++) ext[s1 + n + i] = x[n - 1];
    for (i = 0; i < size; i++) tmp += ext[i];
    out[0] = tmp / (double)size;
    for (i = 1; i < n; i++) {
        tmp += ext[i + size - 1] - ext[i - 1];
        out[i] = tmp / (double)size;
    }
}

/* scipy.signal.find_peaks(x, prominence=(None, None)) then argmax of the prominences: the index of the most
 * prominent local maximum (flat tops at their middle, rounded down; the first of equals), or -1 if none. */
static long long most_prominent(const double *x, long long n) {
    long long i = 1, i_max = n - 1, best = -1;
    double best_prom = 0;
    while (i < i_max) {
        if (x[i - 1] < x[i]) {
            long long ahead = i + 1;
            while (ahead < i_max && x[ahead] == x[i]) ahead++;
            if (x[ahead] < x[i]) {
                long long peak = (i + ahead - 1) / 2, j;
                double left_min = x[peak], right_min = x[peak], prom;
                for (j = peak; j >= 0 && x[j] <= x[peak]; j--)
                    if (x[j] < left_min) left_min = x[j];
                for (j = peak; j <= n - 1 && x[j] <= x[peak]; j++)
                    if (x[j] < right_min) right_min = x[j];
                prom = x[peak] - (left_min > right_min ? left_min : right_min);
                if (best < 0 || prom > best_prom) best = peak, best_prom = prom;
                i = ahead;
            }
        }
        i++;
    }
    return best;
}

/* nk.ecg_clean(y, fs, "pantompkins1985") then nk.ecg_findpeaks(clean, fs, "neurokit"): R peaks of y[0..n)
 * appended to q->found (offset by `at`); -1 where neurokit2 would raise. */
static int search(jefw_qrs_t *q, const double *y, long long n, long long at, char *err) {
    const double *sos = q->sos;
    double mean, z0, z1, min_len;
    long long i, nbeg = 0, nend = 0, num, last = 0, sum = 0;
    if (q->design_err[0]) {
        snprintf(err, JEFW_ERR, "%s", q->design_err);
        return -1;
    }
    /* butterworth_zi: sosfilt from sosfilt_zi * mean */
    mean = jefw_np_sum(y, n) / (double)n;
    z0 = q->zic[0] * mean;
    z1 = q->zic[1] * mean;
    for (i = 0; i < n; i++) {
        double xc = y[i], xn = sos[0] * xc + z0;
        z0 = sos[1] * xc - sos[4] * xn + z1;
        z1 = sos[2] * xc - sos[5] * xn;
        q->clean[i] = xn;
    }
    /* |np.gradient| (one-sided at the ends) */
    q->grad[0] = fabs((q->clean[1] - q->clean[0]) / 1.0);
    q->grad[n - 1] = fabs((q->clean[n - 1] - q->clean[n - 2]) / 1.0);
    for (i = 1; i < n - 1; i++) q->grad[i] = fabs((q->clean[i + 1] - q->clean[i - 1]) / 2.0);
    if (q->smooth_kernel > n || q->smooth_kernel < 1 || q->avg_kernel > n || q->avg_kernel < 1) {
        char f[64];
        py_float(q->fs, f, sizeof f);
        snprintf(err, JEFW_ERR,
                 "neurokit2's signal_smooth refuses a %lld-sample stretch at %s Hz: its boxcar sizes (%lld, "
                 "%lld samples) must be between 1 and the stretch length (raise min_segment_s)",
                 n, f, q->smooth_kernel, q->avg_kernel);
        return -1;
    }
    uniform_filter(q->grad, n, q->smooth_kernel, q->ext, q->smooth);
    uniform_filter(q->smooth, n, q->avg_kernel, q->ext, q->avg);
    /* QRS spans: where the smoothed gradient exceeds 1.5 x its average */
    for (i = 0; i + 1 < n; i++) {
        int now = q->smooth[i] > NK_GRADTHRESHWEIGHT * q->avg[i];
        int next = q->smooth[i + 1] > NK_GRADTHRESHWEIGHT * q->avg[i + 1];
        if (!now && next) q->beg[nbeg++] = i;
        if (now && !next && nbeg > 0 && i > q->beg[0]) q->end[nend++] = i;
    }
    if (nbeg == 0) return 0;
    num = nbeg < nend ? nbeg : nend;
    for (i = 0; i < num; i++) sum += q->end[i] - q->beg[i];
    min_len = num > 0 ? (double)sum / (double)num * NK_MINLENWEIGHT : NAN;
    for (i = 0; i < num; i++) {
        long long len = q->end[i] - q->beg[i], top;
        if ((double)len < min_len) continue;
        top = most_prominent(q->clean + q->beg[i], len);
        if (top >= 0) {
            long long peak = q->beg[i] + top;
            if (peak - last > q->mindelay) {
                q->found[q->nfound++] = at + peak;
                last = peak;
            }
        }
    }
    return 0;
}

/* StreamingQrs._detect: each finite stretch of seg, skipping short and flat ones */
static int detect(jefw_qrs_t *q, const double *seg, long long n, char *err) {
    long long a = 0, b;
    q->nfound = 0;
    while (a < n) {
        double lo, hi;
        if (!isfinite(seg[a])) {
            a++;
            continue;
        }
        lo = hi = seg[a];
        for (b = a + 1; b < n && isfinite(seg[b]); b++) {
            if (seg[b] < lo) lo = seg[b];
            if (seg[b] > hi) hi = seg[b];
        }
        if (b - a >= q->min_segment && hi - lo != 0)
            if (search(q, seg + a, b - a, a, err) != 0) return -1;
        a = b;
    }
    return 0;
}

static int emit(jefw_qrs_t *q, long long p, char *err) {
    if (q->nout == q->out_cap) {
        long cap = q->out_cap ? 2 * q->out_cap : 64;
        long long *o = realloc(q->out, (size_t)cap * sizeof *o);
        if (!o) {
            snprintf(err, JEFW_ERR, "out of memory for %ld settled R peaks", cap);
            return -1;
        }
        q->out = o, q->out_cap = cap;
    }
    q->out[q->nout++] = p;
    return 0;
}

/* StreamingQrs._run: detect on [end - look, end) and accept the peaks of its settled region */
static int run(jefw_qrs_t *q, long long end, int final, char *err) {
    long long start = end > q->look ? end - q->look : 0, drop = start - q->buf_start, lo, hi, i;
    if (drop > 0) { /* runs only move forward: older samples are never needed again */
        memmove(q->buf, q->buf + drop, (size_t)(q->len - drop) * sizeof *q->buf);
        q->len -= drop;
        q->buf_start = start;
    }
    if (detect(q, q->buf + (start - q->buf_start), end - start, err) != 0) return -1;
    lo = start > 0 ? start + q->settle : 0;
    hi = final ? end : end - q->settle;
    for (i = 0; i < q->nfound; i++) {
        long long p = start + q->found[i];
        if (p < lo || p >= hi) continue;
        if (q->last < 0 || p - q->last >= q->refractory) {
            if (emit(q, p, err) != 0) return -1;
            q->last = p;
        }
    }
    return 0;
}

static long fail(jefw_qrs_t *q, char *err) {
    q->failed = 1;
    snprintf(q->fail_err, JEFW_ERR, "%s", err);
    return -1;
}

/* ---- public ------------------------------------------------------------------------------------------- */

void jefw_qrs_config_defaults(jefw_qrs_config_t *c) {
    c->lookback_s = 8.0;
    c->hop_s = 2.0;
    c->settle_s = 1.5;
    c->refractory_s = 0.3;
    c->min_segment_s = 1.0;
}

/* Python's round(v * fs) (half to even) as a sample count; -1 if it is no exact count */
static long long samples(double v, double fs) {
    double s = nearbyint(v * fs);
    if (!(s > -QRS_MAX_SAMPLES && s < QRS_MAX_SAMPLES)) return -1;
    return (long long)s;
}

int jefw_qrs_open(jefw_qrs_t **qp, double fs, const jefw_qrs_config_t *cfg, char *err) {
    jefw_qrs_config_t c;
    jefw_qrs_t *q;
    long long look, hop, settle, refr, minseg, n;
    char f1[64], f2[64];
    double v[5];
    int i;
    *qp = NULL;
    if (cfg) c = *cfg;
    else jefw_qrs_config_defaults(&c);
    v[0] = c.lookback_s, v[1] = c.hop_s, v[2] = c.settle_s, v[3] = c.refractory_s, v[4] = c.min_segment_s;
    for (i = 0; i < 5; i++)
        if (!isfinite(v[i])) {
            snprintf(err, JEFW_ERR, "lookback_s, hop_s, settle_s, refractory_s and min_segment_s must be finite");
            return -1;
        }
    /* QrsConfig.__post_init__ */
    if (c.hop_s <= 0 || c.settle_s <= 0 || c.refractory_s <= 0 || c.min_segment_s <= 0) {
        snprintf(err, JEFW_ERR, "hop_s, settle_s, refractory_s and min_segment_s must be > 0");
        return -1;
    }
    if (c.lookback_s - 2 * c.settle_s < c.hop_s) {
        py_float(c.lookback_s, f1, sizeof f1);
        py_float(c.hop_s + 2 * c.settle_s, f2, sizeof f2);
        snprintf(err, JEFW_ERR,
                 "lookback_s %s must be >= hop_s + 2 * settle_s (%s) so the settled regions of the runs meet",
                 f1, f2);
        return -1;
    }
    /* StreamingQrs.__init__ */
    if (!isfinite(fs) || fs <= 0) {
        py_float(fs, f1, sizeof f1);
        snprintf(err, JEFW_ERR, "sampling rate %s must be a positive number", f1);
        return -1;
    }
    if (fs * NK_AVGWINDOW >= QRS_MAX_SAMPLES) { /* neurokit2's kernel sizes would be no exact counts */
        py_float(fs, f1, sizeof f1);
        snprintf(err, JEFW_ERR, "sampling rate %s is too high for the R-peak detector", f1);
        return -1;
    }
    look = samples(c.lookback_s, fs), hop = samples(c.hop_s, fs), settle = samples(c.settle_s, fs);
    refr = samples(c.refractory_s, fs), minseg = samples(c.min_segment_s, fs);
    if (look < 0 || hop < 0 || settle < 0 || refr < 0 || minseg < 0 || look + hop > (long long)1 << 40) {
        py_float(fs, f1, sizeof f1);
        snprintf(err, JEFW_ERR, "lookback_s and hop_s at %s Hz are too many samples to buffer", f1);
        return -1;
    }
    if (hop == 0) { /* Python would loop for ever: its runs would never move forward */
        py_float(c.hop_s, f1, sizeof f1);
        py_float(fs, f2, sizeof f2);
        snprintf(err, JEFW_ERR, "hop_s %s at %s Hz rounds to 0 samples: the detector could never run", f1, f2);
        return -1;
    }
    q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, JEFW_ERR, "out of memory for the R-peak detector");
        return -1;
    }
    q->fs = fs;
    q->look = look, q->hop = hop, q->settle = settle, q->refractory = refr;
    q->min_segment = minseg > 2 ? minseg : 2;
    q->smooth_kernel = (long long)nearbyint(NK_SMOOTHWINDOW * fs);
    q->avg_kernel = (long long)nearbyint(NK_AVGWINDOW * fs);
    q->mindelay = (long long)nearbyint(fs * NK_MINDELAY);
    (void)design_bandpass(fs, q->sos, q->zic, q->design_err); /* scipy raises only once asked to filter */
    q->cap = look + hop;
    q->last = -1;
    q->next_run = hop;
    n = look > 2 ? look : 2;
    q->buf = malloc((size_t)q->cap * sizeof *q->buf);
    q->clean = malloc((size_t)n * sizeof(double));
    q->grad = malloc((size_t)n * sizeof(double));
    q->smooth = malloc((size_t)n * sizeof(double));
    q->avg = malloc((size_t)n * sizeof(double));
    q->ext = malloc((size_t)(2 * n) * sizeof(double));
    q->beg = malloc((size_t)n * sizeof(long long));
    q->end = malloc((size_t)n * sizeof(long long));
    q->found = malloc((size_t)n * sizeof(long long));
    if (!q->buf || !q->clean || !q->grad || !q->smooth || !q->avg || !q->ext || !q->beg || !q->end || !q->found) {
        jefw_qrs_close(q);
        py_float(c.lookback_s, f1, sizeof f1);
        snprintf(err, JEFW_ERR, "out of memory for a %s s R-peak lookback buffer", f1);
        return -1;
    }
    *qp = q;
    return 0;
}

long jefw_qrs_push(jefw_qrs_t *q, const double *x, long n, const long long **peaks, char *err) {
    long i = 0;
    q->nout = 0;
    *peaks = q->out;
    if (q->failed) {
        snprintf(err, JEFW_ERR, "%s", q->fail_err);
        return -1;
    }
    if (q->finished) {
        snprintf(err, JEFW_ERR, "StreamingQrs.push after finish(): start a new detector for a new stream");
        return -1;
    }
    if (n < 0 || (n > 0 && !x)) {
        snprintf(err, JEFW_ERR, "jefw_qrs_push: %ld samples at %p", n, (const void *)x);
        return -1;
    }
    while (i < n) { /* fill up to the next run's end, run, repeat: the buffer never holds more than look + hop */
        long long take = q->next_run - q->n;
        if (take > n - i) take = n - i;
        memcpy(q->buf + q->len, x + i, (size_t)take * sizeof *x);
        q->len += take, q->n += take, i += (long)take;
        if (q->n == q->next_run) {
            if (run(q, q->next_run, 0, err) != 0) return fail(q, err);
            q->next_run += q->hop;
        }
    }
    *peaks = q->out;
    return q->nout;
}

long jefw_qrs_finish(jefw_qrs_t *q, const long long **peaks, char *err) {
    q->nout = 0;
    *peaks = q->out;
    if (q->failed) {
        snprintf(err, JEFW_ERR, "%s", q->fail_err);
        return -1;
    }
    if (q->finished) return 0;
    q->finished = 1;
    if (q->n == 0) return 0;
    if (run(q, q->n, 1, err) != 0) return fail(q, err); /* also when the last run ended here: its tail was not settled */
    *peaks = q->out;
    return q->nout;
}

long long jefw_qrs_samples_seen(const jefw_qrs_t *q) { return q->n; }

void jefw_qrs_close(jefw_qrs_t *q) {
    if (!q) return;
    free(q->buf);
    free(q->clean);
    free(q->grad);
    free(q->smooth);
    free(q->avg);
    free(q->ext);
    free(q->beg);
    free(q->end);
    free(q->found);
    free(q->out);
    free(q);
}
