// A small command-line flag parser: --name VALUE, --name=VALUE and boolean --name, with errors
// that name the flag. Each command declares its flags with help text, so --help is generated
// from the same table that parses.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sculpt {

class FlagSet {
 public:
  // `value_name` empty declares a boolean flag.
  void Add(const std::string& name, const std::string& value_name, const std::string& default_value,
           const std::string& help);
  absl::Status Parse(const std::vector<std::string>& args);
  std::string Usage() const;

  // Fills flags the command line did not give, from environment variables `PREFIX` + the
  // name in upper case with '-' as '_' (SCULPT_MAX_NUM_SEQS), then from `config` (a JSON
  // object keyed by flag name, '-' or '_' alike; values are strings, numbers or booleans).
  // Order of precedence: command line, environment, config file, default. Booleans accept
  // true/false/1/0. `skip` names flags that do not fall back (e.g. --config itself).
  absl::Status ApplyFallbacks(const std::string& env_prefix, const std::string& config_json,
                              const std::string& config_source,
                              const std::vector<std::string>& skip);

  bool Has(const std::string& name) const { return values_.count(name) != 0; }
  bool GetBool(const std::string& name) const { return Has(name); }
  std::string GetString(const std::string& name) const;                // the last value given
  std::vector<std::string> GetStrings(const std::string& name) const;  // every value, in order
  absl::StatusOr<int64_t> GetInt(const std::string& name) const;
  // An integer in [min, max]; INVALID_ARGUMENT naming the flag and the range otherwise.
  absl::StatusOr<int> GetIntInRange(const std::string& name, int64_t min, int64_t max) const;
  absl::StatusOr<double> GetDouble(const std::string& name) const;
  absl::StatusOr<std::vector<int32_t>> GetIntList(const std::string& name) const;

 private:
  struct Spec {
    std::string value_name;
    std::string default_value;
    std::string help;
  };
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace sculpt
