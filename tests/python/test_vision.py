"""Images through the official `ollama` client (a path, bytes, base64) and the `openai` client
(a data URI) against ollamars serving the project's tiny random-weight vision model.

Run by scripts/test-python, with OLLAMA_HOST set. Usage:
test_vision.py <model.gguf> <mmproj.gguf> (from scripts/make-vision-model).
Exits non-zero on the first failed check.
"""

import base64
import os
import struct
import sys
import tempfile
import zlib

import ollama
import openai


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def png(w, h, seed):
    """A deterministic RGB PNG whose pixels depend on `seed`."""
    rows = b"".join(
        b"\x00" + bytes(((x * (7 + c + seed) + y * (13 + 2 * c) + seed * 31 * (c + 1)) % 256)
                        for x in range(w) for c in range(3))
        for y in range(h)
    )

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def main():
    host = os.environ["OLLAMA_HOST"]
    client = ollama.Client(host=host)
    model = client.create_blob(sys.argv[1])
    mmproj = client.create_blob(sys.argv[2])
    client.create(model="py-vis", files={"model.gguf": model, "mmproj.gguf": mmproj})
    show = client.show("py-vis")
    check("vision" in (show.capabilities or []), f"capabilities {show.capabilities}")
    # This client's ShowResponse has no projector_info field: read it from the JSON itself.
    import json
    import urllib.request
    req = urllib.request.Request(f"{host}/api/show", data=json.dumps({"model": "py-vis"}).encode(),
                                 headers={"Content-Type": "application/json"})
    info = json.load(urllib.request.urlopen(req)).get("projector_info") or {}
    check(info.get("general.architecture") == "clip", f"projector_info {info}")

    opts = {"temperature": 0, "num_predict": 16}
    a, b = png(64, 48, 1), png(48, 64, 2)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "a.png")
        with open(path, "wb") as f:
            f.write(a)
        msgs = lambda img: [{"role": "user", "content": "describe", "images": [img]}]
        by_path = client.chat(model="py-vis", messages=msgs(path), options=opts).message.content
        by_bytes = client.chat(model="py-vis", messages=msgs(a), options=opts).message.content
        by_b64 = client.chat(model="py-vis", messages=msgs(base64.b64encode(a).decode()), options=opts).message.content
        check(by_path and by_path == by_bytes == by_b64, f"path {by_path!r} bytes {by_bytes!r} b64 {by_b64!r}")
        other = client.chat(model="py-vis", messages=msgs(b), options=opts).message.content
        check(other != by_path, f"another image gave the same answer {other!r}")
        streamed = "".join(p.message.content for p in client.chat(model="py-vis", messages=msgs(path), options=opts, stream=True))
        check(streamed == by_path, f"streamed {streamed!r} != {by_path!r}")
        gen = client.generate(model="py-vis", prompt="describe", images=[path], options=opts)
        check(gen.response and gen.done, f"generate {gen}")

    oai = openai.OpenAI(base_url=f"{host}/v1", api_key="unused")
    uri = lambda img: "data:image/png;base64," + base64.b64encode(img).decode()
    content = lambda img: [{"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": uri(img)}}]
    ra = oai.chat.completions.create(model="py-vis", messages=[{"role": "user", "content": content(a)}], temperature=0, max_tokens=16)
    rb = oai.chat.completions.create(model="py-vis", messages=[{"role": "user", "content": content(b)}], temperature=0, max_tokens=16)
    ta, tb = ra.choices[0].message.content, rb.choices[0].message.content
    check(ta and tb and ta != tb, f"openai answers {ta!r} / {tb!r}")
    try:
        oai.chat.completions.create(model="py-vis", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}}]}])
        check(False, "an http image URL was accepted")
    except openai.BadRequestError as e:
        check("not currently supported" in str(e), f"http URL error {e}")
    print("vision: ok")


if __name__ == "__main__":
    main()
