//! Driving one socket: keep its window of tasks in flight, match each ack
//! to its event by ack id and each `result` to its task by task id, check
//! every result and time it.
//!
//! One tokio task owns the socket, reads and writes alike: it reads every
//! packet that is ready, then sends what the freed window allows and
//! flushes once, so a busy socket costs a few syscalls per batch of
//! packets rather than per packet.
//!
//! With a [`Schedule`] (`--rate`) a socket also waits for its next task to
//! be due, and times each task from when it was due rather than from when
//! it went out.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::conn::Ws;
use super::report::{Latencies, Samples, Tally};
use super::verify::{Verdict, Workload};
use super::wire::{self, AckBody, ErrorRef, Finished, Incoming};

/// How often a socket looks for tasks past their deadline.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// Packets read in a row before the socket sends again.
const READS_PER_TURN: usize = 256;
/// How long closing a socket may take at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Where a schedule too slow to reckon puts its tasks: never, in practice.
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// An open-loop run's timetable: task `seq` (of every socket, numbered
/// as in [`Shared::sockets`]) is due `seq / rate` seconds after `start`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    /// Tasks per second across all sockets.
    pub rate: f64,
    /// A time-bound run's end: tasks due after it are never sent, however
    /// late a socket notices the stop.
    pub end: Option<Instant>,
}

impl Schedule {
    /// When task `seq` is due.
    pub fn due(&self, seq: u64) -> Instant {
        Duration::try_from_secs_f64(seq as f64 / self.rate)
            .ok()
            .and_then(|d| self.start.checked_add(d))
            .unwrap_or_else(|| self.start + FAR)
    }

    /// Whether task `seq` is due after the end of the run.
    fn past_end(&self, seq: u64) -> bool {
        self.end.is_some_and(|end| self.due(seq) > end)
    }
}

/// What every socket of a run shares.
pub struct Shared {
    pub workload: Workload,
    /// Tasks a socket may have in flight.
    pub window: usize,
    pub batch: usize,
    /// A task unsettled this long after it was sent is lost.
    pub deadline: Duration,
    /// Cancelled when sockets must stop sending (duration over, ctrl-c).
    pub stop: CancellationToken,
    /// Tasks settled by all sockets, for the progress bar.
    pub settled: AtomicU64,
    pub latencies: Arc<Mutex<Latencies>>,
    /// Sockets in the run: socket `i`'s `k`-th task is number `k * sockets + i`.
    pub sockets: u64,
    /// `--rate`: send on this timetable instead of as soon as the window allows.
    pub schedule: Option<Schedule>,
}

/// An event sent and not yet acked.
struct Sent {
    /// When it was sent, or with a schedule, when it was due.
    at: Instant,
    /// Its first task's number on this socket, and how many it carries.
    first: u64,
    count: u64,
    /// Sent as `tasks` (its ack lists `tasks`) rather than `task`.
    batch: bool,
}

/// A task acked and waiting for its result.
struct Waiting {
    at: Instant,
    seq: u64,
}

/// A result that came before the ack of its task.
struct Early {
    at: Instant,
    status: String,
    output: Option<Box<RawValue>>,
    error: Option<(String, String)>,
}

impl Early {
    fn of(task: &Finished<'_>, at: Instant) -> Self {
        Self {
            at,
            status: task.status.clone().into_owned(),
            output: task.output.map(ToOwned::to_owned),
            error: task
                .error
                .as_ref()
                .map(|e| (e.code.clone().into_owned(), e.message.clone().into_owned())),
        }
    }

    fn as_finished(&self) -> Finished<'_> {
        Finished {
            id: Cow::Borrowed(""),
            status: Cow::Borrowed(&self.status),
            output: self.output.as_deref(),
            error: self.error.as_ref().map(|(code, message)| ErrorRef {
                code: Cow::Borrowed(code),
                message: Cow::Borrowed(message),
            }),
        }
    }
}

/// One socket's state.
struct Socket {
    shared: Arc<Shared>,
    index: u64,
    /// Tasks still to send; `None`: until stopped.
    quota: Option<u64>,
    stopped: bool,
    in_flight: usize,
    next_ack: u64,
    next_task: u64,
    sent: HashMap<u64, Sent>,
    waiting: HashMap<Uuid, Waiting>,
    early: HashMap<Uuid, Early>,
    pong_due: bool,
    tally: Tally,
    samples: Samples,
    packet: String,
    input: String,
    /// Scratch for the fields after a task's input.
    tail: String,
    scratch: String,
}

/// Runs socket `index` until its `quota` of tasks (or, with `None`, every
/// task sent before [`Shared::stop`]) is settled, lost or unsent.
pub async fn drive(mut ws: Ws, index: usize, quota: Option<u64>, shared: Arc<Shared>) -> Tally {
    let stop = shared.stop.clone();
    let mut s = Socket {
        samples: Samples::new(shared.latencies.clone()),
        shared,
        index: index as u64,
        quota,
        stopped: false,
        in_flight: 0,
        next_ack: 0,
        next_task: 0,
        sent: HashMap::new(),
        waiting: HashMap::new(),
        early: HashMap::new(),
        pong_due: false,
        tally: Tally::default(),
        packet: String::new(),
        input: String::new(),
        tail: String::new(),
        scratch: String::new(),
    };
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Wakes the socket when its next scheduled event is due (armed only
    // with a schedule and room in the window).
    let pace = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(pace);
    let mut armed: Option<Instant> = None;
    let mut alive = s.send_due(&mut ws).await.is_ok();
    while alive && !s.finished() {
        let due = s.next_due();
        if due != armed {
            if let Some(due) = due {
                pace.as_mut().reset(due.into());
            }
            armed = due;
        }
        tokio::select! {
            biased;
            msg = ws.next() => {
                let mut msg = msg;
                // Takes a packet off the socket only to handle it in this
                // turn: one taken after the last read of a full turn was
                // dropped, so a busy socket lost an ack or a result.
                for read in 1..=READS_PER_TURN {
                    alive = s.on_message(msg);
                    if !alive || read == READS_PER_TURN {
                        break;
                    }
                    match ws.next().now_or_never() {
                        Some(next) => msg = next,
                        None => break,
                    }
                }
            }
            () = stop.cancelled(), if !s.stopped => s.stop(),
            () = &mut pace, if armed.is_some() => armed = None,
            _ = sweep.tick() => s.sweep(Instant::now()),
        }
        alive = alive && s.send_due(&mut ws).await.is_ok();
    }
    if alive {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
    } else {
        s.disconnected();
    }
    s.tally.outcomes.stray += s.early.len() as u64;
    s.tally
}

impl Socket {
    fn finished(&self) -> bool {
        (self.stopped || self.quota == Some(0)) && self.in_flight == 0
    }

    fn stop(&mut self) {
        self.stopped = true;
        if let Some(left) = self.quota.replace(0) {
            self.tally.outcomes.unsent += left;
        }
    }

    /// Handles one websocket message; `false` once the socket is gone.
    fn on_message(&mut self, msg: Option<Result<Message, tungstenite::Error>>) -> bool {
        let text = match msg {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
            Some(Ok(_)) => return true,
        };
        let now = Instant::now();
        match wire::decode(&text) {
            Ok(Incoming::Ack(id, body)) => self.on_ack(id, body, now),
            Ok(Incoming::Result(task)) => self.on_result(&task, now),
            Ok(Incoming::Ping) => self.pong_due = true,
            Ok(Incoming::Closed) => return false,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "bench: unreadable packet"),
        }
        true
    }

    fn on_ack(&mut self, id: u64, body: AckBody<'_>, now: Instant) {
        // Not ours, or its tasks were already counted lost.
        let Some(sent) = self.sent.remove(&id) else {
            return;
        };
        let latency = now - sent.at;
        if !body.ok {
            let code = body.error.as_ref().map_or("bad_ack", |e| e.code.as_ref());
            self.tally.outcomes.error(code, sent.count);
            self.settled(sent.count as usize, now);
            return;
        }
        let single;
        let tasks = if sent.batch {
            body.tasks.as_deref().unwrap_or_default()
        } else {
            single = body.task;
            single.as_slice()
        };
        for k in 0..sent.count {
            self.samples.ack(latency);
            let seq = self.seq(sent.first + k);
            let key = tasks
                .get(k as usize)
                .and_then(|t| Uuid::try_parse(&t.id).ok());
            let Some(key) = key else {
                self.tally.outcomes.error("bad_ack", 1);
                self.settled(1, now);
                continue;
            };
            match self.early.remove(&key) {
                Some(early) => self.settle(seq, sent.at, &early.as_finished(), early.at),
                None => {
                    self.waiting.insert(key, Waiting { at: sent.at, seq });
                }
            }
        }
    }

    fn on_result(&mut self, task: &Finished<'_>, now: Instant) {
        let Ok(key) = Uuid::try_parse(&task.id) else {
            self.tally.outcomes.stray += 1;
            return;
        };
        match self.waiting.remove(&key) {
            Some(w) => self.settle(w.seq, w.at, task, now),
            // Its ack may still be on the way.
            None if !self.sent.is_empty() => {
                self.early.insert(key, Early::of(task, now));
            }
            None => self.tally.outcomes.stray += 1,
        }
    }

    /// Checks and counts the result of task `seq`, sent at `sent`.
    fn settle(&mut self, seq: u64, sent: Instant, task: &Finished<'_>, now: Instant) {
        self.samples.result(now.saturating_duration_since(sent));
        match self.shared.workload.verify(seq, task, &mut self.scratch) {
            Verdict::Ok => self.tally.outcomes.ok += 1,
            Verdict::Wrong => self.tally.outcomes.wrong += 1,
            Verdict::Error(code) => self.tally.outcomes.error(&code, 1),
        }
        self.settled(1, now);
    }

    fn settled(&mut self, n: usize, now: Instant) {
        self.in_flight -= n;
        self.tally.last_done = Some(now);
        self.shared.settled.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts as lost what waited past the deadline.
    fn sweep(&mut self, now: Instant) {
        let deadline = self.shared.deadline;
        let late = |at: Instant| now.saturating_duration_since(at) > deadline;
        let mut lost = 0;
        self.sent.retain(|_, s| {
            let keep = !late(s.at);
            lost += if keep { 0 } else { s.count };
            keep
        });
        self.waiting.retain(|_, w| {
            let keep = !late(w.at);
            lost += u64::from(!keep);
            keep
        });
        let before = self.early.len();
        self.early.retain(|_, e| !late(e.at));
        self.tally.outcomes.stray += (before - self.early.len()) as u64;
        self.lose(lost);
    }

    fn lose(&mut self, n: u64) {
        self.tally.outcomes.lost += n;
        self.in_flight -= n as usize;
        self.shared.settled.fetch_add(n, Ordering::Relaxed);
    }

    /// The connection is gone: what is in flight is lost, the rest unsent.
    fn disconnected(&mut self) {
        self.tally.outcomes.disconnects += 1;
        self.lose(self.in_flight as u64);
        self.sent.clear();
        self.waiting.clear();
        if let Some(left) = self.quota.replace(0) {
            self.tally.outcomes.unsent += left;
        }
    }

    fn seq(&self, task: u64) -> u64 {
        task * self.shared.sockets + self.index
    }

    /// Tasks the next event would carry, if it may be sent now or later:
    /// not stopped, tasks left, room in the window, due before the end.
    fn room(&self) -> Option<u64> {
        let count = self.quota.unwrap_or(u64::MAX).min(self.shared.batch as u64);
        let fits = self.in_flight + count as usize <= self.shared.window;
        if self.stopped || count == 0 || !fits {
            return None;
        }
        let last = self.seq(self.next_task + count - 1);
        match &self.shared.schedule {
            Some(schedule) if schedule.past_end(last) => None,
            _ => Some(count),
        }
    }

    /// With a schedule: when the next event of `count` tasks is due (when
    /// its last task is).
    fn due(&self, count: u64) -> Option<Instant> {
        let schedule = self.shared.schedule.as_ref()?;
        Some(schedule.due(self.seq(self.next_task + count - 1)))
    }

    /// With a schedule and room in the window: when the next event is due.
    fn next_due(&self) -> Option<Instant> {
        self.due(self.room()?)
    }

    /// Sends a pong if one is due and as many tasks as the window (and the
    /// schedule, if any) allows, then flushes them all at once.
    async fn send_due(&mut self, ws: &mut Ws) -> Result<(), tungstenite::Error> {
        let mut wrote = false;
        if std::mem::take(&mut self.pong_due) {
            ws.feed(Message::text(wire::PONG)).await?;
            wrote = true;
        }
        let now = Instant::now();
        while let Some(count) = self.room() {
            let due = self.due(count);
            if due.is_some_and(|due| due > now) {
                break;
            }
            self.fill_packet(count, due);
            // The next packet is about as long as this one.
            let next = String::with_capacity(self.packet.len());
            let packet = std::mem::replace(&mut self.packet, next);
            ws.feed(Message::text(packet)).await?;
            wrote = true;
        }
        if wrote {
            ws.flush().await?;
        }
        Ok(())
    }

    /// Writes the next event of `count` tasks into `self.packet` and
    /// records it as sent, at `due` if it had a scheduled time.
    fn fill_packet(&mut self, count: u64, due: Option<Instant>) {
        let (ack, first) = (self.next_ack, self.next_task);
        let batch = self.shared.batch > 1;
        let workload = &self.shared.workload;
        self.packet.clear();
        if batch {
            let mut items = Vec::with_capacity(count as usize);
            for k in 0..count {
                let seq = (first + k) * self.shared.sockets + self.index;
                let input = workload.input(seq, &mut self.input).to_owned();
                items.push((input, workload.spec_tail(seq, &mut self.tail).to_owned()));
            }
            wire::tasks(
                &mut self.packet,
                ack,
                workload.kind_json(),
                items.iter().map(|(i, t)| (i.as_str(), t.as_str())),
            );
        } else {
            let seq = first * self.shared.sockets + self.index;
            let input = workload.input(seq, &mut self.input);
            let tail = workload.spec_tail(seq, &mut self.tail);
            wire::task(&mut self.packet, ack, workload.kind_json(), input, tail);
        }
        self.next_ack += 1;
        self.next_task += count;
        self.in_flight += count as usize;
        self.tally.sent += count;
        if let Some(q) = &mut self.quota {
            *q -= count;
        }
        let now = Instant::now();
        let at = match due {
            Some(due) => {
                self.samples.lag(now.saturating_duration_since(due), count);
                due
            }
            None => now,
        };
        self.sent.insert(
            ack,
            Sent {
                at,
                first,
                count,
                batch,
            },
        );
    }
}
