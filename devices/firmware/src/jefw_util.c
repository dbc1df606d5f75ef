/* jefw_util.h: error strings, Python's round, numpy's sum. */
#include "jefw_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

void jefw_errf(char *err, const char *fmt, ...) {
    va_list ap;
    if (!err) return;
    va_start(ap, fmt);
    vsnprintf(err, JEFW_ERR, fmt, ap);
    va_end(ap);
}

double jefw_round_half_even(double v) {
    double f = floor(v), d = v - f;
    if (d > 0.5) return f + 1.0;
    if (d < 0.5) return f;
    return fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}

static double pairwise(const double *a, long long n) {
    if (n < 8) {
        double res = 0.0;
        long long i;
        for (i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8], res;
        long long i;
        int j;
        for (j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (j = 0; j < 8; j++) r[j] += a[i + j];
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    {
        long long n2 = n / 2;
        n2 -= n2 % 8;
        return pairwise(a, n2) + pairwise(a + n2, n - n2);
    }
}

double jefw_np_sum(const double *a, long long n) { return 0.0 + pairwise(a, n); }
