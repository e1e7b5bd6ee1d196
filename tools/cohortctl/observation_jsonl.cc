#include "tools/cohortctl/observation_jsonl.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace cohortd::cohortctl {
namespace {

// A cursor over one line for FastParseObservationJson. Every method returns
// false on anything outside the fast path's shape.
class FastJson {
 public:
  explicit FastJson(absl::string_view text)
      : p_(text.data()), end_(text.data() + text.size()) {}

  void SkipSpace() {
    while (p_ < end_ &&
           (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n')) {
      ++p_;
    }
  }
  bool Consume(char c) {
    SkipSpace();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool AtEnd() {
    SkipSpace();
    return p_ == end_;
  }

  // A string of printable ASCII with the escapes \" \\ \/ \b \f \n \r
  // \t (no \u, no byte >= 0x80, no raw control character).
  bool String(std::string* out) {
    if (!Consume('"')) return false;
    out->clear();
    const char* run = p_;
    while (p_ < end_) {
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        out->append(run, p_ - run);
        ++p_;
        return true;
      }
      if (c < 0x20 || c >= 0x80) return false;
      if (c != '\\') {
        ++p_;
        continue;
      }
      out->append(run, p_ - run);
      if (++p_ == end_) return false;
      switch (*p_) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        default:
          return false;
      }
      run = ++p_;
    }
    return false;
  }

  // A JSON number (RFC 8259 grammar) that converts to a finite double.
  bool Number(double* out) {
    SkipSpace();
    const char* start = p_;
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    } else {
      return false;
    }
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    return absl::SimpleAtod(absl::string_view(start, p_ - start), out) &&
           std::isfinite(*out);
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  const char* p_;
  const char* end_;
};

// "YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z", a real UTC time in
// years 0001-9999.
bool ParseUtcTime(absl::string_view text, google::protobuf::Timestamp* out) {
  auto digits = [&](size_t pos, size_t n, int* value) {
    if (pos + n > text.size()) return false;
    *value = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      *value = *value * 10 + (text[i] - '0');
    }
    return true;
  };
  int year, month, day, hour, minute, second;
  if (text.size() < 20 || !digits(0, 4, &year) || text[4] != '-' ||
      !digits(5, 2, &month) || text[7] != '-' || !digits(8, 2, &day) ||
      text[10] != 'T' || !digits(11, 2, &hour) || text[13] != ':' ||
      !digits(14, 2, &minute) || text[16] != ':' || !digits(17, 2, &second)) {
    return false;
  }
  int nanos = 0;
  size_t pos = 19;
  if (text[pos] == '.') {
    const size_t n = text.size() - pos - 2;  // digits before the 'Z'
    int fraction = 0;
    if ((n != 3 && n != 6 && n != 9) || !digits(pos + 1, n, &fraction)) {
      return false;
    }
    nanos = fraction * (n == 3 ? 1000000 : n == 6 ? 1000 : 1);
    pos += n + 1;
  }
  if (pos + 1 != text.size() || text[pos] != 'Z') return false;
  if (year < 1 || hour > 23 || minute > 59 || second > 59) return false;
  const absl::CivilSecond civil(year, month, day, hour, minute, second);
  // CivilSecond normalises out-of-range fields (Feb 30 -> Mar 2): a
  // normalised date was not a real one.
  if (civil.month() != month || civil.day() != day) return false;
  out->set_seconds(
      absl::ToUnixSeconds(absl::FromCivil(civil, absl::UTCTimeZone())));
  out->set_nanos(nanos);
  return true;
}

}  // namespace

// Reused buffers of FastEncodeObservation: after the first lines, reading
// one allocates nothing.
struct EncodeScratch {
  std::string key;
  std::string value;
  ObservationWireWriter writer;
  std::vector<std::string> names;  // of the labels or measures read so far
  size_t num_names = 0;

  // False if `name` was read before in this object; else remembers it.
  bool AddName(absl::string_view name) {
    for (size_t i = 0; i < num_names; ++i) {
      if (names[i] == name) return false;
    }
    if (num_names == names.size()) names.emplace_back();
    names[num_names++].assign(name.data(), name.size());
    return true;
  }
};

namespace {

// The fast path: writes the Observation's wire bytes (its fields, no tag
// or length of its own) to scratch->writer, or returns false (see
// FastParseObservationJson).
bool FastEncodeObservation(absl::string_view line, EncodeScratch* scratch) {
  ObservationWireWriter& writer = scratch->writer;
  std::string& key = scratch->key;
  std::string& value = scratch->value;
  writer.Clear();
  FastJson json(line);
  if (!json.Consume('{')) return false;
  enum : unsigned {
    kSession = 1,
    kAccount = 2,
    kStart = 4,
    kSource = 8,
    kLabels = 16,
    kMeasures = 32
  };
  unsigned seen = 0;
  if (json.Consume('}')) return json.AtEnd();
  do {
    if (!json.String(&key) || !json.Consume(':')) return false;
    unsigned field = 0;
    if (key == "session_id" || key == "sessionId") {
      field = kSession;
    } else if (key == "account_id" || key == "accountId") {
      field = kAccount;
    } else if (key == "session_start" || key == "sessionStart") {
      field = kStart;
    } else if (key == "source") {
      field = kSource;
    } else if (key == "labels") {
      field = kLabels;
    } else if (key == "measures") {
      field = kMeasures;
    } else {
      return false;  // protobuf's parser names the unknown field
    }
    if ((seen & field) != 0) return false;
    seen |= field;
    switch (field) {
      case kSession:
      case kAccount:
      case kSource:
        if (!json.String(&value)) return false;
        if (field == kSession) {
          writer.SessionId(value);
        } else if (field == kAccount) {
          writer.AccountId(value);
        } else {
          writer.Source(value);
        }
        break;
      case kStart: {
        google::protobuf::Timestamp time;
        if (!json.String(&value) || !ParseUtcTime(value, &time)) return false;
        writer.SessionStart(time.seconds(), time.nanos());
        break;
      }
      case kLabels: {
        if (!json.Consume('{')) return false;
        if (json.Consume('}')) break;
        scratch->num_names = 0;
        do {
          if (!json.String(&key) || !json.Consume(':') ||
              !json.String(&value) || !scratch->AddName(key)) {
            return false;
          }
          writer.Label(key, value);
        } while (json.Consume(','));
        if (!json.Consume('}')) return false;
        break;
      }
      case kMeasures: {
        if (!json.Consume('{')) return false;
        if (json.Consume('}')) break;
        scratch->num_names = 0;
        do {
          double number = 0;
          if (!json.String(&key) || !json.Consume(':') ||
              !json.Number(&number) || !scratch->AddName(key)) {
            return false;
          }
          writer.Measure(key, number);
        } while (json.Consume(','));
        if (!json.Consume('}')) return false;
        break;
      }
    }
  } while (json.Consume(','));
  return json.Consume('}') && json.AtEnd();
}

}  // namespace

bool FastParseObservationJson(absl::string_view line,
                              cohortd::v1::Observation* out) {
  EncodeScratch scratch;
  out->Clear();
  return FastEncodeObservation(line, &scratch) &&
         out->ParseFromString(scratch.writer.body());
}

absl::StatusOr<cohortd::v1::Observation> ParseObservationJson(
    absl::string_view line) {
  cohortd::v1::Observation observation;
  if (FastParseObservationJson(line, &observation)) return observation;
  observation.Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), &observation,
      options);
  if (!status.ok()) {
    // Only the first line: the parser goes on to echo the input with a
    // caret, which the line number already locates.
    const auto message = status.message();
    const absl::string_view text(message.data(), message.size());
    return absl::InvalidArgumentError(text.substr(0, text.find('\n')));
  }
  return observation;
}

absl::Status AppendObservationJson(absl::string_view line, std::string* wire) {
  EncodeScratch scratch;
  return AppendObservationJson(line, &scratch, wire);
}

absl::Status AppendObservationJson(absl::string_view line,
                                   EncodeScratch* scratch, std::string* wire) {
  if (FastEncodeObservation(line, scratch)) {
    scratch->writer.AppendTo(wire);
    return absl::OkStatus();
  }
  absl::StatusOr<cohortd::v1::Observation> parsed = ParseObservationJson(line);
  if (!parsed.ok()) return parsed.status();
  AppendSerializedObservation(parsed->SerializeAsString(), wire);
  return absl::OkStatus();
}

ObservationReader::ObservationReader(std::istream* in)
    : in_(in), scratch_(std::make_unique<EncodeScratch>()) {}

ObservationReader::~ObservationReader() = default;

bool ObservationReader::ReadBatch(const std::string& dataset,
                                  int64_t max_observations,
                                  ObservationBatch* batch,
                                  std::vector<MalformedLine>* malformed) {
  // The previous request's bytes went to the transport with their buffer:
  // growing a new one by doubling would copy it about twice over.
  batch->wire.reserve(wire_size_hint_);
  StartPushRequest(dataset, &batch->wire);
  batch->lines.clear();
  while (static_cast<int64_t>(batch->lines.size()) < max_observations &&
         std::getline(*in_, line_buffer_)) {
    ++line_;
    bytes_read_ += line_buffer_.size() + 1;
    if (absl::StripAsciiWhitespace(line_buffer_).empty()) continue;
    const absl::Status status =
        AppendObservationJson(line_buffer_, scratch_.get(), &batch->wire);
    if (!status.ok()) {
      malformed->push_back({line_, std::string(status.message())});
      continue;
    }
    batch->lines.push_back(line_);
  }
  wire_size_hint_ = std::max(wire_size_hint_, batch->wire.size() * 9 / 8);
  return !batch->lines.empty();
}

}  // namespace cohortd::cohortctl
