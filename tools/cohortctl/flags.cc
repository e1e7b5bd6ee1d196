#include "tools/cohortctl/flags.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace cohortd::cohortctl {

bool ParsedFlags::Has(absl::string_view name) const {
  return values_.find(name) != values_.end();
}

std::string ParsedFlags::Get(absl::string_view name,
                             const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> ParsedFlags::GetAll(absl::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>() : it->second;
}

absl::StatusOr<int64_t> ParsedFlags::GetInt(absl::string_view name,
                                            int64_t fallback) const {
  if (!Has(name)) return fallback;
  int64_t value;
  if (!absl::SimpleAtoi(Get(name), &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " needs an integer, got '", Get(name), "'"));
  }
  return value;
}

absl::StatusOr<double> ParsedFlags::GetDouble(absl::string_view name,
                                              double fallback) const {
  if (!Has(name)) return fallback;
  double value;
  if (!absl::SimpleAtod(Get(name), &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " needs a number, got '", Get(name), "'"));
  }
  return value;
}

void ParsedFlags::MergeFrom(const ParsedFlags& other) {
  for (const auto& [name, values] : other.values_) {
    values_.emplace(name, values);
  }
}

absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                                       const std::vector<FlagSpec>& specs,
                                       ParseMode mode) {
  const bool stop_at_positional = mode == ParseMode::kStopAtPositional;
  ParsedFlags parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      parsed.positional_.insert(parsed.positional_.end(), args.begin() + i + 1,
                                args.end());
      break;
    }
    if (!absl::StartsWith(arg, "--")) {
      if (stop_at_positional) {
        parsed.positional_.assign(args.begin() + i, args.end());
        break;
      }
      parsed.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_inline_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline_value = true;
    }
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&](const FlagSpec& s) { return s.name == name; });
    if (spec == specs.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (spec->value_name.empty()) {
      if (has_inline_value) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes no value"));
      }
    } else if (!has_inline_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", name, " needs a value (", spec->value_name, ")"));
      }
      value = args[++i];
    }
    std::vector<std::string>& values = parsed.values_[name];
    if (!values.empty() && !spec->repeatable) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " given more than once"));
    }
    values.push_back(value);
  }
  return parsed;
}

std::string FormatFlagHelp(const std::vector<FlagSpec>& specs) {
  std::vector<std::string> left;
  size_t width = 0;
  for (const FlagSpec& spec : specs) {
    std::string text = absl::StrCat("--", spec.name);
    if (!spec.value_name.empty()) absl::StrAppend(&text, " ", spec.value_name);
    width = std::max(width, text.size());
    left.push_back(std::move(text));
  }
  std::string help;
  for (size_t i = 0; i < specs.size(); ++i) {
    absl::StrAppend(
        &help, "  ", left[i], std::string(width - left[i].size(), ' '), "  ",
        specs[i].help, specs[i].repeatable ? " (repeatable)" : "", "\n");
  }
  return help;
}

}  // namespace cohortd::cohortctl
