#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/bpe_pretokenizer.h"

#include <pcre2.h>

#include <map>

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace fkv {
namespace {

// GPT-2's pattern; the same one the Hugging Face ByteLevel pre-tokenizer applies.
constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3: case-insensitive contractions, numbers in groups of up to three digits.
constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen 2: as Llama 3 but single digits.
constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Every digit alone first (HF Digits(individual_digits=true)), then GPT-2's pattern.
constexpr const char* kDigit = R"(\p{N})";

struct PreType {
  std::vector<const char*> patterns;
  bool ignore_merges;
};

const std::map<std::string, PreType>& pre_types() {
  static const std::map<std::string, PreType> types = {
      {"", {{kGpt2}, false}},
      {"default", {{kGpt2}, false}},
      {"gpt-2", {{kGpt2}, false}},
      {"gpt2", {{kGpt2}, false}},
      {"smollm", {{kDigit, kGpt2}, false}},
      {"starcoder", {{kDigit, kGpt2}, false}},
      {"refact", {{kDigit, kGpt2}, false}},
      {"codeshell", {{kDigit, kGpt2}, false}},
      {"llama-bpe", {{kLlama3}, true}},
      {"llama3", {{kLlama3}, true}},
      {"llama-v3", {{kLlama3}, true}},
      {"falcon3", {{kLlama3}, true}},
      {"smaug-bpe", {{kLlama3}, true}},
      {"dbrx", {{kLlama3}, true}},
      {"qwen2", {{kQwen2}, false}},
      {"deepseek-r1-qwen", {{kQwen2}, false}},
  };
  return types;
}

}  // namespace

struct BpePreTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

BpePreTokenizer::BpePreTokenizer(const std::string& name) {
  const auto it = pre_types().find(name);
  if (it == pre_types().end()) {
    std::string known;
    for (const auto& [key, value] : pre_types())
      if (!key.empty()) known += (known.empty() ? "" : ", ") + key;
    throw Error(ErrorCode::kUnsupported, "tokenizer.ggml.pre = \"" + name +
                                             "\" is not a known BPE pre-tokenizer (known: " + known + ")");
  }
  ignore_merges_ = it->second.ignore_merges;
  for (const char* pattern : it->second.patterns) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    auto regex = std::make_unique<Regex>();
    // MATCH_INVALID_UTF: invalid UTF-8 in the input never matches (it ends up between matches, as its own
    // piece, and is encoded byte by byte) instead of making every match fail.
    regex->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
    if (!regex->code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      throw Error(ErrorCode::kInternal, "pre-tokenizer regex for \"" + name +
                                            "\" does not compile: " + reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(regex->code, PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is the fallback
    regexes_.push_back(std::move(regex));
  }
}

BpePreTokenizer::~BpePreTokenizer() = default;

namespace {

// Splits one piece into matches and the gaps between them.
void split_one(pcre2_code* code, pcre2_match_data* match, std::string_view text,
               std::vector<std::string_view>& out) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  size_t gap = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(code, subject, text.size(), pos, 0, match, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_JIT, match, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      throw Error(ErrorCode::kInternal,
                  std::string("pre-tokenizer regex failed: ") + reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
    const size_t begin = ov[0], end = ov[1];
    if (end == begin) {  // cannot happen with these patterns; step over a character to stay safe
      pos = begin +
            std::min(utf8_sequence_length(static_cast<unsigned char>(text[begin])), text.size() - begin);
      continue;
    }
    if (begin > gap) out.push_back(text.substr(gap, begin - gap));
    out.push_back(text.substr(begin, end - begin));
    pos = gap = end;
  }
  if (gap < text.size()) out.push_back(text.substr(gap));
}

}  // namespace

void BpePreTokenizer::split(std::string_view text, std::vector<std::string_view>& words) const {
  if (text.empty()) return;
  std::vector<std::string_view> pieces{text};
  std::vector<std::string_view> next;
  for (size_t r = 0; r < regexes_.size(); ++r) {
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(regexes_[r]->code, nullptr);
    require(match != nullptr, ErrorCode::kOutOfMemory, "pcre2_match_data_create failed");
    next.clear();
    try {
      for (std::string_view piece : pieces) split_one(regexes_[r]->code, match, piece, next);
    } catch (...) {
      pcre2_match_data_free(match);
      throw;
    }
    pcre2_match_data_free(match);
    pieces.swap(next);
  }
  words.insert(words.end(), pieces.begin(), pieces.end());
}

}  // namespace fkv
