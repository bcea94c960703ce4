// Debian's OpenBLAS CBLAS interface (libopenblas-dev).
#pragma once
#include <cblas.h>
// OpenBLAS extensions for controlling its thread pool.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
