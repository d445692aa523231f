//! The progress bar on stderr while a run goes, when stderr is a terminal.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use super::args::Amount;
use super::driver::Shared;

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// A bar fed from [`Shared::settled`] until [`Progress::finish`].
pub struct Progress {
    bar: ProgressBar,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows the run's progress; hidden unless stderr is a terminal.
    pub fn start(amount: Amount, shared: Arc<Shared>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self {
                bar: ProgressBar::hidden(),
                ticker: None,
            };
        }
        let (len, template) = match amount {
            Amount::Tasks(n) => (n, "{bar:30} {pos}/{len} tasks, {msg} ({elapsed})"),
            Amount::For(d) => (d.as_millis() as u64, "{bar:30} {msg}"),
        };
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let start = Instant::now();
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            loop {
                tick.tick().await;
                let settled = shared.settled.load(Ordering::Relaxed);
                match amount {
                    Amount::Tasks(_) => {
                        shown.set_position(settled);
                        let rate = settled as f64 / start.elapsed().as_secs_f64().max(1e-3);
                        shown.set_message(format!("{rate:.0}/s"));
                    }
                    Amount::For(d) => {
                        let elapsed = start.elapsed().min(d);
                        shown.set_position(elapsed.as_millis() as u64);
                        shown.set_message(format!(
                            "{:.0}/{:.0} s, {settled} tasks",
                            elapsed.as_secs_f64(),
                            d.as_secs_f64()
                        ));
                    }
                }
            }
        });
        Self {
            bar,
            ticker: Some(ticker),
        }
    }

    /// Stops and clears the bar.
    pub fn finish(self) {
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
        self.bar.finish_and_clear();
    }
}
