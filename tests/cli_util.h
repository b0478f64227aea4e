// Running the `convnext` binary from tests: exit status, stdout and stderr.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace convnext::test {

struct CliRun {
  int status;
  std::string out, err;
};

// Runs `convnext ARGS`, capturing stdout and stderr.
inline CliRun run(const std::string& args) {
  const std::filesystem::path err_file = std::filesystem::temp_directory_path() / ("convnext_cli_err_" + std::to_string(::getpid()));
  const std::string cmd = std::string(CONVNEXT_CLI) + " " + args + " 2>" + err_file.string();
  CliRun r{-1, "", ""};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_file);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  std::filesystem::remove(err_file);
  return r;
}

}  // namespace convnext::test
