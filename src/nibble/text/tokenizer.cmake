# The tokenizer.json BPE tokenizer (byte-level and SentencePiece-style).
nibble_add_module(text_tokenizer
  SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_added.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_post_processor.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_decoder.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_regex.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/normalizer.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/pre_tokenizer.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/bpe.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/unicode.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/unicode_nfc_data.cpp
  DEPS core
  LIBS nlohmann_json::nlohmann_json PkgConfig::PCRE2)
