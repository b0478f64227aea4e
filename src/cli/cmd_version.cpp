// convnext version: what this build is and can do here (convnext/version.h, the public API).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "args.h"
#include "commands.h"
#include "convnext/error.h"
#include "convnext/version.h"

namespace convnext::cli {

namespace {
#ifdef CONVNEXT_HAVE_SERVE
constexpr bool kServe = true;  // the server is part of the tool, not of the library's BuildInfo
#else
constexpr bool kServe = false;
#endif

const char* kHelp = R"(usage: convnext version [--json]

Prints the version, the git revision it was built from ("-dirty": with uncommitted changes;
"unknown" when built outside git), the kernel family this CPU selects at run time ("avx512" or
"portable"; CONVNEXT_KERNELS=portable forces the latter), the dtypes forward passes support
(--dtype) and the optional components built in: hdf5 (tf_model.h5 checkpoints,
-DCONVNEXT_WITH_HDF5), curl (`convnext download`, -DCONVNEXT_WITH_CURL), mpi (`mpirun -np N convnext
train`, -DCONVNEXT_WITH_MPI), serve
(`convnext serve`, -DCONVNEXT_WITH_SERVE).

  --json   one JSON object: {"version", "git_revision", "kernels", "dtypes": [...],
           "components": {"hdf5": bool, "curl": bool, "mpi": bool, "serve": bool}}
)";
}  // namespace

int cmd_version(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"json"}, {});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (!a.positional().empty()) throw Error("unexpected argument '" + a.positional()[0] + "'; see --help");
  const BuildInfo b = build_info();
  if (a.has("json")) {
    const nlohmann::ordered_json j = {{"version", b.version},
                                      {"git_revision", b.git_revision},
                                      {"kernels", b.kernels},
                                      {"dtypes", b.dtypes},
                                      {"components", {{"hdf5", b.hdf5}, {"curl", b.curl}, {"mpi", b.mpi}, {"serve", kServe}}}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::string dtypes;
  for (const std::string& d : b.dtypes) dtypes += (dtypes.empty() ? "" : ", ") + d;
  auto yes = [](bool v) { return v ? "yes" : "no"; };
  std::printf("convnext %s\n", b.version.c_str());
  std::printf("git revision  %s\n", b.git_revision.c_str());
  std::printf("kernels       %s\n", b.kernels.c_str());
  std::printf("dtypes        %s\n", dtypes.c_str());
  std::printf("components    hdf5 %s, curl %s, mpi %s, serve %s\n", yes(b.hdf5), yes(b.curl), yes(b.mpi), yes(kServe));
  return 0;
}

}  // namespace convnext::cli
