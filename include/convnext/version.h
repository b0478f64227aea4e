// What this libconvnext is and what it can do on this machine (`convnext version`).
//
//   convnext::BuildInfo b = convnext::build_info();
//   b.version            "0.1.0"
//   b.git_revision       "6f5d127a1b2c" ("-dirty": built with uncommitted changes; "unknown" outside git)
//   b.kernels            "avx512" or "portable": the kernel family this CPU selects at run time
//   b.dtypes             {"f32", "bf16", "int8"}: the Precision values forward passes support
//   b.hdf5, b.curl       the optional components built in (tf_model.h5, hub downloads)
#pragma once
#include <string>
#include <vector>

#include "convnext/export.h"

namespace convnext {

struct BuildInfo {
  std::string version;
  std::string git_revision;
  std::string kernels;  // honours CONVNEXT_KERNELS=portable, as the forward passes do
  std::vector<std::string> dtypes;
  bool hdf5 = false;  // tf_model.h5 (TF / Keras) checkpoints: -DCONVNEXT_WITH_HDF5, libhdf5
  bool curl = false;  // downloads from the Hugging Face hub: -DCONVNEXT_WITH_CURL, libcurl
  bool mpi = false;   // data-parallel training under mpirun (OpenMPI)
};

CONVNEXT_API const char* version();       // the project's VERSION, "0.1.0"
CONVNEXT_API const char* git_revision();  // as BuildInfo::git_revision
CONVNEXT_API BuildInfo build_info();

}  // namespace convnext
