//! What the user chooses: the position, the SE block's shape and initialisation, the stages.

/// Where SE goes relative to a block; `site::rule` says where for each kind of block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// On the transformation's output: before the merge of a residual block or ShuffleNet unit,
    /// after the Concat of an inception module or dense block, after a plain block's activation.
    Standard,
    /// On the block input, read only by the transformation (the branch's half of a ShuffleNet
    /// unit); the shortcut keeps the raw input.
    Pre,
    /// After the block's output and the activation that directly follows it.
    Post,
    /// On the shortcut, after its projection when there is one (the other half of a ShuffleNet
    /// unit); inception, dense and plain blocks have none.
    Identity,
    /// After the transformation's first spatial convolution and its activation (SE_3×3):
    /// residual, inverted-residual and ShuffleNet blocks only.
    Inner,
}

impl Position {
    /// Every position, in the order the README's table lists them.
    pub const ALL: [Position; 5] = [
        Position::Standard,
        Position::Pre,
        Position::Post,
        Position::Identity,
        Position::Inner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Position::Standard => "standard",
            Position::Pre => "pre",
            Position::Post => "post",
            Position::Identity => "identity",
            Position::Inner => "inner",
        }
    }
}

/// How the new weights start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// He-normal (fan-in) weights, zero biases.
    Random,
    /// Gate saturated at 1: the model computes what it computed before.
    Identity,
}

/// The squeeze operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Squeeze {
    Avg,
    Max,
    None,
}

/// The excitation gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    Sigmoid,
    HardSigmoid,
    Tanh,
    Relu,
}

/// Which blocks take SE where blocks nest (a CSP module and its residual units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The outermost blocks: a module takes SE, its units do not.
    #[default]
    Module,
    /// The innermost blocks: units take SE, a module holding units does not.
    Unit,
    /// Every block, modules and units.
    All,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Module => "module",
            Level::Unit => "unit",
            Level::All => "all",
        }
    }
}

/// Everything that shapes the SE blocks.
#[derive(Debug, Clone)]
pub struct SeOptions {
    pub ratio: usize,
    pub position: Position,
    pub bias: bool,
    pub init: Init,
    pub seed: u64,
    pub squeeze: Squeeze,
    pub gate: Gate,
    /// 1-based stage numbers to inject into; None for all.
    pub stages: Option<Vec<usize>>,
    /// Inject even where an SE block is already present.
    pub force: bool,
    /// Which blocks may take SE, by name.
    pub names: Names,
    /// Feature maps named to take SE without block detection (`--at`); None to detect.
    pub at: Option<Vec<String>>,
    /// Where blocks nest, which of them take SE.
    pub level: Level,
}

/// A selection of blocks by name (`--only`, `--exclude`): a block takes SE when its name
/// matches `only` (when given) and does not match `exclude` (when given). A pattern matches
/// anywhere in the name unless anchored.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub only: Option<regex::Regex>,
    pub exclude: Option<regex::Regex>,
}

impl Names {
    /// Whether block `name` is selected.
    pub fn selects(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|r| r.is_match(name))
            && !self.exclude.as_ref().is_some_and(|r| r.is_match(name))
    }
}

impl Default for SeOptions {
    /// The command line's defaults: r = 16, standard, with biases, random init, seed 0, average
    /// squeeze, sigmoid gate, every stage, modules over their units.
    fn default() -> Self {
        Self {
            ratio: 16,
            position: Position::Standard,
            bias: true,
            init: Init::Random,
            seed: 0,
            squeeze: Squeeze::Avg,
            gate: Gate::Sigmoid,
            stages: None,
            force: false,
            names: Names::default(),
            at: None,
            level: Level::Module,
        }
    }
}
