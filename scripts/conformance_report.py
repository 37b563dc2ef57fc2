"""The conformance run's results: the run's metadata, results.json and the results.md tables."""

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess

from conformance_steps import IDENTITY_TOL

PACKAGES = ["torch", "torchvision", "timm", "onnx", "onnxruntime", "onnxscript", "openvino",
            "tensorflow-cpu", "tf2onnx"]
CHECKS = ["checker", "shape_inference", "onnxruntime", "openvino", "params"]
EXPORTERS = {"ts": "TorchScript", "dynamo": "dynamo", "tf2onnx": "tf2onnx"}


def cpu_name():
    """The CPU's model name as the kernel reports it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def meta(binary, quick, only):
    """Date, versions, machine and the se-inject commit of this run."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = subprocess.run(["git", "-C", repo, "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.date.today().isoformat(),
        "se_inject": commit or "unknown",
        "subset": "quick" if quick else only or "all",
        "python": platform.python_version(),
        "versions": {p: importlib.metadata.version(p) for p in PACKAGES},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "os": platform.platform()},
        "identity_tolerance": IDENTITY_TOL,
    }


def write(out, stem, meta, results, reference):
    with open(os.path.join(out, stem + ".json"), "w") as f:
        json.dump({"meta": meta, "models": results, "reference": reference}, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, stem + ".md"), "w") as f:
        f.write(markdown(meta, results, reference))


def stages_text(stages):
    """'3×256; 4×512 residual; 1×256 inception': the kind follows each run of equal kinds."""
    parts = []
    for i, s in enumerate(stages):
        text = f"{s['blocks']}×{s['channels']}"
        if i + 1 == len(stages) or stages[i + 1]["kind"] != s["kind"]:
            text += f" {s['kind']}"
        parts.append(text)
    return "; ".join(parts)


def failures(run):
    """The names of the checks a written run failed, tract's included."""
    checks = run.get("checks", {})
    failed = [c for c in CHECKS + ["error"] if str(checks.get(c, "ok")).startswith("fail")]
    if run.get("tract", "ok") != "ok":
        failed.append("tract")
    return failed


def positions_text(runs):
    """What happened at each position with identity init."""
    by = {"ok": [], "refused": [], "failed": []}
    for r in runs:
        if r["init"] != "identity" or r["force"]:
            continue
        key = "failed" if r["status"] == "failed" or failures(r) else r["status"]
        by["ok" if key == "written" else key].append(r["position"])
    parts = [f"{len(by['ok'])} ok"]
    parts += [f"{len(v)} {k} ({', '.join(v)})" for k, v in by.items() if k != "ok" and v]
    skipped = {}
    for r in runs:
        if r["init"] == "identity" and not r["force"] and r["status"] == "written" and r["injected"] < r["blocks"]:
            skipped.setdefault(f"{r['blocks'] - r['injected']}/{r['blocks']}", []).append(r["position"])
    parts += [f"{n} blocks skipped at {', '.join(p)}" for n, p in skipped.items()]
    return "; ".join(parts)


def checks_text(runs):
    """Checks passed over the written models (tract's among them), and the names of those failed."""
    written = [r for r in runs if r["status"] == "written"]
    total = len(written) * (len(CHECKS) + 1)
    failed = sorted({c for r in written for c in failures(r)})
    bad = sum(len(failures(r)) for r in written)
    return f"{total - bad}/{total}" + (f" (failed: {', '.join(failed)})" if failed else "")


def worst(runs, key):
    """The largest identity-init difference of one runtime over the runs, as text."""
    values = [r.get("checks", {}).get(key) for r in runs if r["status"] == "written" and r["init"] == "identity"]
    values = [v for v in values if v is not None]
    return f"{max(values):.1e}" if values else "—"


def summary_row(e):
    """One model's row: the standard run (or the forced one) and what every position gave."""
    name = e["name"] + (" (timm)" if e["source"] == "timm" else "")
    name = f"Keras {e['name']}" if e["source"] == "keras" else name
    head = f"| {name} | {EXPORTERS[e['exporter']]} "
    if not e["export"]["ok"]:
        return head + f"| export failed: {e['export'].get('error', '')} |" + " |" * 7
    if e.get("probe") != "ok":
        return head + f"| original does not load: {e.get('probe')} |" + " |" * 7
    runs = e["runs"]
    std = runs[0]
    forced = next((r for r in runs if r["force"]), None)
    base = std if std["status"] == "written" else forced
    if base is None or base["status"] != "written":
        broken = ", ".join(e.get("original_runtimes", {}))
        also = f" (the original fails in {broken} too)" if broken else ""
        return head + f"| {std['status']}: {reason(std.get('reason', ''), 200)}{also} |" + " |" * 7
    if std["status"] == "written":
        params = f"{base['params_before']:,} → {base['params_after']:,} | {base['added']:,} / {base['formula']:,.0f}"
    else:
        params = (f"{base['params_before']:,} | refused: SE already in every block "
                  f"(with `--force`: +{base['added']:,})")
    diffs = " / ".join(worst(runs, k) for k in ("onnxruntime_identity_diff", "openvino_identity_diff"))
    return (head + f"| {std.get('injected', 0)}/{base['blocks']} | {stages_text(base['stages'])} | {params} "
            f"| {base['existing_se']} | {positions_text(runs)} | {checks_text(runs)} | {diffs} |")


def reason(text, limit=None):
    """se-inject's error line without the model's path, fit for a table cell."""
    prefix, found, rest = text.partition("se-inject: error: '")
    if found and "': " in rest:
        text = prefix + rest.split("': ", 1)[1]
    if limit and len(text) > limit:
        text = text[:limit].rstrip() + "…"
    return text.replace("|", "\\|")


def tract_text(run):
    diff = run.get("tract_max_abs_diff")
    return run["tract"] if diff is None else f"{run['tract']} ({diff:.1e})"


def detail_row(e, r):
    """One run's row: its result and every check."""
    c = r.get("checks", {})
    cells = [e["file"], r["position"] + (" --force" if r["force"] else ""), r["init"], r["status"]]
    if r["status"] != "written":
        return "| " + " | ".join(cells + [reason(r.get("reason", ""))] + [""] * 8) + " |"
    diff = [c.get(k) for k in ("onnxruntime_identity_diff", "openvino_identity_diff")]
    cells += [f"{r['added']:,}", f"{r['injected']}/{r['blocks']}",
              *(str(c.get(k, c.get("error", ""))) for k in CHECKS[:4]), tract_text(r),
              " / ".join("—" if d is None else f"{d:.1e}" for d in diff), str(c.get("params", ""))]
    return "| " + " | ".join(cells) + " |"


def header(meta):
    v, m = meta["versions"], meta["machine"]
    return (f"Run {meta['date']} (se-inject {meta['se_inject']}, models: {meta['subset']}, "
            f"{meta.get('minutes', 0)} min) on {m['cpu']}, {m['cores']} cores; Python {meta['python']}, "
            f"PyTorch {v['torch']} (torchvision {v['torchvision']}, timm {v['timm']}), onnx {v['onnx']}, "
            f"onnxruntime {v['onnxruntime']}, OpenVINO {v['openvino']}, TensorFlow {v['tensorflow-cpu']}, "
            f"tf2onnx {v['tf2onnx']}. Identity tolerance: max |diff| ≤ "
            f"{meta['identity_tolerance']:g}·max(1, output scale).\n")


SUMMARY_HEAD = ("| model | exporter | blocks | stages (N×C, kind) | params before → after | added / formula "
                "| SE already in | positions, identity init | checks passed | identity max rel. diff: "
                "onnxruntime / OpenVINO |\n|---|---|---|---|---|---|---|---|---|---|\n")
DETAIL_HEAD = ("| model | position | init | result | added / reason | blocks with SE | checker | shape inference "
               "| onnxruntime | OpenVINO | tract (max abs. diff) | identity rel. diff onnxruntime / OpenVINO | params |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")


def reference_text(ref):
    if not ref:
        return ""
    lines = [f"\nReference: se-inject adds {ref['added']:,} parameters to resnet50 (standard, r = 16, biases)"]
    if "torch_difference" in ref:
        same = "equal" if ref["torch_difference"] == ref["added"] else "NOT equal"
        lines.append(f"; timm {ref['model']} minus torchvision resnet50 as PyTorch counts them: "
                     f"{ref['torch_difference']:,} ({same})")
    if ref.get("file_params") is not None:
        same = "equal" if ref["file_params"] == ref["resnet50_se_params_after"] else "NOT equal"
        lines.append(f"; float parameters of the {ref['model']} export {ref['file_params']:,}, of resnet50 "
                     f"with SE {ref['resnet50_se_params_after']:,} ({same})")
    return "".join(lines) + ".\n"


def summary(meta, results, reference):
    """The run's header line, the table of models and the reference check."""
    out = [header(meta), "\n", SUMMARY_HEAD]
    out += [summary_row(e) + "\n" for e in results]
    out.append(reference_text(reference))
    return "".join(out)


def markdown(meta, results, reference):
    out = ["<!-- written by scripts/conformance.sh; do not edit -->\n", summary(meta, results, reference)]
    out += ["\n## Every run\n\n", DETAIL_HEAD]
    for e in results:
        out += [detail_row(e, r) + "\n" for r in e.get("runs", [])]
    return "".join(out)


BEGIN, END = "<!-- conformance results: begin -->", "<!-- conformance results: end -->"


def update_readme(path, meta, results, reference):
    """Puts the summary between the README's two conformance markers."""
    with open(path) as f:
        text = f.read()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return False
    text = text[: start + len(BEGIN)] + "\n" + summary(meta, results, reference) + text[end:]
    with open(path, "w") as f:
        f.write(text)
    return True
