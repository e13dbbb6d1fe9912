// Tokenizers built from a GGUF vocabulary: SentencePiece-style (`tokenizer.ggml.model = llama`, with
// byte fallback) and byte-level BPE (`gpt2`: merges + pre-tokenizer regex). One interface for both.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fkv {

class GgufFile;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Reads tokenizer.ggml.* from the file. Throws fkv::Error(kBadFile / kUnsupported) naming the key.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);

  // Text to ids. Special tokens written in the text (e.g. "<|im_start|>") map to their ids only when
  // parse_special is true. add_bos prepends BOS when the vocabulary says to (tokenizer.ggml.add_bos_token).
  virtual std::vector<int32_t> encode(const std::string& text, bool add_bos, bool parse_special) const = 0;
  // The bytes of one token (byte-fallback and byte-level tokens decoded to raw bytes; may be partial UTF-8).
  virtual std::string token_bytes(int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;                       // -1 when none
  virtual int32_t eos_id() const = 0;                       // -1 when none
  virtual bool is_end_of_generation(int32_t id) const = 0;  // EOS, EOT, <|im_end|>, <|eot_id|> ...
  virtual bool add_bos_by_default() const = 0;
  virtual std::string token_text(int32_t id) const = 0;  // the vocabulary's string, for debugging

  std::string decode(const std::vector<int32_t>& ids) const;  // concatenated token_bytes

  // Additions to the agreed interface:
  // Control tokens (<s>, <|im_end|>, ...) render as nothing in token_bytes; this says which they are.
  virtual bool is_control(int32_t /*id*/) const { return false; }
  // decode with render_special: control tokens are written as their text (token_text), as the Hugging
  // Face decode(skip_special_tokens=False) does. decode() = decode(ids, false).
  // SentencePiece vocabularies with add_space_prefix drop the one space that encode prepended, from the
  // first token that renders any bytes (as llama.cpp's detokenizer and HF's Metaspace decoder do), so
  // decode(encode(s)) == s; token_bytes and streaming keep that space.
  std::string decode(const std::vector<int32_t>& ids, bool render_special) const;
  virtual bool decode_strips_leading_space() const { return false; }
};

// Streams token bytes as complete UTF-8: holds back an incomplete trailing sequence until the next
// token completes it; invalid bytes become U+FFFD.
class Utf8StreamDecoder {
 public:
  std::string push(const std::string& bytes);  // returns what is safe to print now
  std::string flush();                         // at the end of generation
 private:
  std::string pending_;
};

}  // namespace fkv
