//! How long each model runs: how many timed runs to make (a fixed number, or until a budget is
//! spent), the median and spread of a sample, the overhead of the rewritten model, and the
//! machine the runs were made on, so that two reports from different machines are not taken for
//! one another.

use serde::Serialize;

/// Fewest timed runs per model when timing to a budget.
pub const MIN_RUNS: usize = 3;
/// Most timed runs per model when timing to a budget.
pub const MAX_RUNS: usize = 20;
/// Time spent in the timed runs of one model after which timing to a budget stops, in ms.
pub const BUDGET_MS: f64 = 1000.0;

/// How many timed runs each model gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runs {
    /// At least [`MIN_RUNS`], then more until [`BUDGET_MS`] is spent or [`MAX_RUNS`] are made.
    #[default]
    Budget,
    /// Exactly this many (at least 1).
    Fixed(usize),
}

impl Runs {
    /// Whether to make another run after `done` runs that took `spent_ms` in all.
    pub fn more(self, done: usize, spent_ms: f64) -> bool {
        match self {
            Runs::Fixed(n) => done < n.max(1),
            Runs::Budget => done < MIN_RUNS || (done < MAX_RUNS && spent_ms < BUDGET_MS),
        }
    }
}

/// The distribution of one model's timed runs, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Spread {
    pub runs: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    /// First and third quartiles (medians of the lower and upper halves).
    pub q1_ms: f64,
    pub q3_ms: f64,
    pub max_ms: f64,
}

/// Median of a sorted sample (mean of the two middle values if even; 0 if empty).
fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Spread {
    /// The spread of `times` (sorted in place).
    pub fn of(times: &mut [f64]) -> Spread {
        times.sort_by(|a, b| a.total_cmp(b));
        let n = times.len();
        let half = n / 2;
        Spread {
            runs: n,
            median_ms: median_sorted(times),
            min_ms: times.first().copied().unwrap_or(0.0),
            q1_ms: median_sorted(&times[..half.max(usize::from(n == 1))]),
            q3_ms: median_sorted(&times[(n - half).min(n.saturating_sub(1))..]),
            max_ms: times.last().copied().unwrap_or(0.0),
        }
    }
}

/// The machine the models were timed on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// The CPU's model name, or "unknown" where the system does not say.
    pub cpu: String,
    /// Logical CPUs available to the process, when known.
    pub cores: Option<usize>,
    /// Threads tract ran each model on.
    pub threads: usize,
}

impl Machine {
    /// This machine: the CPU named in /proc/cpuinfo (where there is one), the CPUs available,
    /// the threads of tract's executor.
    pub fn here() -> Machine {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine {
            cpu: cpu_name(&info).unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().ok().map(usize::from),
            threads: tract_threads(),
        }
    }
}

/// The CPU's name in the text of /proc/cpuinfo: "model name" (x86), "Hardware", "cpu model" or
/// "Model" (ARM, MIPS).
fn cpu_name(info: &str) -> Option<String> {
    ["model name", "Hardware", "cpu model", "Model"]
        .iter()
        .find_map(|key| {
            info.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
            })
        })
}

/// Threads tract's executor runs a model on: 1 unless it was given a thread pool.
fn tract_threads() -> usize {
    use tract_onnx::prelude::tract_linalg::multithread::{current_tract_executor, Executor};
    if matches!(current_tract_executor(), Executor::SingleThread) {
        1
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

/// Both models' timings and where they were made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    pub before: Spread,
    /// None when the rewritten model could not be run.
    pub after: Option<Spread>,
    /// (median after − median before) / median before, in percent.
    pub overhead_pct: Option<f64>,
    pub machine: Machine,
}

impl Timing {
    pub fn new(before: Spread, after: Option<Spread>) -> Timing {
        let overhead_pct = after
            .filter(|_| before.median_ms > 0.0)
            .map(|a| 100.0 * (a.median_ms - before.median_ms) / before.median_ms);
        Timing {
            before,
            after,
            overhead_pct,
            machine: Machine::here(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_samples() {
        let s = Spread::of(&mut [5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!(
            (s.runs, s.median_ms, s.min_ms, s.max_ms),
            (5, 3.0, 1.0, 5.0)
        );
        assert_eq!((s.q1_ms, s.q3_ms), (1.5, 4.5));
        let s = Spread::of(&mut [4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median_ms, s.q1_ms, s.q3_ms), (2.5, 1.5, 3.5));
        let s = Spread::of(&mut [7.0]);
        assert_eq!(
            (s.median_ms, s.q1_ms, s.q3_ms, s.min_ms),
            (7.0, 7.0, 7.0, 7.0)
        );
        assert_eq!(Spread::of(&mut []).median_ms, 0.0);
    }

    #[test]
    fn budget_makes_between_min_and_max_runs() {
        // A slow model: MIN_RUNS runs whatever they took.
        assert!(Runs::Budget.more(2, 5_000.0));
        assert!(!Runs::Budget.more(3, 3_000.0));
        // A fast model: runs until the budget, at most MAX_RUNS.
        assert!(Runs::Budget.more(10, 100.0));
        assert!(!Runs::Budget.more(MAX_RUNS, 100.0));
        assert!(!Runs::Budget.more(20, BUDGET_MS));
        // A fixed number, whatever the time.
        assert!(Runs::Fixed(7).more(6, 1e9));
        assert!(!Runs::Fixed(7).more(7, 0.0));
        assert!(Runs::Fixed(0).more(0, 0.0));
    }

    #[test]
    fn cpu_names_from_cpuinfo() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_name(x86).as_deref(), Some("AMD EPYC 7B13"));
        let arm = "processor\t: 0\nBogoMIPS\t: 48.00\nModel\t\t: Raspberry Pi 4 Model B\n";
        assert_eq!(cpu_name(arm).as_deref(), Some("Raspberry Pi 4 Model B"));
        assert_eq!(cpu_name(""), None);
    }

    #[test]
    fn overhead_is_relative_to_the_original() {
        let at = |m: f64| Spread {
            median_ms: m,
            ..Spread::default()
        };
        let t = Timing::new(at(50.0), Some(at(51.0)));
        assert!((t.overhead_pct.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(Timing::new(at(50.0), None).overhead_pct, None);
        assert!(t.machine.threads >= 1);
    }
}
