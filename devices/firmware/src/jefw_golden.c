/* Golden mode: the bundle's raw golden files (golden/raw/index.json) against the header's preprocessing and the
 * engine, each within the manifest's tolerances. "ok" lines to `out`, one "FAIL" line per failure to `report`. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jefw.h"

static int host_little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static void swap_bytes(void *data, size_t count, size_t width) {
    unsigned char *p = (unsigned char *)data, t;
    size_t i, k;
    for (i = 0; i < count; i++, p += width)
        for (k = 0; k < width / 2; k++) t = p[k], p[k] = p[width - 1 - k], p[width - 1 - k] = t;
}

/* A raw little-endian array of `count` values of `width` bytes, listed in the manifest (so already hashed). */
static void *read_raw(const jefw_bundle_t *b, const char *rel, size_t count, size_t width, char *err) {
    char *abs, *data;
    size_t len;
    if (!rel || !jefw_bundle_file(b, rel)) {
        jefw_errf(err, "%s: golden file not listed in manifest.json", rel ? rel : "(no path)");
        return NULL;
    }
    abs = jefw_bundle_join(b, rel);
    if (!abs || jefw_read_all(abs, &data, &len, err) != 0) {
        free(abs);
        return NULL;
    }
    free(abs);
    if (len != count * width) {
        jefw_errf(err, "%s: %lu bytes, the index describes %lu values of %lu bytes", rel, (unsigned long)len,
                  (unsigned long)count, (unsigned long)width);
        free(data);
        return NULL;
    }
    if (!host_little_endian()) swap_bytes(data, count, width);
    return data;
}

static int shape_of(const json_value *spec, long long *dims, int max_rank, int *rank) {
    const json_value *shape = json_get(spec, "shape");
    size_t i;
    if (!shape || shape->type != JSON_ARRAY || shape->count == 0 || (int)shape->count > max_rank) return 0;
    for (i = 0; i < shape->count; i++)
        if (!json_int(json_at(shape, i), &dims[i]) || dims[i] < 1) return 0;
    *rank = (int)shape->count;
    return 1;
}

static int check_sources(const jefw_bundle_t *b, const jefw_model_t *m, const json_value *sources, const float *inputs,
                         long long count, FILE *out, FILE *report, double *worst) {
    const json_value *windows = json_get(sources, "windows");
    const char *rel = json_str(json_get(sources, "path"));
    double tol, *data = NULL;
    long long total = 0, i;
    size_t k, per = (size_t)m->num_leads * (size_t)m->window;
    float *mine = (float *)malloc(sizeof(float) * per);
    char err[JEFW_ERR];
    int failures = 0;
    *worst = 0.0;
    if (!mine || !windows || windows->type != JSON_ARRAY || (long long)windows->count != count ||
        !json_num(json_get(sources, "input_tolerance"), &tol) || !rel) {
        fprintf(report, "FAIL golden/raw/index.json: sources need a path, input_tolerance and one window per input\n");
        free(mine);
        return 1;
    }
    for (k = 0; k < windows->count; k++) { /* total values in the file: max end of any window */
        long long off, leads, samples;
        const json_value *w = json_at(windows, k);
        if (json_int(json_get(w, "element_offset"), &off) && json_int(json_get(w, "leads"), &leads) &&
            json_int(json_get(w, "samples"), &samples) && off >= 0 && leads > 0 && samples > 0 &&
            off + leads * samples > total)
            total = off + leads * samples;
    }
    data = (double *)read_raw(b, rel, (size_t)total, sizeof(double), err);
    if (!data) {
        fprintf(report, "FAIL %s\n", err);
        free(mine);
        return 1;
    }
    for (i = 0; i < count; i++) {
        const json_value *w = json_at(windows, (size_t)i);
        long long off, leads, samples, offset;
        double fs, diff = 0.0;
        const float *golden = inputs + (size_t)i * per;
        if (!json_int(json_get(w, "element_offset"), &off) || !json_int(json_get(w, "leads"), &leads) ||
            !json_int(json_get(w, "samples"), &samples) || !json_int(json_get(w, "window_offset"), &offset) ||
            !json_num(json_get(w, "fs"), &fs) || leads != m->num_leads || fs != floor(fs) || fs <= 0) {
            fprintf(report, "FAIL preprocess window %lld: source entry malformed, not %d leads, or a non-integer "
                            "sampling rate\n", i, m->num_leads);
            failures++;
            continue;
        }
        if (jefw_preprocess_window(m, data + off, (long)samples, (long)fs, (long)offset, mine, err) != 0) {
            fprintf(report, "FAIL preprocess window %lld: %s\n", i, err);
            failures++;
            continue;
        }
        for (k = 0; k < per; k++) {
            double d = fabs((double)mine[k] - (double)golden[k]);
            if (!(d <= diff)) diff = d; /* NaN propagates as a failure */
        }
        if (diff > *worst || diff != diff) *worst = diff;
        if (diff <= tol)
            fprintf(out, "ok preprocess window %lld: max |diff| %.3g <= %g (%lld samples at %g Hz, offset %lld)\n", i,
                    diff, tol, samples, fs, offset);
        else {
            fprintf(report, "FAIL preprocess window %lld: max |diff| %.3g > %g between the header's preprocessing "
                            "and the golden input\n", i, diff, tol);
            failures++;
        }
    }
    free(data);
    free(mine);
    return failures;
}

int jefw_run_golden(const jefw_bundle_t *b, const jefw_model_t *m, jefw_engine_t *e, const char *role,
                    FILE *out, FILE *report) {
    const char *index_rel = json_str(json_get(json_get(b->manifest, "golden"), "raw"));
    const json_value *index, *outputs, *sources;
    char *abs, *text, err[JEFW_ERR];
    size_t len, per = (size_t)m->num_leads * (size_t)m->window, k;
    long long dims[8], count;
    int rank, failures = 0, checks = 0, rc = JEFW_EXIT_OK;
    float *inputs = NULL, *expected[JEFW_MAX_OUTPUTS] = {0};
    double worst_out[JEFW_MAX_OUTPUTS] = {0}, worst_pre = 0.0, tols[JEFW_MAX_OUTPUTS];
    const char *names[JEFW_MAX_OUTPUTS], *tol_keys[JEFW_MAX_OUTPUTS];
    long long widths[JEFW_MAX_OUTPUTS];
    int has_tol[JEFW_MAX_OUTPUTS], nout = 0, o;
    json_value *parsed;

    if (!index_rel || !jefw_bundle_file(b, index_rel)) {
        fprintf(report, "error: %s: no golden/raw/index.json in manifest.json (a bundle built before firmware "
                        "support): rebuild it with this toolkit\n", b->dir);
        return JEFW_EXIT_BUNDLE;
    }
    abs = jefw_bundle_join(b, index_rel);
    if (!abs || jefw_read_all(abs, &text, &len, err) != 0) {
        free(abs);
        fprintf(report, "error: %s\n", err);
        return JEFW_EXIT_BUNDLE;
    }
    free(abs);
    parsed = json_parse(text, len, err, sizeof err);
    free(text);
    index = parsed;
    if (!index || !json_str(json_get(index, "format")) ||
        strcmp(json_str(json_get(index, "format")), "jepa-edge-golden-raw") != 0 ||
        !json_str(json_get(index, "byte_order")) || strcmp(json_str(json_get(index, "byte_order")), "little") != 0 ||
        !json_int(json_get(index, "count"), &count) || count < 1) {
        fprintf(report, "error: %s: not a jepa-edge-golden-raw index (little-endian, count >= 1)%s%s\n", index_rel,
                index ? "" : ": ", index ? "" : err);
        json_free(parsed);
        return JEFW_EXIT_BUNDLE;
    }
    if (!shape_of(json_get(index, "inputs"), dims, 8, &rank) || rank != 3 || dims[0] != count ||
        dims[1] != m->num_leads || dims[2] != m->window) {
        fprintf(report, "error: %s: golden inputs are not (%lld, %d leads, %d samples) as the header says\n",
                index_rel, count, m->num_leads, m->window);
        json_free(parsed);
        return JEFW_EXIT_BUNDLE;
    }
    inputs = (float *)read_raw(b, json_str(json_get(json_get(index, "inputs"), "path")), (size_t)count * per,
                               sizeof(float), err);
    if (!inputs) {
        fprintf(report, "error: %s\n", err);
        json_free(parsed);
        return JEFW_EXIT_BUNDLE;
    }
    outputs = json_get(index, "outputs");
    for (k = 0; outputs && outputs->type == JSON_OBJECT && k < outputs->count && nout < JEFW_MAX_OUTPUTS; k++) {
        const json_value *spec = &outputs->items[k];
        int idx = jefw_output_index(m, outputs->keys[k]);
        if (idx < 0 || !shape_of(spec, dims, 8, &rank) || rank != 2 || dims[0] != count ||
            (m->output_width[idx] > 0 && dims[1] != m->output_width[idx])) {
            fprintf(report, "error: %s: golden output '%s' is not an output of the header's shape (%lld, %lld)\n",
                    index_rel, outputs->keys[k], count, idx >= 0 ? m->output_width[idx] : -1LL);
            rc = JEFW_EXIT_BUNDLE;
            goto done;
        }
        names[nout] = outputs->keys[k];
        widths[nout] = dims[1];
        expected[nout] = (float *)read_raw(b, json_str(json_get(spec, "path")), (size_t)(count * dims[1]),
                                           sizeof(float), err);
        if (!expected[nout]) {
            fprintf(report, "error: %s\n", err);
            rc = JEFW_EXIT_BUNDLE;
            goto done;
        }
        has_tol[nout] = jefw_bundle_tolerance(b, role, jefw_engine_tolerance_fallback, names[nout], &tols[nout],
                                              &tol_keys[nout]);
        if (!has_tol[nout])
            fprintf(out, "skip %s: manifest.json gives no golden tolerance for %s\n", names[nout], role);
        nout++;
    }

    sources = json_get(index, "sources");
    if (sources && sources->type == JSON_OBJECT) {
        int f = check_sources(b, m, sources, inputs, count, out, report, &worst_pre);
        failures += f;
        checks += (int)count;
    } else
        fprintf(out, "skip preprocess: the bundle carries no raw source records for its golden inputs\n");

    for (k = 0; k < (size_t)count; k++) {
        if (jefw_engine_infer(e, inputs + k * per, 1, err) != 0) {
            fprintf(report, "error: golden window %lu: %s\n", (unsigned long)k, err);
            rc = JEFW_EXIT_ENGINE;
            goto done;
        }
        for (o = 0; o < nout; o++) {
            const float *got;
            size_t n, j;
            double diff = 0.0;
            if (!has_tol[o]) continue;
            if (jefw_engine_output(e, names[o], &got, &n, err) != 0) {
                fprintf(report, "error: golden window %lu: %s\n", (unsigned long)k, err);
                rc = JEFW_EXIT_ENGINE;
                goto done;
            }
            checks++;
            if ((long long)n != widths[o]) {
                fprintf(report, "FAIL golden window %lu %s: engine gives %lu values, golden has %lld\n",
                        (unsigned long)k, names[o], (unsigned long)n, widths[o]);
                failures++;
                continue;
            }
            for (j = 0; j < n; j++) {
                double d = fabs((double)got[j] - (double)expected[o][k * n + j]);
                if (!(d <= diff)) diff = d;
            }
            if (diff > worst_out[o] || diff != diff) worst_out[o] = diff;
            if (diff <= tols[o])
                fprintf(out, "ok golden window %lu %s: max |diff| %.3g <= %g (%s)\n", (unsigned long)k, names[o], diff,
                        tols[o], tol_keys[o]);
            else {
                fprintf(report, "FAIL golden window %lu %s: max |diff| %.3g > tolerance %g (%s)\n", (unsigned long)k,
                        names[o], diff, tols[o], tol_keys[o]);
                failures++;
            }
        }
    }
    fprintf(out, "%s golden: %lld windows, %d checks, %d failed; preprocessing max |diff| %.3g", failures ? "FAIL" : "PASS",
            count, checks, failures, worst_pre);
    for (o = 0; o < nout; o++)
        if (has_tol[o]) fprintf(out, "; %s max |diff| %.3g (tolerance %g)", names[o], worst_out[o], tols[o]);
    fprintf(out, "\n");
    rc = failures ? JEFW_EXIT_MISMATCH : JEFW_EXIT_OK;
done:
    for (o = 0; o < JEFW_MAX_OUTPUTS; o++) free(expected[o]);
    free(inputs);
    json_free(parsed);
    return rc;
}
