// Plain-text output building blocks: aligned tables for people, CSV for
// spreadsheets, and number formats for each.
#ifndef COHORTD_TOOLS_COHORTCTL_TABLE_FORMAT_H_
#define COHORTD_TOOLS_COHORTCTL_TABLE_FORMAT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace cohortd::cohortctl {

// A table: a header row and data rows of the same width. Columns marked in
// `right_aligned` (numbers) are padded on the left.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> right_aligned;  // per column; missing entries: left
};

// Columns separated by two spaces, a dashed rule under the header, no
// trailing spaces. Widths count UTF-8 code points, so "ε" is one column.
std::string FormatTable(const Table& table);

// RFC 4180: fields holding a comma, quote or line break are quoted, quotes
// doubled; lines end in "\n".
std::string FormatCsv(const Table& table);

// For people: four significant digits, no exponent for ordinary
// magnitudes (0.2834, 12.35, 1235, 123457), "%.3g" for the very small or
// very large.
std::string HumanNumber(double value);

// For parameters and costs, where trailing zeros mean nothing: "%.6g",
// e.g. 0.5, 20000, 1e-09.
std::string CompactNumber(double value);

// For machines: enough digits to round-trip ("%.17g" trimmed by trying
// shorter forms first), e.g. 0.1 -> "0.1".
std::string ExactNumber(double value);

// The display width of `text`: its number of UTF-8 code points.
size_t DisplayWidth(absl::string_view text);

// `text` padded with spaces to `width` display columns.
std::string PadLeft(absl::string_view text, size_t width);
std::string PadRight(absl::string_view text, size_t width);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_TABLE_FORMAT_H_
