// Process-wide settings that make LibTorch fast on small CPU machines.
#pragma once

namespace sdtune {

// LibTorch's OpenMP threads and OpenBLAS's own threads take turns on the same cores; with GNU
// OpenMP's default spin-waiting, idle OpenMP threads keep burning the cores OpenBLAS needs
// (measured: a UNet step 5.0 s -> 3.4 s on 2 cores). The wait policy is read once when libgomp
// loads, so this sets OMP_WAIT_POLICY=PASSIVE and re-executes the program, unless the user chose a
// policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT set). Call first thing in main().
void use_passive_openmp_waiting(char** argv);

// Sets OpenBLAS's thread count when OpenBLAS is the BLAS in use (LibTorch's set_num_threads only
// sizes the OpenMP pool). Returns false when there is no OpenBLAS.
bool set_blas_threads(int threads);

// Hands memory the allocator keeps cached back to the system (tcmalloc's ReleaseFreeMemory when
// tcmalloc is the allocator, else glibc's malloc_trim). Called where a large component was just
// freed, so that the freed gigabytes do not add to the peak of the next phase.
void return_free_memory_to_system();

}  // namespace sdtune
