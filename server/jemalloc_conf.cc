// jemalloc's options for cohortd, compiled in (linked only when cohortd is
// linked with jemalloc: server/CMakeLists.txt). jemalloc reads this symbol
// at start; $MALLOC_CONF, read after it, overrides any option.
//
// thp:always: jemalloc asks for transparent huge pages (MADV_HUGEPAGE) for
// its memory, so the RocksDB memtable arena, written once per ingested
// byte, faults in 2 MiB at a time instead of 4 KiB: on the shared build
// machine the server's page faults fell from ~100 to ~9 per 1,000
// ingested observations and its CPU per observation by ~12%
// (bench/ingest/throughput.sh; docs/storage.md "Ingest throughput").
// Where the kernel's THP mode is "never" this does nothing.
extern "C" {
// NOLINTNEXTLINE: the name is jemalloc's.
const char* malloc_conf = "thp:always";
}
