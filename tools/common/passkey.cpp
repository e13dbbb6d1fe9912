#include "common/passkey.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <random>

#include "common/prompt_tokens.h"
#include "util/error.h"

namespace fkv::tools {

namespace {

constexpr const char* kIntro =
    "There is an important piece of information hidden inside a lot of irrelevant text. Find it and "
    "memorize it. I will quiz you about the important information there.\n\n";
constexpr const char* kQuestion = "\n\nWhat is the pass key? The pass key is";

std::vector<int32_t> encode(const Tokenizer& tok, const std::string& text, bool bos) {
  return tok.encode(text, bos && tok.add_bos_by_default(), false);
}

}  // namespace

PasskeyBuilder::PasskeyBuilder(const Tokenizer& tokenizer, std::string filler)
    : tok_(tokenizer), filler_(std::move(filler)) {
  require(!filler_.empty(), ErrorCode::kInvalidArgument, "the haystack text is empty");
}

const std::vector<int32_t>& PasskeyBuilder::filler_tokens(size_t n) {
  // Tokenizing megabytes of essays for a 2K prompt would dominate the run: grow the prefix as needed.
  while (filler_ids_.size() < n && filler_chars_used_ < filler_.size()) {
    filler_chars_used_ = std::min(filler_.size(), std::max<size_t>(filler_chars_used_ * 2, n * 8));
    filler_ids_ = encode(tok_, filler_.substr(0, filler_chars_used_), false);
  }
  require(filler_ids_.size() >= n, ErrorCode::kInvalidArgument,
          "the haystack text has only " + std::to_string(filler_ids_.size()) + " tokens; " +
              std::to_string(n) + " are needed");
  return filler_ids_;
}

PasskeyPrompt PasskeyBuilder::build(int n_tokens, double depth, uint64_t seed) {
  require(depth >= 0 && depth <= 1, ErrorCode::kInvalidArgument, "depth must lie in [0, 1]");
  std::mt19937_64 rng(seed);
  PasskeyPrompt p;
  p.passkey = std::to_string(std::uniform_int_distribution<int>(10000, 99999)(rng));
  const std::vector<int32_t> intro = encode(tok_, kIntro, true);
  const std::vector<int32_t> needle = encode(
      tok_, " The pass key is " + p.passkey + ". Remember it. " + p.passkey + " is the pass key. ", false);
  const std::vector<int32_t> question = encode(tok_, kQuestion, false);
  const long n_filler = long(n_tokens) - long(intro.size() + needle.size() + question.size());
  require(n_filler > 0, ErrorCode::kInvalidArgument,
          std::to_string(n_tokens) + " tokens cannot hold a passkey prompt");
  const std::vector<int32_t>& filler = filler_tokens(size_t(n_filler));

  size_t split = size_t(depth * double(n_filler) + 0.5);
  // Move to just after the next token that ends a sentence (at most 64 tokens on).
  for (size_t i = split; i < size_t(n_filler) && i < split + 64; ++i) {
    if (tok_.token_bytes(filler[i]).find('.') != std::string::npos) {
      split = i + 1;
      break;
    }
  }
  split = std::min(split, size_t(n_filler));
  p.tokens = intro;
  p.tokens.insert(p.tokens.end(), filler.begin(), filler.begin() + long(split));
  p.needle_at = p.tokens.size();
  p.tokens.insert(p.tokens.end(), needle.begin(), needle.end());
  p.tokens.insert(p.tokens.end(), filler.begin() + long(split), filler.begin() + n_filler);
  p.tokens.insert(p.tokens.end(), question.begin(), question.end());
  return p;
}

std::string first_number(const std::string& text) {
  auto begin = std::find_if(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
  auto end = std::find_if(begin, text.end(), [](unsigned char c) { return !std::isdigit(c); });
  return std::string(begin, end);
}

std::string read_haystack(const std::string& path) {
  std::string text = read_text_file(path);
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '{') return text;
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  require(!j.is_discarded(), ErrorCode::kBadFile, path + " starts like JSON but does not parse");
  require(j.contains("text") && j["text"].is_string(), ErrorCode::kBadFile,
          path + " is JSON without a string member \"text\"");
  return j["text"].get<std::string>();
}

}  // namespace fkv::tools
