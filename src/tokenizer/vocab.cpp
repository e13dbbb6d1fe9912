#include "tokenizer/vocab.h"

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "util/error.h"

namespace fkv {

std::unique_ptr<Tokenizer> make_tokenizer(const Vocab& vocab) {
  switch (vocab.model) {
    case VocabModel::kSentencePiece:
      return std::make_unique<SpmTokenizer>(vocab);
    case VocabModel::kByteLevelBpe:
      return std::make_unique<BpeTokenizer>(vocab);
  }
  throw Error(ErrorCode::kInternal, "unknown VocabModel");
}

}  // namespace fkv
