nibble_add_test(test_jinja SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_jinja.cpp DEPS text_chat_template)
nibble_add_test(test_chat_template SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_chat_template.cpp DEPS text_chat_template)
