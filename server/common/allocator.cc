#include "server/common/allocator.h"

#include <cstdlib>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace cohortd {

void TuneAllocator() {
#if defined(__GLIBC__)
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) {
    const unsigned cores = std::thread::hardware_concurrency();
    mallopt(M_ARENA_MAX, static_cast<int>(cores < 2 ? 2 : cores));
  }
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) {
    mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMallocMmapThreshold));
  }
#endif
}

}  // namespace cohortd
