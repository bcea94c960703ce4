// Fills the CCUDA function tables with dlopen/dlsym. Declarations only live in include/CCUDA.h; this file holds
// the library names and the exact (versioned) symbol behind every table slot, in table order.
#include "CCUDA.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static const char *const driverNames[] = {"libcuda.so.1", "libcuda.so", NULL};
static const char *const cublasLtNames[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so", NULL};
static const char *const nvrtcNames[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", NULL};
static const char *const nvmlNames[] = {"libnvidia-ml.so.1", "libnvidia-ml.so", NULL};

static const char *const driverSymbols[] = {
    "cuInit", "cuDriverGetVersion", "cuGetErrorName", "cuGetErrorString", "cuDeviceGetCount", "cuDeviceGet",
    "cuDeviceGetName", "cuDeviceGetAttribute", "cuDeviceTotalMem_v2", "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2", "cuCtxSetCurrent", "cuCtxSynchronize", "cuCtxGetStreamPriorityRange",
    "cuMemGetInfo_v2", "cuMemAlloc_v2", "cuMemFree_v2", "cuMemAllocHost_v2", "cuMemFreeHost", "cuMemcpyHtoD_v2",
    "cuMemcpyDtoH_v2", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2", "cuMemsetD8Async",
    "cuStreamCreateWithPriority", "cuStreamDestroy_v2", "cuStreamSynchronize", "cuEventCreate", "cuEventDestroy_v2",
    "cuEventRecord", "cuEventSynchronize", "cuEventElapsedTime", "cuModuleLoadData", "cuModuleUnload",
    "cuModuleGetFunction", "cuFuncSetAttribute", "cuLaunchKernel", "cuStreamBeginCapture_v2", "cuStreamEndCapture",
    "cuGraphInstantiateWithFlags", "cuGraphLaunch", "cuGraphExecDestroy", "cuGraphDestroy", "cuStreamWaitEvent",
    "cuLaunchKernelEx", "cuTensorMapEncodeTiled", "cuOccupancyMaxActiveClusters", NULL};

static const char *const cublasLtSymbols[] = {
    "cublasLtCreate", "cublasLtDestroy", "cublasLtGetVersion", "cublasLtGetStatusName", "cublasLtGetStatusString",
    "cublasLtMatmulDescCreate", "cublasLtMatmulDescDestroy", "cublasLtMatmulDescSetAttribute",
    "cublasLtMatrixLayoutCreate", "cublasLtMatrixLayoutDestroy", "cublasLtMatmulPreferenceCreate",
    "cublasLtMatmulPreferenceDestroy", "cublasLtMatmulPreferenceSetAttribute", "cublasLtMatmulAlgoGetHeuristic",
    "cublasLtMatmul", NULL};

static const char *const nvrtcSymbols[] = {
    "nvrtcGetErrorString", "nvrtcVersion", "nvrtcCreateProgram", "nvrtcDestroyProgram", "nvrtcCompileProgram",
    "nvrtcGetCUBINSize", "nvrtcGetCUBIN", "nvrtcGetProgramLogSize", "nvrtcGetProgramLog", NULL};

static const char *const nvmlSymbols[] = {
    "nvmlInit_v2", "nvmlShutdown", "nvmlErrorString", "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2",
    "nvmlDeviceGetName", "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetHandleByPciBusId_v2", NULL};

static size_t count(const char *const *list) {
    size_t n = 0;
    while (list[n] != NULL) n++;
    return n;
}

static void *openFirst(const char *const *names, const char *searchPath, char *tried, size_t triedBytes) {
    tried[0] = '\0';
    for (size_t i = 0; names[i] != NULL; i++) {
        void *handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (handle != NULL) return handle;
        size_t used = strlen(tried);
        snprintf(tried + used, triedBytes - used, "%s%s", used ? ", " : "", names[i]);
    }
    if (searchPath == NULL) return NULL;
    const char *cursor = searchPath;
    while (*cursor != '\0') {
        const char *end = strchr(cursor, ':');
        size_t length = end ? (size_t)(end - cursor) : strlen(cursor);
        if (length > 0 && length < 3000) {
            for (size_t i = 0; names[i] != NULL; i++) {
                char path[4096];
                snprintf(path, sizeof path, "%.*s/%s", (int)length, cursor, names[i]);
                void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
                if (handle != NULL) return handle;
                size_t used = strlen(tried);
                snprintf(tried + used, triedBytes - used, ", %s", path);
            }
        }
        if (end == NULL) break;
        cursor = end + 1;
    }
    return NULL;
}

int ccuda_load(ccuda_library library, const char *searchPath, void *table, size_t tableBytes, char *error,
               size_t errorBytes) {
    const char *const *names;
    const char *const *symbols;
    switch (library) {
    case CCUDA_LIB_DRIVER: names = driverNames; symbols = driverSymbols; break;
    case CCUDA_LIB_CUBLASLT: names = cublasLtNames; symbols = cublasLtSymbols; break;
    case CCUDA_LIB_NVRTC: names = nvrtcNames; symbols = nvrtcSymbols; break;
    case CCUDA_LIB_NVML: names = nvmlNames; symbols = nvmlSymbols; break;
    default: snprintf(error, errorBytes, "unknown library %d", (int)library); return -1;
    }
    size_t slots = count(symbols);
    if (slots * sizeof(void *) != tableBytes) {
        snprintf(error, errorBytes, "internal: table of %zu bytes for %zu symbols of %s", tableBytes, slots, names[0]);
        return -1;
    }
    char tried[2048];
    void *handle = openFirst(names, searchPath, tried, sizeof tried);
    if (handle == NULL) {
        const char *reason = dlerror();
        snprintf(error, errorBytes, "could not load %s (tried %s)%s%s", names[0], tried, reason ? ": " : "",
                 reason ? reason : "");
        return -1;
    }
    void **slot = (void **)table;
    for (size_t i = 0; i < slots; i++) {
        void *function = dlsym(handle, symbols[i]);
        if (function == NULL) {
            snprintf(error, errorBytes, "%s lacks the symbol %s (library too old?)", names[0], symbols[i]);
            return -1;
        }
        slot[i] = function;
    }
    return 0;
}
