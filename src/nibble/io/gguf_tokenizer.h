// A Hugging Face tokenizer rebuilt from a GGUF file's tokenizer.ggml.* metadata
// (research/formats.md section 7.3): tokenizer.json and tokenizer_config.json as transformers
// would write them for the original model.
//
// Supported: tokenizer.ggml.model "gpt2" (byte-level BPE: tokens already in GPT-2's byte
// alphabet, merges as "a b") with the pre-tokenizers llama.cpp names gpt2, smollm, starcoder,
// llama-bpe (also llama3, llama-v3) and qwen2. Anything else, SentencePiece ("llama") included,
// is a nibble::Error naming the key and what is supported.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "nibble/io/gguf.h"

namespace nibble {

struct HfTokenizerFiles {
  std::string tokenizer_json;              // the text of tokenizer.json
  nlohmann::ordered_json tokenizer_config;  // tokenizer_config.json, keys sorted as transformers writes them
};

// Reads tokenizer.ggml.model, .pre, .tokens, .token_type, .merges, the special token ids,
// add_bos_token / add_eos_token, tokenizer.chat_template (and tokenizer.chat_template.<name>)
// and {arch}.context_length. Control tokens (token_type 3) become special added tokens and
// user-defined ones (4) plain added tokens, as convert_hf_to_gguf.py made them from HF's.
HfTokenizerFiles gguf_to_hf_tokenizer(const GgufFile& file);

}  // namespace nibble
