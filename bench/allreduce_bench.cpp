// The all-reduce of one training step's gradients, as `mpirun -np N convnext train` runs it: the
// floats of a model (ConvNeXt-T: 28.6 M) summed over the ranks in buckets of --bucket-mb, every
// bucket started at once (MPI_Iallreduce) and then waited for. Prints one JSON line per rank 0:
// {"ranks", "floats", "bucket_mb", "median_ms", "min_ms", "algbw_gbit_s", "busbw_gbit_s"}.
// algbw = bytes / time; busbw = algbw × 2(N−1)/N, what a ring all-reduce moves per link.
//   mpirun -np 2 build/bench/allreduce_bench [--floats 28589128] [--bucket-mb 25] [--iters 10]
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long long floats = 28589128;  // ConvNeXt-T with 1000 labels
  double bucket_mb = 25;
  int iters = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--floats")) floats = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--bucket-mb")) bucket_mb = std::atof(argv[i + 1]);
    if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
  }
  std::vector<float> grads(static_cast<size_t>(floats), 1.0f);
  const long long per = std::max<long long>(1, static_cast<long long>(bucket_mb * 1024 * 1024 / 4));
  std::vector<double> ms;
  for (int it = 0; it < iters + 1; ++it) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<MPI_Request> reqs;
    for (long long at = 0; at < floats; at += per) {
      reqs.emplace_back();
      MPI_Iallreduce(MPI_IN_PLACE, grads.data() + at, static_cast<int>(std::min(per, floats - at)), MPI_FLOAT, MPI_SUM,
                     MPI_COMM_WORLD, &reqs.back());
    }
    MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE);
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (it > 0) ms.push_back(t);  // the first run warms the connections up
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2], bytes = static_cast<double>(floats) * 4;
  const double algbw = bytes * 8 / (med / 1000) / 1e9;
  if (rank == 0)
    std::printf("{\"ranks\": %d, \"floats\": %lld, \"bucket_mb\": %g, \"median_ms\": %.2f, \"min_ms\": %.2f, "
                "\"algbw_gbit_s\": %.2f, \"busbw_gbit_s\": %.2f}\n",
                size, floats, bucket_mb, med, ms.front(), algbw, algbw * 2.0 * (size - 1) / size);
  MPI_Finalize();
  return 0;
}
