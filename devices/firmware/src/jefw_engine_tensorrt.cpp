// The jetson engine: the bundle's serialized TensorRT engine (tensorrt/model.engine, built on the device by
// `jepa-edge engine build`) through the TensorRT C++ runtime API: deserializeCudaEngine, one execution context,
// setInputShape / setTensorAddress / enqueueV3 on a CUDA stream. The rest of the runner (bundle checks,
// preprocessing, golden and streaming modes) is the same C code as the OpenVINO runner.
//
// Written against TensorRT 10 (JetPack 6.x ships 10.3) and still valid for TensorRT 11: no binding indices, no
// enqueueV2, no destroy() (objects are deleted).
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "jefw.h"

extern "C" {
const char *const jefw_engine_default_role = "tensorrt-engine";
// `jepa-edge engine build` checks the engine against the Q/DQ ONNX's golden tolerance; the runner does the same
// when the manifest gives the engine no tolerance of its own.
const char *const jefw_engine_tolerance_fallback = "onnx-qdq";
}

namespace {

class Logger : public nvinfer1::ILogger {
public:
    void log(Severity severity, const char *msg) noexcept override {
        if (severity <= Severity::kWARNING) std::fprintf(stderr, "tensorrt: %s\n", msg);
    }
};

struct Buffer {
    std::string name;
    void *device = nullptr;
    size_t capacity = 0;  // bytes
    std::vector<float> host;
};

bool cuda_ok(cudaError_t status, const char *what, char *err) {
    if (status == cudaSuccess) return true;
    jefw_errf(err, "CUDA: %s failed: %s", what, cudaGetErrorString(status));
    return false;
}

bool reserve(Buffer &b, size_t bytes, char *err) {
    if (bytes <= b.capacity) return true;
    if (b.device) cudaFree(b.device);
    b.device = nullptr;
    b.capacity = 0;
    if (!cuda_ok(cudaMalloc(&b.device, bytes), "cudaMalloc", err)) return false;
    b.capacity = bytes;
    return true;
}

}  // namespace

struct jefw_engine {
    Logger logger;
    nvinfer1::IRuntime *runtime = nullptr;
    nvinfer1::ICudaEngine *engine = nullptr;
    nvinfer1::IExecutionContext *context = nullptr;
    cudaStream_t stream = nullptr;
    const jefw_model_t *m = nullptr;
    std::string role, file;
    Buffer input;
    std::vector<Buffer> outputs;
};

extern "C" int jefw_engine_open(const jefw_bundle_t *b, const char *role, const jefw_model_t *m, jefw_engine_t **out,
                                char *err) {
    *out = nullptr;
    const jefw_file_t *f = jefw_bundle_role(b, role);
    if (!f) {
        jefw_errf(err, "%s: no file with role %s in this bundle: build the engine on this device first "
                       "(jepa-edge engine build %s), or pick another --role", b->dir, role, b->dir);
        return JEFW_EXIT_BUNDLE;
    }
    char *path = jefw_bundle_join(b, f->path);
    if (!path) {
        jefw_errf(err, "out of memory");
        return JEFW_EXIT_SYSTEM;
    }
    std::ifstream in(path, std::ios::binary);
    std::vector<char> blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
        jefw_errf(err, "%s: engine file missing or unreadable", path);
        std::free(path);
        return JEFW_EXIT_BUNDLE;
    }
    auto *e = new jefw_engine();
    e->m = m;
    e->role = role;
    e->file = f->path;
    e->runtime = nvinfer1::createInferRuntime(e->logger);
    if (e->runtime) e->engine = e->runtime->deserializeCudaEngine(blob.data(), blob.size());
    if (!e->engine) {
        jefw_errf(err, "TensorRT %d.%d could not deserialize %s: engines only load on the GPU and TensorRT version "
                       "they were built with; rebuild it here (jepa-edge engine build)", NV_TENSORRT_MAJOR,
                  NV_TENSORRT_MINOR, path);
        std::free(path);
        jefw_engine_close(e);
        return JEFW_EXIT_ENGINE;
    }
    std::free(path);
    e->context = e->engine->createExecutionContext();
    if (!e->context || !cuda_ok(cudaStreamCreate(&e->stream), "cudaStreamCreate", err)) {
        if (!e->context) jefw_errf(err, "TensorRT: createExecutionContext failed");
        jefw_engine_close(e);
        return JEFW_EXIT_ENGINE;
    }
    int32_t inputs = 0;
    for (int32_t i = 0; i < e->engine->getNbIOTensors(); i++) {
        const char *name = e->engine->getIOTensorName(i);
        if (e->engine->getTensorDataType(name) != nvinfer1::DataType::kFLOAT) {
            jefw_errf(err, "TensorRT engine tensor '%s' is not float32 (the runner feeds and reads float32)", name);
            jefw_engine_close(e);
            return JEFW_EXIT_ENGINE;
        }
        if (e->engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT) {
            e->input.name = name;
            inputs++;
        } else {
            Buffer o;
            o.name = name;
            e->outputs.push_back(o);
        }
    }
    if (inputs != 1 || e->input.name != m->input_name) {
        jefw_errf(err, "TensorRT engine has %d inputs (first '%s'); the header expects one named '%s'", inputs,
                  e->input.name.c_str(), m->input_name);
        jefw_engine_close(e);
        return JEFW_EXIT_ENGINE;
    }
    *out = e;
    return JEFW_EXIT_OK;
}

extern "C" int jefw_engine_infer(jefw_engine_t *e, const float *input, int batch, char *err) {
    nvinfer1::Dims dims;
    dims.nbDims = 3;
    dims.d[0] = batch;
    dims.d[1] = e->m->num_leads;
    dims.d[2] = e->m->window;
    if (!e->context->setInputShape(e->input.name.c_str(), dims)) {
        jefw_errf(err, "TensorRT: input shape (%d, %d, %d) is outside the engine's optimization profile", batch,
                  e->m->num_leads, e->m->window);
        return -1;
    }
    size_t bytes = sizeof(float) * static_cast<size_t>(batch) * e->m->num_leads * e->m->window;
    if (!reserve(e->input, bytes, err) ||
        !cuda_ok(cudaMemcpyAsync(e->input.device, input, bytes, cudaMemcpyHostToDevice, e->stream), "copy in", err))
        return -1;
    e->context->setTensorAddress(e->input.name.c_str(), e->input.device);
    for (Buffer &o : e->outputs) {
        nvinfer1::Dims shape = e->context->getTensorShape(o.name.c_str());
        size_t count = 1;
        for (int32_t k = 0; k < shape.nbDims; k++) count *= static_cast<size_t>(shape.d[k] > 0 ? shape.d[k] : 0);
        o.host.resize(count);
        if (!reserve(o, sizeof(float) * (count ? count : 1), err)) return -1;
        e->context->setTensorAddress(o.name.c_str(), o.device);
    }
    if (!e->context->enqueueV3(e->stream)) {
        jefw_errf(err, "TensorRT: enqueueV3 failed");
        return -1;
    }
    for (Buffer &o : e->outputs)
        if (!o.host.empty() && !cuda_ok(cudaMemcpyAsync(o.host.data(), o.device, sizeof(float) * o.host.size(),
                                                        cudaMemcpyDeviceToHost, e->stream), "copy out", err))
            return -1;
    return cuda_ok(cudaStreamSynchronize(e->stream), "cudaStreamSynchronize", err) ? 0 : -1;
}

extern "C" int jefw_engine_output(jefw_engine_t *e, const char *name, const float **data, size_t *count, char *err) {
    for (const Buffer &o : e->outputs)
        if (o.name == name) {
            *data = o.host.data();
            *count = o.host.size();
            return 0;
        }
    jefw_errf(err, "TensorRT engine has no output '%s'", name);
    return -1;
}

extern "C" void jefw_engine_info(const jefw_engine_t *e, FILE *out) {
    std::fputs("{\"backend\": \"tensorrt-cpp\", \"file\": ", out);
    jefw_json_string(out, e->file.c_str());
    std::fputs(", \"role\": ", out);
    jefw_json_string(out, e->role.c_str());
    std::fprintf(out, ", \"version\": %d, \"headers\": \"%d.%d.%d\"}", getInferLibVersion(), NV_TENSORRT_MAJOR,
                 NV_TENSORRT_MINOR, NV_TENSORRT_PATCH);
}

extern "C" void jefw_engine_close(jefw_engine_t *e) {
    if (!e) return;
    if (e->input.device) cudaFree(e->input.device);
    for (Buffer &o : e->outputs)
        if (o.device) cudaFree(o.device);
    if (e->stream) cudaStreamDestroy(e->stream);
    delete e->context;
    delete e->engine;
    delete e->runtime;
    delete e;
}
