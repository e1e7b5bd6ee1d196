#include "server/service/store_salvage.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/status_macros.h"
#include "server/ledger/release_journal.h"
#include "server/service/store_verifier.h"
#include "server/storage/keys.h"
#include "server/storage/rocksdb_store.h"
#include "server/storage/salvage.h"

namespace cohortd {
namespace {

// Drops every sealed index image and writes one audit entry per dataset
// that lost sessions, in one synced batch per entry.
absl::Status RecordSalvage(const Config& config, const SalvageOutcome& outcome,
                           std::FILE* out) {
  ASSIGN_OR_RETURN(std::unique_ptr<Store> store,
                   OpenRocksDbStore(config.data_dir, RocksDbStoreOptions()));
  WriteBatch drop;
  int64_t image_keys = 0;
  RETURN_IF_ERROR(store->Scan(keys::kSealedIndexPrefix,
                              [&](absl::string_view key, absl::string_view) {
                                drop.Delete(key);
                                ++image_keys;
                                return true;
                              }));
  if (image_keys > 0) {
    RETURN_IF_ERROR(store->Write(drop, /*sync=*/true));
    absl::FPrintF(out,
                  "  dropped the sealed index images (%d key(s)): the next "
                  "start rebuilds the index from the records\n",
                  image_keys);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ReleaseJournal> journal,
                   ReleaseJournal::Open(&config, store.get(), Clock::Real()));
  for (const DatasetSpec& dataset : config.datasets) {
    int64_t lost = 0;
    bool lower_bound = false;
    bool uncountable = false;
    for (const auto& [name, loss] : outcome.datasets) {
      if (name == dataset.name || name.empty()) {
        lost += loss.sessions_lost;
        lower_bound = lower_bound || loss.lower_bound;
        uncountable = uncountable || loss.uncountable;
      }
    }
    if (lost == 0 && !lower_bound &&
        outcome.datasets.count(dataset.name) == 0) {
      continue;
    }
    WriteBatch batch;
    RETURN_IF_ERROR(journal->CommitErasure(
        kSalvagePrincipal, dataset.name,
        uncountable   ? "salvage (uncountable)"
        : lower_bound ? "salvage (at least)"
                      : "salvage",
        lost, &batch, [&] { return store->Write(batch, /*sync=*/true); }));
    if (uncountable) {
      absl::FPrintF(out,
                    "  audit log: salvage entry for dataset %s (sessions "
                    "lost: uncountable)\n",
                    dataset.name);
    } else {
      absl::FPrintF(out,
                    "  audit log: salvage entry for dataset %s (%s%d "
                    "session(s) lost)\n",
                    dataset.name, lower_bound ? "at least " : "", lost);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SalvageStoreOffline(const Config& config,
                                 const std::string& keep_dir, std::FILE* out) {
  absl::FPrintF(out, "salvaging store %s\n", config.data_dir);
  absl::Status verified;
  {
    std::FILE* quiet = std::fopen("/dev/null", "w");
    verified = VerifyStoreOffline(config, quiet != nullptr ? quiet : out);
    if (quiet != nullptr) std::fclose(quiet);
  }
  if (verified.ok()) {
    absl::FPrintF(out,
                  "store %s is intact (cohortd --verify passes): nothing to "
                  "salvage, nothing changed\n",
                  config.data_dir);
    return absl::OkStatus();
  }
  if (!absl::IsDataLoss(verified)) return verified;
  absl::FPrintF(out, "  damage: %s\n", verified.message());

  std::string keep = keep_dir;
  if (keep.empty()) {
    const std::filesystem::path data =
        std::filesystem::absolute(config.data_dir).lexically_normal();
    const std::filesystem::path parent = data.has_filename()
                                             ? data.parent_path()
                                             : data.parent_path().parent_path();
    keep = (parent / absl::FormatTime("salvage-%Y%m%dT%H%M%SZ", absl::Now(),
                                      absl::UTCTimeZone()))
               .string();
  }
  ASSIGN_OR_RETURN(
      SalvageOutcome outcome,
      SalvageRocksDbStore(config.data_dir, keep, verified.message(), out));
  absl::FPrintF(out, "  the original store, untouched, is kept in %s\n",
                outcome.kept_dir);
  for (const auto& [dataset, loss] : outcome.datasets) {
    const std::string name = dataset.empty() ? "(any)" : dataset;
    if (loss.uncountable) {
      absl::FPrintF(out,
                    "  LOST: every write the damage line counts; which "
                    "sessions (of any dataset) cannot be known\n");
    } else if (loss.lower_bound) {
      absl::FPrintF(out,
                    "  LOST dataset %s: at least %d session(s)%s; %d "
                    "unreadable entr%s could not be attributed to sessions "
                    "(up to that many more)\n",
                    name, loss.sessions_lost,
                    loss.sessions_rolled_back > 0
                        ? absl::StrFormat(", %d more rolled back",
                                          loss.sessions_rolled_back)
                        : "",
                    loss.unattributed_entries,
                    loss.unattributed_entries == 1 ? "y" : "ies");
    } else {
      absl::FPrintF(out,
                    "  LOST dataset %s: %d session(s); %d more session(s) "
                    "lost their later contributions\n",
                    name, loss.sessions_lost, loss.sessions_rolled_back);
    }
  }
  if (outcome.datasets.empty()) {
    absl::FPrintF(out, "  LOST: no session (the dropped writes held none)\n");
  }
  RETURN_IF_ERROR(RecordSalvage(config, outcome, out));
  absl::FPrintF(out, "checking the salvaged store:\n");
  RETURN_IF_ERROR(VerifyStoreOffline(config, out));
  absl::FPrintF(out, "salvage done; cohortd starts on %s\n", config.data_dir);
  return absl::OkStatus();
}

}  // namespace cohortd
