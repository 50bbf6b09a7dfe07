#!/usr/bin/env python3
"""Renders the chat templates in tests/golden/chat_templates/*.jinja on golden conversations, the way
transformers' apply_chat_template(..., tokenize=False) does, and writes golden.jsonl next to them.

Prefers transformers' own render_jinja_template; when transformers does not import, falls back to a
jinja2-only mimic of its environment (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
loopcontrols, raise_exception, strftime_now, tojson as json.dumps(ensure_ascii=False)). The header
line says which one ran. strftime_now is pinned to FIXED_NOW so the output does not depend on the day.

Usage: python3 tests/golden/make_chat_template_golden.py
"""
import datetime as _dt
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE_DIR = os.path.join(HERE, "chat_templates")
FIXED_NOW = _dt.datetime(2024, 9, 5, 14, 30, 0)

SPECIAL_TOKENS = {
    "llama3_1_instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama2_chat": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "mistral_instruct_v0_1": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "qwen2_instruct": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "qwen2_5_instruct": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "zephyr": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "smollm2_instruct": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                         "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>"},
}


class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


def make_renderer():
    """Returns (name, render(template, messages, add_generation_prompt, kwargs) -> str)."""
    try:
        import transformers
        from transformers.utils import chat_template_utils as ctu

        ctu.datetime = _FixedDatetime

        def render(template, messages, add_generation_prompt, kwargs):
            kwargs = dict(kwargs)
            tools = kwargs.pop("tools", None)
            documents = kwargs.pop("documents", None)
            out, _ = ctu.render_jinja_template(
                conversations=[messages], tools=tools, documents=documents, chat_template=template,
                add_generation_prompt=add_generation_prompt, **kwargs)
            return out[0]

        return "transformers %s render_jinja_template" % transformers.__version__, render
    except Exception:
        pass

    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: FIXED_NOW.strftime(fmt)
    env.globals["dict"] = dict
    env.globals["namespace"] = jinja2.utils.Namespace

    def render(template, messages, add_generation_prompt, kwargs):
        kwargs = dict(kwargs)
        tools = kwargs.pop("tools", None)
        documents = kwargs.pop("documents", None)
        return env.from_string(template).render(messages=messages, tools=tools, documents=documents,
                                                add_generation_prompt=add_generation_prompt, **kwargs)

    return "jinja2 %s mimic of transformers' environment" % jinja2.__version__, render


def sys_user(system, user):
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city, \"quoted\" and ünïcødé",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
            },
            "required": ["city"],
        },
    },
}

MULTI_TURN = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi there"},
    {"role": "user", "content": "Who are you"},
    {"role": "assistant", "content": "   I am an assistant   "},
    {"role": "user", "content": "Another question"},
]

COMMON_CASES = [
    ("system_user", sys_user("You are a helpful assistant.", "What is 2+2?"), {}),
    ("multi_turn", MULTI_TURN, {}),
    ("no_system", MULTI_TURN[1:], {}),
    ("special_chars", sys_user("Use {{ braces }} and {% tags %} literally.",
                               "Quotes \" ' and back\\slash, tabs\tand\nnewlines\n\n<|im_end|> [INST]"), {}),
    ("unicode", [{"role": "user", "content": "Grüße, 世界! 🦙 ñ café — “quotes”"},
                 {"role": "assistant", "content": "Привет 👋"},
                 {"role": "user", "content": "日本語で答えて"}], {}),
    ("empty_content", [{"role": "system", "content": ""}, {"role": "user", "content": ""}], {}),
    ("not_alternating", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], {}),
    ("assistant_first", [{"role": "assistant", "content": "I start"}, {"role": "user", "content": "ok"}], {}),
]

EXTRA_CASES = {
    "llama3_1_instruct": [
        ("date_string", sys_user("Sys", "Hi"), {"date_string": "05 Sep 2024"}),
        ("tools_in_user", [{"role": "user", "content": "  Weather in Paris?  "}], {"tools": [WEATHER_TOOL]}),
        ("tools_in_system", sys_user("Be brief.", "Weather in Paris?"),
         {"tools": [WEATHER_TOOL], "tools_in_user_message": False}),
        ("tool_call_round", [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                "name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
            {"role": "tool", "content": {"temperature": 21.5, "sky": "clear"}},
            {"role": "tool", "content": "plain text result"},
        ], {"tools": [WEATHER_TOOL]}),
        ("two_tool_calls", [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [
                {"function": {"name": "a", "arguments": {}}}, {"function": {"name": "b", "arguments": {}}}]},
        ], {}),
        ("builtin_tools", [
            {"role": "system", "content": "Sys"},
            {"role": "user", "content": "Search it"},
            {"role": "assistant", "tool_calls": [{"function": {
                "name": "brave_search", "arguments": {"query": "llamas", "count": "3"}}}]},
            {"role": "ipython", "content": ["r1", "r2"]},
        ], {"builtin_tools": ["brave_search", "code_interpreter", "wolfram_alpha"]}),
        ("tools_no_messages", [], {"tools": [WEATHER_TOOL]}),
    ],
    "qwen2_5_instruct": [
        ("tools", sys_user("Be brief.", "Weather in Paris?"), {"tools": [WEATHER_TOOL]}),
        ("tools_default_system", [{"role": "user", "content": "Weather?"}], {"tools": [WEATHER_TOOL]}),
        ("tool_call_round", [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"name": "get_weather", "arguments": {"city": "Rome", "days": 2}}]},
            {"role": "tool", "content": "21C"},
            {"role": "tool", "content": "25C"},
            {"role": "assistant", "content": "Paris 21C, Rome 25C."},
            {"role": "system", "content": "late system"},
        ], {"tools": [WEATHER_TOOL]}),
    ],
}


def main():
    name, render = make_renderer()
    out_path = os.path.join(TEMPLATE_DIR, "golden.jsonl")
    lines = [json.dumps({"header": True, "script": "tests/golden/make_chat_template_golden.py",
                         "renderer": name, "python": platform.python_version(),
                         "fixed_now": FIXED_NOW.isoformat()}, ensure_ascii=False)]
    for template_name in sorted(SPECIAL_TOKENS):
        with open(os.path.join(TEMPLATE_DIR, template_name + ".jinja"), encoding="utf-8") as f:
            template = f.read()
        cases = COMMON_CASES + EXTRA_CASES.get(template_name, [])
        for case_name, messages, extra in cases:
            for add_generation_prompt in (False, True):
                record = {"template": template_name, "case": case_name, "messages": messages,
                          "add_generation_prompt": add_generation_prompt, "extra": extra,
                          "special_tokens": SPECIAL_TOKENS[template_name]}
                try:
                    record["output"] = render(template, messages, add_generation_prompt,
                                              {**SPECIAL_TOKENS[template_name], **extra})
                except Exception as e:  # the template's own raise_exception, or a jinja2 error
                    record["error"] = str(e)
                    # TemplateError is the template's own raise_exception; other jinja2 errors (an
                    # undefined value, a type error) have messages only jinja2 words exactly that way.
                    record["error_type"] = type(e).__name__
                lines.append(json.dumps(record, ensure_ascii=False))
    with open(out_path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(out_path + ".tmp", out_path)
    print("wrote %d cases with %s to %s" % (len(lines) - 1, name, out_path), file=sys.stderr)


if __name__ == "__main__":
    main()
