// A fault-injecting file system for tests, in the spirit of leveldb's
// injectable Env (STYLE.md): the RocksDB store runs on it unchanged, and a
// test arms a fault (today: a full disk) and disarms it later, to check
// what callers see and that the store recovers without a restart.
// Test-only: production opens the store with RocksDB's default file system.
#ifndef COHORTD_SERVER_STORAGE_FAULT_FILE_SYSTEM_H_
#define COHORTD_SERVER_STORAGE_FAULT_FILE_SYSTEM_H_

#include <atomic>
#include <cstdint>
#include <memory>

namespace rocksdb {
class FileSystem;
}  // namespace rocksdb

namespace cohortd {

// The switchboard a test holds; the file system reads it on every call.
// Thread-safe.
class FaultInjector {
 public:
  // While armed, every write, sync, file creation and rename fails with
  // IOStatus::NoSpace (ENOSPC), and free space reads as 0 bytes.
  void SetDiskFull(bool full) { disk_full_.store(full); }
  bool disk_full() const { return disk_full_.load(); }
  // Writes refused because the disk was "full".
  uint64_t refused_writes() const { return refused_writes_.load(); }
  // True (and counted as refused) when a write must fail now.
  bool RefuseWrite() {
    if (!disk_full()) return false;
    refused_writes_.fetch_add(1);
    return true;
  }

 private:
  std::atomic<bool> disk_full_{false};
  std::atomic<uint64_t> refused_writes_{0};
};

// RocksDB's default (POSIX) file system with `injector`'s faults applied.
// Pass it as RocksDbStoreOptions::file_system.
std::shared_ptr<rocksdb::FileSystem> NewFaultInjectingFileSystem(
    std::shared_ptr<FaultInjector> injector);

}  // namespace cohortd

#endif  // COHORTD_SERVER_STORAGE_FAULT_FILE_SYSTEM_H_
