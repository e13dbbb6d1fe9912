// Each Vulkan op against the CPU reference on fresh random inputs, poisoned outputs and odd sizes.
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "model/ggml_type.h"
#include "model/quant.h"
#include "util/error.h"
#include "util/half.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                              GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K};

int64_t block_cols(GgmlType t, int64_t want) {
  const int64_t b = type_traits(t).block_elems;
  return (want + b - 1) / b * b;
}

class TypeTest : public VulkanTest, public ::testing::WithParamInterface<GgmlType> {};

TEST_P(TypeTest, EmbedMatchesCpu) {
  const GgmlType type = GetParam();
  const int64_t rows = 37;
  for (int64_t want_cols : {int64_t(256), int64_t(173)}) {
    const int64_t cols = block_cols(type, want_cols);
    const auto bytes = random_weight(type, rows, cols, 11);
    auto [wv, wc] = both_bytes(bytes.data(), bytes.size(), "table");
    const std::vector<int32_t> ids = {3, 0, 36, 17, 3, 29, 8};
    const int n = int(ids.size());
    auto [tv, tc] = both_bytes(ids.data(), ids.size() * 4, "tokens");
    BufferPtr ov = poisoned(size_t(n * cols) * 4, "out");
    BufferPtr oc = cpu->alloc(size_t(n * cols) * 4, "out");
    vk->embed(Weight{wv.get(), type, rows, cols}, *tv, n, *ov);
    cpu->embed(Weight{wc.get(), type, rows, cols}, *tc, n, *oc);
    EXPECT_LT(max_rel_error(read(*vk, *ov, n * cols), read(*cpu, *oc, n * cols)), 1e-6)
        << type_name(uint32_t(type)) << " cols " << cols;
  }
}

TEST_P(TypeTest, MatmulMatchesCpu) {
  const GgmlType type = GetParam();
  for (int64_t want_cols : {int64_t(512), int64_t(173)}) {
    const int64_t cols = block_cols(type, want_cols), rows = 67;
    const auto bytes = random_weight(type, rows, cols, 5);
    auto [wv, wc] = both_bytes(bytes.data(), bytes.size(), "weight");
    for (int n : {1, 3, 17}) {
      auto [xv, xc] = both(random_floats(size_t(n * cols), uint32_t(n)), "x");
      BufferPtr ov = poisoned(size_t(n * rows) * 4, "out");
      BufferPtr oc = cpu->alloc(size_t(n * rows) * 4, "out");
      vk->matmul(Weight{wv.get(), type, rows, cols}, *xv, n, *ov);
      cpu->matmul(Weight{wc.get(), type, rows, cols}, *xc, n, *oc);
      EXPECT_LT(max_rel_error(read(*vk, *ov, n * rows), read(*cpu, *oc, n * rows)), 1e-4)
          << type_name(uint32_t(type)) << " cols " << cols << " n " << n;
    }
  }
}

// The GPU configuration of matmul (threads sharing a row, vector loads, 16 tokens per workgroup; for one
// token matvec.comp) on any device: lavapipe otherwise runs its own (one row per invocation). Twice: with
// subgroupAdd where the device has it, and with the shared-memory reduction. Sizes: rows not a multiple of
// the workgroup's rows, cols not a multiple of 256 (Q4_0/Q8_0 rows then start 2 bytes into a word), cols
// past one pass of the workgroup (4384: a second, partial pass), cols % 8 != 0 (F16 falls back).
TEST_P(TypeTest, MatmulGpuKernelsMatchCpu) {
  const bool cpu_device = is_lavapipe(*vk);
  for (const char* subgroup : {"1", "0"}) {
    std::vector<std::string> vars = {std::string("FKV_VULKAN_SUBGROUP=") + subgroup};
    if (cpu_device) vars.push_back("FKV_VULKAN_GPU_KERNELS=1");
    Backend* be = !cpu_device && subgroup[0] == '1' ? vk : &EnvBackends::get(vars);
    const GgmlType type = GetParam();
    struct Shape {
      int64_t rows, want_cols;
      std::vector<int> ns;
    };
    for (const Shape& sh : {Shape{67, 512, {1, 5, 19}}, Shape{67, 173, {1, 5, 19}}, Shape{259, 1056, {1}},
                            Shape{5, 4384, {1}}, Shape{1, 64, {1}}}) {
      const int64_t cols = block_cols(type, sh.want_cols), rows = sh.rows;
      const auto bytes = random_weight(type, rows, cols, 7);
      BufferPtr wv = be->alloc(bytes.size(), "weight"), wc = cpu->alloc(bytes.size(), "weight");
      be->upload(*wv, 0, bytes.data(), bytes.size());
      cpu->upload(*wc, 0, bytes.data(), bytes.size());
      for (int n : sh.ns) {
        const std::vector<float> x = random_floats(size_t(n * cols), uint32_t(n + 100));
        BufferPtr xv = be->alloc(x.size() * 4, "x"), xc = cpu->alloc(x.size() * 4, "x");
        be->upload(*xv, 0, x.data(), x.size() * 4);
        cpu->upload(*xc, 0, x.data(), x.size() * 4);
        BufferPtr ov = be->alloc(size_t(n * rows) * 4, "out"), oc = cpu->alloc(size_t(n * rows) * 4, "out");
        std::vector<uint8_t> nan(size_t(n * rows) * 4, 0xFF);
        be->upload(*ov, 0, nan.data(), nan.size());
        be->matmul(Weight{wv.get(), type, rows, cols}, *xv, n, *ov);
        cpu->matmul(Weight{wc.get(), type, rows, cols}, *xc, n, *oc);
        EXPECT_LT(max_rel_error(read(*be, *ov, n * rows), read(*cpu, *oc, n * rows)), 1e-4)
            << type_name(uint32_t(type)) << " rows " << rows << " cols " << cols << " n " << n << " subgroup "
            << subgroup;
      }
    }
    be->synchronize();
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, TypeTest, ::testing::ValuesIn(kAllTypes),
                         [](const auto& info) { return type_name(uint32_t(info.param)); });

// Backends to run the weight-layout tests on: the shared one, plus the GPU configuration with and without
// subgroupAdd (on lavapipe, which otherwise runs one row per invocation), or without subgroupAdd on a GPU.
std::vector<Backend*> layout_backends(Backend* vk) {
  if (!is_lavapipe(*vk)) return {vk, &EnvBackends::get({"FKV_VULKAN_SUBGROUP=0"})};
  return {vk, &EnvBackends::get({"FKV_VULKAN_SUBGROUP=1", "FKV_VULKAN_GPU_KERNELS=1"}),
          &EnvBackends::get({"FKV_VULKAN_SUBGROUP=0", "FKV_VULKAN_GPU_KERNELS=1"})};
}

// Q4_0 uploaded as the model loader does (upload_weight: rows of a multiple of 256 values repacked into
// model/quant.h Q4_0x8, which the shaders read as a type of their own) and with plain upload() (the GGUF
// layout), against the CPU: matmul at decode (n = 1: matvec.comp on GPUs), n = 2, prefill sizes
// (matmul.comp, matmul_tiled.comp from 17 tokens on GPUs), and embed. cols 800 is not a multiple of 256:
// upload_weight keeps its GGUF layout. The repacked buffer is read back to check it was repacked.
TEST_F(VulkanTest, Q4_0RepackedAtUploadMatchesCpu) {
  const GgmlType type = GgmlType::Q4_0;
  struct Shape {
    int64_t rows, cols;
    std::vector<int> ns;
  };
  const std::vector<Shape> shapes = {{1, 256, {1, 2, 17}},  {5, 768, {1, 2, 19}},   {259, 4096, {1, 2, 33}},
                                     {1025, 4096, {1}},     {5, 14336, {1, 2, 17}}, {1025, 14336, {1}},
                                     {259, 800, {1, 2, 17}}};
  const std::vector<Backend*> backends = layout_backends(vk);
  for (const Shape& sh : shapes) {
    const auto bytes = random_weight(type, sh.rows, sh.cols, uint32_t(sh.rows + sh.cols));
    BufferPtr wc = cpu->alloc(bytes.size(), "weight");
    cpu->upload(*wc, 0, bytes.data(), bytes.size());
    const Weight wcpu{wc.get(), type, sh.rows, sh.cols};
    for (Backend* be : backends) {
      for (bool repack : {true, false}) {
        const std::string what = std::string(repack ? "upload_weight" : "upload") + " rows " +
                                 std::to_string(sh.rows) + " cols " + std::to_string(sh.cols) + " on " +
                                 be->device_name();
        BufferPtr wv = be->alloc(bytes.size(), "weight");
        const Weight w{wv.get(), type, sh.rows, sh.cols};
        if (repack) {
          be->upload_weight(w, bytes.data(), bytes.size());
        } else {
          be->upload(*wv, 0, bytes.data(), bytes.size());
        }
        if (repack && q4_0x8_applies(type, sh.cols)) {
          std::vector<uint8_t> want(bytes.size()), got(bytes.size());
          repack_q4_0x8(bytes.data(), sh.rows, sh.cols, want.data());
          be->download(*wv, 0, got.data(), got.size());
          EXPECT_TRUE(got == want) << what << ": not repacked";
        }
        for (int n : sh.ns) {
          const auto [xv, xc] = both(random_floats(size_t(n * sh.cols), uint32_t(n + 100)), "x", be);
          BufferPtr ov = poisoned(size_t(n * sh.rows) * 4, "out", be), oc = cpu->alloc(size_t(n * sh.rows) * 4, "out");
          be->matmul(w, *xv, n, *ov);
          cpu->matmul(wcpu, *xc, n, *oc);
          EXPECT_LT(max_rel_error(read(*be, *ov, n * sh.rows), read(*cpu, *oc, n * sh.rows)), 1e-4)
              << what << " n " << n;
        }
        const std::vector<int32_t> ids = {0, int32_t(sh.rows - 1), int32_t(sh.rows / 2), 0};
        const int n = int(ids.size());
        const auto [tv, tc] = both_bytes(ids.data(), ids.size() * 4, "tokens", be);
        BufferPtr ev = poisoned(size_t(n * sh.cols) * 4, "out", be), ec = cpu->alloc(size_t(n * sh.cols) * 4, "out");
        be->embed(w, *tv, n, *ev);
        cpu->embed(wcpu, *tc, n, *ec);
        EXPECT_LT(max_rel_error(read(*be, *ev, n * sh.cols), read(*cpu, *ec, n * sh.cols)), 1e-6) << what;
      }
      be->synchronize();
    }
  }
}

// A repacked Q4_0 weight larger than one storage binding on lavapipe (128 MiB): matmul and embed bind it in
// row ranges, whose offsets must keep the runs' word alignment. Random bytes with small positive scales
// stand in for quantized values (generating 240M floats would take longer than the test).
TEST_F(VulkanTest, Q4_0RepackedBindsInPieces) {
  const int64_t rows = 16700, cols = 14336;
  std::vector<uint8_t> bytes = random_q4_0_bytes(rows, cols, 3);
  BufferPtr wv = vk->alloc(bytes.size(), "big weight"), wc = cpu->alloc(bytes.size(), "big weight");
  const Weight w{wv.get(), GgmlType::Q4_0, rows, cols}, wcpu{wc.get(), GgmlType::Q4_0, rows, cols};
  vk->upload_weight(w, bytes.data(), bytes.size());
  cpu->upload_weight(wcpu, bytes.data(), bytes.size());
  bytes = {};
  auto [xv, xc] = both(random_floats(cols, 10), "x");
  BufferPtr ov = poisoned(rows * 4, "out"), oc = cpu->alloc(rows * 4, "out");
  vk->matmul(w, *xv, 1, *ov);
  cpu->matmul(wcpu, *xc, 1, *oc);
  EXPECT_LT(max_rel_error(read(*vk, *ov, rows), read(*cpu, *oc, rows)), 1e-4);
  const std::vector<int32_t> ids = {0, 16643, 16644, 16699};
  auto [tv, tc] = both_bytes(ids.data(), 16, "tokens");
  BufferPtr ev = poisoned(4 * cols * 4, "out"), ec = cpu->alloc(4 * cols * 4, "out");
  vk->embed(w, *tv, 4, *ev);
  cpu->embed(wcpu, *tc, 4, *ec);
  EXPECT_EQ(max_rel_error(read(*vk, *ev, 4 * cols), read(*cpu, *ec, 4 * cols)), 0.0);
}

TEST_F(VulkanTest, RmsNormMatchesCpu) {
  const int n = 5, dim = 577;
  auto [xv, xc] = both(random_floats(n * dim, 1, 3.0f), "x");
  auto [wv, wc] = both(random_floats(dim, 2), "w");
  BufferPtr ov = poisoned(n * dim * 4, "out"), oc = cpu->alloc(n * dim * 4, "out");
  vk->rms_norm(*xv, *wv, n, dim, 1e-5f, *ov);
  cpu->rms_norm(*xc, *wc, n, dim, 1e-5f, *oc);
  EXPECT_LT(max_rel_error(read(*vk, *ov, n * dim), read(*cpu, *oc, n * dim)), 1e-5);
}

// An add followed by the RMSNorm of its sum runs as one dispatch (add_rms_norm.comp), also when the sum
// overwrites an operand (the residual stream); an add followed by anything else runs alone.
TEST_F(VulkanTest, AddThenRmsNormMatchesCpu) {
  const int n = 3, dim = 577;
  const size_t count = size_t(n) * dim;
  for (bool in_place : {false, true}) {
    auto [av, ac] = both(random_floats(count, 1, 2.0f), "a");
    auto [bv, bc] = both(random_floats(count, 2), "b");
    auto [wv, wc] = both(random_floats(dim, 3), "w");
    BufferPtr sv = in_place ? av : poisoned(count * 4, "sum"),
              sc = in_place ? ac : cpu->alloc(count * 4, "sum");
    BufferPtr ov = poisoned(count * 4, "out"), oc = cpu->alloc(count * 4, "out");
    vk->add(*av, *bv, int64_t(count), *sv);
    vk->rms_norm(*sv, *wv, n, dim, 1e-5f, *ov);
    cpu->add(*ac, *bc, int64_t(count), *sc);
    cpu->rms_norm(*sc, *wc, n, dim, 1e-5f, *oc);
    EXPECT_LT(max_rel_error(read(*vk, *sv, count), read(*cpu, *sc, count)), 1e-6) << "in place " << in_place;
    EXPECT_LT(max_rel_error(read(*vk, *ov, count), read(*cpu, *oc, count)), 1e-5) << "in place " << in_place;
    // The norm written over an operand of the add, as the engine does (x = x + xb, then xb = norm(x)).
    vk->add(*sv, *bv, int64_t(count), *sv);
    vk->rms_norm(*sv, *wv, n, dim, 1e-5f, *bv);
    cpu->add(*sc, *bc, int64_t(count), *sc);
    cpu->rms_norm(*sc, *wc, n, dim, 1e-5f, *bc);
    EXPECT_LT(max_rel_error(read(*vk, *sv, count), read(*cpu, *sc, count)), 1e-6) << "in place " << in_place;
    EXPECT_LT(max_rel_error(read(*vk, *bv, count), read(*cpu, *bc, count)), 1e-5) << "in place " << in_place;
    // Held add, then an op that is not its norm: the add runs first.
    vk->add(*sv, *bv, int64_t(count), *sv);
    vk->rms_norm(*bv, *wv, n, dim, 1e-5f, *ov);
    cpu->add(*sc, *bc, int64_t(count), *sc);
    cpu->rms_norm(*bc, *wc, n, dim, 1e-5f, *oc);
    EXPECT_LT(max_rel_error(read(*vk, *sv, count), read(*cpu, *sc, count)), 1e-6) << "in place " << in_place;
    EXPECT_LT(max_rel_error(read(*vk, *ov, count), read(*cpu, *oc, count)), 1e-5) << "in place " << in_place;
  }
}

// The norms' shapes (common/rms_norm.glsl) in every configuration: the GPU's (a workgroup of up to 1024
// invocations per row, one slot each at dim 4096) and lavapipe's (128 invocations, several slots each), with
// subgroupAdd and with the shared-memory tree; vec4 slots (dim % 4 == 0) and float slots (577, 4099); rows
// past the slots held in registers (lavapipe at 4100 and 4099, the GPU's at 33000 and 33001); 1 and 7 rows
// (decode, prefill). Plain and fused with an add, also in place (the engine's x = x + xb, xb = norm(x)).
TEST_F(VulkanTest, RmsNormShapesMatchCpu) {
  const bool cpu_device = is_lavapipe(*vk);
  Backend* const shared = vk;
  std::vector<std::vector<std::string>> configs = {{}, {"FKV_VULKAN_SUBGROUP=0"}};  // {}: the shared backend
  if (cpu_device) {
    configs.push_back({"FKV_VULKAN_GPU_KERNELS=1"});
    configs.push_back({"FKV_VULKAN_GPU_KERNELS=1", "FKV_VULKAN_SUBGROUP=0"});
  }
  for (const auto& vars : configs) {
    vk = vars.empty() ? shared : &EnvBackends::get(vars);
    std::string config;
    for (const auto& v : vars) config += v + " ";
    struct Shape {
      int n, dim;
    };
    for (const Shape sh : {Shape{1, 4096}, Shape{7, 4096}, Shape{1, 4100}, Shape{7, 4100}, Shape{1, 577},
                           Shape{7, 577}, Shape{1, 4099}, Shape{3, 33000}, Shape{1, 33001}, Shape{2, 8}}) {
      const int n = sh.n, dim = sh.dim;
      const size_t count = size_t(n) * dim;
      const std::string what = config + "n " + std::to_string(n) + " dim " + std::to_string(dim);
      auto [xv, xc] = both(random_floats(count, 1, 3.0f), "x");
      auto [bv, bc] = both(random_floats(count, 2), "b");
      auto [wv, wc] = both(random_floats(size_t(dim), 3), "w");
      BufferPtr ov = poisoned(count * 4, "out"), oc = cpu->alloc(count * 4, "out");
      vk->rms_norm(*xv, *wv, n, dim, 1e-5f, *ov);
      cpu->rms_norm(*xc, *wc, n, dim, 1e-5f, *oc);
      EXPECT_LT(max_rel_error(read(*vk, *ov, count), read(*cpu, *oc, count)), 1e-5) << what;
      BufferPtr sv = poisoned(count * 4, "sum"), sc = cpu->alloc(count * 4, "sum");
      vk->add(*xv, *bv, int64_t(count), *sv);
      vk->rms_norm(*sv, *wv, n, dim, 1e-5f, *ov);
      cpu->add(*xc, *bc, int64_t(count), *sc);
      cpu->rms_norm(*sc, *wc, n, dim, 1e-5f, *oc);
      EXPECT_LT(max_rel_error(read(*vk, *sv, count), read(*cpu, *sc, count)), 1e-6) << what;
      EXPECT_LT(max_rel_error(read(*vk, *ov, count), read(*cpu, *oc, count)), 1e-5) << what;
      vk->add(*xv, *bv, int64_t(count), *xv);
      vk->rms_norm(*xv, *wv, n, dim, 1e-5f, *bv);
      cpu->add(*xc, *bc, int64_t(count), *xc);
      cpu->rms_norm(*xc, *wc, n, dim, 1e-5f, *bc);
      EXPECT_LT(max_rel_error(read(*vk, *xv, count), read(*cpu, *xc, count)), 1e-6) << what << " in place";
      EXPECT_LT(max_rel_error(read(*vk, *bv, count), read(*cpu, *bc, count)), 1e-5) << what << " in place";
    }
    vk->synchronize();
  }
  vk = shared;
}

TEST_F(VulkanTest, RopeMatchesCpu) {
  for (int head_dim : {64, 128}) {
    for (bool llama3 : {false, true}) {
      RopeParams p;
      p.head_dim = head_dim;
      p.theta = llama3 ? 500000.0f : 10000.0f;
      p.llama3 = llama3;
      p.factor = 8.0f;
      const int n = 7, heads = 5;
      for (int pos0 : {0, 4093}) {
        const size_t count = size_t(n) * heads * head_dim;
        auto [xv, xc] = both(random_floats(count, uint32_t(pos0 + head_dim)), "x");
        vk->rope(*xv, n, heads, pos0, p);
        cpu->rope(*xc, n, heads, pos0, p);
        EXPECT_LT(max_rel_error(read(*vk, *xv, count), read(*cpu, *xc, count)), 1e-6)
            << "head_dim " << head_dim << " llama3 " << llama3 << " pos0 " << pos0;
      }
    }
  }
}

TEST_F(VulkanTest, ElementwiseMatchesCpu) {
  const int64_t count = 100003;
  auto [av, ac] = both(random_floats(count, 1, 4.0f), "a");
  auto [bv, bc] = both(random_floats(count, 2), "b");
  BufferPtr ov = poisoned(count * 4, "out"), oc = cpu->alloc(count * 4, "out");
  vk->add(*av, *bv, count, *ov);
  cpu->add(*ac, *bc, count, *oc);
  EXPECT_EQ(max_rel_error(read(*vk, *ov, count), read(*cpu, *oc, count)), 0.0);
  vk->swiglu(*av, *bv, count, *ov);
  cpu->swiglu(*ac, *bc, count, *oc);
  EXPECT_LT(max_rel_error(read(*vk, *ov, count), read(*cpu, *oc, count)), 1e-6);
  // Aliased output, as the engine uses them.
  vk->swiglu(*av, *bv, count, *av);
  cpu->swiglu(*ac, *bc, count, *ac);
  vk->add(*av, *bv, count, *av);
  cpu->add(*ac, *bc, count, *ac);
  EXPECT_LT(max_rel_error(read(*vk, *av, count), read(*cpu, *ac, count)), 1e-6);
}

TEST_F(VulkanTest, CopyUploadDownloadRanges) {
  std::vector<uint8_t> bytes(40u << 20);  // larger than the staging ring
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 2654435761u >> 13);
  BufferPtr a = vk->alloc(bytes.size() + 3, "a"), b = vk->alloc(1001, "b");
  vk->upload(*a, 3, bytes.data(), bytes.size());
  vk->copy(*a, 4, *b, 1, 997);
  std::vector<uint8_t> got(bytes.size()), got_b(997);
  vk->download(*a, 3, got.data(), got.size());
  vk->download(*b, 1, got_b.data(), got_b.size());
  EXPECT_TRUE(got == bytes);
  EXPECT_TRUE(std::equal(got_b.begin(), got_b.end(), bytes.begin() + 1));
}

// RoPE of K followed by its store runs as one dispatch (rope_kv_store.comp): K is rotated like the CPU
// rotates it, and the cache holds exactly the rotated values rounded to f16 (as kv_store of that K would
// write them), at the right rows only.
TEST_F(VulkanTest, RopeThenKvStoreMatchesCpu) {
  AttentionShape s{4, 2, 64, 0.125f};
  RopeParams rp;
  rp.head_dim = s.head_dim;
  const int cap = 40, n = 3, pos0 = 13;
  const size_t row = size_t(s.n_kv_heads) * s.head_dim, count = size_t(n) * row;
  const size_t bytes = size_t(cap) * row * 2;
  std::vector<uint8_t> init(bytes, 0x5A);
  auto [kv_, kc] = both_bytes(init.data(), bytes, "K");
  auto [vv, vc] = both_bytes(init.data(), bytes, "V");
  auto [srck_v, srck_c] = both(random_floats(count, 5, 2.0f), "k");
  auto [srcv_v, srcv_c] = both(random_floats(count, 6), "v");
  KvLayer lv{kv_.get(), vv.get(), KvType::kF16, cap}, lc{kc.get(), vc.get(), KvType::kF16, cap};
  vk->rope(*srck_v, n, s.n_kv_heads, pos0, rp);
  vk->kv_store(*srck_v, *srcv_v, n, pos0, s, lv);
  cpu->rope(*srck_c, n, s.n_kv_heads, pos0, rp);
  const std::vector<float> rotated = read(*vk, *srck_v, count);
  EXPECT_LT(max_rel_error(rotated, read(*cpu, *srck_c, count)), 1e-6);
  cpu->upload(*srck_c, 0, rotated.data(), count * 4);  // the store of exactly what the GPU rotated
  cpu->kv_store(*srck_c, *srcv_c, n, pos0, s, lc);
  for (auto [a, b] : {std::pair{kv_, kc}, std::pair{vv, vc}}) {
    std::vector<uint8_t> ga(bytes), gb(bytes);
    vk->download(*a, 0, ga.data(), bytes);
    cpu->download(*b, 0, gb.data(), bytes);
    EXPECT_TRUE(ga == gb);
  }
}

// A layer's RoPE of q and K and the store of K and V, in the engine's order, run as one dispatch
// (rope_kv_store.comp) into an f16 cache and give exactly what the ops give unfused (FKV_VULKAN_FUSE=0): q,
// K and both caches bit for bit. head_dim 128 and 64, GQA 32:8, 9:3 and none; decode steps at several
// positions (the RoPE table grows at 1024, inside rope(q)) and prefill chunks; an f32 cache (not fused
// into the store) the same.
TEST_F(VulkanTest, RopeQkAndKvStoreFusedMatchUnfused) {
  Backend& plain = EnvBackends::get({"FKV_VULKAN_FUSE=0"});
  struct Shape {
    int heads, kv_heads, head_dim;
  };
  struct Step {
    int n, pos0;
  };
  const int cap = 1100;
  uint32_t seed = 100;
  for (const Shape& sh : {Shape{32, 8, 128}, Shape{9, 3, 64}, Shape{4, 4, 64}}) {
    const AttentionShape s{sh.heads, sh.kv_heads, sh.head_dim, 0.1f};
    RopeParams rp;
    rp.head_dim = sh.head_dim;
    for (KvType type : {KvType::kF16, KvType::kF32}) {
      const std::string what = std::to_string(sh.heads) + ":" + std::to_string(sh.kv_heads) + " head_dim " +
                               std::to_string(sh.head_dim) + (type == KvType::kF16 ? " f16" : " f32");
      const size_t row = size_t(sh.kv_heads) * sh.head_dim, bytes = size_t(cap) * row * kv_type_bytes(type);
      std::vector<uint8_t> init(bytes, 0x5A);
      Backend* be[2] = {vk, &plain};
      BufferPtr kc[2], vc[2];
      for (int b = 0; b < 2; ++b) {
        kc[b] = be[b]->alloc(bytes, "K cache");
        vc[b] = be[b]->alloc(bytes, "V cache");
        be[b]->upload(*kc[b], 0, init.data(), bytes);
        be[b]->upload(*vc[b], 0, init.data(), bytes);
      }
      for (const Step& st : {Step{1, 0}, Step{1, 1}, Step{1, 37}, Step{5, 40}, Step{1, 1023}, Step{2, 1024},
                             Step{1, 1099}, Step{1, 500}}) {
        const size_t qn = size_t(st.n) * sh.heads * sh.head_dim, kn = size_t(st.n) * row;
        const std::vector<float> q = random_floats(qn, ++seed, 2.0f), k = random_floats(kn, ++seed, 2.0f),
                                 v = random_floats(kn, ++seed);
        std::vector<uint8_t> got[2][2];  // [backend][q, K]
        const bool count = st.n == 1 && st.pos0 == 37 && type == KvType::kF16;
        for (int b = 0; b < 2; ++b) {
          BufferPtr qb = be[b]->alloc(qn * 4, "q"), kb = be[b]->alloc(kn * 4, "k"),
                    vb = be[b]->alloc(kn * 4, "v");
          be[b]->upload(*qb, 0, q.data(), qn * 4);
          be[b]->upload(*kb, 0, k.data(), kn * 4);
          be[b]->upload(*vb, 0, v.data(), kn * 4);
          KvLayer layer{kc[b].get(), vc[b].get(), type, cap};
          if (count && b == 0) {
            ASSERT_TRUE(vulkan_set_profile(*vk, true));
          }
          be[b]->rope(*qb, st.n, sh.heads, st.pos0, rp);
          be[b]->rope(*kb, st.n, sh.kv_heads, st.pos0, rp);
          be[b]->kv_store(*kb, *vb, st.n, st.pos0, s, layer);
          if (count && b == 0) {
            const VulkanProfile p = vulkan_profile(*vk);
            vulkan_set_profile(*vk, false);
            ASSERT_EQ(p.shaders.size(), 1u) << what;
            EXPECT_EQ(p.shaders[0].name, "rope_kv_store") << what;
            EXPECT_EQ(p.shaders[0].calls, 1u) << what;
          }
          got[b][0].resize(qn * 4);
          got[b][1].resize(kn * 4);
          be[b]->download(*qb, 0, got[b][0].data(), qn * 4);
          be[b]->download(*kb, 0, got[b][1].data(), kn * 4);
        }
        EXPECT_TRUE(got[0][0] == got[1][0]) << what << ": q at " << st.pos0 << " n " << st.n;
        EXPECT_TRUE(got[0][1] == got[1][1]) << what << ": K at " << st.pos0 << " n " << st.n;
      }
      for (int c = 0; c < 2; ++c) {
        std::vector<uint8_t> a(bytes), b(bytes);
        vk->download(c == 0 ? *kc[0] : *vc[0], 0, a.data(), bytes);
        plain.download(c == 0 ? *kc[1] : *vc[1], 0, b.data(), bytes);
        EXPECT_TRUE(a == b) << what << (c == 0 ? ": K cache" : ": V cache");
        EXPECT_FALSE(a == init) << what;
      }
    }
  }
}

TEST_F(VulkanTest, KvStoreMatchesCpuBitForBit) {
  AttentionShape s{4, 2, 64, 0.125f};
  const int cap = 40, n = 9, pos0 = 13;
  const size_t row = size_t(s.n_kv_heads) * s.head_dim;
  std::vector<float> k = random_floats(n * row, 3, 2.0f), v = random_floats(n * row, 4, 1e-4f);
  // Edge values of the f16 conversion: ties, subnormals, overflow, infinities, NaN.
  const float edge[] = {65504.0f,       65520.0f, 1e6f,      -1e6f, 6.1e-5f,         5.96e-8f,
                        2.98e-8f,       2.99e-8f, 1e-9f,     -0.0f, 1.0009765625f,   1.00048828125f,
                        1.00146484375f, INFINITY, -INFINITY, NAN,   3.0517578125e-5f};
  for (size_t i = 0; i < std::size(edge); ++i) k[i] = edge[i];
  for (KvType type : {KvType::kF16, KvType::kF32}) {
    const size_t bytes = size_t(cap) * row * kv_type_bytes(type);
    std::vector<uint8_t> init(bytes, 0x5A);
    auto [kv_, kc] = both_bytes(init.data(), bytes, "K");
    auto [vv, vc] = both_bytes(init.data(), bytes, "V");
    auto [srck_v, srck_c] = both(k, "k");
    auto [srcv_v, srcv_c] = both(v, "v");
    KvLayer lv{kv_.get(), vv.get(), type, cap}, lc{kc.get(), vc.get(), type, cap};
    vk->kv_store(*srck_v, *srcv_v, n, pos0, s, lv);
    cpu->kv_store(*srck_c, *srcv_c, n, pos0, s, lc);
    for (auto [a, b] : {std::pair{kv_, kc}, std::pair{vv, vc}}) {
      std::vector<uint8_t> ga(bytes), gb(bytes);
      vk->download(*a, 0, ga.data(), bytes);
      cpu->download(*b, 0, gb.data(), bytes);
      EXPECT_TRUE(ga == gb) << (type == KvType::kF16 ? "f16" : "f32");
    }
    EXPECT_THROW(vk->kv_store(*srck_v, *srcv_v, n, cap - n + 1, s, lv), Error);
  }
}

TEST_F(VulkanTest, MatmulAndEmbedBindLargeWeightsInPieces) {
  // A weight of more than 128 MiB (lavapipe's maxStorageBufferRange) must be split over bindings.
  const int64_t rows = 8500, cols = 4096;
  const GgmlType type = GgmlType::F32;
  std::vector<float> w = random_floats(size_t(rows * cols), 9);
  auto [wv, wc] = both(w, "big weight");
  w.clear();
  auto [xv, xc] = both(random_floats(2 * cols, 10), "x");
  BufferPtr ov = poisoned(2 * rows * 4, "out"), oc = cpu->alloc(2 * rows * 4, "out");
  vk->matmul(Weight{wv.get(), type, rows, cols}, *xv, 2, *ov);
  cpu->matmul(Weight{wc.get(), type, rows, cols}, *xc, 2, *oc);
  EXPECT_LT(max_rel_error(read(*vk, *ov, 2 * rows), read(*cpu, *oc, 2 * rows)), 1e-4);
  const std::vector<int32_t> ids = {0, 8499, 4321, 8000};
  auto [tv, tc] = both_bytes(ids.data(), 16, "tokens");
  BufferPtr ev = poisoned(4 * cols * 4, "out"), ec = cpu->alloc(4 * cols * 4, "out");
  vk->embed(Weight{wv.get(), type, rows, cols}, *tv, 4, *ev);
  cpu->embed(Weight{wc.get(), type, rows, cols}, *tc, 4, *ec);
  EXPECT_EQ(max_rel_error(read(*vk, *ev, 4 * cols), read(*cpu, *ec, 4 * cols)), 0.0);
}

}  // namespace
}  // namespace fkv::test
