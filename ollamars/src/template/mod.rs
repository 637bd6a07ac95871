//! Ollama's Go prompt templates (TEMPLATE layers), rendered with the `gotmpl` crate.
