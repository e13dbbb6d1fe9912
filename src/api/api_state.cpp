// Saving and restoring a context's state. The state is the token history and the sizes of the
// evaluations that consumed it, not the cache's bytes: a restore replays the same evaluations, which gives
// the same cache and logits for every KV policy (bit-identical where the backend is deterministic).
//
// Layout (host byte order): "FKVS", u32 format version, the model's shape (u32 vocab, u32 layers,
// u32 embd, u64 weight bytes) as an identity check, u32 number of evaluations, u32 number of tokens,
// u32 evaluation sizes[], i32 tokens[].
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "api/api_guard.h"
#include "api/api_handles.h"

using namespace fkv;
using namespace fkv::api;

namespace {

constexpr char kMagic[4] = {'F', 'K', 'V', 'S'};
constexpr uint32_t kFormatVersion = 1;

struct Header {
  char magic[4];
  uint32_t version;
  uint32_t n_vocab, n_layers, n_embd;
  uint64_t weight_bytes;
  uint32_t n_evaluations, n_tokens;
};

Header header_for(const fkv_context& c) {
  const LlamaHparams& hp = c.model->weights->hparams();
  Header h{};
  std::memcpy(h.magic, kMagic, 4);
  h.version = kFormatVersion;
  h.n_vocab = uint32_t(hp.vocab);
  h.n_layers = uint32_t(hp.n_layers);
  h.n_embd = uint32_t(hp.dim);
  h.weight_bytes = c.model->weights->weight_bytes();
  h.n_evaluations = uint32_t(c.evaluations.size());
  h.n_tokens = uint32_t(c.history.size());
  return h;
}

}  // namespace

extern "C" {

fkv_status fkv_state_save(const fkv_context* c, void* buffer, size_t capacity, size_t* out_size) {
  return guard(__func__, [&] {
    require_ptr(c, "context");
    require_ptr(out_size, "out_size");
    require(buffer || capacity == 0, ErrorCode::kInvalidArgument, "buffer is NULL but capacity is not 0");
    const Header h = header_for(*c);
    const size_t eval_bytes = c->evaluations.size() * sizeof(uint32_t);
    const size_t token_bytes = c->history.size() * sizeof(int32_t);
    const size_t size = sizeof h + eval_bytes + token_bytes;
    *out_size = size;
    if (capacity < size)
      return fail(FKV_ERR_BUFFER_TOO_SMALL, "fkv_state_save: the state needs " + std::to_string(size) +
                                                " bytes, the buffer has " + std::to_string(capacity));
    auto* p = static_cast<unsigned char*>(buffer);
    std::memcpy(p, &h, sizeof h);
    std::memcpy(p + sizeof h, c->evaluations.data(), eval_bytes);
    std::memcpy(p + sizeof h + eval_bytes, c->history.data(), token_bytes);
    return FKV_OK;
  });
}

fkv_status fkv_state_restore(fkv_context* c, const void* buffer, size_t size) {
  return guard(__func__, [&] {
    require_ptr(c, "context");
    require_ptr(buffer, "buffer");
    const auto* p = static_cast<const unsigned char*>(buffer);
    Header h;
    require(size >= sizeof h, ErrorCode::kBadFile,
            "the state is truncated (" + std::to_string(size) + " bytes)");
    std::memcpy(&h, p, sizeof h);
    require(std::memcmp(h.magic, kMagic, 4) == 0, ErrorCode::kBadFile, "not an fkv state (bad magic)");
    require(h.version == kFormatVersion, ErrorCode::kBadFile,
            "state format version " + std::to_string(h.version) + " (expected " +
                std::to_string(kFormatVersion) + ")");
    const Header mine = header_for(*c);
    require(h.n_vocab == mine.n_vocab && h.n_layers == mine.n_layers && h.n_embd == mine.n_embd &&
                h.weight_bytes == mine.weight_bytes,
            ErrorCode::kBadFile, "the state was saved from a different model");
    const size_t expect =
        sizeof h + size_t(h.n_evaluations) * sizeof(uint32_t) + size_t(h.n_tokens) * sizeof(int32_t);
    require(size == expect, ErrorCode::kBadFile,
            "the state is " + std::to_string(size) + " bytes; its header says " + std::to_string(expect));
    std::vector<uint32_t> evaluations(h.n_evaluations);
    std::vector<int32_t> tokens(h.n_tokens);
    std::memcpy(evaluations.data(), p + sizeof h, evaluations.size() * sizeof(uint32_t));
    std::memcpy(tokens.data(), p + sizeof h + evaluations.size() * sizeof(uint32_t),
                tokens.size() * sizeof(int32_t));
    uint64_t total = 0;
    for (uint32_t n : evaluations) {
      require(n > 0, ErrorCode::kBadFile, "the state holds an empty evaluation");
      total += n;
    }
    require(total == h.n_tokens, ErrorCode::kBadFile,
            "the state's evaluation sizes do not add up to its tokens");
    require(total <= uint64_t(c->session->ctx()), ErrorCode::kContextFull,
            "the state holds " + std::to_string(total) + " tokens; the context has room for " +
                std::to_string(c->session->ctx()));
    for (int32_t id : tokens)
      require(id >= 0 && uint32_t(id) < h.n_vocab, ErrorCode::kBadFile,
              "the state holds an out-of-range token id");

    std::lock_guard lock(c->model->run_mutex);
    c->session->reset();
    c->history.clear();
    c->evaluations.clear();
    c->logits = nullptr;
    size_t at = 0;
    for (uint32_t n : evaluations) {
      evaluate(*c, tokens.data() + at, n);
      at += n;
    }
    return FKV_OK;
  });
}

}  // extern "C"
