// Evaluation: the inference kernels over a data source, with the loss transformers would
// report and the usual classification figures.
#include "train/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "convnext/error.h"
#include "io/json_file.h"

namespace convnext::train {

EvalResult evaluate(const detail::Network& net, const DataSource& source, int64_t batch_size,
                    const std::function<void(int64_t, int64_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  EvalResult r;
  const int64_t L = net.config.num_labels();
  for (const auto& [id, name] : net.config.id2label) r.class_names.push_back(name);
  LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = false;
  lo.augment.enabled = false;
  Loader loader(source, lo, 0);
  Batch b;
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0, scored = 0;
  while (loader.next(b)) {
    const Tensor logits = detail::classify_logits(net, b.pixel_values);
    const int64_t N = logits.dim(0);
    std::string pt = net.config.problem_type.value_or("");
    const float loss = classification_loss(logits, b.labels, pt);
    r.problem_type = pt;
    if (pt == "single_label_classification") {
      r.classification = true;
      if (r.confusion.empty()) {
        r.confusion.assign(static_cast<size_t>(L), std::vector<int64_t>(static_cast<size_t>(L), 0));
        r.class_total.assign(static_cast<size_t>(L), 0);
        r.class_correct.assign(static_cast<size_t>(L), 0);
      }
      int64_t counted = 0;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t y = b.labels.class_ids[static_cast<size_t>(n)];
        if (y < 0) continue;  // -100: ignored by the loss and the accuracy alike
        ++counted;
        const float* z = logits.data() + n * L;
        const int64_t pred = std::max_element(z, z + L) - z;
        int64_t above = 0;  // classes scoring higher than the true one
        for (int64_t j = 0; j < L; ++j) above += z[j] > z[y];
        top1 += pred == y;
        top5 += above < 5;
        r.class_total[static_cast<size_t>(y)]++;
        r.class_correct[static_cast<size_t>(y)] += pred == y;
        r.confusion[static_cast<size_t>(y)][static_cast<size_t>(pred)]++;
      }
      if (counted > 0) loss_sum += static_cast<double>(loss) * static_cast<double>(counted);
      scored += counted;
    } else {
      loss_sum += static_cast<double>(loss) * static_cast<double>(N);
      scored += N;
    }
    r.count += N;
    if (progress) progress(r.count, source.size());
  }
  r.skipped = loader.skipped_total();
  r.loss = scored ? loss_sum / static_cast<double>(scored) : NAN;
  if (r.classification && scored) {
    r.top1 = static_cast<double>(top1) / static_cast<double>(scored);
    r.top5 = static_cast<double>(top5) / static_cast<double>(scored);
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
  j["seconds"] = r.seconds;
  return j.dump();
}

std::string eval_text(const EvalResult& r) {
  std::ostringstream o;
  char buf[256];
  std::snprintf(buf, sizeof buf, "examples %lld (skipped %lld)   loss %.4f", static_cast<long long>(r.count),
                static_cast<long long>(r.skipped), r.loss);
  o << buf << "\n";
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

void write_confusion_svg(const EvalResult& r, const std::string& path) {
  if (!r.classification) throw Error("--plot: the confusion matrix needs single-label classification data");
  const size_t L = r.confusion.size();
  const int cell = L <= 20 ? 36 : std::max(4, static_cast<int>(720 / L));
  const int left = 160, top = 60, size = static_cast<int>(L) * cell;
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << left + size + 20 << "\" height=\"" << top + size + 40
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  char buf[128];
  std::snprintf(buf, sizeof buf, "top-1 %.4f, %lld examples", r.top1, static_cast<long long>(r.count));
  o << "<text x=\"" << left << "\" y=\"20\" font-size=\"14\">Confusion matrix (rows: true, columns: predicted) — " << buf
    << "</text>\n";
  for (size_t t = 0; t < L; ++t) {
    int64_t total = 0;
    for (int64_t v : r.confusion[t]) total += v;
    const std::string name = t < r.class_names.size() ? r.class_names[t] : std::to_string(t);
    o << "<text x=\"" << left - 6 << "\" y=\"" << top + static_cast<int>(t) * cell + cell / 2 + 4
      << "\" text-anchor=\"end\">" << xml_escape(name) << "</text>\n";
    for (size_t p = 0; p < L; ++p) {
      const double f = total ? static_cast<double>(r.confusion[t][p]) / static_cast<double>(total) : 0.0;
      const int shade = static_cast<int>(255 - 200 * f);
      o << "<rect x=\"" << left + static_cast<int>(p) * cell << "\" y=\"" << top + static_cast<int>(t) * cell
        << "\" width=\"" << cell << "\" height=\"" << cell << "\" fill=\"rgb(" << shade << "," << shade << ",255)\" stroke=\"#ccc\"/>\n";
      if (cell >= 24)
        o << "<text x=\"" << left + static_cast<int>(p) * cell + cell / 2 << "\" y=\"" << top + static_cast<int>(t) * cell + cell / 2 + 4
          << "\" text-anchor=\"middle\">" << r.confusion[t][p] << "</text>\n";
    }
  }
  for (size_t p = 0; p < L; ++p)
    o << "<text x=\"" << left + static_cast<int>(p) * cell + cell / 2 << "\" y=\"" << top - 6 << "\" text-anchor=\"middle\">" << p
      << "</text>\n";
  o << "</svg>\n";
  write_file(path, o.str());
}

void write_training_svg(const std::string& path, const std::vector<CurvePoint>& train_loss,
                        const std::vector<CurvePoint>& eval_loss, const std::vector<CurvePoint>& eval_accuracy) {
  // Two panels side by side: loss (train, eval) against the step, accuracy against the step.
  const int W = 420, H = 280, pad = 50;
  auto panel = [&](int x0, const std::string& title, const std::vector<std::pair<std::vector<CurvePoint>, std::string>>& series,
                   bool unit_range) {
    double xmin = 0, xmax = 1, ymin = 1e300, ymax = -1e300;
    for (const auto& [pts, colour] : series)
      for (const auto& p : pts) {
        if (!std::isfinite(p.y)) continue;
        xmax = std::max(xmax, p.x);
        ymin = std::min(ymin, p.y);
        ymax = std::max(ymax, p.y);
      }
    if (ymin > ymax) ymin = 0, ymax = 1;
    if (unit_range) ymin = std::min(ymin, std::max(0.0, ymax - 0.5)), ymax = std::min(1.0, ymax + 0.02);
    if (ymax - ymin < 1e-9) ymax = ymin + 1;
    auto X = [&](double x) { return x0 + pad + (x - xmin) / (xmax - xmin) * (W - 2 * pad); };
    auto Y = [&](double y) { return pad + (ymax - y) / (ymax - ymin) * (H - 2 * pad); };
    std::ostringstream o;
    o << "<text x=\"" << x0 + pad << "\" y=\"24\" font-size=\"14\">" << title << "</text>\n";
    o << "<rect x=\"" << x0 + pad << "\" y=\"" << pad << "\" width=\"" << W - 2 * pad << "\" height=\"" << H - 2 * pad
      << "\" fill=\"none\" stroke=\"#888\"/>\n";
    char buf[64];
    for (int k = 0; k <= 4; ++k) {
      const double y = ymin + (ymax - ymin) * k / 4.0;
      std::snprintf(buf, sizeof buf, "%.3g", y);
      o << "<text x=\"" << x0 + pad - 4 << "\" y=\"" << Y(y) + 4 << "\" text-anchor=\"end\">" << buf << "</text>\n";
    }
    std::snprintf(buf, sizeof buf, "%.0f", xmax);
    o << "<text x=\"" << x0 + W - pad << "\" y=\"" << H - pad + 16 << "\" text-anchor=\"end\">step " << buf << "</text>\n";
    for (const auto& [pts, colour] : series) {
      o << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\" points=\"";
      for (const auto& p : pts)
        if (std::isfinite(p.y)) o << X(p.x) << "," << Y(p.y) << " ";
      o << "\"/>\n";
      if (pts.size() < 60)
        for (const auto& p : pts)
          if (std::isfinite(p.y)) o << "<circle cx=\"" << X(p.x) << "\" cy=\"" << Y(p.y) << "\" r=\"2.5\" fill=\"" << colour << "\"/>\n";
    }
    return o.str();
  };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << 2 * W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << panel(0, "loss (blue: training, red: evaluation)", {{train_loss, "#1f60c4"}, {eval_loss, "#c41f1f"}}, false);
  o << panel(W, "evaluation top-1 accuracy", {{eval_accuracy, "#2a9d3a"}}, true);
  o << "</svg>\n";
  write_file(path, o.str());
}

}  // namespace convnext::train
