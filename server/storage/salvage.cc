#include "server/storage/salvage.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <memory>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/sst_file_reader.h"
#include "rocksdb/table_properties.h"
#include "rocksdb/write_batch.h"
#include "server/common/file_sync.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/storage/keys.h"
#include "server/storage/rocksdb_status.h"
#include "server/storage/rocksdb_store.h"
#include "server/storage/wal_reader.h"

namespace cohortd {
namespace {

namespace fs = std::filesystem;

// --- Shared helpers -------------------------------------------------------

// Ledger, release cache and audit log: never dropped by a salvage.
bool IsLedgerKey(absl::string_view key) {
  return absl::StartsWith(key, keys::kBudgetLedgerPrefix) ||
         absl::StartsWith(key, keys::kReleasePrefix) ||
         absl::StartsWith(key, keys::kAuditPrefix);
}

std::string Printable(absl::string_view key) {
  std::string out;
  for (const char c : key.substr(0, 80)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", u);
    }
  }
  if (key.size() > 80) out += "...";
  return out;
}

absl::Status Refuse(std::FILE* out, const std::vector<std::string>& keys,
                    absl::string_view where) {
  absl::FPrintF(out,
                "  REFUSED: the damage touches %d ledger/release/audit "
                "key(s) %s; dropping them would refund budget or break the "
                "audit chain:\n",
                keys.size(), where);
  for (size_t i = 0; i < keys.size() && i < 20; ++i) {
    absl::FPrintF(out, "    %s\n", Printable(keys[i]));
  }
  return absl::FailedPreconditionError(absl::StrFormat(
      "salvage refused: the damage touches %d ledger, release or audit "
      "key(s) (first: %s); restore the last backup instead "
      "(docs/storage.md \"After DATA_LOSS\")",
      keys.size(), keys.empty() ? "" : Printable(keys.front())));
}

// A sibling copy of `dir` for recovery: SSTs hard-linked (immutable; the
// original keeps its own link), everything else copied; no LOCK, no
// synced-sequence record (a salvage rolls the store back on purpose).
absl::Status CloneStore(const std::string& dir, const std::string& clone) {
  std::error_code ec;
  fs::remove_all(clone, ec);
  fs::create_directories(clone, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrFormat("cannot create %s: %s", clone, ec.message()));
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "LOCK" || name == kSyncedSequenceFile) continue;
    if (!entry.is_regular_file()) continue;
    const fs::path to = fs::path(clone) / name;
    if (absl::EndsWith(name, ".sst")) {
      fs::create_hard_link(entry.path(), to, ec);
      if (!ec) continue;
      ec.clear();
    }
    fs::copy_file(entry.path(), to, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrFormat("cannot copy %s to %s: %s",
                                                    entry.path().string(),
                                                    clone, ec.message()));
    }
  }
  return absl::OkStatus();
}

// Makes the renames inside `dir` durable; a failure is logged (the
// salvage itself succeeded, and the operator is told to check).
void SyncOrWarn(const std::string& dir) {
  const absl::Status synced = SyncDirectory(dir);
  if (!synced.ok()) LogWarning("salvage", "%s", synced.ToString());
}

// Moves the original `dir` into `keep_dir`/<its name> and `salvaged` into
// its place. The two trade places in one atomic step (renameat2
// RENAME_EXCHANGE), so `dir` is never absent: a start after an
// interruption finds either store, never none (which would create an
// empty one). Only where the file system cannot exchange does it fall
// back to two renames, and says so.
absl::Status SwapIn(const std::string& dir, const std::string& salvaged,
                    const std::string& keep_dir, std::string* kept) {
  std::error_code ec;
  fs::create_directories(keep_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrFormat("cannot create %s: %s", keep_dir, ec.message()));
  }
  if (!fs::is_empty(keep_dir, ec)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "keep directory %s is not empty; name an absent or empty one",
        keep_dir));
  }
  *kept = (fs::path(keep_dir) / fs::path(dir).filename()).string();
  if (::renameat2(AT_FDCWD, salvaged.c_str(), AT_FDCWD, dir.c_str(),
                  RENAME_EXCHANGE) == 0) {
    // `salvaged` now names the original.
    SyncOrWarn(fs::path(dir).parent_path().string());
    fs::rename(salvaged, *kept, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrFormat(
          "the salvaged store is in place at %s, but the original, now at "
          "%s, cannot be moved to %s (the keep directory must be on the "
          "same file system): %s; it is kept where it is",
          dir, salvaged, *kept, ec.message()));
    }
    SyncOrWarn(keep_dir);
    return absl::OkStatus();
  }
  LogWarning("salvage",
             "%s cannot exchange directories atomically (%s); moving the "
             "original away and the salvaged store in with two renames",
             fs::path(dir).parent_path().string(), std::strerror(errno));
  fs::rename(dir, *kept, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrFormat(
        "cannot move %s to %s (the keep directory must be on the same file "
        "system): %s",
        dir, *kept, ec.message()));
  }
  fs::rename(salvaged, dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrFormat(
        "moved the original to %s but cannot move the salvaged store %s to "
        "%s: %s; move it there by hand",
        *kept, salvaged, dir, ec.message()));
  }
  SyncOrWarn(fs::path(dir).parent_path().string());
  SyncOrWarn(keep_dir);
  return absl::OkStatus();
}

// The store's reads (rocksdb_status.h), not kept in the cache.
rocksdb::ReadOptions VerifyingRead() {
  rocksdb::ReadOptions read = MakeReadOptions();
  read.fill_cache = false;
  return read;
}

// The (dataset, session) a session key belongs to, if it is one.
bool SessionOf(absl::string_view key, std::pair<std::string, std::string>* id) {
  std::string source;
  return keys::ParseSessionRecordKey(key, &id->first, &id->second, &source);
}

// --- WAL damage -----------------------------------------------------------

absl::StatusOr<SalvageOutcome> SalvageWal(const std::string& dir,
                                          const std::string& keep_dir,
                                          std::FILE* out) {
  std::vector<std::string> wals;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".log") {
      wals.push_back(entry.path().string());
    }
  }
  std::sort(wals.begin(), wals.end());
  // The first damaged record and every batch from it on are dropped by
  // point-in-time recovery (later WALs included).
  std::vector<WalBatch> dropped;
  std::string damaged_wal;
  uint64_t damage_offset = 0;
  uint64_t last_good_sequence = 0;
  for (const std::string& wal : wals) {
    ASSIGN_OR_RETURN(WalContents contents, ReadWalFile(wal));
    if (damaged_wal.empty()) {
      if (contents.last_good_sequence > 0) {
        last_good_sequence = contents.last_good_sequence;
      }
      if (contents.damage != WalDamage::kNone) {
        damaged_wal = wal;
        damage_offset = contents.damage_offset;
      }
    } else {
      std::move(contents.batches.begin(), contents.batches.end(),
                std::back_inserter(dropped));
    }
    std::move(contents.after_damage.begin(), contents.after_damage.end(),
              std::back_inserter(dropped));
  }
  if (damaged_wal.empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the WALs of %s read intact record by record; the damage is "
        "elsewhere (run cohortd --verify)",
        dir));
  }
  const std::string name = fs::path(damaged_wal).filename().string();
  absl::FPrintF(out,
                "  WAL %s: damaged record at offset %d (of %d bytes); last "
                "good sequence number before it: %d\n",
                name, damage_offset, fs::file_size(damaged_wal),
                last_good_sequence);
  size_t unparsed = 0;
  std::vector<std::string> ledger;
  for (const WalBatch& batch : dropped) {
    if (!batch.parsed) ++unparsed;
    for (const WalEntry& entry : batch.entries) {
      if (IsLedgerKey(entry.key)) ledger.push_back(entry.key);
    }
  }
  absl::FPrintF(out,
                "  dropped from the damage on: %d write batch(es) (%d of "
                "them damaged or unparsable)\n",
                dropped.size(), unparsed);
  if (!ledger.empty()) return Refuse(out, ledger, "in the dropped batches");
  if (unparsed > 0 && !dropped.front().parsed) {
    // The damaged batch itself: its keys could not all be read, so it may
    // have held a budget record.
    return absl::FailedPreconditionError(absl::StrFormat(
        "salvage refused: the damaged record at offset %d of %s cannot be "
        "parsed, so whether it held budget or audit records is unknown; "
        "restore the last backup instead",
        damage_offset, name));
  }

  // Recover a clone with point-in-time recovery.
  const std::string clone = dir + ".salvage-tmp";
  RETURN_IF_ERROR(CloneStore(dir, clone));
  uint64_t recovered_sequence = 0;
  std::map<std::string, SalvageLoss> datasets;
  {
    rocksdb::Options options;
    options.create_if_missing = false;
    options.paranoid_checks = true;
    options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
    rocksdb::DB* raw = nullptr;
    RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(options, clone, &raw),
                              "point-in-time recovery of a copy"));
    std::unique_ptr<rocksdb::DB> db(raw);
    recovered_sequence = db->GetLatestSequenceNumber();
    // What the dropped batches touched, against what recovery kept.
    std::set<std::pair<std::string, std::string>> touched;
    for (const WalBatch& batch : dropped) {
      for (const WalEntry& entry : batch.entries) {
        std::pair<std::string, std::string> id;
        if (SessionOf(entry.key, &id)) touched.insert(id);
      }
    }
    for (const auto& [dataset, session] : touched) {
      std::string value;
      const rocksdb::Status s = db->Get(
          VerifyingRead(), keys::SessionHeaderKey(dataset, session), &value);
      if (s.IsNotFound()) {
        ++datasets[dataset].sessions_lost;
      } else if (s.ok()) {
        ++datasets[dataset].sessions_rolled_back;
      } else {
        return FromRocks(s, "reading the recovered copy");
      }
    }
    RETURN_IF_ERROR(FromRocks(db->Close(), "closing the recovered copy"));
  }
  absl::FPrintF(
      out, "  point-in-time recovery kept sequence numbers up to %d%s\n",
      recovered_sequence,
      recovered_sequence == last_good_sequence
          ? ""
          : absl::StrFormat(" (the WAL read says %d)", last_good_sequence));
  SalvageOutcome outcome;
  outcome.datasets = std::move(datasets);
  RETURN_IF_ERROR(SwapIn(dir, clone, keep_dir, &outcome.kept_dir));
  return outcome;
}

// --- SST damage -----------------------------------------------------------

// The live SST named in `message`, if any.
const rocksdb::LiveFileMetaData* DamagedFile(
    const std::vector<rocksdb::LiveFileMetaData>& files,
    absl::string_view message) {
  for (const rocksdb::LiveFileMetaData& file : files) {
    if (absl::StrContains(message, fs::path(file.name).filename().string())) {
      return &file;
    }
  }
  return nullptr;
}

// Counts the entries of the SST at `path` readable from its start and
// from its end (each direction stops at the first damaged block).
int64_t UnreadableEntries(const std::string& path) {
  rocksdb::Options options;
  rocksdb::SstFileReader reader(options);
  if (!reader.Open(path).ok()) return -1;
  const auto properties = reader.GetTableProperties();
  if (properties == nullptr) return -1;
  int64_t readable = 0;
  std::unique_ptr<rocksdb::Iterator> it(reader.NewIterator(VerifyingRead()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++readable;
  if (it->status().ok()) return 0;
  it.reset(reader.NewIterator(VerifyingRead()));
  for (it->SeekToLast(); it->Valid(); it->Prev()) ++readable;
  return std::max<int64_t>(
      0, static_cast<int64_t>(properties->num_entries) - readable);
}

absl::StatusOr<SalvageOutcome> SalvageSst(const std::string& dir,
                                          const std::string& keep_dir,
                                          std::FILE* out) {
  rocksdb::Options options;
  options.create_if_missing = false;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status opened =
      rocksdb::DB::OpenForReadOnly(options, dir, &raw);
  if (!opened.ok()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "salvage cannot open %s even read-only (%s): an SST whose index "
        "or footer is unreadable is not salvaged by this version; restore "
        "the last backup",
        dir, opened.ToString()));
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  std::vector<rocksdb::LiveFileMetaData> files;
  db->GetLiveFilesMetaData(&files);

  const std::string fresh = dir + ".salvage-tmp";
  std::error_code ec;
  fs::remove_all(fresh, ec);
  rocksdb::Options fresh_options;
  fresh_options.create_if_missing = true;
  fresh_options.error_if_exists = true;
  rocksdb::DB* fresh_raw = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(fresh_options, fresh, &fresh_raw),
                            absl::StrCat("creating ", fresh)));
  std::unique_ptr<rocksdb::DB> target(fresh_raw);

  // Unreadable windows (after, before): every key strictly between is
  // lost; `after` empty means from the start.
  struct Window {
    std::string after;
    std::string before;  // empty: to the file's end
    std::string file;
    // Where the damaged file's unreadable keys may start (inclusive).
    std::string damaged_from;
    bool Contains(absl::string_view key) const {
      return key > after && (before.empty() || key < before);
    }
  };
  std::vector<Window> windows;
  std::vector<std::string> ledger;
  rocksdb::WriteBatch batch;
  uint64_t copied = 0;
  auto flush_batch = [&]() -> absl::Status {
    if (batch.Count() == 0) return absl::OkStatus();
    rocksdb::WriteOptions write;
    RETURN_IF_ERROR(FromRocks(target->Write(write, &batch), "writing"));
    batch.Clear();
    return absl::OkStatus();
  };

  uint64_t audit_keys = 0;  // readable audit entries copied
  std::string resume;       // where the next pass starts; empty: the beginning
  bool has_resume = false;
  std::string last_good;
  bool has_last_good = false;
  for (int pass = 0; pass < 64; ++pass) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(VerifyingRead()));
    if (has_resume) {
      it->Seek(resume);
    } else {
      it->SeekToFirst();
    }
    for (; it->Valid(); it->Next()) {
      batch.Put(it->key(), it->value());
      if (absl::StartsWith(
              absl::string_view(it->key().data(), it->key().size()),
              keys::kAuditPrefix)) {
        ++audit_keys;
      }
      last_good = it->key().ToString();
      has_last_good = true;
      ++copied;
      if (batch.Count() >= 1000) RETURN_IF_ERROR(flush_batch());
    }
    if (it->status().ok()) break;
    if (!it->status().IsCorruption()) {
      return FromRocks(it->status(), absl::StrCat("reading ", dir));
    }
    const std::string message = it->status().ToString();
    const rocksdb::LiveFileMetaData* file = DamagedFile(files, message);
    if (file == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("salvage cannot tell which file is damaged: ", message));
    }
    // Read backwards from the damaged file's last key to the first
    // damaged block met from that side.
    Window window;
    window.after = has_last_good ? last_good : "";
    window.file = fs::path(file->name).filename().string();
    window.damaged_from = std::max(window.after, file->smallestkey);
    std::unique_ptr<rocksdb::Iterator> back(db->NewIterator(VerifyingRead()));
    std::string first_after;
    bool found = false;
    for (back->SeekForPrev(file->largestkey); back->Valid(); back->Prev()) {
      if (has_last_good && back->key().ToString() <= last_good) break;
      first_after = back->key().ToString();
      found = true;
    }
    if (back->status().ok() || !found) {
      // Nothing readable between the damage and the file's end: skip the
      // rest of the file's range.
      window.before = "";
      resume = file->largestkey + std::string(1, '\0');
    } else {
      window.before = first_after;
      resume = first_after;
    }
    has_resume = true;
    windows.push_back(window);
  }
  RETURN_IF_ERROR(flush_batch());

  // What each window held, as far as it can be known: the keys other
  // files and the WALs (the memtable) hold there, exactly; the damaged
  // file's unreadable block(s), only by key range. A session with any key
  // in a window, or cut at its edges, is dropped whole (its header counts
  // its contributions).
  absl::FPrintF(out, "  copied %d readable key(s) into a fresh store\n",
                copied);
  std::set<std::string> damaged_files;
  for (const Window& w : windows) {
    absl::FPrintF(out, "  %s: unreadable between \"%s\" and \"%s\"\n", w.file,
                  w.after.empty() ? "(start)" : Printable(w.after),
                  w.before.empty() ? "(end of file)" : Printable(w.before));
    damaged_files.insert(w.file);
  }
  std::set<std::pair<std::string, std::string>> lost;
  for (const Window& w : windows) {
    std::pair<std::string, std::string> id;
    if (SessionOf(w.after, &id)) lost.insert(id);
    if (!w.before.empty() && SessionOf(w.before, &id)) lost.insert(id);
  }
  auto classify = [&](const std::string& key, absl::string_view where) {
    for (const Window& w : windows) {
      if (!w.Contains(key)) continue;
      if (IsLedgerKey(key)) {
        ledger.push_back(absl::StrCat(key, " (", where, ")"));
      }
      std::pair<std::string, std::string> id;
      if (SessionOf(key, &id)) lost.insert(id);
    }
  };
  for (const rocksdb::LiveFileMetaData& file : files) {
    const std::string name = fs::path(file.name).filename().string();
    if (damaged_files.count(name) > 0) continue;
    rocksdb::SstFileReader reader(options);
    if (!reader.Open(dir + "/" + name).ok()) continue;
    std::unique_ptr<rocksdb::Iterator> it(reader.NewIterator(VerifyingRead()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      classify(it->key().ToString(), name);
    }
  }
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".log") continue;
    ASSIGN_OR_RETURN(WalContents contents, ReadWalFile(entry.path().string()));
    for (const std::vector<WalBatch>* part :
         {&contents.batches, &contents.after_damage}) {
      for (const WalBatch& wal_batch : *part) {
        for (const WalEntry& wal_entry : wal_batch.entries) {
          classify(wal_entry.key, entry.path().filename().string());
        }
      }
    }
  }
  // The damaged blocks themselves, by range: every release and budget
  // charge is audited in the same write, so with no audit entry in the
  // store (and none possibly lost) there is no budget or release key.
  for (const Window& w : windows) {
    for (absl::string_view prefix :
         {keys::kAuditPrefix, keys::kBudgetLedgerPrefix,
          keys::kReleasePrefix}) {
      const std::string p(prefix);
      std::string end = p;
      end.back() = static_cast<char>(end.back() + 1);
      const bool spans =
          w.damaged_from < end && (w.before.empty() || w.before > p);
      if (!spans) continue;
      if (prefix != keys::kAuditPrefix && audit_keys == 0 && ledger.empty()) {
        continue;
      }
      ledger.push_back(absl::StrFormat(
          "%s* possibly, in the unreadable block(s) of %s from \"%s\" to "
          "\"%s\"",
          p, w.file, Printable(w.damaged_from), Printable(w.before)));
    }
  }
  if (!ledger.empty()) {
    target.reset();
    fs::remove_all(fresh, ec);
    return Refuse(out, ledger, "in an unreadable range");
  }

  SalvageOutcome outcome;
  for (const auto& id : lost) {
    // Delete every key of the session from the fresh store.
    const std::string prefix = keys::SessionRecordPrefix(id.first, id.second);
    std::unique_ptr<rocksdb::Iterator> it(
        target->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      batch.Delete(it->key());
    }
    ++outcome.datasets[id.first].sessions_lost;
  }
  RETURN_IF_ERROR(flush_batch());
  // Store metadata in a window: the format version is this build's (the
  // copied session keys are read with it, and --verify checks them all);
  // the ingest sequence may only grow, so it restarts from the original's
  // RocksDB sequence number, which no commit's count exceeds (each commit
  // writes at least one key).
  for (const auto& [key, value] :
       {std::pair<std::string, std::string>(
            std::string(keys::kFormatVersionKey),
            absl::StrCat(keys::kStorageFormatVersion)),
        std::pair<std::string, std::string>(
            keys::IngestSequenceKey(),
            absl::StrCat(db->GetLatestSequenceNumber()))}) {
    std::string stored;
    const rocksdb::Status s = target->Get(rocksdb::ReadOptions(), key, &stored);
    if (s.IsNotFound()) {
      batch.Put(key, value);
      absl::FPrintF(out, "  %s was unreadable: set to %s\n", key, value);
    } else if (!s.ok()) {
      return FromRocks(s, "reading the new store");
    }
  }
  RETURN_IF_ERROR(flush_batch());
  for (const std::string& name : damaged_files) {
    const int64_t unreadable = UnreadableEntries(dir + "/" + name);
    absl::FPrintF(out, "  %s: %d entr%s unreadable\n", name,
                  unreadable < 0 ? 0 : unreadable,
                  unreadable == 1 ? "y" : "ies");
    for (auto& [dataset, loss] : outcome.datasets) {
      loss.lower_bound = true;
      loss.unattributed_entries += std::max<int64_t>(0, unreadable);
    }
    if (outcome.datasets.empty()) {
      // No session known lost, yet unreadable entries: say so.
      SalvageLoss& loss = outcome.datasets[""];
      loss.lower_bound = true;
      loss.unattributed_entries += std::max<int64_t>(0, unreadable);
    }
  }
  rocksdb::FlushOptions flush;
  RETURN_IF_ERROR(FromRocks(target->Flush(flush), "flushing the new store"));
  RETURN_IF_ERROR(FromRocks(target->Close(), "closing the new store"));
  target.reset();
  db.reset();
  RETURN_IF_ERROR(SwapIn(dir, fresh, keep_dir, &outcome.kept_dir));
  return outcome;
}

}  // namespace

absl::StatusOr<SalvageOutcome> SalvageRocksDbStore(const std::string& dir,
                                                   const std::string& keep_dir,
                                                   absl::string_view damage,
                                                   std::FILE* out) {
  ASSIGN_OR_RETURN(std::unique_ptr<StoreLock> lock, StoreLock::Acquire(dir));
  std::error_code ec;
  if (fs::exists(keep_dir, ec) && !fs::is_empty(keep_dir, ec)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "keep directory %s is not empty; name an absent or empty one",
        keep_dir));
  }
  if (absl::StrContains(damage, "missing or cut short")) {
    // The WAL's records are gone already; what is left opens as it is.
    // Dropping the synced-sequence record accepts that.
    absl::FPrintF(out,
                  "  the lost writes are not on disk any more, so which "
                  "sessions they held cannot be known\n");
    const std::string clone = dir + ".salvage-tmp";
    RETURN_IF_ERROR(CloneStore(dir, clone));
    SalvageOutcome outcome;
    SalvageLoss& unknown = outcome.datasets[""];
    unknown.lower_bound = true;
    unknown.uncountable = true;
    RETURN_IF_ERROR(SwapIn(dir, clone, keep_dir, &outcome.kept_dir));
    return outcome;
  }
  if (absl::StrContains(damage, ".sst")) return SalvageSst(dir, keep_dir, out);
  if (absl::StrContains(damage, ".log") ||
      absl::StrContains(damage, "write-ahead log")) {
    return SalvageWal(dir, keep_dir, out);
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "salvage handles a damaged WAL or SST only; this damage is neither "
      "(restore the last backup): ",
      damage));
}

}  // namespace cohortd
