/* Preprocessing from the header alone: polyphase resampler (scipy.signal.resample_poly, applied causally),
 * causal band-pass biquads started at steady state, per-lead normalisation and clip.
 * Mirrors devices/stream's PolyphaseResampler and data/preprocess.py's EcgPreprocessing number for number. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jefw.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static long gcd_l(long a, long b) {
    while (b) {
        long t = a % b;
        a = b;
        b = t;
    }
    return a < 0 ? -a : a;
}

/* Python's Fraction(n, d).limit_denominator(max_den) for n/d > 0 (continued fractions, closest bound). */
static void limit_denominator(long long n, long long d, long long max_den, long long *pn, long long *pd) {
    long long p0 = 0, q0 = 1, p1 = 1, q1 = 0, n0 = n, d0 = d, k, bn, bd, e1, e2;
    if (d <= max_den) {
        *pn = n, *pd = d;
        return;
    }
    for (;;) {
        long long a = n / d, q2 = q0 + a * q1, t;
        if (q2 > max_den) break;
        t = p0 + a * p1;
        p0 = p1, q0 = q1, p1 = t, q1 = q2;
        t = n - a * d;
        n = d, d = t;
    }
    k = (max_den - q0) / q1;
    bn = p0 + k * p1, bd = q0 + k * q1;
    /* |p1/q1 - n0/d0| <= |bn/bd - n0/d0| ?  (cross-multiplied; all terms are small integers) */
    e1 = llabs(p1 * d0 - n0 * q1) * bd;
    e2 = llabs(bn * d0 - n0 * bd) * q1;
    if (e1 <= e2) *pn = p1, *pd = q1;
    else *pn = bn, *pd = bd;
}

int jefw_resample_ratio(long fs_in, long fs_out, long max_den, long *up, long *down) {
    long long n, d;
    long g;
    if (fs_in <= 0 || fs_out <= 0) return -1;
    if (fs_in == fs_out) {
        *up = *down = 1;
        return 0;
    }
    g = gcd_l(fs_out, fs_in);
    limit_denominator(fs_out / g, fs_in / g, max_den > 0 ? max_den : 1000, &n, &d);
    g = gcd_l((long)n, (long)d);
    *up = (long)n / g;
    *down = (long)d / g;
    return 0;
}

static double bessel_i0(double x) { /* modified Bessel function of the first kind, order 0 (power series) */
    double sum = 1.0, term = 1.0, q = x * x / 4.0;
    int k;
    for (k = 1; k < 500; k++) {
        term *= q / ((double)k * (double)k);
        sum += term;
        if (term < sum * 1e-17) break;
    }
    return sum;
}

/* scipy.signal.firwin(n, 1/rate, window=("kaiser", beta)): windowed sinc low-pass, scaled to unit DC gain. */
static void firwin_kaiser(double *h, long n, double cutoff, double beta) {
    double alpha = 0.5 * (double)(n - 1), sum = 0.0, i0b = bessel_i0(beta);
    long i;
    for (i = 0; i < n; i++) {
        double m = (double)i - alpha, x = cutoff * m, sinc, r, w;
        if (x == 0.0) sinc = 1.0;
        else {
            double y = M_PI * x;
            sinc = sin(y) / y;
        }
        r = (double)i - alpha;
        r = alpha > 0 ? r / alpha : 0.0;
        w = bessel_i0(beta * sqrt(1.0 - r * r)) / i0b;
        h[i] = cutoff * sinc * w;
        sum += h[i];
    }
    for (i = 0; i < n; i++) h[i] /= sum;
}

int jefw_resampler_init(jefw_resampler_t *r, int leads, long fs_in, const jefw_model_t *m, char *err) {
    long max_rate, half, pre_pad, n, total, p, t;
    double *h;
    memset(r, 0, sizeof *r);
    r->leads = leads;
    if (jefw_resample_ratio(fs_in, m->fs, m->resample_max_den, &r->up, &r->down) != 0) {
        jefw_errf(err, "sampling rate %ld Hz: must be a positive integer", fs_in);
        return -1;
    }
    if (r->up == 1 && r->down == 1) {
        r->passthrough = 1;
        return 0;
    }
    if (m->resample_half_len_per_rate <= 0) {
        jefw_errf(err, "the header describes no resampler (JEPA_EDGE_RESAMPLE_*): rebuild the bundle, or stream at "
                       "the model's rate of %d Hz", m->fs);
        return -1;
    }
    max_rate = r->up > r->down ? r->up : r->down;
    half = (long)m->resample_half_len_per_rate * max_rate;
    n = 2 * half + 1;
    pre_pad = r->down - half % r->down;
    r->offset = (half + pre_pad) / r->down;
    r->taps = (pre_pad + n + r->up - 1) / r->up;
    total = r->taps * r->up;
    h = (double *)calloc((size_t)total, sizeof *h);
    r->phases = (double *)malloc(sizeof(double) * (size_t)total);
    r->hist_cap = r->taps + 4096;
    r->hist = (double *)calloc((size_t)(r->hist_cap * leads), sizeof(double));
    r->hist_flags = (uint8_t *)calloc((size_t)r->hist_cap, 1);
    if (!h || !r->phases || !r->hist || !r->hist_flags) {
        free(h);
        jefw_errf(err, "out of memory for a resampler of %ld taps", r->taps);
        return -1;
    }
    firwin_kaiser(h + pre_pad, n, 1.0 / (double)max_rate, m->resample_kaiser_beta);
    for (t = 0; t < n; t++) h[pre_pad + t] *= (double)r->up;
    for (p = 0; p < r->up; p++)
        for (t = 0; t < r->taps; t++) r->phases[p * r->taps + t] = h[t * r->up + p];
    free(h);
    r->hist_len = r->taps; /* zeros before the start, exactly as resample_poly pads */
    return 0;
}

static int reserve_out(jefw_resampler_t *r, long count) {
    if (count <= r->out_cap) return 0;
    free(r->out);
    free(r->out_flags);
    r->out_cap = count + 1024;
    r->out = (double *)malloc(sizeof(double) * (size_t)(r->out_cap * r->leads));
    r->out_flags = (uint8_t *)malloc((size_t)r->out_cap);
    return r->out && r->out_flags ? 0 : -1;
}

static int append_hist(jefw_resampler_t *r, const double *x, const uint8_t *flags, long n) {
    if (r->hist_len + n > r->hist_cap) {
        long cap = r->hist_len + n + 4096;
        double *h = (double *)realloc(r->hist, sizeof(double) * (size_t)(cap * r->leads));
        uint8_t *f;
        if (!h) return -1;
        r->hist = h;
        f = (uint8_t *)realloc(r->hist_flags, (size_t)cap);
        if (!f) return -1;
        r->hist_flags = f;
        r->hist_cap = cap;
    }
    if (x) memcpy(r->hist + r->hist_len * r->leads, x, sizeof(double) * (size_t)(n * r->leads));
    else memset(r->hist + r->hist_len * r->leads, 0, sizeof(double) * (size_t)(n * r->leads));
    if (flags) memcpy(r->hist_flags + r->hist_len, flags, (size_t)n);
    else memset(r->hist_flags + r->hist_len, 0, (size_t)n);
    r->hist_len += n;
    return 0;
}

/* Outputs produced..stop-1; the history holds inputs up to absolute index available-1. */
static long compute(jefw_resampler_t *r, long long stop, long long available) {
    long long base = available - r->hist_len, mm;
    long count = (long)(stop - r->produced), k;
    int l;
    if (reserve_out(r, count) != 0) return -1;
    for (k = 0, mm = r->produced; mm < stop; mm++, k++) {
        long long j = (mm + r->offset) * r->down, i_hi = j / r->up;
        const double *ph = r->phases + (j % r->up) * r->taps;
        long pos = (long)(i_hi - base), t; /* history position of input i_hi */
        uint8_t f = 0;
        for (l = 0; l < r->leads; l++) {
            double acc = 0.0;
            for (t = 0; t < r->taps; t++) acc += ph[t] * r->hist[(pos - t) * r->leads + l];
            r->out[k * r->leads + l] = acc;
        }
        for (t = 0; t < r->taps; t++) f |= r->hist_flags[pos - t];
        r->out_flags[k] = f;
    }
    r->produced = stop;
    return count;
}

static void trim_hist(jefw_resampler_t *r) {
    long drop = r->hist_len - r->taps;
    if (drop <= 0) return;
    memmove(r->hist, r->hist + drop * r->leads, sizeof(double) * (size_t)(r->taps * r->leads));
    memmove(r->hist_flags, r->hist_flags + drop, (size_t)r->taps);
    r->hist_len = r->taps;
}

long jefw_resampler_push(jefw_resampler_t *r, const double *x, const uint8_t *flags, long n, const double **y,
                         const uint8_t **yflags) {
    long long stop;
    long count = 0;
    if (r->passthrough) {
        r->consumed += n;
        r->produced += n;
        *y = x;
        *yflags = flags;
        return n;
    }
    if (append_hist(r, x, flags, n) != 0) return -1;
    r->consumed += n;
    /* output m needs inputs up to i_hi(m) = ((m + offset) * down) / up < consumed */
    stop = r->consumed > 0 ? (r->consumed * r->up - 1) / r->down - r->offset + 1 : 0;
    if (stop > r->produced) count = compute(r, stop, r->consumed);
    if (count < 0) return -1;
    trim_hist(r);
    *y = r->out;
    *yflags = r->out_flags;
    return count;
}

long long jefw_resampler_expected(const jefw_resampler_t *r, long long n_in) {
    return r->passthrough ? n_in : (n_in * r->up + r->down - 1) / r->down;
}

long jefw_resampler_latency(const jefw_resampler_t *r) {
    return r->passthrough ? 0 : (r->offset * r->down + r->up - 1) / r->up;
}

long jefw_resampler_flush(jefw_resampler_t *r, const double **y, const uint8_t **yflags) {
    long long stop = jefw_resampler_expected(r, r->consumed);
    long pad, count;
    *y = r->out;
    *yflags = r->out_flags;
    if (r->passthrough || stop <= r->produced) return 0;
    pad = r->taps + (r->offset * r->down) / r->up + 2;
    if (append_hist(r, NULL, NULL, pad) != 0) return -1;
    count = compute(r, stop, r->consumed + pad);
    *y = r->out;
    *yflags = r->out_flags;
    return count;
}

void jefw_resampler_free(jefw_resampler_t *r) {
    free(r->phases);
    free(r->hist);
    free(r->hist_flags);
    free(r->out);
    free(r->out_flags);
    memset(r, 0, sizeof *r);
}

int jefw_filter_init(jefw_filter_t *f, const jefw_model_t *m) {
    f->m = m;
    f->started = 0;
    f->state = (double *)calloc((size_t)(m->num_leads * m->num_sos * 2), sizeof(double));
    return f->state ? 0 : -1;
}

void jefw_filter_sample(jefw_filter_t *f, double *v) {
    const jefw_model_t *m = f->m;
    int l, k;
    if (!f->started) { /* steady state for the first sample: sosfilt_zi * x0 */
        for (l = 0; l < m->num_leads; l++)
            for (k = 0; k < m->num_sos; k++) {
                f->state[(l * m->num_sos + k) * 2] = m->sos_zi[2 * k] * v[l];
                f->state[(l * m->num_sos + k) * 2 + 1] = m->sos_zi[2 * k + 1] * v[l];
            }
        f->started = 1;
    }
    for (l = 0; l < m->num_leads; l++) {
        double x = v[l];
        double *z = f->state + (size_t)l * m->num_sos * 2;
        for (k = 0; k < m->num_sos; k++, z += 2) { /* direct form II transposed, as scipy.signal.sosfilt */
            const double *c = m->sos + 6 * k;
            double y = c[0] * x + z[0];
            z[0] = c[1] * x - c[4] * y + z[1];
            z[1] = c[2] * x - c[5] * y;
            x = y;
        }
        v[l] = x;
    }
}

void jefw_filter_free(jefw_filter_t *f) {
    free(f->state);
    f->state = NULL;
}

float jefw_normalise(const jefw_model_t *m, int lead, double v) {
    v = (v - m->mean[lead]) / m->std[lead];
    if (v < -m->clip) v = -m->clip;
    if (v > m->clip) v = m->clip;
    return (float)v;
}

int jefw_preprocess_window(const jefw_model_t *m, const double *record, long samples, long fs_in, long offset,
                           float *out, char *err) {
    jefw_resampler_t r;
    jefw_filter_t f;
    const double *y;
    const uint8_t *yf;
    double *x = NULL, *all = NULL, v[64];
    uint8_t *flags = NULL;
    long n1, n2, total, i;
    int l, rc = -1;
    if (m->num_leads > 64) {
        jefw_errf(err, "%d leads: more than this runner handles", m->num_leads);
        return -1;
    }
    if (jefw_resampler_init(&r, m->num_leads, fs_in, m, err) != 0) return -1;
    if (jefw_filter_init(&f, m) != 0) {
        jefw_resampler_free(&r);
        jefw_errf(err, "out of memory");
        return -1;
    }
    x = (double *)malloc(sizeof(double) * (size_t)(samples * m->num_leads));
    flags = (uint8_t *)calloc((size_t)samples, 1);
    total = (long)jefw_resampler_expected(&r, samples);
    all = (double *)malloc(sizeof(double) * (size_t)(total * m->num_leads + 1));
    if (!x || !flags || !all) {
        jefw_errf(err, "out of memory for a record of %ld samples", samples);
        goto done;
    }
    for (i = 0; i < samples; i++) /* lead-major record -> interleaved samples */
        for (l = 0; l < m->num_leads; l++) x[i * m->num_leads + l] = record[(long)l * samples + i];
    n1 = jefw_resampler_push(&r, x, flags, samples, &y, &yf);
    if (n1 < 0) goto oom;
    memcpy(all, y, sizeof(double) * (size_t)(n1 * m->num_leads));
    n2 = jefw_resampler_flush(&r, &y, &yf);
    if (n2 < 0) goto oom;
    memcpy(all + n1 * m->num_leads, y, sizeof(double) * (size_t)(n2 * m->num_leads));
    if (n1 + n2 != total) {
        jefw_errf(err, "resampler gave %ld samples, resample_poly gives %ld", n1 + n2, total);
        goto done;
    }
    if (offset < 0 || offset + m->window > total) {
        jefw_errf(err, "window at %ld + %d samples is outside the %ld preprocessed samples", offset, m->window, total);
        goto done;
    }
    for (i = 0; i < offset + m->window; i++) {
        memcpy(v, all + i * m->num_leads, sizeof(double) * (size_t)m->num_leads);
        jefw_filter_sample(&f, v);
        if (i >= offset)
            for (l = 0; l < m->num_leads; l++) out[(long)l * m->window + (i - offset)] = jefw_normalise(m, l, v[l]);
    }
    rc = 0;
    goto done;
oom:
    jefw_errf(err, "out of memory while resampling");
done:
    free(x);
    free(flags);
    free(all);
    jefw_filter_free(&f);
    jefw_resampler_free(&r);
    return rc;
}
