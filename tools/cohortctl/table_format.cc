#include "tools/cohortctl/table_format.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cohortd::cohortctl {
namespace {

std::string CsvField(absl::string_view field) {
  if (field.find_first_of(",\"\r\n") == absl::string_view::npos) {
    return std::string(field);
  }
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

size_t DisplayWidth(absl::string_view text) {
  return std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  });
}

std::string PadLeft(absl::string_view text, size_t width) {
  const size_t w = DisplayWidth(text);
  return absl::StrCat(std::string(w < width ? width - w : 0, ' '), text);
}

std::string PadRight(absl::string_view text, size_t width) {
  const size_t w = DisplayWidth(text);
  return absl::StrCat(text, std::string(w < width ? width - w : 0, ' '));
}

std::string FormatTable(const Table& table) {
  std::vector<size_t> widths(table.header.size(), 0);
  for (size_t c = 0; c < table.header.size(); ++c) {
    widths[c] = DisplayWidth(table.header[c]);
  }
  for (const auto& row : table.rows) {
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c) {
      widths[c] = std::max(widths[c], DisplayWidth(row[c]));
    }
  }
  auto format_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < widths.size(); ++c) {
      const std::string cell = c < row.size() ? row[c] : "";
      const bool right =
          c < table.right_aligned.size() && table.right_aligned[c];
      if (c > 0) line += "  ";
      line += right ? PadLeft(cell, widths[c]) : PadRight(cell, widths[c]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line + "\n";
  };
  std::string out = format_row(table.header);
  std::vector<std::string> rule;
  for (size_t width : widths) rule.push_back(std::string(width, '-'));
  out += format_row(rule);
  for (const auto& row : table.rows) out += format_row(row);
  return out;
}

std::string FormatCsv(const Table& table) {
  std::string out;
  auto append_row = [&](const std::vector<std::string>& row) {
    for (size_t c = 0; c < row.size(); ++c) {
      if (c > 0) out += ',';
      out += CsvField(row[c]);
    }
    out += '\n';
  };
  append_row(table.header);
  for (const auto& row : table.rows) append_row(row);
  return out;
}

std::string HumanNumber(double value) {
  if (!std::isfinite(value)) return absl::StrCat(value);
  const double magnitude = std::fabs(value);
  if (magnitude == 0) return "0";
  if (magnitude >= 1e12 || magnitude < 1e-3) {
    return absl::StrFormat("%.3g", value);
  }
  // Four significant digits, but never digits beyond the units place of a
  // large number: a noisy count of 123456.7 reads as 123457.
  const int exponent = static_cast<int>(std::floor(std::log10(magnitude)));
  const int decimals = std::max(0, 3 - exponent);
  return absl::StrFormat("%.*f", decimals, value);
}

std::string CompactNumber(double value) {
  return absl::StrFormat("%.6g", value);
}

std::string ExactNumber(double value) {
  for (int precision = 6; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

}  // namespace cohortd::cohortctl
