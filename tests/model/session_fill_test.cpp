// Session::fill_synthetic (what fkv-bench --fill synthetic uses) advances the context without a forward pass.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "engine/session.h"
#include "gguf/gguf_reader.h"
#include "test_paths.h"
#include "util/error.h"

namespace fkv {
namespace {

TEST(SessionFill, SyntheticFillAdvancesAndRespectsTheContext) {
  auto file = GgufFile::open(test::default_model_path());
  auto backend = create_cpu_backend(0);
  auto model = LlamaModel::load(*file, *backend);
  SessionOptions so;
  so.ctx = 600;
  Session session(*model, so);
  session.fill_synthetic(513, 1);  // more than one chunk
  EXPECT_EQ(session.n_past(), 513);
  const std::vector<int32_t> next = {1};
  const std::vector<float>& logits = session.eval(next);
  ASSERT_EQ(logits.size(), size_t(model->hparams().vocab));
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(session.n_past(), 514);
  try {
    session.fill_synthetic(100, 2);
    FAIL() << "expected kContextFull";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kContextFull);
  }
  EXPECT_EQ(session.n_past(), 514);
}

}  // namespace
}  // namespace fkv
