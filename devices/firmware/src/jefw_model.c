/* The one translation unit that includes the bundle's generated header: its constants become jefw_model_t, so
 * every other part of the runner is independent of the bundle it is compiled against. A runner built with a beat
 * bundle beside the window classifier compiles this file twice, the second time against the beat bundle's header
 * with JEFW_MODEL_FN=jefw_beat_model (CMakeLists.txt); its tables are static, so the two copies do not meet. */
#include <string.h>

#include "jefw.h"
#include "jepa_edge_model.h"

#ifndef JEPA_EDGE_HEADER_SHA256
#define JEPA_EDGE_HEADER_SHA256 ""
#endif
#ifndef JEPA_EDGE_DEVICE_PROFILE
#define JEPA_EDGE_DEVICE_PROFILE ""
#endif
#ifndef JEPA_EDGE_DEVICE_THREADS
#define JEPA_EDGE_DEVICE_THREADS 0
#endif
#ifndef JEPA_EDGE_OPENVINO_PRECISION_HINT
#define JEPA_EDGE_OPENVINO_PRECISION_HINT "f32" /* pinned for parity, as the Python OpenVINO back end does */
#endif
#ifndef JEPA_EDGE_MODALITY
#define JEPA_EDGE_MODALITY "ecg" /* headers from before modalities were ECG-only */
#endif
#ifndef JEPA_EDGE_OUTPUT_KIND
#define JEPA_EDGE_OUTPUT_KIND 0
#endif

#ifndef JEFW_MODEL_FN
#define JEFW_MODEL_FN jefw_model
#endif

static jefw_model_t model;
static int ready;

static long long last_dim(const long long *shape, int rank) { return rank > 0 ? shape[rank - 1] : -1; }

const jefw_model_t *JEFW_MODEL_FN(void) {
    if (ready) return &model;
    memset(&model, 0, sizeof model);
    model.modality = JEPA_EDGE_MODALITY;
    model.output_kind = JEPA_EDGE_OUTPUT_KIND;
    model.model_name = JEPA_EDGE_MODEL_NAME;
    model.source_checkpoint_sha256 = JEPA_EDGE_SOURCE_CHECKPOINT_SHA256;
    model.target = JEPA_EDGE_TARGET;
    model.header_sha256 = JEPA_EDGE_HEADER_SHA256;
#if defined(JEPA_EDGE_NUM_LEADS) && defined(JEPA_EDGE_NUM_SOS)
    model.fs = JEPA_EDGE_FS_HZ;
    model.window = JEPA_EDGE_WINDOW_SAMPLES;
    model.hop = JEPA_EDGE_HOP_SAMPLES;
    model.window_s = JEPA_EDGE_WINDOW_S;
    model.hop_s = JEPA_EDGE_HOP_S;
    model.num_leads = JEPA_EDGE_NUM_LEADS;
    model.lead_names = jepa_edge_lead_names;
    model.num_sos = JEPA_EDGE_NUM_SOS;
    model.sos = jepa_edge_sos;
    model.sos_zi = jepa_edge_sos_zi;
    model.normalised = JEPA_EDGE_NORMALISED;
    model.clip = JEPA_EDGE_CLIP;
    model.mean = jepa_edge_mean;
    model.std = jepa_edge_std;
#endif
#ifdef JEPA_EDGE_RESAMPLE_MAX_DENOMINATOR
    model.resample_max_den = JEPA_EDGE_RESAMPLE_MAX_DENOMINATOR;
    model.resample_half_len_per_rate = JEPA_EDGE_RESAMPLE_HALF_LEN_PER_RATE;
    model.resample_kaiser_beta = JEPA_EDGE_RESAMPLE_KAISER_BETA;
#endif
    model.num_labels = JEPA_EDGE_NUM_LABELS;
    model.labels = jepa_edge_labels;
    model.thresholds = jepa_edge_thresholds;
    model.input_name = JEPA_EDGE_INPUT_0_NAME;
    model.num_outputs = JEPA_EDGE_NUM_OUTPUTS < JEFW_MAX_OUTPUTS ? JEPA_EDGE_NUM_OUTPUTS : JEFW_MAX_OUTPUTS;
    model.output_names[0] = JEPA_EDGE_OUTPUT_0_NAME;
    model.output_width[0] = last_dim(jepa_edge_output_0_shape, JEPA_EDGE_OUTPUT_0_RANK);
#ifdef JEPA_EDGE_OUTPUT_1_NAME
    model.output_names[1] = JEPA_EDGE_OUTPUT_1_NAME;
    model.output_width[1] = last_dim(jepa_edge_output_1_shape, JEPA_EDGE_OUTPUT_1_RANK);
#endif
#ifdef JEPA_EDGE_OUTPUT_2_NAME
    model.output_names[2] = JEPA_EDGE_OUTPUT_2_NAME;
    model.output_width[2] = last_dim(jepa_edge_output_2_shape, JEPA_EDGE_OUTPUT_2_RANK);
#endif
#ifdef JEPA_EDGE_OUTPUT_3_NAME
    model.output_names[3] = JEPA_EDGE_OUTPUT_3_NAME;
    model.output_width[3] = last_dim(jepa_edge_output_3_shape, JEPA_EDGE_OUTPUT_3_RANK);
#endif
#ifdef JEPA_EDGE_BEAT_BEFORE_SAMPLES
    model.beat_before = JEPA_EDGE_BEAT_BEFORE_SAMPLES;
    model.beat_after = JEPA_EDGE_BEAT_AFTER_SAMPLES;
    model.rr_fusion = JEPA_EDGE_RR_FUSION;
#if JEPA_EDGE_RR_FUSION
    model.rr_history = JEPA_EDGE_RR_HISTORY;
    model.rr_clip = JEPA_EDGE_RR_CLIP;
    model.rr_num_features = JEPA_EDGE_RR_NUM_FEATURES;
#ifdef JEPA_EDGE_RR_SPREAD
    model.rr_spread = JEPA_EDGE_RR_SPREAD;
#endif
    model.template_beats = JEPA_EDGE_TEMPLATE_BEATS;
    model.template_half = JEPA_EDGE_TEMPLATE_HALF_SAMPLES;
    model.template_leads = JEPA_EDGE_TEMPLATE_LEADS;
    model.rr_weight = jepa_edge_rr_weight;
    model.rr_bias = jepa_edge_rr_bias;
#endif
    model.quality_fs = JEPA_EDGE_QUALITY_FS_HZ;
    model.quality_window = JEPA_EDGE_QUALITY_WINDOW_SAMPLES;
    model.quality_hop = JEPA_EDGE_QUALITY_HOP_SAMPLES;
    model.quality_window_s = JEPA_EDGE_QUALITY_WINDOW_S;
    model.quality_hop_s = JEPA_EDGE_QUALITY_HOP_S;
    model.quality_num_sos = JEPA_EDGE_QUALITY_NUM_SOS;
    model.quality_sos = jepa_edge_quality_sos;
    model.quality_sos_zi = jepa_edge_quality_sos_zi;
#endif
    model.device_profile = JEPA_EDGE_DEVICE_PROFILE;
    model.threads = JEPA_EDGE_DEVICE_THREADS;
    model.precision_hint = JEPA_EDGE_OPENVINO_PRECISION_HINT;
    ready = 1;
    return &model;
}

#ifndef JEFW_SECOND_MODEL
int jefw_output_index(const jefw_model_t *m, const char *name) {
    int i;
    for (i = 0; i < m->num_outputs; i++)
        if (m->output_names[i] && strcmp(m->output_names[i], name) == 0) return i;
    return -1;
}
#endif
