// The processes of a data-parallel training run. Under `mpirun -np N` (a build with MPI) each
// process is one rank of N, talking over MPI; anywhere else, including a binary built with MPI but
// started on its own, there is one rank and nothing is initialised (also as root).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace convnext::train {

class Comm {
 public:
  // The process's communicator, set up on first use (MPI_Init_thread when launched by mpirun).
  static Comm& world();
  virtual ~Comm() = default;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_size() const { return local_size_; }  // ranks on this machine
  bool distributed() const { return size_ > 1; }
  bool is_root() const { return rank_ == 0; }

  virtual void broadcast(float* data, int64_t n, int root = 0) = 0;
  virtual void allreduce_sum(double* data, int n) = 0;  // small values: losses, counts, metrics
  virtual void allreduce_sum(int64_t* data, int n) = 0;
  // A sum over the ranks of `n` floats in place, started now and finished by wait(): gradients
  // are reduced while the backward goes on. test() lets MPI progress it.
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual bool test() = 0;
    virtual void wait() = 0;
  };
  virtual std::unique_ptr<Pending> start_allreduce_sum(float* data, int64_t n) = 0;
  // Every rank's value of a string gathered on all of them (the ranks' settings, a failure).
  virtual std::vector<std::string> allgather(const std::string& s) = 0;
  // Ends every rank of the run with `message` on stderr (MPI_Abort): one rank's failure stops all.
  [[noreturn]] virtual void abort(const std::string& message, int status = 1) = 0;

 protected:
  int rank_ = 0, size_ = 1, local_size_ = 1;
};

// Whether this binary can run data-parallel (built with MPI).
bool mpi_built_in();

}  // namespace convnext::train
