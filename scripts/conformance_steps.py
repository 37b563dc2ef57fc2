"""The conformance run's steps that need the heavy packages, each run in a child process of
scripts/conformance.py so that a crash in an exporter or a runtime is recorded, not fatal:

    export SOURCE NAME EXPORTER SIZE OUT   export a model with random weights (no download)
    probe MODEL OUT.npz                     the original's outputs in onnxruntime and OpenVINO
    check MODEL ORIG.npz INIT ADDED OUT     every check on a written model, as JSON
    torch-params SOURCE NAME                parameters as PyTorch counts them, as JSON
    params MODEL                            float parameters counted from the file

Every check is recorded as "ok" or "fail: <one line>"; an exception never ends the step.
"""

import json
import os
import shutil
import sys
import tempfile
import traceback
import warnings

import numpy as np

# With --init identity every runtime must give the original's output within this tolerance,
# relative to the output's scale (its largest magnitude, at least 1).
IDENTITY_TOL = 1e-4
FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
SEED = 0


def one_line(e):
    """An exception as one line of at most 300 characters."""
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text[:300]


def torch_model(source, name):
    """A torchvision or timm model with random weights, in eval mode."""
    import timm
    import torchvision

    if source == "torchvision":
        return getattr(torchvision.models, name)(weights=None).eval()
    return timm.create_model(name, pretrained=False).eval()


def export(source, name, exporter, size, out):
    """Writes OUT (and OUT.data when the exporter keeps weights outside), atomically."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    warnings.filterwarnings("ignore")
    tmp = tempfile.mkdtemp(dir=os.path.dirname(out), prefix=".export-")
    try:
        path = os.path.join(tmp, os.path.basename(out))
        if source == "keras":
            import keras
            import keras_onnx

            model = getattr(keras.applications, name)(weights=None)
            keras_onnx.export(model, (1, size, size, 3), path)
        else:
            import torch

            torch.manual_seed(SEED)
            model = torch_model(source, name)
            x = torch.randn(1, 3, size, size)
            if exporter == "ts":
                torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17)
            else:
                torch.onnx.export(model, (x,), path, dynamo=True)
        data = path + ".data"
        if os.path.exists(data):
            os.replace(data, out + ".data")
        os.replace(path, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def float_params(path):
    """Elements of the graph's float initializers, counted from the file's tensor dims."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    total = 0
    for t in model.graph.initializer:
        if t.data_type in FLOAT_TYPES:
            total += int(np.prod(t.dims, dtype=np.int64))
    return total


def inputs_of(path):
    """One seeded random input per graph input: symbolic dims set to 1."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    rng = np.random.default_rng(SEED)
    feeds = []
    for i in model.graph.input:
        if i.name in inits:
            continue
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in i.type.tensor_type.shape.dim]
        feeds.append((i.name, rng.standard_normal(dims).astype(np.float32)))
    return feeds


def run_ort(path, feeds):
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, dict(feeds))


def run_openvino(path, feeds):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled({i: x for i, (_, x) in enumerate(feeds)})
    return [np.asarray(result[o]) for o in compiled.outputs]


RUNTIMES = {"onnxruntime": run_ort, "openvino": run_openvino}


def probe(path, out):
    """Saves the original's outputs per runtime; a runtime that fails is recorded in `errors`."""
    feeds = inputs_of(path)
    arrays, errors = {}, {}
    for rt, run in RUNTIMES.items():
        try:
            for k, y in enumerate(run(path, feeds)):
                arrays[f"{rt}_{k}"] = y
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            errors[rt] = one_line(e)
    np.savez(out, errors=json.dumps(errors), **arrays)


def compare(before, after):
    """max |diff| / max(1, output scale) over the outputs, or a reason they cannot be compared."""
    if len(before) != len(after):
        return None, f"{len(after)} outputs, the original has {len(before)}"
    worst = 0.0
    for b, a in zip(before, after):
        if b.shape != a.shape:
            return None, f"output shape {list(a.shape)}, the original's {list(b.shape)}"
        scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
        if b.size:
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b))) / scale)
    return worst, None


def saved_outputs(saved, rt):
    """The original's outputs in one runtime, in output order, from probe's file."""
    keys = [k for k in saved.files if k.startswith(rt + "_")]
    return [saved[k] for k in sorted(keys, key=lambda k: int(k.rsplit("_", 1)[1]))]


def runtime_check(rt, path, feeds, saved, init):
    """One runtime on the written model: runs, finite outputs, and for identity init the match."""
    errors = json.loads(str(saved["errors"]))
    outputs = RUNTIMES[rt](path, feeds)
    if not all(np.all(np.isfinite(y)) for y in outputs):
        return "fail: non-finite output", None
    if init != "identity":
        return "ok", None
    if rt in errors:
        return "ok (original did not run here)", None
    diff, why = compare(saved_outputs(saved, rt), outputs)
    if why:
        return f"fail: {why}", None
    if diff > IDENTITY_TOL:
        return f"fail: identity init differs from the original by {diff:.2e} of the output scale", diff
    return "ok", diff


def guarded(fn, *args):
    """fn(*args) as a check result: its value, or ("fail: <exception>", None)."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - recorded, the run goes on
        return f"fail: {one_line(e)}", None


def checker(path):
    import onnx

    onnx.checker.check_model(path, full_check=True)
    return "ok", None


def shape_inference(path):
    import onnx.shape_inference

    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=os.path.dirname(path))
    os.close(fd)
    try:
        onnx.shape_inference.infer_shapes_path(path, tmp, check_type=True, strict_mode=True)
    finally:
        os.remove(tmp)
    return "ok", None


def params_check(original, path, added):
    before, after = float_params(original), float_params(path)
    if after != before + added:
        return f"fail: {before:,} + {added:,} reported added != {after:,} in the file", after
    return "ok", after


def check(original, path, saved_path, init, added, out):
    """Every check of one written model, written to OUT as JSON."""
    saved = np.load(saved_path)
    feeds = inputs_of(original)
    result = {}
    result["checker"], _ = guarded(checker, path)
    result["shape_inference"], _ = guarded(shape_inference, path)
    for rt in RUNTIMES:
        result[rt], result[rt + "_identity_diff"] = guarded(runtime_check, rt, path, feeds, saved, init)
    result["params"], result["params_after_file"] = guarded(params_check, original, path, added)
    with open(out, "w") as f:
        json.dump(result, f)


def torch_params(source, name):
    model = torch_model(source, name)
    print(json.dumps({"params": sum(p.numel() for p in model.parameters())}))


def main(argv):
    step, args = argv[0], argv[1:]
    if step == "export":
        export(args[0], args[1], args[2], int(args[3]), args[4])
    elif step == "probe":
        probe(args[0], args[1])
    elif step == "check":
        check(args[0], args[1], args[2], args[3], int(args[4]), args[5])
    elif step == "params":
        print(float_params(args[0]))
    elif step == "torch-params":
        torch_params(args[0], args[1])
    else:
        raise SystemExit(f"unknown step {step}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as e:  # noqa: BLE001 - one line for the parent to record
        traceback.print_exc(file=sys.stderr)
        print(one_line(e), file=sys.stderr)
        sys.exit(1)
