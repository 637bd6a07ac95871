"""Structured outputs, tool calls, thinking and logprobs through the official `ollama` and `openai`
Python clients against ollamars, on SmolLM2 and gemma-3.

Run by scripts/test-python with OLLAMA_HOST set. Usage:
test_structured.py <SmolLM2 GGUF> <gemma-3 GGUF>. Exits non-zero after listing every failed check.

- Schema suite: every schema of schemas.SUITE, on both models, through the `ollama` client
  (`format=Model.model_json_schema()`) and the `openai` client (`response_format` json_schema).
  Each output must parse, validate with `jsonschema` (draft 2020-12, formats checked) and
  validate with pydantic.
- Tools: the `ollama` client passes a Python function; the `openai` client forces a call with
  `tool_choice: "required"`, streamed (the call arrives whole), sends the result back and
  streams the final answer.
- Thinking: a SmolLM2 model with a Go template that has `.Thinking`: split streamed and not,
  nothing leaks with `think: false`, thinking then `format`, and `reasoning` deltas via openai.
- Logprobs: native and OpenAI shapes, one entry per generated token.
"""

import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import ollama
import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from schemas import SUITE  # noqa: E402

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"  FAIL: {what}")
    return cond


GREEDY = {"temperature": 0, "num_predict": 320}


def validate(name, model_cls, schema, text, where):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return check(False, f"{where} {name}: not JSON ({e}): {text[:200]!r}")
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [e.message for e in validator.iter_errors(value)]
    if not check(not errors, f"{where} {name}: schema errors {errors[:3]} in {text[:200]!r}"):
        return False
    try:
        model_cls.model_validate_json(text)
    except Exception as e:  # pydantic's ValidationError
        return check(False, f"{where} {name}: pydantic refused {text[:200]!r}: {e}")
    return True


def schema_suite(native, oai, models):
    jobs = []
    for model in models:
        for name, cls, prompt in SUITE:
            jobs.append(("ollama", model, name, cls, prompt))
            jobs.append(("openai", model, name, cls, prompt))

    def run(job):
        client, model, name, cls, prompt = job
        schema = cls.model_json_schema()
        msgs = [{"role": "user", "content": prompt + " Answer in JSON."}]
        if client == "ollama":
            r = native.chat(model=model, messages=msgs, format=schema, options=GREEDY)
            return job, r.message.content, r.done_reason
        r = oai.chat.completions.create(
            model=model, messages=msgs, temperature=0, max_tokens=GREEDY["num_predict"],
            response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema}},
        )
        return job, r.choices[0].message.content, r.choices[0].finish_reason

    t0 = time.time()
    ok = 0
    # Four at a time: the server batches them (OLLAMA_NUM_PARALLEL=4).
    with ThreadPoolExecutor(4) as pool:
        for (client, model, name, cls, _), text, finish in pool.map(run, jobs):
            where = f"[{client} {model}]"
            check(finish == "stop", f"{where} {name}: finished with {finish!r}: {text[:120]!r}")
            ok += validate(name, cls, cls.model_json_schema(), text, where)
    print(f"schema suite: {ok}/{len(jobs)} outputs valid ({len(SUITE)} schemas x {len(models)} models x 2 clients) in {time.time() - t0:.0f} s")


def get_weather(city: str) -> str:
    """Get the current weather of a city.

    Args:
      city: The name of the city
    """
    return f"Sunny and 22 degrees in {city}"


TOOL_TEMPLATE = """{{- if .Tools }}<|im_start|>system
Tools: {{ json .Tools }}
Call one as <tool_call>{"name": NAME, "arguments": ARGS}</tool_call><|im_end|>
{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}{{ range .ToolCalls }}<tool_call>{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}</tool_call>{{ end }}{{ else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""

THINK_TEMPLATE = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ if $.Think }}<think>{{ end }}"""


def tools(native, oai, smol_digest):
    native.create(model="py-tooly", files={"m.gguf": smol_digest}, template=TOOL_TEMPLATE)
    # The ollama client turns a Python function into a tool schema. With an example turn in the
    # history, SmolLM2 calls it.
    history = [
        {"role": "system", "content": "Always call get_weather."},
        {"role": "user", "content": "What is the weather in Berlin?"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Berlin"}}}]},
        {"role": "tool", "tool_name": "get_weather", "content": "Rainy in Berlin"},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    r = native.chat(model="py-tooly", messages=history, tools=[get_weather], options=GREEDY)
    calls = r.message.tool_calls or []
    if check(len(calls) == 1, f"ollama function tool: calls {calls}, content {r.message.content!r}"):
        call = calls[0]
        check(call.function.name == "get_weather", f"tool name {call.function.name}")
        check(isinstance(call.function.arguments.get("city"), str), f"arguments {call.function.arguments}")
        check(not (r.message.content or "").strip(), f"content beside the call {r.message.content!r}")
        result = get_weather(**call.function.arguments)
        msgs = history + [r.message, {"role": "tool", "tool_name": "get_weather", "content": result}]
        parts = list(native.chat(model="py-tooly", messages=msgs, tools=[get_weather], stream=True,
                                 options={"temperature": 0, "num_predict": 40}))
        check(parts[-1].done, "final answer stream ends with done")

    # The openai client forces a call, streamed: the call arrives whole in one delta.
    otools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}}, "required": ["city"]}}}]
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    chunks = list(oai.chat.completions.create(model="py-tooly", messages=msgs, tools=otools, tool_choice="required",
                                              temperature=0, max_tokens=60, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    check(finish == ["tool_calls"], f"finish reasons {finish}")
    if check(len(deltas) == 1, f"tool call deltas {deltas}"):
        d = deltas[0]
        args = json.loads(d.function.arguments)
        check(d.function.name == "get_weather" and isinstance(args.get("city"), str), f"streamed call {d}")
        check(d.id.startswith("call_") and len(d.id) == 13, f"call id {d.id}")
        msgs += [
            {"role": "assistant", "content": None, "tool_calls": [{"id": d.id, "type": "function",
                "function": {"name": "get_weather", "arguments": d.function.arguments}}]},
            {"role": "tool", "tool_call_id": d.id, "content": get_weather(args["city"])},
        ]
        final = list(oai.chat.completions.create(model="py-tooly", messages=msgs, tools=otools, temperature=0,
                                                 max_tokens=40, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in final if c.choices)
        check(text.strip(), "final answer after the tool result is empty")
        check(final[-1].choices[0].finish_reason in ("stop", "length"), f"final finish {final[-1]}")
    # Arguments that are not JSON in an assistant message: 400.
    try:
        oai.chat.completions.create(model="py-tooly", messages=[
            {"role": "assistant", "tool_calls": [{"id": "call_x", "type": "function", "function": {"name": "get_weather", "arguments": "{not json"}}]},
            {"role": "user", "content": "ok"}], tools=otools)
        check(False, "non-JSON tool arguments accepted")
    except openai.BadRequestError as e:
        check(e.status_code == 400, f"status {e.status_code}")
    native.delete("py-tooly")
    print("tools: checked")


def thinking(native, oai, smol_digest):
    native.create(model="py-thinker", files={"m.gguf": smol_digest}, template=THINK_TEMPLATE)
    check("thinking" in (native.show("py-thinker").capabilities or []), "thinking capability")
    # Two example turns teach the 135M model to close its thinking block before answering.
    msgs = [
        {"role": "user", "content": "What is 1+1?"},
        {"role": "assistant", "thinking": "One plus one is two.", "content": "2"},
        {"role": "user", "content": "What is 3+3?"},
        {"role": "assistant", "thinking": "Three plus three is six.", "content": "6"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    opts = {"temperature": 0, "num_predict": 40}
    r = native.chat(model="py-thinker", messages=msgs, think=True, options=opts)
    th, ct = r.message.thinking or "", r.message.content or ""
    check(th.strip() and ct.strip(), f"thinking {th!r} content {ct!r}")
    for part in (th, ct):
        check("<think>" not in part and "</think>" not in part, f"tags leaked: {part!r}")
    parts = list(native.chat(model="py-thinker", messages=msgs, think=True, stream=True, options=opts))
    check("".join(p.message.thinking or "" for p in parts) == th, "streamed thinking differs")
    check("".join(p.message.content or "" for p in parts) == ct, "streamed content differs")
    first_content = next((i for i, p in enumerate(parts) if p.message.content), len(parts))
    check(all(not p.message.thinking for p in parts[first_content:]), "thinking after content")
    # think:false: the prompt opens no block; nothing comes back as thinking and no tag leaks.
    r = native.chat(model="py-thinker", messages=msgs, think=False, options=opts)
    check(not r.message.thinking, f"thinking with think:false: {r.message.thinking!r}")
    check("<think>" not in r.message.content and "</think>" not in r.message.content, f"leak {r.message.content!r}")
    # Thinking, then the format: the grammar waits for the closing tag.
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    fmt_msgs = [dict(m) for m in msgs]
    fmt_msgs[1]["content"], fmt_msgs[3]["content"] = '{"answer": 2}', '{"answer": 6}'
    r = native.chat(model="py-thinker", messages=fmt_msgs, think=True, format=schema, options=opts)
    check((r.message.thinking or "").strip(), f"no thinking before the format: {r.message}")
    try:
        jsonschema.validate(json.loads(r.message.content), schema)
    except Exception as e:
        check(False, f"thinking+format content {r.message.content!r}: {e}")
    # OpenAI: reasoning deltas carry the same thinking; a bad effort is a 400.
    # OpenAI spells an assistant message's thinking `reasoning`.
    oai_msgs = [{"role": m["role"], "content": m["content"], **({"reasoning": m["thinking"]} if "thinking" in m else {})}
                for m in msgs]
    chunks = list(oai.chat.completions.create(model="py-thinker", messages=oai_msgs, temperature=0, max_tokens=40,
                                              reasoning_effort="high", stream=True))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning") or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(reasoning == th and content == ct, f"openai reasoning {reasoning!r} content {content!r}")
    both = [c for c in chunks if c.choices and c.choices[0].delta.content and (c.choices[0].delta.model_extra or {}).get("reasoning")]
    check(not both, "a chunk carries both reasoning and content")
    try:
        oai.chat.completions.create(model="py-thinker", messages=msgs, reasoning_effort="extreme")
        check(False, "unknown reasoning_effort accepted")
    except openai.BadRequestError as e:
        check(e.status_code == 400, f"status {e.status_code}")
    native.delete("py-thinker")
    print("thinking: checked")


def logprobs(native, oai, model):
    r = native.chat(model=model, messages=[{"role": "user", "content": "Hi"}], logprobs=True, top_logprobs=3,
                    options={"temperature": 0, "num_predict": 6})
    lps = r.logprobs or []
    check(len(lps) == r.eval_count, f"{len(lps)} logprobs for {r.eval_count} tokens")
    check("".join(l.token for l in lps) == r.message.content, "logprob tokens do not spell the content")
    for l in lps:
        top = l.top_logprobs or []
        check(len(top) == 3, f"top_logprobs {top}")
        # Greedy: the chosen token is the most likely one.
        check(top and top[0].token == l.token and abs(top[0].logprob - l.logprob) < 1e-6, f"greedy token {l}")
        check(all(a.logprob >= b.logprob for a, b in zip(top, top[1:])), "alternatives not sorted")
        check(sum(math.exp(t.logprob) for t in top) <= 1.0 + 1e-4, "probabilities above 1")
    c = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], logprobs=True,
                                    top_logprobs=2, max_tokens=6, temperature=0)
    content = c.choices[0].logprobs.content
    check(len(content) == c.usage.completion_tokens, "openai logprobs count")
    check([x.token for x in content] == [l.token for l in lps], "openai and native logprob tokens differ")
    try:
        oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], logprobs=True, top_logprobs=21)
        check(False, "top_logprobs 21 accepted")
    except openai.BadRequestError as e:
        check(e.status_code == 400, f"status {e.status_code}")
    print("logprobs: checked")


def main():
    host = os.environ["OLLAMA_HOST"]
    native = ollama.Client(host=host, timeout=600)
    oai = openai.OpenAI(base_url=f"{host}/v1", api_key="unused", timeout=600)
    smol = native.create_blob(sys.argv[1])
    gemma = native.create_blob(sys.argv[2])
    native.create(model="st-smol", files={"m.gguf": smol})
    native.create(model="st-gemma", files={"m.gguf": gemma})
    schema_suite(native, oai, ["st-smol", "st-gemma"])
    tools(native, oai, smol)
    thinking(native, oai, smol)
    logprobs(native, oai, "st-smol")
    native.delete("st-smol")
    native.delete("st-gemma")
    if FAILURES:
        print(f"structured outputs: {len(FAILURES)} checks failed", file=sys.stderr)
        for f in FAILURES:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)
    print("structured outputs: all checks passed")


if __name__ == "__main__":
    main()
