//! The `se-inject` command: parses flags, calls the library, prints the report.
//! Exit codes: 0 done; 1 bad input or a failure; 2 usage error; 3 validation failed.

mod cli;

use se_inject::errors::{error_line, one_line, panic_message};
use se_inject::progress::Phase;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let (cfg, format) = cli::Cli::parse_args().into_config();
    // A panic, ours or a dependency's, ends as one error line below, not a backtrace.
    std::panic::set_hook(Box::new(|_| {}));
    let shown = std::io::stderr().is_terminal();
    let result = std::panic::catch_unwind(|| se_inject::run_reporting(&cfg, &|p| status(shown, p)));
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
                cfg.model.display(),
                one_line(&what)
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
            eprintln!("se-inject: error: cannot write the report to standard output: {e}");
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
            one_line(&reason)
        );
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

/// Shows `phase` on the status line of a terminal's standard error when `shown`.
fn status(shown: bool, phase: Phase) {
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
