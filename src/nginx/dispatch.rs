//! How requests reach Python: a per-worker queue of jobs and a few "runner" threads that
//! pay the hand-offs only when they must.
//!
//! A job is one step of a request (start it and produce a batch, or one more batch; or the
//! closing of an orphaned iterable). The event loop queues jobs here instead of posting an
//! nginx thread task per job. A runner is an nginx thread task (so the threads are still
//! those of `thread_pool`, and nginx joins them at exit) that runs queued jobs back to back
//! for as long as there are any, then waits a little ([`LINGER`]) for more before it gives
//! its thread back to the pool.
//!
//! - **Waking runners.** A queued job wakes (or starts) a runner only when no runner is
//!   both busy and *fresh* (waiting for the GIL to start its job, or holding it for less
//!   than [`STUCK_AFTER`]) and no runner is already on its way: a busy fresh runner will
//!   take the job when it is done. So a fast application is served by one runner, which
//!   keeps the GIL to itself, while an application that blocks (sleep, I/O, a full output
//!   batch) makes the next job wake another runner — and while work waits, a timer on the
//!   loop ([`TICK_MS`]) checks again, so queued jobs never wait behind a runner that
//!   blocks. More runners than the pool has threads simply queue in nginx's pool.
//! - **One runner waiting for the GIL is enough.** A runner waiting for the GIL could not
//!   start any other job either, and Python hands it the GIL within its switch interval
//!   (5 ms) however long the holder computes; a second waiter would only take turns with
//!   it. So a waiting runner counts as fresh (no runner is woken for it), and a runner that
//!   finishes a job while another waits for the GIL steps aside (idles) instead of taking
//!   the next job and queueing for the GIL behind it: the waiter, once running, takes the
//!   queue. Both only for [`GIL_WAIT_FRESH`]: a waiter that has not got the GIL by then
//!   (it lost Python's hand-over to another thread, or the machine has not run it) no
//!   longer holds the queue back. Without this, CPU-bound applications (Django, Flask: a
//!   job of 0.3–1 ms that the scheduler stretches past [`STUCK_AFTER`] on a busy machine)
//!   had every pool thread take turns on the GIL, one hand-off (two context switches) per
//!   request (docs/profiles.md, "Real apps").
//! - **Completions** go back on our own eventfd (never `ngx_notify`, whose handler belongs
//!   to the thread pool), written only when the loop has not been woken already: the loop
//!   takes every completion since its last wake-up at once.
//!
//! Runner threads run only Python on owned data (task.rs); everything that touches nginx
//! (posting runners, the timer, completions) happens on the event loop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::ngx::{DispatchEvents, ThreadPool};
use super::task::{self, TaskSide};
use crate::ffi::guard::guard;
use crate::ffi::ngx::ngx_msec_t;

/// A runner holding the GIL in one job for longer than this counts as blocked: queued
/// work wakes another runner.
const STUCK_AFTER: Duration = Duration::from_millis(2);

/// A runner waiting for the GIL this long no longer counts as fresh: Python's switch
/// interval (5 ms) would have handed it the GIL by now, but for contention or a busy CPU.
const GIL_WAIT_FRESH: Duration = Duration::from_millis(5);

/// While jobs wait, the loop checks for blocked runners this often (milliseconds).
const TICK_MS: ngx_msec_t = 2;

/// How long an idle runner waits for more work before it returns its pool thread.
const LINGER: Duration = Duration::from_millis(50);

/// One step of a request, for a runner.
pub enum Job {
    /// A request's next step; `token` identifies it to the loop (entry.rs).
    Request { ts: Arc<TaskSide>, token: usize },
    /// The last step of a request nginx terminated: close its iterable.
    Orphan(Arc<TaskSide>),
}

/// A finished job, for the event loop.
pub enum Done {
    Request(usize),
    Orphan(Arc<TaskSide>),
}

#[derive(Default)]
struct Queues {
    pending: VecDeque<Job>,
    done: Vec<Done>,
    /// Each busy runner's progress through its current job (unordered).
    busy: Vec<Arc<Progress>>,
    /// Runners waiting for work.
    idle: usize,
    /// Idle runners signalled and not yet awake (never more than `idle`).
    notified: usize,
    /// Runner tasks posted to the pool that have not started yet.
    spawning: usize,
    /// The eventfd was written and the loop has not taken the completions since.
    loop_woken: bool,
}

/// Where a runner is in its current job; the runner writes it without the queue lock (it
/// gets the GIL in the middle of the job), the loop and the other runners read it under
/// the lock.
struct Progress {
    /// The nanoseconds from the dispatcher's epoch to the runner's last step (taking a
    /// job, then getting the GIL), with [`HAS_GIL`] set after the second.
    state: AtomicU64,
}

/// In [`Progress::state`]: the runner got the GIL for its current job.
const HAS_GIL: u64 = 1 << 63;

impl Progress {
    fn new() -> Progress {
        Progress { state: AtomicU64::new(0) }
    }

    /// Record a step: `has_gil` false when the runner takes a job, true once it holds the GIL.
    fn mark(&self, epoch: Instant, has_gil: bool) {
        let ns = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(HAS_GIL - 1).min(HAS_GIL - 1);
        self.state.store(if has_gil { ns | HAS_GIL } else { ns }, Ordering::Relaxed);
    }

    /// Whether it holds the GIL, and how long since its last step.
    fn read(&self, epoch: Instant, now: Instant) -> (bool, Duration) {
        let s = self.state.load(Ordering::Relaxed);
        (s & HAS_GIL != 0, now.saturating_duration_since(epoch + Duration::from_nanos(s & !HAS_GIL)))
    }

    /// Waiting for the GIL, for less than [`GIL_WAIT_FRESH`]: it will likely run soon.
    fn waiting(&self, epoch: Instant, now: Instant) -> bool {
        let (has_gil, for_) = self.read(epoch, now);
        !has_gil && for_ < GIL_WAIT_FRESH
    }

    /// Whether the job will likely end (or get the GIL) soon without help.
    fn fresh(&self, epoch: Instant, now: Instant) -> bool {
        let (has_gil, for_) = self.read(epoch, now);
        for_ < if has_gil { STUCK_AFTER } else { GIL_WAIT_FRESH }
    }
}

/// The dispatcher of one thread pool in this worker; lives for the life of the process.
pub struct Dispatcher {
    pool: ThreadPool,
    /// The origin of [`Progress`] times.
    epoch: Instant,
    q: Mutex<Queues>,
    work: Condvar,
    events: OnceLock<DispatchEvents>,
}

static DISPATCHERS: Mutex<Vec<&'static Dispatcher>> = Mutex::new(Vec::new());

impl Dispatcher {
    /// The dispatcher of `pool` (made on first use, on the event loop).
    pub fn of(pool: ThreadPool) -> Option<&'static Dispatcher> {
        let mut all = DISPATCHERS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = all.iter().find(|d| d.pool == pool) {
            return Some(d);
        }
        let d: &'static Dispatcher = Box::leak(Box::new(Dispatcher {
            pool,
            epoch: Instant::now(),
            q: Mutex::new(Queues::default()),
            work: Condvar::new(),
            events: OnceLock::new(),
        }));
        let events = DispatchEvents::create(d)?;
        let _ = d.events.set(events);
        all.push(d);
        Some(d)
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn events(&self) -> &DispatchEvents {
        self.events.get().expect("set before the dispatcher is used")
    }

    /// Queue a job (event loop).
    pub fn post(&'static self, job: Job) {
        let mut q = self.lock();
        q.pending.push_back(job);
        self.wake_runner(q);
    }

    /// The timer (event loop): wake a runner if the queued work waits behind blocked ones.
    pub fn tick(&'static self) {
        let q = self.lock();
        self.wake_runner(q);
    }

    /// The completions since the last call (event loop).
    pub fn take_done(&self) -> Vec<Done> {
        let mut q = self.lock();
        q.loop_woken = false;
        std::mem::take(&mut q.done)
    }

    /// Make sure some runner will take the queued work; keep the timer armed while it waits.
    fn wake_runner(&'static self, mut q: MutexGuard<'_, Queues>) {
        if q.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let fresh = q.busy.iter().any(|p| p.fresh(self.epoch, now));
        if !fresh && q.notified == 0 && q.spawning == 0 {
            if q.idle > q.notified {
                q.notified += 1;
                // Outside the lock: the runner woken takes it at once.
                drop(q);
                self.work.notify_one();
                q = self.lock();
            } else {
                q.spawning += 1;
                drop(q);
                let posted = self.pool.post_runner(self);
                q = self.lock();
                if !posted {
                    // The timer tries again.
                    q.spawning -= 1;
                }
            }
        }
        drop(q);
        self.events().tick(TICK_MS);
    }

    /// A runner, on a pool thread: run jobs until none comes for [`LINGER`].
    pub fn run(&self) {
        let me = Arc::new(Progress::new());
        let mut q = self.lock();
        q.spawning = q.spawning.saturating_sub(1);
        loop {
            // Step aside while another runner waits for the GIL (module docs).
            let now = Instant::now();
            let step_aside = q.busy.iter().any(|p| p.waiting(self.epoch, now));
            let job = if step_aside { None } else { q.pending.pop_front() };
            if let Some(job) = job {
                me.mark(self.epoch, false);
                q.busy.push(me.clone());
                drop(q);
                let got_gil = || me.mark(self.epoch, true);
                let done = match job {
                    Job::Request { ts, token } => {
                        run_job(&ts, got_gil);
                        Done::Request(token)
                    }
                    Job::Orphan(ts) => {
                        run_job(&ts, got_gil);
                        Done::Orphan(ts)
                    }
                };
                q = self.lock();
                if let Some(i) = q.busy.iter().position(|p| Arc::ptr_eq(p, &me)) {
                    q.busy.swap_remove(i);
                }
                q.done.push(done);
                if !std::mem::replace(&mut q.loop_woken, true) {
                    drop(q);
                    self.events().wake();
                    q = self.lock();
                }
                continue;
            }
            q.idle += 1;
            let (g, waited) = self.work.wait_timeout(q, LINGER).unwrap_or_else(|p| p.into_inner());
            q = g;
            q.idle -= 1;
            q.notified = q.notified.saturating_sub(1).min(q.idle);
            if waited.timed_out() && q.pending.is_empty() {
                return;
            }
        }
    }
}

/// One job (`got_gil` is called once it holds the GIL); a panic in it (a bug) must not
/// take the runner's bookkeeping with it.
fn run_job(ts: &TaskSide, got_gil: impl FnOnce()) {
    guard("thread task", (), || task::run(ts, got_gil));
}
