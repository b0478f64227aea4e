// Loader: worker threads prepare the examples of the next `prefetch` batches while the caller
// trains on the current one. Work is handed out per example, not per batch, so that every
// worker stays busy even with a prefetch of one; batches are delivered strictly in order.
// Everything random about an example comes from its own seed (seed, epoch, index), never from
// which thread ran it, so the batches are the same with any number of workers.

#include <condition_variable>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "core/parallel.h"
#include "train/data.h"

namespace convnext::train {

namespace {

// What preparing one example gave.
struct Outcome {
  Example example;
  bool skipped = false;     // unreadable image, left out of the batch
  std::string warning;      // "<file>: <reason>" when skipped
  std::exception_ptr error; // anything else: stops the loader when its batch is reached
};

// One batch being prepared: outcomes by position in the batch.
struct Slot {
  std::vector<Outcome> outcomes;
  int64_t remaining = 0;
  bool ready = false;
  Batch batch;
  std::vector<std::string> warnings;  // of the skipped examples, printed when the batch is delivered
  std::exception_ptr error;
};

}  // namespace

struct Loader::Impl {
  const DataSource& source;
  LoaderOptions opt;
  int64_t epoch;
  std::vector<int64_t> order;
  int64_t n_batches = 0;

  std::mutex mu;
  std::condition_variable work_cv, ready_cv;
  std::map<int64_t, Slot> slots;  // map nodes stay put while others are added or erased
  int64_t deliver = 0;            // the batch next() returns next
  int64_t claim_batch = 0, claim_pos = 0;  // the example handed out next
  bool stop = false;
  int64_t skipped_total = 0;
  std::vector<std::thread> threads;

  Impl(const DataSource& s, LoaderOptions o, int64_t e) : source(s), opt(std::move(o)), epoch(e) {}

  int64_t batch_len(int64_t b) const {
    return std::min<int64_t>(opt.batch_size, static_cast<int64_t>(order.size()) - b * opt.batch_size);
  }

  Outcome run(int64_t b, int64_t k) const {
    Outcome r;
    const int64_t index = order[static_cast<size_t>(b * opt.batch_size + k)];
    try {
      std::mt19937_64 rng(sampling::example_seed(opt.seed, epoch, index));
      r.example = source.get(index, opt.augment, rng);
    } catch (const UnreadableImage& e) {
      r.skipped = true;
      r.warning = e.what();
    } catch (...) {
      r.error = std::current_exception();
    }
    return r;
  }

  // Stacks the examples that were read; the first error (by position) wins.
  void assemble(Slot& s, int64_t b) const {
    for (const Outcome& o : s.outcomes)
      if (o.skipped) s.warnings.push_back(o.warning);
    try {
      std::vector<const Example*> kept;
      for (size_t k = 0; k < s.outcomes.size(); ++k) {
        const Outcome& o = s.outcomes[k];
        if (o.error) {
          s.error = o.error;
          return;
        }
        if (o.skipped) {
          ++s.batch.skipped;
          continue;
        }
        kept.push_back(&o.example);
        s.batch.indices.push_back(order[static_cast<size_t>(b * opt.batch_size) + k]);
      }
      if (kept.empty()) return;
      s.batch.pixel_values = stack_pixels(kept, s.batch.indices);
      s.batch.labels = stack_labels(kept);
    } catch (...) {
      s.error = std::current_exception();
    }
    s.outcomes.clear();  // the examples' pixels are in the batch now
  }

  // pixel_values [B, C, H, W] by convnext::stack, as every batch of the library is built; the
  // check first, to name the examples and the processor setting that would fix it.
  Tensor stack_pixels(const std::vector<const Example*>& kept, const std::vector<int64_t>& indices) const {
    const Shape& shape = kept[0]->pixels.shape();
    std::vector<Tensor> pixels;
    for (size_t i = 0; i < kept.size(); ++i) {
      const Tensor& p = kept[i]->pixels;
      if (p.shape() != shape)
        throw Error(source.origin() + ": example " + std::to_string(indices[i]) + " comes out as " + shape_str(p.shape()) +
                    " but example " + std::to_string(indices[0]) + " as " + shape_str(shape) +
                    " (enable do_resize to batch images of different sizes)");
      pixels.push_back(p);  // shares the data: stack makes the one copy
    }
    return stack(pixels);
  }

  // Class ids, or float labels [B, L] ([B] for a source that stores them as [N]).
  Labels stack_labels(const std::vector<const Example*>& kept) const {
    if (!source.float_labels()) {
      std::vector<int64_t> ids;
      for (const Example* e : kept) ids.push_back(e->label);
      return Labels::classes(std::move(ids));
    }
    const int64_t B = static_cast<int64_t>(kept.size()), L = static_cast<int64_t>(kept[0]->target.size());
    std::vector<Tensor> targets;
    for (const Example* e : kept) {
      if (static_cast<int64_t>(e->target.size()) != L) throw Error(source.origin() + ": float labels of different lengths");
      targets.emplace_back(Shape{L}, e->target);
    }
    const Tensor v = stack(targets);
    return Labels::floats(source.float_labels_2d() ? v : v.reshape({B}));
  }

  void worker() {
    parallel::ThreadLimit one(1);  // workers run side by side with the training step's own threads
    const int64_t window = std::max(1, opt.prefetch);
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      work_cv.wait(lk, [&] { return stop || (claim_batch < n_batches && claim_batch < deliver + window); });
      if (stop) return;
      const int64_t b = claim_batch, k = claim_pos;
      Slot& slot = slots[b];
      if (k == 0) {
        slot.outcomes.resize(static_cast<size_t>(batch_len(b)));
        slot.remaining = batch_len(b);
      }
      if (++claim_pos == batch_len(b)) {
        ++claim_batch;
        claim_pos = 0;
      }
      lk.unlock();
      Outcome r = run(b, k);
      lk.lock();
      slot.outcomes[static_cast<size_t>(k)] = std::move(r);
      if (--slot.remaining == 0) {
        lk.unlock();  // this thread alone touches the slot until it is marked ready
        assemble(slot, b);
        lk.lock();
        slot.ready = true;
        ready_cv.notify_all();
      }
    }
  }
};

std::vector<int64_t> shard(const std::vector<int64_t>& order, int rank, int world, bool pad) {
  std::vector<int64_t> all = order;
  const size_t n = order.size(), w = static_cast<size_t>(world);
  if (pad && n > 0)
    for (size_t i = 0; all.size() % w != 0; ++i) all.push_back(order[i % n]);  // DistributedSampler's padding
  std::vector<int64_t> mine;
  for (size_t i = static_cast<size_t>(rank); i < all.size(); i += w) mine.push_back(all[i]);
  return mine;
}

Loader::Loader(const DataSource& source, LoaderOptions options, int64_t epoch, int64_t start_batch)
    : impl_(std::make_unique<Impl>(source, std::move(options), epoch)) {
  Impl& m = *impl_;
  if (m.opt.batch_size < 1) throw Error("batch size must be at least 1, got " + std::to_string(m.opt.batch_size));
  if (start_batch < 0) throw Error("start batch must be >= 0, got " + std::to_string(start_batch));
  if (m.opt.workers < 0 || m.opt.workers > 1024)
    throw Error("the data-loading workers must be between 0 and 1024, got " + std::to_string(m.opt.workers));
  const int64_t n = source.size();
  m.order.resize(static_cast<size_t>(n));
  std::iota(m.order.begin(), m.order.end(), int64_t{0});
  if (m.opt.shuffle) {
    // Fisher–Yates with our own uniform draw (std::shuffle's differs between standard libraries).
    std::mt19937_64 g(m.opt.seed * 1000003ULL + static_cast<uint64_t>(epoch));
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(m.order[static_cast<size_t>(i)], m.order[static_cast<size_t>(sampling::uniform_index(g, i + 1))]);
  }
  if (m.opt.world < 1 || m.opt.rank < 0 || m.opt.rank >= m.opt.world)
    throw Error("rank " + std::to_string(m.opt.rank) + " of " + std::to_string(m.opt.world) + " is not a valid shard");
  if (m.opt.world > 1) m.order = shard(m.order, m.opt.rank, m.opt.world, m.opt.pad_shards);
  const int64_t n_mine = static_cast<int64_t>(m.order.size());
  m.n_batches = m.opt.drop_last ? n_mine / m.opt.batch_size : (n_mine + m.opt.batch_size - 1) / m.opt.batch_size;
  m.deliver = m.claim_batch = std::min(start_batch, m.n_batches);
  try {
    for (int w = 0; w < m.opt.workers; ++w) m.threads.emplace_back([&m] { m.worker(); });
  } catch (...) {  // no destructor runs for a throwing constructor: stop the threads already started
    {
      std::lock_guard<std::mutex> lk(m.mu);
      m.stop = true;
      m.work_cv.notify_all();
    }
    for (std::thread& t : m.threads) t.join();
    throw;
  }
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stop = true;
    impl_->work_cv.notify_all();
  }
  for (std::thread& t : impl_->threads) t.join();
}

int64_t Loader::batches() const { return impl_->n_batches; }

int64_t Loader::skipped_total() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->skipped_total;
}

bool Loader::next(Batch& out) {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> lk(m.mu);
  while (m.deliver < m.n_batches) {
    const int64_t b = m.deliver;
    Slot slot;
    if (m.threads.empty()) {
      // No workers: prepare the batch here, in the caller's thread.
      lk.unlock();
      for (int64_t k = 0; k < m.batch_len(b); ++k) slot.outcomes.push_back(m.run(b, k));
      m.assemble(slot, b);
      lk.lock();
    } else {
      m.ready_cv.wait(lk, [&] {
        const auto it = m.slots.find(b);
        return it != m.slots.end() && it->second.ready;
      });
      slot = std::move(m.slots[b]);
      m.slots.erase(b);
    }
    ++m.deliver;
    m.skipped_total += slot.batch.skipped;
    m.work_cv.notify_all();  // the window moved on
    lk.unlock();
    for (const std::string& w : slot.warnings) std::fprintf(stderr, "warning: skipping %s\n", w.c_str());
    if (slot.error) std::rethrow_exception(slot.error);
    if (!slot.batch.indices.empty()) {
      out = std::move(slot.batch);
      return true;
    }
    lk.lock();  // every example of this batch was unreadable: on to the next
  }
  return false;
}

}  // namespace convnext::train
