//! The `se-inject` command: parses flags, calls the library, prints the report.
//! Exit codes: 0 done; 1 bad input or a failure; 2 usage error; 3 validation failed.

mod cli;

use se_inject::errors::{error_line, one_line, panic_message};
use std::process::ExitCode;

fn main() -> ExitCode {
    let (cfg, format) = cli::Cli::parse_args().into_config();
    // A panic, ours or a dependency's, ends as one error line below, not a backtrace.
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| se_inject::run(&cfg));
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
    match format {
        cli::Format::Json => println!("{}", r.to_json()),
        cli::Format::Text => {
            let mut out = r.header();
            out.push('\n');
            match cfg.report {
                Some(se_inject::ReportKind::Stages) => out.push_str(&r.blocks_table()),
                // The summary below carries the MAC counts.
                Some(se_inject::ReportKind::Macs) => {}
                Some(se_inject::ReportKind::All) => {
                    out.push_str(&r.params_table());
                    out.push('\n');
                    out.push_str(&r.blocks_table());
                }
                _ => out.push_str(&r.params_table()),
            }
            out.push('\n');
            out.push_str(&r.summary());
            print!("{out}");
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
