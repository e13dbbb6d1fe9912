// The vocabulary a tokenizer is built from, as GGUF stores it under tokenizer.ggml.*. Tokenizer::from_gguf
// reads one from a file; tests and tools can fill one by hand and call make_tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace fkv {

class GgufFile;

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // <s>, <|im_end|>: matched in text only with parse_special, rendered as nothing
  kUserDefined = 4,  // always matched whole in text, rendered as written
  kUnused = 5,
  kByte = 6,  // SentencePiece byte fallback <0xNN>
};

enum class VocabModel {
  kSentencePiece,  // tokenizer.ggml.model = "llama": scores, ▁ for space, byte fallback
  kByteLevelBpe,   // tokenizer.ggml.model = "gpt2": merges over the GPT-2 byte alphabet
};

struct Vocab {
  VocabModel model = VocabModel::kSentencePiece;
  std::string pre;                  // tokenizer.ggml.pre (BPE pre-tokenizer name); "" = default GPT-2
  std::vector<std::string> tokens;  // tokenizer.ggml.tokens
  std::vector<float> scores;        // tokenizer.ggml.scores: empty or one per token
  std::vector<TokenType> types;     // tokenizer.ggml.token_type: empty (all normal) or one per token
  std::vector<std::string> merges;  // tokenizer.ggml.merges: "left right", best first (BPE only)
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  int32_t eot_id = -1, eom_id = -1;  // tokenizer.ggml.eot_token_id / eom_token_id
  bool add_bos = false;              // tokenizer.ggml.add_bos_token
  bool add_space_prefix = true;      // tokenizer.ggml.add_space_prefix (SentencePiece only)
};

// Reads tokenizer.ggml.* with the defaults llama.cpp uses (SentencePiece: add_bos and add_space_prefix
// on; BPE: both off). Throws kUnsupported when the file has no tokenizer or an unknown model, kBadFile
// naming the key when a value is malformed or an id is out of range.
Vocab read_vocab(const GgufFile& file);

// Validates the vocabulary (sizes agree, ids in range, merges well formed, known pre-tokenizer) and
// builds the tokenizer. Throws fkv::Error naming the tokenizer.ggml.* key at fault.
std::unique_ptr<Tokenizer> make_tokenizer(const Vocab& vocab);

}  // namespace fkv
