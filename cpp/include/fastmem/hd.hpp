// Host/device portability macro: the math of every kernel is written once as
// inline functions marked FASTMEM_HD, compiled by the host compiler for the
// OpenMP drivers and by nvcc for the CUDA drivers.
#pragma once

#if defined(__CUDACC__)
#define FASTMEM_HD __host__ __device__
#else
#define FASTMEM_HD
#endif
