"""Runs se-inject on a zoo of full-size models and checks every model it writes.

Started by scripts/conformance.sh (which builds se-inject and the Python environment); run alone:

    python scripts/conformance.py --bin target/release/se-inject --work DIR --out conformance [--quick] [--only NAME[:EXPORTER],...]

Exports are cached in DIR/models/<name>_<exporter>.onnx (Keras: keras_<Name>.onnx); an export
found there is reused. Each model runs at every position with --init identity and once at the
standard position with random init; a model where every block already holds SE runs once more with
--force. Results go to OUT/results.md and OUT/results.json, rewritten after every model.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

import conformance_report as report

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = os.path.join(HERE, "conformance_steps.py")
POSITIONS = ["standard", "pre", "post", "identity", "inner"]
REFUSAL = "no block can take SE"

TORCHVISION = ["convnext_tiny", "densenet121", "efficientnet_b0", "googlenet", "inception_v3",
               "mnasnet1_0", "mobilenet_v2", "mobilenet_v3_large", "regnet_y_400mf", "resnet101",
               "resnet18", "resnet50", "resnext50_32x4d", "shufflenet_v2_x1_0", "vgg16",
               "wide_resnet50_2"]
TIMM = ["cspresnet50", "ghostnet_100", "mixnet_s", "repvgg_a0", "dpn68", "inception_resnet_v2",
        "inception_v4", "mobilenetv1_100", "seresnet50"]
KERAS = ["ResNet50V2", "DenseNet121", "MobileNetV2", "ConvNeXtTiny"]
SIZE_299 = {"inception_v3", "inception_v4", "inception_resnet_v2"}
QUICK = {("resnet18", "ts"), ("mobilenet_v2", "dynamo"), ("MobileNetV2", "tf2onnx")}
# The independent reference: resnet50 + standard SE at r = 16 against timm's SE-ResNet-50.
REFERENCE = ("resnet50", "legacy_seresnet50")


def zoo():
    """Every model of the run: TorchScript exports first, then Keras, then dynamo exports."""
    torch_models = sorted([(n, "torchvision") for n in TORCHVISION] + [(n, "timm") for n in TIMM])
    entries = []
    for exporter in ("ts", "tf2onnx", "dynamo"):
        if exporter == "tf2onnx":
            entries += [dict(name=n, source="keras", exporter=exporter, size=224,
                             file=f"keras_{n}.onnx") for n in KERAS]
            continue
        for name, source in torch_models:
            entries.append(dict(name=name, source=source, exporter=exporter,
                                size=299 if name in SIZE_299 else 224, file=f"{name}_{exporter}.onnx"))
    return entries


def select(entries, quick, only):
    if quick:
        return [e for e in entries if (e["name"], e["exporter"]) in QUICK]
    if only:
        wanted = [w.split(":") for w in only.split(",")]
        return [e for e in entries if any(matches(e, *w) for w in wanted)]
    return entries


def matches(entry, name, exporter=None):
    """NAME (resnet50, DenseNet121 or keras_DenseNet121) and, when given, EXPORTER (ts, dynamo, tf2onnx)."""
    names = (entry["name"], entry["file"][: -len(".onnx")])
    return name in names and exporter in (None, entry["exporter"])


def step(*args, timeout=3600):
    """Runs one step of conformance_steps.py; (ok, stdout, last stderr line)."""
    try:
        p = subprocess.run([sys.executable, STEPS, *map(str, args)], capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "", f"timed out after {timeout} s"
    lines = p.stderr.strip().splitlines()
    why = lines[-1] if lines else f"exit code {p.returncode}"
    if p.returncode < 0:
        why = f"killed by signal {-p.returncode}"
    return p.returncode == 0, p.stdout, why


def ensure_export(entry, models_dir):
    path = os.path.join(models_dir, entry["file"])
    if os.path.exists(path):
        return path, {"cached": True, "ok": True}
    t = time.time()
    ok, _, why = step("export", entry["source"], entry["name"], entry["exporter"], entry["size"], path)
    info = {"cached": False, "ok": ok and os.path.exists(path), "seconds": round(time.time() - t, 1)}
    if not info["ok"]:
        info["error"] = why
    return path, info


def se_inject(binary, model, out, position, init, force):
    args = [binary, model, "-p", position, "--init", init, "-o", out, "--format", "json"]
    if force:
        args.append("--force")
    p = subprocess.run(args, capture_output=True, text=True)
    err = p.stderr.strip().splitlines()
    last = err[-1] if err else ""
    if p.returncode == 0:
        return "written", json.loads(p.stdout), None
    if p.returncode == 1 and REFUSAL in last:
        return "refused", None, last
    return "failed", None, f"exit {p.returncode}: {last}" if last else f"exit {p.returncode}"


def summarise_json(j):
    """The stable fields of se-inject's JSON report that the results keep."""
    v = j.get("validation") or {}
    blocks = j.get("blocks", [])
    return {
        "stages": [{k: s.get(k) for k in ("kind", "blocks", "channels")} for s in j.get("stages", [])],
        "blocks": len(blocks),
        "injected": sum(1 for b in blocks if b.get("injected")),
        "skipped": sorted({b["skipped"] for b in blocks if b.get("skipped")}),
        "existing_se": len(j.get("existing_se", [])),
        "params_before": j.get("params_before"),
        "params_after": j.get("params_after"),
        "added": j.get("added_params"),
        "formula": j.get("formula_params"),
        "tract": "ok" if v.get("ok") else f"fail: {v.get('reason')}",
        "tract_max_abs_diff": v.get("max_abs_diff"),
    }


def remove_output(out):
    """Removes OUT and its data file (OUT.<fingerprint>.data; OUT.data from older versions)."""
    for f in [out, out + ".data"] + glob.glob(glob.escape(out) + ".*.data"):
        if os.path.exists(f):
            os.remove(f)


def one_run(binary, model, probe_npz, runs_dir, position, init, force=False):
    """se-inject once, then every check of what it wrote; the written model is deleted."""
    out = os.path.join(runs_dir, "out.onnx")
    remove_output(out)
    t = time.time()
    status, j, why = se_inject(binary, model, out, position, init, force)
    run = {"position": position, "init": init, "force": force, "status": status,
           "seconds": round(time.time() - t, 1)}
    if why:
        run["reason"] = why
    if status == "written":
        run.update(summarise_json(j))
        result = os.path.join(runs_dir, "checks.json")
        ok, _, why = step("check", model, out, probe_npz, init, run["added"], result)
        if ok:
            with open(result) as f:
                run["checks"] = json.load(f)
        else:
            run["checks"] = {"error": f"fail: checks crashed: {why}"}
        run["seconds"] = round(time.time() - t, 1)
    remove_output(out)
    return run


def run_model(binary, entry, path, runs_dir):
    """Every run of one model; the original's runtime outputs are probed first."""
    probe_npz = os.path.join(runs_dir, "original.npz")
    ok, _, why = step("probe", path, probe_npz)
    entry["probe"] = "ok" if ok else f"fail: {why}"
    if not ok:
        return
    import numpy as np

    errors = json.loads(str(np.load(probe_npz)["errors"]))
    entry["original_runtimes"] = {rt: f"fail: {e}" for rt, e in errors.items()}
    entry["runs"] = [one_run(binary, path, probe_npz, runs_dir, "standard", "random")]
    for p in POSITIONS:
        entry["runs"].append(one_run(binary, path, probe_npz, runs_dir, p, "identity"))
    first = entry["runs"][1]
    if first["status"] == "refused" and "already present" in first.get("reason", ""):
        entry["runs"].append(one_run(binary, path, probe_npz, runs_dir, "standard", "identity", True))
    os.remove(probe_npz)


def reference(results, models_dir):
    """timm legacy_seresnet50 against resnet50 + standard SE, r = 16, with biases."""
    base = next((e for e in results if e["name"] == REFERENCE[0] and e["exporter"] == "ts"), None)
    runs = [r for r in (base or {}).get("runs", []) if r["position"] == "standard" and r["init"] == "random"]
    if not runs or runs[0]["status"] != "written":
        return None
    ref = {"model": REFERENCE[1], "added": runs[0]["added"]}
    counts = []
    for source, name in (("torchvision", REFERENCE[0]), ("timm", REFERENCE[1])):
        ok, out, _ = step("torch-params", source, name)
        counts.append(json.loads(out)["params"] if ok else None)
    if None not in counts:
        ref["torch_difference"] = counts[1] - counts[0]
    entry = dict(name=REFERENCE[1], source="timm", exporter="ts", size=224, file=f"{REFERENCE[1]}_ts.onnx")
    path, info = ensure_export(entry, models_dir)
    if info["ok"]:
        ok, out, _ = step("params", path)
        ref["file_params"] = int(out) if ok else None
        ref["resnet50_se_params_after"] = runs[0]["params_after"]
    return ref


def publish(out, stem, meta, results, ref):
    """Writes the results; those of the whole zoo also go into the README's table."""
    report.write(out, stem, meta, results, ref)
    if stem == "results":
        report.update_readme(os.path.join(os.path.dirname(HERE), "README.md"), meta, results, ref)


def render(out):
    """results.md and the README's table again from results.json (after a change of layout)."""
    with open(os.path.join(out, "results.json")) as f:
        j = json.load(f)
    publish(out, "results", j["meta"], j["models"], j["reference"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--render", action="store_true",
                    help="rewrite results.md and the README table from results.json, running nothing")
    a = ap.parse_args()
    if a.render:
        return render(a.out)
    models_dir, runs_dir = os.path.join(a.work, "models"), os.path.join(a.work, "runs")
    os.makedirs(models_dir, exist_ok=True)
    os.makedirs(runs_dir, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    stem = "results-quick" if a.quick else "results-only" if a.only else "results"
    meta = report.meta(a.bin, quick=a.quick, only=a.only)
    start, results = time.time(), []
    for entry in select(zoo(), a.quick, a.only):
        t = time.time()
        print(f"{entry['file']} ...", file=sys.stderr, flush=True)
        path, entry["export"] = ensure_export(entry, models_dir)
        if entry["export"]["ok"]:
            run_model(a.bin, entry, path, runs_dir)
        entry["seconds"] = round(time.time() - t, 1)
        results.append(entry)
        meta["minutes"] = round((time.time() - start) / 60, 1)
        report.write(a.out, stem, meta, results, None)
    publish(a.out, stem, meta, results, reference(results, models_dir))
    print(f"done in {meta['minutes']} min: {os.path.join(a.out, stem)}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
