// Hand-written declarations of the CUDA driver API, cuBLASLt, NVRTC and NVML entry points clipserve uses.
// Nothing here comes from the CUDA SDK: every function is a pointer filled by dlopen/dlsym at run time, so the
// same binary builds and runs on machines without CUDA. Only the ABI-stable subset we call is declared.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CUDA driver API ----
typedef int CUresult;                 // CUDA_SUCCESS = 0
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef unsigned long long CUdeviceptr;

enum {
    CCUDA_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    CCUDA_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    CCUDA_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
    CCUDA_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
    CCUDA_DEVICE_ATTRIBUTE_PCI_BUS_ID = 33,
    CCUDA_DEVICE_ATTRIBUTE_PCI_DEVICE_ID = 34,
    CCUDA_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID = 50,
    CCUDA_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
    CCUDA_STREAM_NON_BLOCKING = 1,
    CCUDA_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
    CCUDA_EVENT_DEFAULT = 0,
    CCUDA_EVENT_BLOCKING_SYNC = 1,
    CCUDA_EVENT_DISABLE_TIMING = 2,
    // cuTensorMapEncodeTiled's enums.
    CCUDA_TENSOR_MAP_DATA_TYPE_FLOAT16 = 6,
    CCUDA_TENSOR_MAP_DATA_TYPE_BFLOAT16 = 9,
    CCUDA_TENSOR_MAP_INTERLEAVE_NONE = 0,
    CCUDA_TENSOR_MAP_SWIZZLE_128B = 3,
    CCUDA_TENSOR_MAP_L2_PROMOTION_L2_256B = 3,
    CCUDA_TENSOR_MAP_FLOAT_OOB_FILL_NONE = 0,
};

// cuLaunchKernelEx's configuration (CUlaunchConfig / CUlaunchAttribute of cuda.h, same layout), for the two
// attributes clipserve sets: a thread-block cluster shape (CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION = 4) and
// programmatic dependent launch (CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6, value int 1).
typedef struct {
    int id;
    char pad[4];
    union {
        char bytes[64];
        int value;
        struct { unsigned int x, y, z; } clusterDim;
    } value;
} ccuda_launch_attribute;
enum {
    CCUDA_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION = 4,
    CCUDA_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6,
};
typedef struct {
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    CUstream hStream;
    ccuda_launch_attribute *attrs;
    unsigned int numAttrs;
} ccuda_launch_config;

typedef struct {
    CUresult (*cuInit)(unsigned int flags);
    CUresult (*cuDriverGetVersion)(int *version);
    CUresult (*cuGetErrorName)(CUresult error, const char **name);
    CUresult (*cuGetErrorString)(CUresult error, const char **text);
    CUresult (*cuDeviceGetCount)(int *count);
    CUresult (*cuDeviceGet)(CUdevice *device, int ordinal);
    CUresult (*cuDeviceGetName)(char *name, int length, CUdevice device);
    CUresult (*cuDeviceGetAttribute)(int *value, int attribute, CUdevice device);
    CUresult (*cuDeviceTotalMem)(size_t *bytes, CUdevice device);                 // cuDeviceTotalMem_v2
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *context, CUdevice device);
    CUresult (*cuDevicePrimaryCtxRelease)(CUdevice device);                        // cuDevicePrimaryCtxRelease_v2
    CUresult (*cuCtxSetCurrent)(CUcontext context);
    CUresult (*cuCtxSynchronize)(void);
    CUresult (*cuCtxGetStreamPriorityRange)(int *least, int *greatest);
    CUresult (*cuMemGetInfo)(size_t *free, size_t *total);                          // cuMemGetInfo_v2
    CUresult (*cuMemAlloc)(CUdeviceptr *pointer, size_t bytes);                    // cuMemAlloc_v2
    CUresult (*cuMemFree)(CUdeviceptr pointer);                                    // cuMemFree_v2
    CUresult (*cuMemAllocHost)(void **pointer, size_t bytes);                      // cuMemAllocHost_v2 (pinned)
    CUresult (*cuMemFreeHost)(void *pointer);
    CUresult (*cuMemcpyHtoD)(CUdeviceptr dst, const void *src, size_t bytes);      // cuMemcpyHtoD_v2
    CUresult (*cuMemcpyDtoH)(void *dst, CUdeviceptr src, size_t bytes);            // cuMemcpyDtoH_v2
    CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr dst, const void *src, size_t bytes, CUstream stream);  // _v2
    CUresult (*cuMemcpyDtoHAsync)(void *dst, CUdeviceptr src, size_t bytes, CUstream stream);        // _v2
    CUresult (*cuMemsetD8Async)(CUdeviceptr dst, unsigned char value, size_t count, CUstream stream);
    CUresult (*cuStreamCreateWithPriority)(CUstream *stream, unsigned int flags, int priority);
    CUresult (*cuStreamDestroy)(CUstream stream);                                  // cuStreamDestroy_v2
    CUresult (*cuStreamSynchronize)(CUstream stream);
    CUresult (*cuEventCreate)(CUevent *event, unsigned int flags);
    CUresult (*cuEventDestroy)(CUevent event);                                     // cuEventDestroy_v2
    CUresult (*cuEventRecord)(CUevent event, CUstream stream);
    CUresult (*cuEventSynchronize)(CUevent event);
    CUresult (*cuEventElapsedTime)(float *milliseconds, CUevent start, CUevent end);
    CUresult (*cuModuleLoadData)(CUmodule *module, const void *image);
    CUresult (*cuModuleUnload)(CUmodule module);
    CUresult (*cuModuleGetFunction)(CUfunction *function, CUmodule module, const char *name);
    CUresult (*cuFuncSetAttribute)(CUfunction function, int attribute, int value);
    CUresult (*cuLaunchKernel)(CUfunction function, unsigned int gridX, unsigned int gridY, unsigned int gridZ,
                               unsigned int blockX, unsigned int blockY, unsigned int blockZ,
                               unsigned int sharedBytes, CUstream stream, void **params, void **extra);
    CUresult (*cuStreamBeginCapture)(CUstream stream, int mode);                   // cuStreamBeginCapture_v2
    CUresult (*cuStreamEndCapture)(CUstream stream, CUgraph *graph);
    CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *exec, CUgraph graph, unsigned long long flags);
    CUresult (*cuGraphLaunch)(CUgraphExec exec, CUstream stream);
    CUresult (*cuGraphExecDestroy)(CUgraphExec exec);
    CUresult (*cuGraphDestroy)(CUgraph graph);
    CUresult (*cuStreamWaitEvent)(CUstream stream, CUevent event, unsigned int flags);
    CUresult (*cuLaunchKernelEx)(const ccuda_launch_config *config, CUfunction function, void **params, void **extra);
    // A TMA descriptor (CUtensorMap: 128 opaque bytes, 64-byte aligned) for a tiled view of a global tensor; the enum
    // arguments are cuda.h's CUtensorMapDataType, CUtensorMapInterleave, CUtensorMapSwizzle, CUtensorMapL2promotion
    // and CUtensorMapFloatOOBfill.
    CUresult (*cuTensorMapEncodeTiled)(void *tensorMap, int dataType, uint32_t rank, void *globalAddress,
                                       const uint64_t *globalDim, const uint64_t *globalStrides, const uint32_t *boxDim,
                                       const uint32_t *elementStrides, int interleave, int swizzle, int l2Promotion,
                                       int oobFill);
    // How many clusters of config's shape (grid and block sizes, shared memory, the cluster attribute) can be
    // resident on the device at once.
    CUresult (*cuOccupancyMaxActiveClusters)(int *clusters, CUfunction function, const ccuda_launch_config *config);
} ccuda_driver_api;

// ---- cuBLASLt ----
typedef int cublasStatus_t;           // CUBLAS_STATUS_SUCCESS = 0
typedef struct cublasLtContext *cublasLtHandle_t;
typedef struct { uint64_t data[8]; } ccuda_matrix_layout_opaque;
typedef ccuda_matrix_layout_opaque *cublasLtMatrixLayout_t;
typedef struct { uint64_t data[12]; } ccuda_matmul_desc_opaque;
typedef ccuda_matmul_desc_opaque *cublasLtMatmulDesc_t;
typedef struct { uint64_t data[10]; } ccuda_matmul_preference_opaque;
typedef ccuda_matmul_preference_opaque *cublasLtMatmulPreference_t;
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

enum {
    CCUDA_R_32F = 0,
    CCUDA_R_16F = 2,
    CCUDA_R_16BF = 14,
    CCUBLAS_COMPUTE_32F = 68,
    CCUBLAS_OP_N = 0,
    CCUBLAS_OP_T = 1,
    CCUBLASLT_MATMUL_DESC_TRANSA = 3,
    CCUBLASLT_MATMUL_DESC_TRANSB = 4,
    CCUBLASLT_MATMUL_DESC_EPILOGUE = 7,
    CCUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,
    CCUBLASLT_EPILOGUE_DEFAULT = 1,
    CCUBLASLT_EPILOGUE_BIAS = 4,
    CCUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
};

typedef struct {
    cublasStatus_t (*cublasLtCreate)(cublasLtHandle_t *handle);
    cublasStatus_t (*cublasLtDestroy)(cublasLtHandle_t handle);
    size_t (*cublasLtGetVersion)(void);
    const char *(*cublasLtGetStatusName)(cublasStatus_t status);
    const char *(*cublasLtGetStatusString)(cublasStatus_t status);
    cublasStatus_t (*cublasLtMatmulDescCreate)(cublasLtMatmulDesc_t *desc, int computeType, int scaleType);
    cublasStatus_t (*cublasLtMatmulDescDestroy)(cublasLtMatmulDesc_t desc);
    cublasStatus_t (*cublasLtMatmulDescSetAttribute)(cublasLtMatmulDesc_t desc, int attribute, const void *value,
                                                     size_t bytes);
    cublasStatus_t (*cublasLtMatrixLayoutCreate)(cublasLtMatrixLayout_t *layout, int type, uint64_t rows,
                                                 uint64_t cols, int64_t ld);
    cublasStatus_t (*cublasLtMatrixLayoutDestroy)(cublasLtMatrixLayout_t layout);
    cublasStatus_t (*cublasLtMatmulPreferenceCreate)(cublasLtMatmulPreference_t *preference);
    cublasStatus_t (*cublasLtMatmulPreferenceDestroy)(cublasLtMatmulPreference_t preference);
    cublasStatus_t (*cublasLtMatmulPreferenceSetAttribute)(cublasLtMatmulPreference_t preference, int attribute,
                                                           const void *value, size_t bytes);
    cublasStatus_t (*cublasLtMatmulAlgoGetHeuristic)(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                                     cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                     cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                                     cublasLtMatmulPreference_t preference, int requested,
                                                     cublasLtMatmulHeuristicResult_t *results, int *returned);
    cublasStatus_t (*cublasLtMatmul)(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                                     const void *a, cublasLtMatrixLayout_t aLayout, const void *b,
                                     cublasLtMatrixLayout_t bLayout, const void *beta, const void *c,
                                     cublasLtMatrixLayout_t cLayout, void *d, cublasLtMatrixLayout_t dLayout,
                                     const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspaceBytes,
                                     CUstream stream);
} ccuda_cublaslt_api;

// ---- NVRTC ----
typedef int nvrtcResult;              // NVRTC_SUCCESS = 0
typedef struct _nvrtcProgram *nvrtcProgram;

typedef struct {
    const char *(*nvrtcGetErrorString)(nvrtcResult result);
    nvrtcResult (*nvrtcVersion)(int *major, int *minor);
    nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram *program, const char *source, const char *name, int headerCount,
                                      const char *const *headers, const char *const *includeNames);
    nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram *program);
    nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram program, int optionCount, const char *const *options);
    nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram program, size_t *bytes);
    nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram program, char *cubin);
    nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram program, size_t *bytes);
    nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram program, char *log);
} ccuda_nvrtc_api;

// ---- NVML ----
typedef int nvmlReturn_t;             // NVML_SUCCESS = 0
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct { unsigned int gpu; unsigned int memory; } ccuda_nvml_utilization;
typedef struct { unsigned long long total; unsigned long long free; unsigned long long used; } ccuda_nvml_memory;

typedef struct {
    nvmlReturn_t (*nvmlInit)(void);                                                // nvmlInit_v2
    nvmlReturn_t (*nvmlShutdown)(void);
    const char *(*nvmlErrorString)(nvmlReturn_t result);
    nvmlReturn_t (*nvmlDeviceGetCount)(unsigned int *count);                       // nvmlDeviceGetCount_v2
    nvmlReturn_t (*nvmlDeviceGetHandleByIndex)(unsigned int index, nvmlDevice_t *device);  // _v2
    nvmlReturn_t (*nvmlDeviceGetName)(nvmlDevice_t device, char *name, unsigned int length);
    nvmlReturn_t (*nvmlDeviceGetUtilizationRates)(nvmlDevice_t device, ccuda_nvml_utilization *utilization);
    nvmlReturn_t (*nvmlDeviceGetMemoryInfo)(nvmlDevice_t device, ccuda_nvml_memory *memory);
    nvmlReturn_t (*nvmlDeviceGetPowerUsage)(nvmlDevice_t device, unsigned int *milliwatts);
    nvmlReturn_t (*nvmlDeviceGetHandleByPciBusId)(const char *pciBusId, nvmlDevice_t *device);  // _v2
} ccuda_nvml_api;

/// Which library `ccuda_load` opens.
typedef enum { CCUDA_LIB_DRIVER = 0, CCUDA_LIB_CUBLASLT = 1, CCUDA_LIB_NVRTC = 2, CCUDA_LIB_NVML = 3 } ccuda_library;

/// Opens `library` (standard names first, then each folder of the ':'-separated `searchPath`, which may be NULL)
/// and fills `table` (a ccuda_*_api of `tableBytes`). Returns 0 on success; otherwise writes a message naming the
/// missing library or symbol into `error` and returns -1. Safe to call again; callers serialise it.
int ccuda_load(ccuda_library library, const char *searchPath, void *table, size_t tableBytes, char *error,
               size_t errorBytes);

#ifdef __cplusplus
}
#endif
