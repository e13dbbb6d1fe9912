#include "fourier/fourier_profile.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <string>

#include "util/error.h"

namespace fkv {

double FourierProfile::compressed_fraction() const {
  double comp = 0, total = 0;
  for (const Layer& l : layers)
    for (const auto* part : {&l.k, &l.v})
      for (const auto& head : *part) {
        comp += double(head.size());
        total += head_dim;
      }
  return total > 0 ? comp / total : 0.0;
}

LayerFractions layer_fractions(int layer, int n_layers, double ratio) {
  if (ratio >= 0) return {ratio, ratio};
  const int early = int(std::lround(n_layers / 7.0)), late = int(std::lround(2.0 * n_layers / 7.0));
  if (layer < early) return {0.90, 0.95};
  if (layer >= n_layers - late) return {0.50, 0.70};
  return {0.80, 0.80};
}

FourierProfile heuristic_fourier_profile(int n_layers, int n_kv_heads, int head_dim, double ratio) {
  require(ratio <= 1.0, ErrorCode::kInvalidArgument, "--fourier-ratio must be at most 1");
  FourierProfile p;
  p.n_layers = n_layers;
  p.n_kv_heads = n_kv_heads;
  p.head_dim = head_dim;
  p.source = "heuristic";
  for (int l = 0; l < n_layers; ++l) {
    const LayerFractions f = layer_fractions(l, n_layers, ratio);
    FourierProfile::Layer layer;
    // K: whole pairs, so that a rotated pair is either exact or compressed.
    const int k_comp = std::min(head_dim, 2 * int(std::lround(f.k * head_dim / 2.0)));
    std::vector<int> k_dims(static_cast<size_t>(k_comp));
    std::iota(k_dims.begin(), k_dims.end(), 0);
    // V: keep d - c dims at evenly spaced indices, compress the rest.
    const int v_keep = head_dim - std::min(head_dim, int(std::lround(f.v * head_dim)));
    std::vector<bool> kept(static_cast<size_t>(head_dim), false);
    for (int i = 0; i < v_keep; ++i) kept[size_t((2 * i + 1) * head_dim / (2 * v_keep))] = true;
    std::vector<int> v_dims;
    for (int j = 0; j < head_dim; ++j)
      if (!kept[size_t(j)]) v_dims.push_back(j);
    layer.k.assign(size_t(n_kv_heads), k_dims);
    layer.v.assign(size_t(n_kv_heads), v_dims);
    p.layers.push_back(std::move(layer));
  }
  return p;
}

namespace {

std::vector<std::vector<int>> lowest_error(const std::vector<std::vector<double>>& mse, int head_dim,
                                           double frac) {
  struct Item {
    double err;
    int head, dim;
  };
  std::vector<Item> items;
  for (size_t h = 0; h < mse.size(); ++h)
    for (int j = 0; j < head_dim; ++j) items.push_back({mse[h][size_t(j)], int(h), j});
  // Ties (and NaN-free equal errors) broken by head then dim, so that the choice is reproducible.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.err < b.err; });
  const size_t count = std::min(items.size(), size_t(std::lround(frac * double(items.size()))));
  std::vector<std::vector<int>> out(mse.size());
  for (size_t i = 0; i < count; ++i) out[size_t(items[i].head)].push_back(items[i].dim);
  for (auto& dims : out) std::sort(dims.begin(), dims.end());
  return out;
}

}  // namespace

void select_compressed_dims(FourierProfile& p, double ratio) {
  require(ratio <= 1.0, ErrorCode::kInvalidArgument, "--fourier-ratio must be at most 1");
  for (int l = 0; l < p.n_layers; ++l) {
    FourierProfile::Layer& layer = p.layers[size_t(l)];
    require(!layer.k_mse.empty() && !layer.v_mse.empty(), ErrorCode::kInvalidArgument,
            "profile '" + p.source + "' has no calibration errors to re-select dims from (layer " +
                std::to_string(l) + ")");
    const LayerFractions f = layer_fractions(l, p.n_layers, ratio);
    layer.k = lowest_error(layer.k_mse, p.head_dim, f.k);
    layer.v = lowest_error(layer.v_mse, p.head_dim, f.v);
  }
}

std::string fourier_profile_json(const FourierProfile& p) {
  nlohmann::json j;
  j["format"] = "fkv-fourier-profile";
  j["version"] = 1;
  j["n_layers"] = p.n_layers;
  j["n_kv_heads"] = p.n_kv_heads;
  j["head_dim"] = p.head_dim;
  j["source"] = p.source;
  j["compressed_fraction"] = p.compressed_fraction();
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : p.layers) {
    nlohmann::json o;
    o["k"] = l.k;
    o["v"] = l.v;
    if (!l.k_mse.empty()) o["k_mse"] = l.k_mse;
    if (!l.v_mse.empty()) o["v_mse"] = l.v_mse;
    layers.push_back(std::move(o));
  }
  j["layers"] = std::move(layers);
  return j.dump(1) + "\n";
}

void save_fourier_profile(const FourierProfile& p, const std::string& path) {
  std::ofstream out(path);
  require(bool(out), ErrorCode::kIo, "cannot write Fourier profile " + path);
  out << fourier_profile_json(p);
  require(bool(out), ErrorCode::kIo, "writing Fourier profile " + path + " failed");
}

FourierProfile load_fourier_profile(const std::string& path) {
  std::ifstream in(path);
  require(bool(in), ErrorCode::kIo, "cannot open Fourier profile " + path);
  std::stringstream text;
  text << in.rdbuf();
  return parse_fourier_profile(text.str(), path);
}

FourierProfile parse_fourier_profile(const std::string& json_text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kBadFile, "Fourier profile " + origin + " is not valid JSON: " + e.what());
  }
  try {
    require(j.is_object() && j.value("format", "") == "fkv-fourier-profile" && j.value("version", 0) == 1,
            ErrorCode::kBadFile, "Fourier profile " + origin + ": not an fkv-fourier-profile version 1");
    FourierProfile p;
    p.n_layers = j.at("n_layers").get<int>();
    p.n_kv_heads = j.at("n_kv_heads").get<int>();
    p.head_dim = j.at("head_dim").get<int>();
    p.source = j.value("source", origin);
    for (const auto& o : j.at("layers")) {
      FourierProfile::Layer l;
      l.k = o.at("k").get<std::vector<std::vector<int>>>();
      l.v = o.at("v").get<std::vector<std::vector<int>>>();
      if (o.contains("k_mse")) l.k_mse = o.at("k_mse").get<std::vector<std::vector<double>>>();
      if (o.contains("v_mse")) l.v_mse = o.at("v_mse").get<std::vector<std::vector<double>>>();
      p.layers.push_back(std::move(l));
    }
    require(int(p.layers.size()) == p.n_layers, ErrorCode::kBadFile,
            "Fourier profile " + origin + ": n_layers is " + std::to_string(p.n_layers) + " but it lists " +
                std::to_string(p.layers.size()) + " layers");
    return p;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kBadFile, "Fourier profile " + origin + ": " + e.what());
  }
}

void validate_fourier_profile(const FourierProfile& p, int n_layers, int n_kv_heads, int head_dim) {
  auto mismatch = [&](const char* what, int have, int want) {
    require(have == want, ErrorCode::kInvalidArgument,
            "Fourier profile '" + p.source + "' was made for " + std::to_string(have) + " " + what +
                ", the model has " + std::to_string(want));
  };
  mismatch("layers", p.n_layers, n_layers);
  mismatch("layers (listed)", int(p.layers.size()), n_layers);
  mismatch("KV heads", p.n_kv_heads, n_kv_heads);
  mismatch("dims per head", p.head_dim, head_dim);
  for (int l = 0; l < n_layers; ++l) {
    const auto& layer = p.layers[size_t(l)];
    for (const auto& [name, part, mse] :
         {std::tuple{"K", &layer.k, &layer.k_mse}, {"V", &layer.v, &layer.v_mse}}) {
      const std::string where = "Fourier profile layer " + std::to_string(l) + " " + name;
      mismatch((std::string("KV heads in layer ") + std::to_string(l) + " " + name).c_str(),
               int(part->size()), n_kv_heads);
      if (!mse->empty()) {
        mismatch((std::string("error rows in layer ") + std::to_string(l) + " " + name).c_str(),
                 int(mse->size()), n_kv_heads);
        for (const auto& row : *mse)
          mismatch((std::string("error columns in layer ") + std::to_string(l) + " " + name).c_str(),
                   int(row.size()), head_dim);
      }
      for (size_t h = 0; h < part->size(); ++h) {
        const auto& dims = (*part)[h];
        for (size_t i = 0; i < dims.size(); ++i) {
          require(dims[i] >= 0 && dims[i] < head_dim, ErrorCode::kInvalidArgument,
                  where + " head " + std::to_string(h) + ": dim " + std::to_string(dims[i]) +
                      " is outside 0.." + std::to_string(head_dim - 1));
          require(i == 0 || dims[i] > dims[i - 1], ErrorCode::kInvalidArgument,
                  where + " head " + std::to_string(h) + ": dims must be ascending without repeats");
        }
      }
    }
  }
}

SplitKvDims split_dims(const std::vector<std::vector<int>>& compressed, int head_dim) {
  SplitKvDims d;
  d.keep_offset.push_back(0);
  d.comp_offset.push_back(0);
  for (const auto& comp : compressed) {
    std::vector<bool> is_comp(static_cast<size_t>(head_dim), false);
    for (int j : comp) is_comp[size_t(j)] = true;
    for (int j = 0; j < head_dim; ++j) (is_comp[size_t(j)] ? d.comp : d.keep).push_back(j);
    d.keep_offset.push_back(int(d.keep.size()));
    d.comp_offset.push_back(int(d.comp.size()));
  }
  return d;
}

}  // namespace fkv
