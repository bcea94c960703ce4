// Hand-written CUDA driver, cuBLASLt, NVRTC and NVML declarations, filled by dlopen at run time.
#pragma once
