#include "args.h"

#include "convnext/error.h"

namespace convnext::cli {

Args::Args(int argc, char** argv, int first, const std::set<std::string>& flags, const std::set<std::string>& options) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h") a = "--help";
    if (a.rfind("--", 0) != 0 || a == "--") {
      positional_.push_back(a);
      continue;
    }
    std::string key = a.substr(2), value;
    const size_t eq = key.find('=');
    bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    if (key == "help" || flags.count(key)) {
      if (inline_value) throw Error("--" + key + " takes no value");
      values_[key] = "1";
    } else if (options.count(key)) {
      if (!inline_value) {
        if (i + 1 >= argc) throw Error("--" + key + " needs a value");
        value = argv[++i];
      }
      values_[key] = value;
      all_[key].push_back(value);
    } else {
      throw Error("unknown option --" + key + " (see --help)");
    }
  }
}

DType Args::dtype(std::initializer_list<DType> allowed) const {
  const DType d = parse_dtype(get("dtype", "f32"));
  std::string names;
  for (DType a : allowed) {
    if (a == d) return d;
    names += std::string(names.empty() ? "" : " or ") + dtype_short_name(a);
  }
  throw Error("--dtype must be " + names + ", got '" + get("dtype", "") + "'");
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::vector<std::string> Args::get_all(const std::string& name) const {
  auto it = all_.find(name);
  return it == all_.end() ? std::vector<std::string>{} : it->second;
}

std::string Args::required(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) throw Error("--" + name + " is required (see --help)");
  return it->second;
}

int64_t Args::get_int(const std::string& name, int64_t fallback) const {
  if (!has(name)) return fallback;
  const std::string v = get(name);
  try {
    size_t pos = 0;
    const long long x = std::stoll(v, &pos);
    if (pos != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw Error("--" + name + " expects an integer, got '" + v + "'");
  }
}

int64_t Args::get_int_in(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const {
  const int64_t v = get_int(name, fallback);
  if (v < lo || v > hi)
    throw Error("--" + name + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + get(name));
  return v;
}

int Args::threads() const {
  constexpr int64_t kMaxThreads = 1024;
  const int64_t n = get_int("threads", 0);
  if (n < 0 || n > kMaxThreads)
    throw Error("--threads must be between 0 (automatic) and " + std::to_string(kMaxThreads) + ", got " + get("threads"));
  return static_cast<int>(n);
}

double Args::get_double(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  const std::string v = get(name);
  try {
    size_t pos = 0;
    const double x = std::stod(v, &pos);
    if (pos != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw Error("--" + name + " expects a number, got '" + v + "'");
  }
}

}  // namespace convnext::cli
