//! The scheduler (spec §8): loads runners on demand, one load at a time; shares a loaded runner
//! among requests with compatible load options; limits running requests to the runner's slots
//! and waiting requests to `OLLAMA_MAX_QUEUE`; evicts idle runners at `OLLAMA_MAX_LOADED_MODELS`;
//! and unloads runners when their `keep_alive` runs out.

use super::keepalive::KeepAlive;
use super::runner_client::{RunnerProcess, SpawnError};
use crate::config::{Config, KvCacheType};
use crate::runner::proto::LoadOptions;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Ollama's text for a full queue.
pub const QUEUE_FULL: &str = "server busy, please try again.  maximum pending requests exceeded";

/// Scheduler settings (from the [`Config`] in `ollamars serve`).
#[derive(Debug, Clone)]
pub struct SchedConfig {
    /// The binary that has the hidden `runner` subcommand.
    pub runner_exe: PathBuf,
    /// Most runners loaded at once.
    pub max_loaded: usize,
    /// Slots per runner.
    pub num_parallel: u32,
    /// Most requests waiting for a slot or a load.
    pub max_queue: usize,
    /// `keep_alive` when a request has none.
    pub keep_alive: KeepAlive,
    /// How long a load may take (`None`: forever).
    pub load_timeout: Option<Duration>,
    /// Flash attention (`None`: automatic).
    pub flash_attention: Option<bool>,
    /// KV cache type.
    pub kv_cache_type: KvCacheType,
    /// Default `num_ctx`.
    pub context_length: u32,
}

impl SchedConfig {
    /// Settings from `config` (`OLLAMA_*` variables, spec §3.3), running runners from
    /// `runner_exe` unless `OLLAMARS_RUNNER_EXE` names another program (a wrapper that adds
    /// limits, a debugger, ...).
    pub fn from_config(config: &Config, runner_exe: PathBuf) -> SchedConfig {
        SchedConfig {
            runner_exe: config.runner_exe.clone().unwrap_or(runner_exe),
            max_loaded: config.max_loaded_models,
            num_parallel: config.num_parallel,
            max_queue: config.max_queue,
            keep_alive: config.keep_alive,
            load_timeout: config.load_timeout,
            flash_attention: config.flash_attention,
            kv_cache_type: config.kv_cache_type,
            context_length: config.context_length,
        }
    }
}

/// Why a request could not get a runner.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SchedError {
    /// `OLLAMA_MAX_QUEUE` requests are already waiting.
    #[error("{QUEUE_FULL}")]
    QueueFull,
    /// Loading failed.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
}

/// What a request wants loaded.
#[derive(Debug, Clone)]
pub struct ModelRef {
    /// The name as the client wrote it (shown in `/api/ps`).
    pub name: String,
    /// The full name with tag.
    pub display: String,
    /// The manifest digest (hex).
    pub digest: String,
    /// The model blob.
    pub path: PathBuf,
    /// `details` of `/api/show`, for `/api/ps`.
    pub details: serde_json::Value,
}

/// A loaded runner.
#[derive(Debug)]
pub struct Loaded {
    /// The process.
    pub proc: RunnerProcess,
    /// The options it was loaded with.
    pub opts: LoadOptions,
    /// The model.
    pub model: Mutex<ModelRef>,
    slots: Arc<Semaphore>,
    usage: Mutex<Usage>,
    keep_alive: Mutex<KeepAlive>,
    expires: Mutex<Option<Instant>>,
}

/// Requests attached to a runner, and whether it is being retired. One lock for both, so that
/// a request cannot attach to a runner that is being unloaded for being idle.
#[derive(Debug, Default)]
struct Usage {
    refs: usize,
    unloading: bool,
}

impl Loaded {
    fn serves(&self, path: &std::path::Path, want: &LoadOptions) -> bool {
        if self.proc.is_dead() || self.is_unloading() {
            return false;
        }
        let info = self.proc.info();
        // A smaller context than the loaded one is served without a reload (beyond Ollama,
        // which reloads: ollama#12783).
        let want_ctx = want.num_ctx.min(info.n_ctx_train).max(4);
        self.model.lock().expect("model").path == path
            && want_ctx <= info.num_ctx
            && LoadOptions {
                num_ctx: 0,
                ..want.clone()
            } == LoadOptions {
                num_ctx: 0,
                ..self.opts.clone()
            }
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.usage.lock().expect("usage")
    }

    fn is_idle(&self) -> bool {
        self.usage().refs == 0
    }

    fn is_unloading(&self) -> bool {
        self.usage().unloading
    }

    /// Attaches a request unless the runner is being retired.
    fn try_attach(&self) -> bool {
        let mut u = self.usage();
        if u.unloading || self.proc.is_dead() {
            return false;
        }
        u.refs += 1;
        true
    }

    /// Detaches a request; returns how many remain.
    fn detach(&self) -> usize {
        let mut u = self.usage();
        u.refs = u.refs.saturating_sub(1);
        u.refs
    }

    /// Marks the runner for unloading if no request uses it (the caller then unloads it).
    fn try_retire(&self) -> bool {
        let mut u = self.usage();
        if u.refs == 0 && !u.unloading {
            u.unloading = true;
            return true;
        }
        false
    }

    /// Refuses new requests; those attached finish.
    fn retire_when_idle(&self) {
        self.usage().unloading = true;
    }
}

/// A request's hold on a runner slot; dropping it frees the slot and starts the keep-alive
/// timer when the runner becomes idle.
#[derive(Debug)]
pub struct Lease {
    /// The runner.
    pub runner: Arc<Loaded>,
    sched: Arc<Scheduler>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.sched.release(&self.runner);
    }
}

/// The scheduler. Share it in an `Arc`.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedConfig,
    loaded: Mutex<Vec<Arc<Loaded>>>,
    load_lock: tokio::sync::Mutex<()>,
    waiting: AtomicUsize,
    closed: std::sync::atomic::AtomicBool,
    reaper: std::sync::atomic::AtomicBool,
}

struct WaitGuard<'a>(&'a AtomicUsize);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One row of `/api/ps`.
#[derive(Debug, Clone)]
pub struct PsEntry {
    /// The model.
    pub model: ModelRef,
    /// Bytes in use.
    pub size: u64,
    /// Of which on a GPU.
    pub size_vram: u64,
    /// When it unloads (`None`: forever).
    pub expires_at: Option<SystemTime>,
    /// Context length per slot.
    pub context_length: u32,
}

impl Scheduler {
    /// A scheduler with `cfg`. Nothing is loaded until a request needs it.
    pub fn new(cfg: SchedConfig) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            cfg,
            loaded: Mutex::new(Vec::new()),
            load_lock: tokio::sync::Mutex::new(()),
            waiting: AtomicUsize::new(0),
            closed: false.into(),
            reaper: false.into(),
        })
    }

    /// Starts the keep-alive reaper (once, on the first request, inside the runtime).
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let Some(s) = weak.upgrade() else { break };
                s.reap().await;
            }
        });
    }

    /// The settings.
    pub fn config(&self) -> &SchedConfig {
        &self.cfg
    }

    /// Load options for a request with `num_ctx` and the model's kind.
    pub fn load_options(&self, base: LoadOptions) -> LoadOptions {
        LoadOptions {
            parallel: if base.embedding {
                1
            } else {
                self.cfg.num_parallel
            },
            flash_attention: self.cfg.flash_attention,
            kv_cache_type: self.cfg.kv_cache_type,
            ..base
        }
    }

    fn find(&self, model: &ModelRef, opts: &LoadOptions) -> Option<Arc<Loaded>> {
        let mut list = self.loaded.lock().expect("loaded");
        list.retain(|l| !l.proc.is_dead());
        list.iter().find(|l| l.serves(&model.path, opts)).cloned()
    }

    /// Gets a slot on a runner for `model` loaded with `opts`, loading it if needed. The
    /// request's `keep_alive` (if any) replaces the runner's.
    ///
    /// # Errors
    /// [`SchedError`].
    pub async fn acquire(
        self: &Arc<Self>,
        model: &ModelRef,
        opts: &LoadOptions,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Lease, SchedError> {
        self.start_reaper();
        let mut waiting: Option<WaitGuard<'_>> = None;
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Err(SchedError::ShuttingDown);
            }
            if let Some(l) = self.find(model, opts) {
                let permit = match l.slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        if waiting.is_none() {
                            waiting = Some(self.enter_queue()?);
                        }
                        match l.slots.clone().acquire_owned().await {
                            Ok(p) => p,
                            Err(_) => continue, // closed: the runner went away
                        }
                    }
                };
                if !l.try_attach() {
                    continue;
                }
                *l.expires.lock().expect("expires") = None;
                if let Some(k) = keep_alive {
                    *l.keep_alive.lock().expect("keep_alive") = k;
                }
                *l.model.lock().expect("model") = model.clone();
                return Ok(Lease {
                    runner: l,
                    sched: self.clone(),
                    _permit: permit,
                });
            }
            if waiting.is_none() {
                waiting = Some(self.enter_queue()?);
            }
            self.load(model, opts, keep_alive).await?;
        }
    }

    fn enter_queue(&self) -> Result<WaitGuard<'_>, SchedError> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.cfg.max_queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(SchedError::QueueFull);
        }
        Ok(WaitGuard(&self.waiting))
    }

    async fn load(
        &self,
        model: &ModelRef,
        opts: &LoadOptions,
        keep_alive: Option<KeepAlive>,
    ) -> Result<(), SchedError> {
        let _one_load = self.load_lock.lock().await;
        if self.find(model, opts).is_some() {
            return Ok(());
        }
        // A runner of the same model with other load options is replaced once it is idle.
        loop {
            let stale: Vec<_> = self
                .loaded
                .lock()
                .expect("loaded")
                .iter()
                .filter(|l| l.model.lock().expect("model").path == model.path)
                .cloned()
                .collect();
            if stale.is_empty() {
                break;
            }
            for l in &stale {
                l.retire_when_idle();
            }
            let idle: Vec<_> = stale.into_iter().filter(|l| l.is_idle()).collect();
            if idle.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            for l in idle {
                self.unload(&l).await;
            }
        }
        // Make room: idle runners first, shortest keep-alive first.
        loop {
            let victim = {
                let list = self.loaded.lock().expect("loaded");
                if list.len() < self.cfg.max_loaded {
                    break;
                }
                list.iter()
                    .filter(|l| l.is_idle())
                    .min_by_key(|l| match *l.keep_alive.lock().expect("keep_alive") {
                        KeepAlive::For(d) => d,
                        KeepAlive::Forever => Duration::MAX,
                    })
                    .cloned()
            };
            match victim {
                Some(v) if v.try_retire() => self.unload(&v).await,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        tracing::info!(model = %model.display, ?opts, "loading model");
        let started = Instant::now();
        let proc = RunnerProcess::spawn(
            &self.cfg.runner_exe,
            &model.path,
            opts,
            self.cfg.load_timeout,
        )
        .await?;
        tracing::info!(
            model = %model.display,
            pid = proc.pid(),
            secs = started.elapsed().as_secs_f64(),
            "model loaded"
        );
        let parallel = proc.info().parallel as usize;
        let loaded = Arc::new(Loaded {
            proc,
            opts: opts.clone(),
            model: Mutex::new(model.clone()),
            slots: Arc::new(Semaphore::new(parallel)),
            usage: Mutex::new(Usage::default()),
            keep_alive: Mutex::new(keep_alive.unwrap_or(self.cfg.keep_alive)),
            expires: Mutex::new(None),
        });
        self.loaded.lock().expect("loaded").push(loaded);
        Ok(())
    }

    fn release(self: &Arc<Self>, l: &Arc<Loaded>) {
        if l.detach() != 0 {
            return;
        }
        let k = *l.keep_alive.lock().expect("keep_alive");
        *l.expires.lock().expect("expires") = match k {
            KeepAlive::Forever => None,
            KeepAlive::For(d) => Some(Instant::now() + d),
        };
        if k.is_zero() {
            let s = self.clone();
            let l = l.clone();
            tokio::spawn(async move {
                if l.try_retire() {
                    s.unload(&l).await;
                }
            });
        }
    }

    /// Removes a retired runner and stops its process.
    async fn unload(&self, l: &Arc<Loaded>) {
        l.retire_when_idle();
        self.loaded
            .lock()
            .expect("loaded")
            .retain(|x| !Arc::ptr_eq(x, l));
        l.slots.close();
        tracing::info!(model = %l.model.lock().expect("model").display, "unloading model");
        l.proc.shutdown().await;
    }

    async fn reap(&self) {
        let now = Instant::now();
        let expired: Vec<_> = self
            .loaded
            .lock()
            .expect("loaded")
            .iter()
            .filter(|l| {
                l.proc.is_dead() || l.expires.lock().expect("expires").is_some_and(|e| e <= now)
            })
            .cloned()
            .collect();
        for l in expired {
            if l.proc.is_dead() || l.try_retire() {
                self.unload(&l).await;
            }
        }
    }

    /// Unloads the runners of `path` now (or as soon as their requests finish): `keep_alive: 0`
    /// with an empty prompt. Returns whether any was loaded.
    pub async fn expire(self: &Arc<Self>, path: &std::path::Path) -> bool {
        let matching: Vec<_> = self
            .loaded
            .lock()
            .expect("loaded")
            .iter()
            .filter(|l| l.model.lock().expect("model").path == path)
            .cloned()
            .collect();
        let any = !matching.is_empty();
        for l in matching {
            *l.keep_alive.lock().expect("keep_alive") = KeepAlive::For(Duration::ZERO);
            if l.try_retire() {
                self.unload(&l).await;
            }
        }
        any
    }

    /// The loaded runners, latest expiry first.
    pub fn ps(&self) -> Vec<PsEntry> {
        let now_i = Instant::now();
        let now_s = SystemTime::now();
        let mut v: Vec<PsEntry> = self
            .loaded
            .lock()
            .expect("loaded")
            .iter()
            .filter(|l| !l.proc.is_dead())
            .map(|l| {
                let info = l.proc.info();
                let expires_at = match *l.expires.lock().expect("expires") {
                    Some(e) => Some(now_s + e.saturating_duration_since(now_i)),
                    None => match *l.keep_alive.lock().expect("keep_alive") {
                        // Busy: the timer starts when the last request ends.
                        KeepAlive::For(d) if !l.is_idle() => Some(now_s + d),
                        _ => None,
                    },
                };
                PsEntry {
                    model: l.model.lock().expect("model").clone(),
                    size: info.total_size,
                    size_vram: info.vram_size,
                    expires_at,
                    context_length: info.num_ctx,
                }
            })
            .collect();
        v.sort_by(|a, b| {
            let key = |e: &PsEntry| {
                e.expires_at.unwrap_or(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 4),
                )
            };
            key(b).cmp(&key(a))
        });
        v
    }

    /// Stops every runner (server shutdown); new requests are refused.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let all: Vec<_> = self.loaded.lock().expect("loaded").drain(..).collect();
        for l in all {
            l.retire_when_idle();
            l.slots.close();
            l.proc.shutdown().await;
        }
    }
}
