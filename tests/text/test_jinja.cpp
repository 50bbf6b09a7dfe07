// Unit tests of the Jinja interpreter. The expected strings of kCases were produced by jinja2 3.1.6
// in transformers' environment (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
// loopcontrols, tojson as json.dumps(ensure_ascii=False)), rendered with ms=[{role: u, content: c}].
#include <string>

#include <gtest/gtest.h>

#include "nibble/core/error.h"
#include "nibble/text/jinja_template.h"

namespace {

using nibble::jinja::Dict;
using nibble::jinja::Limits;
using nibble::jinja::Template;
using nibble::jinja::Value;

struct Case {
  const char* source;
  const char* expected;
};

const Case kCases[] = {
    {"text {# comment #}end",
     "text end"},
    {"{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 4 / 2 }}",
     "7 3 -4 1 2 1024 3.5 2.0"},
    {"{{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1] + [2] }}",
     "a1None ababab [1, 2]"},
    {"{{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ 3 > 2 > 1 }} {{ not true }} {{ 1 in [1,2] }} {{ 'x' not in 'abc' }}",
     "True True True False True True"},
    {"{{ 'yes' if 0 else 'no' }} {{ 'a' if true }}|{{ (1 if false) is defined }}",
     "no a|False"},
    {"{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }};{% endfor %}",
     "10TrueFalse332;21FalseFalse321;32FalseTrue310;"},
    {"{% for x in ['a','b','c'] %}{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }}-{{ loop.cycle('o','e') }};{% endfor %}",
     "-a-b-o;a-b-c-e;b-c--o;"},
    {"{% for x in [] %}x{% else %}empty{% endfor %}",
     "empty"},
    {"{% for x in [1,2,3,4,5] if x is odd %}{{ x }}{{ loop.length }}{% endfor %}",
     "133353"},
    {"{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}={{ v }},{% endfor %}{% for k, v in {'z': 0}|items %}{{ k }}{{ v }}{% endfor %}",
     "b=1,a=2,z0"},
    {"{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}",
     "0134"},
    {"{% if 0 %}a{% elif 1 %}b{% else %}c{% endif %}",
     "b"},
    {"{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}",
     "1"},
    {"{% set ns = namespace(n=0) %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
     "6"},
    {"{% set b %}in {{ 1 }}{% endset %}[{{ b }}]",
     "[in 1]"},
    {"{% set a, b = 1, 2 %}{{ a }}{{ b }}",
     "12"},
    {"{% macro greet(name, p='!') %}hi {{ name }}{{ p }}{% endmacro %}{{ greet('bob') }} {{ greet('x', p='?') }}",
     "hi bob! hi x?"},
    {"{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}body{% endcall %}",
     "<body>"},
    {"{{ [1,2,3,4][1:3] }} {{ [1,2,3][::-1] }} {{ 'hello'[1:] }} {{ 'h\xc3\xa9""llo'[::-1] }} {{ [1,2,3][-1] }}",
     "[2, 3] [3, 2, 1] ello oll\xc3\xa9""h 3"},
    {"{{ {'a': 1}.a }} {{ {'a': 1}['a'] }} {{ {'a': 1}.get('b', 5) }} {{ {'a': 1}.keys() | list }} {{ {'a': 1}.values() | list }}",
     "1 1 5 ['a'] [1]"},
    {"{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ 1 is number }} {{ [] is sequence }} {{ true is boolean }} {{ true is true }} {{ false is false }} {{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby(3) }} {{ 1 is not none }}",
     "False True True True True True True True True True True True True True True"},
    {"[{{ x }}]{% for i in x %}no{% endfor %}{{ x | default('dflt') }}{{ '' | d('e', true) }}",
     "[]dflte"},
    {"{{ '  a b  ' | trim }}|{{ [1,2] | length }}|{{ 'abc' | count }}|{{ 'Ab' | lower }}{{ 'ab' | upper }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}|{{ 'aaa' | replace('a', 'b') }}|{{ [1,2,3] | join('-') }}|{{ [1,2] | first }}{{ [1,2] | last }}",
     "a b|2|3|abAB|Hello World|Hello|bbb|1-2-3|12"},
    {"{{ 3.7 | int }} {{ '42' | int }} {{ 'x' | int }} {{ 2 | float }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ -3 | abs }} {{ 1 | string }}x",
     "3 42 0 2.0 2.57 2.0 3 1x"},
    {"{{ [{'n': 'a'}, {'n': 'b'}] | map(attribute='n') | join }} {{ ['a','b'] | map('upper') | list }} {{ [1,2,3,4] | select('even') | list }} {{ [1,2,3] | reject('odd') | list }}",
     "ab ['A', 'B'] [2, 4] [2]"},
    {"{{ [{'r': 'u'}, {'r': 's'}] | selectattr('r', 'equalto', 's') | list }} {{ [{'r': 'u'}, {'r': 's'}] | rejectattr('r', 'equalto', 's') | list | length }}",
     "[{'r': 's'}] 1"},
    {"{{ [3,1,2] | sort }} {{ [3,1,2] | sort(reverse=true) }} {{ ['b','A','a'] | unique | list }} {{ [1,2] | reverse | list }} {{ '<a>' | e }} {{ '<a>' | safe }}",
     "[1, 2, 3] [3, 2, 1] ['b', 'A'] [2, 1] &lt;a&gt; <a>"},
    {"{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}|{{ 'one two three' | wordcount }}|{{ 'ab' | center(7) }}|",
     "a\n  b\n\n  c|  a\n  b|3|   ab  |"},
    {"{{ {'b': [1, 2.5, none, true], 'a': '\xc3\xa9""\"'} | tojson }}|{{ {'b': 1, 'a': {}} | tojson(indent=2) }}|{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|{{ [1,2] | tojson(separators=(',', ':')) }}",
     "{\"b\": [1, 2.5, null, true], \"a\": \"\xc3\xa9""\\\"\"}|{\n  \"b\": 1,\n  \"a\": {}\n}|{\"a\": 2, \"b\": 1}|[1,2]"},
    {"{{ '  x  '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}|{{ 'ab'.upper() }}{{ 'AB'.lower() }}|{{ 'aXa'.replace('a', 'b') }}|{{ 'hi {} {}'.format(1, 'x') }}|{{ 'abcb'.find('b') }}{{ 'abcb'.count('b') }}|{{ 'a b'.title() }}{{ 'aB'.capitalize() }}",
     "x|axx|xxa|['a', 'b', '', 'c']|['a', 'b']|TrueTrue|ABab|bXb|hi 1 x|12|A BAb"},
    {"{{ 1.0 }} {{ 0.1 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 123456789.125 }} {{ [1, 'a', none, true] }} {{ {'k': \"it's\"} }}",
     "1.0 0.1 1e+20 1.5e-07 123456789.125 [1, 'a', None, True] {'k': \"it's\"}"},
    {"  {% if true %}\n    x\n  {% endif %}\n{{- ' y ' -}}\n  z {%- if true +%}  w{% endif %}",
     "    x\n y z  w"},
    {"a  {%- if true -%}  b  {%- endif -%}  c\n{# c #}\nd {{ 'e' }}\n",
     "abc\nd e"},
    {"{% for m in ms %}{{ m.role }}{{ m['content'] }}{{ m.missing }}{% endfor %}",
     "uc"},
    {"{{ strftime_now('%Y') | length }}",
     "4"},
};

Dict case_variables() {
  Dict message;
  message.set("role", Value::string("u"));
  message.set("content", Value::string("c"));
  Dict vars;
  vars.set("ms", Value::make_list({Value::make_dict(message)}));
  return vars;
}

TEST(Jinja, ConstructsFiltersAndWhitespaceMatchJinja2) {
  for (const auto& c : kCases) {
    std::string got;
    try {
      got = Template(c.source).render(case_variables());
    } catch (const nibble::Error& e) {
      ADD_FAILURE() << c.source << "\n  error: " << e.what();
      continue;
    }
    EXPECT_EQ(got, c.expected) << c.source;
  }
}

std::string error_of(const std::string& source, const Limits& limits = {}) {
  try {
    Template(source).render(case_variables(), limits);
  } catch (const nibble::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(Jinja, SyntaxErrorsNameLineColumnAndConstruct) {
  std::string e = error_of("a\nb {% if x %}\n{% endfor %}");
  EXPECT_TRUE(contains(e, "line 3")) << e;
  EXPECT_TRUE(contains(e, "endfor")) << e;
  e = error_of("{% if x %}never closed");
  EXPECT_TRUE(contains(e, "endif")) << e;
  e = error_of("\n\n  {{ 'unclosed }}");
  EXPECT_TRUE(contains(e, "line 3")) << e;
  e = error_of("{% raw %}x{% endraw %}");
  EXPECT_TRUE(contains(e, "unsupported statement")) << e;
  EXPECT_TRUE(contains(e, "raw")) << e;
  e = error_of("x\n{{ 1 + }}");
  EXPECT_TRUE(contains(e, "line 2, column 8")) << e;
  e = error_of("{% break %}");
  EXPECT_TRUE(contains(e, "outside of a for loop")) << e;
}

TEST(Jinja, RuntimeErrorsNameTheLine) {
  std::string e = error_of("ok\n\n{{ nothing.attr }}");
  EXPECT_TRUE(contains(e, "line 3")) << e;
  EXPECT_TRUE(contains(e, "'nothing' is undefined")) << e;
  e = error_of("{{ ms[5]['role'] }}");
  EXPECT_TRUE(contains(e, "list object has no element 5")) << e;
  e = error_of("\n{{ 'a' | no_such_filter }}");
  EXPECT_TRUE(contains(e, "line 2")) << e;
  EXPECT_TRUE(contains(e, "no_such_filter")) << e;
  e = error_of("{{ 1 + 'a' }}");
  EXPECT_TRUE(contains(e, "unsupported operand")) << e;
  e = error_of("{{ 1 // 0 }}");
  EXPECT_TRUE(contains(e, "division by zero")) << e;
  e = error_of("{% for x in none %}{% endfor %}");
  EXPECT_TRUE(contains(e, "not iterable")) << e;
}

TEST(Jinja, RaiseExceptionCarriesTheTemplateMessage) {
  std::string e = error_of("\n{{ raise_exception('Roles must alternate!') }}");
  EXPECT_TRUE(contains(e, "Roles must alternate!")) << e;
  EXPECT_TRUE(contains(e, "line 2")) << e;
}

TEST(Jinja, LimitsStopRunawayTemplates) {
  Limits limits;
  limits.max_loop_iterations = 1000;
  std::string e = error_of("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", limits);
  EXPECT_TRUE(contains(e, "max_loop_iterations")) << e;
  EXPECT_EQ(error_of("{% for i in range(10) %}{% for j in range(10) %}{% endfor %}{% endfor %}", limits), "");

  limits = Limits();
  limits.max_output_bytes = 100;
  e = error_of("{% for i in range(50) %}abc{% endfor %}", limits);
  EXPECT_TRUE(contains(e, "max_output_bytes")) << e;
  e = error_of("{{ 'x' * 1000 }}", limits);
  EXPECT_TRUE(contains(e, "max_output_bytes")) << e;

  limits = Limits();
  limits.max_depth = 50;
  e = error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", limits);
  EXPECT_TRUE(contains(e, "max_depth")) << e;
}

TEST(Jinja, IntAndFloatStayDistinct) {
  Dict vars;
  vars.set("i", Value::integer(3));
  vars.set("f", Value::floating(3.0));
  EXPECT_EQ(Template("{{ i }} {{ f }} {{ i is integer }} {{ f is float }} {{ i == f }}").render(vars),
            "3 3.0 True True True");
}

// Untrusted templates (issue 5): each of these once crashed, hung, overflowed an integer or
// allocated without bound; now each is one nibble::Error naming the limit or the problem.
TEST(Jinja, HostileTemplatesEndInOneError) {
  const std::pair<std::string, const char*> cases[] = {
      {"{{ range(10**12)|length }}", "MAX_RANGE"},
      {"{{ range(9223372036854775800, 9223372036854775807, 5)|list }}", ""},  // fits: 2 items, no overflow
      {"{{ 'ab' * 9223372036854775807 }}", "max_output_bytes"},
      {"{{ ('' * 9223372036854775807)|length }}{{ ([] * 9223372036854775807)|length }}", ""},  // was 2^63 turns
      {"{{ [1, 2] * 4611686018427387904 }}", "max_loop_iterations"},
      {"{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
       "max_output_bytes"},
      {"{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}",
       "max_output_bytes"},
      {"{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
       "{{ ns.l|tojson }}", "max_output_bytes"},
      {"{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", "max_depth"},
      {"{{ 'x'|center(10**12) }}", "max_output_bytes"},
      {"{{ 'x\ny'|indent(10**12) }}", "max_output_bytes"},
      {"{{ 9223372036854775807 + 1 }}", "integer overflow in '+'"},
      {"{{ (-9223372036854775807 - 1) // -1 }}", "integer overflow in '//'"},
      {"{{ -(-9223372036854775807 - 1) }}", "integer overflow in '-'"},
      {"{{ 3 ** 100 }}", "integer overflow in '**'"},
      {"{{ (-9223372036854775807 - 1)|abs }}", "does not fit in a 64-bit integer"},
      {"{{ 1e300|int }}", "does not fit in a 64-bit integer"},
      {"{{ '\\xZZ' }}", "truncated \\x escape"},
      {"{{ '\\U00110000' }}", "illegal Unicode character"},
      {"{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}", "nest deeper than 256"},
      {"{{ x" + [] { std::string s; for (int i = 0; i < 100000; ++i) s += "|e"; return s; }() + " }}",
       "nests deeper than 256"},
      {[] { std::string s = "{{ 1"; for (int i = 0; i < 100000; ++i) s += "+1"; return s + " }}"; }(),
       "nests deeper than 256"},
      {[] { std::string s; for (int i = 0; i < 100000; ++i) s += "{% if 1 %}"; return s; }(), "nest deeper than 256"},
  };
  for (const auto& [source, fragment] : cases) {
    std::string e = error_of(source);
    if (*fragment == '\0') EXPECT_EQ(e, "") << source.substr(0, 80);
    else EXPECT_TRUE(contains(e, fragment)) << source.substr(0, 80) << "\n  error: " << e;
  }
}

TEST(Jinja, OverflowSafeArithmeticStillMatchesPython) {
  EXPECT_EQ(Template("{{ -7 % 3 }} {{ 7 % -3 }} {{ (-9223372036854775807 - 1) % 3 }} {{ 5 // -1 }} {{ 0 ** 0 }} "
                     "{{ (-1) ** 63 }} {{ 2 ** 62 }} {{ 'abcdef'[1::9223372036854775807] }} {{ 'abc'[::-2] }} "
                     "{{ 'nan'|float|int(7) }} {{ 'x'|indent(-5) }}")
                .render(case_variables()),
            "2 -2 1 -5 1 -1 4611686018427387904 b ca 7 x");
}

TEST(Jinja, WorkLimitStopsAValueGrowingInALoop) {
  Limits limits;
  limits.max_work = 1000000;
  std::string e = error_of("{% set ns = namespace(s='x' * 1000) %}{% for i in range(10000) %}{% set ns.t = ns.s ~ i %}"
                           "{% endfor %}", limits);
  EXPECT_TRUE(contains(e, "max_work")) << e;
  EXPECT_EQ(error_of("{% for i in range(100) %}{{ i }}{% endfor %}", limits), "");
}

TEST(Jinja, UniqueOfALongListIsFast) {
  EXPECT_EQ(Template("{{ (range(100000)|list + range(100000)|list)|unique|length }} {{ ['a', 'A', 1, 1.0, true]|unique|list }}")
                .render(case_variables()),
            "100000 ['a', 1]");
}

}  // namespace
