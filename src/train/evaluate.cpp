// Evaluation: the inference kernels over a data source, with the loss transformers would
// report and the usual classification figures.
#include "train/evaluate.h"

#include <optional>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>

#include "convnext/error.h"
#include "io/json_file.h"
#include "train/distributed.h"

namespace convnext::train {

namespace {

// What an evaluation adds up over its batches.
struct Tally {
  // Each counted example's own loss, by its index in the data: added up in index order at the end,
  // so the mean does not depend on how the examples were batched or shared among ranks.
  struct ExampleLoss {
    int64_t index;
    double loss;
  };
  std::vector<ExampleLoss> losses;
  int64_t top1 = 0, top5 = 0, scored = 0;  // scored: the examples the loss and accuracy count
};

// Example n's loss: the loss of its row alone (the batch's loss is the mean of these, every row
// having as many terms), or nothing for an ignored label (-100).
std::optional<double> example_loss(const Tensor& logits, const Labels& labels, int64_t n, const std::string& problem_type) {
  const int64_t L = logits.dim(1);
  Tensor row({1, L});
  std::copy(logits.data() + n * L, logits.data() + (n + 1) * L, row.data());
  Labels one;
  if (labels.is_integer()) {
    const int64_t y = labels.class_ids[static_cast<size_t>(n)];
    if (y < 0) return std::nullopt;
    one = Labels::classes({y});
  } else {
    const int64_t per = labels.values.numel() / logits.dim(0);
    Shape shape = labels.values.shape();
    shape[0] = 1;
    Tensor v(shape);
    std::copy(labels.values.data() + n * per, labels.values.data() + (n + 1) * per, v.data());
    one = Labels::floats(std::move(v));
  }
  std::string pt = problem_type;
  return static_cast<double>(classification_loss(row, one, pt));
}

// A single-label batch: top-1, top-5, the per-class counts and the confusion matrix. Returns the
// examples counted: a label of -100 is ignored by the loss and the accuracy alike.
int64_t count_classes(const Tensor& logits, const std::vector<int64_t>& class_ids, int64_t L, EvalResult& r, Tally& t) {
  r.classification = true;
  if (r.confusion.empty()) {
    r.confusion.assign(static_cast<size_t>(L), std::vector<int64_t>(static_cast<size_t>(L), 0));
    r.class_total.assign(static_cast<size_t>(L), 0);
    r.class_correct.assign(static_cast<size_t>(L), 0);
  }
  int64_t counted = 0;
  for (int64_t n = 0; n < logits.dim(0); ++n) {
    const int64_t y = class_ids[static_cast<size_t>(n)];
    if (y < 0) continue;
    ++counted;
    const float* z = logits.data() + n * L;
    const int64_t pred = std::max_element(z, z + L) - z;
    int64_t above = 0;  // classes scoring higher than the true one
    for (int64_t j = 0; j < L; ++j) above += z[j] > z[y];
    t.top1 += pred == y;
    t.top5 += above < 5;
    r.class_total[static_cast<size_t>(y)]++;
    r.class_correct[static_cast<size_t>(y)] += pred == y;
    r.confusion[static_cast<size_t>(y)][static_cast<size_t>(pred)]++;
  }
  return counted;
}

void score_batch(const Tensor& logits, const Labels& labels, const std::vector<int64_t>& indices, int64_t num_labels,
                 EvalResult& r, Tally& t) {
  const int64_t N = logits.dim(0);
  const int64_t counted =
      r.problem_type == "single_label_classification" ? count_classes(logits, labels.class_ids, num_labels, r, t) : N;
  for (int64_t n = 0; n < N; ++n)
    if (const auto l = example_loss(logits, labels, n, r.problem_type)) t.losses.push_back({indices[static_cast<size_t>(n)], *l});
  t.scored += counted;
  r.count += N;
}

// The examples' losses added up in index order (every rank's, under mpirun).
double loss_sum(Tally& t) {
  Comm& comm = Comm::world();
  if (comm.distributed()) {
    std::string mine(reinterpret_cast<const char*>(t.losses.data()), t.losses.size() * sizeof(t.losses[0]));
    std::vector<Tally::ExampleLoss> all;
    for (const std::string& part : comm.allgather(mine)) {  // plain structs, copied byte for byte
      const size_t at = all.size(), n = part.size() / sizeof(Tally::ExampleLoss);
      all.resize(at + n);
      std::memcpy(all.data() + at, part.data(), n * sizeof(Tally::ExampleLoss));
    }
    t.losses = std::move(all);
  }
  std::sort(t.losses.begin(), t.losses.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  double sum = 0;
  for (const auto& e : t.losses) sum += e.loss;
  return sum;
}

}  // namespace

LoaderOptions eval_loader_options(const EvalOptions& options) {
  LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.shuffle = false;
  lo.augment.enabled = false;
  lo.workers = options.workers;
  lo.rank = Comm::world().rank();  // under mpirun each rank reads its share, every example once
  lo.world = Comm::world().size();
  lo.pad_shards = false;
  return lo;
}

namespace {
// Data parallel: every rank's counts and sums added up, so each holds the whole data set's.
void reduce_over_ranks(EvalResult& r, Tally& t, int64_t num_labels) {
  Comm& comm = Comm::world();
  if (!comm.distributed()) return;
  int64_t flags[2] = {r.classification ? 1 : 0, 0};
  comm.allreduce_sum(flags, 1);
  const bool classification = flags[0] > 0;
  const size_t L = static_cast<size_t>(classification ? num_labels : 0);
  if (classification && r.confusion.empty()) {  // a rank whose share was empty
    r.confusion.assign(L, std::vector<int64_t>(L, 0));
    r.class_total.assign(L, 0);
    r.class_correct.assign(L, 0);
  }
  std::vector<int64_t> n = {t.top1, t.top5, t.scored, r.count, r.skipped, r.agreed, r.compared};
  for (size_t i = 0; i < L; ++i) {
    n.push_back(r.class_total[i]);
    n.push_back(r.class_correct[i]);
    for (size_t j = 0; j < L; ++j) n.push_back(r.confusion[i][j]);
  }
  comm.allreduce_sum(n.data(), static_cast<int>(n.size()));
  t.top1 = n[0], t.top5 = n[1], t.scored = n[2], r.count = n[3], r.skipped = n[4], r.agreed = n[5], r.compared = n[6];
  size_t at = 7;
  for (size_t i = 0; i < L; ++i) {
    r.class_total[i] = n[at++];
    r.class_correct[i] = n[at++];
    for (size_t j = 0; j < L; ++j) r.confusion[i][j] = n[at++];
  }
  r.classification = classification;
  // The problem type of a rank that saw data (they all infer the same from the same labels).
  const std::vector<std::string> types = comm.allgather(r.problem_type);
  for (const std::string& pt : types)
    if (!pt.empty()) r.problem_type = pt;
}
}  // namespace

namespace {
// The examples of a batch whose top-1 class is the same in both logits.
int64_t same_top1(const Tensor& a, const Tensor& b) {
  const int64_t N = a.dim(0), L = a.dim(1);
  int64_t same = 0;
  for (int64_t n = 0; n < N; ++n) {
    const float* x = a.data() + n * L;
    const float* y = b.data() + n * L;
    same += (std::max_element(x, x + L) - x) == (std::max_element(y, y + L) - y);
  }
  return same;
}
}  // namespace

EvalResult evaluate(const detail::InferencePlan& net, const DataSource& source, const EvalOptions& options,
                    const detail::InferencePlan* other) {
  const auto t0 = std::chrono::steady_clock::now();
  const detail::Exec ex = detail::resolve({});
  EvalResult r;
  r.dtype = dtype_short_name(net.dtype);
  if (other) r.agree_with = dtype_short_name(other->dtype);
  for (const auto& [id, name] : net.config.id2label) r.class_names.push_back(name);
  Loader loader(source, eval_loader_options(options), 0);
  Batch b;
  Tally t;
  while (loader.next(b)) {
    const Tensor logits = net.classify(ex, b.pixel_values);
    std::string pt = net.config.problem_type.value_or("");
    const float loss = classification_loss(logits, b.labels, pt);  // an empty problem type is inferred
    r.problem_type = pt;
    (void)loss;  // the batch's mean: the report adds the examples' own losses instead (score_batch)
    score_batch(logits, b.labels, b.indices, net.config.num_labels(), r, t);
    if (other) {
      r.agreed += same_top1(logits, other->classify(ex, b.pixel_values));
      r.compared += logits.dim(0);
    }
    if (options.progress) options.progress(r.count, source.size());
  }
  r.skipped = loader.skipped_total();
  reduce_over_ranks(r, t, net.config.num_labels());
  const double sum = loss_sum(t);
  r.loss = t.scored ? sum / static_cast<double>(t.scored) : NAN;
  if (r.classification && t.scored) {
    r.top1 = static_cast<double>(t.top1) / static_cast<double>(t.scored);
    r.top5 = static_cast<double>(t.top5) / static_cast<double>(t.scored);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::string eval_json(const EvalResult& r) {
  nlohmann::json j;
  j["examples"] = r.count;
  j["skipped"] = r.skipped;
  j["loss"] = std::isfinite(r.loss) ? nlohmann::json(r.loss) : nlohmann::json(nullptr);
  j["problem_type"] = r.problem_type;
  if (r.classification) {
    j["top1"] = r.top1;
    j["top5"] = r.top5;
    nlohmann::json pc = nlohmann::json::object();
    for (size_t c = 0; c < r.class_total.size(); ++c) {
      const std::string name = c < r.class_names.size() ? r.class_names[c] : std::to_string(c);
      pc[name] = r.class_total[c] ? nlohmann::json(static_cast<double>(r.class_correct[c]) / static_cast<double>(r.class_total[c]))
                                  : nlohmann::json(nullptr);
    }
    j["per_class_accuracy"] = pc;
    j["confusion_matrix"] = r.confusion;
  }
  j["dtype"] = r.dtype;
  if (!r.agree_with.empty())
    j["agreement"] = {{"with", r.agree_with},
                      {"top1_agree", r.compared ? static_cast<double>(r.agreed) / static_cast<double>(r.compared) : 0.0},
                      {"agreed", r.agreed},
                      {"compared", r.compared}};
  j["seconds"] = r.seconds;
  return j.dump();
}

std::string eval_text(const EvalResult& r) {
  std::ostringstream o;
  char buf[256];
  std::snprintf(buf, sizeof buf, "examples %lld (skipped %lld)   loss %.4f", static_cast<long long>(r.count),
                static_cast<long long>(r.skipped), r.loss);
  o << buf << "\n";
  if (r.dtype != "f32") o << "dtype " << r.dtype << "\n";
  if (!r.agree_with.empty()) {
    std::snprintf(buf, sizeof buf, "top-1 the same as %s on %lld / %lld examples (%.2f%%)\n", r.agree_with.c_str(),
                  static_cast<long long>(r.agreed), static_cast<long long>(r.compared),
                  r.compared ? 100.0 * static_cast<double>(r.agreed) / static_cast<double>(r.compared) : 0.0);
    o << buf;
  }
  if (!r.classification) return o.str();
  std::snprintf(buf, sizeof buf, "top-1 %.4f   top-5 %.4f\n\nper class:\n", r.top1, r.top5);
  o << buf;
  size_t w = 5;
  for (const auto& n : r.class_names) w = std::max(w, n.size());
  for (size_t c = 0; c < r.class_total.size(); ++c) {
    const std::string name = c < r.class_names.size() ? r.class_names[c] : std::to_string(c);
    std::snprintf(buf, sizeof buf, "  %-*s %6lld / %-6lld %.4f\n", static_cast<int>(w), name.c_str(),
                  static_cast<long long>(r.class_correct[c]), static_cast<long long>(r.class_total[c]),
                  r.class_total[c] ? static_cast<double>(r.class_correct[c]) / static_cast<double>(r.class_total[c]) : 0.0);
    o << buf;
  }
  o << "\nconfusion matrix (rows: true class, columns: predicted):\n" << std::string(w + 2, ' ');
  for (size_t c = 0; c < r.confusion.size(); ++c) {
    std::snprintf(buf, sizeof buf, "%6zu", c);
    o << buf;
  }
  o << "\n";
  for (size_t t = 0; t < r.confusion.size(); ++t) {
    const std::string name = t < r.class_names.size() ? r.class_names[t] : std::to_string(t);
    std::snprintf(buf, sizeof buf, "  %-*s", static_cast<int>(w), name.c_str());
    o << buf;
    for (int64_t v : r.confusion[t]) {
      std::snprintf(buf, sizeof buf, "%6lld", static_cast<long long>(v));
      o << buf;
    }
    o << "\n";
  }
  return o.str();
}

namespace {
std::string xml_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += ch;
    }
  }
  return o;
}

void write_file(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error(path + ": cannot write");
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) throw Error(path + ": write failed");
}
}  // namespace

namespace {

// Layout is computed from estimated text widths (0.6 em per character, generous for sans-serif
// digits and lower case), so that every label stays inside the picture.
double text_width(const std::string& s, double font_size) {
  size_t chars = 0;
  for (unsigned char ch : s) chars += (ch & 0xC0) != 0x80;  // UTF-8: count code points
  return 0.6 * font_size * static_cast<double>(chars);
}

std::string svg_open(double width, double height) {
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height << "\" viewBox=\"0 0 "
    << width << " " << height << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  return o.str();
}

std::string svg_text(double x, double y, const std::string& text, const char* anchor = "start", int font_size = 11) {
  std::ostringstream o;
  o << "<text x=\"" << x << "\" y=\"" << y << "\"";
  if (std::string(anchor) != "start") o << " text-anchor=\"" << anchor << "\"";
  if (font_size != 11) o << " font-size=\"" << font_size << "\"";
  o << ">" << xml_escape(text) << "</text>\n";
  return o.str();
}

// Every k-th label of a row or column of cells, so that labels wider than a cell do not overlap.
size_t label_stride(double label_extent, double cell) { return static_cast<size_t>(std::ceil(label_extent / std::max(cell, 1.0))); }

}  // namespace

void write_confusion_svg(const EvalResult& r, const std::string& path) {
  if (!r.classification) throw Error("--plot: the confusion matrix needs single-label classification data");
  const size_t L = r.confusion.size();
  const int cell = L <= 20 ? 36 : std::max(4, static_cast<int>(720 / L));
  const double margin = 12, grid = static_cast<double>(L) * cell;
  auto row_label = [&](size_t t) { return std::to_string(t) + "  " + (t < r.class_names.size() ? r.class_names[t] : ""); };
  double names_w = 0;
  for (size_t t = 0; t < L; ++t) names_w = std::max(names_w, text_width(row_label(t), 11));
  char buf[160];
  std::snprintf(buf, sizeof buf, "Confusion matrix: top-1 %.4f on %lld examples", r.top1, static_cast<long long>(r.count));
  const std::string title = buf, subtitle = "rows: true class; columns: predicted class, numbered as the rows";
  const double left = margin + names_w + 6, top = margin + 14 + 18 + 27;  // title, subtitle, column numbers
  const double width = std::ceil(std::max({left + grid + margin, 2 * margin + text_width(title, 14), 2 * margin + text_width(subtitle, 11)}));
  const double height = top + grid + margin;
  std::ostringstream o;
  o << svg_open(width, height);
  o << svg_text(margin, margin + 14, title, "start", 14);
  o << svg_text(margin, margin + 14 + 18, subtitle);
  const size_t row_stride = label_stride(13, cell), col_stride = label_stride(text_width(std::to_string(L - 1), 11) + 3, cell);
  for (size_t t = 0; t < L; ++t) {
    int64_t total = 0;
    for (int64_t v : r.confusion[t]) total += v;
    if (t % row_stride == 0) o << svg_text(left - 6, top + static_cast<double>(t) * cell + cell / 2.0 + 4, row_label(t), "end");
    for (size_t p = 0; p < L; ++p) {
      const double f = total ? static_cast<double>(r.confusion[t][p]) / static_cast<double>(total) : 0.0;
      const int shade = static_cast<int>(255 - 200 * f);
      o << "<rect x=\"" << left + static_cast<double>(p) * cell << "\" y=\"" << top + static_cast<double>(t) * cell
        << "\" width=\"" << cell << "\" height=\"" << cell << "\" fill=\"rgb(" << shade << "," << shade << ",255)\" stroke=\"#ccc\"/>\n";
      if (cell >= 24)
        o << svg_text(left + static_cast<double>(p) * cell + cell / 2.0, top + static_cast<double>(t) * cell + cell / 2.0 + 4,
                      std::to_string(r.confusion[t][p]), "middle");
    }
  }
  for (size_t p = 0; p < L; p += col_stride)
    o << svg_text(left + static_cast<double>(p) * cell + cell / 2.0, top - 6, std::to_string(p), "middle");
  o << "</svg>\n";
  write_file(path, o.str());
}

namespace {

struct Series {
  const std::vector<CurvePoint>* points;
  std::string colour, name;
};

// One panel of training.svg at x0: a title, a legend (a swatch per series), the plot with its
// y ticks and the last step. Series without a finite point are left out of plot and legend.
std::string curve_panel(double x0, double W, double H, const std::string& title, const std::vector<Series>& all, bool unit_range) {
  std::vector<Series> series;
  double xmin = 0, xmax = 1, ymin = 1e300, ymax = -1e300;
  for (const Series& s : all) {
    bool any = false;
    for (const auto& p : *s.points) {
      if (!std::isfinite(p.y)) continue;
      any = true;
      xmax = std::max(xmax, p.x);
      ymin = std::min(ymin, p.y);
      ymax = std::max(ymax, p.y);
    }
    if (any) series.push_back(s);
  }
  if (ymin > ymax) ymin = 0, ymax = 1;
  if (unit_range) ymin = std::min(ymin, std::max(0.0, ymax - 0.5)), ymax = std::min(1.0, ymax + 0.02);
  if (ymax - ymin < 1e-9) ymax = ymin + 1;
  std::vector<std::string> ticks;
  double tick_w = 0;
  for (int k = 0; k <= 4; ++k) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3g", ymin + (ymax - ymin) * k / 4.0);
    ticks.push_back(b);
    tick_w = std::max(tick_w, text_width(b, 11));
  }
  const double pad_left = std::max(50.0, tick_w + 16), pad_right = 20, pad_top = 56, pad_bottom = 34;
  const double pw = W - pad_left - pad_right, ph = H - pad_top - pad_bottom;
  auto X = [&](double x) { return x0 + pad_left + (x - xmin) / (xmax - xmin) * pw; };
  auto Y = [&](double y) { return pad_top + (ymax - y) / (ymax - ymin) * ph; };
  std::ostringstream o;
  o << svg_text(x0 + pad_left, 22, title, "start", 14);
  double lx = x0 + pad_left;
  for (const Series& s : series) {  // the legend: a swatch, then the series' name
    o << "<rect x=\"" << lx << "\" y=\"32\" width=\"12\" height=\"12\" fill=\"" << s.colour << "\"/>\n";
    o << svg_text(lx + 16, 42, s.name);
    lx += 16 + text_width(s.name, 11) + 18;
  }
  o << "<rect x=\"" << x0 + pad_left << "\" y=\"" << pad_top << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"#888\"/>\n";
  for (int k = 0; k <= 4; ++k) o << svg_text(x0 + pad_left - 4, Y(ymin + (ymax - ymin) * k / 4.0) + 4, ticks[static_cast<size_t>(k)], "end");
  char b[32];
  std::snprintf(b, sizeof b, "step %.0f", xmax);
  o << svg_text(x0 + pad_left + pw, pad_top + ph + 16, b, "end");
  if (series.empty()) o << svg_text(x0 + pad_left + pw / 2, pad_top + ph / 2, "no data yet", "middle");
  for (const Series& s : series) {
    o << "<polyline fill=\"none\" stroke=\"" << s.colour << "\" stroke-width=\"1.5\" points=\"";
    for (const auto& p : *s.points)
      if (std::isfinite(p.y)) o << X(p.x) << "," << Y(p.y) << " ";
    o << "\"/>\n";
    if (s.points->size() < 60)
      for (const auto& p : *s.points)
        if (std::isfinite(p.y)) o << "<circle cx=\"" << X(p.x) << "\" cy=\"" << Y(p.y) << "\" r=\"2.5\" fill=\"" << s.colour << "\"/>\n";
  }
  return o.str();
}

}  // namespace

TrainingCurves read_training_log(const std::string& path, int64_t up_to_step, std::string* kept) {
  TrainingCurves c;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      if (!j.is_object()) continue;
      if (up_to_step >= 0 && j.value("step", int64_t{0}) > up_to_step) continue;
      if (kept) *kept += line + "\n";
      if (!j.contains("step")) continue;  // the summary line of a finished run
      const double x = j["step"].get<double>();
      if (j.contains("loss") && j["loss"].is_number()) c.loss.push_back({x, j["loss"].get<double>()});
      if (j.contains("eval_loss") && j["eval_loss"].is_number()) c.eval_loss.push_back({x, j["eval_loss"].get<double>()});
      if (j.contains("eval_accuracy") && j["eval_accuracy"].is_number())
        c.eval_accuracy.push_back({x, j["eval_accuracy"].get<double>()});
    } catch (const nlohmann::json::exception&) {
    }
  }
  return c;
}

void write_training_svg(const std::string& path, const TrainingCurves& c) {
  // Two panels side by side: loss (training, evaluation) and evaluation accuracy, against the step.
  const double W = 420, H = 290;
  std::ostringstream o;
  o << svg_open(2 * W, H);
  o << curve_panel(0, W, H, "loss", {{&c.loss, "#1f60c4", "training"}, {&c.eval_loss, "#c41f1f", "evaluation"}}, false);
  o << curve_panel(W, W, H, "evaluation accuracy", {{&c.eval_accuracy, "#2a9d3a", "top-1"}}, true);
  o << "</svg>\n";
  write_file(path, o.str());
}

}  // namespace convnext::train
