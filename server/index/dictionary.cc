#include "server/index/dictionary.h"

namespace cohortd {

Dictionary Dictionary::Closed(const std::vector<std::string>& values) {
  Dictionary dictionary(/*open=*/false);
  dictionary.codes_.reserve(values.size());
  for (const std::string& value : values) {
    dictionary.values_.push_back(value);
    dictionary.codes_.emplace(dictionary.values_.back(),
                              static_cast<uint32_t>(dictionary.values_.size()));
  }
  return dictionary;
}

Dictionary Dictionary::Open() { return Dictionary(/*open=*/true); }

absl::optional<uint32_t> Dictionary::Find(absl::string_view value) const {
  auto it = codes_.find(value);
  if (it == codes_.end()) return absl::nullopt;
  return it->second;
}

uint32_t Dictionary::FindOrAdd(absl::string_view value) {
  auto it = codes_.find(value);
  if (it != codes_.end()) return it->second;
  if (!open_) return 0;
  values_.emplace_back(value);
  const uint32_t code = static_cast<uint32_t>(values_.size());
  codes_.emplace(values_.back(), code);
  return code;
}

absl::string_view Dictionary::Value(uint32_t code) const {
  if (code == 0 || code > values_.size()) return absl::string_view();
  return values_[code - 1];
}

size_t Dictionary::MemoryBytes() const {
  size_t bytes = codes_.capacity() *
                 (sizeof(std::pair<absl::string_view, uint32_t>) + 1);
  for (const std::string& value : values_) {
    bytes += sizeof(std::string);
    if (value.capacity() > 15) bytes += value.capacity() + 1;  // beyond SSO
  }
  return bytes;
}

}  // namespace cohortd
