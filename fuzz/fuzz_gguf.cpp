// A whole GGUF file (nibble import-gguf): header, metadata, tensor infos and data. A file that
// opens has every metadata value read through the typed accessors, every tensor dequantized,
// and, when it describes a llama model, its config.json and tokenizer built as the importer
// builds them (the tokenizer then loaded by nibble's own tokenizer.json reader).
#include "fuzz_common.h"
#include "nibble/io/gguf.h"
#include "nibble/io/gguf_to_hf.h"
#include "nibble/io/gguf_tokenizer.h"
#include "nibble/text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // GgufFile reads a path; /dev/shm keeps that from touching the disk.
  const std::string path = nibble::fuzz::scratch_dir() + "/model.gguf";
  nibble::fuzz::write_file(path, nibble::fuzz::as_text(data, size));
  nibble::fuzz::expect_only_nibble_errors([&] {
    auto file = nibble::GgufFile::open(path);
    for (const std::string& key : file.keys()) {
      (void)file.type_of(key);
      nibble::fuzz::expect_only_nibble_errors([&] { (void)file.string(key); });
      nibble::fuzz::expect_only_nibble_errors([&] { (void)file.integer(key); });
      nibble::fuzz::expect_only_nibble_errors([&] { (void)file.number(key); });
      nibble::fuzz::expect_only_nibble_errors([&] { (void)file.string_array(key); });
      nibble::fuzz::expect_only_nibble_errors([&] { (void)file.integer_array(key); });
    }
    for (const auto& info : file.tensors()) (void)file.dequantize(info);
    nibble::fuzz::expect_only_nibble_errors([&] { (void)nibble::gguf_to_hf_config(file); });
    nibble::fuzz::expect_only_nibble_errors([&] {
      nibble::HfTokenizerFiles tokenizer = nibble::gguf_to_hf_tokenizer(file);
      (void)nibble::Tokenizer::from_json_string(tokenizer.tokenizer_json, "gguf/tokenizer.json").encode("Hello!");
    });
  });
  return 0;
}
