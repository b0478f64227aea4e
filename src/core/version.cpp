// convnext/version.h: the facts `convnext version` prints, from the build (CMakeLists.txt passes
// the version and the optional components; cmake/git_revision.cmake writes git_revision.h) and
// from this CPU (the kernel family the dispatcher selects).
#include "convnext/dtype.h"
#include "convnext/version.h"

#include "git_revision.h"
#include "kernels/kernels.h"

namespace convnext {

const char* version() { return CONVNEXT_VERSION_STRING; }

const char* git_revision() { return CONVNEXT_GIT_REVISION; }

BuildInfo build_info() {
  BuildInfo b;
  b.version = version();
  b.git_revision = git_revision();
  b.kernels = kernels::family_name(kernels::selected_family());
  // bf16 and int8 run everywhere: vdpbf16ps / vpdpbusd where the CPU has them, else portable GEMMs
  b.dtypes = {dtype_short_name(DType::F32), dtype_short_name(DType::BF16), dtype_short_name(DType::I8)};
  b.hdf5 = CONVNEXT_HAVE_HDF5;
  b.curl = CONVNEXT_HAVE_CURL;
  b.mpi = CONVNEXT_HAVE_MPI_BUILT;
  return b;
}

}  // namespace convnext
