// Dictionary: the value <-> code mapping of one dictionary-encoded
// dimension of the columnar index. Code 0 always means "absent": the
// session carries no (known) value for the dimension. Closed domains get
// codes 1..n in configured order and never grow; open domains (task_topic)
// and the derived month get the next code on first sight of a value.
#ifndef COHORTD_SERVER_INDEX_DICTIONARY_H_
#define COHORTD_SERVER_INDEX_DICTIONARY_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace cohortd {

// Not thread-safe by itself; the columnar index guards it with the
// dataset's lock. Not copyable (the lookup map points into the value
// storage).
class Dictionary {
 public:
  // A dictionary over exactly `values` (codes 1..values.size()).
  static Dictionary Closed(const std::vector<std::string>& values);
  // An empty dictionary that grows with FindOrAdd.
  static Dictionary Open();

  Dictionary(Dictionary&&) = default;
  Dictionary& operator=(Dictionary&&) = default;
  Dictionary(const Dictionary&) = delete;
  Dictionary& operator=(const Dictionary&) = delete;

  bool open() const { return open_; }

  // The code of `value` (>= 1), or nullopt when it has none.
  absl::optional<uint32_t> Find(absl::string_view value) const;

  // The code of `value`; an open dictionary adds it if new. A value outside
  // a closed domain gets 0 (absent): it can only come from records stored
  // under an older config, and counting it as absent beats failing.
  uint32_t FindOrAdd(absl::string_view value);

  // The value of `code`; "" for 0 and for codes this dictionary never
  // issued. The view stays valid as long as the dictionary.
  absl::string_view Value(uint32_t code) const;

  // Number of codes in use, counting 0: every code is < cardinality().
  uint32_t cardinality() const {
    return static_cast<uint32_t>(values_.size()) + 1;
  }

  // Approximate heap bytes held.
  size_t MemoryBytes() const;

 private:
  explicit Dictionary(bool open) : open_(open) {}

  bool open_;
  // A deque never moves its elements, so the map's keys may view them.
  std::deque<std::string> values_;  // code - 1 -> value
  absl::flat_hash_map<absl::string_view, uint32_t> codes_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_INDEX_DICTIONARY_H_
