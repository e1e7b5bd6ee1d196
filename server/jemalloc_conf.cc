// jemalloc's options for cohortd, compiled in (linked only when cohortd is
// linked with jemalloc, the default: server/CMakeLists.txt). jemalloc
// reads this symbol at start; $MALLOC_CONF, read after it, overrides any
// option. With jemalloc linked, glibc's mallopt settings
// (common/allocator.h) govern nothing of cohortd's heap.
//
// background_thread:true, dirty_decay_ms:1000, muzzy_decay_ms:0: freed
// pages go back to the system within ~1 s (purged by jemalloc's own
// thread, not only when an allocating thread passes by), so RSS follows
// the live data instead of the last peak: the ingest path's transient
// buffers and the executor's per-query arrays (O(rows), MiBs).
//
// No thp:always. It asked for transparent huge pages (MADV_HUGEPAGE) for
// all of jemalloc's memory, which cut the server's page faults during
// ingest from ~110 to ~13 per 1,000 observations, but every partly used
// 2 MiB page is resident whole. Measured at 400k sessions (docs/storage.md
// "Memory"): thp:always settled at 168-170 MiB vs 107-109 MiB without it,
// and 274-314 MiB right after a 1M-observation push vs 192-212 MiB (120
// MiB 3 s later); the server's CPU per ingested observation was within
// this machine's run-to-run noise (7.5-9.6 us vs 7.8-8.1 us).
extern "C" {
// NOLINTNEXTLINE: the name is jemalloc's.
const char* malloc_conf =
    "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
}
