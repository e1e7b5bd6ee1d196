#include "server/service/push_wire_reader.h"

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace cohortd {
namespace {

// Protobuf's default recursion limit (io::CodedInputStream): a message
// nested in the top-level one, or a group, takes one level.
constexpr int kRecursionLimit = 100;

// Wire types (protobuf encoding guide, "Message Structure").
constexpr uint32_t kVarint = 0;
constexpr uint32_t kFixed64 = 1;
constexpr uint32_t kLengthDelimited = 2;
constexpr uint32_t kStartGroup = 3;
constexpr uint32_t kEndGroup = 4;
constexpr uint32_t kFixed32 = 5;

constexpr uint32_t Tag(uint32_t number, uint32_t wire_type) {
  return number << 3 | wire_type;
}

// The parse of one request. Every Read* advances `p` within [p, end) and
// returns false (with error_ set) when the bytes there are malformed. The
// limits mirror protobuf 3.21's parse_context.h: ReadTag (at most 5
// bytes, kept modulo 2^32), VarintParse (at most 10 bytes, bits above 64
// dropped), ReadSize (at most 5 bytes, below 2^31).
class Parser {
 public:
  explicit Parser(const char* begin) : begin_(begin) {}

  const std::string& error() const { return error_; }
  int observation() const { return observation_; }

  bool Fail(const char* at, absl::string_view why) {
    error_ = absl::StrCat(why, " at byte ", at - begin_);
    return false;
  }

  // A varint of at most `max_bytes` bytes at `p`, bits past 64 dropped;
  // `p` advances past it only when it is whole. Errors name the start.
  bool ReadVarintOf(int max_bytes, const char*& p, const char* end,
                    uint64_t* value, const char* truncated,
                    const char* too_long) {
    uint64_t result = 0;
    for (int i = 0; i < max_bytes; ++i) {
      if (p + i >= end) return Fail(p, truncated);
      const auto byte = static_cast<uint8_t>(p[i]);
      result |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
      if (byte < 0x80) {
        p += i + 1;
        *value = result;
        return true;
      }
    }
    return Fail(p, too_long);
  }

  // Kept modulo 2^32, as protobuf does.
  bool ReadTag(const char*& p, const char* end, uint32_t* tag) {
    uint64_t value;
    if (!ReadVarintOf(5, p, end, &value, "truncated tag",
                      "tag longer than 5 bytes")) {
      return false;
    }
    *tag = static_cast<uint32_t>(value);
    return true;
  }

  bool ReadVarint(const char*& p, const char* end, uint64_t* value) {
    return ReadVarintOf(10, p, end, value, "truncated varint",
                        "varint longer than 10 bytes");
  }

  // A length prefix; also checks that that many bytes follow.
  bool ReadSize(const char*& p, const char* end, size_t* size) {
    const char* start = p;
    uint64_t result;
    // A fifth byte of 8 or more (a continuation included) is 2^31 or more.
    if (!ReadVarintOf(5, p, end, &result, "truncated length",
                      "length of 2 GiB or more")) {
      return false;
    }
    if (result >= (uint64_t{1} << 31)) {
      return Fail(start, "length of 2 GiB or more");
    }
    if (result > static_cast<uint64_t>(end - p)) {
      return Fail(start, absl::StrCat("length ", result, " runs past the end"));
    }
    *size = static_cast<size_t>(result);
    return true;
  }

  bool ReadBytes(const char*& p, const char* end, absl::string_view* out) {
    size_t size;
    if (!ReadSize(p, end, &size)) return false;
    *out = absl::string_view(p, size);
    p += size;
    return true;
  }

  bool ReadFixed64(const char*& p, const char* end, uint64_t* out) {
    if (end - p < 8) return Fail(p, "truncated fixed64");
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(p[i]);
    *out = v;
    p += 8;
    return true;
  }

  // Skips the value of a field that is not read (unknown number, or a
  // known number with another wire type), as protobuf keeps it aside in
  // the unknown fields.
  bool SkipField(const char*& p, const char* end, uint32_t tag,
                 const char* tag_at) {
    if (tag >> 3 == 0) return Fail(tag_at, "field number 0");
    switch (tag & 7) {
      case kVarint: {
        uint64_t ignored;
        return ReadVarint(p, end, &ignored);
      }
      case kFixed64:
        if (end - p < 8) return Fail(p, "truncated fixed64");
        p += 8;
        return true;
      case kLengthDelimited: {
        absl::string_view ignored;
        return ReadBytes(p, end, &ignored);
      }
      case kStartGroup:
        return SkipGroup(p, end, tag, tag_at);
      case kFixed32:
        if (end - p < 4) return Fail(p, "truncated fixed32");
        p += 4;
        return true;
      default:  // kEndGroup is handled by the message loops
        return Fail(tag_at, absl::StrCat("invalid wire type ", tag & 7));
    }
  }

  bool SkipGroup(const char*& p, const char* end, uint32_t start_tag,
                 const char* start_at) {
    if (--depth_ < 0) return Fail(start_at, "nested too deeply");
    while (p < end) {
      const char* tag_at = p;
      uint32_t tag;
      if (!ReadTag(p, end, &tag)) return false;
      if (tag == 0 || (tag & 7) == kEndGroup) {
        if (tag != start_tag + 1) {
          return Fail(tag_at, "end-group tag does not match its group");
        }
        ++depth_;
        return true;
      }
      if (!SkipField(p, end, tag, tag_at)) return false;
    }
    return Fail(start_at, "group without its end-group tag");
  }

  // Reads the fields of one message in [p, end) calling `field(tag, p,
  // end, tag_at)` for each; it reads the fields it knows and skips the others.
  template <typename FieldFn>
  bool ReadMessage(const char*& p, const char* end, FieldFn field) {
    while (p < end) {
      const char* tag_at = p;
      uint32_t tag;
      if (!ReadTag(p, end, &tag)) return false;
      if (tag == 0) return Fail(tag_at, "zero tag");
      if ((tag & 7) == kEndGroup) {
        return Fail(tag_at, "end-group tag outside a group");
      }
      if (!field(tag, p, end, tag_at)) return false;
    }
    return true;
  }

  // Reads a length-delimited embedded message with `field`.
  template <typename FieldFn>
  bool ReadEmbedded(const char*& p, const char* end, const char* tag_at,
                    FieldFn field) {
    size_t size;
    if (!ReadSize(p, end, &size)) return false;
    if (--depth_ < 0) return Fail(tag_at, "nested too deeply");
    const char* sub_end = p + size;
    if (!ReadMessage(p, sub_end, field)) return false;
    ++depth_;
    return true;
  }

  bool ReadTimestamp(const char*& p, const char* end, const char* tag_at,
                     ObservationRef* obs) {
    obs->has_session_start = true;
    return ReadEmbedded(
        p, end, tag_at,
        [&](uint32_t tag, const char*& q, const char* e, const char* at) {
          uint64_t v;
          switch (tag) {
            case Tag(1, kVarint):  // int64 seconds
              if (!ReadVarint(q, e, &v)) return false;
              obs->session_start_seconds = static_cast<int64_t>(v);
              return true;
            case Tag(2, kVarint):  // int32 nanos: the low 32 bits
              if (!ReadVarint(q, e, &v)) return false;
              obs->session_start_nanos =
                  static_cast<int32_t>(static_cast<uint32_t>(v));
              return true;
            default:
              return SkipField(q, e, tag, at);
          }
        });
  }

  bool ReadLabel(const char*& p, const char* end, const char* tag_at,
                 ObservationRef* obs) {
    absl::string_view key, value;
    if (!ReadEmbedded(
            p, end, tag_at,
            [&](uint32_t tag, const char*& q, const char* e, const char* at) {
              switch (tag) {
                case Tag(1, kLengthDelimited):
                  return ReadBytes(q, e, &key);
                case Tag(2, kLengthDelimited):
                  return ReadBytes(q, e, &value);
                default:
                  return SkipField(q, e, tag, at);
              }
            })) {
      return false;
    }
    obs->labels.emplace_back(key, value);
    return true;
  }

  bool ReadMeasure(const char*& p, const char* end, const char* tag_at,
                   ObservationRef* obs) {
    absl::string_view key;
    double value = 0;
    if (!ReadEmbedded(
            p, end, tag_at,
            [&](uint32_t tag, const char*& q, const char* e, const char* at) {
              switch (tag) {
                case Tag(1, kLengthDelimited):
                  return ReadBytes(q, e, &key);
                case Tag(2, kFixed64): {
                  uint64_t bits;
                  if (!ReadFixed64(q, e, &bits)) return false;
                  std::memcpy(&value, &bits, sizeof value);
                  return true;
                }
                default:
                  return SkipField(q, e, tag, at);
              }
            })) {
      return false;
    }
    obs->measures.emplace_back(key, value);
    return true;
  }

  bool ReadObservation(const char*& p, const char* end, const char* tag_at,
                       ObservationRef* obs) {
    return ReadEmbedded(
        p, end, tag_at,
        [&](uint32_t tag, const char*& q, const char* e, const char* at) {
          switch (tag) {
            case Tag(1, kLengthDelimited):
              return ReadBytes(q, e, &obs->session_id);
            case Tag(2, kLengthDelimited):
              return ReadBytes(q, e, &obs->account_id);
            case Tag(3, kLengthDelimited):
              return ReadTimestamp(q, e, at, obs);
            case Tag(4, kLengthDelimited):
              return ReadBytes(q, e, &obs->source);
            case Tag(5, kLengthDelimited):
              return ReadLabel(q, e, at, obs);
            case Tag(6, kLengthDelimited):
              return ReadMeasure(q, e, at, obs);
            default:
              return SkipField(q, e, tag, at);
          }
        });
  }

  void set_observation(int i) { observation_ = i; }

 private:
  const char* const begin_;
  int depth_ = kRecursionLimit;
  int observation_ = -1;  // the observation being read, -1 outside one
  std::string error_;
};

}  // namespace

ObservationRef* PushWireReader::NextObservation() {
  if (size_ == storage_.size()) storage_.emplace_back();
  ObservationRef* obs = &storage_[size_++];
  obs->session_id = {};
  obs->account_id = {};
  obs->source = {};
  obs->has_session_start = false;
  obs->session_start_seconds = 0;
  obs->session_start_nanos = 0;
  obs->labels.clear();
  obs->measures.clear();
  return obs;
}

absl::Status PushWireReader::Read(absl::string_view bytes) {
  dataset_ = {};
  size_ = 0;
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  Parser parser(p);
  const bool ok = parser.ReadMessage(
      p, end, [&](uint32_t tag, const char*& q, const char* e, const char* at) {
        switch (tag) {
          case Tag(1, kLengthDelimited):
            return parser.ReadBytes(q, e, &dataset_);
          case Tag(2, kLengthDelimited): {
            parser.set_observation(static_cast<int>(size_));
            if (!parser.ReadObservation(q, e, at, NextObservation())) {
              return false;
            }
            parser.set_observation(-1);
            return true;
          }
          default:
            return parser.SkipField(q, e, tag, at);
        }
      });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "request: not a cohortd.v1.PushRequest (the bytes do not parse: ",
      parser.observation() >= 0
          ? absl::StrCat("observation ", parser.observation(), ": ")
          : std::string(),
      parser.error(), ")"));
}

}  // namespace cohortd
