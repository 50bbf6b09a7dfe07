# Dataset tests: formats on the golden tokenizers and templates, batching and resume, bad input.
nibble_add_test(test_dataset
  SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/test_dataset_formats.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/test_dataset_batches.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/test_dataset_errors.cpp
  DEPS text_dataset)
