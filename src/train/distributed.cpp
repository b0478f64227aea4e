// One rank: what a process started without mpirun (or built without MPI) uses. The MPI
// communicator is in distributed_mpi.cpp, built when CMake finds MPI.
#include "train/distributed.h"

#include <cstdio>
#include <cstdlib>

namespace convnext::train {

namespace {

class SingleProcess final : public Comm {
 public:
  void broadcast(float*, int64_t, int) override {}
  void allreduce_sum(double*, int) override {}
  void allreduce_sum(int64_t*, int) override {}
  class Done final : public Pending {
   public:
    bool test() override { return true; }
    void wait() override {}
  };
  std::unique_ptr<Pending> start_allreduce_sum(float*, int64_t) override { return std::make_unique<Done>(); }
  std::vector<std::string> allgather(const std::string& s) override { return {s}; }
  [[noreturn]] void abort(const std::string& message, int status) override {
    std::fprintf(stderr, "%s\n", message.c_str());
    std::exit(status);
  }
};

}  // namespace

#ifdef CONVNEXT_HAVE_MPI
std::unique_ptr<Comm> make_mpi_comm_if_launched();  // distributed_mpi.cpp: null when not under mpirun
bool mpi_built_in() { return true; }
#else
bool mpi_built_in() { return false; }
#endif

Comm& Comm::world() {
  static const std::unique_ptr<Comm> comm = []() -> std::unique_ptr<Comm> {
#ifdef CONVNEXT_HAVE_MPI
    if (auto c = make_mpi_comm_if_launched()) return c;
#endif
    return std::make_unique<SingleProcess>();
  }();
  return *comm;
}

}  // namespace convnext::train
