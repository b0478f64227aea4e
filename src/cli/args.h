// A small command-line parser: --flag, --key value, --key=value, and positional arguments.
#pragma once
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "convnext/dtype.h"

namespace convnext::cli {

class Args {
 public:
  // `flags` take no value; `options` take one. Anything else starting with "--" is an error.
  Args(int argc, char** argv, int first, const std::set<std::string>& flags, const std::set<std::string>& options);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  // Every value of an option given more than once (--model a --model b), in order.
  std::vector<std::string> get_all(const std::string& name) const;
  std::string required(const std::string& name) const;
  int64_t get_int(const std::string& name, int64_t fallback) const;
  double get_double(const std::string& name, double fallback) const;
  // An integer in [lo, hi], else a one-line error naming the flag and the range.
  int64_t get_int_in(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const;
  // --threads N: 0 (the default) chooses automatically. Checked here, because the library would
  // try to start whatever count it is given (a million threads crashed the process).
  int threads() const;
  const std::vector<std::string>& positional() const { return positional_; }
  bool help() const { return has("help"); }
  // --dtype in any spelling of parse_dtype, restricted to what the command takes (default f32).
  DType dtype(std::initializer_list<DType> allowed = {DType::F32, DType::BF16, DType::I8}) const;

 private:
  std::map<std::string, std::string> values_;  // the last value of each
  std::map<std::string, std::vector<std::string>> all_;
  std::vector<std::string> positional_;
};

}  // namespace convnext::cli
