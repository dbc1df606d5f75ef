/* Helpers every part of the runner shares, with no bundle, engine or header behind them (so a part can be compiled
 * and tested alone with this file): error strings, and the Python / numpy arithmetic the ports repeat bit for bit. */
#ifndef JEFW_UTIL_H
#define JEFW_UTIL_H

#ifdef __cplusplus
extern "C" {
#endif

#define JEFW_ERR 512 /* bytes of every error buffer */

void jefw_errf(char *err, const char *fmt, ...); /* vsnprintf into err (JEFW_ERR bytes); err may be NULL */
double jefw_round_half_even(double v);            /* Python's round(): halves to even */
/* np.add.reduce over a contiguous float64 array: 0.0 + numpy's pairwise sum (8 accumulators, blocks of 128,
 * halves on multiples of 8), so means and norms are numpy's to the last bit. */
double jefw_np_sum(const double *a, long long n);

#ifdef __cplusplus
}
#endif
#endif
