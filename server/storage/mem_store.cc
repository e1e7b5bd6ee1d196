#include "server/storage/mem_store.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cohortd {

absl::StatusOr<std::string> MemStore::Get(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  auto it = data_.find(key);
  if (it == data_.end())
    return absl::NotFoundError(absl::StrCat("no key ", key));
  return it->second;
}

absl::Status MemStore::MultiGet(
    absl::Span<const absl::string_view> keys,
    const std::function<void(size_t, absl::string_view)>& found) {
  std::vector<std::pair<size_t, std::string>> values;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = data_.find(keys[i]);
      if (it != data_.end()) values.emplace_back(i, it->second);
    }
  }
  // Called without the lock, as Scan's `fn`.
  for (const auto& [i, value] : values) found(i, value);
  return absl::OkStatus();
}

absl::Status MemStore::Write(const WriteBatch& batch, bool sync) {
  absl::MutexLock lock(&mu_);
  for (const WriteBatch::Op& op : batch.ops()) {
    if (op.is_delete) {
      data_.erase(std::string(op.key));
    } else {
      data_[std::string(op.key)] = std::string(op.value);
    }
  }
  if (sync) ++wal_syncs_;
  return absl::OkStatus();
}

absl::Status MemStore::Scan(
    absl::string_view prefix,
    const std::function<bool(absl::string_view, absl::string_view)>& fn) {
  std::vector<std::pair<std::string, std::string>> snapshot;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = data_.lower_bound(prefix);
         it != data_.end() && absl::StartsWith(it->first, prefix); ++it) {
      snapshot.emplace_back(it->first, it->second);
    }
  }
  for (const auto& [key, value] : snapshot) {
    if (!fn(key, value)) break;
  }
  return absl::OkStatus();
}

StoreStats MemStore::Stats() {
  absl::MutexLock lock(&mu_);
  StoreStats stats;
  for (const auto& [key, value] : data_) {
    stats.live_data_bytes += key.size() + value.size();
  }
  stats.wal_syncs = wal_syncs_;
  return stats;
}

}  // namespace cohortd
