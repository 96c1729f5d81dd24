//! The Slurm executor: misses run as batch jobs of `admf exec-action`.
//!
//! One scheduler thread per build owns every job. Actions handed to
//! [`SlurmExecutor::submit`] queue up, grouped by the resources their
//! phase asks for. A group's first action goes into a job at once, and
//! one more job starts for every [`EARLY_STEP`] actions waiting, so that
//! Slurm schedules them while the coordinator still decides. Once the
//! coordinator waits ([`Executor::idle`]) each
//! group is placed: first on the build's jobs of the same resources whose
//! workers still take work, then in as few new jobs as the free job slots
//! allow, at most `pack` actions waiting in each, so a 10,000-trial sweep
//! is a few dozen jobs. A job is a folder under the store
//! (`cluster/<run>/<n>/`, laid out in [`super::batch`]) and a script that
//! runs `admf exec-action --batch` on it. The worker appends each
//! action's output to the folder's `outputs.jsonl`, and keeps taking the actions added to the folder until none came for
//! [`WORKER_LINGER`]: a build's later waves (contended keys, the node
//! gathering a sweep) run in jobs that already started.
//!
//! The same thread reads every job's progress log often (a small read per
//! job): a succeeded action is delivered, and committed, while its job
//! runs on, and a job whose script noted a clean exit is done without
//! asking Slurm. Slurm itself (`squeue --states=all` by the build's
//! run-unique job name, `sacct` for a job already purged) is polled only
//! to find jobs that ended otherwise, backing off while nothing changes.
//! A job that ends in any other state than COMPLETED fails every action
//! of it that wrote no output, with the state, Slurm's reason and the
//! job's stdout/stderr in the node's log; an action whose output says it
//! failed waits for the job's state, which may be the cause. Ctrl-C (or
//! SIGTERM) cancels the build's jobs with `scancel` before admf exits.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Resources, batch};
use crate::action::{Action, ActionOutput};
use crate::executor::{Done, Executor};
use crate::phases::PhaseError;

/// How long the queue waits for more actions before it packs them into
/// jobs when no one says the coordinator waits ([`Executor::idle`]).
pub const LINGER: Duration = Duration::from_millis(500);
/// How long a job's worker waits for more actions once its folder ran
/// dry, so that the build's next wave finds it running.
pub const WORKER_LINGER: Duration = Duration::from_secs(3);
/// How often the jobs' progress logs are read.
const PROGRESS_POLL: Duration = Duration::from_millis(10);
/// The first and the longest wait between two polls of Slurm, which only
/// find jobs that ended without their script saying so.
const POLL_FIRST: Duration = Duration::from_millis(500);
const POLL_MAX: Duration = Duration::from_secs(5);
/// Polls that may fail in a row (slurmctld unreachable) before the
/// build's jobs are given up on, about a minute with the back-off.
const POLL_FAILURES_MAX: u32 = 15;
/// A job whose worker still takes work is given up to this many waiting
/// actions before a new job is started for them.
const LIVE_MIN: usize = 8;
/// Before the coordinator waits, a job is submitted for the first queued
/// action of a resources group that has no job yet, and one more for
/// every this many queued actions of a group, while slots are free.
const EARLY_STEP: usize = 16;

/// What a build asks of Slurm.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// The most jobs queued or running at once.
    pub max_jobs: usize,
    /// The most actions in one job.
    pub pack: usize,
    /// The admf binary the compute nodes run (same path there).
    pub admf: PathBuf,
    /// This build's job folders; removed when the build ends.
    pub job_root: PathBuf,
    /// The job name of every job of this build, unique to it.
    pub run_name: String,
    /// Each node's resources, by node id.
    pub resources: HashMap<String, Resources>,
}

pub const DEFAULT_MAX_JOBS: usize = 16;
pub const DEFAULT_PACK: usize = 256;

/// How the build's jobs went, for the closing line.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlurmSummary {
    pub actions: usize,
    pub jobs: usize,
}

/// What reaches the scheduler thread.
enum Request {
    Run(Box<Action>, Done),
    /// The coordinator waits: pack and submit what is queued.
    Flush,
}

pub struct SlurmExecutor {
    queue: Sender<Request>,
    scheduler: Option<JoinHandle<SlurmSummary>>,
    jobs: usize,
    job_root: PathBuf,
}

impl SlurmExecutor {
    /// Starts the scheduler thread; [`check_client`] first, so that a
    /// build without Slurm says so before deciding anything.
    pub fn start(options: SlurmOptions) -> std::io::Result<SlurmExecutor> {
        std::fs::create_dir_all(&options.job_root)?;
        let interrupted = interrupt_flag()?;
        let (queue, incoming) = channel::<Request>();
        let jobs = options.max_jobs.saturating_mul(options.pack).max(1);
        let job_root = options.job_root.clone();
        let scheduler = std::thread::Builder::new()
            .name("admf-slurm".into())
            .spawn(move || {
                Scheduler {
                    options,
                    interrupted,
                    queued: BTreeMap::new(),
                    jobs: HashMap::new(),
                    summary: SlurmSummary::default(),
                    next_job: 0,
                }
                .run(incoming)
            })?;
        Ok(SlurmExecutor {
            queue,
            scheduler: Some(scheduler),
            jobs,
            job_root,
        })
    }

    /// Waits for the scheduler (every action was delivered by then) and
    /// removes the build's job folders.
    pub fn finish(mut self) -> SlurmSummary {
        self.stop()
    }

    fn stop(&mut self) -> SlurmSummary {
        // Ctrl-C kills admf again as soon as no job can be left behind.
        if let Ok(signals) = signals() {
            signals.idle.store(true, Ordering::SeqCst);
        }
        // Closing the queue tells the scheduler no action follows.
        let (closed, _) = channel();
        drop(std::mem::replace(&mut self.queue, closed));
        let summary = self
            .scheduler
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let _ = std::fs::remove_dir_all(&self.job_root);
        summary
    }
}

impl Drop for SlurmExecutor {
    fn drop(&mut self) {
        if self.scheduler.is_some() {
            self.stop();
        }
    }
}

impl Executor for SlurmExecutor {
    fn jobs(&self) -> usize {
        self.jobs
    }

    fn submit(&self, action: Action, done: Done) {
        if let Err(std::sync::mpsc::SendError(Request::Run(_, done))) =
            self.queue.send(Request::Run(Box::new(action), done))
        {
            done.send(failed(
                "the Slurm scheduler thread is gone".into(),
                Vec::new(),
            ));
        }
    }

    fn idle(&self) {
        let _ = self.queue.send(Request::Flush);
    }
}

/// The process's SIGINT/SIGTERM handling while Slurm jobs may run:
/// `interrupted` is set, and the default action (termination) runs only
/// while `idle`. Registered once per process, so a long `admf watch` with
/// many builds keeps one set of handlers.
struct Signals {
    interrupted: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
}

fn signals() -> std::io::Result<&'static Signals> {
    static SIGNALS: std::sync::OnceLock<Signals> = std::sync::OnceLock::new();
    if let Some(signals) = SIGNALS.get() {
        return Ok(signals);
    }
    let signals = Signals {
        interrupted: Arc::new(AtomicBool::new(false)),
        idle: Arc::new(AtomicBool::new(true)),
    };
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, signals.interrupted.clone())?;
        signal_hook::flag::register_conditional_default(signal, signals.idle.clone())?;
    }
    Ok(SIGNALS.get_or_init(|| signals))
}

/// The flag a Ctrl-C sets while this build's jobs may run.
fn interrupt_flag() -> std::io::Result<Arc<AtomicBool>> {
    let signals = signals()?;
    signals.interrupted.store(false, Ordering::SeqCst);
    signals.idle.store(false, Ordering::SeqCst);
    Ok(signals.interrupted.clone())
}

/// Whether `sbatch` runs here.
pub fn check_client() -> std::io::Result<()> {
    match Command::new("sbatch").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(std::io::Error::other(format!(
            "`sbatch --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("cannot run `sbatch` (is the Slurm client installed and on PATH?): {e}"),
        )),
    }
}

/// One submitted job and the actions handed to it, by their index in its
/// folder.
struct Job {
    dir: PathBuf,
    resources: Resources,
    slots: Vec<Slot>,
    /// The first action of each hand-over file, ascending.
    handovers: Vec<usize>,
    /// How far the job's outputs and progress log were read.
    outputs_read: u64,
    progress_read: u64,
    /// The worker takes no more actions.
    closed: bool,
    /// The worker's exit status, once the job script noted it.
    exit: Option<i32>,
    /// Slurm was asked about the job as soon as its exit was noted.
    asked: bool,
}

enum Slot {
    /// Handed to the job; no output seen yet.
    Waiting(Box<Action>, Done),
    /// Its output says it failed. Delivered once Slurm says how the job
    /// ended, which may be the cause (memory, time).
    Failed(Done, Box<ActionOutput>),
    /// Delivered, or taken back from the job.
    Gone,
}

impl Job {
    fn new(dir: PathBuf, resources: Resources) -> Job {
        Job {
            dir,
            resources,
            slots: Vec::new(),
            handovers: Vec::new(),
            outputs_read: 0,
            progress_read: 0,
            closed: false,
            exit: None,
            asked: false,
        }
    }

    /// Whether the job's worker may still take actions.
    fn takes_work(&self) -> bool {
        !self.closed && self.exit.is_none()
    }

    /// Actions handed to the job and not run yet, as far as is known.
    fn waiting(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Waiting(..)))
            .count()
    }

    fn settled(&self) -> bool {
        self.slots.iter().all(|s| matches!(s, Slot::Gone))
    }

    fn has_failures(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, Slot::Failed(..)))
    }

    /// Reads the outputs and progress noted since the last read: the
    /// outputs of actions that succeeded are delivered at once, so the
    /// coordinator commits while the job runs on.
    fn update(&mut self) {
        if let Ok(finished) = batch::read_finished(&self.dir, &mut self.outputs_read) {
            for batch::Finished { index, output } in finished {
                let Some(slot) = self.slots.get_mut(index) else {
                    continue;
                };
                match std::mem::replace(slot, Slot::Gone) {
                    Slot::Waiting(_, done) if output.result.is_err() => {
                        *slot = Slot::Failed(done, Box::new(output))
                    }
                    Slot::Waiting(_, done) => done.send(output),
                    other => *slot = other,
                }
            }
        }
        if let Ok(progress) = batch::read_progress(&self.dir, &mut self.progress_read) {
            self.closed |= progress.closed;
            if progress.exit.is_some() {
                self.exit = progress.exit;
            }
        }
    }
}

struct Scheduler {
    options: SlurmOptions,
    interrupted: Arc<AtomicBool>,
    queued: BTreeMap<Resources, Vec<(Action, Done)>>,
    jobs: HashMap<String, Job>,
    summary: SlurmSummary,
    next_job: usize,
}

impl Scheduler {
    fn run(mut self, incoming: Receiver<Request>) -> SlurmSummary {
        let mut open = true;
        let mut last_arrival = Instant::now();
        let mut flush = false;
        let mut poll_wait = POLL_FIRST;
        let mut next_poll = Instant::now();
        let mut poll_failures = 0u32;
        loop {
            if self.interrupted.load(Ordering::SeqCst) {
                self.cancel_and_exit();
            }
            if open {
                match incoming.recv_timeout(PROGRESS_POLL) {
                    Ok(request) => {
                        let mut next = Some(request);
                        while let Some(request) = next {
                            match request {
                                Request::Run(action, done) => {
                                    let resources = self.resources_of(&action);
                                    self.queued
                                        .entry(resources.clone())
                                        .or_default()
                                        .push((*action, done));
                                    last_arrival = Instant::now();
                                    if self.submit_early(&resources) {
                                        poll_wait = POLL_FIRST;
                                        next_poll = Instant::now() + poll_wait;
                                    }
                                }
                                Request::Flush => flush = true,
                            }
                            next = incoming.try_recv().ok();
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
            } else if self.queued.is_empty() && self.jobs.values().all(Job::settled) {
                self.close_workers();
                return self.summary;
            } else {
                std::thread::sleep(PROGRESS_POLL);
            }
            if !self.queued.is_empty() && (flush || last_arrival.elapsed() >= LINGER || !open) {
                flush = false;
                if self.pack_and_submit() {
                    poll_wait = POLL_FIRST;
                    next_poll = Instant::now() + poll_wait;
                }
            }
            if self.watch_progress() {
                next_poll = Instant::now();
            }
            if !self.jobs.is_empty() && Instant::now() >= next_poll {
                match self.poll() {
                    Ok(changed) => {
                        poll_failures = 0;
                        poll_wait = if changed {
                            POLL_FIRST
                        } else {
                            (poll_wait * 2).min(POLL_MAX)
                        };
                    }
                    Err(e) => {
                        poll_failures += 1;
                        if poll_failures >= POLL_FAILURES_MAX {
                            self.give_up(&format!("cannot ask Slurm about the jobs: {e}"));
                        }
                        poll_wait = (poll_wait * 2).min(POLL_MAX);
                    }
                }
                next_poll = Instant::now() + poll_wait;
            }
        }
    }

    fn resources_of(&self, action: &Action) -> Resources {
        self.options
            .resources
            .get(&action.node)
            .cloned()
            .unwrap_or_default()
    }

    /// Submits a job for the queued actions of `resources` before the
    /// coordinator has handed over all it will, so that the job's
    /// submission and start (half a second or more) overlap the deciding
    /// of the rest: when the group has no job yet, or when
    /// [`EARLY_STEP`] of its actions wait, while job slots are free. What
    /// comes later joins these jobs when the queue is placed. Returns
    /// whether a job was submitted.
    fn submit_early(&mut self, resources: &Resources) -> bool {
        if self.jobs.len() >= self.options.max_jobs {
            return false;
        }
        let queued = self.queued.get(resources).map_or(0, Vec::len);
        let has_job = self
            .jobs
            .values()
            .any(|job| job.resources == *resources && job.takes_work());
        if queued == 0 || (has_job && queued < EARLY_STEP) {
            return false;
        }
        let Some(waiting) = self.queued.get_mut(resources) else {
            return false;
        };
        let batch: Vec<(Action, Done)> = waiting
            .drain(..queued.min(self.options.pack.max(1)))
            .collect();
        if waiting.is_empty() {
            self.queued.remove(resources);
        }
        self.submit_job(resources, batch)
    }

    /// Places each group of queued actions: first on the jobs of the
    /// same resources whose workers still take work (the fewest waiting
    /// first), then in new jobs while slots are free, at most `pack`
    /// actions waiting in one job. Returns whether a job was submitted.
    fn pack_and_submit(&mut self) -> bool {
        let mut submitted = false;
        let groups: Vec<Resources> = self.queued.keys().cloned().collect();
        for resources in groups {
            let Some(mut waiting) = self.queued.remove(&resources) else {
                continue;
            };
            let mut live: BinaryHeap<Reverse<(usize, String)>> = self
                .jobs
                .iter()
                .filter(|(_, job)| job.resources == resources && job.takes_work())
                .map(|(id, job)| Reverse((job.waiting(), id.clone())))
                .collect();
            let free = self.options.max_jobs.saturating_sub(self.jobs.len());
            let outstanding: usize = live.iter().map(|Reverse((n, _))| n).sum();
            let places = live.len() + free;
            if places > 0 {
                let per_job = (waiting.len() + outstanding)
                    .div_ceil(places)
                    .clamp(1, self.options.pack);
                // A running worker starts an action at once, a new job
                // only once Slurm schedules it: live jobs take a few more.
                let live_cap = per_job.max(LIVE_MIN).min(self.options.pack);
                let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                let mut taken = 0;
                while taken < waiting.len() {
                    let Some(Reverse((n, id))) = live.pop() else {
                        break;
                    };
                    if n >= live_cap {
                        break;
                    }
                    taken += 1;
                    *counts.entry(id.clone()).or_default() += 1;
                    live.push(Reverse((n + 1, id)));
                }
                let rest = waiting.split_off(taken);
                let mut front = waiting.into_iter();
                let mut returned = Vec::new();
                for (id, count) in counts {
                    let batch: Vec<(Action, Done)> = front.by_ref().take(count).collect();
                    returned.extend(self.append(&id, batch));
                }
                returned.extend(rest);
                waiting = returned;
                while !waiting.is_empty() && self.jobs.len() < self.options.max_jobs {
                    let take = per_job.min(waiting.len());
                    let batch: Vec<(Action, Done)> = waiting.drain(..take).collect();
                    submitted |= self.submit_job(&resources, batch);
                }
            }
            if !waiting.is_empty() {
                let queue = self.queued.entry(resources).or_default();
                waiting.append(queue);
                *queue = waiting;
            }
        }
        submitted
    }

    /// Hands `batch` to the running (or pending) job `id`, as one file;
    /// returns the actions if its worker can no longer take them.
    fn append(&mut self, id: &str, batch: Vec<(Action, Done)>) -> Vec<(Action, Done)> {
        let Some(job) = self.jobs.get_mut(id) else {
            return batch;
        };
        let first = job.slots.len();
        if job.closed
            || batch::write_actions(&job.dir, first, batch.iter().map(|(a, _)| a)).is_err()
        {
            // A folder that cannot take an action takes no more.
            job.closed = true;
            return batch;
        }
        job.handovers.push(first);
        job.slots.extend(
            batch
                .into_iter()
                .map(|(action, done)| Slot::Waiting(Box::new(action), done)),
        );
        // Did the worker stop taking work before it could see them?
        job.update();
        if !job.takes_work() && batch::withdraw(&job.dir, first).unwrap_or(false) {
            job.handovers.pop();
            let returned: Vec<(Action, Done)> = job
                .slots
                .drain(first..)
                .filter_map(|slot| match slot {
                    Slot::Waiting(action, done) => Some((*action, done)),
                    _ => None,
                })
                .collect();
            return returned;
        }
        self.summary.actions += job.slots.len() - first;
        Vec::new()
    }

    /// Submits `batch` as a new job; returns whether it was.
    fn submit_job(&mut self, resources: &Resources, batch: Vec<(Action, Done)>) -> bool {
        let dir = self.options.job_root.join(format!("{:06}", self.next_job));
        self.next_job += 1;
        match self.write_job(&dir, resources, &batch) {
            Ok(id) => {
                self.summary.jobs += 1;
                self.summary.actions += batch.len();
                let mut job = Job::new(dir, resources.clone());
                job.handovers.push(0);
                job.slots = batch
                    .into_iter()
                    .map(|(action, done)| Slot::Waiting(Box::new(action), done))
                    .collect();
                self.jobs.insert(id, job);
                true
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                for (_, done) in batch {
                    done.send(failed(format!("cannot submit to Slurm: {e}"), Vec::new()));
                }
                false
            }
        }
    }

    /// Writes the job folder and submits it; returns the job id.
    fn write_job(
        &self,
        dir: &Path,
        resources: &Resources,
        batch: &[(Action, Done)],
    ) -> std::io::Result<String> {
        std::fs::create_dir_all(dir)?;
        batch::write_actions(dir, 0, batch.iter().map(|(action, _)| action))?;
        // The job script notes the worker's exit in the progress log, so
        // that a job that ends normally is known to have ended without
        // asking Slurm.
        let progress = shell_quote(&dir.join(batch::PROGRESS));
        let script = format!(
            "#!/bin/sh\n{} exec-action --batch {} --linger-ms {}\n\
             status=$?\necho \"exit $status\" >> {progress}\nexit $status\n",
            shell_quote(&self.options.admf),
            shell_quote(dir),
            WORKER_LINGER.as_millis(),
        );
        std::fs::write(dir.join("job.sh"), script)?;
        let mut sbatch = Command::new("sbatch");
        sbatch
            .arg("--parsable")
            .arg(format!("--job-name={}", self.options.run_name))
            .arg(format!("--output={}", dir.join("job.out").display()))
            .arg(format!("--error={}", dir.join("job.err").display()))
            .arg(format!("--chdir={}", dir.display()))
            .arg("--ntasks=1")
            .arg(format!("--cpus-per-task={}", resources.cpus.unwrap_or(1)));
        if let Some(mem) = &resources.mem {
            sbatch.arg(format!("--mem={mem}"));
        }
        if let Some(time) = &resources.time {
            sbatch.arg(format!("--time={time}"));
        }
        if let Some(partition) = &self.options.partition {
            sbatch.arg(format!("--partition={partition}"));
        }
        if let Some(account) = &self.options.account {
            sbatch.arg(format!("--account={account}"));
        }
        let out = sbatch.arg(dir.join("job.sh")).output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "sbatch: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // `--parsable` prints `id` or `id;cluster`.
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(std::io::Error::other(format!(
                "sbatch printed no job id: {text:?}"
            )));
        }
        Ok(id)
    }

    /// Reads every job's progress log; a job whose worker exited cleanly
    /// with every action a success is done without asking Slurm. Returns
    /// whether a job ended in a way Slurm should now be asked about.
    fn watch_progress(&mut self) -> bool {
        let mut ended = Vec::new();
        let mut ask = false;
        for (id, job) in &mut self.jobs {
            job.update();
            match job.exit {
                Some(0) if !job.has_failures() => ended.push(id.clone()),
                Some(_) if !job.asked => {
                    job.asked = true;
                    ask = true;
                }
                _ => {}
            }
        }
        for id in ended {
            if let Some(job) = self.jobs.remove(&id) {
                self.finish_job(&id, job, "COMPLETED", "");
            }
        }
        ask
    }

    /// Asks Slurm about every job of the build; finishes the jobs that
    /// ended. Returns whether any did.
    fn poll(&mut self) -> std::io::Result<bool> {
        let out = Command::new("squeue")
            .arg(format!("--name={}", self.options.run_name))
            .args(["--states=all", "--noheader", "--format=%i|%T|%r"])
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "squeue: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let listed = parse_squeue(&String::from_utf8_lossy(&out.stdout));
        let mut ended = Vec::new();
        for id in self.jobs.keys() {
            match listed.get(id) {
                Some((state, reason)) if is_final(state) => {
                    ended.push((id.clone(), state.clone(), reason.clone()))
                }
                Some(_) => {}
                // Purged from slurmctld's memory already: accounting knows.
                None => {
                    let (state, reason) = sacct_state(id);
                    ended.push((id.clone(), state, reason));
                }
            }
        }
        let changed = !ended.is_empty();
        for (id, state, reason) in ended {
            if let Some(job) = self.jobs.remove(&id) {
                self.finish_job(&id, job, &state, &reason);
            }
        }
        Ok(changed)
    }

    /// Hands each action of an ended job its output: what it wrote, else
    /// a failure naming the job's state and carrying the job's
    /// stdout/stderr. An action the worker never claimed although it
    /// exited cleanly (it stopped taking work just then) goes back to
    /// the queue.
    fn finish_job(&mut self, id: &str, mut job: Job, state: &str, reason: &str) {
        // What the worker wrote after the last read.
        job.update();
        let Job {
            dir,
            resources,
            mut slots,
            handovers,
            exit,
            ..
        } = job;
        // Hand-overs a cleanly exited worker never claimed (it stopped
        // taking work just then) go back to the queue.
        if exit == Some(0) {
            for (k, &first) in handovers.iter().enumerate() {
                let end = handovers.get(k + 1).copied().unwrap_or(slots.len());
                if batch::withdraw(&dir, first).unwrap_or(false) {
                    for slot in &mut slots[first..end] {
                        if let Slot::Waiting(action, done) = std::mem::replace(slot, Slot::Gone) {
                            self.summary.actions = self.summary.actions.saturating_sub(1);
                            self.queued
                                .entry(resources.clone())
                                .or_default()
                                .push((*action, done));
                        }
                    }
                }
            }
        }
        let job_log = || {
            let mut log = Vec::new();
            for name in ["job.out", "job.err"] {
                if let Ok(bytes) = std::fs::read(dir.join(name))
                    && !bytes.is_empty()
                {
                    log.extend_from_slice(format!("admf: Slurm job {id} {name}:\n").as_bytes());
                    log.extend_from_slice(&bytes);
                    if !bytes.ends_with(b"\n") {
                        log.push(b'\n');
                    }
                }
            }
            log
        };
        for slot in slots {
            let (done, output) = match slot {
                Slot::Gone => continue,
                // A complete output stands, unless Slurm ended the job
                // while the action failed: the job's end is then the
                // likely cause.
                Slot::Failed(done, mut output) => {
                    if state != "COMPLETED"
                        && let Err(error) = &mut output.result
                    {
                        error.message =
                            format!("{}; {}", error.message, failure_message(id, state, reason));
                        error.bad_input = false;
                        output.log.extend_from_slice(&job_log());
                    }
                    (done, *output)
                }
                Slot::Waiting(_, done) => {
                    (done, failed(failure_message(id, state, reason), job_log()))
                }
            };
            done.send(output);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The build is over: lingering workers are told to exit, which each
    /// does at its next look at the folder; the build does not wait for
    /// them. A job whose worker never wrote anything (still pending) is
    /// cancelled.
    fn close_workers(&mut self) {
        let mut unseen = Vec::new();
        for (id, job) in &self.jobs {
            let _ = std::fs::write(job.dir.join(batch::CLOSE), b"");
            if job.outputs_read == 0 && job.progress_read == 0 {
                unseen.push(id.clone());
            }
        }
        if !unseen.is_empty() {
            let _ = Command::new("scancel").args(&unseen).output();
        }
        self.jobs.clear();
    }

    /// Fails every queued and submitted action (and cancels the jobs).
    fn give_up(&mut self, why: &str) {
        self.scancel();
        for (_, batch) in std::mem::take(&mut self.queued) {
            for (_, done) in batch {
                done.send(failed(why.to_string(), Vec::new()));
            }
        }
        for (_, job) in self.jobs.drain() {
            for slot in job.slots {
                if let Slot::Waiting(_, done) | Slot::Failed(done, _) = slot {
                    done.send(failed(why.to_string(), Vec::new()));
                }
            }
        }
    }

    fn scancel(&self) {
        let _ = Command::new("scancel")
            .arg(format!("--name={}", self.options.run_name))
            .output();
    }

    /// Ctrl-C: the build's jobs are cancelled, then admf exits as an
    /// interrupted program does. Pending entries are debris the next
    /// build or `admf cache gc` sweeps; nothing was committed from them.
    fn cancel_and_exit(&self) -> ! {
        self.scancel();
        let _ = std::fs::remove_dir_all(&self.options.job_root);
        crate::errln!(
            "admf: interrupted; cancelled the Slurm jobs named {}",
            self.options.run_name
        );
        std::process::exit(130);
    }
}

fn failed(message: String, log: Vec<u8>) -> ActionOutput {
    ActionOutput {
        result: Err(PhaseError::new(message)),
        memory: Default::default(),
        log,
        duration_ms: 0,
        handoff: None,
    }
}

/// Why an action of a job in `state` has no output.
pub fn failure_message(id: &str, state: &str, reason: &str) -> String {
    let what = match state {
        "COMPLETED" => "completed without writing the action's output",
        "FAILED" => "failed",
        "TIMEOUT" => "ran past its time limit",
        "OUT_OF_MEMORY" => "ran out of memory",
        "NODE_FAIL" => "lost its node",
        "CANCELLED" => "was cancelled",
        "PREEMPTED" => "was preempted",
        "BOOT_FAIL" => "could not boot its node",
        "DEADLINE" => "missed its deadline",
        _ => "ended",
    };
    let reason = match reason {
        "" | "None" => String::new(),
        r => format!(", reason {r}"),
    };
    format!("Slurm job {id} {what} (state {state}{reason})")
}

/// Job states after which a job runs no more.
pub fn is_final(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "TIMEOUT"
            | "OUT_OF_MEMORY"
            | "NODE_FAIL"
            | "CANCELLED"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "SPECIAL_EXIT"
            | "REVOKED"
    )
}

/// `id|STATE|reason` lines into a map by job id. `CANCELLED by 0` and
/// similar suffixes are cut to the state word.
pub fn parse_squeue(text: &str) -> HashMap<String, (String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(3, '|');
            let id = parts.next()?.trim();
            let state = parts.next()?.split_whitespace().next()?.to_string();
            let reason = parts.next().unwrap_or("").trim().to_string();
            (!id.is_empty()).then(|| (id.to_string(), (state, reason)))
        })
        .collect()
}

/// The state of a job squeue no longer lists, from accounting; `LOST`
/// when accounting does not know it either.
fn sacct_state(id: &str) -> (String, String) {
    let out = Command::new("sacct")
        .args(["-j", id, "-X", "-n", "-P", "-o", "State,Reason"])
        .output();
    if let Ok(out) = out
        && out.status.success()
        && let Some((_, (state, reason))) =
            parse_squeue(&format!("{id}|{}", String::from_utf8_lossy(&out.stdout)))
                .into_iter()
                .next()
    {
        return (state, reason);
    }
    (
        "LOST".to_string(),
        "the job left the queue and accounting does not know it".to_string(),
    )
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_give_each_job_its_state_and_reason() {
        let jobs =
            parse_squeue("12|RUNNING|None\n13|CANCELLED by 0|None\n 14|PENDING|Resources\n\n");
        assert_eq!(jobs["12"], ("RUNNING".into(), "None".into()));
        assert_eq!(jobs["13"].0, "CANCELLED");
        assert_eq!(jobs["14"], ("PENDING".into(), "Resources".into()));
        assert_eq!(jobs.len(), 3);
        assert!(is_final("TIMEOUT") && is_final("OUT_OF_MEMORY") && is_final("NODE_FAIL"));
        assert!(!is_final("RUNNING") && !is_final("PENDING") && !is_final("COMPLETING"));
    }

    #[test]
    fn failure_messages_name_the_state_and_the_reason() {
        assert_eq!(
            failure_message("7", "TIMEOUT", "TimeLimit"),
            "Slurm job 7 ran past its time limit (state TIMEOUT, reason TimeLimit)"
        );
        assert_eq!(
            failure_message("8", "OUT_OF_MEMORY", "None"),
            "Slurm job 8 ran out of memory (state OUT_OF_MEMORY)"
        );
    }

    #[test]
    fn paths_are_quoted_for_the_job_script() {
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }
}
