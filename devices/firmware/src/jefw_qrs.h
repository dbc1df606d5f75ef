/* Settled R peaks of one live lead: a C99 port of devices/stream/beats.py's StreamingQrs with QrsConfig's
 * defaults, so the firmware runner can find beats without Python.
 *
 * What it ports, number for number: every hop_s of new signal, neurokit2 0.3.0's
 * ecg_clean(method="pantompkins1985") (scipy's order-1 Butterworth 5-15 Hz band-pass as one second-order
 * section, designed here from the analog prototype and the bilinear transform as scipy does, run by sosfilt
 * from sosfilt_zi * mean) and ecg_findpeaks(method="neurokit") (gradient, two boxcar smooths as
 * scipy.ndimage.uniform_filter1d computes them, QRS spans, the most prominent local maximum of each as
 * scipy.signal.find_peaks ranks them) on each finite stretch of the last lookback_s seconds; a peak is emitted
 * once it is settle_s old and refractory_s after the previous one. Same signal in, same peaks out, however the
 * stream is chunked; memory is the lookback buffer alone. Why: see beats.py's module docstring.
 */
#ifndef JEFW_QRS_H
#define JEFW_QRS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double lookback_s;    /* signal the detector sees per run */
    double hop_s;         /* one run per this much new signal */
    double settle_s;      /* peaks this close to either end of a run's buffer wait for a later run */
    double refractory_s;  /* no two peaks closer */
    double min_segment_s; /* finite stretches (between NaN) shorter than this are not searched */
} jefw_qrs_config_t;

/* QrsConfig's defaults: 8.0, 2.0, 1.5, 0.3, 1.0 */
void jefw_qrs_config_defaults(jefw_qrs_config_t *c);

typedef struct jefw_qrs jefw_qrs_t; /* opaque */

/* 0 ok; -1 with err set (JEFW_ERR bytes) for a bad fs or config (QrsConfig's and StreamingQrs's checks) or no
 * memory. c NULL: the defaults. */
int jefw_qrs_open(jefw_qrs_t **q, double fs, const jefw_qrs_config_t *c, char *err);

/* Push n samples (mV, NaN for lead off). *peaks points at the peaks now settled (absolute sample indices from
 * the first sample pushed, ascending), valid until the next call; returns their count, or -1 with err set (no
 * memory, push after finish, or a detection neurokit2 itself would refuse, e.g. fs <= 30 Hz where the 15 Hz
 * band edge passes Nyquist). After -1 the detector is spent: every later call repeats the error. */
long jefw_qrs_push(jefw_qrs_t *q, const double *x, long n, const long long **peaks, char *err);

/* End of stream: the peaks not yet emitted, up to the last sample (0 peaks when called again). */
long jefw_qrs_finish(jefw_qrs_t *q, const long long **peaks, char *err);

/* Samples pushed so far (the absolute index of the next sample). */
long long jefw_qrs_samples_seen(const jefw_qrs_t *q);

void jefw_qrs_close(jefw_qrs_t *q);

#ifdef __cplusplus
}
#endif

#endif
