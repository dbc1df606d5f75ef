/* jepa_edge_runner: the firmware reference runner's command line. See docs/firmware.md.
 *
 *   jepa_edge_runner golden BUNDLE [--role ROLE] [--threads N]
 *   jepa_edge_runner stream BUNDLE --fs HZ --leads II,V1 [--gain ADU_PER_MV] [--baseline ADU] [--chunk FRAMES]
 *                           [--role ROLE] [--threads N] [--hysteresis H] [--on-windows N] [--off-windows N]
 *                           < frames.i16
 *   jepa_edge_runner info
 *
 * `stream` on a beat bundle (modality ecg-beat) runs the arrhythmia monitor: beats, rhythm episodes, quality windows.
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
            "       jepa_edge_runner stream BUNDLE --fs HZ --leads II,V1 [--gain ADU_PER_MV] [--baseline ADU]\n"
            "                        [--chunk FRAMES] [--role ROLE] [--threads N] [--hysteresis H]\n"
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

int main(int argc, char **argv) {
    jefw_model_t model = *jefw_model(); /* a copy: --threads may override the profile's thread count */
    const jefw_model_t *m = &model;
    jefw_bundle_t bundle;
    jefw_engine_t *engine = NULL;
    jefw_stream_options_t so;
    const char *mode, *dir, *role = jefw_engine_default_role;
    char err[JEFW_ERR];
    int i, rc, failures, have_fs = 0;

    if (argc < 2) return usage(NULL);
    mode = argv[1];
    if (strcmp(mode, "info") == 0) {
        info(m);
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
            model.threads = (int)lv;
        }
        else if (strcmp(mode, "stream") != 0) return usage("unknown option for golden mode");
        else if (strcmp(opt, "--fs") == 0 && ok) {
            double fs;
            if (!parse_double(val, &fs) || fs <= 0 || fs != (double)(long)fs || fs > 1e6)
                return usage("--fs must be a positive integer sampling rate in Hz");
            so.fs = (long)fs;
            have_fs = 1;
        } else if (strcmp(opt, "--leads") == 0 && ok) snprintf(so.leads, sizeof so.leads, "%s", val);
        else if (strcmp(opt, "--gain") == 0 && ok) {
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

    rc = jefw_bundle_open(&bundle, dir, err);
    if (rc != JEFW_EXIT_OK) {
        fprintf(stderr, "error: %s\n", err);
        jefw_bundle_close(&bundle);
        return rc;
    }
    if ((rc = jefw_bundle_supported(&bundle, m, err)) != JEFW_EXIT_OK) {
        fprintf(stderr, "error: %s\n", err);
        jefw_bundle_close(&bundle);
        return rc;
    }
    failures = jefw_bundle_verify(&bundle, stderr);
    if (failures) {
        fprintf(stderr, "error: %s: %d file(s) fail verification against manifest.json; nothing was run\n", dir,
                failures);
        jefw_bundle_close(&bundle);
        return JEFW_EXIT_BUNDLE;
    }
    if ((rc = jefw_bundle_header_matches(&bundle, m, err)) != JEFW_EXIT_OK) {
        fprintf(stderr, "error: %s\n", err);
        jefw_bundle_close(&bundle);
        return rc;
    }
    if (strcmp(mode, "golden") == 0)
        printf("ok bundle %s: %lu files match manifest.json (size, SHA-256); header %.16s... is this bundle's\n", dir,
               (unsigned long)bundle.nfiles, jefw_bundle_file(&bundle, "include/jepa_edge_model.h")->sha256);
    if ((rc = jefw_engine_open(&bundle, role, m, &engine, err)) != JEFW_EXIT_OK) {
        fprintf(stderr, "error: %s\n", err);
        jefw_bundle_close(&bundle);
        return rc;
    }
    if (strcmp(mode, "golden") == 0) {
        printf("ok engine ");
        jefw_engine_info(engine, stdout);
        printf("\n");
        rc = jefw_run_golden(&bundle, m, engine, role, stdout, stderr);
    } else if (strcmp(m->modality, "ecg-beat") == 0)
        rc = jefw_run_monitor(&bundle, m, engine, &so, stdin, stdout, stderr);
    else
        rc = jefw_run_stream(&bundle, m, engine, &so, stdin, stdout, stderr);
    jefw_engine_close(engine);
    jefw_bundle_close(&bundle);
    fflush(stdout);
    return rc;
}
