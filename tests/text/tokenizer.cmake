# Tokenizer tests: golden ids/decodes from HF tokenizers, single stages, and bad input.
nibble_add_test(test_tokenizer
  SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_golden.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_stages.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_errors.cpp
  DEPS text_tokenizer)
