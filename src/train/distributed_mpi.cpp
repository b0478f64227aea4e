// The MPI communicator (OpenMPI from Debian). Initialised only when the process was launched by an
// MPI launcher (mpirun/mpiexec/srun set these variables), so the same binary also runs alone.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "convnext/error.h"
#include "train/distributed.h"

namespace convnext::train {

namespace {

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string("MPI ") + what + ": " + std::string(msg, static_cast<size_t>(len)));
}

class Mpi final : public Comm {
 public:
  Mpi() {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
    // Errors come back as codes (turned into Errors), not as MPI's default abort.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    std::atexit([] {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    });
  }

  void broadcast(float* data, int64_t n, int root) override {
    for (int64_t at = 0; at < n; at += kChunk)
      check(MPI_Bcast(data + at, static_cast<int>(std::min(kChunk, n - at)), MPI_FLOAT, root, MPI_COMM_WORLD), "broadcast");
  }
  void allreduce_sum(double* data, int n) override {
    check(MPI_Allreduce(MPI_IN_PLACE, data, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "all-reduce");
  }
  void allreduce_sum(int64_t* data, int n) override {
    check(MPI_Allreduce(MPI_IN_PLACE, data, n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD), "all-reduce");
  }

  class Request final : public Pending {
   public:
    explicit Request(MPI_Request r) : r_(r) {}
    ~Request() override {
      if (r_ != MPI_REQUEST_NULL) MPI_Wait(&r_, MPI_STATUS_IGNORE);
    }
    bool test() override {
      int done = 0;
      check(MPI_Test(&r_, &done, MPI_STATUS_IGNORE), "all-reduce");
      return done != 0;
    }
    void wait() override { check(MPI_Wait(&r_, MPI_STATUS_IGNORE), "all-reduce"); }

   private:
    MPI_Request r_;
  };
  std::unique_ptr<Pending> start_allreduce_sum(float* data, int64_t n) override {
    if (n > INT32_MAX) throw Error("an all-reduce bucket of more than 2^31 floats");
    MPI_Request r;
    check(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r), "all-reduce");
    return std::make_unique<Request>(r);
  }

  std::vector<std::string> allgather(const std::string& s) override {
    int len = static_cast<int>(s.size());
    std::vector<int> lens(static_cast<size_t>(size_));
    check(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD), "all-gather");
    std::vector<int> offs(static_cast<size_t>(size_), 0);
    int total = 0;
    for (int i = 0; i < size_; ++i) {
      offs[static_cast<size_t>(i)] = total;
      total += lens[static_cast<size_t>(i)];
    }
    std::string all(static_cast<size_t>(total), '\0');
    check(MPI_Allgatherv(s.data(), len, MPI_CHAR, all.data(), lens.data(), offs.data(), MPI_CHAR, MPI_COMM_WORLD),
          "all-gather");
    std::vector<std::string> out;
    for (int i = 0; i < size_; ++i) out.push_back(all.substr(static_cast<size_t>(offs[static_cast<size_t>(i)]),
                                                             static_cast<size_t>(lens[static_cast<size_t>(i)])));
    return out;
  }

  [[noreturn]] void abort(const std::string& message, int status) override {
    std::fprintf(stderr, "%s\n", message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
    std::exit(status);
  }

 private:
  static constexpr int64_t kChunk = int64_t{1} << 30;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm_if_launched() {
  if (!launched_by_mpi()) return nullptr;
  return std::make_unique<Mpi>();
}

}  // namespace convnext::train
