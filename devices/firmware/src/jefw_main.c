/* jepa_edge_runner: the firmware reference runner's command line. See docs/firmware.md.
 *
 *   jepa_edge_runner golden BUNDLE [--role ROLE] [--threads N]
 *   jepa_edge_runner stream BUNDLE --fs HZ --leads II,V1 [--beats BEAT_BUNDLE] [--gain ADU_PER_MV] [--baseline ADU]
 *                           [--chunk FRAMES] [--role ROLE] [--threads N] [--hysteresis H] [--on-windows N]
 *                           [--off-windows N] < frames.i16
 *   jepa_edge_runner info
 *
 * `stream` on a beat bundle (modality ecg-beat) runs the arrhythmia monitor: beats, rhythm episodes, quality windows.
 * A runner built with a beat bundle beside the window classifier (`jepa-edge firmware build WINDOW --beats BEAT`)
 * runs either bundle alone, and with `stream WINDOW --beats BEAT` both on the same frames: the window classifier's
 * windows, whose quality verdicts withhold beats, and the monitor's beats and episodes.
 *
 * Every run first checks the bundle: manifest.json parsed, every listed file's size and SHA-256, no unlisted
 * files, the header this runner was compiled against is the bundle's own. Exit codes: jefw.h / docs/firmware.md. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jefw.h"
#include "jefw_config.h"

static int usage(const char *why) {
    if (why) fprintf(stderr, "error: %s\n", why);
    fprintf(stderr,
            "usage: jepa_edge_runner golden BUNDLE [--role ROLE] [--threads N]\n"
            "       jepa_edge_runner stream BUNDLE --fs HZ --leads II,V1 [--beats BEAT_BUNDLE] [--gain ADU_PER_MV]\n"
            "                        [--baseline ADU] [--chunk FRAMES] [--role ROLE] [--threads N] [--hysteresis H]\n"
            "                        [--on-windows N] [--off-windows N]\n"
            "       jepa_edge_runner info\n");
    return JEFW_EXIT_USAGE;
}

static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return *s && !*end && errno == 0;
}

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    *out = strtol(s, &end, 10);
    return *s && !*end && errno == 0;
}

static void info(const jefw_model_t *m) {
    int i;
    printf("model %s\nmodality %s\noutput_kind %d\ntarget %s\nheader_sha256 %s\nfs %d\nwindow %d\nhop %d\nleads",
           m->model_name, m->modality, m->output_kind, m->target, m->header_sha256[0] ? m->header_sha256 : "(none)",
           m->fs, m->window, m->hop);
    for (i = 0; i < m->num_leads; i++) printf(" %s", m->lead_names[i]);
    printf("\nlabels");
    for (i = 0; i < m->num_labels; i++) printf(" %s", m->labels[i]);
    printf("\nengine %s\nthreads %d\nprecision_hint %s\n", jefw_engine_default_role, m->threads, m->precision_hint);
}

typedef struct {
    jefw_bundle_t bundle;
    jefw_engine_t *engine;
} loaded_t;

static void unload(loaded_t *l) {
    if (l->engine) jefw_engine_close(l->engine);
    jefw_bundle_close(&l->bundle);
}

static int header_is(const jefw_bundle_t *b, const jefw_model_t *m) {
    const jefw_file_t *h = jefw_bundle_file(b, "include/jepa_edge_model.h");
    return m && h && m->header_sha256[0] && strcmp(m->header_sha256, h->sha256) == 0;
}

/* Open a bundle and check it against the compiled-in model it belongs to (the beat model when its header is the
 * beat bundle's, else the window model; `want` forces one): manifest, support, every file's hash, header; then its
 * engine. Golden mode reports each step. */
static int load(loaded_t *l, const char *dir, const jefw_model_t *models[2], int want, const char *role,
                int golden, const jefw_model_t **m) {
    char err[JEFW_ERR];
    int rc, failures;
    memset(l, 0, sizeof *l);
    if ((rc = jefw_bundle_open(&l->bundle, dir, err)) != JEFW_EXIT_OK) goto fail;
    *m = models[want >= 0 ? want : header_is(&l->bundle, models[1])];
    if (want == 1 && header_is(&l->bundle, models[0])) {
        jefw_errf(err, "%s: the window classifier's bundle; --beats takes the beat bundle this runner was built with",
                  dir);
        rc = JEFW_EXIT_USAGE;
        goto fail;
    }
    if (want == 0 && header_is(&l->bundle, models[1])) {
        jefw_errf(err, "%s: a beat model; with --beats, BUNDLE is the window classifier", dir);
        rc = JEFW_EXIT_USAGE;
        goto fail;
    }
    if ((rc = jefw_bundle_supported(&l->bundle, *m, err)) != JEFW_EXIT_OK) goto fail;
    failures = jefw_bundle_verify(&l->bundle, stderr);
    if (failures) {
        jefw_errf(err, "%s: %d file(s) fail verification against manifest.json; nothing was run", dir, failures);
        rc = JEFW_EXIT_BUNDLE;
        goto fail;
    }
    if ((rc = jefw_bundle_header_matches(&l->bundle, *m, err)) != JEFW_EXIT_OK) goto fail;
    if (golden)
        printf("ok bundle %s: %lu files match manifest.json (size, SHA-256); header %.16s... is this bundle's\n", dir,
               (unsigned long)l->bundle.nfiles, jefw_bundle_file(&l->bundle, "include/jepa_edge_model.h")->sha256);
    if ((rc = jefw_engine_open(&l->bundle, role, *m, &l->engine, err)) != JEFW_EXIT_OK) goto fail;
    return JEFW_EXIT_OK;
fail:
    fprintf(stderr, "error: %s\n", err);
    unload(l);
    return rc;
}

int main(int argc, char **argv) {
    jefw_model_t model = *jefw_model(), beat_model; /* copies: --threads may override the profile's thread count */
    const jefw_model_t *models[2] = {&model, NULL}, *m, *bm;
    loaded_t main_bundle, beat_bundle;
    jefw_stream_options_t so;
    const char *mode, *dir, *beats_dir = NULL, *role = jefw_engine_default_role;
    int i, rc, have_fs = 0;

    memset(&beat_model, 0, sizeof beat_model);
    if (jefw_beat_model()) {
        beat_model = *jefw_beat_model();
        models[1] = &beat_model;
    }
    if (argc < 2) return usage(NULL);
    mode = argv[1];
    if (strcmp(mode, "info") == 0) {
        info(models[0]);
        if (models[1]) {
            printf("\nbeats\n");
            info(models[1]);
        }
        return JEFW_EXIT_OK;
    }
    if (strcmp(mode, "golden") != 0 && strcmp(mode, "stream") != 0) return usage("unknown mode (golden, stream, info)");
    if (argc < 3 || argv[2][0] == '-') return usage("give the bundle folder");
    dir = argv[2];
    memset(&so, 0, sizeof so);
    so.gain = 200.0;
    so.chunk = JEFW_STREAM_CHUNK;
    jefw_stream_config_defaults(&so.config);
    for (i = 3; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        long lv;
        int ok = val != NULL;
        if (strcmp(opt, "--role") == 0 && ok) role = val;
        else if (strcmp(opt, "--threads") == 0 && ok) {
            if (!parse_long(val, &lv) || lv < 0 || lv > 1024) return usage("--threads must be 0 (runtime default) .. 1024");
            model.threads = beat_model.threads = (int)lv;
        }
        else if (strcmp(mode, "stream") != 0) return usage("unknown option for golden mode");
        else if (strcmp(opt, "--fs") == 0 && ok) {
            double fs;
            if (!parse_double(val, &fs) || fs <= 0 || fs != (double)(long)fs || fs > 1e6)
                return usage("--fs must be a positive integer sampling rate in Hz");
            so.fs = (long)fs;
            have_fs = 1;
        } else if (strcmp(opt, "--leads") == 0 && ok) snprintf(so.leads, sizeof so.leads, "%s", val);
        else if (strcmp(opt, "--beats") == 0 && ok) {
            if (!models[1])
                return usage("--beats: this runner was built against one bundle; build it with the beat bundle beside "
                             "the window classifier (jepa-edge firmware build WINDOW_BUNDLE --beats BEAT_BUNDLE)");
            beats_dir = val;
        } else if (strcmp(opt, "--gain") == 0 && ok) {
            if (!parse_double(val, &so.gain) || !(so.gain > 0)) return usage("--gain must be positive (ADC units per mV)");
        } else if (strcmp(opt, "--baseline") == 0 && ok) {
            if (!parse_double(val, &so.baseline)) return usage("--baseline must be a number (ADC units of 0 mV)");
        } else if (strcmp(opt, "--chunk") == 0 && ok) {
            if (!parse_long(val, &so.chunk) || so.chunk < 1 || so.chunk > 1000000) return usage("--chunk must be 1..1000000");
        } else if (strcmp(opt, "--hysteresis") == 0 && ok) {
            if (!parse_double(val, &so.config.hysteresis) || so.config.hysteresis < 0 || so.config.hysteresis >= 0.5)
                return usage("--hysteresis must be in [0, 0.5)");
        } else if ((strcmp(opt, "--on-windows") == 0 || strcmp(opt, "--off-windows") == 0) && ok) {
            if (!parse_long(val, &lv) || lv < 1 || lv > 1000000) return usage("--on-windows / --off-windows must be >= 1");
            if (opt[3] == 'n') so.config.on_windows = (int)lv;
            else so.config.off_windows = (int)lv;
        } else return usage(ok ? "unknown option" : "option without a value");
        i++;
    }
    if (strcmp(mode, "stream") == 0 && (!have_fs || !so.leads[0]))
        return usage("stream mode needs --fs HZ and --leads (the frames' lead order, e.g. II,V1)");

    if ((rc = load(&main_bundle, dir, models, beats_dir ? 0 : -1, role, strcmp(mode, "golden") == 0, &m)) != JEFW_EXIT_OK)
        return rc;
    if (beats_dir && (rc = load(&beat_bundle, beats_dir, models, 1, role, 0, &bm)) != JEFW_EXIT_OK) {
        unload(&main_bundle);
        return rc;
    }
    if (strcmp(mode, "golden") == 0) {
        printf("ok engine ");
        jefw_engine_info(main_bundle.engine, stdout);
        printf("\n");
        rc = jefw_run_golden(&main_bundle.bundle, m, main_bundle.engine, role, stdout, stderr);
    } else if (beats_dir) {
        rc = jefw_run_monitor(bm, beat_bundle.engine, m, main_bundle.engine, &so, stdin, stdout, stderr);
        unload(&beat_bundle);
    } else if (strcmp(m->modality, "ecg-beat") == 0)
        rc = jefw_run_monitor(m, main_bundle.engine, NULL, NULL, &so, stdin, stdout, stderr);
    else
        rc = jefw_run_stream(&main_bundle.bundle, m, main_bundle.engine, &so, stdin, stdout, stderr);
    unload(&main_bundle);
    fflush(stdout);
    return rc;
}
