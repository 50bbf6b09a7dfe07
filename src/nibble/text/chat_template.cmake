# Chat templates: a small Jinja interpreter and the ChatTemplate that renders a model's template.
nibble_add_module(text_chat_template
  SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/jinja_value.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/jinja_lexer.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/jinja_parser.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/jinja_template.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/jinja_builtins.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/chat_template.cpp
  DEPS core
  LIBS nlohmann_json::nlohmann_json)
