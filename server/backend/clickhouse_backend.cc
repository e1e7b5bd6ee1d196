#include "server/backend/clickhouse_backend.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/file_sync.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/engine/executor.h"
#include "server/index/columnar_index.h"
#include "server/privacy/aggregations.h"
#include "server/privacy/contribution_bounding.h"
#include "server/privacy/quantile_tree.h"

namespace cohortd {
namespace {

using cohortd::v1::Metric;

// Sums of fixed-point values travel as two parts, x = hi * 2^20 + lo with
// hi = intDiv(x, 2^20) and lo = x % 2^20 (both truncating, so the identity
// holds for negative x too): each part's sum stays far below 2^63 for any
// 2^32 sessions of values below 2^40, where a plain Int64 sum could wrap.
constexpr int64_t kSumSplit = int64_t{1} << 20;

// In the outbox folder: the recent seals' (dataset, snapshot id, version).
constexpr char kSealsFile[] = "seals";

// The most bytes of queued batches the shipper sends in one insert.
constexpr size_t kMaxInsertBytes = size_t{8} << 20;

// Operator series (server/metrics/metrics.h: the operators' registry).
constexpr char kErrors[] = "cohortd_clickhouse_errors_total";
constexpr char kErrorsHelp[] =
    "Statements ClickHouse refused or did not answer.";
constexpr char kRefusals[] = "cohortd_clickhouse_outbox_refusals_total";
constexpr char kRefusalsHelp[] =
    "Pushes refused with UNAVAILABLE because the ClickHouse outbox was "
    "full (storage.clickhouse.max_outbox_bytes).";

// The 128-bit account key the columnar index derives from a pseudonym
// (columnar_index.cc AccountOf): the 32 bytes folded to two words; shorter
// pseudonyms (tests only) zero-padded with their length in the last byte.
std::pair<uint64_t, uint64_t> AccountKeyOf(const std::string& pseudonym) {
  uint64_t words[4] = {0, 0, 0, 0};
  unsigned char* bytes = reinterpret_cast<unsigned char*>(words);
  if (pseudonym.size() >= sizeof(words)) {
    std::memcpy(bytes, pseudonym.data(), sizeof(words));
  } else {
    std::memcpy(bytes, pseudonym.data(), pseudonym.size());
    bytes[sizeof(words) - 1] = static_cast<unsigned char>(pseudonym.size());
  }
  return {words[0] ^ words[2], words[1] ^ words[3]};
}

uint64_t Bits(double x) {
  uint64_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}

// An exact Float64 literal: its bits, reinterpreted (no decimal parsing).
std::string F64(double x) {
  return absl::StrCat("reinterpretAsFloat64(reinterpretAsString(toUInt64(",
                      Bits(x), ")))");
}

// YYYYMM of a Unix time, UTC: the partition.
int64_t MonthNumber(int64_t unix_seconds) {
  const absl::CivilSecond civil = absl::ToCivilSecond(
      absl::FromUnixSeconds(unix_seconds), absl::UTCTimeZone());
  return civil.year() * 100 + civil.month();
}

// The executor's cohort fingerprint (executor.cc): FNV-1a over each value
// followed by a NUL.
uint64_t CohortFingerprint(const std::vector<std::string>& values) {
  uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&h](absl::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
  };
  for (const std::string& v : values) {
    mix(v);
    mix(absl::string_view("\0", 1));
  }
  return h;
}

uint64_t LoadLe64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Wraps `inner` (a SELECT with UInt64 columns `a` and `b`) in the ten
// SipHash-2-4 rounds of privacy::SipHash24(k0, k1, a, b), one subquery per
// round (ClickHouse expands aliases, so the rounds cannot share one level),
// adding the column `out`.
std::string WrapSipHash(const std::string& inner, uint64_t k0, uint64_t k1,
                        const std::string& a, const std::string& b,
                        const std::string& out, const std::string& prefix) {
  auto u = [](uint64_t x) { return absl::StrCat("toUInt64(", x, ")"); };
  std::string sql = inner;
  int level = 0;
  std::vector<std::string> v = {
      u(k0 ^ 0x736f6d6570736575ULL), u(k1 ^ 0x646f72616e646f6dULL),
      u(k0 ^ 0x6c7967656e657261ULL), u(k1 ^ 0x7465646279746573ULL)};
  // One SipRound on v (after v3 ^= pre, or v2 ^= 0xff), then v0 ^= post.
  auto round = [&](const std::string& pre, const std::string& post,
                   bool finalise) {
    std::string v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
    if (!pre.empty()) v3 = absl::StrCat("bitXor(", v3, ", ", pre, ")");
    if (finalise) v2 = absl::StrCat("bitXor(", v2, ", toUInt64(255))");
    const std::string a0 = absl::StrCat("(", v0, " + ", v1, ")");
    const std::string b1 =
        absl::StrCat("bitXor(bitRotateLeft(", v1, ", 13), ", a0, ")");
    const std::string c0 = absl::StrCat("bitRotateLeft(", a0, ", 32)");
    const std::string a2 = absl::StrCat("(", v2, " + ", v3, ")");
    const std::string b3 =
        absl::StrCat("bitXor(bitRotateLeft(", v3, ", 16), ", a2, ")");
    std::string d0 = absl::StrCat("(", c0, " + ", b3, ")");
    const std::string e3 =
        absl::StrCat("bitXor(bitRotateLeft(", b3, ", 21), ", d0, ")");
    const std::string f2 = absl::StrCat("(", a2, " + ", b1, ")");
    const std::string g1 =
        absl::StrCat("bitXor(bitRotateLeft(", b1, ", 17), ", f2, ")");
    const std::string h2 = absl::StrCat("bitRotateLeft(", f2, ", 32)");
    if (!post.empty()) d0 = absl::StrCat("bitXor(", d0, ", ", post, ")");
    ++level;
    std::vector<std::string> names;
    for (int i = 0; i < 4; ++i) {
      names.push_back(absl::StrCat(prefix, level, "_", i));
    }
    sql = absl::StrCat("SELECT *, ", d0, " AS ", names[0], ", ", g1, " AS ",
                       names[1], ", ", h2, " AS ", names[2], ", ", e3, " AS ",
                       names[3], " FROM (", sql, ")");
    v = names;
  };
  for (const std::string& m : {a, b, u(uint64_t{16} << 56)}) {
    round(m, "", false);
    round("", m, false);
  }
  round("", "", true);
  for (int i = 0; i < 3; ++i) round("", "", false);
  return absl::StrCat("SELECT *, bitXor(bitXor(", v[0], ", ", v[1],
                      "), bitXor(", v[2], ", ", v[3], ")) AS ", out, " FROM (",
                      sql, ")");
}

// "YYYY-MM", UTC (validator.h MonthOf), of the Unix time in `column`.
std::string MonthOf(const std::string& column) {
  const std::string ym =
      absl::StrCat("toString(toYYYYMM(toDateTime(", column, ", 'UTC')))");
  return absl::StrCat("concat(substring(", ym, ", 1, 4), '-', substring(", ym,
                      ", 5, 2))");
}

std::string Dim(int i) { return absl::StrCat("d", i); }
std::string Has(int j) { return absl::StrCat("h", j); }
std::string Fixed(int j) { return absl::StrCat("m", j); }
// The stored fixed-point value before the domain clamp (measure filters
// compare it, as the embedded index compares its stored column).
std::string Raw(int j) { return absl::StrCat("r", j); }

std::string InList(const google::protobuf::RepeatedPtrField<std::string>& v) {
  std::vector<std::string> quoted;
  for (const std::string& s : v) quoted.push_back(QuoteSql(s));
  return absl::StrCat("(", absl::StrJoin(quoted, ", "), ")");
}

// The SQL pieces of one plan.
struct PlanSql {
  std::vector<int> group_dims;  // dataset dimension indices, group_by order
  std::string matched;          // SELECT of the matched sessions, with ck
  std::vector<privacy::MeasureDomain> domains;  // per dataset measure
};

absl::StatusOr<PlanSql> BuildMatched(const QueryPlan& plan,
                                     const std::string& table,
                                     uint64_t max_version) {
  const DatasetSpec& ds = *plan.dataset;
  const cohortd::v1::AggregateRequest& req = plan.canonical;
  auto dim_index = [&](const std::string& name) -> absl::StatusOr<int> {
    for (size_t i = 0; i < ds.dimensions.size(); ++i) {
      if (ds.dimensions[i].name == name) return static_cast<int>(i);
    }
    return absl::InternalError(absl::StrCat("unplanned dimension ", name));
  };
  auto measure_index = [&](const std::string& name) -> absl::StatusOr<int> {
    for (size_t j = 0; j < ds.measures.size(); ++j) {
      if (ds.measures[j].name == name) return static_cast<int>(j);
    }
    return absl::InternalError(absl::StrCat("unplanned measure ", name));
  };
  PlanSql out;
  for (const MeasureSpec& m : ds.measures) {
    ASSIGN_OR_RETURN(
        privacy::MeasureDomain d,
        privacy::MeasureDomain::Create(m.lower, m.upper, m.granularity));
    out.domains.push_back(d);
  }
  std::vector<bool> dims(ds.dimensions.size(), false);
  std::vector<bool> measures(ds.measures.size(), false);
  for (const std::string& g : req.group_by()) {
    ASSIGN_OR_RETURN(int i, dim_index(g));
    out.group_dims.push_back(i);
    dims[i] = true;
  }
  std::vector<std::string> where;
  for (const auto& f : req.filters()) {
    ASSIGN_OR_RETURN(int i, dim_index(f.dimension()));
    dims[i] = true;
    where.push_back(absl::StrCat(Dim(i), " IN ", InList(f.any_of())));
  }
  for (int i : out.group_dims) where.push_back(absl::StrCat(Dim(i), " != ''"));
  for (const Metric& m : req.metrics()) {
    if (!m.measure().empty()) {
      ASSIGN_OR_RETURN(int j, measure_index(m.measure()));
      measures[j] = true;
    }
    if (m.kind() == Metric::RATE) {
      ASSIGN_OR_RETURN(int i, dim_index(m.rate_of().dimension()));
      dims[i] = true;
    }
  }
  for (const QueryPlan::ContributorGate& g : plan.gates) {
    if (!g.measure.empty()) {
      ASSIGN_OR_RETURN(int j, measure_index(g.measure));
      measures[j] = true;
    } else {
      ASSIGN_OR_RETURN(int i, dim_index(g.label));
      dims[i] = true;
    }
  }
  // Adjusted metrics' controls: a dimension, or a band of a measure.
  for (int m = 0; m < req.metrics_size(); ++m) {
    for (const QueryPlan::Control& control : plan.ControlsOf(m)) {
      if (control.band != nullptr) {
        ASSIGN_OR_RETURN(int j, measure_index(control.band->measure));
        measures[j] = true;
      } else {
        ASSIGN_OR_RETURN(int i, dim_index(control.name));
        dims[i] = true;
      }
    }
  }
  // Measure filters (before contribution bounding, as in the executor):
  // the session carries the measure and its stored fixed-point value is
  // within the planned range.
  for (const QueryPlan::MeasureRange& range : plan.measure_ranges) {
    ASSIGN_OR_RETURN(int j, measure_index(range.measure));
    measures[j] = true;
    where.push_back(absl::StrCat(Has(j), " = 1 AND ", Raw(j), " >= toInt64(",
                                 range.lower_fp, ") AND ", Raw(j),
                                 " <= toInt64(", range.upper_fp, ")"));
  }

  // Rows -> sessions (assembly) in one GROUP BY: per session and name the
  // row of the highest version (argMaxIf), its label or value kept only
  // when that row is present; a session lives while its header's (name
  // "") latest row is present. One hash table of sessions, not one of
  // (session, name) pairs regrouped per session: at 10M sessions this
  // halves the rows hashed and skips a 50M-group aggregation.
  std::vector<std::string> names = {"''"};
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] && !ds.dimensions[i].derived) {
      names.push_back(QuoteSql(ds.dimensions[i].name));
    }
  }
  for (size_t j = 0; j < measures.size(); ++j) {
    if (measures[j]) names.push_back(QuoteSql(ds.measures[j].name));
  }
  auto latest = [](const std::string& column, const std::string& name) {
    return absl::StrCat("argMaxIf(", column, ", version, name = ", name, ")");
  };
  std::vector<std::string> cols = {
      "account_hi", "account_lo", "any(session_fp) AS sfp", "any(start) AS st"};
  std::vector<std::string> unpack = {"account_hi", "account_lo", "sfp", "st"};
  for (size_t i = 0; i < dims.size(); ++i) {
    if (!dims[i] || ds.dimensions[i].derived) continue;
    const std::string name = QuoteSql(ds.dimensions[i].name);
    cols.push_back(absl::StrCat(latest("label", name), " AS l", i));
    cols.push_back(absl::StrCat(latest("present", name), " AS p", i));
    unpack.push_back(absl::StrCat("if(p", i, " = 1, l", i, ", '') AS ",
                                  Dim(static_cast<int>(i))));
  }
  for (size_t j = 0; j < measures.size(); ++j) {
    if (!measures[j]) continue;
    const std::string name = QuoteSql(ds.measures[j].name);
    cols.push_back(absl::StrCat(latest("present", name), " AS hp", j));
    cols.push_back(absl::StrCat(latest("value_bits", name), " AS vbits", j));
    unpack.push_back(
        absl::StrCat("toUInt8(hp", j, " = 1) AS ", Has(static_cast<int>(j))));
    unpack.push_back(
        absl::StrCat("if(hp", j, " = 1, vbits", j, ", toUInt64(0)) AS vb", j));
  }
  const std::string sessions = absl::StrCat(
      "SELECT ", absl::StrJoin(unpack, ", "), " FROM (SELECT ",
      absl::StrJoin(cols, ", "), " FROM ", table,
      " WHERE dataset = ", QuoteSql(ds.name),
      max_version == 0 ? std::string()
                       : absl::StrCat(" AND version <= ", max_version),
      " AND name IN (", absl::StrJoin(names, ", "),
      ") GROUP BY account_hi, account_lo, session HAVING ",
      latest("present", "''"), " = 1)");
  // Sessions -> matched: derived dimensions, fixed point, filters, cohort.
  std::vector<std::string> derived = {"*"};
  for (size_t i = 0; i < dims.size(); ++i) {
    if (!dims[i] || !ds.dimensions[i].derived) continue;
    derived.push_back(
        absl::StrCat(MonthOf("st"), " AS ", Dim(static_cast<int>(i))));
  }
  for (size_t j = 0; j < measures.size(); ++j) {
    if (!measures[j]) continue;
    const MeasureSpec& spec = ds.measures[j];
    const privacy::MeasureDomain& d = out.domains[j];
    // MeasureColumn::Encode: llround(clamp(x, lower, upper) / g); then the
    // executor's clamp to the domain's grid. llround(y) = sign(y) *
    // (floor(|y|) + (frac(|y|) >= 0.5)), where frac is exact in doubles.
    const std::string y = absl::StrCat(
        "(least(greatest(reinterpretAsFloat64(reinterpretAsString(vb", j,
        ")), ", F64(spec.lower), "), ", F64(spec.upper), ") / ",
        F64(spec.granularity), ")");
    auto round_up = [](const std::string& z) {
      return absl::StrCat("(floor(", z, ") + ((", z, " - floor(", z,
                          ")) >= 0.5))");
    };
    const std::string neg = absl::StrCat("(-", y, ")");
    derived.push_back(absl::StrCat("toInt64(if(", y, " >= 0, ", round_up(y),
                                   ", -", round_up(neg), ")) AS ",
                                   Raw(static_cast<int>(j))));
    derived.push_back(absl::StrCat(
        "least(greatest(", Raw(static_cast<int>(j)), ", toInt64(", d.lower_fp,
        ")), toInt64(", d.upper_fp, ")) AS ", Fixed(static_cast<int>(j))));
  }
  std::vector<std::string> key_parts;
  for (int i : out.group_dims) {
    key_parts.push_back(Dim(i));
    key_parts.push_back("'\\0'");
  }
  derived.push_back(
      key_parts.empty()
          ? "'' AS ck"
          : absl::StrCat("concat(", absl::StrJoin(key_parts, ", "), ") AS ck"));
  out.matched = absl::StrCat("SELECT ", absl::StrJoin(derived, ", "), " FROM (",
                             sessions, ")");
  if (!where.empty()) {
    absl::StrAppend(&out.matched, " WHERE ", absl::StrJoin(where, " AND "));
  }
  return out;
}

// A superset of the value tuples (group_by order) the matched sessions of
// `p` can have: per group dimension its labels some row holds present (a
// session's value is the label of its latest present row) or, for the
// derived month, the months of the session starts (the same expression
// as the assembly's), then their product. When that product exceeds
// `max_product`: the distinct tuples of the assembled sessions.
absl::StatusOr<std::vector<std::vector<std::string>>> CandidateCohorts(
    const QueryPlan& plan, const PlanSql& p, const std::string& table,
    size_t max_product,
    const std::function<absl::StatusOr<std::string>(const std::string&)>& run) {
  const DatasetSpec& ds = *plan.dataset;
  const std::string dataset = QuoteSql(ds.name);
  std::vector<std::vector<std::string>> values(p.group_dims.size());
  std::vector<std::string> stored;
  bool month = false;
  for (int i : p.group_dims) {
    if (ds.dimensions[i].derived) {
      month = true;
    } else {
      stored.push_back(QuoteSql(ds.dimensions[i].name));
    }
  }
  if (!stored.empty()) {
    ASSIGN_OR_RETURN(
        std::string tsv,
        run(absl::StrCat(
            "SELECT DISTINCT name, label FROM ", table,
            " WHERE dataset = ", dataset, " AND present = 1 AND name IN (",
            absl::StrJoin(stored, ", "), ") FORMAT TabSeparated")));
    for (const std::vector<std::string>& row : ParseTsv(tsv)) {
      if (row.size() != 2) {
        return absl::InternalError("clickhouse: malformed label row");
      }
      for (size_t k = 0; k < p.group_dims.size(); ++k) {
        const DimensionSpec& d = ds.dimensions[p.group_dims[k]];
        if (!d.derived && d.name == row[0]) values[k].push_back(row[1]);
      }
    }
  }
  if (month) {
    ASSIGN_OR_RETURN(
        std::string tsv,
        run(absl::StrCat("SELECT DISTINCT ", MonthOf("start"), " FROM ", table,
                         " WHERE dataset = ", dataset,
                         " AND name = '' FORMAT TabSeparated")));
    for (const std::vector<std::string>& row : ParseTsv(tsv)) {
      if (row.size() != 1) {
        return absl::InternalError("clickhouse: malformed month row");
      }
      for (size_t k = 0; k < p.group_dims.size(); ++k) {
        if (ds.dimensions[p.group_dims[k]].derived) {
          values[k].push_back(row[0]);
        }
      }
    }
  }
  size_t product = 1;
  for (const std::vector<std::string>& v : values) {
    if (v.empty()) return std::vector<std::vector<std::string>>();
    product =
        v.size() > max_product / product ? max_product + 1 : product * v.size();
  }
  std::vector<std::vector<std::string>> out;
  if (product > max_product) {
    std::vector<std::string> group_cols;
    for (int i : p.group_dims) group_cols.push_back(Dim(i));
    ASSIGN_OR_RETURN(
        std::string tsv,
        run(absl::StrCat("SELECT DISTINCT ", absl::StrJoin(group_cols, ", "),
                         " FROM (", p.matched, ") FORMAT TabSeparated")));
    for (std::vector<std::string>& row : ParseTsv(tsv)) {
      if (row.size() != group_cols.size()) {
        return absl::InternalError("clickhouse: malformed cohort row");
      }
      out.push_back(std::move(row));
    }
    return out;
  }
  out.emplace_back();
  for (const std::vector<std::string>& v : values) {
    std::vector<std::vector<std::string>> next;
    for (const std::vector<std::string>& prefix : out) {
      for (const std::string& value : v) {
        next.push_back(prefix);
        next.back().push_back(value);
      }
    }
    out = std::move(next);
  }
  return out;
}

absl::StatusOr<int64_t> ToInt64(const std::string& s) {
  int64_t v;
  if (!absl::SimpleAtoi(s, &v)) {
    return absl::InternalError(
        absl::StrCat("clickhouse: bad integer '", s, "'"));
  }
  return v;
}

// "[1,2,3]" -> {1, 2, 3}.
absl::StatusOr<std::vector<int64_t>> ToArray(const std::string& s) {
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') {
    return absl::InternalError(absl::StrCat("clickhouse: bad array '", s, "'"));
  }
  std::vector<int64_t> out;
  const std::string inner = s.substr(1, s.size() - 2);
  if (inner.empty()) return out;
  for (absl::string_view part : absl::StrSplit(inner, ',')) {
    ASSIGN_OR_RETURN(int64_t v, ToInt64(std::string(part)));
    out.push_back(v);
  }
  return out;
}

// The request features this backend cannot compute exactly as the
// embedded one does: refused, never answered differently. Errors:
// FailedPrecondition naming the feature and the storage engine.
absl::Status CheckPushDown(const QueryPlan& plan) {
  const cohortd::v1::AggregateRequest& req = plan.canonical;
  if (req.interval() != cohortd::v1::NOISE_AND_SAMPLING) {
    return absl::OkStatus();
  }
  for (int i = 0; i < req.metrics_size(); ++i) {
    // Its per-account totals are sums of ln values, which ClickHouse
    // would compute with its own ln (not bit-identical to cohortd's).
    if (req.metrics(i).kind() == Metric::GEOMETRIC_MEAN) {
      return absl::FailedPreconditionError(absl::StrCat(
          "metric '", req.metrics(i).name(),
          "': GEOMETRIC_MEAN with interval NOISE_AND_SAMPLING is not "
          "supported with storage.engine: clickhouse (its per-account log "
          "sums cannot be computed there exactly as the embedded index "
          "does); ask for interval NOISE or use storage.engine: rocksdb"));
    }
  }
  return absl::OkStatus();
}

// A kept session's column as SQL: the column's name, or its element of
// the session tuple `t` inside an array function's lambda.
using ColumnOf = std::function<std::string(const std::string&)>;

// An adjusted metric's control as SQL over the kept sessions' columns
// (each read through `col`): the level (index into control.levels), or -1 when
// the session has none (executor.cc ControlLevels::LevelOf). A dimension's
// value maps to its position among the public levels; a band counts the edges
// at or below the clamped fixed-point value.
absl::StatusOr<std::string> ControlLevelSql(const DatasetSpec& ds,
                                            const QueryPlan::Control& control,
                                            const ColumnOf& col) {
  if (control.band != nullptr) {
    const MeasureSpec* m = ds.FindMeasure(control.band->measure);
    int j = -1;
    for (size_t k = 0; k < ds.measures.size(); ++k) {
      if (ds.measures[k].name == control.band->measure) j = static_cast<int>(k);
    }
    if (m == nullptr || j < 0) {
      return absl::InternalError("unplanned band measure");
    }
    // Written out edge by edge: 18.16 does not resolve a column captured
    // by a lambda inside an aggregate function's arguments.
    std::vector<std::string> terms;
    for (double e : control.band->edges) {
      terms.push_back(absl::StrCat("toInt64(", col(Fixed(j)), " >= toInt64(",
                                   std::llround(e / m->granularity), "))"));
    }
    return absl::StrCat(
        "if(", col(Has(j)), " = 1, (",
        terms.empty() ? "toInt64(0)" : absl::StrJoin(terms, " + "),
        "), toInt64(-1))");
  }
  int i = -1;
  for (size_t k = 0; k < ds.dimensions.size(); ++k) {
    if (ds.dimensions[k].name == control.name) i = static_cast<int>(k);
  }
  if (i < 0) return absl::InternalError("unplanned control");
  std::vector<std::string> from, to;
  for (size_t l = 0; l < control.levels.size(); ++l) {
    from.push_back(QuoteSql(control.levels[l]));
    to.push_back(absl::StrCat("toInt64(", l, ")"));
  }
  return absl::StrCat("transform(", col(Dim(i)), ", [",
                      absl::StrJoin(from, ", "), "], [",
                      absl::StrJoin(to, ", "), "], toInt64(-1))");
}

// The cells of an adjusted metric travel as sumMaps keyed by the
// session's levels packed in mixed radix (level_d times the product of the
// earlier controls' level counts); a session without a level of every
// control gets this key, dropped when reading.
constexpr uint64_t kNoCell = uint64_t{1} << 62;

struct ControlsSql {
  std::string all_levels;  // UInt8: the session has a level of every control
  std::string cell;        // UInt64: its packed levels, or kNoCell
  std::vector<int64_t> radix;
  std::vector<int64_t> counts;  // levels per control
};

absl::StatusOr<ControlsSql> BuildControlsSql(
    const DatasetSpec& ds, const std::vector<QueryPlan::Control>& controls,
    const ColumnOf& col) {
  ControlsSql out;
  std::vector<std::string> ok, terms;
  int64_t radix = 1;
  for (const QueryPlan::Control& control : controls) {
    ASSIGN_OR_RETURN(std::string level, ControlLevelSql(ds, control, col));
    ok.push_back(absl::StrCat("(", level, ") >= 0"));
    terms.push_back(
        absl::StrCat("toUInt64(", level, ") * toUInt64(", radix, ")"));
    out.radix.push_back(radix);
    out.counts.push_back(static_cast<int64_t>(control.levels.size()));
    radix *= std::max<int64_t>(1, static_cast<int64_t>(control.levels.size()));
    if (radix > (int64_t{1} << 40)) {
      return absl::InternalError("too many control level combinations");
    }
  }
  out.all_levels = ok.empty()
                       ? "toUInt8(1)"
                       : absl::StrCat("(", absl::StrJoin(ok, " AND "), ")");
  out.cell =
      absl::StrCat("if(", out.all_levels, ", ",
                   terms.empty() ? "toUInt64(0)" : absl::StrJoin(terms, " + "),
                   ", toUInt64(", kNoCell, "))");
  return out;
}

// The dataset's index of dimension / measure `name`, or -1.
int DimensionIndex(const DatasetSpec& ds, const std::string& name) {
  for (size_t i = 0; i < ds.dimensions.size(); ++i) {
    if (ds.dimensions[i].name == name) return static_cast<int>(i);
  }
  return -1;
}
int MeasureIndex(const DatasetSpec& ds, const std::string& name) {
  for (size_t j = 0; j < ds.measures.size(); ++j) {
    if (ds.measures[j].name == name) return static_cast<int>(j);
  }
  return -1;
}

// Adjusted metric `i`'s regression cells over the kept sessions, as
// SQL over one session's columns (read through `col`): the cell key (the
// packed levels, or kNoCell) and the three values summed per key (rows,
// and y split as the sums are, y = hi * kSumSplit + lo). y is the
// executor's centred value: 2v - lo - hi in fixed point (MEAN), +1 / -1
// for a (non-)matching labelled session (RATE).
struct AdjustedSql {
  std::string key;
  std::vector<std::string> values;  // rows, y hi, y lo
};

absl::StatusOr<AdjustedSql> AdjustedCellsSql(
    const QueryPlan& plan, int i,
    const std::vector<privacy::MeasureDomain>& domains, const ColumnOf& col) {
  const DatasetSpec& ds = *plan.dataset;
  const Metric& m = plan.canonical.metrics(i);
  std::string present, y;
  if (m.kind() == Metric::RATE) {
    const int d = DimensionIndex(ds, m.rate_of().dimension());
    if (d < 0) return absl::InternalError("unplanned rate dimension");
    present = absl::StrCat(col(Dim(d)), " != ''");
    y = absl::StrCat("if(", col(Dim(d)), " IN ", InList(m.rate_of().any_of()),
                     ", toInt64(1), toInt64(-1))");
  } else if (m.kind() == Metric::MEAN) {
    const int j = MeasureIndex(ds, m.measure());
    if (j < 0) return absl::InternalError("unplanned measure");
    present = absl::StrCat(col(Has(j)), " = 1");
    y = absl::StrCat("(toInt64(2) * ", col(Fixed(j)), " - toInt64(",
                     domains[j].lower_fp + domains[j].upper_fp, "))");
  } else {
    return absl::InternalError("adjusted metric of another kind");
  }
  ASSIGN_OR_RETURN(ControlsSql controls,
                   BuildControlsSql(ds, plan.ControlsOf(i), col));
  AdjustedSql out;
  out.key = absl::StrCat("if(", present, ", ", controls.cell, ", toUInt64(",
                         kNoCell, "))");
  out.values = {"toUInt64(1)",
                absl::StrCat("intDiv(", y, ", toInt64(", kSumSplit, "))"),
                absl::StrCat("(", y, ") % toInt64(", kSumSplit, ")")};
  return out;
}

// Decodes AdjustedCellsSql's six columns into cells ascending by levels.
absl::StatusOr<std::vector<AdjustedCell>> ParseAdjustedCells(
    const std::vector<std::vector<int64_t>>& columns,
    const std::vector<QueryPlan::Control>& controls) {
  std::map<int64_t, AdjustedCell> by_key;
  for (int part = 0; part < 3; ++part) {
    const std::vector<int64_t>& keys = columns[2 * part];
    const std::vector<int64_t>& values = columns[2 * part + 1];
    if (keys.size() != values.size()) {
      return absl::InternalError("clickhouse: bad adjusted cells");
    }
    for (size_t k = 0; k < keys.size(); ++k) {
      if (keys[k] == static_cast<int64_t>(kNoCell)) continue;
      AdjustedCell& cell = by_key[keys[k]];
      if (part == 0) cell.rows += values[k];
      if (part == 1) cell.sum_y += static_cast<__int128>(values[k]) * kSumSplit;
      if (part == 2) cell.sum_y += values[k];
    }
  }
  std::vector<AdjustedCell> cells;
  for (auto& [key, cell] : by_key) {
    if (cell.rows <= 0) continue;
    int64_t rest = key;
    for (const QueryPlan::Control& control : controls) {
      const int64_t n =
          std::max<int64_t>(1, static_cast<int64_t>(control.levels.size()));
      cell.levels.push_back(static_cast<int32_t>(rest % n));
      rest /= n;
    }
    cells.push_back(std::move(cell));
  }
  std::sort(cells.begin(), cells.end(),
            [](const AdjustedCell& a, const AdjustedCell& b) {
              return a.levels < b.levels;
            });
  return cells;
}

// "[(1,2),(3,4)]" -> {{1, 2}, {3, 4}}: per-account totals (y, n).
absl::StatusOr<std::vector<privacy::AccountTotal>> ToTotals(
    const std::string& s) {
  std::string flat = s;
  for (char& c : flat) {
    if (c == '[' || c == ']' || c == '(' || c == ')') c = ' ';
  }
  std::vector<privacy::AccountTotal> out;
  std::vector<int64_t> values;
  for (absl::string_view part :
       absl::StrSplit(flat, ',', absl::SkipWhitespace())) {
    ASSIGN_OR_RETURN(int64_t v,
                     ToInt64(std::string(absl::StripAsciiWhitespace(part))));
    values.push_back(v);
  }
  if (values.size() % 2 != 0) {
    return absl::InternalError(
        absl::StrCat("clickhouse: bad totals '", s, "'"));
  }
  for (size_t k = 0; k < values.size(); k += 2) {
    out.push_back({values[k], values[k + 1]});
  }
  return out;
}

// NOISE_AND_SAMPLING: per cohort, each account's kept totals (y, n) of
// every metric the executor records them for (executor.cc
// MetricSlot::RecordAccount), from the kept sessions `kept`: one GROUP BY
// per (account, cohort), then the accounts' pairs with n > 0 per cohort.
// Returns the SELECT, whose rows are ck then one array per metric.
std::string AccountTotalsSql(const QueryPlan& plan, const std::string& kept,
                             const std::string& settings) {
  const DatasetSpec& ds = *plan.dataset;
  const cohortd::v1::AggregateRequest& req = plan.canonical;
  std::vector<std::string> per_account = {"ck"};
  std::vector<std::string> per_cohort = {"ck"};
  for (int i = 0; i < req.metrics_size(); ++i) {
    const Metric& m = req.metrics(i);
    const int j = m.measure().empty() ? -1 : MeasureIndex(ds, m.measure());
    std::string y, n;
    switch (m.kind()) {
      case Metric::SESSIONS:
        y = "toInt64(count())";
        n = "toInt64(count())";
        break;
      case Metric::SUM:
      case Metric::MEAN:
        y = absl::StrCat("sumIf(", Fixed(j), ", ", Has(j), " = 1)");
        n = absl::StrCat("toInt64(countIf(", Has(j), " = 1))");
        break;
      case Metric::RATE: {
        const std::string d = Dim(DimensionIndex(ds, m.rate_of().dimension()));
        y = absl::StrCat("toInt64(countIf(", d, " IN ",
                         InList(m.rate_of().any_of()), "))");
        n = absl::StrCat("toInt64(countIf(", d, " != ''))");
        break;
      }
      default:
        y = "toInt64(0)";
        n = "toInt64(0)";
        break;
    }
    per_account.push_back(absl::StrCat(y, " AS ty", i));
    per_account.push_back(absl::StrCat(n, " AS tn", i));
    per_cohort.push_back(
        absl::StrCat("arrayFilter(t -> tupleElement(t, 2) > 0, groupArray((ty",
                     i, ", tn", i, ")))"));
  }
  return absl::StrCat("SELECT ", absl::StrJoin(per_cohort, ", "),
                      " FROM (SELECT ", absl::StrJoin(per_account, ", "),
                      " FROM (", kept,
                      ") GROUP BY account_hi, account_lo, ck) GROUP BY ck",
                      settings, " FORMAT TabSeparated");
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClickHouseBackend>> ClickHouseBackend::Create(
    const ClickHouseOptions& options, MetricsRegistry* metrics) {
  for (char c : options.cluster) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) {
      return absl::InvalidArgumentError(
          absl::StrCat("storage.clickhouse.cluster: '", options.cluster,
                       "' must be letters, digits and underscores"));
    }
  }
  ClickHouseEndpoint endpoint = options.endpoint;
  if (!options.cluster.empty()) {
    // An insert into the Distributed table returns once the shard holds
    // the rows (not when the initiator queued them on its own disk), so
    // the outbox truncates only what the shard confirmed.
    if (!endpoint.settings.empty()) endpoint.settings += "&";
    endpoint.settings += "insert_distributed_sync=1";
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ClickHouseClient> client,
                   ClickHouseClient::Create(endpoint));
  const std::string db = absl::StrCat("`", options.database, "`");
  for (char c : options.database) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) {
      return absl::InvalidArgumentError(
          absl::StrCat("storage.clickhouse.database: '", options.database,
                       "' must be letters, digits and underscores"));
    }
  }
  RETURN_IF_ERROR(
      client->Execute(absl::StrCat("CREATE DATABASE IF NOT EXISTS ", db))
          .status());
  const std::string table = absl::StrCat(db, ".observations");
  const std::string columns =
      " (dataset String, month UInt32, account_hi UInt64, "
      "account_lo UInt64, session String, session_fp UInt64, "
      "start Int64, name String, present UInt8, label String, "
      "value_bits UInt64, version UInt64) ";
  // On a cluster the rows live in observations_local on each shard; the
  // Distributed table `observations` routes every account to one shard by
  // a hash of its pseudonymous key (a function of the account only, so
  // every row of an account, whichever node inserts it, goes to the same
  // shard; hashed, so shards fill evenly whatever the pseudonyms look like).
  RETURN_IF_ERROR(
      client
          ->Execute(absl::StrCat(
              "CREATE TABLE IF NOT EXISTS ",
              options.cluster.empty() ? table
                                      : absl::StrCat(db, ".observations_local"),
              columns,
              "ENGINE = ReplacingMergeTree(version) PARTITION BY month "
              "ORDER BY (dataset, account_hi, account_lo, session, name, "
              "version)"))
          .status());
  if (!options.cluster.empty()) {
    RETURN_IF_ERROR(
        client
            ->Execute(absl::StrCat("CREATE TABLE IF NOT EXISTS ", table,
                                   columns, "ENGINE = Distributed(",
                                   options.cluster, ", '", options.database,
                                   "', 'observations_local', "
                                   "cityHash64(account_hi, account_lo))"))
            .status());
    // A node that ran without a cluster has a plain `observations`; using
    // it as if it were distributed would read one shard only.
    ASSIGN_OR_RETURN(
        std::string engine,
        client->Execute(absl::StrCat(
            "SELECT engine FROM system.tables WHERE database = ",
            QuoteSql(options.database), " AND name = 'observations'")));
    if (absl::StripAsciiWhitespace(engine) != "Distributed") {
      return absl::FailedPreconditionError(
          absl::StrCat("storage.clickhouse.cluster is '", options.cluster,
                       "' but ", options.database, ".observations is a ",
                       absl::StripAsciiWhitespace(engine),
                       " table, not Distributed (created without a cluster)"));
    }
  }
  std::unique_ptr<ClickHouseBackend> backend(new ClickHouseBackend(
      std::move(client), table, options.retry_every, metrics));
  backend->max_outbox_bytes_ = options.max_outbox_bytes;
  if (!options.cluster.empty()) {
    backend->statistics_settings_ =
        " SETTINGS distributed_group_by_no_merge = 1";
  }
  backend->max_candidate_cohorts_ = options.max_candidate_cohorts;
  backend->ack_wait_ = options.ack_wait;
  if (!options.outbox_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.outbox_dir, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat(
          "clickhouse outbox ", options.outbox_dir, ": ", ec.message()));
    }
    // Batches a previous run wrote but ClickHouse never confirmed, in
    // version order; a .tmp file was never acknowledged (its rename, which
    // precedes the acknowledgement, did not happen).
    std::vector<std::pair<uint64_t, std::string>> found;
    for (const auto& entry :
         std::filesystem::directory_iterator(options.outbox_dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (absl::EndsWith(name, ".tmp")) {
        std::filesystem::remove(entry.path(), ec);
        continue;
      }
      if (name == kSealsFile) {
        RETURN_IF_ERROR(backend->LoadSeals(entry.path().string()));
        continue;
      }
      uint64_t version;
      if (!absl::EndsWith(name, ".tsv") ||
          !absl::SimpleAtoi(name.substr(0, name.size() - 4), &version)) {
        return absl::DataLossError(absl::StrCat(
            "clickhouse outbox: unexpected file ", entry.path().string()));
      }
      std::ifstream in(entry.path());
      std::string rows((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
      if (!in.good() && !in.eof()) {
        return absl::DataLossError(
            absl::StrCat("clickhouse outbox: cannot read ", name));
      }
      found.emplace_back(version, std::move(rows));
    }
    if (ec) {
      return absl::InternalError(absl::StrCat(
          "clickhouse outbox ", options.outbox_dir, ": ", ec.message()));
    }
    std::sort(found.begin(), found.end());
    backend->outbox_dir_ = options.outbox_dir;
    absl::MutexLock lock(&backend->mu_);
    for (auto& batch : found) {
      backend->outbox_bytes_ += static_cast<int64_t>(batch.second.size());
      backend->last_version_ =
          std::max<uint64_t>(backend->last_version_, batch.first);
      backend->outbox_.push_back(std::move(batch));
    }
    if (!backend->outbox_.empty()) {
      backend->wake_ = true;
      LogInfo("clickhouse", "outbox: %d batch(es) from the last run to ship",
              static_cast<int>(backend->outbox_.size()));
    }
  }
  {
    absl::MutexLock lock(&backend->seal_mu_);
    backend->initial_version_ = backend->NextVersion();
  }
  // Every operator series exists from the start (at zero), so an alert or
  // a panel on it has a value before the first error or refusal.
  if (metrics != nullptr) {
    absl::MutexLock lock(&backend->mu_);
    backend->PublishOutbox();
    metrics->GetCounter(kErrors, kErrorsHelp, {});
    metrics->GetCounter(kRefusals, kRefusalsHelp, {});
  }
  return backend;
}

ClickHouseBackend::ClickHouseBackend(std::unique_ptr<ClickHouseClient> client,
                                     std::string table,
                                     absl::Duration retry_every,
                                     MetricsRegistry* metrics)
    : client_(std::move(client)),
      table_(std::move(table)),
      retry_every_(retry_every),
      metrics_(metrics) {
  retry_ = std::thread([this] { RetryLoop(); });
}

ClickHouseBackend::~ClickHouseBackend() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  retry_.join();
}

void ClickHouseBackend::PublishOutbox() {
  if (metrics_ == nullptr) return;
  metrics_
      ->GetGauge("cohortd_clickhouse_outbox_batches",
                 "Committed batches not yet confirmed by ClickHouse.", {})
      ->Set(static_cast<double>(outbox_.size()));
  metrics_
      ->GetGauge("cohortd_clickhouse_outbox_bytes",
                 "Bytes of the batches not yet confirmed by ClickHouse "
                 "(storage.clickhouse.max_outbox_bytes bounds them).",
                 {})
      ->Set(static_cast<double>(outbox_bytes_));
}

void ClickHouseBackend::CountError() const {
  if (metrics_ == nullptr) return;
  metrics_->GetCounter(kErrors, kErrorsHelp, {})->Increment();
}

size_t ClickHouseBackend::outbox_batches() const {
  absl::MutexLock lock(&mu_);
  return outbox_.size();
}

bool ClickHouseBackend::insert_failing() const {
  absl::MutexLock lock(&mu_);
  return insert_failing_;
}

int64_t ClickHouseBackend::outbox_bytes() const {
  absl::MutexLock lock(&mu_);
  return outbox_bytes_;
}

absl::Status ClickHouseBackend::Admit() const {
  absl::Status status = CheckOutbox();
  if (!status.ok() && metrics_ != nullptr) {
    metrics_->GetCounter(kRefusals, kRefusalsHelp, {})->Increment();
  }
  return status;
}

absl::Status ClickHouseBackend::CheckOutbox() const {
  if (max_outbox_bytes_ <= 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  if (outbox_bytes_ < max_outbox_bytes_) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      "the ClickHouse outbox is full (", outbox_bytes_, " bytes in ",
      outbox_.size(),
      " unconfirmed batch(es), storage.clickhouse.max_outbox_bytes = ",
      max_outbox_bytes_,
      ") and ClickHouse is unreachable; retry when it is back"));
}

std::string ClickHouseBackend::BatchPath(uint64_t version) const {
  return absl::StrFormat("%s/%020u.tsv", outbox_dir_, version);
}

absl::Status ClickHouseBackend::Enqueue(uint64_t version, std::string rows) {
  if (!outbox_dir_.empty()) {
    const std::string path = BatchPath(version);
    const std::string tmp = path + ".tmp";
    const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return absl::InternalError(absl::StrCat("open ", tmp));
    size_t done = 0;
    while (done < rows.size()) {
      const ssize_t n = write(fd, rows.data() + done, rows.size() - done);
      if (n <= 0) {
        close(fd);
        return absl::InternalError(absl::StrCat("write ", tmp));
      }
      done += static_cast<size_t>(n);
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
      return absl::InternalError(absl::StrCat("fsync ", tmp));
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("rename ", tmp));
    }
    if (!SyncDirectory(outbox_dir_).ok()) {
      return absl::InternalError(absl::StrCat("fsync ", outbox_dir_));
    }
  }
  absl::MutexLock lock(&mu_);
  outbox_bytes_ += static_cast<int64_t>(rows.size());
  outbox_.emplace_back(version, std::move(rows));
  PublishOutbox();
  return absl::OkStatus();
}

absl::Status ClickHouseBackend::Drain() {
  absl::MutexLock drain(&ship_mu_);
  const std::string insert =
      absl::StrCat("INSERT INTO ", table_, " FORMAT TabSeparated");
  while (true) {
    // The oldest batches, up to kMaxInsertBytes, in one insert: a backlog
    // after an outage drains in a few large inserts rather than one per
    // push. Only this thread pops, so they stay at the front meanwhile.
    std::vector<uint64_t> versions;
    std::string rows;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [version, batch] : outbox_) {
        if (!versions.empty() && rows.size() + batch.size() > kMaxInsertBytes) {
          break;
        }
        versions.push_back(version);
        rows += batch;
      }
    }
    if (versions.empty()) return absl::OkStatus();
    absl::Status status = client_->Insert(insert, rows);
    if (!status.ok()) {
      CountError();
      absl::MutexLock lock(&mu_);
      shipping_healthy_ = false;
      insert_failing_ = true;
      return status;
    }
    // Confirmed: the batches' files go (a crash before this re-sends them
    // at the next start, which is harmless: the same rows).
    if (!outbox_dir_.empty()) {
      for (uint64_t version : versions) unlink(BatchPath(version).c_str());
    }
    absl::MutexLock lock(&mu_);
    insert_failing_ = false;
    for (size_t i = 0; i < versions.size(); ++i) {
      outbox_bytes_ -= static_cast<int64_t>(outbox_.front().second.size());
      outbox_.pop_front();
    }
    PublishOutbox();
    if (outbox_.empty()) shipping_healthy_ = true;
  }
}

void ClickHouseBackend::RetryLoop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    // A new batch wakes the shipper at once while shipping works; after a
    // failure it retries every retry_every_ only.
    mu_.AwaitWithTimeout(absl::Condition(this, &ClickHouseBackend::ShouldShip),
                         retry_every_);
    wake_ = false;
    if (stop_ || outbox_.empty()) continue;
    mu_.Unlock();
    absl::Status status = Drain();
    if (!status.ok()) {
      LogWarning("clickhouse", "outbox: %s", status.ToString());
    }
    mu_.Lock();
  }
}

bool ClickHouseBackend::ShouldShip() const {
  return stop_ || (wake_ && shipping_healthy_);
}

void ClickHouseBackend::ShipAndWait(uint64_t version) {
  absl::MutexLock lock(&mu_);
  wake_ = true;
  if (!shipping_healthy_) return;
  struct Wait {
    const ClickHouseBackend* self;
    uint64_t version;
    static bool Done(Wait* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return !w->self->shipping_healthy_ || w->self->outbox_.empty() ||
             w->self->outbox_.front().first > w->version;
    }
  } wait{this, version};
  if (!mu_.AwaitWithTimeout(absl::Condition(&Wait::Done, &wait), ack_wait_)) {
    // Overdue: ClickHouse hangs or is very slow. The batch is synced in
    // the outbox, so the push is acknowledged now, and later pushes do not
    // wait until shipping works again.
    shipping_healthy_ = false;
    insert_failing_ = true;
    LogWarning("clickhouse",
               "outbox: ClickHouse has not confirmed a batch within %s; "
               "acknowledging from the outbox until it does",
               absl::FormatDuration(ack_wait_));
  }
}

uint64_t ClickHouseBackend::NextVersion() {
  // Wall-clock nanoseconds, strictly increasing in this process, so a later
  // commit of a session always wins argMax, also after a restart.
  const uint64_t now = static_cast<uint64_t>(absl::GetCurrentTimeNanos());
  uint64_t last = last_version_.load();
  uint64_t next;
  do {
    next = std::max(now, last + 1);
  } while (!last_version_.compare_exchange_weak(last, next));
  return next;
}

std::string ClickHouseBackend::RenderCommits(
    const DatasetSpec& dataset, const std::vector<CommittedSession>& sessions,
    uint64_t version) {
  const std::string ds = EscapeTsv(dataset.name);
  std::string rows;
  for (const CommittedSession& s : sessions) {
    const auto [hi, lo] = AccountKeyOf(s.account_pseudonym);
    const std::string prefix = absl::StrCat(
        ds, "\t", MonthNumber(s.session_start_unix_seconds), "\t", hi, "\t", lo,
        "\t", EscapeTsv(s.session_id), "\t", SessionFingerprint(s.session_id),
        "\t", s.session_start_unix_seconds, "\t");
    absl::StrAppend(&rows, prefix, "\t1\t\t0\t", version, "\n");
    for (const auto& [name, value] : s.labels) {
      absl::StrAppend(&rows, prefix, EscapeTsv(name), "\t",
                      value.has_value() ? 1 : 0, "\t",
                      EscapeTsv(value.value_or("")), "\t0\t", version, "\n");
    }
    for (const auto& [name, value] : s.measures) {
      const bool present = value.has_value() && !std::isnan(*value);
      absl::StrAppend(&rows, prefix, EscapeTsv(name), "\t", present ? 1 : 0,
                      "\t\t", present ? Bits(*value) : 0, "\t", version, "\n");
    }
  }
  return rows;
}

std::string ClickHouseBackend::RenderDeletions(
    const DatasetSpec& dataset, const std::vector<DeletedSession>& sessions,
    uint64_t version) {
  std::string rows;
  for (const DeletedSession& s : sessions) {
    const auto [hi, lo] = AccountKeyOf(s.account_pseudonym);
    absl::StrAppend(
        &rows, EscapeTsv(dataset.name), "\t",
        MonthNumber(s.session_start_unix_seconds), "\t", hi, "\t", lo, "\t",
        EscapeTsv(s.session_id), "\t", SessionFingerprint(s.session_id), "\t",
        s.session_start_unix_seconds, "\t\t0\t\t0\t", version, "\n");
  }
  return rows;
}

absl::Status ClickHouseBackend::Ship(
    const DatasetSpec& dataset, const std::vector<CommittedSession>& sessions) {
  if (sessions.empty()) return absl::OkStatus();
  const uint64_t version = NextVersion();
  RETURN_IF_ERROR(client_->Insert(
      absl::StrCat("INSERT INTO ", table_, " FORMAT TabSeparated"),
      RenderCommits(dataset, sessions, version)));
  // Rows shipped before the first seal is observed (a backfill at start)
  // belong to the start snapshot.
  absl::MutexLock lock(&seal_mu_);
  if (!seal_observed_) {
    initial_version_ = std::max(initial_version_, version);
    shipped_before_seal_ = std::max(shipped_before_seal_, version);
  }
  return absl::OkStatus();
}

absl::Status ClickHouseBackend::ShipDeletions(
    const DatasetSpec& dataset, const std::vector<DeletedSession>& sessions) {
  if (sessions.empty()) return absl::OkStatus();
  return client_->Insert(
      absl::StrCat("INSERT INTO ", table_, " FORMAT TabSeparated"),
      RenderDeletions(dataset, sessions, NextVersion()));
}

void ClickHouseBackend::OnResent(
    const DatasetSpec& dataset, const std::vector<CommittedSession>& sessions) {
  // Names the schema has but the stored view lacks are sent absent, so a
  // lost delta that removed one is repaired too.
  std::vector<CommittedSession> full = sessions;
  for (CommittedSession& s : full) {
    auto has = [](const auto& entries, const std::string& name) {
      for (const auto& e : entries) {
        if (e.first == name) return true;
      }
      return false;
    };
    for (const DimensionSpec& d : dataset.dimensions) {
      if (!d.derived && !has(s.labels, d.name)) {
        s.labels.emplace_back(d.name, absl::nullopt);
      }
    }
    for (const MeasureSpec& m : dataset.measures) {
      if (!has(s.measures, m.name))
        s.measures.emplace_back(m.name, absl::nullopt);
    }
  }
  OnCommitted(dataset, full);
}

void ClickHouseBackend::OnCommitted(
    const DatasetSpec& dataset, const std::vector<CommittedSession>& sessions) {
  if (sessions.empty()) return;
  const uint64_t version = NextVersion();
  EnqueueAndShip(dataset, version, RenderCommits(dataset, sessions, version));
}

void ClickHouseBackend::OnDeleted(const DatasetSpec& dataset,
                                  const std::vector<DeletedSession>& sessions) {
  if (sessions.empty()) return;
  const uint64_t version = NextVersion();
  EnqueueAndShip(dataset, version, RenderDeletions(dataset, sessions, version));
}

void ClickHouseBackend::EnqueueAndShip(const DatasetSpec& dataset,
                                       uint64_t version, std::string rows) {
  absl::Status queued = Enqueue(version, std::move(rows));
  if (!queued.ok()) {
    // The change is durable in cohortd's store but not in the outbox: stop
    // rather than let ClickHouse silently miss an acknowledged session.
    LogError("clickhouse", "outbox write failed: %s", queued.ToString());
    std::abort();
  }
  {
    absl::MutexLock lock(&seal_mu_);
    enqueued_[dataset.name] = version;
  }
  ShipAndWait(version);
}

absl::StatusOr<std::string> ClickHouseBackend::Run(
    const std::string& sql) const {
  absl::StatusOr<std::string> out = client_->Execute(sql);
  if (!out.ok()) CountError();
  return out;
}

void ClickHouseBackend::OnBuffered(const DatasetSpec& dataset) {
  absl::MutexLock lock(&seal_mu_);
  auto it = enqueued_.find(dataset.name);
  if (it != enqueued_.end()) buffered_[dataset.name] = it->second;
}

void ClickHouseBackend::OnSealed(const DatasetSpec& dataset,
                                 const std::string& id) {
  absl::MutexLock lock(&seal_mu_);
  auto& seals = sealed_[dataset.name];
  const bool first = !seal_observed_;
  seal_observed_ = true;
  // A snapshot restored after a restart keeps the cut recorded when it
  // was sealed (LoadSeals), not everything written before this start;
  // but what a backfill shipped at this start (Ship before the first
  // seal: the store's sessions, possibly into a table the recorded cuts
  // never saw) belongs to the start snapshot, so its cut is raised to it.
  for (auto& [known, version] : seals) {
    if (known != id) continue;
    if (first && shipped_before_seal_ > version) {
      version = shipped_before_seal_;
      SaveSealsLocked();
    }
    return;
  }
  auto it = buffered_.find(dataset.name);
  const uint64_t version =
      it == buffered_.end() ? initial_version_ : it->second;
  seals.emplace_back(id, version);
  // Queries read the current snapshot or, across a seal, the one before.
  while (seals.size() > 16) seals.pop_front();
  SaveSealsLocked();
}

absl::Status ClickHouseBackend::LoadSeals(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return absl::DataLossError(
        absl::StrCat("clickhouse seals: cannot read ", path));
  }
  absl::MutexLock lock(&seal_mu_);
  int line = 0;
  for (absl::string_view row : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++line;
    std::vector<std::string> fields = absl::StrSplit(row, '\t');
    uint64_t version;
    if (fields.size() != 3 || fields[0].empty() || fields[1].empty() ||
        !absl::SimpleAtoi(fields[2], &version) || version == 0) {
      return absl::DataLossError(
          absl::StrCat("clickhouse seals: ", path, " line ", line,
                       " is not 'dataset<TAB>snapshot id<TAB>version'"));
    }
    sealed_[fields[0]].emplace_back(fields[1], version);
  }
  return absl::OkStatus();
}

void ClickHouseBackend::SaveSealsLocked() {
  if (outbox_dir_.empty()) return;
  std::string text;
  for (const auto& [dataset, seals] : sealed_) {
    for (const auto& [id, version] : seals) {
      absl::StrAppend(&text, dataset, "\t", id, "\t", version, "\n");
    }
  }
  // Replaced atomically (temp file, fsync, rename, folder fsync) before
  // the snapshot index persists the seal, so a restored snapshot always
  // finds its cut here.
  const std::string path = absl::StrCat(outbox_dir_, "/", kSealsFile);
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  bool ok = fd >= 0;
  size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  if (fd >= 0) ok = fsync(fd) == 0 && close(fd) == 0 && ok;
  ok = ok && rename(tmp.c_str(), path.c_str()) == 0;
  ok = ok && SyncDirectory(outbox_dir_).ok();
  if (!ok) {
    LogWarning("clickhouse",
               "could not persist the seal versions to %s: a restart "
               "restoring this snapshot would read every row written "
               "before it",
               path);
  }
}

absl::StatusOr<BoundedStatistics> ClickHouseBackend::ComputeSealed(
    const QueryPlan& plan, absl::string_view bounding_key,
    absl::string_view snapshot_id) const {
  uint64_t version = 0;
  {
    absl::MutexLock lock(&seal_mu_);
    auto it = sealed_.find(plan.dataset->name);
    if (it != sealed_.end()) {
      for (const auto& [id, v] : it->second) {
        if (id == snapshot_id) version = v;
      }
    }
  }
  if (version == 0) {
    return absl::UnavailableError(absl::StrCat(
        "snapshot ", snapshot_id, " of dataset '", plan.dataset->name,
        "' is not known to the ClickHouse backend; retry"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (!outbox_.empty() && outbox_.front().first <= version) {
      return absl::UnavailableError(absl::StrCat(
          "clickhouse has not confirmed the batches of the sealed snapshot "
          "yet (",
          outbox_.size(), " queued); retry when it is back"));
    }
    if (insert_failing_) {
      return absl::UnavailableError(absl::StrCat(
          "clickhouse is not confirming batches (unreachable or hung; ",
          outbox_.size(), " queued); retry when it is back"));
    }
  }
  return ComputeUpTo(plan, bounding_key, version);
}

absl::StatusOr<BoundedStatistics> ClickHouseBackend::Compute(
    const QueryPlan& plan, absl::string_view bounding_key) const {
  if (const size_t queued = outbox_batches(); queued > 0 || insert_failing()) {
    return absl::UnavailableError(
        absl::StrCat("clickhouse has not confirmed ", queued,
                     " committed batch(es) yet; retry when it is back"));
  }
  return ComputeUpTo(plan, bounding_key, 0);
}

absl::StatusOr<BoundedStatistics> ClickHouseBackend::ComputeUpTo(
    const QueryPlan& plan, absl::string_view bounding_key,
    uint64_t max_version) const {
  const privacy::ContributionBounds bounds = {
      plan.max_cohorts_per_account,
      plan.dataset->privacy.max_sessions_per_cohort};
  RETURN_IF_ERROR(privacy::ValidateBounds(bounds));
  RETURN_IF_ERROR(CheckPushDown(plan));
  if (bounding_key.size() != privacy::ContributionBounder::kKeyBytes) {
    return absl::InvalidArgumentError("bounding key must be 16 bytes");
  }
  const absl::Time start = absl::Now();
  const uint64_t k0 = LoadLe64(bounding_key.data());
  const uint64_t k1 = LoadLe64(bounding_key.data() + 8);
  const DatasetSpec& ds = *plan.dataset;
  const cohortd::v1::AggregateRequest& req = plan.canonical;
  ASSIGN_OR_RETURN(PlanSql p, BuildMatched(plan, table_, max_version));
  // GEOMETRIC_MEAN: the releaser's mechanism defines each value's ln in
  // fixed point (memoised; data-independent).
  std::vector<const privacy::GeometricMeanMetric*> geometric(req.metrics_size(),
                                                             nullptr);
  std::optional<privacy::QueryReleaser> releaser;
  for (int i = 0; i < req.metrics_size(); ++i) {
    if (req.metrics(i).kind() != Metric::GEOMETRIC_MEAN) continue;
    if (!releaser.has_value()) {
      ASSIGN_OR_RETURN(releaser, MakeReleaser(plan));
    }
    geometric[i] = releaser->geometric_mean(i);
  }

  // Pass 1: the candidate cohorts' values, for their fingerprints
  // (FNV-1a, which 18.16 cannot compute), mapped in with transform(). A
  // superset is enough (a candidate no session has is never grouped), so
  // it is the product of each group dimension's stored values: the labels
  // some row has present (a session's latest present label is one of
  // them) and, for the derived month, the months of the partitions. That
  // reads two columns, not the assembly; only when the product is large
  // does the exact list come from the assembled sessions instead.
  std::vector<std::string> group_cols;
  for (int i : p.group_dims) group_cols.push_back(Dim(i));
  ASSIGN_OR_RETURN(
      std::vector<std::vector<std::string>> key_rows,
      CandidateCohorts(plan, p, table_, max_candidate_cohorts_,
                       [this](const std::string& sql) { return Run(sql); }));
  BoundedStatistics stats;
  if (key_rows.empty()) return stats;
  std::vector<std::string> from, to;
  absl::flat_hash_set<std::vector<std::string>> candidates;
  for (const std::vector<std::string>& values : key_rows) {
    std::string ck;
    for (const std::string& v : values)
      absl::StrAppend(&ck, v, std::string(1, '\0'));
    from.push_back(QuoteSql(ck));
    to.push_back(absl::StrCat("toUInt64(", CohortFingerprint(values), ")"));
    candidates.insert(values);
  }
  const std::string with_fp = absl::StrCat(
      "SELECT *, transform(ck, [", absl::StrJoin(from, ", "), "], [",
      absl::StrJoin(to, ", "), "], toUInt64(0)) AS cfp FROM (", p.matched, ")");

  // One pass: every matched session gets both priorities (each depends
  // on its own row only): SipHash(cfp, account) for L0 and SipHash(sfp,
  // cfp) for Linf. Sessions are then grouped per (account, cohort) with
  // their priority and the columns the aggregates read; per account the
  // L0 cohorts with the smallest priority are kept (LIMIT L0 BY account)
  // and in each the Linf sessions with the smallest (arraySort,
  // arraySlice). Each kept (account, cohort) pair is reduced to its own
  // statistics with array functions (sessions, sums, matches, whether a
  // gate holds, its leaves), and the cohorts sum the pairs: an account
  // counts once per cohort because LIMIT BY keeps each pair once, so no
  // uniqExact over accounts and no ARRAY JOIN back to session rows.
  auto dim_of = [&](const std::string& name) {
    for (size_t i = 0; i < ds.dimensions.size(); ++i) {
      if (ds.dimensions[i].name == name) return static_cast<int>(i);
    }
    return -1;
  };
  auto measure_of = [&](const std::string& name) {
    for (size_t j = 0; j < ds.measures.size(); ++j) {
      if (ds.measures[j].name == name) return static_cast<int>(j);
    }
    return -1;
  };
  std::vector<std::string> payload = group_cols;
  auto need = [&payload](const std::string& col) {
    if (std::find(payload.begin(), payload.end(), col) == payload.end()) {
      payload.push_back(col);
    }
  };
  for (const QueryPlan::ContributorGate& g : plan.gates) {
    need(!g.measure.empty() ? Has(measure_of(g.measure))
                            : Dim(dim_of(g.label)));
  }
  for (const Metric& m : req.metrics()) {
    if (!m.measure().empty()) {
      need(Has(measure_of(m.measure())));
      need(Fixed(measure_of(m.measure())));
    }
    if (m.kind() == Metric::RATE) need(Dim(dim_of(m.rate_of().dimension())));
  }
  for (int i = 0; i < req.metrics_size(); ++i) {
    for (const QueryPlan::Control& control : plan.ControlsOf(i)) {
      if (control.band != nullptr) {
        need(Has(measure_of(control.band->measure)));
        need(Fixed(measure_of(control.band->measure)));
      } else {
        need(Dim(dim_of(control.name)));
      }
    }
  }
  const std::string hashed = WrapSipHash(
      WrapSipHash(with_fp, k0, k1, "cfp", "account_lo", "cprio", "c"), k0, k1,
      "sfp", "cfp", "sprio", "s");
  std::string tuple = "tuple(sprio, toUInt8(0)";
  for (const std::string& c : payload) absl::StrAppend(&tuple, ", ", c);
  absl::StrAppend(&tuple, ")");
  // A payload column of the kept session `t` inside a lambda.
  auto elem = [&payload](const std::string& col) {
    const size_t c =
        std::find(payload.begin(), payload.end(), col) - payload.begin();
    return absl::StrCat("tupleElement(t, ", c + 3, ")");
  };
  // Per kept pair (columns named x0, x1, ...) and per cohort (their sums).
  std::vector<std::string> pair_cols = {"ck"};
  std::vector<std::string> cols = {"ck"};
  for (size_t g = 0; g < group_cols.size(); ++g) {
    pair_cols.push_back(absl::StrCat("any(", group_cols[g], ") AS g", g));
    cols.push_back(absl::StrCat("any(g", g, ")"));
  }
  cols.push_back("count()");
  int x = 0;
  auto per_pair = [&](const std::string& expr, const std::string& total) {
    const std::string name = absl::StrCat("x", x++);
    pair_cols.push_back(absl::StrCat(expr, " AS ", name));
    cols.push_back(absl::StrCat(total, "(", name, ")"));
  };
  per_pair("length(ss)", "sum");
  for (const QueryPlan::ContributorGate& g : plan.gates) {
    std::string cond =
        !g.measure.empty()
            ? absl::StrCat(elem(Has(measure_of(g.measure))), " = 1")
            : absl::StrCat(elem(Dim(dim_of(g.label))), " != ''");
    if (g.controls_of >= 0) {
      // An adjusted metric's gate: the session also has a level of every
      // control (executor.cc GateSlot::Contributes).
      ASSIGN_OR_RETURN(
          ControlsSql controls,
          BuildControlsSql(ds, plan.ControlsOf(g.controls_of), elem));
      cond = absl::StrCat("(", cond, ") AND ", controls.all_levels);
    }
    per_pair(absl::StrCat("arrayExists(t -> ", cond, ", ss)"), "sum");
  }
  std::vector<std::string> sum_maps;  // per QUANTILES metric
  for (int i = 0; i < req.metrics_size(); ++i) {
    const Metric& m = req.metrics(i);
    const int j = m.measure().empty() ? -1 : measure_of(m.measure());
    switch (m.kind()) {
      case Metric::SUM:
      case Metric::MEAN: {
        const std::string has = elem(Has(j));
        const std::string fixed = elem(Fixed(j));
        per_pair(absl::StrCat("arraySum(t -> if(", has, ", intDiv(", fixed,
                              ", ", kSumSplit, "), toInt64(0)), ss)"),
                 "sum");
        per_pair(absl::StrCat("arraySum(t -> if(", has, ", ", fixed, " % ",
                              kSumSplit, ", toInt64(0)), ss)"),
                 "sum");
        per_pair(absl::StrCat("arrayCount(t -> ", has, ", ss)"), "sum");
        break;
      }
      case Metric::RATE: {
        const std::string d = elem(Dim(dim_of(m.rate_of().dimension())));
        per_pair(absl::StrCat("arrayCount(t -> ", d, " IN ",
                              InList(m.rate_of().any_of()), ", ss)"),
                 "sum");
        per_pair(absl::StrCat("arrayCount(t -> ", d, " != '', ss)"), "sum");
        break;
      }
      case Metric::GEOMETRIC_MEAN: {
        // The clamped values' histogram: cohortd sums their ln in fixed
        // point (GeometricMeanMetric::LogFixedPoint), bit for bit as the
        // embedded index does.
        // One entry per kept session with the measure, as QUANTILES.
        const std::string with =
            absl::StrCat("arrayFilter(t -> ", elem(Has(j)), ", ss)");
        const std::string k = absl::StrCat("x", x++);
        const std::string v = absl::StrCat("x", x++);
        pair_cols.push_back(absl::StrCat("arrayMap(t -> ", elem(Fixed(j)), ", ",
                                         with, ") AS ", k));
        pair_cols.push_back(
            absl::StrCat("arrayMap(t -> toUInt64(1), ", with, ") AS ", v));
        const std::string map = absl::StrCat("gm", i);
        cols.push_back(absl::StrCat("tupleElement(sumMap(", k, ", ", v, ") AS ",
                                    map, ", 1)"));
        cols.push_back(absl::StrCat("tupleElement(", map, ", 2)"));
        break;
      }
      case Metric::QUANTILES: {
        // The leaf of QuantileTree::Grid: (clamped value - lower_fp) /
        // leaf_width, the value being clamped to the domain already; one
        // entry per kept session with the measure (sumMap adds equal
        // leaves within a pair's array too).
        ASSIGN_OR_RETURN(const privacy::QuantileLeafGrid leaves,
                         privacy::QuantileTree::Grid(p.domains[j]));
        const std::string with =
            absl::StrCat("arrayFilter(t -> ", elem(Has(j)), ", ss)");
        const std::string k = absl::StrCat("x", x++);
        const std::string v = absl::StrCat("x", x++);
        pair_cols.push_back(
            absl::StrCat("arrayMap(t -> intDiv(", elem(Fixed(j)), " - toInt64(",
                         leaves.lower_fp, "), ", leaves.leaf_width, "), ", with,
                         ") AS ", k));
        pair_cols.push_back(
            absl::StrCat("arrayMap(t -> toUInt64(1), ", with, ") AS ", v));
        const std::string map = absl::StrCat("q", i);
        cols.push_back(absl::StrCat("tupleElement(sumMap(", k, ", ", v, ") AS ",
                                    map, ", 1)"));
        cols.push_back(absl::StrCat("tupleElement(", map, ", 2)"));
        break;
      }
      default:
        break;
    }
    if (!plan.ControlsOf(i).empty()) {
      // Per pair the sessions' cell keys and values (arrays), per cohort
      // their sumMaps: rows, y hi, y lo.
      ASSIGN_OR_RETURN(const AdjustedSql cells,
                       AdjustedCellsSql(plan, i, p.domains, elem));
      const std::string k = absl::StrCat("x", x++);
      pair_cols.push_back(
          absl::StrCat("arrayMap(t -> ", cells.key, ", ss) AS ", k));
      for (size_t part = 0; part < cells.values.size(); ++part) {
        const std::string v = absl::StrCat("x", x++);
        pair_cols.push_back(
            absl::StrCat("arrayMap(t -> ", cells.values[part], ", ss) AS ", v));
        const std::string map = absl::StrCat("a", part, "_", i);
        cols.push_back(absl::StrCat("tupleElement(sumMap(", k, ", ", v, ") AS ",
                                    map, ", 1)"));
        cols.push_back(absl::StrCat("tupleElement(", map, ", 2)"));
      }
    }
  }
  const std::string pairs = absl::StrCat(
      "SELECT account_hi, account_lo, ck, any(cprio) AS cp, ",
      "arraySlice(arraySort(groupArray(", tuple, ")), 1, ",
      bounds.max_sessions_per_cohort, ") AS ss", group_cols.empty() ? "" : ", ",
      absl::StrJoin(pair_cols.begin() + 1,
                    pair_cols.begin() + 1 + group_cols.size(), ", "),
      " FROM (", hashed,
      ") GROUP BY account_hi, account_lo, ck ORDER BY account_hi, "
      "account_lo, cp LIMIT ",
      bounds.max_cohorts_per_account, " BY account_hi, account_lo");
  std::vector<std::string> reduce = {"ck"};
  for (size_t g = 0; g < group_cols.size(); ++g) {
    reduce.push_back(absl::StrCat("g", g));
  }
  reduce.insert(reduce.end(), pair_cols.begin() + 1 + group_cols.size(),
                pair_cols.end());
  ASSIGN_OR_RETURN(
      std::string tsv,
      Run(absl::StrCat("SELECT ", absl::StrJoin(cols, ", "), " FROM (SELECT ",
                       absl::StrJoin(reduce, ", "), " FROM (", pairs,
                       ")) GROUP BY ck", statistics_settings_,
                       " FORMAT TabSeparated")));
  absl::flat_hash_map<std::string, size_t> cohort_of_ck;
  for (const std::vector<std::string>& row : ParseTsv(tsv)) {
    if (row.empty()) return absl::InternalError("clickhouse: empty row");
    size_t f = 1;
    auto next = [&]() -> absl::StatusOr<std::string> {
      if (f >= row.size()) {
        return absl::InternalError("clickhouse: short statistics row");
      }
      return row[f++];
    };
    auto next_int = [&]() -> absl::StatusOr<int64_t> {
      ASSIGN_OR_RETURN(std::string s, next());
      return ToInt64(s);
    };
    CohortStatistics c;
    for (size_t g = 0; g < group_cols.size(); ++g) {
      ASSIGN_OR_RETURN(std::string v, next());
      c.key.push_back(std::move(v));
    }
    if (!candidates.contains(c.key)) {
      // Cannot happen (the candidates are a superset); a cohort outside
      // them would have been bounded with a wrong fingerprint.
      return absl::InternalError("clickhouse: cohort outside the candidates");
    }
    ASSIGN_OR_RETURN(c.accounts, next_int());
    ASSIGN_OR_RETURN(c.sessions, next_int());
    for (size_t g = 0; g < plan.gates.size(); ++g) {
      ASSIGN_OR_RETURN(int64_t n, next_int());
      c.gate_accounts.push_back(n);
    }
    c.metrics.resize(req.metrics_size());
    for (int i = 0; i < req.metrics_size(); ++i) {
      MetricStatistics& s = c.metrics[i];
      switch (req.metrics(i).kind()) {
        case Metric::SESSIONS:
          s.sessions = c.sessions;
          break;
        case Metric::SUM:
        case Metric::MEAN: {
          ASSIGN_OR_RETURN(int64_t hi, next_int());
          ASSIGN_OR_RETURN(int64_t lo, next_int());
          ASSIGN_OR_RETURN(int64_t n, next_int());
          s.sum_fp = static_cast<__int128>(hi) * kSumSplit + lo;
          if (req.metrics(i).kind() == Metric::MEAN) s.sessions = n;
          break;
        }
        case Metric::RATE: {
          ASSIGN_OR_RETURN(s.matching, next_int());
          ASSIGN_OR_RETURN(s.sessions, next_int());
          break;
        }
        case Metric::QUANTILES: {
          ASSIGN_OR_RETURN(std::string ks, next());
          ASSIGN_OR_RETURN(std::string vs, next());
          ASSIGN_OR_RETURN(std::vector<int64_t> leaves, ToArray(ks));
          ASSIGN_OR_RETURN(std::vector<int64_t> counts, ToArray(vs));
          if (leaves.size() != counts.size()) {
            return absl::InternalError("clickhouse: bad histogram");
          }
          for (size_t k = 0; k < leaves.size(); ++k) {
            if (counts[k] > 0) s.leaf_counts.emplace_back(leaves[k], counts[k]);
          }
          std::sort(s.leaf_counts.begin(), s.leaf_counts.end());
          break;
        }
        case Metric::GEOMETRIC_MEAN: {
          ASSIGN_OR_RETURN(std::string ks, next());
          ASSIGN_OR_RETURN(std::string vs, next());
          ASSIGN_OR_RETURN(std::vector<int64_t> values, ToArray(ks));
          ASSIGN_OR_RETURN(std::vector<int64_t> counts, ToArray(vs));
          if (values.size() != counts.size() || geometric[i] == nullptr) {
            return absl::InternalError("clickhouse: bad value histogram");
          }
          for (size_t k = 0; k < values.size(); ++k) {
            if (counts[k] <= 0) continue;
            s.sum_fp += static_cast<__int128>(counts[k]) *
                        geometric[i]->LogFixedPoint(values[k]);
            s.sessions += counts[k];
          }
          break;
        }
        default:
          break;
      }
      if (!plan.ControlsOf(i).empty()) {
        std::vector<std::vector<int64_t>> columns;
        for (int k = 0; k < 6; ++k) {
          ASSIGN_OR_RETURN(std::string a, next());
          ASSIGN_OR_RETURN(std::vector<int64_t> v, ToArray(a));
          columns.push_back(std::move(v));
        }
        ASSIGN_OR_RETURN(s.adjusted,
                         ParseAdjustedCells(columns, plan.ControlsOf(i)));
      }
    }
    cohort_of_ck[row[0]] = stats.cohorts.size();
    stats.cohorts.push_back(std::move(c));
  }
  if (req.interval() == cohortd::v1::NOISE_AND_SAMPLING) {
    // Each account's totals need the kept sessions as rows: the pairs'
    // arrays (already bounded) unrolled, for these queries only.
    std::vector<std::string> unpack = {"account_hi", "account_lo", "ck"};
    for (size_t c = 0; c < payload.size(); ++c) {
      unpack.push_back(
          absl::StrCat("tupleElement(s, ", c + 3, ") AS ", payload[c]));
    }
    const std::string kept =
        absl::StrCat("SELECT ", absl::StrJoin(unpack, ", "), " FROM (", pairs,
                     ") ARRAY JOIN ss AS s");
    ASSIGN_OR_RETURN(std::string totals_tsv,
                     Run(AccountTotalsSql(plan, kept, statistics_settings_)));
    for (const std::vector<std::string>& row : ParseTsv(totals_tsv)) {
      auto it = row.empty() ? cohort_of_ck.end() : cohort_of_ck.find(row[0]);
      if (it == cohort_of_ck.end() ||
          row.size() != static_cast<size_t>(req.metrics_size()) + 1) {
        return absl::InternalError("clickhouse: bad account totals row");
      }
      for (int i = 0; i < req.metrics_size(); ++i) {
        ASSIGN_OR_RETURN(stats.cohorts[it->second].metrics[i].account_totals,
                         ToTotals(row[i + 1]));
      }
    }
  }
  std::sort(stats.cohorts.begin(), stats.cohorts.end(),
            [](const CohortStatistics& a, const CohortStatistics& b) {
              return a.key < b.key;
            });
  if (metrics_ != nullptr) {
    metrics_
        ->GetHistogram("cohortd_clickhouse_pushdown_seconds",
                       "Time ClickHouse took for one query's bounded "
                       "aggregation (both statements).",
                       {{"dataset", ds.name}}, LatencyBucketsSeconds())
        ->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  }
  return stats;
}

}  // namespace cohortd
