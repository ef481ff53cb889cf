//! Progress per source: an indicatif bar on a terminal (stderr), plain lines every two
//! seconds otherwise. The total is `DBSIZE` of the source when the run starts, so the ETA
//! is an estimate (keys expire, `--match` selects a part).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;

/// Every source's progress display.
#[derive(Debug)]
pub(crate) struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub(crate) fn new() -> Self {
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { multi }
    }

    /// A display for one source; `total` is the source's DBSIZE, `done` keys already
    /// done (a resumed job).
    pub(crate) fn source(&self, name: &str, verb: &str, total: u64, done: u64) -> SourceProgress {
        self.source_of(name, verb, total, done, "DBSIZE")
    }

    /// [`Progress::source`] with `of` naming where `total` comes from (`DBSIZE`, `the file`).
    pub(crate) fn source_of(
        &self,
        name: &str,
        verb: &str,
        total: u64,
        done: u64,
        of: &str,
    ) -> SourceProgress {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(total.max(done)));
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:>10}} [{{bar:30}}] {{pos}}/{{len}} keys (of {of}) {{msg}} ETA ~{{eta}} (estimate)"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(name.to_owned());
            bar.set_position(done);
            bar
        });
        SourceProgress {
            bar,
            name: name.to_owned(),
            verb: verb.to_owned(),
            of: of.to_owned(),
            total,
            start: Instant::now(),
            base: done,
            last: Mutex::new(Instant::now()),
        }
    }
}

/// One source's progress.
#[derive(Debug)]
pub(crate) struct SourceProgress {
    bar: Option<ProgressBar>,
    name: String,
    verb: String,
    /// Where `total` comes from.
    of: String,
    total: u64,
    start: Instant,
    /// Keys done before this run started.
    base: u64,
    last: Mutex<Instant>,
}

impl SourceProgress {
    /// `keys` done so far (this job), `bytes` copied so far.
    pub(crate) fn update(&self, keys: u64, bytes: u64) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = keys.saturating_sub(self.base) as f64 / secs;
        let bps = bytes as f64 / secs;
        if let Some(bar) = &self.bar {
            if keys > bar.length().unwrap_or(0) {
                bar.set_length(keys);
            }
            bar.set_position(keys);
            bar.set_message(format!("{rate:.0} keys/s {:.1} MB/s", bps / 1e6));
            return;
        }
        let mut last = self.last.lock();
        if last.elapsed() < Duration::from_secs(2) {
            return;
        }
        *last = Instant::now();
        let left = self.total.saturating_sub(keys);
        let eta = if rate > 0.0 {
            format!("~{:.0} s (estimate from {})", left as f64 / rate, self.of)
        } else {
            "unknown".into()
        };
        eprintln!(
            "{}: {} {keys} of ~{} keys, {rate:.0} keys/s, {:.1} MB/s, ETA {eta}",
            self.name,
            self.verb,
            self.total,
            bps / 1e6
        );
    }

    pub(crate) fn finish(&self, keys: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(keys);
                bar.finish();
            }
            None => eprintln!(
                "{}: {} {keys} keys in {:.1} s",
                self.name,
                self.verb,
                self.start.elapsed().as_secs_f64()
            ),
        }
    }
}
