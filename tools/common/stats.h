// Summary statistics of repeated measurements (fkv-bench's repetitions).
#pragma once
#include <vector>

namespace fkv::tools {

struct Summary {
  double median = 0, min = 0, max = 0, mean = 0, stdev = 0;  // stdev: sample standard deviation
  int count = 0;
};

Summary summarize(std::vector<double> values);  // empty input: all zeros

}  // namespace fkv::tools
