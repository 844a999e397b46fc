#include "server/flags.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sculpt {

void FlagSet::Add(const std::string& name, const std::string& value_name,
                  const std::string& default_value, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{value_name, default_value, help};
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", args[i], "'"));
    }
    std::string name(arg);
    std::string value;
    bool has_inline_value = false;
    if (const size_t equals = name.find('='); equals != std::string::npos) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
      has_inline_value = true;
    }
    auto spec = specs_.find(name);
    if (spec == specs_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (spec->second.value_name.empty()) {
      if (has_inline_value) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " takes no value"));
      }
    } else if (!has_inline_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value (", spec->second.value_name, ")"));
      }
      value = args[++i];
    }
    values_[name].push_back(value);
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::string usage;
  for (const std::string& name : order_) {
    const Spec& spec = specs_.at(name);
    std::string left =
        absl::StrCat("  --", name, spec.value_name.empty() ? "" : " ", spec.value_name);
    if (left.size() < 30) left.resize(30, ' ');
    absl::StrAppend(&usage, left, " ", spec.help);
    if (!spec.default_value.empty())
      absl::StrAppend(&usage, " (default: ", spec.default_value, ")");
    absl::StrAppend(&usage, "\n");
  }
  return usage;
}

std::string FlagSet::GetString(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second.back();
  auto spec = specs_.find(name);
  return spec == specs_.end() ? "" : spec->second.default_value;
}

std::vector<std::string> FlagSet::GetStrings(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>() : it->second;
}

absl::StatusOr<int64_t> FlagSet::GetInt(const std::string& name) const {
  const std::string text = GetString(name);
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("flag --", name, " must be an integer, got '", text, "'"));
  }
  return value;
}

absl::StatusOr<int> FlagSet::GetIntInRange(const std::string& name, int64_t min,
                                           int64_t max) const {
  auto value = GetInt(name);
  if (!value.ok()) return value.status();
  if (*value < min || *value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be in [", min, ", ", max, "], got ", *value));
  }
  return static_cast<int>(*value);
}

absl::StatusOr<double> FlagSet::GetDouble(const std::string& name) const {
  const std::string text = GetString(name);
  double value = 0;
  if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("flag --", name, " must be a finite number, got '", text, "'"));
  }
  return value;
}

absl::StatusOr<std::vector<int32_t>> FlagSet::GetIntList(const std::string& name) const {
  const std::string text = GetString(name);
  std::vector<int32_t> values;
  if (text.empty()) return values;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int32_t value = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "flag --", name, " must be a comma-separated list of integers; '", part, "' is not one"));
    }
    values.push_back(value);
  }
  return values;
}

absl::Status FlagSet::ApplyFallbacks(const std::string& env_prefix, const std::string& config_json,
                                     const std::string& config_source,
                                     const std::vector<std::string>& skip) {
  nlohmann::json config = nlohmann::json::object();
  if (!config_json.empty()) {
    config = nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
    if (!config.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_source, ": must be one JSON object of flag names and values"));
    }
    for (const auto& [key, value] : config.items()) {
      const std::string name = absl::StrReplaceAll(key, {{"_", "-"}});
      if (specs_.count(name) == 0 || std::find(skip.begin(), skip.end(), name) != skip.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(config_source, ": unknown setting '", key, "' (see --help)"));
      }
    }
  }
  for (const std::string& name : order_) {
    if (Has(name) || std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
    const bool boolean = specs_.at(name).value_name.empty();
    std::string value;
    std::string source;
    const std::string env_name =
        env_prefix + absl::AsciiStrToUpper(absl::StrReplaceAll(name, {{"-", "_"}}));
    if (const char* env = std::getenv(env_name.c_str()); env != nullptr) {
      value = env;
      source = absl::StrCat("environment variable ", env_name);
    } else {
      const std::string underscored = absl::StrReplaceAll(name, {{"-", "_"}});
      const nlohmann::json* entry = nullptr;
      if (config.contains(name)) entry = &config[name];
      if (config.contains(underscored)) entry = &config[underscored];
      if (entry == nullptr) continue;
      source = absl::StrCat(config_source, ": ", name);
      if (entry->is_string()) {
        value = entry->get<std::string>();
      } else if (entry->is_boolean()) {
        value = entry->get<bool>() ? "true" : "false";
      } else if (entry->is_number()) {
        value = entry->dump();
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(source, " must be a string, number or boolean"));
      }
    }
    if (boolean) {
      const std::string lower = absl::AsciiStrToLower(value);
      if (lower == "1" || lower == "true") {
        values_[name].push_back("");
      } else if (lower != "0" && lower != "false" && !lower.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, " must be true or false, got '", value, "'"));
      }
    } else {
      values_[name].push_back(value);
    }
  }
  return absl::OkStatus();
}

}  // namespace sculpt
