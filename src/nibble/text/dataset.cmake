# JSONL datasets -> token ids, loss masks and training batches (packing, shuffling, resume).
nibble_add_module(text_dataset
  SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/dataset.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/dataset_format.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/dataset_encode.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/dataset_shuffle.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/dataset_batch.cpp
  DEPS text_tokenizer text_chat_template core
  LIBS nlohmann_json::nlohmann_json)
