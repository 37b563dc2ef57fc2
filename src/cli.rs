//! Command-line flags, parsed by clap into a validated [`Config`].

use clap::{CommandFactory, FromArgMatches, Parser};
use se_inject::rewrite::{Gate, Init, Level, Position, SeOptions, Squeeze};
use se_inject::{Config, ReportKind};
use std::path::PathBuf;

/// Output format of the report on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Splice Squeeze-and-Excitation blocks into a trained ONNX CNN, report what they cost against
/// the paper's (2/r)·Σ N_s·C_s², and prove the result runs in tract.
#[derive(Debug, Parser)]
#[command(name = "se-inject", version)]
pub struct Cli {
    /// The ONNX model (its external data file, if any, beside it).
    pub model: PathBuf,
    /// Reduction ratio r (hidden width max(1, round(C / r))).
    #[arg(short, long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub ratio: u32,
    /// Where SE goes in each block.
    #[arg(short, long, value_enum, default_value_t = Position::Standard)]
    pub position: Position,
    /// Where blocks nest (a CSP module holding residual units): the modules take SE, their
    /// units, or both.
    #[arg(long, value_enum, default_value_t = Level::Module)]
    pub level: Level,
    /// Where to write the rewritten model [default: <stem>.se.onnx beside MODEL].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// `all`, or 1-based stage numbers as the report prints them: 1,2,4.
    #[arg(long, default_value = "all", value_parser = parse_stages)]
    pub stages: StageSelection,
    /// How the SE weights start: random (He-normal), or identity (gate saturated at 1, so the
    /// model computes what it computed before; needs biases).
    #[arg(long, value_enum, default_value_t = Init::Random)]
    pub init: Init,
    /// Seed for random init (and the validation input): same input, options and seed give the
    /// same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// FC layers without bias (the paper's ablation setting).
    #[arg(long)]
    pub no_bias: bool,
    /// Squeeze operator (paper Tables 11 and 16): global average, global max, or none (the FCs
    /// then run as 1×1 convolutions on the full map).
    #[arg(long, value_enum, default_value_t = Squeeze::Avg)]
    pub squeeze: Squeeze,
    /// Excitation gate (paper Table 12). Each reaches exactly 1, so --init identity keeps the
    /// model's function with any of them (tract's sigmoid stops at 0.9999995).
    #[arg(long, value_enum, default_value_t = Gate::Sigmoid)]
    pub gate: Gate,
    /// Print this report; without -o nothing is written.
    #[arg(long, value_enum)]
    pub report: Option<ReportKind>,
    /// Format of what is printed on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Concrete input shape for symbolic dims, e.g. 1,3,224,224.
    #[arg(long, value_parser = parse_shape)]
    pub input_shape: Option<::std::vec::Vec<usize>>,
    /// Skip the run in tract.
    #[arg(long)]
    pub no_validate: bool,
    /// Time each model in tract this many runs [default: at least 3, then until about 1 s
    /// per model is spent, at most 20].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub time_runs: Option<u32>,
    /// Most nodes either model may have for validation.
    #[arg(long, value_name = "N", default_value_t = se_inject::validate::Budget::default().nodes)]
    pub validate_nodes: usize,
    /// Most seconds validation may run before the run stops (nothing written).
    #[arg(long, value_name = "SECONDS", default_value_t = se_inject::validate::Budget::default().seconds,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub validate_timeout: u64,
    /// Draw the added parameters and compute per stage beside the original's as SVG; without
    /// -o only the picture is written.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Inject even where an SE block is already present.
    #[arg(long)]
    pub force: bool,
    /// Only blocks whose name matches this regular expression take SE (names as
    /// `--report stages` lists them; unanchored).
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub only: Option<regex::Regex>,
    /// Blocks whose name matches this regular expression take no SE.
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub exclude: Option<regex::Regex>,
    /// Put SE exactly on these feature maps (tensor names, comma-separated), each for every
    /// reader, without detecting blocks.
    #[arg(long, value_name = "TENSOR,...", value_delimiter = ',',
          conflicts_with_all = ["position", "only", "exclude"])]
    pub at: Option<Vec<String>>,
}

/// A regular expression over block names, at most 1,000 bytes and compiled within regex's
/// default size limit.
fn parse_regex(s: &str) -> Result<regex::Regex, String> {
    if s.len() > 1000 {
        return Err("a pattern of more than 1,000 bytes".into());
    }
    regex::Regex::new(s).map_err(|e| {
        // The parser's message ends in its one-line reason, after a picture of the pattern.
        let text = e.to_string();
        let reason = text
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        se_inject::shown::shown(reason).into_owned()
    })
}

/// `--stages`: every stage, or a list of 1-based numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageSelection {
    All,
    Some(Vec<usize>),
}

fn parse_stages(s: &str) -> Result<StageSelection, String> {
    if s.trim() == "all" {
        return Ok(StageSelection::All);
    }
    let v: Result<Vec<usize>, String> = s
        .split(',')
        .map(|p| match p.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "'{}' is not a stage number (1, 2, ...)",
                se_inject::shown::shown(p)
            )),
        })
        .collect();
    Ok(StageSelection::Some(v?))
}

fn parse_shape(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|p| match p.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "'{}' is not a positive dimension",
                se_inject::shown::shown(p)
            )),
        })
        .collect()
}

impl Cli {
    /// Parses the command line; the long help (`--help`) ends with the kinds of block and the
    /// placement table.
    pub fn parse_args() -> Self {
        let cmd = Cli::command().after_long_help(se_inject::rewrite::site::table_text());
        let matches = cmd.get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// Turns the flags into a [`Config`]; a conflict between flags exits with a usage error.
    pub fn into_config(self) -> (Config, Format) {
        if self.init == Init::Identity && self.no_bias {
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--init identity needs biases (the gate is held at 1 by the second FC's bias); drop --no-bias",
                )
                .exit();
        }
        let se = SeOptions {
            ratio: self.ratio as usize,
            position: self.position,
            bias: !self.no_bias,
            init: self.init,
            seed: self.seed,
            squeeze: self.squeeze,
            gate: self.gate,
            stages: match self.stages {
                StageSelection::All => None,
                StageSelection::Some(v) => Some(v),
            },
            force: self.force,
            names: se_inject::rewrite::Names {
                only: self.only,
                exclude: self.exclude,
            },
            at: self.at,
            level: self.level,
        };
        let cfg = Config {
            model: self.model,
            output: self.output,
            se,
            report: self.report,
            input_shape: self.input_shape,
            validate: !self.no_validate,
            time_runs: self.time_runs.map(|n| n as usize),
            plot: self.plot,
            budget: se_inject::validate::Budget {
                nodes: self.validate_nodes,
                seconds: self.validate_timeout,
            },
        };
        (cfg, self.format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stage_lists() {
        assert_eq!(parse_stages("all"), Ok(StageSelection::All));
        assert_eq!(
            parse_stages("1,2,4"),
            Ok(StageSelection::Some(vec![1, 2, 4]))
        );
        assert!(parse_stages("0").is_err());
        assert!(parse_stages("x").is_err());
    }

    #[test]
    fn parses_shapes() {
        assert_eq!(parse_shape("1,3,224,224"), Ok(vec![1, 3, 224, 224]));
        assert!(parse_shape("1,0").is_err());
    }

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }
}
