//! The paths a run creates, replaces or removes: never a file it reads, a special file, a
//! symbolic link or another user's file; the picture in place before the model, and nothing in
//! place when the picture cannot be written; the sweep of earlier data by references.

use super::read;
use crate::common::*;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `resnet_basic_dynamo` (external data) copied into a new folder: the folder, the model.
fn external_input() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_fixture("resnet_basic_dynamo", dir.path());
    (dir, model)
}

/// `--plot` naming the input's data file, a name the output's data file takes (either form), or
/// the output through another spelling is refused, and nothing is written or changed.
#[test]
fn the_plot_never_replaces_the_input_the_output_or_its_data() {
    let (dir, model) = external_input();
    let d = dir.path();
    std::fs::create_dir(d.join("out")).unwrap();
    std::fs::create_dir(d.join("out/sub")).unwrap();
    let out = d.join("out/o.onnx");
    let data = d.join("resnet_basic_dynamo.onnx.data");
    let before = listing(d);
    let cases: [(PathBuf, &str); 5] = [
        (data.clone(), "a file this run reads"),
        (d.join("out/o.onnx.data"), "the output's data file"),
        (
            d.join("out/o.onnx.0123456789abcdef.data"),
            "the output's data file",
        ),
        (d.join("out/./o.onnx"), "is the output model"),
        (d.join("out/sub/../o.onnx"), "is the output model"),
    ];
    for (plot, why) in cases {
        let o = run_unvalidated(&model, &out, &["--plot", s(&plot)]);
        assert_error(&o, &["--plot", why]);
        assert_eq!(listing(d), before, "--plot {}", plot.display());
        assert!(listing(&d.join("out")).iter().all(|n| n == "sub"));
    }
    assert_eq!(read(&data), read(&fixture_data("resnet_basic_dynamo")));
}

/// `--plot` and `-o` naming a character device, a FIFO, a read-only file or a symbolic link (one
/// into `/proc/self/fd`, as `/dev/stdout` is) are refused and left as they were.
#[cfg(unix)]
#[test]
fn special_files_and_links_are_never_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let (dir, model) = external_input();
    let d = dir.path();
    let fifo = d.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let kept = d.join("kept.svg");
    std::fs::write(&kept, b"keep me").unwrap();
    let mut ro = std::fs::metadata(&kept).unwrap().permissions();
    ro.set_readonly(true);
    std::fs::set_permissions(&kept, ro).unwrap();
    let stdout_link = d.join("stdout");
    std::os::unix::fs::symlink("/proc/self/fd/1", &stdout_link).unwrap();
    let file_link = d.join("link.svg");
    std::fs::write(d.join("target.svg"), b"the link's").unwrap();
    std::os::unix::fs::symlink(d.join("target.svg"), &file_link).unwrap();
    // A character device of the test's own (a second null device), so that a run that replaced
    // it would never replace the system's.
    let device = d.join("null");
    let made = std::process::Command::new("mknod")
        .arg(&device)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("cannot make a device here (not root?): the device case is not exercised");
    }
    let out = d.join("o.onnx");
    let cases: [(&Path, &str); 5] = [
        (if made { &device } else { &fifo }, "not a regular file"),
        (&fifo, "not a regular file"),
        (&kept, "read-only"),
        (&stdout_link, "symbolic link"),
        (&file_link, "symbolic link"),
    ];
    for (path, why) in cases {
        let o = run_unvalidated(&model, &out, &["--plot", s(path)]);
        assert_error(&o, &["--plot", why]);
        let o = run_unvalidated(&model, path, &[]);
        assert_error(&o, &["output path", why]);
    }
    if made {
        let kind = std::fs::symlink_metadata(&device).unwrap().file_type();
        assert!(kind.is_char_device());
    }
    assert!(!std::fs::symlink_metadata(&fifo).unwrap().is_file());
    assert_eq!(read(&kept), b"keep me");
    for link in [&stdout_link, &file_link] {
        assert!(std::fs::symlink_metadata(link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert_eq!(read(&d.join("target.svg")), b"the link's");
    assert!(!out.exists());
}

/// A picture that cannot be written (its folder missing, checked up front; or its folder gone
/// once the run is under way) leaves an earlier output as it was.
#[test]
fn a_plot_that_cannot_be_written_leaves_the_output_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    std::fs::write(&out, b"precious").unwrap();
    let plot = dir.path().join("nowhere/p.svg");
    let o = run_unvalidated(fixture("resnet_basic_ts"), &out, &["--plot", s(&plot)]);
    assert_error(&o, &["--plot", "nowhere"]);
    assert_eq!(read(&out), b"precious");
    assert_eq!(listing(dir.path()), ["o.onnx"]);
}

/// A copy of an earlier output keeps the data file it shares with it: the sweep removes only the
/// data file the replaced model referred to, when no other model in the folder refers to it.
#[test]
fn the_sweep_keeps_data_another_model_file_refers_to() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    let model = fixture("resnet_basic_dynamo");
    let o = run_unvalidated(&model, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let first = data_file_of(&out);
    let keep = dir.path().join("keep.onnx");
    std::fs::copy(&out, &keep).unwrap();
    let o = run_unvalidated(&model, &out, &["--ratio", "8"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(first.exists(), "keep.onnx's data was removed");
    assert!(se_inject::onnx::load(&keep).is_ok(), "the copy loads");
    assert!(se_inject::onnx::load(&out).is_ok(), "the output loads");
    // Without the copy, the data file nothing refers to any more goes.
    std::fs::remove_file(&keep).unwrap();
    let second = data_file_of(&out);
    let o = run_unvalidated(&model, &out, &["--ratio", "4"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!second.exists());
    assert!(
        first.exists(),
        "what the replaced model did not refer to stays"
    );
}

/// Run as root, the sweep still removes only its own user's files: another user's data file and
/// temporary file stay (where the test cannot change a file's owner, it says so).
#[cfg(unix)]
#[test]
fn the_sweep_never_removes_another_users_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    let model = fixture("resnet_basic_dynamo");
    let o = run_unvalidated(&model, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let data = data_file_of(&out);
    let temp = dir.path().join(".se-inject-abcdef.tmp");
    std::fs::write(&temp, b"another user's").unwrap();
    let chown = |p: &Path| {
        std::process::Command::new("chown")
            .arg("4242")
            .arg(p)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !(chown(&data) && chown(&temp)) {
        eprintln!("cannot change a file's owner here (not root?): case not exercised");
        return;
    }
    let o = run_unvalidated(&model, &out, &["--ratio", "8"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(data.exists() && temp.exists());
    // The output itself, now another user's, is refused.
    assert!(chown(&out));
    let o = run_unvalidated(&model, &out, &[]);
    assert_error(&o, &["output path", "another user"]);
}

/// The output pair keeps the input's permissions (0600 here, not 0644), and the picture gets
/// those the umask allows (077 here: 0600).
#[cfg(unix)]
#[test]
fn modes_follow_the_input_and_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, model) = external_input();
    let private = std::fs::Permissions::from_mode(0o600);
    std::fs::set_permissions(&model, private).unwrap();
    let out = dir.path().join("o.onnx");
    let plot = dir.path().join("p.svg");
    let line = format!(
        "umask 077 && exec '{}' '{}' --no-validate -o '{}' --plot '{}'",
        env!("CARGO_BIN_EXE_se-inject"),
        s(&model),
        s(&out),
        s(&plot)
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &line])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o600);
    assert_eq!(mode(&data_file_of(&out)), 0o600);
    assert_eq!(mode(&plot), 0o600);
    let o = std::process::Command::new("sh")
        .args(["-c", &line.replace("umask 077", "umask 022")])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(mode(&out), 0o600, "the input's mode, less the umask");
    assert_eq!(mode(&plot), 0o644);
}

/// Output names that cannot be written are refused before any work, naming the output: a data
/// file's name over 255 bytes, a name that is not UTF-8 for a model that must name its data
/// file, and a folder that cannot be written (a read-only file system, where one can be
/// mounted).
#[cfg(unix)]
#[test]
fn output_names_that_cannot_be_written_are_refused_up_front() {
    use std::os::unix::ffi::OsStrExt;
    let (dir, model) = external_input();
    // 240 bytes: a legal name, but its data file's would be 262.
    let long = dir.path().join(format!("{}.onnx", "x".repeat(235)));
    let o = run_to(&model, &long, &[]);
    let e = assert_error(&o, &["data file's name", "255 bytes"]);
    assert!(!e.contains(".se-inject-"), "{e}");
    let latin1 = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.onnx"));
    let o = run([model.as_os_str(), "-o".as_ref(), latin1.as_os_str()]);
    assert_error(&o, &["not valid UTF-8"]);
    assert_eq!(listing(dir.path()).len(), 2, "nothing written");

    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let Some(_mounted) = mount_tmpfs(&ro, "ro,size=64k") else {
        eprintln!("cannot mount a tmpfs here (not root?): read-only case not exercised");
        return;
    };
    let o = run_to(&model, &ro.join("o.onnx"), &[]);
    let e = assert_error(&o, &["o.onnx", "cannot be written"]);
    assert!(!e.contains(".se-inject-"), "{e}");
    assert!(
        !stderr(&o).contains("validat"),
        "refused before validation: {}",
        stderr(&o)
    );
}
