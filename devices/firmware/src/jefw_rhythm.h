/* jepa-edge firmware reference runner: rhythm episodes from labelled beats.
 *
 * A C99 port of devices/stream/beats.py (RhythmConfig, RhythmTracker: ventricular tachycardia "VT", bigeminy "B",
 * trigeminy "T" with hysteresis) and devices/stream/af.py (AfConfig, AfTracker, rr_irregularity, p_likeness:
 * atrial fibrillation "AFIB"), so the runner reports the same episodes as `jepa-edge stream`. Self-contained
 * (libc and libm only). Every failure is one error string in a caller's buffer of JEFW_ERR bytes.
 *
 * Memory is bounded on an endless stream: a VT run is kept as its first and last V and a count, the AF window as
 * af_intervals + 1 beats with their pre-QRS stretches (allocated once, grown only for a longer stretch).
 * No allocation happens in push unless a beat brings a longer pre-QRS stretch than any before.
 */
#ifndef JEFW_RHYTHM_H
#define JEFW_RHYTHM_H

#include "jefw_util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Beat labels, Python's BEAT_LABELS in order: "N", "S", "V", "F", "Q", "withheld". */
enum { JEFW_BEAT_N, JEFW_BEAT_S, JEFW_BEAT_V, JEFW_BEAT_F, JEFW_BEAT_Q, JEFW_BEAT_WITHHELD, JEFW_BEAT_LABELS };
#define JEFW_BEAT_BIT(label) (1u << (unsigned)(label))

/* The most episodes one push or finish can close: VT, B, T and AFIB, one each. */
#define JEFW_RHYTHM_MAX_OUT 4

typedef struct {
    /* RhythmConfig */
    int vt_min_beats;           /* 3: a VT run has at least this many consecutive V beats ... */
    double vt_min_rate_bpm;     /* 100: ... each within 60 / rate seconds of the previous V */
    int bigeminy_onset_pairs;   /* 3: B opens once N V alternated for this many V */
    int trigeminy_onset_cycles; /* 3: T opens once N N V repeated for this many V */
    int offset_beats;           /* 1: an open B / T closes after this many consecutive beats that break it */
    unsigned normal_labels;     /* JEFW_BEAT_BIT(N) | JEFW_BEAT_BIT(S): beats filling the normal slots of B, T */
    /* AfConfig */
    int af_intervals;              /* 6: RR intervals judged together (one window of intervals + 1 beats) */
    double af_min_irregularity;    /* 0.08: RMS successive RR difference / mean RR above this ... */
    double af_max_p_likeness;      /* 0.6: ... and median pre-QRS correlation below this: an AF window */
    double af_p_far_s, af_p_near_s; /* 0.25, 0.08: the pre-QRS stretch, from far to near seconds before R */
    int af_onset_windows;          /* 2: AF windows in a row that open an episode */
    int af_offset_windows;         /* 4: windows in a row that are not AF and close it */
    double af_max_gap_s;           /* 2.0: a longer gap between beats breaks the AF window */
} jefw_rhythm_config_t;

/* RhythmConfig() / AfConfig() defaults. */
void jefw_rhythm_config_defaults(jefw_rhythm_config_t *c);
/* RhythmConfig / AfConfig __post_init__ (their messages): 0, or -1 with err. C only: af_intervals at most 1000000,
 * normal_labels only JEFW_BEAT_* bits. */
int jefw_rhythm_config_check(const jefw_rhythm_config_t *c, char *err);

/* One closed episode, samples [onset, offset) as Python's RhythmEpisode; rhythm "VT", "B", "T" or "AFIB". */
typedef struct {
    long long onset, offset;
    char rhythm[8];
} jefw_episode_t;

typedef struct jefw_rhythm jefw_rhythm_t; /* opaque: RhythmTracker */

/* The JEFW_BEAT_* of a label string ("N", "S", "V", "F", "Q", "withheld"), or -1. */
int jefw_beat_label(const char *name);

/* RhythmTracker(fs, config); c NULL: the defaults. 0, or -1 with err (bad fs or config, out of memory). */
int jefw_rhythm_open(jefw_rhythm_t **r, double fs, const jefw_rhythm_config_t *c, char *err);

/* RhythmTracker.push: one labelled beat at absolute sample `sample` (strictly after the previous one). `atrial`:
 * its pre-QRS stretch of n_atrial samples (jefw_af_segment), or NULL for none; AF is judged only on N and S beats
 * that have one (withheld beats: pass NULL). Writes the episodes this beat closed to out, in Python's order (VT,
 * B, T, AFIB), and returns their count; max_out must be at least JEFW_RHYTHM_MAX_OUT (4 is always enough).
 * -1 with err, the tracker unchanged: unknown label, beat out of time order, negative n_atrial, a stretch of
 * another length than those in the AF window (Python's np.stack would fail on it), max_out < 4, out of memory. */
int jefw_rhythm_push(jefw_rhythm_t *r, long long sample, const char *label, const double *atrial, int n_atrial,
                     jefw_episode_t *out, int max_out, char *err);
/* The same with a JEFW_BEAT_* label. */
int jefw_rhythm_push_beat(jefw_rhythm_t *r, long long sample, int label, const double *atrial, int n_atrial,
                          jefw_episode_t *out, int max_out, char *err);

/* RhythmTracker.finish: end of stream at end_sample, the open episodes closed (count, in Python's order), or -1
 * when max_out < JEFW_RHYTHM_MAX_OUT. As in Python, beats may follow (after the last one pushed). */
int jefw_rhythm_finish(jefw_rhythm_t *r, long long end_sample, jefw_episode_t *out, int max_out);

/* RhythmTracker.open_rhythms: the rhythms whose episode is open now (static strings, Python's order); writes at
 * most max_names and returns how many are open (at most 4). */
int jefw_rhythm_open_rhythms(const jefw_rhythm_t *r, const char **names, int max_names);

void jefw_rhythm_close(jefw_rhythm_t *r);

/* AfConfig.segment bounds: the pre-QRS stretch of the beat at absolute sample `beat` is [*a, *b) (absolute), with
 * Python's round() (half to even) of far * fs and near * fs. Returns its length *b - *a. */
long long jefw_af_segment_bounds(const jefw_rhythm_config_t *c, double fs, long long beat, long long *a, long long *b);

/* AfConfig.segment: copies the stretch out of lead[0 .. n_lead), whose first sample is absolute index `start`,
 * into out and sets *n_out. 1: copied; 0: none (Python's None: the stretch begins before the buffer or ends after
 * it); -1 with err when out has room for fewer than its max_out samples. */
int jefw_af_segment(const jefw_rhythm_config_t *c, double fs, const double *lead, long long n_lead, long long start,
                    long long beat, double *out, int max_out, int *n_out, char *err);

/* af.rr_irregularity of n beat samples (0 when fewer than 3), the same double as Python's (NaN: out of memory,
 * only for n > 64). */
double jefw_rr_irregularity(const long long *samples, int n);

/* af.p_likeness of k stretches of len samples (rows of seg, k * len doubles); scratch of
 * JEFW_P_LIKENESS_SCRATCH(k, len) doubles. NaN when a stretch holds NaN (Python's too). */
#define JEFW_P_LIKENESS_SCRATCH(k, len) ((long)(k) * (long)(len) + (long)(len) + 2L * (long)(k))
double jefw_p_likeness(const double *seg, int k, int len, double *scratch);

#ifdef __cplusplus
}
#endif

#endif
