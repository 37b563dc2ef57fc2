//! The cost of a rewrite against copying the file: generates ResNet-50-sized, VGG-16-sized and
//! over-2 GB models (no download), then for each times `cp` of its files and the built
//! `se-inject` as a child process (`--no-validate`, `--report params`, the full run with
//! validation), with each child's peak resident memory, and each phase of a full run in process.
//!
//! `cargo bench --bench pipeline [-- [--skip-wide] [--runs N] [MODEL.onnx...]]`: given models
//! are measured instead of the generated ones. Medians of N runs (3) for the quick commands, one
//! full run. Linux: peak memory comes from `wait4`.

mod synth;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// One child process: wall time, peak resident memory, and its error line when it failed.
struct Measured {
    secs: f64,
    peak_bytes: Option<u64>,
    error: Option<String>,
}

/// Runs `cmd` to completion as a child; its wall time and peak resident memory. What earlier
/// runs wrote is flushed to disk first, so that no run pays for another's writes.
fn measure(cmd: &mut Command) -> anyhow::Result<Measured> {
    // Where there is no `sync` command, runs simply share the disk's backlog.
    let _ = Command::new("sync").status();
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let (ok, peak_bytes) = wait(&mut child)?;
    let secs = start.elapsed().as_secs_f64();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err)?;
    }
    let error = (!ok).then(|| err.lines().last().unwrap_or("failed").to_string());
    Ok(Measured {
        secs,
        peak_bytes,
        error,
    })
}

/// Waits for `child`: whether it succeeded, and its peak resident memory where known.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn wait(child: &mut std::process::Child) -> anyhow::Result<(bool, Option<u64>)> {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; the pid is our own unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    anyhow::ensure!(pid > 0, "wait4 failed: {}", std::io::Error::last_os_error());
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((ok, Some(usage.ru_maxrss as u64 * 1024)))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn wait(child: &mut std::process::Child) -> anyhow::Result<(bool, Option<u64>)> {
    Ok((child.wait()?.success(), None))
}

/// The median of `runs` measurements of `cmd` (peak memory: the largest).
fn median_of(runs: usize, mut cmd: impl FnMut() -> Command) -> anyhow::Result<Measured> {
    let mut all = Vec::new();
    for _ in 0..runs {
        all.push(measure(&mut cmd())?);
    }
    let peak = all.iter().filter_map(|m| m.peak_bytes).max();
    all.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    let mut mid = all.swap_remove(all.len() / 2);
    mid.peak_bytes = peak;
    Ok(mid)
}

/// The model file and its data file when it has one.
fn files_of(model: &Path) -> Vec<PathBuf> {
    std::iter::once(model.to_path_buf())
        .chain(se_inject::onnx::io::data_files_beside(model))
        .collect()
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))
}

/// `m`'s time, its ratio to `base` seconds, its peak memory and that over `size` bytes.
fn row(what: &str, m: &Measured, base: Option<f64>, size: u64) {
    if let Some(e) = &m.error {
        println!("  {what:<22} failed after {:.2} s: {e}", m.secs);
        return;
    }
    let ratio = base.map_or(String::new(), |b| format!(" ({:.2}× cp)", m.secs / b));
    let rss = m.peak_bytes.map_or(String::new(), |p| {
        format!(", {:.2}× the files", p as f64 / size as f64)
    });
    println!(
        "  {what:<22} {:>8.3} s{ratio:<13} peak {}{rss}",
        m.secs,
        mib(m.peak_bytes)
    );
}

/// Each phase of a full run, in seconds, printed on one line.
fn phases(model: &Path, out: &Path) -> anyhow::Result<()> {
    let cfg = se_inject::Config {
        model: model.to_path_buf(),
        output: Some(out.to_path_buf()),
        se: se_inject::rewrite::SeOptions::default(),
        report: None,
        input_shape: None,
        validate: true,
        time_runs: None,
        plot: None,
        budget: se_inject::validate::Budget::default(),
    };
    let marks = std::cell::RefCell::new(Vec::new());
    se_inject::run_reporting(&cfg, &|p| marks.borrow_mut().push((p, Instant::now())))?;
    let end = Instant::now();
    let marks = marks.into_inner();
    let ends = marks.iter().skip(1).map(|m| m.1).chain([end]);
    let times: Vec<String> = marks
        .iter()
        .zip(ends)
        .map(|((p, t), e)| format!("{p} {:.3}", (e - *t).as_secs_f64()))
        .collect();
    println!("  phases (s): {}", times.join(", "));
    Ok(())
}

/// This benchmark run as a child with `args`, its output shown: the work that grows a process
/// (generating weights, a run in process) stays out of the parent, whose peak memory every
/// child it starts would otherwise inherit.
fn in_child(args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let status = Command::new(std::env::current_exe()?).args(args).status()?;
    anyhow::ensure!(status.success(), "{args:?} failed");
    Ok(())
}

/// Measures one model: `cp`, the three commands, the phases.
fn bench(model: &Path, runs: usize, dir: &Path) -> anyhow::Result<()> {
    let bin = env!("CARGO_BIN_EXE_se-inject");
    let files = files_of(model);
    let size: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    println!("{} ({:.0} MB)", model.display(), size as f64 / 1e6);
    let out = dir.join("out.onnx");
    let clean = || {
        let _ = std::fs::remove_file(&out);
        for data in se_inject::onnx::io::data_files_beside(&out) {
            let _ = std::fs::remove_file(data);
        }
    };
    let cp = median_of(runs, || {
        clean();
        let mut c = Command::new("cp");
        c.args(&files).arg(dir);
        c
    })?;
    row("cp", &cp, None, size);
    let se = |args: &'static [&'static str]| {
        let out = out.clone();
        move || {
            let mut c = Command::new(bin);
            c.arg(model).arg("-o").arg(&out).args(args);
            c
        }
    };
    let base = Some(cp.secs);
    clean();
    row(
        "--no-validate",
        &median_of(runs, se(&["--no-validate"]))?,
        base,
        size,
    );
    let report = || {
        let mut c = Command::new(bin);
        c.arg(model).args(["--report", "params"]);
        c
    };
    row("--report params", &median_of(runs, report)?, None, size);
    clean();
    let full = measure(&mut se(&[])())?;
    row("full run (validation)", &full, None, size);
    if full.error.is_none() {
        clean();
        in_child(&["--phases".as_ref(), model.as_os_str(), out.as_os_str()])?;
    }
    clean();
    Ok(())
}

/// Writes the synthetic model named `name` to `path`.
fn generate(name: &str, path: &Path) -> anyhow::Result<()> {
    let kind = synth::Kind::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| anyhow::anyhow!("no synthetic model '{name}'"))?;
    let start = Instant::now();
    let weights = synth::write(kind, path)?;
    println!(
        "generated {} ({:.0} MB of weights) in {:.1} s",
        path.display(),
        weights as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--generate") => return generate(&args[1], Path::new(&args[2])),
        Some("--phases") => return phases(Path::new(&args[1]), Path::new(&args[2])),
        _ => {}
    }
    let flag = |f: &str| args.iter().any(|a| a == f);
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(3);
    let given: Vec<PathBuf> = args
        .iter()
        .filter(|a| a.ends_with(".onnx"))
        .map(PathBuf::from)
        .collect();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir)?;
    let models = if given.is_empty() {
        let mut kinds = vec![synth::Kind::ResNet50, synth::Kind::Vgg16];
        if !flag("--skip-wide") {
            kinds.push(synth::Kind::WideVgg);
        }
        let mut paths = Vec::new();
        for kind in kinds {
            let path = dir.path().join(format!("{}.onnx", kind.name()));
            in_child(&[
                "--generate".as_ref(),
                kind.name().as_ref(),
                path.as_os_str(),
            ])?;
            paths.push(path);
        }
        paths
    } else {
        given
    };
    for model in &models {
        bench(model, runs, &out_dir)?;
    }
    Ok(())
}
