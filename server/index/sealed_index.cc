#include "server/index/sealed_index.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/common/hash_input.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/crypto/pseudonymizer.h"
#include "server/ledger/release_journal.h"
#include "server/storage/keys.h"

namespace cohortd {
namespace {

using hash_input::AppendBytes;
using hash_input::AppendUint32;
using hash_input::AppendUint64;

constexpr absl::string_view kMagic = "cohortd.sealed-index";
constexpr uint32_t kVersion = 1;
constexpr size_t kChunkBytes = size_t{4} << 20;
// Written in host order: reads back as this only on a host of the same
// byte order as the writer (the image is in host order too).
constexpr uint32_t kByteOrderProbe = 0x01020304;

struct Header {
  uint32_t byte_order = 0;
  std::string config_fingerprint;
  std::string snapshot_id;
  int64_t sealed_at_nanos = 0;
  uint64_t image_bytes = 0;
  uint32_t chunks = 0;
  uint32_t sessions = 0;
  Digest256 image_sha256{};
};

std::string SealedIndexPrefix(absl::string_view dataset) {
  return absl::StrCat(keys::kSealedIndexPrefix,
                      keys::EscapeKeyComponent(dataset), "/");
}

std::string ChunkPrefix(absl::string_view dataset) {
  return absl::StrCat(SealedIndexPrefix(dataset), "c/");
}

std::string EncodeHeader(const Header& h) {
  std::string out;
  AppendBytes(kMagic, &out);
  AppendUint32(kVersion, &out);
  out.append(reinterpret_cast<const char*>(&h.byte_order),
             sizeof(h.byte_order));
  AppendBytes(h.config_fingerprint, &out);
  AppendBytes(h.snapshot_id, &out);
  AppendUint64(static_cast<uint64_t>(h.sealed_at_nanos), &out);
  AppendUint64(h.image_bytes, &out);
  AppendUint32(h.chunks, &out);
  AppendUint32(h.sessions, &out);
  out.append(reinterpret_cast<const char*>(h.image_sha256.data()),
             h.image_sha256.size());
  const Digest256 self = Sha256(out);
  out.append(reinterpret_cast<const char*>(self.data()), self.size());
  return out;
}

// Big-endian reads with bounds checks, mirroring hash_input's encoding.
class HeaderReader {
 public:
  explicit HeaderReader(absl::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return in_.empty(); }
  uint64_t U64() { return Int(8); }
  uint32_t U32() { return static_cast<uint32_t>(Int(4)); }
  absl::string_view Bytes() {
    const uint64_t size = U64();
    return Raw(ok_ ? size : 0);
  }
  absl::string_view Raw(uint64_t size) {
    if (!ok_ || size > in_.size()) {
      ok_ = false;
      return {};
    }
    absl::string_view out = in_.substr(0, size);
    in_.remove_prefix(size);
    return out;
  }

 private:
  uint64_t Int(int bytes) {
    const absl::string_view raw = Raw(bytes);
    uint64_t v = 0;
    for (char c : raw) v = (v << 8) | static_cast<uint8_t>(c);
    return v;
  }
  absl::string_view in_;
  bool ok_ = true;
};

absl::StatusOr<Header> DecodeHeader(absl::string_view in,
                                    const std::string& key) {
  auto damaged = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrFormat(
        "sealed index header %s is damaged (%s); the index is derived from "
        "the session records: see docs/storage.md \"Sealed index\"",
        key, why));
  };
  if (in.size() < 32) return damaged("too short");
  const absl::string_view body = in.substr(0, in.size() - 32);
  const Digest256 expected = Sha256(body);
  if (std::memcmp(expected.data(), in.data() + body.size(), 32) != 0) {
    return damaged("checksum mismatch");
  }
  HeaderReader r(body);
  Header h;
  if (r.Bytes() != kMagic) return damaged("bad magic");
  if (r.U32() != kVersion) return damaged("unknown version");
  const absl::string_view order = r.Raw(sizeof(h.byte_order));
  if (r.ok()) std::memcpy(&h.byte_order, order.data(), sizeof(h.byte_order));
  h.config_fingerprint = std::string(r.Bytes());
  h.snapshot_id = std::string(r.Bytes());
  h.sealed_at_nanos = static_cast<int64_t>(r.U64());
  h.image_bytes = r.U64();
  h.chunks = r.U32();
  h.sessions = r.U32();
  const absl::string_view sha = r.Raw(32);
  if (!r.ok() || !r.done()) return damaged("bad layout");
  std::memcpy(h.image_sha256.data(), sha.data(), 32);
  return h;
}

// The chunk count of the stored image, 0 when none is stored.
absl::StatusOr<uint32_t> StoredChunks(Store* store, absl::string_view dataset) {
  const std::string key = SealedIndexHeaderKey(dataset);
  absl::StatusOr<std::string> stored = store->Get(key);
  if (absl::IsNotFound(stored.status())) return 0;
  RETURN_IF_ERROR(stored.status());
  absl::StatusOr<Header> header = DecodeHeader(*stored, key);
  if (header.ok()) return header->chunks;
  // A damaged old header: find its chunks by listing them.
  uint32_t chunks = 0;
  RETURN_IF_ERROR(store->Scan(ChunkPrefix(dataset),
                              [&](absl::string_view, absl::string_view) {
                                ++chunks;
                                return true;
                              }));
  return chunks;
}

absl::StatusOr<absl::optional<SealedIndexInfo>> Load(Store* store,
                                                     const DatasetSpec& spec,
                                                     ColumnarDataset* dataset) {
  const std::string key = SealedIndexHeaderKey(spec.name);
  absl::StatusOr<std::string> stored = store->Get(key);
  if (absl::IsNotFound(stored.status())) return absl::nullopt;
  RETURN_IF_ERROR(stored.status());
  ASSIGN_OR_RETURN(Header header, DecodeHeader(*stored, key));
  if (header.byte_order != kByteOrderProbe) {
    LogWarning("index",
               "dataset %s: the sealed index was written on a host of "
               "another byte order; rebuilding from the records",
               spec.name);
    return absl::nullopt;
  }
  if (header.config_fingerprint != ReleaseConfigFingerprint(spec)) {
    LogInfo("index",
            "dataset %s: the config changed since the last seal; "
            "rebuilding the index from the records",
            spec.name);
    return absl::nullopt;
  }
  const absl::Time start = absl::Now();
  std::string image;
  image.reserve(header.image_bytes);
  uint32_t chunks = 0;
  absl::Status chunk_status;
  const std::string prefix = ChunkPrefix(spec.name);
  RETURN_IF_ERROR(store->Scan(
      prefix, [&](absl::string_view chunk_key, absl::string_view value) {
        if (chunk_key != SealedIndexChunkKey(spec.name, chunks) ||
            image.size() + value.size() > header.image_bytes) {
          chunk_status = absl::DataLossError(absl::StrFormat(
              "sealed index chunk %s is unexpected (image of %d bytes in "
              "%d chunks)",
              std::string(chunk_key), header.image_bytes, header.chunks));
          return false;
        }
        image.append(value.data(), value.size());
        ++chunks;
        return true;
      }));
  RETURN_IF_ERROR(chunk_status);
  if (chunks != header.chunks || image.size() != header.image_bytes) {
    return absl::DataLossError(absl::StrFormat(
        "sealed index of dataset %s is incomplete: %d of %d chunks, %d of %d "
        "bytes under %s",
        spec.name, chunks, header.chunks, image.size(), header.image_bytes,
        prefix));
  }
  const absl::Time read = absl::Now();
  if (Sha256(image) != header.image_sha256) {
    return absl::DataLossError(absl::StrFormat(
        "sealed index of dataset %s (%s) fails its SHA-256 checksum; the "
        "index is derived from the session records: see docs/storage.md "
        "\"Sealed index\"",
        spec.name, prefix));
  }
  const absl::Time checked = absl::Now();
  RETURN_IF_ERROR(dataset->Deserialize(image));
  LogInfo("index",
          "dataset %s: sealed index image read in %.3f s, SHA-256 checked in "
          "%.3f s, decoded in %.3f s",
          spec.name, absl::ToDoubleSeconds(read - start),
          absl::ToDoubleSeconds(checked - read),
          absl::ToDoubleSeconds(absl::Now() - checked));
  SealedIndexInfo info;
  info.snapshot_id = header.snapshot_id;
  info.sealed_at = absl::FromUnixNanos(header.sealed_at_nanos);
  info.image_bytes = header.image_bytes;
  info.sessions = dataset->NumSessions();
  return info;
}

}  // namespace

std::string SealedIndexHeaderKey(absl::string_view dataset) {
  return absl::StrCat(SealedIndexPrefix(dataset), "h");
}

std::string SealedIndexChunkKey(absl::string_view dataset, uint32_t chunk) {
  return absl::StrFormat("%s%08d", ChunkPrefix(dataset), chunk);
}

absl::StatusOr<uint64_t> SaveSealedIndex(Store* store, const DatasetSpec& spec,
                                         absl::string_view snapshot_id,
                                         absl::Time sealed_at,
                                         const ColumnarDataset& dataset) {
  std::string image;
  dataset.Serialize(&image);
  Header header;
  header.byte_order = kByteOrderProbe;
  header.config_fingerprint = ReleaseConfigFingerprint(spec);
  header.snapshot_id = std::string(snapshot_id);
  header.sealed_at_nanos = absl::ToUnixNanos(sealed_at);
  header.image_bytes = image.size();
  header.chunks =
      static_cast<uint32_t>((image.size() + kChunkBytes - 1) / kChunkBytes);
  header.sessions = dataset.NumSessions();
  header.image_sha256 = Sha256(image);

  ASSIGN_OR_RETURN(const uint32_t old_chunks, StoredChunks(store, spec.name));
  WriteBatch batch;
  for (uint32_t c = 0; c < header.chunks; ++c) {
    batch.Put(
        SealedIndexChunkKey(spec.name, c),
        absl::string_view(image).substr(size_t{c} * kChunkBytes, kChunkBytes));
  }
  for (uint32_t c = header.chunks; c < old_chunks; ++c) {
    batch.Delete(SealedIndexChunkKey(spec.name, c));
  }
  batch.Put(SealedIndexHeaderKey(spec.name), EncodeHeader(header));
  RETURN_IF_ERROR(store->Write(batch, /*sync=*/true));
  return image.size();
}

absl::StatusOr<absl::optional<SealedIndexInfo>> LoadSealedIndex(
    Store* store, const DatasetSpec& spec, ColumnarDataset* dataset) {
  return Load(store, spec, dataset);
}

absl::StatusOr<absl::optional<SealedIndexInfo>> VerifySealedIndex(
    Store* store, const DatasetSpec& spec) {
  ASSIGN_OR_RETURN(std::unique_ptr<ColumnarDataset> scratch,
                   ColumnarDataset::Create(&spec, ColumnarIndexOptions()));
  return Load(store, spec, scratch.get());
}

}  // namespace cohortd
