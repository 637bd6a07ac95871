//! Wrapper-level throughput, measured the way upstream's `llama-bench` measures it:
//! prompt processing (one decode of `-p` random tokens) and generation (`-n` single-token
//! decodes), at context depth `-d`, with `-t` threads, flash attention `--fa`.
//! `--sample` also runs the greedy sampler on every generated token (the full generation path).
//! `--no-warmup` skips the warm-up runs (as llama-bench's flag of that name), so that an
//! instruction count (`valgrind --tool=callgrind`) covers exactly `-r` runs.
//!
//! `cargo run --release -p llama --example bench -- -m MODEL.gguf [-p 512] [-n 128] [-d 0] [-t 2] [-r 5] [--fa 1] [--sample] [--no-warmup]`
//!
//! Prints one JSON object per test: {"test":"pp512","depth":0,"samples_ts":[...],"avg_ts":...}.

use std::time::Instant;

use llama::{
    Batch, Context, ContextParams, FlashAttention, Model, ModelParams, Sampler, SamplerParams,
    Token,
};

struct Args {
    model: String,
    p: usize,
    n: usize,
    d: usize,
    t: u32,
    r: usize,
    fa: bool,
    sample: bool,
    warmup: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        model: String::new(),
        p: 512,
        n: 128,
        d: 0,
        t: 2,
        r: 5,
        fa: true,
        sample: false,
        warmup: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "-m" => a.model = val()?,
            "-p" => a.p = val()?.parse().map_err(|e| format!("-p: {e}"))?,
            "-n" => a.n = val()?.parse().map_err(|e| format!("-n: {e}"))?,
            "-d" => a.d = val()?.parse().map_err(|e| format!("-d: {e}"))?,
            "-t" => a.t = val()?.parse().map_err(|e| format!("-t: {e}"))?,
            "-r" => a.r = val()?.parse().map_err(|e| format!("-r: {e}"))?,
            "--fa" => a.fa = val()? != "0",
            "--sample" => a.sample = true,
            "--no-warmup" => a.warmup = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.model.is_empty() {
        return Err(
            "usage: bench -m MODEL.gguf [-p 512] [-n 128] [-d 0] [-t 2] [-r 5] [--fa 1] [--sample] [--no-warmup]"
                .into(),
        );
    }
    Ok(a)
}

/// A small xorshift generator for random token ids (llama-bench uses random tokens too).
struct Rng(u64);
impl Rng {
    fn token(&mut self, n_vocab: i32) -> Token {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n_vocab as u64) as Token
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse()?;
    let model = Model::load(&a.model, ModelParams::default())?;
    let vocab = model.vocab();
    let n_vocab = vocab.n_tokens();
    let params = ContextParams {
        n_ctx: (a.p + a.n + a.d).max(64) as u32,
        n_batch: 2048,
        n_ubatch: 512,
        n_threads: a.t,
        n_threads_batch: a.t,
        flash_attention: if a.fa {
            FlashAttention::Enabled
        } else {
            FlashAttention::Disabled
        },
        ..ContextParams::default()
    };
    let mut ctx = Context::new(&model, params)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let first = if vocab.adds_bos() {
        vocab.bos().unwrap_or(0)
    } else {
        rng.token(n_vocab)
    };

    // Fills the cache to `depth` (not timed), as llama-bench's -d does.
    let fill = |ctx: &mut Context, rng: &mut Rng| -> Result<(), Box<dyn std::error::Error>> {
        ctx.memory_clear();
        let mut pos = 0;
        while pos < a.d {
            let n = (a.d - pos).min(2048);
            let toks: Vec<Token> = (0..n)
                .map(|i| {
                    if pos + i == 0 {
                        first
                    } else {
                        rng.token(n_vocab)
                    }
                })
                .collect();
            ctx.decode(&Batch::from_tokens(&toks, pos as i32, 0)?)?;
            pos += n;
        }
        Ok(())
    };
    let pp = |ctx: &mut Context, rng: &mut Rng| -> Result<f64, Box<dyn std::error::Error>> {
        fill(ctx, rng)?;
        let toks: Vec<Token> = (0..a.p)
            .map(|i| {
                if i == 0 && a.d == 0 {
                    first
                } else {
                    rng.token(n_vocab)
                }
            })
            .collect();
        let t0 = Instant::now();
        for (i, chunk) in toks.chunks(2048).enumerate() {
            ctx.decode(&Batch::from_tokens(chunk, (a.d + i * 2048) as i32, 0)?)?;
        }
        Ok(a.p as f64 / t0.elapsed().as_secs_f64())
    };
    let mut sampler = Sampler::new(&model, &SamplerParams::greedy())?;
    let mut tg = |ctx: &mut Context, rng: &mut Rng| -> Result<f64, Box<dyn std::error::Error>> {
        fill(ctx, rng)?;
        let mut token = if a.d == 0 { first } else { rng.token(n_vocab) };
        let t0 = Instant::now();
        for i in 0..a.n {
            ctx.decode(&Batch::from_tokens(&[token], (a.d + i) as i32, 0)?)?;
            token = if a.sample {
                sampler.sample(ctx, -1)?
            } else {
                rng.token(n_vocab)
            };
        }
        Ok(a.n as f64 / t0.elapsed().as_secs_f64())
    };

    // Warm-up, as llama-bench does.
    if a.warmup && a.p > 0 {
        pp(&mut ctx, &mut rng)?;
    }
    if a.warmup && a.n > 0 {
        tg(&mut ctx, &mut rng)?;
    }
    for (name, n) in [("pp", a.p), ("tg", a.n)] {
        if n == 0 {
            continue;
        }
        let mut samples = Vec::new();
        for _ in 0..a.r {
            samples.push(if name == "pp" {
                pp(&mut ctx, &mut rng)?
            } else {
                tg(&mut ctx, &mut rng)?
            });
        }
        let avg = samples.iter().sum::<f64>() / samples.len() as f64;
        let sd = (samples.iter().map(|s| (s - avg).powi(2)).sum::<f64>()
            / (samples.len().max(2) - 1) as f64)
            .sqrt();
        println!(
            "{{\"test\":\"{name}{n}\",\"depth\":{},\"threads\":{},\"fa\":{},\"sample\":{},\"samples_ts\":{samples:?},\"avg_ts\":{avg:.3},\"stddev_ts\":{sd:.3}}}",
            a.d, a.t, a.fa, a.sample
        );
    }
    Ok(())
}
