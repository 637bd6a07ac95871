//! The scheduler (spec §8): loads runners on demand, one load at a time; shares a loaded runner
//! among requests with compatible load options; limits running requests to the runner's slots
//! and waiting requests to `OLLAMA_MAX_QUEUE`; evicts idle runners at `OLLAMA_MAX_LOADED_MODELS`;
//! and unloads runners when their `keep_alive` runs out.
//!
//! A request first [attaches](Scheduler::attach) to a runner (loading it if needed): that keeps
//! the runner loaded, and lets the request prepare its prompt in the runner, without a slot.
//! It then takes a [slot](Attached::slot) for the generation itself.
//!
//! Concurrency, in one place:
//! - The list of runners and the count of waiting requests are one `std::sync::Mutex<State>`,
//!   held only for short, non-async sections (never across an `.await`).
//! - Each runner's bookkeeping (attached requests, retirement, keep-alive, expiry, the model's
//!   name) is one `std::sync::Mutex<RunnerState>`, so that attaching and retiring are one
//!   atomic step: a request cannot attach to a runner that is being unloaded for being idle.
//! - Slots are a `tokio::sync::Semaphore` per runner: its waiters are served first come, first
//!   served, and closing it wakes them all when the runner goes away.
//! - Loads are serialised by a `tokio::sync::Mutex<()>` (one load at a time, as Ollama).
//! - A load that must wait for a runner to become idle (to replace or evict it) waits on a
//!   `Notify` that every last release and every removal signals, instead of polling; it
//!   registers before it checks, so a signal between the check and the wait is not lost.
//! - Keep-alive expiry is a timer task per idle period: it unloads the runner when it fires,
//!   unless a request attached in between (a generation counter tells); an attach aborts it.

use crate::api::KeepAlive;
use crate::config::{Config, KvCacheType};
use crate::runner::proto::LoadOptions;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

pub mod runner;

pub use runner::{RUNNER_DIED, RunnerProcess, SpawnError, ToolQuantizer};

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
    /// The first projector (mmproj) blob, for vision or audio input.
    pub projector: Option<PathBuf>,
    /// Load-time metadata overrides (a metadata-only Ollama-layout translation).
    pub kv_overrides: Vec<(String, crate::compat::KvOverride)>,
    /// `details` of `/api/show`, for `/api/ps`.
    pub details: crate::api::ModelDetails,
}

/// A loaded runner.
#[derive(Debug)]
pub struct Loaded {
    /// The process.
    pub proc: RunnerProcess,
    /// The options it was loaded with.
    pub opts: LoadOptions,
    slots: Arc<Semaphore>,
    state: Mutex<RunnerState>,
}

/// A runner's bookkeeping, under one lock.
#[derive(Debug)]
struct RunnerState {
    /// The model, with the name the latest request used.
    model: ModelRef,
    /// Requests attached (preparing or generating).
    refs: usize,
    /// Being retired: no new request attaches.
    unloading: bool,
    /// How long it stays loaded once idle.
    keep_alive: KeepAlive,
    /// When the idle runner unloads (`None` while busy, or forever).
    expires: Option<Instant>,
    /// Counts attachments, so that an expiry timer knows whether its idle period ended.
    generation: u64,
    /// The keep-alive timer of the current idle period, aborted when a request attaches.
    timer: Option<tokio::task::AbortHandle>,
}

impl Loaded {
    fn lock(&self) -> std::sync::MutexGuard<'_, RunnerState> {
        self.state.lock().expect("runner state")
    }

    fn path_is(&self, path: &std::path::Path) -> bool {
        self.lock().model.path == path
    }

    fn serves(&self, path: &std::path::Path, want: &LoadOptions) -> bool {
        if self.proc.is_dead() {
            return false;
        }
        let info = self.proc.info();
        // A smaller context than the loaded one is served without a reload (beyond Ollama,
        // which reloads: ollama#12783).
        let want_ctx = want.num_ctx.min(info.n_ctx_train).max(4);
        let st = self.lock();
        !st.unloading
            && st.model.path == path
            && want_ctx <= info.num_ctx
            && LoadOptions {
                num_ctx: 0,
                ..want.clone()
            } == LoadOptions {
                num_ctx: 0,
                ..self.opts.clone()
            }
    }

    fn is_idle(&self) -> bool {
        self.lock().refs == 0
    }

    /// Marks the runner for unloading if no request uses it (the caller then unloads it).
    fn try_retire(&self) -> bool {
        let mut st = self.lock();
        if st.refs == 0 && !st.unloading {
            st.unloading = true;
            return true;
        }
        false
    }

    /// Refuses new requests; those attached finish.
    fn retire_when_idle(&self) {
        self.lock().unloading = true;
    }

    fn keep_alive(&self) -> KeepAlive {
        self.lock().keep_alive
    }
}

/// A request's hold on a runner, without a slot: the runner stays loaded, and the request may
/// prepare its prompt there. Dropping it (or the [`Lease`] it becomes) detaches; the last one
/// starts the keep-alive timer.
#[derive(Debug)]
pub struct Attached {
    runner: Arc<Loaded>,
    sched: Arc<Scheduler>,
}

impl Attached {
    /// The runner's process.
    pub fn proc(&self) -> &RunnerProcess {
        &self.runner.proc
    }

    /// Waits for a slot on the runner (counted against `OLLAMA_MAX_QUEUE` while it waits).
    ///
    /// # Errors
    /// [`SchedError::QueueFull`]; [`SchedError::ShuttingDown`] when the runner went away
    /// meanwhile.
    pub async fn slot(self) -> Result<Lease, SchedError> {
        let permit = match self.runner.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let _waiting = self.sched.enter_queue()?;
                self.runner
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| SchedError::ShuttingDown)?
            }
        };
        Ok(Lease {
            _permit: permit,
            attached: self,
        })
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.sched.release(&self.runner);
    }
}

/// A request's slot on a runner; dropping it frees the slot (the next waiter gets it) and
/// detaches.
#[derive(Debug)]
pub struct Lease {
    _permit: OwnedSemaphorePermit,
    attached: Attached,
}

impl Lease {
    /// The runner's process.
    pub fn proc(&self) -> &RunnerProcess {
        self.attached.proc()
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

/// The runners and the queue.
#[derive(Debug, Default)]
struct State {
    runners: Vec<Arc<Loaded>>,
    /// Requests waiting for a slot or a load.
    waiting: usize,
    closed: bool,
}

/// The scheduler. Share it in an `Arc`.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedConfig,
    state: Mutex<State>,
    /// Signalled when a runner becomes idle or is removed.
    changed: Notify,
    load_lock: tokio::sync::Mutex<()>,
    me: Weak<Scheduler>,
}

/// A place in the queue; leaving it (dropping) frees the place.
struct Waiting<'a>(&'a Scheduler);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
    }
}

impl Scheduler {
    /// A scheduler with `cfg`. Nothing is loaded until a request needs it.
    pub fn new(cfg: SchedConfig) -> Arc<Scheduler> {
        Arc::new_cyclic(|me| Scheduler {
            cfg,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            load_lock: tokio::sync::Mutex::new(()),
            me: me.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("scheduler state")
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

    /// A live runner serving `model` with `opts` (dead ones are dropped from the list here).
    fn find(&self, model: &ModelRef, opts: &LoadOptions) -> Option<Arc<Loaded>> {
        let mut st = self.lock();
        st.runners.retain(|l| !l.proc.is_dead());
        st.runners
            .iter()
            .find(|l| l.serves(&model.path, opts))
            .cloned()
    }

    /// Attaches to a runner for `model` loaded with `opts`, loading it if needed. The
    /// request's `keep_alive` (if any) replaces the runner's.
    ///
    /// # Errors
    /// [`SchedError`].
    pub async fn attach(
        self: &Arc<Self>,
        model: &ModelRef,
        opts: &LoadOptions,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Attached, SchedError> {
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            if self.lock().closed {
                return Err(SchedError::ShuttingDown);
            }
            if let Some(l) = self.find(model, opts) {
                {
                    let mut st = l.lock();
                    // Retired between `find` and here: look again.
                    if st.unloading || l.proc.is_dead() {
                        continue;
                    }
                    st.refs += 1;
                    st.generation += 1;
                    st.expires = None;
                    if let Some(t) = st.timer.take() {
                        t.abort();
                    }
                    if let Some(k) = keep_alive {
                        st.keep_alive = k;
                    }
                    st.model = model.clone();
                }
                return Ok(Attached {
                    runner: l,
                    sched: self.clone(),
                });
            }
            if waiting.is_none() {
                waiting = Some(self.enter_queue()?);
            }
            self.load(model, opts, keep_alive).await?;
        }
    }

    /// Attaches, then takes a slot: for requests that prepare nothing in the runner.
    ///
    /// # Errors
    /// [`SchedError`].
    pub async fn acquire(
        self: &Arc<Self>,
        model: &ModelRef,
        opts: &LoadOptions,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Lease, SchedError> {
        self.attach(model, opts, keep_alive).await?.slot().await
    }

    fn enter_queue(&self) -> Result<Waiting<'_>, SchedError> {
        let mut st = self.lock();
        if st.waiting >= self.cfg.max_queue {
            return Err(SchedError::QueueFull);
        }
        st.waiting += 1;
        Ok(Waiting(self))
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
            // Registered before the check, so that a release between the check and the wait
            // is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let stale: Vec<_> = self
                .lock()
                .runners
                .iter()
                .filter(|l| l.path_is(&model.path))
                .cloned()
                .collect();
            if stale.is_empty() {
                break;
            }
            for l in &stale {
                l.retire_when_idle();
            }
            let (idle, busy): (Vec<_>, Vec<_>) = stale.into_iter().partition(|l| l.is_idle());
            for l in idle {
                self.unload(&l).await;
            }
            if busy.is_empty() {
                break;
            }
            changed.await;
        }
        // Make room: idle runners first, shortest keep-alive first.
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let victim = {
                let st = self.lock();
                if st.runners.len() < self.cfg.max_loaded {
                    break;
                }
                st.runners
                    .iter()
                    .filter(|l| l.is_idle())
                    .min_by_key(|l| match l.keep_alive() {
                        KeepAlive::For(d) => d,
                        KeepAlive::Forever => Duration::MAX,
                    })
                    .cloned()
            };
            match victim {
                Some(v) if v.try_retire() => self.unload(&v).await,
                _ => changed.await,
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
            slots: Arc::new(Semaphore::new(parallel)),
            state: Mutex::new(RunnerState {
                model: model.clone(),
                refs: 0,
                unloading: false,
                keep_alive: keep_alive.unwrap_or(self.cfg.keep_alive),
                expires: None,
                generation: 0,
                timer: None,
            }),
        });
        self.lock().runners.push(loaded);
        Ok(())
    }

    /// A request detached: when it was the last, the keep-alive timer starts (or, for
    /// `keep_alive: 0`, the runner unloads now).
    fn release(&self, l: &Arc<Loaded>) {
        let (keep_alive, generation) = {
            let mut st = l.lock();
            st.refs = st.refs.saturating_sub(1);
            if st.refs != 0 {
                return;
            }
            st.expires = match st.keep_alive {
                KeepAlive::Forever => None,
                KeepAlive::For(d) => Some(Instant::now() + d),
            };
            (st.keep_alive, st.generation)
        };
        self.changed.notify_waiters();
        let (Some(sched), KeepAlive::For(d)) = (self.me.upgrade(), keep_alive) else {
            return;
        };
        let runner = l.clone();
        // Outside a runtime (a lease dropped at exit) there is nothing left to unload.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let l = runner.clone();
        let timer = rt.spawn(async move {
            tokio::time::sleep(d).await;
            let expired = {
                let mut st = l.lock();
                let expired = st.generation == generation && st.refs == 0 && !st.unloading;
                if expired {
                    st.unloading = true;
                }
                expired
            };
            if expired {
                sched.unload(&l).await;
            }
        });
        // A request that attached meanwhile finds no timer to abort; this one then sees the
        // generation moved on and does nothing.
        runner.lock().timer = Some(timer.abort_handle());
    }

    /// Removes a retired runner and stops its process.
    async fn unload(&self, l: &Arc<Loaded>) {
        l.retire_when_idle();
        self.lock().runners.retain(|x| !Arc::ptr_eq(x, l));
        l.slots.close();
        tracing::info!(model = %l.lock().model.display, "unloading model");
        l.proc.shutdown().await;
        self.changed.notify_waiters();
    }

    /// Unloads the runners of `path` now (or as soon as their requests finish): `keep_alive: 0`
    /// with an empty prompt. Returns whether any was loaded.
    pub async fn expire(self: &Arc<Self>, path: &std::path::Path) -> bool {
        let matching: Vec<_> = self
            .lock()
            .runners
            .iter()
            .filter(|l| l.path_is(path))
            .cloned()
            .collect();
        let any = !matching.is_empty();
        for l in matching {
            l.lock().keep_alive = KeepAlive::For(Duration::ZERO);
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
        let runners: Vec<_> = self.lock().runners.clone();
        let mut v: Vec<PsEntry> = runners
            .iter()
            .filter(|l| !l.proc.is_dead())
            .map(|l| {
                let info = l.proc.info();
                let st = l.lock();
                let expires_at = match st.expires {
                    Some(e) => Some(now_s + e.saturating_duration_since(now_i)),
                    None => match st.keep_alive {
                        // Busy: the timer starts when the last request ends.
                        KeepAlive::For(d) if st.refs != 0 => Some(now_s + d),
                        _ => None,
                    },
                };
                PsEntry {
                    model: st.model.clone(),
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
        let all: Vec<_> = {
            let mut st = self.lock();
            st.closed = true;
            st.runners.drain(..).collect()
        };
        for l in all {
            l.retire_when_idle();
            l.slots.close();
            l.proc.shutdown().await;
        }
        self.changed.notify_waiters();
    }
}
