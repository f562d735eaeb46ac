// The loss curve of a run as an SVG image (browsers and the Hub show it): each step's loss, and a
// smoothed line (exponential moving average, TensorBoard's 0.9) that shows the trend through the noise.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sdtune::train {

// (step, loss) pairs from a logs/train.jsonl file; lines that are not whole JSON objects are skipped.
std::vector<std::pair<int64_t, double>> read_loss_log(const std::string& path);

// Writes the plot atomically. Needs at least one point.
void write_loss_plot(const std::vector<std::pair<int64_t, double>>& points, const std::string& svg_path);

}  // namespace sdtune::train
