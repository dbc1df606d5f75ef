/* jepa-edge firmware reference runner: shared declarations.
 *
 * Parts, one file each, and the Python part each mirrors:
 *   jefw_model.c    the bundle's generated header, copied into jefw_model_t     toolkit/bundle/cheader.py
 *   jefw_bundle.c   manifest.json, SHA-256 of every file, roles, tolerances    toolkit/bundle/reader.py
 *   jefw_dsp.c      resampler, band-pass biquads, normalisation                devices/stream/resampler.py,
 *                                                                              toolkit/data/preprocess.py
 *   jefw_stream.c   int16 frames, one-window ring, quality, hysteresis, JSONL  devices/stream/sources.py, ring.py,
 *                                                                              quality.py, classifier.py
 *   jefw_quality.c  flat-run test, per-lead noise measures                     devices/stream/quality.py
 *   jefw_config.h   streaming defaults                                         devices/stream/config.py
 *   jefw_golden.c   golden inputs/outputs against the manifest's tolerances   toolkit/bundle/reader.py (verify)
 *   jefw_monitor.c  the arrhythmia monitor of a beat bundle                     devices/stream/monitor.py
 *   jefw_beats.c    a beat's RR and template features, the fusion, its class    toolkit/tasks/beats.py
 *   jefw_qrs.c      settled R peaks (jefw_qrs.h)                                devices/stream/beats.py (StreamingQrs)
 *   jefw_rhythm.c   VT, bigeminy, trigeminy, AF episodes (jefw_rhythm.h)        devices/stream/beats.py, af.py
 *   jefw_engine_*   one back end each: OpenVINO C API, TensorRT C++ API        runtimes/
 */
#ifndef JEFW_H
#define JEFW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jefw_json.h"
#include "jefw_util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- exit codes (documented in docs/firmware.md) ---- */
enum {
    JEFW_EXIT_OK = 0,          /* every check passed / stream ran and its sample accounting adds up */
    JEFW_EXIT_MISMATCH = 1,    /* golden inputs or outputs outside tolerance; stream accounting failed */
    JEFW_EXIT_USAGE = 2,       /* bad command line */
    JEFW_EXIT_BUNDLE = 3,      /* manifest unreadable, a file missing or failing its SHA-256, header from another
                                  bundle, engine file absent from the bundle */
    JEFW_EXIT_UNSUPPORTED = 4, /* a bundle this runner does not run (echo, regression, multiclass) */
    JEFW_EXIT_ENGINE = 5,      /* the runtime could not load, compile or run the model */
    JEFW_EXIT_INPUT = 6,       /* stdin stream unusable: stray bytes after the last frame, or no full window */
    JEFW_EXIT_SYSTEM = 7       /* out of memory, unreadable file */
};

#define JEFW_MAX_OUTPUTS 4
#define JEFW_MAX_LEADS 64 /* leads in a frame of the stream */

/* ---- the bundle's header, as data ---- */
typedef struct {
    const char *modality;    /* "ecg" | "echo" */
    int output_kind;         /* 0 multilabel, 1 multiclass, 2 regression */
    const char *model_name;
    const char *source_checkpoint_sha256;
    const char *target;
    const char *header_sha256; /* SHA-256 of the header compiled in (CMake passes it), or "" */
    /* ECG preprocessing (zero when the header is not ECG) */
    int fs, window, hop, num_leads;
    double window_s, hop_s;
    const char *const *lead_names;
    int num_sos;
    const double *sos;    /* num_sos rows of b0 b1 b2 a0 a1 a2 */
    const double *sos_zi; /* num_sos rows of z0 z1: steady state per unit input */
    int normalised;
    double clip;
    const double *mean, *std;
    int resample_max_den, resample_half_len_per_rate;
    double resample_kaiser_beta;
    /* outputs */
    int num_labels;
    const char *const *labels;
    const double *thresholds;
    int num_outputs;
    const char *output_names[JEFW_MAX_OUTPUTS];
    long long output_width[JEFW_MAX_OUTPUTS]; /* last dimension of each output (-1: dynamic) */
    const char *input_name;
    /* beat model (modality "ecg-beat"; zero otherwise): the window around an R peak, the RR / template fusion,
     * the quality windows that withhold beats (toolkit/bundle/cheader.py `_beat_lines`) */
    int beat_before, beat_after;
    int rr_fusion, rr_history, rr_num_features, template_beats, template_half, template_leads;
    int rr_spread; /* RR_SPREAD_FEATURES after the RR features (headers without JEPA_EDGE_RR_SPREAD: 0) */
    double rr_clip;
    const double *rr_weight, *rr_bias; /* num_labels x (num_labels + rr_num_features), num_labels */
    int quality_fs, quality_window, quality_hop, quality_num_sos;
    double quality_window_s, quality_hop_s;
    const double *quality_sos, *quality_sos_zi;
    /* device profile */
    const char *device_profile; /* "" when the header names none */
    int threads;                /* 0: runtime default */
    const char *precision_hint; /* OpenVINO INFERENCE_PRECISION_HINT; "f32" unless the profile says otherwise */
} jefw_model_t;

const jefw_model_t *jefw_model(void);
/* The beat bundle's model in a runner built with one beside the window classifier (`jepa-edge firmware build
 * WINDOW --beats BEAT`: `stream WINDOW --beats BEAT` runs both); NULL in a runner built against one bundle. */
const jefw_model_t *jefw_beat_model(void);
int jefw_output_index(const jefw_model_t *m, const char *name); /* -1 if the header has no such output */

/* ---- small helpers ---- */
int jefw_read_all(const char *path, char **data, size_t *len, char *err); /* 0 ok; malloc'd, NUL-terminated */
double jefw_now(void);                                                     /* monotonic seconds */
void jefw_json_string(FILE *out, const char *s);                           /* a JSON string literal */
/* Python's canonical_lead: header spellings (MLII, D2, AVR, ...) to I, II, III, aVR, aVL, aVF, V1..V6. */
void jefw_canonical_lead(const char *in, char *out, size_t n);
/* The comma-separated --leads list, each name canonical, into names[max]; their count, or -1 with err (none, or
 * more than max). Empty entries are skipped. */
int jefw_parse_leads(const char *list, char (*names)[64], int max, char *err);

/* ---- bundle ---- */
typedef struct {
    char *path, *role, sha256[65];
    long long bytes;
} jefw_file_t;

typedef struct {
    char *dir;
    json_value *manifest;
    jefw_file_t *files;
    size_t nfiles;
} jefw_bundle_t;

int jefw_bundle_open(jefw_bundle_t *b, const char *dir, char *err);
void jefw_bundle_close(jefw_bundle_t *b);
int jefw_bundle_supported(const jefw_bundle_t *b, const jefw_model_t *m, char *err); /* JEFW_EXIT_* */
/* Re-hash every listed file; prints one line per failure to `report` and returns the number of failures. */
int jefw_bundle_verify(const jefw_bundle_t *b, FILE *report);
int jefw_bundle_header_matches(const jefw_bundle_t *b, const jefw_model_t *m, char *err); /* JEFW_EXIT_* */
const jefw_file_t *jefw_bundle_role(const jefw_bundle_t *b, const char *role);
const jefw_file_t *jefw_bundle_file(const jefw_bundle_t *b, const char *rel);
char *jefw_bundle_join(const jefw_bundle_t *b, const char *rel); /* malloc'd "dir/rel" */
/* Tolerance of artefact `role` for output `name` ("<role>", "<role minus -xml>", then `fallback` key);
 * returns 1 and *tol, or 0 if the manifest gives none; *key names the tolerance key used. */
int jefw_bundle_tolerance(const jefw_bundle_t *b, const char *role, const char *fallback, const char *name,
                          double *tol, const char **key);

/* ---- DSP ---- */
int jefw_resample_ratio(long fs_in, long fs_out, long max_den, long *up, long *down);

typedef struct {
    int leads;
    long up, down, taps, offset;
    int passthrough;
    double *phases;       /* up rows of taps coefficients; phases[p * taps + t] multiplies input i_hi - t */
    double *hist;         /* inputs [hist_base, consumed), interleaved (sample * leads + lead) */
    uint8_t *hist_flags;
    long hist_len, hist_cap;
    long long consumed, produced;
    double *out;          /* outputs of the last push/flush, interleaved */
    uint8_t *out_flags;
    long out_cap;
} jefw_resampler_t;

int jefw_resampler_init(jefw_resampler_t *r, int leads, long fs_in, const jefw_model_t *m, char *err);
/* Take n interleaved samples (n * leads) with per-sample flags; *y / *yflags point at the outputs whose inputs
 * have all arrived (valid until the next call); returns their count, or -1 out of memory. */
long jefw_resampler_push(jefw_resampler_t *r, const double *x, const uint8_t *flags, long n, const double **y,
                         const uint8_t **yflags);
long jefw_resampler_flush(jefw_resampler_t *r, const double **y, const uint8_t **yflags); /* zeros after the end */
long long jefw_resampler_expected(const jefw_resampler_t *r, long long n_in); /* resample_poly's output length */
long jefw_resampler_latency(const jefw_resampler_t *r);                       /* input samples of look-ahead */
void jefw_resampler_free(jefw_resampler_t *r);

typedef struct {
    const jefw_model_t *m;
    double *state; /* leads * num_sos * 2 */
    int started;
} jefw_filter_t;

int jefw_filter_init(jefw_filter_t *f, const jefw_model_t *m);
void jefw_filter_sample(jefw_filter_t *f, double *v); /* one interleaved sample of all leads, in place */
void jefw_filter_free(jefw_filter_t *f);
float jefw_normalise(const jefw_model_t *m, int lead, double v);

/* Offline preprocessing of one record (leads x samples, lead-major) at fs_in: resample, band-pass from steady
 * state, normalise, clip; writes the window starting at model-rate sample `offset` into out (leads x window). */
int jefw_preprocess_window(const jefw_model_t *m, const double *record, long samples, long fs_in, long offset,
                           float *out, char *err);

/* ---- engine (one implementation linked per runner) ---- */
typedef struct jefw_engine jefw_engine_t;

extern const char *const jefw_engine_default_role;    /* "openvino-int8-xml" | "tensorrt-engine" */
extern const char *const jefw_engine_tolerance_fallback; /* tolerance key when the role has none, or NULL */
int jefw_engine_open(const jefw_bundle_t *b, const char *role, const jefw_model_t *m, jefw_engine_t **e, char *err);
int jefw_engine_infer(jefw_engine_t *e, const float *input, int batch, char *err);
/* After jefw_engine_infer: the output `name` (batch x width floats); pointer valid until the next infer. */
int jefw_engine_output(jefw_engine_t *e, const char *name, const float **data, size_t *count, char *err);
void jefw_engine_info(const jefw_engine_t *e, FILE *out); /* a JSON object */
void jefw_engine_close(jefw_engine_t *e);

/* ---- modes ---- */
typedef struct {
    double flat_ptp_mv, flat_s, saturation_max_fraction, noise_hf_mv, noise_band_std_mv, hysteresis;
    double artefact_w[5], artefact_max, segment_s, periodicity_fs, period_min_s, period_max_s;
    int on_windows, off_windows;
} jefw_stream_config_t;

void jefw_stream_config_defaults(jefw_stream_config_t *c);

/* ---- beat features and decoding (jefw_beats.c; toolkit/tasks/beats.py) ---- */
/* rr_features(beats, next_sample=next)[-1]: the last of n beats (the history before it first); next NULL: unknown. */
void jefw_rr_features(const long long *beats, long n, const long long *next, double clip, double out[3]);
/* rr_spread_features(...)[-1]: beats[n - 1] is the beat, up to history + 1 beats before it give the intervals */
void jefw_rr_spread_features(const long long *beats, long n, int history, double clip, double out[3]);
/* BeatTemplate.features: a beat's QRS (leads x width, or NULL) against np previous ones; 3 * leads values; -1 OOM. */
int jefw_template_features(const double *seg, const double *const *prev, int np, int leads, int width, double clip,
                           double *out);
/* The class of a beat: RrFusion on its logits and features (NULL: the logits alone), softmax into p, argmax. */
int jefw_beat_decode(const jefw_model_t *m, const float *logits, const double *features, double *p);

/* ---- signal quality (jefw_quality.c; devices/stream/quality.py) ---- */
#define JEFW_QUALITY_MEASURES 5 /* hf_mv, band_std_mv, lf_ratio, ptp_ratio, periodicity (Python's MEASURES order) */
int jefw_has_flat_run(const double *r, long n, long w, double ptp, double *scratch4n);
/* One lead's noise measures over n samples of resampled (raw) and band-passed (bd) mV; scratch of n doubles. */
void jefw_lead_measures(const double *raw, const double *bd, long n, double fs, const jefw_stream_config_t *q,
                        double *scratch, double out[JEFW_QUALITY_MEASURES]);
/* The artefact score of one lead's measures (weights on the logarithms, as Python's artefact_score). */
double jefw_artefact_score(const double v[JEFW_QUALITY_MEASURES], const jefw_stream_config_t *q);
/* 1 when a lead is noisy: hf, band std or artefact score above its limit. */
int jefw_lead_noisy(const double v[JEFW_QUALITY_MEASURES], double score, const jefw_stream_config_t *q);

typedef struct {
    long fs;
    int num_leads;
    char leads[JEFW_ERR];        /* comma-separated lead names of the frames, in frame order */
    double gain, baseline;
    long chunk;                  /* frames per read */
    jefw_stream_config_t config;
} jefw_stream_options_t;

/* The window stream (jefw_stream.c) as parts, for modes that feed it beside other consumers (the beat monitor).
 * e == NULL: quality only (windows checked and reported, nothing classified). Each returns a JEFW_EXIT_* code. */
typedef struct jefw_stream jefw_stream_t;
typedef void (*jefw_window_cb)(void *ctx, long long end, int flagged); /* window end in model samples */
typedef int (*jefw_frames_cb)(void *ctx, const unsigned char *frames, long n, char *err);
int jefw_stream_open(jefw_stream_t **s, const jefw_model_t *m, jefw_engine_t *e, jefw_stream_options_t *o,
                     FILE *out, char *err);
void jefw_stream_on_window(jefw_stream_t *s, jefw_window_cb cb, void *ctx);
int jefw_stream_push(jefw_stream_t *s, const unsigned char *frames, long n, char *err); /* n int16 frames */
int jefw_stream_flush(jefw_stream_t *s, char *err); /* end of input: the resampler's tail */
/* The summary line (`extra`: more "key": value pairs, each after ", ", or NULL); accounting checks. */
int jefw_stream_finish(jefw_stream_t *s, const char *extra, FILE *report);
double jefw_stream_busy(const jefw_stream_t *s);
long long jefw_stream_samples_in(const jefw_stream_t *s);
void jefw_stream_close(jefw_stream_t *s);
/* Read int16 frames from `in` in chunks and hand each whole run of frames to `consume`; stray bytes fail. */
int jefw_read_frames(FILE *in, FILE *report, int num_leads, long chunk, jefw_frames_cb consume, void *ctx);

int jefw_run_golden(const jefw_bundle_t *b, const jefw_model_t *m, jefw_engine_t *e, const char *role,
                    FILE *out, FILE *report);
int jefw_run_stream(const jefw_bundle_t *b, const jefw_model_t *m, jefw_engine_t *e,
                    jefw_stream_options_t *o, FILE *in, FILE *out, FILE *report);
/* The arrhythmia monitor of a beat bundle (jefw_monitor.c; devices/stream/monitor.py): quality windows, R peaks,
 * beats labelled by the engine and the RR / template fusion, rhythm episodes. */
/* wm / we: the window classifier run beside it (`--beats`), whose windows give the quality verdicts; NULL: quality-only
 * windows over the beat lead and one other lead, from the beat bundle's header. */
int jefw_run_monitor(const jefw_model_t *m, jefw_engine_t *e, const jefw_model_t *wm, jefw_engine_t *we,
                     jefw_stream_options_t *o, FILE *in, FILE *out, FILE *report);

#ifdef __cplusplus
}
#endif
#endif
