#include "server/storage/fault_file_system.h"

#include <string>
#include <utility>

#include "rocksdb/file_system.h"

namespace cohortd {
namespace {

rocksdb::IOStatus DiskFull() {
  return rocksdb::IOStatus::NoSpace("injected: no space left on device");
}

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file,
                    std::shared_ptr<FaultInjector> injector)
      : FSWritableFileOwnerWrapper(std::move(file)),
        injector_(std::move(injector)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    return target()->Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    return target()->Append(data, options, info, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    return target()->PositionedAppend(data, offset, options, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    return target()->PositionedAppend(data, offset, options, info, dbg);
  }
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    return target()->Flush(options, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                         rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    return target()->Sync(options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    return target()->Fsync(options, dbg);
  }
  rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t nbytes,
                              const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    return target()->RangeSync(offset, nbytes, options, dbg);
  }

 private:
  bool Refuse() { return injector_->RefuseWrite(); }
  std::shared_ptr<FaultInjector> injector_;
};

class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFileSystem(std::shared_ptr<FaultInjector> injector)
      : FileSystemWrapper(rocksdb::FileSystem::Default()),
        injector_(std::move(injector)) {}

  const char* Name() const override { return "CohortdFaultFileSystem"; }

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, &file, dbg);
    return Wrap(std::move(s), std::move(file), result);
  }
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s =
        target()->ReopenWritableFile(name, options, &file, dbg);
    return Wrap(std::move(s), std::move(file), result);
  }
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& name, const std::string& old_name,
      const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s =
        target()->ReuseWritableFile(name, old_name, options, &file, dbg);
    return Wrap(std::move(s), std::move(file), result);
  }
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    if (Refuse()) return DiskFull();
    return target()->RenameFile(from, to, options, dbg);
  }
  rocksdb::IOStatus GetFreeSpace(const std::string& path,
                                 const rocksdb::IOOptions& options,
                                 uint64_t* free_space,
                                 rocksdb::IODebugContext* dbg) override {
    if (injector_->disk_full()) {
      *free_space = 0;
      return rocksdb::IOStatus::OK();
    }
    return target()->GetFreeSpace(path, options, free_space, dbg);
  }

 private:
  bool Refuse() { return injector_->RefuseWrite(); }
  // The target's answer to a file creation, with the new file wrapped so
  // that its writes see the faults too.
  rocksdb::IOStatus Wrap(rocksdb::IOStatus s,
                         std::unique_ptr<rocksdb::FSWritableFile> file,
                         std::unique_ptr<rocksdb::FSWritableFile>* result) {
    if (s.ok()) {
      result->reset(new FaultWritableFile(std::move(file), injector_));
    }
    return s;
  }
  std::shared_ptr<FaultInjector> injector_;
};

}  // namespace

std::shared_ptr<rocksdb::FileSystem> NewFaultInjectingFileSystem(
    std::shared_ptr<FaultInjector> injector) {
  return std::make_shared<FaultFileSystem>(std::move(injector));
}

}  // namespace cohortd
