//! Moving a saved output into place. Files are written as temporaries in their target folders;
//! once all are complete, each is renamed to its place, a picture first, the model last, and then
//! the data file the model being replaced referred to is removed, when it is no longer anyone's.
//! A data file is named by the fingerprint of the model file that refers to it
//! ([`super::io::data_path_for`]), so its rename never replaces data the current model file does
//! not fit: a process that dies at any point leaves either the old pair or the new one in place
//! (and at worst a file nothing refers to), never a model beside another model's data.
//!
//! The sweep goes by references, not names: it removes only a data file that the replaced model
//! itself named, that has an output's data-file name, that no other file in the folder names (a
//! copy of the old model keeps it), and that belongs to the user the run creates files as.
//!
//! A temporary file is named `.se-inject-XXXXXX.tmp` and locked by the run writing it for as long
//! as it writes it. One that nobody holds is the leftover of a run that was killed, and the next
//! run that puts an output in that folder removes it (when it belongs to the same user).

use super::io::{files_beside, folder_of, is_data_name};
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
    let tmp = builder.tempfile_in(dir).map_err(|e| {
        // The error names the temporary file, which never existed: say what failed, not where.
        let text = e.to_string();
        let cause = text
            .rfind(" at path \"")
            .map_or(text.as_str(), |at| &text[..at]);
        anyhow!(
            "cannot create a file in '{}': {cause}",
            crate::shown::shown_path(dir)
        )
    })?;
    lock(tmp.as_file(), Wait::No);
    held.push(tmp.path().to_path_buf());
    Ok(tmp)
}

/// Creates and removes a temporary file in `dir`, to tell before any work that the folder can
/// be written; returns the owner that files created there get (on unix).
pub fn probe_folder(dir: &Path) -> Result<Option<u32>> {
    let tmp = create_temp(dir)?;
    let owner = tmp
        .as_file()
        .metadata()
        .ok()
        .and_then(|m| crate::targets::owner_of(&m));
    let path = tmp.path().to_path_buf();
    drop(tmp);
    temporaries().retain(|p| *p != path);
    Ok(owner)
}

/// A new temporary file in `dir` with `bytes` in it.
pub fn write_temp_file(dir: &Path, bytes: &[u8]) -> Result<NamedTempFile> {
    let mut tmp = create_temp(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)
        .with_context(|| format!("cannot write a file in '{}'", crate::shown::shown_path(dir)))?;
    Ok(tmp)
}

/// One step of putting an output in place.
#[derive(Debug)]
enum Step {
    /// A finished temporary file renamed to its place.
    Move { from: TempPath, to: PathBuf },
    /// A data file the output being replaced referred to, which nothing written or read and no
    /// other model file beside it refers to, or a temporary file a killed run left.
    Remove(PathBuf),
}

/// Where a commit sweeps: the output model replaced, and the files the run reads (never removed).
pub struct Sweep<'a> {
    pub out: &'a Path,
    pub read: &'a [PathBuf],
}

/// Puts the finished files `files` in place, in their order (a picture first, the output model
/// last), as one step with respect to [`remove_temporaries`] and to other runs writing into the
/// same folders (which wait for the folders' locks), then sweeps as [`plan`] says. When a move
/// fails, the files already moved to new names are removed again, which leaves the earlier
/// output as it was.
pub fn commit(files: Vec<(NamedTempFile, PathBuf)>, sweep: Option<Sweep<'_>>) -> Result<()> {
    let mut held = temporaries();
    let mut folders: Vec<PathBuf> = files
        .iter()
        .map(|(_, to)| {
            let dir = folder_of(to);
            dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
        })
        .collect();
    // One order for every run, so two runs never wait for each other's second folder.
    folders.sort();
    folders.dedup();
    let locks: Vec<FolderLock> = folders.iter().map(|d| FolderLock::take_dir(d)).collect();
    let locked = locks.iter().all(FolderLock::held);
    let steps = plan(files, sweep.filter(|_| locked));
    run(steps, &mut held)
}

/// The steps putting `files` in place, in order: the moves, then, when there is a `sweep` (the
/// folders are locked, so no other run is between its own moves or creating a temporary file),
/// the removal of each data file the model being replaced at `sweep.out` referred to, when it is
/// an output's data file by its name, is not one of `files` or `sweep.read`, no other model file
/// in the folder refers to it, and it belongs to the user the run creates files as; and of every
/// temporary file in the folder that no run holds and that belongs to that user.
fn plan(files: Vec<(NamedTempFile, PathBuf)>, sweep: Option<Sweep<'_>>) -> Vec<Step> {
    let owner = files
        .first()
        .and_then(|(tmp, _)| tmp.as_file().metadata().ok())
        .and_then(|m| crate::targets::owner_of(&m));
    let mut keep: Vec<PathBuf> = files.iter().map(|(_, to)| canonical_or(to)).collect();
    // This run's own temporaries, unlocked once they become paths to move.
    keep.extend(files.iter().map(|(tmp, _)| canonical_or(tmp.path())));
    let mut removals = Vec::new();
    if let Some(sweep) = sweep {
        keep.extend(sweep.read.iter().map(|p| canonical_or(p)));
        let unreferenced = referenced_data(sweep.out)
            .into_iter()
            .filter(|p| !keep.contains(&canonical_or(p)))
            .filter(|p| !referenced_elsewhere(p, sweep.out, &keep));
        removals = unreferenced
            .chain(abandoned_temporaries(sweep.out))
            .filter(|p| crate::targets::owns(owner, p))
            .filter(|p| {
                std::fs::symlink_metadata(p)
                    .is_ok_and(|m| m.is_file() && !m.permissions().readonly())
            })
            .collect();
    }
    let mut steps: Vec<Step> = files
        .into_iter()
        .map(|(tmp, to)| Step::Move {
            from: tmp.into_temp_path(),
            to,
        })
        .collect();
    steps.extend(removals.into_iter().map(Step::Remove));
    steps
}

/// The data files beside `out` that the model file at `out` refers to by a plain name an output's
/// data file has (`<out>.data`, `<out>.<16 hex digits>.data`); none when `out` is not a model.
fn referenced_data(out: &Path) -> Vec<PathBuf> {
    let Ok(file) = super::map::MappedFile::open(out, "model") else {
        return Vec::new();
    };
    let Ok(proto) = <super::ModelProto as prost::Message>::decode(file.bytes().clone()) else {
        return Vec::new();
    };
    let Some(name) = out.file_name() else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = proto
        .graph
        .iter()
        .flat_map(|g| &g.initializer)
        .flat_map(|t| &t.external_data)
        .filter(|e| e.key.as_deref() == Some("location"))
        .filter_map(|e| e.value.as_deref())
        .filter(|l| is_data_name(name, std::ffi::OsStr::new(l)))
        .map(|l| out.with_file_name(l))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The largest model file protobuf can encode: no larger file is another model to ask.
const MODEL_MAX: u64 = 2 << 30;

/// Whether a file in the folder of `out` other than `out`, `data` itself and the files in
/// `skip` could refer to `data`: it holds `data`'s name. A file that merely holds the name keeps
/// the data file too, which errs on the side of keeping.
fn referenced_elsewhere(data: &Path, out: &Path, skip: &[PathBuf]) -> bool {
    let Some(name) = data.file_name() else {
        return true;
    };
    let needle = name.as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir(folder_of(out)) else {
        return true;
    };
    let (out, data) = (canonical_or(out), canonical_or(data));
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let small_file = entry
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() <= MODEL_MAX && m.len() >= needle.len() as u64);
        let me = canonical_or(&path);
        if !small_file || me == out || me == data || skip.contains(&me) {
            continue;
        }
        match super::map::MappedFile::open(&path, "model") {
            Ok(f) if memchr::memmem::find(f.bytes(), needle).is_none() => {}
            // What cannot be read might refer to it.
            _ => return true,
        }
    }
    false
}

/// The canonical form of `p`, or `p` when it cannot be resolved (it does not exist yet).
fn canonical_or(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
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
                        crate::shown::shown_path(&to),
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

/// An exclusive advisory lock on a folder files are moved into, released when dropped; not held
/// where the folder cannot be opened or locks are not available.
struct FolderLock {
    folder: Option<File>,
}

impl FolderLock {
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
/// it ends. It is the platform's whole-file lock (flock on unix, LockFileEx on Windows).
fn lock(file: &File, wait: Wait) -> bool {
    match wait {
        Wait::Yes => file.lock().is_ok(),
        Wait::No => file.try_lock().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A model file whose one tensor is kept in the data file `location`.
    fn model_naming(location: &str) -> Vec<u8> {
        use crate::onnx::proto::tensor_proto::DataLocation;
        use crate::onnx::proto::StringStringEntryProto;
        let tensor = crate::onnx::TensorProto {
            name: Some("w".into()),
            data_location: Some(DataLocation::External as i32),
            external_data: vec![StringStringEntryProto {
                key: Some("location".into()),
                value: Some(location.into()),
            }],
            ..Default::default()
        };
        let proto = crate::onnx::ModelProto {
            graph: Some(crate::onnx::GraphProto {
                initializer: vec![tensor],
                ..Default::default()
            }),
            ..Default::default()
        };
        prost::Message::encode_to_vec(&proto)
    }

    /// A folder holding the pair an earlier run wrote, `m.onnx` → `m.onnx.<old>.data`, plus
    /// `m.onnx.data` as PyTorch names data files (which the old model does not refer to), and
    /// the temporaries of a new pair.
    struct Scene {
        dir: tempfile::TempDir,
        old_data: PathBuf,
        new_data: PathBuf,
        old: Vec<u8>,
        new: Vec<u8>,
    }

    impl Scene {
        fn new() -> Scene {
            let dir = tempfile::tempdir().unwrap();
            let old_data = dir.path().join("m.onnx.1111111111111111.data");
            let new_data = dir.path().join("m.onnx.2222222222222222.data");
            let old = model_naming("m.onnx.1111111111111111.data");
            let new = model_naming("m.onnx.2222222222222222.data");
            std::fs::write(dir.path().join("m.onnx"), &old).unwrap();
            std::fs::write(&old_data, b"old weights").unwrap();
            std::fs::write(dir.path().join("m.onnx.data"), b"older weights").unwrap();
            Scene {
                dir,
                old_data,
                new_data,
                old,
                new,
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

        fn files(&self) -> Vec<(NamedTempFile, PathBuf)> {
            vec![
                (self.temp(b"new weights"), self.new_data.clone()),
                (self.temp(&self.new), self.out()),
            ]
        }

        fn steps(&self) -> Vec<Step> {
            let out = self.out();
            plan(
                self.files(),
                Some(Sweep {
                    out: &out,
                    read: &[],
                }),
            )
        }

        /// The data file the model at `m.onnx` refers to holds that model's weights.
        fn consistent(&self) -> bool {
            let model = std::fs::read(self.out()).unwrap();
            let (data, weights) = if model == self.old {
                (&self.old_data, &b"old weights"[..])
            } else if model == self.new {
                (&self.new_data, &b"new weights"[..])
            } else {
                return false;
            };
            std::fs::read(data).is_ok_and(|b| b == weights)
        }

        fn listing(&self) -> Vec<String> {
            let mut left: Vec<_> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            left.sort();
            left
        }
    }

    fn removed(steps: &[Step]) -> Vec<PathBuf> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Remove(p) => Some(p.clone()),
                Step::Move { .. } => None,
            })
            .collect()
    }

    /// Stopping after any number of steps, as a killed process does, leaves a model whose data
    /// file holds its own weights; the whole plan removes the old model's data and nothing else.
    #[test]
    fn a_stop_after_any_step_leaves_a_whole_pair() {
        let n = Scene::new().steps().len();
        assert_eq!(n, 3, "two moves and one removal");
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
        assert_eq!(
            scene.listing(),
            ["m.onnx", "m.onnx.2222222222222222.data", "m.onnx.data"],
            "the data file nothing referred to stays: it is not the old model's"
        );
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
        assert_eq!(std::fs::read(scene.out()).unwrap(), scene.old);
        assert!(!scene.new_data.exists());
        assert!(scene.dir.path().join("m.onnx.data").exists());
    }

    /// A temporary file nobody holds is a killed run's and is removed; one a run holds (its
    /// lock, taken when it was created, is held while it is open) is kept.
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
        let steps = plan(vec![(live, scene.out())], None);
        assert_eq!(steps.len(), 1, "without a sweep, nothing is removed");
    }

    /// Another run holding the folder's lock (between its own moves, or creating a temporary
    /// file) holds up both a commit and the creation of a temporary file until it lets go, so
    /// two runs' moves never interleave and no sweep sees a temporary file before it is locked.
    #[test]
    fn the_folders_lock_holds_up_commits_and_new_temporaries() {
        let scene = Scene::new();
        let d = scene.dir.path().to_path_buf();
        let other_run = FolderLock::take_dir(&d);
        assert!(other_run.held());
        let files = vec![(scene.temp(&scene.new), scene.out())];
        let out = scene.out();
        let committing = std::thread::spawn(move || {
            commit(
                files,
                Some(Sweep {
                    out: &out,
                    read: &[],
                }),
            )
        });
        let dir = d.clone();
        let creating = std::thread::spawn(move || create_temp(&dir).map(|t| t.keep()));
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(
            std::fs::read(scene.out()).unwrap(),
            scene.old,
            "not moved yet"
        );
        let temporaries = |d: &Path| files_beside(&d.join("x"), |n| n.starts_with(TEMP_PREFIX));
        assert!(temporaries(&d).is_empty(), "not created yet");
        drop(other_run);
        committing.join().unwrap().unwrap();
        assert!(creating.join().unwrap().is_ok());
        assert_eq!(std::fs::read(scene.out()).unwrap(), scene.new);
        assert_eq!(temporaries(&d).len(), 1);
    }

    /// The old model's data is kept when the run reads it, when it is read-only, when another
    /// model file in the folder (a copy of the old model) refers to it, and without a sweep.
    #[test]
    fn the_sweep_spares_what_is_read_read_only_referenced_or_unswept() {
        let sweep = |scene: &Scene, read: &[PathBuf]| {
            let out = scene.out();
            removed(&plan(scene.files(), Some(Sweep { out: &out, read })))
        };
        let scene = Scene::new();
        assert_eq!(sweep(&scene, &[]), std::slice::from_ref(&scene.old_data));
        assert!(sweep(&scene, std::slice::from_ref(&scene.old_data)).is_empty());
        assert!(removed(&plan(scene.files(), None)).is_empty());

        let copy = scene.dir.path().join("keep.onnx");
        std::fs::copy(scene.out(), &copy).unwrap();
        assert!(sweep(&scene, &[]).is_empty(), "keep.onnx refers to it");
        std::fs::remove_file(&copy).unwrap();

        let mut ro = std::fs::metadata(&scene.old_data).unwrap().permissions();
        ro.set_readonly(true);
        std::fs::set_permissions(&scene.old_data, ro).unwrap();
        assert!(sweep(&scene, &[]).is_empty());
    }

    /// What the replaced file names is removed only when it has an output's data-file name, and
    /// nothing is removed when the replaced file is not a model at all.
    #[test]
    fn only_data_files_the_replaced_model_names_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let out = d.join("m.onnx");
        std::fs::write(d.join("notes.txt"), b"mine").unwrap();
        std::fs::write(&out, model_naming("notes.txt")).unwrap();
        assert!(referenced_data(&out).is_empty());
        std::fs::write(&out, b"not a model -> m.onnx.data").unwrap();
        std::fs::write(d.join("m.onnx.data"), b"x").unwrap();
        assert!(referenced_data(&out).is_empty());
        std::fs::write(&out, model_naming("m.onnx.data")).unwrap();
        assert_eq!(referenced_data(&out), [d.join("m.onnx.data")]);
    }
}
