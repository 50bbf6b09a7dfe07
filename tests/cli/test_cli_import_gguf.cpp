// `nibble import-gguf` as a user runs it: a tiny GGUF becomes a folder the other commands load,
// and bad input leaves nothing behind.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "nibble/io/hf_config.h"
#include "tests/cli/cli_runner.h"
#include "tests/support/gguf_writer.h"
#include "tests/support/tiny_model.h"

namespace fs = std::filesystem;
using namespace nibble;
using namespace nibble::testing;

namespace {

void expect_no_partial_folders(const TempDir& tmp) {
  for (const auto& entry : fs::directory_iterator(tmp.path()))
    EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos) << entry.path();
}

}  // namespace

TEST(CliImportGguf, WritesAnHfFolderOtherCommandsLoad) {
  TempDir tmp;
  write_tiny_llama_gguf(tmp / "tiny.gguf");
  CliResult r = run_nibble("import-gguf " + (tmp / "tiny.gguf") + " --out " + (tmp / "hf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("imported llama \"tiny test llama\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("20 tensors (20 F32)"), std::string::npos) << r.output;
  for (const char* file : {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                           "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(tmp / ("hf/" + std::string(file)))) << file;
  EXPECT_EQ(load_model_config(tmp / "hf").hidden_size, 64);
  CliResult m = run_nibble("memory --model " + (tmp / "hf"));
  EXPECT_EQ(m.exit_code, 0) << m.output;
  CliResult g = run_nibble("generate --model " + (tmp / "hf") + " --prompt hello --max-new-tokens 3 --device cpu");
  EXPECT_EQ(g.exit_code, 0) << g.output;
  expect_no_partial_folders(tmp);
}

TEST(CliImportGguf, RefusesNonEmptyOutput) {
  TempDir tmp;
  write_tiny_llama_gguf(tmp / "tiny.gguf");
  fs::create_directories(tmp / "hf");
  std::ofstream(tmp / "hf/keep.txt") << "mine";
  CliResult r = run_nibble("import-gguf " + (tmp / "tiny.gguf") + " --out " + (tmp / "hf"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("already exists and is not empty"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(tmp / "hf/keep.txt"));
}

TEST(CliImportGguf, BadFilesNameTheFileAndLeaveNothing) {
  TempDir tmp;
  std::ofstream(tmp / "notgguf.gguf") << "PK\x03\x04 this is a zip";
  CliResult r = run_nibble("import-gguf " + (tmp / "notgguf.gguf") + " --out " + (tmp / "hf"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("notgguf.gguf: not a GGUF file"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "hf"));

  TinyLlamaGguf spec;
  spec.architecture = "mamba";
  write_tiny_llama_gguf(tmp / "mamba.gguf", spec);
  r = run_nibble("import-gguf " + (tmp / "mamba.gguf") + " --out " + (tmp / "hf"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("general.architecture is \"mamba\""), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "hf"));

  write_tiny_llama_gguf(tmp / "cut.gguf");
  fs::resize_file(tmp / "cut.gguf", fs::file_size(tmp / "cut.gguf") - 100);
  r = run_nibble("import-gguf " + (tmp / "cut.gguf") + " --out " + (tmp / "hf"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cut.gguf: tensor 'output_norm.weight'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "hf"));

  r = run_nibble("import-gguf " + (tmp / "missing.gguf") + " --out " + (tmp / "hf"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("missing.gguf: cannot open"), std::string::npos) << r.output;
  expect_no_partial_folders(tmp);
}
