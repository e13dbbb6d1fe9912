// End to end: teacher-forced logits of the real default model on the CPU backend against golden logits from
// independent references (Hugging Face transformers fp32; numpy), committed in tests/fixtures/ by
// tools/golden/make_golden.py. Tolerances (issue 2): relative error per position < 1e-3 with an fp32 KV cache,
// < 1e-2 with the normal f16 cache, and the same argmax at every position.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "engine/session.h"
#include "gguf/gguf_reader.h"
#include "model/llama2c_convert.h"
#include "model/llama_model.h"
#include "test_paths.h"

namespace fkv {
namespace {

using nlohmann::json;

json load_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return json::parse(in);
}

std::vector<float> load_f32(const std::string& path, size_t count) {
  std::ifstream in(path, std::ios::binary);
  std::vector<float> v(count);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * sizeof(float)));
  if (!in) throw std::runtime_error("short read from " + path);
  return v;
}

// ||a - b|| / ||b|| over the given ids (all ids when ids is empty).
double rel_error(const float* got, const std::vector<std::pair<int, float>>& want) {
  double num = 0, den = 0;
  for (const auto& [id, value] : want) {
    num += (got[id] - value) * double(got[id] - value);
    den += double(value) * value;
  }
  return std::sqrt(num / den);
}

struct GoldenCase {
  std::string name;
  std::vector<int32_t> tokens;
  std::vector<int> argmax;
  std::vector<std::vector<std::pair<int, float>>> topk;
  std::vector<int> full_positions;
  std::vector<float> full_logits;  // [full_positions.size(), vocab]
};

std::vector<GoldenCase> load_cases(const std::string& fixture, int vocab) {
  const json j = load_json(test::fixture(fixture));
  std::vector<GoldenCase> cases;
  for (const auto& c : j.at("cases")) {
    GoldenCase g;
    g.name = c.at("name").get<std::string>();
    g.tokens = c.at("tokens").get<std::vector<int32_t>>();
    g.argmax = c.at("argmax").get<std::vector<int>>();
    for (const auto& pos : c.at("topk")) {
      std::vector<std::pair<int, float>> entries;
      for (const auto& e : pos) entries.emplace_back(e.at(0).get<int>(), e.at(1).get<float>());
      g.topk.push_back(entries);
    }
    g.full_positions = c.at("full_logits_positions").get<std::vector<int>>();
    g.full_logits = load_f32(test::fixture(c.at("full_logits_file").get<std::string>()),
                             g.full_positions.size() * size_t(vocab));
    cases.push_back(std::move(g));
  }
  return cases;
}

void check_model(const std::string& model_path, const std::string& fixture, KvType kv_type, double tolerance) {
  auto file = GgufFile::open(model_path);
  auto backend = create_cpu_backend(0);
  auto model = LlamaModel::load(*file, *backend);
  const int vocab = model->hparams().vocab;
  for (const GoldenCase& c : load_cases(fixture, vocab)) {
    SCOPED_TRACE(c.name);
    SessionOptions so;
    so.ctx = int(c.tokens.size());
    so.kv.type = kv_type;
    Session session(*model, so);
    const std::vector<float> logits = session.eval(c.tokens, true);
    ASSERT_EQ(logits.size(), c.tokens.size() * size_t(vocab));
    double worst = 0;
    int argmax_mismatches = 0;
    for (size_t p = 0; p < c.tokens.size(); ++p) {
      const float* row = logits.data() + p * vocab;
      worst = std::max(worst, rel_error(row, c.topk[p]));
      const int got = int(std::max_element(row, row + vocab) - row);
      argmax_mismatches += got != c.argmax[p];
    }
    for (size_t i = 0; i < c.full_positions.size(); ++i) {
      std::vector<std::pair<int, float>> all;
      for (int id = 0; id < vocab; ++id) all.emplace_back(id, c.full_logits[i * vocab + size_t(id)]);
      const double e = rel_error(logits.data() + size_t(c.full_positions[i]) * vocab, all);
      EXPECT_LT(e, tolerance) << "full logits at position " << c.full_positions[i];
      worst = std::max(worst, e);
    }
    EXPECT_LT(worst, tolerance);
    EXPECT_EQ(argmax_mismatches, 0);
    std::printf("[ golden ] %s: %zu positions, worst rel error %.2e, argmax mismatches %d\n", c.name.c_str(),
                c.tokens.size(), worst, argmax_mismatches);
  }
}

TEST(GoldenLogits, SmolLM2CpuFp32CacheMatchesTransformers) {
  check_model(test::default_model_path(), "golden_smollm2.json", KvType::kF32, 1e-3);
}

TEST(GoldenLogits, SmolLM2CpuF16CacheMatchesTransformers) {
  check_model(test::default_model_path(), "golden_smollm2.json", KvType::kF16, 1e-2);
}

// stories260K (llama2.c, odd shape: head_dim 8, GQA 2:1) through our converter, against the numpy reference.
std::string converted_stories260k() {
  const std::string out = (std::filesystem::temp_directory_path() / "fkv_test_stories260k.gguf").string();
  convert_llama2c(test::shared_dir() + "/models/stories260K.bin", out);
  return out;
}

TEST(GoldenLogits, Stories260kCpuMatchesNumpy) {
  const std::string path = converted_stories260k();
  check_model(path, "golden_stories260k.json", KvType::kF32, 1e-3);
  check_model(path, "golden_stories260k.json", KvType::kF16, 1e-2);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace fkv
