// How cohortd sets up glibc's malloc, once, before any thread starts
// (issue 13: RSS bounded and explained).
//
// Which allocator governs: cohortd is linked with jemalloc by default
// (server/CMakeLists.txt, COHORTD_JEMALLOC; options in
// server/jemalloc_conf.cc). Then malloc/free are jemalloc's and these
// mallopt settings govern nothing of cohortd's heap; they matter only
// for builds with -DCOHORTD_JEMALLOC=OFF or with sanitizers.
//
// Measured with glibc (docs/storage.md, "Memory"): with glibc's defaults,
// RSS grew by 1.0-1.6 MiB per query over the first 40 queries of a
// restarted server at 400k sessions, and sat near 224 MiB once the
// background rebuild was done, though nothing leaked. Each gRPC or
// background thread gets a malloc arena of its own (up to 8 per core),
// and each arena keeps the peak of what its threads freed: the executor's
// per-query arrays (O(rows), MiBs), the rebuild's buffers. With the
// arenas capped and large blocks given back on free, RSS settled near
// 105-110 MiB and grew ~5 KiB per query after the first 20.
#ifndef COHORTD_SERVER_COMMON_ALLOCATOR_H_
#define COHORTD_SERVER_COMMON_ALLOCATOR_H_

#include <cstddef>

namespace cohortd {

// Blocks of at least this size are mmap'd and unmapped on free (a fixed
// threshold: glibc's default one rises to 32 MiB after the first large
// free, after which such blocks stay in the heap).
inline constexpr size_t kMallocMmapThreshold = size_t{1} << 20;

// Caps glibc's arenas at max(2, number of cores) and fixes the mmap
// threshold at kMallocMmapThreshold. An operator's MALLOC_ARENA_MAX or
// MALLOC_MMAP_THRESHOLD_ environment variable wins over either setting.
// Call first thing in main(), before any thread exists. A no-op on other
// C libraries.
void TuneAllocator();

}  // namespace cohortd

#endif  // COHORTD_SERVER_COMMON_ALLOCATOR_H_
