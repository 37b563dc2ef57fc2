//! Moving a saved output into place. Files are written as temporaries in the target folder; once
//! all are complete, each is renamed to its place, the model last, and the data files an earlier
//! output at that path left behind are removed. A data file is named by the fingerprint of the
//! model file that refers to it ([`super::io::data_path_for`]), so its rename never replaces data
//! the current model file does not fit: a process that dies at any point leaves either the old
//! pair or the new one in place (and at worst a file nothing refers to), never a model beside
//! another model's data.
//!
//! A temporary file is named `.se-inject-XXXXXX.tmp` and locked (flock) by the run writing it for
//! as long as it writes it. One that nobody holds is the leftover of a run that was killed, and the
//! next run that puts an output in that folder removes it.

use super::io::{data_files_beside, files_beside, folder_of};
use anyhow::{anyhow, Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tempfile::{NamedTempFile, TempPath};

/// Temporary files this process is writing, for [`remove_temporaries`]. Its lock is held while
/// finished files move into place, so an interruption never falls between two of the moves.
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn temporaries() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporary files being written, once no output is moving into place, and keeps
/// any new one from being moved there: for a front end interrupted by a signal, just before it
/// exits. Returns the guard, which the caller holds until it exits.
pub fn remove_temporaries() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    let mut held = temporaries();
    for p in held.drain(..) {
        let _ = std::fs::remove_file(p);
    }
    held
}

/// How temporary files are named: `<PREFIX>XXXXXX<SUFFIX>`.
const TEMP_PREFIX: &str = ".se-inject-";
const TEMP_SUFFIX: &str = ".tmp";

/// A new temporary file in `dir`, locked as long as it is open, created with the mode of any new
/// file (0666 less the umask) rather than the owner-only mode temporary files get, so the renamed
/// result looks like a file written in place. It is created and locked under the folder's lock,
/// so no other run's sweep sees it unlocked.
pub(super) fn create_temp(dir: &Path) -> Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut held = temporaries();
    let _folder = FolderLock::take_dir(dir);
    let tmp = builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in '{}'", dir.display()))?;
    lock(tmp.as_file(), Wait::No);
    held.push(tmp.path().to_path_buf());
    Ok(tmp)
}

/// One step of putting an output in place.
#[derive(Debug)]
enum Step {
    /// A finished temporary file renamed to its place.
    Move { from: TempPath, to: PathBuf },
    /// A data file an earlier output at this path left, which nothing written refers to, or a
    /// temporary file a killed run left.
    Remove(PathBuf),
}

/// Puts the finished files `files` (the output model last) in place at `out` as one step with
/// respect to [`remove_temporaries`] and to other runs writing into the same folder (which wait
/// for the folder's lock). When a move fails, the files already moved to new names are removed
/// again, which leaves the earlier output as it was. `read` lists the files this run reads,
/// which are never removed.
pub(super) fn commit(
    files: Vec<(NamedTempFile, PathBuf)>,
    out: &Path,
    read: &[PathBuf],
) -> Result<()> {
    let mut held = temporaries();
    let folder = FolderLock::take(out);
    let steps = plan(files, out, read, folder.held());
    run(steps, &mut held)
}

/// The steps putting `files` in place, in order: the moves, then, when `sweep` (the folder is
/// locked, so no other run is between its own moves or creating a temporary file), the removal
/// of every data file beside `out` that is not one of `files` or `read`, and of every temporary
/// file in the folder that no run holds. Without the lock those files are left: one may be the
/// data of another run's model.
fn plan(
    files: Vec<(NamedTempFile, PathBuf)>,
    out: &Path,
    read: &[PathBuf],
    sweep: bool,
) -> Vec<Step> {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let mut keep: Vec<PathBuf> = read.iter().map(|p| canonical(p)).collect();
    keep.extend(files.iter().map(|(_, to)| canonical(to)));
    // This run's own temporaries, unlocked once they become paths to move.
    keep.extend(files.iter().map(|(tmp, _)| canonical(tmp.path())));
    let mut steps: Vec<Step> = files
        .into_iter()
        .map(|(tmp, to)| Step::Move {
            from: tmp.into_temp_path(),
            to,
        })
        .collect();
    if sweep {
        let left = data_files_beside(out)
            .into_iter()
            .chain(abandoned_temporaries(out))
            .filter(|p| !keep.contains(&canonical(p)))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| !m.permissions().readonly()));
        steps.extend(left.map(Step::Remove));
    }
    steps
}

/// The temporary files in the folder of `out` that no run holds: those of runs that were killed.
fn abandoned_temporaries(out: &Path) -> Vec<PathBuf> {
    files_beside(out, |n| {
        n.starts_with(TEMP_PREFIX) && n.ends_with(TEMP_SUFFIX)
    })
    .into_iter()
    .filter(|p| File::open(p).is_ok_and(|f| lock(&f, Wait::No)))
    .collect()
}

/// Runs `steps` in order; see [`commit`].
fn run(steps: Vec<Step>, held: &mut Vec<PathBuf>) -> Result<()> {
    let mut created: Vec<PathBuf> = Vec::new();
    for step in steps {
        match step {
            Step::Move { from, to } => {
                held.retain(|p| *p != *from);
                let existed = std::fs::symlink_metadata(&to).is_ok();
                if let Err(e) = from.persist(&to) {
                    for p in &created {
                        let _ = std::fs::remove_file(p);
                    }
                    return Err(anyhow!(
                        "cannot move the written file into place at '{}': {}",
                        to.display(),
                        e.error
                    ));
                }
                if !existed {
                    created.push(to);
                }
            }
            // A file left behind costs space, not correctness: nothing refers to it.
            Step::Remove(p) => {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    Ok(())
}

/// An exclusive advisory lock on the folder a file is moved into, released when dropped; not
/// held where the folder cannot be opened or locks are not available.
struct FolderLock {
    folder: Option<File>,
}

impl FolderLock {
    /// The lock on the folder the file `to` goes into.
    fn take(to: &Path) -> FolderLock {
        FolderLock::take_dir(folder_of(to))
    }

    fn take_dir(dir: &Path) -> FolderLock {
        let folder = File::open(dir).ok().filter(|f| lock(f, Wait::Yes));
        FolderLock { folder }
    }

    fn held(&self) -> bool {
        self.folder.is_some()
    }
}

/// Whether taking a lock waits for another holder to release it.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    Yes,
    No,
}

/// Takes an exclusive advisory lock on `file` (a folder or a file); whether it is held. The lock
/// goes with the open file: it is released when the file is closed, or the process ends however
/// it ends.
fn lock(file: &File, wait: Wait) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::fd::AsRawFd;
        let how = match wait {
            Wait::Yes => libc::LOCK_EX,
            Wait::No => libc::LOCK_EX | libc::LOCK_NB,
        };
        // SAFETY: flock on a descriptor this File owns.
        unsafe { libc::flock(file.as_raw_fd(), how) == 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (file, wait);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A folder holding the pair an earlier run wrote, `m.onnx` → `m.onnx.<old>.data`, plus
    /// `m.onnx.data` as PyTorch names data files, and the temporaries of a new pair.
    struct Scene {
        dir: tempfile::TempDir,
        old_data: PathBuf,
        new_data: PathBuf,
    }

    const OLD: &[u8] = b"old model -> m.onnx.1111111111111111.data";
    const NEW: &[u8] = b"new model -> m.onnx.2222222222222222.data";

    impl Scene {
        fn new() -> Scene {
            let dir = tempfile::tempdir().unwrap();
            let old_data = dir.path().join("m.onnx.1111111111111111.data");
            let new_data = dir.path().join("m.onnx.2222222222222222.data");
            std::fs::write(dir.path().join("m.onnx"), OLD).unwrap();
            std::fs::write(&old_data, b"old weights").unwrap();
            std::fs::write(dir.path().join("m.onnx.data"), b"older weights").unwrap();
            Scene {
                dir,
                old_data,
                new_data,
            }
        }

        fn out(&self) -> PathBuf {
            self.dir.path().join("m.onnx")
        }

        fn temp(&self, bytes: &[u8]) -> NamedTempFile {
            let mut t = NamedTempFile::new_in(self.dir.path()).unwrap();
            t.write_all(bytes).unwrap();
            t
        }

        fn steps(&self) -> Vec<Step> {
            let files = vec![
                (self.temp(b"new weights"), self.new_data.clone()),
                (self.temp(NEW), self.out()),
            ];
            plan(files, &self.out(), &[], true)
        }

        /// The data file the model at `m.onnx` refers to holds that model's weights.
        fn consistent(&self) -> bool {
            let model = std::fs::read(self.out()).unwrap();
            let (data, weights) = if model == OLD {
                (&self.old_data, &b"old weights"[..])
            } else if model == NEW {
                (&self.new_data, &b"new weights"[..])
            } else {
                return false;
            };
            std::fs::read(data).is_ok_and(|b| b == weights)
        }
    }

    /// Stopping after any number of steps, as a killed process does, leaves a model whose data
    /// file holds its own weights; the whole plan leaves only the new pair.
    #[test]
    fn a_stop_after_any_step_leaves_a_whole_pair() {
        let n = Scene::new().steps().len();
        assert_eq!(n, 4, "two moves and two removals");
        for k in 0..=n {
            let scene = Scene::new();
            let mut steps = scene.steps();
            let rest = steps.split_off(k);
            run(steps, &mut Vec::new()).unwrap();
            // a killed process leaves its temporaries behind
            for step in rest {
                if let Step::Move { from, .. } = step {
                    let _ = from.keep();
                }
            }
            assert!(scene.consistent(), "stopped after {k} step(s)");
        }
        let scene = Scene::new();
        run(scene.steps(), &mut Vec::new()).unwrap();
        let mut left: Vec<_> = std::fs::read_dir(scene.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["m.onnx", "m.onnx.2222222222222222.data"]);
    }

    /// When the model cannot be moved, the data file moved before it is removed again and the
    /// earlier pair stays whole.
    #[test]
    fn a_failed_move_restores_the_earlier_pair() {
        let scene = Scene::new();
        let steps = scene.steps();
        let Step::Move { from, .. } = &steps[1] else {
            panic!("the model's move comes second")
        };
        std::fs::remove_file(from).unwrap();
        let err = run(steps, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("m.onnx"), "{err}");
        assert!(scene.consistent());
        assert_eq!(std::fs::read(scene.out()).unwrap(), OLD);
        assert!(!scene.new_data.exists());
        assert!(scene.dir.path().join("m.onnx.data").exists());
    }

    /// A temporary file nobody holds is a killed run's and is removed; one a run holds (its
    /// lock, taken when it was created, is held while it is open) is kept.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn temporaries_of_killed_runs_are_swept() {
        let scene = Scene::new();
        let d = scene.dir.path();
        let dead = d.join(".se-inject-dead01.tmp");
        std::fs::write(&dead, b"left by a killed run").unwrap();
        let held = d.join(".se-inject-held01.tmp");
        std::fs::write(&held, b"being written").unwrap();
        let holder = File::open(&held).unwrap();
        assert!(lock(&holder, Wait::No));
        let other = d.join(".other.tmp");
        std::fs::write(&other, b"not se-inject's").unwrap();
        let live = create_temp(d).unwrap();
        let name = live.path().file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX));
        assert_eq!(abandoned_temporaries(&scene.out()), [dead.as_path()]);
        run(scene.steps(), &mut Vec::new()).unwrap();
        assert!(!dead.exists() && held.exists() && other.exists() && live.path().exists());
        drop(holder);
        assert_eq!(abandoned_temporaries(&scene.out()), [held]);
        let steps = plan(vec![(live, scene.out())], &scene.out(), &[], false);
        assert_eq!(
            steps.len(),
            1,
            "without the folder's lock, nothing is swept"
        );
    }

    /// Another run holding the folder's lock (between its own moves, or creating a temporary
    /// file) holds up both a commit and the creation of a temporary file until it lets go, so
    /// two runs' moves never interleave and no sweep sees a temporary file before it is locked.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_folders_lock_holds_up_commits_and_new_temporaries() {
        let scene = Scene::new();
        let d = scene.dir.path().to_path_buf();
        let other_run = FolderLock::take_dir(&d);
        assert!(other_run.held());
        let files = vec![(scene.temp(NEW), scene.out())];
        let (out, read) = (scene.out(), Vec::new());
        let committing = std::thread::spawn(move || commit(files, &out, &read));
        let dir = d.clone();
        let creating = std::thread::spawn(move || create_temp(&dir).map(|t| t.keep()));
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(std::fs::read(scene.out()).unwrap(), OLD, "not moved yet");
        let temporaries = |d: &Path| files_beside(&d.join("x"), |n| n.starts_with(TEMP_PREFIX));
        assert!(temporaries(&d).is_empty(), "not created yet");
        drop(other_run);
        committing.join().unwrap().unwrap();
        assert!(creating.join().unwrap().is_ok());
        assert_eq!(std::fs::read(scene.out()).unwrap(), NEW);
        assert_eq!(temporaries(&d).len(), 1);
    }

    /// Files the run reads, files not writable and, without the folder's lock, every earlier
    /// data file are kept.
    #[test]
    fn the_sweep_spares_what_is_read_read_only_or_unlocked() {
        let scene = Scene::new();
        let legacy = scene.dir.path().join("m.onnx.data");
        let mut ro = std::fs::metadata(&scene.old_data).unwrap().permissions();
        ro.set_readonly(true);
        std::fs::set_permissions(&scene.old_data, ro).unwrap();
        let files = vec![(scene.temp(NEW), scene.out())];
        let removed = |steps: &[Step]| -> Vec<PathBuf> {
            steps
                .iter()
                .filter_map(|s| match s {
                    Step::Remove(p) => Some(p.clone()),
                    Step::Move { .. } => None,
                })
                .collect()
        };
        assert_eq!(
            removed(&plan(files, &scene.out(), &[], true)),
            [legacy.as_path()]
        );
        let files = vec![(scene.temp(NEW), scene.out())];
        assert!(removed(&plan(
            files,
            &scene.out(),
            std::slice::from_ref(&legacy),
            true
        ))
        .is_empty());
        let files = vec![(scene.temp(NEW), scene.out())];
        assert!(removed(&plan(files, &scene.out(), &[], false)).is_empty());
    }
}
