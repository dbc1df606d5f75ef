/* The cart-cpu engine: the bundle's OpenVINO IR through the OpenVINO C API, with the thread count and
 * inference precision hint the device profile gives (the header carries them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openvino/c/openvino.h>

#include "jefw.h"

const char *const jefw_engine_default_role = "openvino-int8-xml";
const char *const jefw_engine_tolerance_fallback = NULL;

struct jefw_engine {
    ov_core_t *core;
    ov_model_t *model;
    ov_compiled_model_t *compiled;
    ov_infer_request_t *request;
    ov_tensor_t *input;
    ov_tensor_t *outputs[JEFW_MAX_OUTPUTS];
    const jefw_model_t *m;
    char role[128], file[1024], threads[16], precision[32];
};

static void ov_err(char *err, const char *what, ov_status_e status) {
    const char *detail = ov_get_last_err_msg();
    jefw_errf(err, "OpenVINO: %s failed: %s%s%s", what, ov_get_error_info(status), detail && *detail ? ": " : "",
              detail ? detail : "");
}

static void free_outputs(jefw_engine_t *e) {
    int i;
    for (i = 0; i < JEFW_MAX_OUTPUTS; i++)
        if (e->outputs[i]) {
            ov_tensor_free(e->outputs[i]);
            e->outputs[i] = NULL;
        }
    if (e->input) {
        ov_tensor_free(e->input);
        e->input = NULL;
    }
}

int jefw_engine_open(const jefw_bundle_t *b, const char *role, const jefw_model_t *m, jefw_engine_t **out, char *err) {
    const jefw_file_t *xml = jefw_bundle_role(b, role), *bin = NULL;
    char bin_role[160], *xml_path = NULL, *bin_path = NULL, nthreads[16];
    jefw_engine_t *e;
    ov_status_e st;
    size_t rl = strlen(role);
    struct stat sb;
    *out = NULL;
    if (!xml) {
        const char *kind = json_str(json_get(json_get(b->manifest, "target"), "kind"));
        size_t i, used = 0;
        char roles[JEFW_ERR] = "";
        for (i = 0; i < b->nfiles && used + 70 < sizeof roles; i++)
            if (strstr(b->files[i].role, "-xml"))
                used += (size_t)snprintf(roles + used, sizeof roles - used, "%s%s", used ? ", " : "", b->files[i].role);
        jefw_errf(err, "%s: no OpenVINO IR with role %s in this bundle (IR roles here: %s)%s", b->dir, role,
                  used ? roles : "none",
                  kind && strcmp(kind, "jetson") == 0 ? "; a jetson bundle runs on the TensorRT runner" : "");
        return JEFW_EXIT_BUNDLE;
    }
    if (rl > 4 && strcmp(role + rl - 4, "-xml") == 0 && rl < sizeof bin_role) {
        memcpy(bin_role, role, rl - 4);
        strcpy(bin_role + rl - 4, "-bin");
        bin = jefw_bundle_role(b, bin_role);
    }
    xml_path = jefw_bundle_join(b, xml->path);
    bin_path = bin ? jefw_bundle_join(b, bin->path) : NULL;
    if (!xml_path || (bin && !bin_path)) {
        free(xml_path);
        jefw_errf(err, "out of memory");
        return JEFW_EXIT_SYSTEM;
    }
    if (stat(xml_path, &sb) != 0 || (bin_path && stat(bin_path, &sb) != 0)) {
        jefw_errf(err, "%s: engine file missing", stat(xml_path, &sb) != 0 ? xml_path : bin_path);
        free(xml_path);
        free(bin_path);
        return JEFW_EXIT_BUNDLE;
    }
    e = (jefw_engine_t *)calloc(1, sizeof *e);
    if (!e) {
        free(xml_path);
        free(bin_path);
        jefw_errf(err, "out of memory");
        return JEFW_EXIT_SYSTEM;
    }
    e->m = m;
    snprintf(e->role, sizeof e->role, "%s", role);
    snprintf(e->file, sizeof e->file, "%s", xml->path);
    snprintf(e->precision, sizeof e->precision, "%s", m->precision_hint && *m->precision_hint ? m->precision_hint : "f32");
    snprintf(nthreads, sizeof nthreads, "%d", m->threads);
    snprintf(e->threads, sizeof e->threads, "%s", m->threads > 0 ? nthreads : "default");
    if ((st = ov_core_create(&e->core)) != OK) ov_err(err, "ov_core_create", st);
    else if ((st = ov_core_read_model(e->core, xml_path, bin_path ? bin_path : "", &e->model)) != OK)
        ov_err(err, "reading the IR", st);
    else {
        /* PERFORMANCE_HINT LATENCY always; precision unless "default"; threads when the profile names them */
        int pin = strcmp(e->precision, "default") != 0, thr = m->threads > 0;
        const char *k1 = ov_property_key_hint_performance_mode, *k2 = ov_property_key_hint_inference_precision,
                   *k3 = ov_property_key_inference_num_threads;
        if (pin && thr)
            st = ov_core_compile_model(e->core, e->model, "CPU", 6, &e->compiled, k1, "LATENCY", k2, e->precision, k3,
                                       nthreads);
        else if (pin)
            st = ov_core_compile_model(e->core, e->model, "CPU", 4, &e->compiled, k1, "LATENCY", k2, e->precision);
        else if (thr)
            st = ov_core_compile_model(e->core, e->model, "CPU", 4, &e->compiled, k1, "LATENCY", k3, nthreads);
        else
            st = ov_core_compile_model(e->core, e->model, "CPU", 2, &e->compiled, k1, "LATENCY");
        if (st != OK) ov_err(err, "compiling the model for CPU", st);
        else if ((st = ov_compiled_model_create_infer_request(e->compiled, &e->request)) != OK)
            ov_err(err, "creating an infer request", st);
    }
    free(xml_path);
    free(bin_path);
    if (st != OK) {
        jefw_engine_close(e);
        return JEFW_EXIT_ENGINE;
    }
    *out = e;
    return JEFW_EXIT_OK;
}

int jefw_engine_infer(jefw_engine_t *e, const float *input, int batch, char *err) {
    int64_t dims[3];
    ov_shape_t shape;
    ov_status_e st;
    free_outputs(e);
    dims[0] = batch;
    dims[1] = e->m->num_leads;
    dims[2] = e->m->window;
    if ((st = ov_shape_create(3, dims, &shape)) != OK) {
        ov_err(err, "ov_shape_create", st);
        return -1;
    }
    st = ov_tensor_create_from_host_ptr(F32, shape, (void *)input, &e->input);
    ov_shape_free(&shape);
    if (st != OK) {
        ov_err(err, "wrapping the input", st);
        return -1;
    }
    if ((st = ov_infer_request_set_input_tensor_by_index(e->request, 0, e->input)) != OK) {
        ov_err(err, "setting the input", st);
        return -1;
    }
    if ((st = ov_infer_request_infer(e->request)) != OK) {
        ov_err(err, "inference", st);
        return -1;
    }
    return 0;
}

int jefw_engine_output(jefw_engine_t *e, const char *name, const float **data, size_t *count, char *err) {
    int i = jefw_output_index(e->m, name);
    ov_status_e st;
    void *ptr;
    if (i < 0) {
        jefw_errf(err, "the header names no output '%s'", name);
        return -1;
    }
    if (!e->outputs[i] && (st = ov_infer_request_get_tensor(e->request, name, &e->outputs[i])) != OK) {
        ov_err(err, "reading output tensor", st);
        return -1;
    }
    if ((st = ov_tensor_data(e->outputs[i], &ptr)) != OK || (st = ov_tensor_get_size(e->outputs[i], count)) != OK) {
        ov_err(err, "reading output data", st);
        return -1;
    }
    *data = (const float *)ptr;
    return 0;
}

void jefw_engine_info(const jefw_engine_t *e, FILE *out) {
    ov_version_t v;
    char *used = NULL, *threads = NULL;
    int have_v = ov_get_openvino_version(&v) == OK;
    ov_compiled_model_get_property(e->compiled, "INFERENCE_PRECISION_HINT", &used);
    ov_compiled_model_get_property(e->compiled, "INFERENCE_NUM_THREADS", &threads);
    fputs("{\"backend\": \"openvino-c\", \"file\": ", out);
    jefw_json_string(out, e->file);
    fputs(", \"inference_precision\": ", out);
    jefw_json_string(out, used ? used : "?");
    fputs(", \"requested_precision\": ", out);
    jefw_json_string(out, e->precision);
    fputs(", \"role\": ", out);
    jefw_json_string(out, e->role);
    fprintf(out, ", \"threads\": %s, \"version\": ", threads ? threads : "null");
    jefw_json_string(out, have_v ? v.buildNumber : "?");
    fputc('}', out);
    if (used) ov_free(used);
    if (threads) ov_free(threads);
    if (have_v) ov_version_free(&v);
}

void jefw_engine_close(jefw_engine_t *e) {
    if (!e) return;
    free_outputs(e);
    if (e->request) ov_infer_request_free(e->request);
    if (e->compiled) ov_compiled_model_free(e->compiled);
    if (e->model) ov_model_free(e->model);
    if (e->core) ov_core_free(e->core);
    free(e);
}
