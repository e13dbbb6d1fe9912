// Reading tokenizer.ggml.* from a GGUF file into a Vocab.
#include "gguf/gguf_reader.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

namespace fkv {
namespace {

const GgufArray& require_array(const GgufFile& file, const std::string& key, GgufValueType elem,
                               const char* what) {
  const GgufArray* array = file.get_array(key);
  require(array != nullptr, ErrorCode::kBadFile, key + " is missing");
  require(array->elem_type == elem, ErrorCode::kBadFile, key + " must be an array of " + what);
  return *array;
}

std::vector<std::string> read_strings(const GgufFile& file, const std::string& key) {
  const GgufArray& array = require_array(file, key, GgufValueType::STRING, "strings");
  std::vector<std::string> out;
  out.reserve(array.items.size());
  for (const GgufValue& v : array.items) {
    const auto* s = std::get_if<std::string>(&v.value);
    require(s != nullptr, ErrorCode::kBadFile, key + " holds a value that is not a string");
    out.push_back(*s);
  }
  return out;
}

bool numeric(GgufValueType t) {
  return t != GgufValueType::STRING && t != GgufValueType::ARRAY && t != GgufValueType::BOOL;
}

double number(const GgufValue& v, const std::string& key) {
  if (const auto* u = std::get_if<uint64_t>(&v.value)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&v.value)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&v.value)) return *d;
  throw Error(ErrorCode::kBadFile, key + " holds a value that is not a number");
}

const GgufArray* optional_numbers(const GgufFile& file, const std::string& key, size_t n) {
  const GgufArray* array = file.get_array(key);
  if (!array) return nullptr;
  require(numeric(array->elem_type), ErrorCode::kBadFile, key + " must be an array of numbers");
  require(
      array->items.size() == n, ErrorCode::kBadFile,
      key + " has " + std::to_string(array->items.size()) + " entries for " + std::to_string(n) + " tokens");
  return array;
}

int32_t read_id(const GgufFile& file, const std::string& key, size_t n) {
  const std::optional<int64_t> id = file.get_int(key);
  if (!id) return -1;
  // -1 (or its uint32 spelling) is how some converters write "none".
  if (*id == -1 || *id == 0xFFFFFFFFll) return -1;
  require(
      *id >= 0 && *id < static_cast<int64_t>(n), ErrorCode::kBadFile,
      key + " = " + std::to_string(*id) + " is outside the vocabulary of " + std::to_string(n) + " tokens");
  return static_cast<int32_t>(*id);
}

}  // namespace

Vocab read_vocab(const GgufFile& file) {
  const std::optional<std::string> model = file.get_string("tokenizer.ggml.model");
  require(model.has_value() && *model != "none", ErrorCode::kUnsupported,
          file.path() + ": the model has no tokenizer (tokenizer.ggml.model is " +
              (model ? "\"none\"" : std::string("absent")) + ")");
  Vocab v;
  if (*model == "llama") {
    v.model = VocabModel::kSentencePiece;
    v.add_bos = true;
    v.add_space_prefix = true;
  } else if (*model == "gpt2") {
    v.model = VocabModel::kByteLevelBpe;
    v.add_bos = false;
    v.add_space_prefix = false;
  } else {
    throw Error(ErrorCode::kUnsupported,
                file.path() + ": tokenizer.ggml.model = \"" + *model + "\" is not supported (llama, gpt2)");
  }

  v.tokens = read_strings(file, "tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  require(n > 0, ErrorCode::kBadFile, "tokenizer.ggml.tokens is empty");

  if (const GgufArray* scores = optional_numbers(file, "tokenizer.ggml.scores", n)) {
    v.scores.reserve(n);
    for (const GgufValue& s : scores->items)
      v.scores.push_back(static_cast<float>(number(s, "tokenizer.ggml.scores")));
  }
  if (const GgufArray* types = optional_numbers(file, "tokenizer.ggml.token_type", n)) {
    v.types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const double t = number(types->items[i], "tokenizer.ggml.token_type");
      require(t >= 0 && t <= 6 && t == static_cast<int>(t), ErrorCode::kBadFile,
              "tokenizer.ggml.token_type[" + std::to_string(i) + "] = " + std::to_string(t) +
                  " is not a token type (0..6)");
      v.types.push_back(static_cast<TokenType>(static_cast<int>(t)));
    }
  }
  if (v.model == VocabModel::kByteLevelBpe) {
    v.merges = read_strings(file, "tokenizer.ggml.merges");
    v.pre = file.get_string("tokenizer.ggml.pre").value_or("");
  }

  v.bos_id = read_id(file, "tokenizer.ggml.bos_token_id", n);
  v.eos_id = read_id(file, "tokenizer.ggml.eos_token_id", n);
  v.unk_id = read_id(file, "tokenizer.ggml.unknown_token_id", n);
  v.pad_id = read_id(file, "tokenizer.ggml.padding_token_id", n);
  v.eot_id = read_id(file, "tokenizer.ggml.eot_token_id", n);
  v.eom_id = read_id(file, "tokenizer.ggml.eom_token_id", n);
  v.add_bos = file.get_bool("tokenizer.ggml.add_bos_token").value_or(v.add_bos);
  v.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix").value_or(v.add_space_prefix);
  // A file that asks for BOS but names none: llama.cpp would fail at the first encode; adding nothing is
  // the only sensible reading.
  if (v.bos_id < 0) v.add_bos = false;
  return v;
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) {
  return make_tokenizer(read_vocab(file));
}

}  // namespace fkv
