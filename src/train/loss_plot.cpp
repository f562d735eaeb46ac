#include "train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/input_file.h"

namespace sdtune::train {

std::vector<std::pair<int64_t, double>> read_loss_log(const std::string& path) {
  std::vector<std::pair<int64_t, double>> points;
  std::istringstream in(io::read_file_if_exists(path, io::kMaxTextFileBytes, "training log"));
  std::string line;
  while (std::getline(in, line)) {
    const auto json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_object() && json.contains("step") && json.contains("loss") && json["loss"].is_number())
      points.emplace_back(json["step"].get<int64_t>(), json["loss"].get<double>());
  }
  return points;
}

namespace {

std::string number(double v) {
  std::ostringstream s;
  s.precision(4);
  s << v;
  return s.str();
}

}  // namespace

void write_loss_plot(const std::vector<std::pair<int64_t, double>>& points, const std::string& svg_path) {
  if (points.empty()) throw Error(svg_path, "no loss values to plot");
  const double width = 800, height = 400, left = 70, right = 20, top = 40, bottom = 50;
  double min_loss = points[0].second, max_loss = points[0].second;
  for (const auto& p : points) min_loss = std::min(min_loss, p.second), max_loss = std::max(max_loss, p.second);
  if (max_loss - min_loss < 1e-12) max_loss = min_loss + 1e-3;
  const double first = double(points.front().first), last = std::max(double(points.back().first), first + 1);
  auto x = [&](double step) { return left + (step - first) / (last - first) * (width - left - right); };
  auto y = [&](double loss) { return top + (max_loss - loss) / (max_loss - min_loss) * (height - top - bottom); };

  std::ostringstream raw, smooth;
  double ema = points[0].second;
  for (const auto& [step, loss] : points) {
    ema = 0.9 * ema + 0.1 * loss;
    raw << number(x(double(step))) << "," << number(y(loss)) << " ";
    smooth << number(x(double(step))) << "," << number(y(ema)) << " ";
  }
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << width / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">training loss (" << points.size() << " steps)</text>\n";
  for (int k = 0; k <= 4; ++k) {  // horizontal grid lines with loss labels
    const double loss = min_loss + (max_loss - min_loss) * k / 4.0;
    svg << "<line x1=\"" << left << "\" x2=\"" << width - right << "\" y1=\"" << number(y(loss)) << "\" y2=\"" << number(y(loss))
        << "\" stroke=\"#ddd\"/>\n<text x=\"" << left - 6 << "\" y=\"" << number(y(loss) + 4) << "\" text-anchor=\"end\">" << number(loss)
        << "</text>\n";
  }
  for (int k = 0; k <= 4; ++k) {  // step labels
    const double step = std::round(first + (last - first) * k / 4.0);
    svg << "<text x=\"" << number(x(step)) << "\" y=\"" << height - bottom + 18 << "\" text-anchor=\"middle\">" << int64_t(step) << "</text>\n";
  }
  svg << "<text x=\"" << width / 2 << "\" y=\"" << height - 10 << "\" text-anchor=\"middle\">step</text>\n"
      << "<polyline fill=\"none\" stroke=\"#9ecae1\" stroke-width=\"1\" points=\"" << raw.str() << "\"/>\n"
      << "<polyline fill=\"none\" stroke=\"#08519c\" stroke-width=\"2\" points=\"" << smooth.str() << "\"/>\n"
      << "<text x=\"" << width - right << "\" y=\"" << top - 6 << "\" text-anchor=\"end\" fill=\"#08519c\">moving average (0.9)</text>\n"
      << "</svg>\n";
  io::write_file_atomically(svg_path, [&](std::ostream& out) { out << svg.str(); });
}

}  // namespace sdtune::train
