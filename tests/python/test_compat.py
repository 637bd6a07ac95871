"""Ollama-layout blobs through the official `ollama` client: a store that holds only the blob
Ollama's converter would have written (manifest, config and blobs laid out as Ollama does) is
listed, shown and answers exactly as the original llama.cpp-converted file does.

Run by scripts/test-python, with OLLAMA_HOST set. Usage:
test_compat.py <models dir> <original.gguf> <ollama-layout.gguf> [<original.gguf> <ollama-layout.gguf> ...]
(the Ollama layouts from `cargo run -p ollamars --example compat -- fixture ...`).
Exits non-zero on the first failed check.
"""

import hashlib
import json
import os
import shutil
import sys

import ollama


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def put_blob(blobs, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, f"sha256-{d}"), "wb") as f:
        f.write(data)
    return d, len(data)


def place(models, library, name, gguf):
    """Writes `name:latest` as Ollama lays a pulled model out: the GGUF blob, a template blob, a
    config blob and the manifest beside the others of the default registry's library."""
    blobs = os.path.join(models, "blobs")
    digest = sha256(gguf)
    shutil.copyfile(gguf, os.path.join(blobs, f"sha256-{digest}"))
    tpl, tpl_size = put_blob(blobs, b"{{ .Prompt }}")
    config = {"model_format": "gguf", "model_family": "", "model_families": [], "model_type": "",
              "file_type": "", "architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest}", f"sha256:{tpl}"]}}
    cfg, cfg_size = put_blob(blobs, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": f"sha256:{cfg}", "size": cfg_size},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}",
             "size": os.path.getsize(gguf)},
            {"mediaType": "application/vnd.ollama.image.template", "digest": f"sha256:{tpl}", "size": tpl_size},
        ],
    }
    os.makedirs(os.path.join(library, name), exist_ok=True)
    with open(os.path.join(library, name, "latest"), "w") as f:
        json.dump(manifest, f)


def library_dir(models):
    """The folder of the default registry's library models, found from a model the server made
    (so the registry's host name is never written here)."""
    top = os.path.join(models, "manifests")
    for host in os.listdir(top):
        lib = os.path.join(top, host, "library")
        if os.path.isdir(os.path.join(lib, "compat-native-0")):
            return lib
    raise AssertionError(f"no library folder under {top}")


def main():
    client = ollama.Client(host=os.environ["OLLAMA_HOST"])
    models = sys.argv[1]
    pairs = list(zip(sys.argv[2::2], sys.argv[3::2]))
    check(pairs, "no model pairs given")
    for i, (original, _) in enumerate(pairs):
        digest = client.create_blob(original)
        client.create(model=f"compat-native-{i}", files={"model.gguf": digest}, template="{{ .Prompt }}")
    library = library_dir(models)
    for i, (_, layout) in enumerate(pairs):
        place(models, library, f"compat-ollama-{i}", layout)
    listed = {m.model for m in client.list().models}
    opts = {"temperature": 0, "num_predict": 16, "seed": 7}
    for i, (original, layout) in enumerate(pairs):
        name = f"compat-ollama-{i}"
        check(f"{name}:latest" in listed, f"{name} not listed: {listed}")
        show = client.show(name)
        check("completion" in (show.capabilities or []), f"{name} capabilities {show.capabilities}")
        check(show.modelinfo and show.modelinfo.get("general.architecture"), f"{name} model_info")
        for prompt in ["It's true that we don't know what"]:
            a = client.generate(model=f"compat-native-{i}", prompt=prompt, options=opts)
            b = client.generate(model=name, prompt=prompt, options=opts)
            check(a.response and a.response == b.response, f"{name}: {a.response!r} != {b.response!r}")
            check(a.context == b.context, f"{name}: token ids differ for {prompt!r}")
        streamed = "".join(p.response for p in client.generate(model=name, prompt=prompt, options=opts, stream=True))
        check(streamed == b.response, f"{name}: streamed {streamed!r} != {b.response!r}")
    print(f"compat: ok ({len(pairs)} Ollama-layout models)")


if __name__ == "__main__":
    main()
