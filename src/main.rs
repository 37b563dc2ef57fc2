//! The `se-inject` command: parses flags, calls the library, prints the report.
//! Exit codes: 0 done; 1 bad input or a failure; 2 usage error; 3 validation failed.

mod cli;

use se_inject::errors::{error_line, panic_message, printable_line};
use se_inject::progress::{Phase, Which};
use se_inject::shown::shown_path;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set when tract starts on the original model, and when the run leaves validation.
static VALIDATING: AtomicBool = AtomicBool::new(false);
static VALIDATED: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let (cfg, format) = cli::Cli::parse_args().into_config();
    // A panic, ours or a dependency's, ends as one error line below, not a backtrace.
    std::panic::set_hook(Box::new(|_| {}));
    let shown = std::io::stderr().is_terminal();
    clean_up_on_signals();
    watch_validation(cfg.budget.seconds, shown);
    let result = std::panic::catch_unwind(|| se_inject::run_reporting(&cfg, &|p| status(shown, p)));
    VALIDATED.store(true, Ordering::SeqCst);
    if shown {
        // Clears the status line before the report and any error.
        eprint!("\r\x1b[2K");
    }
    let outcome = match result {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            eprintln!("se-inject: error: {}", error_line(&e));
            return ExitCode::from(1);
        }
        Err(payload) => {
            let what = panic_message(&*payload).unwrap_or_default();
            eprintln!(
                "se-inject: error: internal failure while processing '{}': {}",
                shown_path(&cfg.model),
                printable_line(&what)
            );
            return ExitCode::from(1);
        }
    };
    let r = &outcome.report;
    let text = match format {
        cli::Format::Json => format!("{}\n", r.to_json()),
        cli::Format::Text => r.to_text(cfg.report),
    };
    if let Err(e) = print(&text) {
        // A reader that went away (`| head`) ends the output quietly; a full device is an error.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!(
                "se-inject: error: cannot write the report to standard output: {}",
                printable_line(&e.to_string())
            );
            return ExitCode::from(1);
        }
    }
    if outcome.validation_failed() {
        let reason = r
            .validation
            .as_ref()
            .and_then(|v| v.reason.clone())
            .unwrap_or_default();
        eprintln!(
            "se-inject: validation failed, nothing written: {}",
            printable_line(&reason)
        );
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

/// On SIGINT, SIGTERM, SIGHUP (the terminal closed) or SIGQUIT, removes the temporary files
/// being written (after an output pair that is moving into place has moved) and exits as the
/// signal would (128 + its number).
fn clean_up_on_signals() {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        let Ok(mut signals) =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
        else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let _held = se_inject::onnx::commit::remove_temporaries();
                // Not eprintln!, which panics when standard error is gone (a terminal that hung
                // up): the exit must follow whatever the write does.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\nse-inject: interrupted; its temporary files removed"
                );
                std::process::exit(128 + signal);
            }
        });
    }
}

/// Stops the process with one error line when validation runs longer than `seconds`: tract
/// cannot be interrupted, and nothing has been written while it runs.
fn watch_validation(seconds: u64, shown: bool) {
    std::thread::spawn(move || {
        let tick = Duration::from_millis(50);
        while !VALIDATING.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
        }
        let start = Instant::now();
        while !VALIDATED.load(Ordering::SeqCst) {
            if start.elapsed() > Duration::from_secs(seconds) {
                if shown {
                    eprint!("\r\x1b[2K");
                }
                eprintln!(
                    "se-inject: error: validation in tract did not finish within {seconds} s \
                     (--validate-timeout raises it, --no-validate skips validation); nothing written"
                );
                std::process::exit(1);
            }
            std::thread::sleep(tick);
        }
    });
}

/// Shows `phase` on the status line of a terminal's standard error when `shown`, and marks
/// where validation starts and ends for the watch on its time.
fn status(shown: bool, phase: Phase) {
    match phase {
        Phase::TractLoad(Which::Original) => VALIDATING.store(true, Ordering::SeqCst),
        Phase::Write => VALIDATED.store(true, Ordering::SeqCst),
        _ => {}
    }
    if shown {
        eprint!("\r\x1b[2Kse-inject: {phase}…");
    }
}

/// Writes `text` to standard output, reporting failures instead of panicking on them.
fn print(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
