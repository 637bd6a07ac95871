//! Request `options` (spec §1.3): built-in defaults, then the model's PARAMETERs, then the
//! request's options. Unknown keys (and the removed ones clients still send, like `mirostat`)
//! and `null`s are ignored; a known key with the wrong JSON type is a 400. Out-of-range
//! values are clamped as documented on [`Options`], never passed to llama.cpp as they are.

use crate::runner::proto::{LoadOptions, SamplingOptions};
use serde_json::{Map, Value};

/// Options a client sends that Ollama removed; ignored silently.
const REMOVED: &[&str] = &[
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "tfs_z",
    "penalize_newline",
    "numa",
    "low_vram",
    "f16_kv",
    "logits_all",
    "vocab_only",
    "use_mlock",
    "num_gqa",
    "embedding_only",
];

/// The largest `num_ctx` passed on (the runner caps it at the model's trained length too).
pub const MAX_NUM_CTX: i64 = 1 << 24;

/// The merged options of one request.
///
/// Clamps: `num_ctx` to 4..=2^24 (then the trained context); `num_batch` ≤ 0 to 512 and at most
/// 65536; a negative `num_predict` means no limit; a negative `seed` means random; a negative
/// `num_thread` means automatic; `top_k` < 0 to 0 (off); `top_p`, `min_p`, `typical_p` to 0..=1;
/// a negative `temperature` to 0; `repeat_penalty` ≤ 0 to 1 (off); `repeat_last_n` < -1 to -1
/// (the whole context); a negative `num_keep` keeps as much as the runner allows. Non-finite
/// floats are a 400.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Load-time part (num_ctx, num_batch, num_gpu, main_gpu, use_mmap, num_thread).
    pub load: LoadOptions,
    /// Sampling part.
    pub sampling: SamplingOptions,
}

/// A known option with the wrong type (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid option \"{key}\": {why}")]
pub struct OptionError {
    /// The key.
    pub key: String,
    /// What was wrong.
    pub why: String,
}

fn int(key: &str, v: &Value) -> Result<i64, OptionError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.clamp(-9e18, 9e18) as i64)
            })
            .ok_or_else(|| err(key, "not a number")),
        _ => Err(err(key, &format!("expected an integer, got {v}"))),
    }
}

fn float(key: &str, v: &Value) -> Result<f32, OptionError> {
    match v {
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN) as f32;
            if f.is_finite() {
                Ok(f)
            } else {
                Err(err(key, "must be a finite number"))
            }
        }
        _ => Err(err(key, &format!("expected a number, got {v}"))),
    }
}

fn boolean(key: &str, v: &Value) -> Result<bool, OptionError> {
    v.as_bool()
        .ok_or_else(|| err(key, &format!("expected true or false, got {v}")))
}

fn strings(key: &str, v: &Value) -> Result<Vec<String>, OptionError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(key, "expected a list of strings"))
            })
            .collect(),
        _ => Err(err(key, &format!("expected a list of strings, got {v}"))),
    }
}

fn err(key: &str, why: &str) -> OptionError {
    OptionError {
        key: key.to_string(),
        why: why.to_string(),
    }
}

impl Options {
    /// Defaults with `num_ctx` = `default_ctx`.
    pub fn defaults(default_ctx: u32) -> Options {
        Options {
            load: LoadOptions {
                num_ctx: default_ctx,
                num_batch: 512,
                num_gpu: -1,
                main_gpu: 0,
                use_mmap: None,
                num_thread: 0,
                parallel: 1,
                flash_attention: None,
                kv_cache_type: crate::config::KvCacheType::default(),
                embedding: false,
                projector: None,
                kv_overrides: Vec::new(),
            },
            sampling: SamplingOptions {
                num_keep: 4,
                seed: None,
                num_predict: None,
                top_k: 40,
                top_p: 0.9,
                min_p: 0.0,
                typical_p: 1.0,
                repeat_last_n: 64,
                temperature: 0.8,
                repeat_penalty: 1.0,
                presence_penalty: 0.0,
                frequency_penalty: 0.0,
                stop: Vec::new(),
                grammar: None,
                grammar_after: None,
            },
        }
    }

    /// Applies one layer of options (model PARAMETERs, then the request's).
    ///
    /// # Errors
    /// [`OptionError`] for a known key with the wrong type.
    pub fn apply(&mut self, layer: &Map<String, Value>) -> Result<(), OptionError> {
        let l = &mut self.load;
        let s = &mut self.sampling;
        for (k, v) in layer {
            if v.is_null() {
                continue;
            }
            match k.as_str() {
                "num_ctx" => l.num_ctx = int(k, v)?.clamp(4, MAX_NUM_CTX) as u32,
                "num_batch" => {
                    let n = int(k, v)?;
                    l.num_batch = if n <= 0 { 512 } else { n.min(65536) as u32 };
                }
                "num_gpu" => l.num_gpu = int(k, v)?.clamp(-1, 100_000) as i32,
                "main_gpu" => l.main_gpu = int(k, v)?.clamp(0, 1024) as i32,
                "use_mmap" => l.use_mmap = Some(boolean(k, v)?),
                "num_thread" => l.num_thread = int(k, v)?.clamp(0, 1024) as u32,
                "num_keep" => {
                    let n = int(k, v)?;
                    s.num_keep = if n < 0 {
                        i32::MAX
                    } else {
                        n.min(i64::from(i32::MAX)) as i32
                    };
                }
                "seed" => {
                    let n = int(k, v)?;
                    s.seed = (n >= 0).then_some(n as u32);
                }
                "num_predict" => {
                    let n = int(k, v)?;
                    s.num_predict = (n >= 0).then(|| n.min(i64::from(u32::MAX)) as u32);
                }
                "top_k" => s.top_k = int(k, v)?.clamp(0, i64::from(i32::MAX)) as i32,
                "top_p" => s.top_p = float(k, v)?.clamp(0.0, 1.0),
                "min_p" => s.min_p = float(k, v)?.clamp(0.0, 1.0),
                "typical_p" => s.typical_p = float(k, v)?.clamp(0.0, 1.0),
                "repeat_last_n" => {
                    s.repeat_last_n = int(k, v)?.clamp(-1, i64::from(i32::MAX)) as i32;
                }
                "temperature" => s.temperature = float(k, v)?.max(0.0),
                "repeat_penalty" => {
                    let p = float(k, v)?;
                    s.repeat_penalty = if p <= 0.0 { 1.0 } else { p };
                }
                "presence_penalty" => s.presence_penalty = float(k, v)?,
                "frequency_penalty" => s.frequency_penalty = float(k, v)?,
                "stop" => s.stop = strings(k, v)?,
                "draft_num_predict" => {
                    int(k, v)?;
                }
                k if REMOVED.contains(&k) => {}
                other => tracing::warn!("invalid option provided: {other}"),
            }
        }
        Ok(())
    }

    /// Defaults, then `params` (the model's PARAMETERs), then `request`.
    ///
    /// # Errors
    /// [`OptionError`].
    pub fn merged(
        default_ctx: u32,
        params: &Map<String, Value>,
        request: Option<&Map<String, Value>>,
    ) -> Result<Options, OptionError> {
        let mut o = Options::defaults(default_ctx);
        o.apply(params)?;
        if let Some(r) = request {
            o.apply(r)?;
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn request_overrides_params_which_override_defaults() {
        let params = obj(json!({"temperature": 0.5, "stop": ["<|im_end|>"], "num_ctx": 2048}));
        let req = obj(json!({"temperature": 0.0, "num_predict": 7}));
        let o = Options::merged(4096, &params, Some(&req)).unwrap();
        assert_eq!(o.sampling.temperature, 0.0);
        assert_eq!(o.sampling.num_predict, Some(7));
        assert_eq!(o.sampling.stop, vec!["<|im_end|>"]);
        assert_eq!(o.load.num_ctx, 2048);
        assert_eq!(o.sampling.top_k, 40);
    }

    #[test]
    fn unknown_removed_and_null_keys_are_ignored() {
        let req =
            obj(json!({"mirostat": 2, "tfs_z": 1.0, "numa": true, "whatever": "x", "top_k": null}));
        let o = Options::merged(4096, &Map::new(), Some(&req)).unwrap();
        assert_eq!(o, Options::defaults(4096));
    }

    #[test]
    fn wrong_types_are_errors() {
        for bad in [
            json!({"temperature": "hot"}),
            json!({"num_ctx": "big"}),
            json!({"stop": 5}),
            json!({"use_mmap": 1}),
            json!({"stop": [1, 2]}),
        ] {
            assert!(
                Options::merged(4096, &Map::new(), Some(&obj(bad.clone()))).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn hostile_values_are_clamped() {
        let req = obj(
            json!({"num_ctx": 0, "num_predict": -5, "seed": -1, "top_k": -3, "top_p": 7.0,
            "temperature": -1, "repeat_penalty": 0, "num_batch": 0, "num_thread": -4, "repeat_last_n": -9}),
        );
        let o = Options::merged(4096, &Map::new(), Some(&req)).unwrap();
        assert_eq!(o.load.num_ctx, 4);
        assert_eq!(o.sampling.num_predict, None);
        assert_eq!(o.sampling.seed, None);
        assert_eq!(o.sampling.top_k, 0);
        assert_eq!(o.sampling.top_p, 1.0);
        assert_eq!(o.sampling.temperature, 0.0);
        assert_eq!(o.sampling.repeat_penalty, 1.0);
        assert_eq!(o.load.num_batch, 512);
        assert_eq!(o.load.num_thread, 0);
        assert_eq!(o.sampling.repeat_last_n, -1);
        let huge = obj(json!({"num_ctx": 2147483648u64}));
        assert_eq!(
            Options::merged(4096, &Map::new(), Some(&huge))
                .unwrap()
                .load
                .num_ctx,
            1 << 24
        );
    }

    #[test]
    fn floats_are_accepted_for_integers() {
        let o = Options::merged(
            4096,
            &Map::new(),
            Some(&obj(json!({"num_ctx": 8192.0, "seed": 42.0}))),
        )
        .unwrap();
        assert_eq!(o.load.num_ctx, 8192);
        assert_eq!(o.sampling.seed, Some(42));
    }
}
