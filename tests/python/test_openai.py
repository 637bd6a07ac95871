"""The official `openai` Python client against ollamars' /v1 API: models, chat completions
(plain, streamed with usage, JSON schema) and embeddings (float and base64).

Run by scripts/test-python after test_client.py, with OLLAMA_HOST set. Usage:
test_openai.py <path of a GGUF model>. Exits non-zero on the first failed check.
"""

import base64
import json
import os
import struct
import sys

import ollama
import openai


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    host = os.environ["OLLAMA_HOST"]
    native = ollama.Client(host=host)
    digest = native.create_blob(sys.argv[1])
    native.create(model="oai-smol", files={"m.gguf": digest})
    client = openai.OpenAI(base_url=f"{host}/v1", api_key="unused")

    ids = [m.id for m in client.models.list().data]
    check("oai-smol:latest" in ids, f"models {ids}")
    check(client.models.retrieve("oai-smol:latest").id == "oai-smol:latest", "retrieve")

    msgs = [{"role": "user", "content": "Say hello."}]
    r = client.chat.completions.create(model="oai-smol", messages=msgs, temperature=0, max_tokens=12)
    text = r.choices[0].message.content
    check(text and r.choices[0].finish_reason in ("stop", "length"), f"chat {r}")
    check(r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, "usage")

    stream = client.chat.completions.create(
        model="oai-smol", messages=msgs, temperature=0, max_tokens=12, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    check(chunks[0].choices[0].delta.role == "assistant", "role first")
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(streamed == text, f"streamed {streamed!r} != {text!r}")
    check(chunks[-1].usage is not None and chunks[-1].choices == [], "usage chunk last")

    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    r = client.chat.completions.create(
        model="oai-smol", messages=[{"role": "user", "content": "Answer in JSON."}], temperature=0,
        max_tokens=30, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    out = json.loads(r.choices[0].message.content)
    check(isinstance(out.get("ok"), bool), f"schema output {out}")

    c = client.completions.create(model="oai-smol", prompt="The capital of France is", temperature=0, max_tokens=8)
    check(c.choices[0].text and c.usage.completion_tokens == 8, f"completion {c}")
    parts = list(client.completions.create(model="oai-smol", prompt="The capital of France is", temperature=0, max_tokens=8, stream=True))
    check("".join(p.choices[0].text for p in parts if p.choices) == c.choices[0].text, "streamed completion")

    e = client.embeddings.create(model="oai-smol", input=["one", "two"])
    check(len(e.data) == 2 and len(e.data[0].embedding) > 100, "embeddings")
    b = client.embeddings.create(model="oai-smol", input="one", encoding_format="base64")
    raw = b.data[0].embedding
    if isinstance(raw, str):  # asked for explicitly, the SDK returns the text as it came
        raw = struct.unpack(f"<{len(base64.b64decode(raw)) // 4}f", base64.b64decode(raw))
    check(len(raw) == len(e.data[0].embedding), "base64 length")
    check(all(abs(x - y) < 1e-5 for x, y in zip(raw, e.data[0].embedding)), "base64 values")

    try:
        client.chat.completions.create(model="missing-model", messages=msgs)
        check(False, "missing model succeeded")
    except openai.NotFoundError as err:
        check(err.status_code == 404, f"status {err.status_code}")

    native.delete("oai-smol")
    print("openai client: all checks passed")


if __name__ == "__main__":
    main()
