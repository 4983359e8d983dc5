"""``fer-edge build``: model id / checkpoint / ONNX package -> a model package (file + sidecar).

Like Ultralytics' exporter (STYLE.md): one table of targets with the options each allows,
conflicting options resolved with a warning that says what changed, each step timed and
checked, and the run ends with the next command to paste. Engines stay plain engines; every
fact about them goes into the sidecar. The package appears only when everything succeeded: a
failure or a signal (SIGINT/SIGTERM) mid-build leaves no model file and no sidecar.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_edge.builder import calibration as calib
from fer_edge.builder.recipes import Recipe, load_recipe
from fer_edge.constants import classes_for
from fer_edge.errors import BackendUnavailableError, ExportError, ModelNotFoundError, PluginLibraryError
from fer_edge.fileio import atomic_path
from fer_edge.package import BatchRange, InputSpec, ModelPackage, Sidecar, load_package, write_package

# target -> precisions it builds and the options it uses (others are ignored with a warning)
TARGETS: dict[str, dict[str, Any]] = {
    "onnxruntime": {"precisions": ("fp32", "int8"), "suffix": ".onnx", "format": "onnx",
                    "options": ("calib", "batch", "method", "int8_ops")},
    "tensorrt": {"precisions": ("fp32", "fp16", "int8"), "suffix": ".engine", "format": "tensorrt",
                 "options": ("calib", "batch", "method", "workspace", "dla", "timing_cache")},
}


@dataclass
class Source:
    """What is being built: a PyTorch model (or a ready portable ONNX) and its metadata."""

    model_id: str
    variant: str
    classes: tuple[str, ...]
    spec: InputSpec
    recipe: Recipe
    torch_model: Any | None = None
    onnx_model: Any | None = None
    metrics: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    prepared: Sidecar | None = None  # an ``--onnx-only`` package: the ONNX TensorRT builds, as it is


def load_source(name: str, weights: str = "pretrained") -> Source:
    """Resolve ``--model``: a zoo id (its shipped trained weights; random ones only when
    ``weights="random"``, with a warning), a ``.pt`` checkpoint, or an ONNX package (``.onnx``
    with its sidecar)."""
    if weights not in ("pretrained", "random"):
        raise ExportError(f"--weights must be 'pretrained' or 'random', got {weights!r}")
    path = Path(name)
    if path.suffix == ".pt":
        if not path.is_file():
            raise ModelNotFoundError(f"checkpoint {path} does not exist")
        return _checkpoint_source(path)
    if path.suffix in (".onnx", ".json"):
        import onnx

        package = load_package(path)
        side = package.sidecar
        prepared = is_prepared_for_tensorrt(side)
        if not prepared and (side.precision != "fp32" or side.graph_form != "portable"):
            raise ExportError(f"{path} is a {side.precision} {side.graph_form} package; build from an FP32 portable one")
        return Source(side.model_id, side.variant, side.classes, side.input, load_recipe(side.model_id),
                      onnx_model=onnx.load(str(package.model_path)), metrics=side.metrics, training=side.training,
                      prepared=side if prepared else None)
    recipe = load_recipe(name)
    if weights == "pretrained":
        from fer_edge.models.pretrained import pretrained_package

        package = pretrained_package(name, recipe.variant)
        source = _checkpoint_source(package.model_path)
        source.metrics, source.training = dict(package.sidecar.metrics), dict(package.sidecar.training)
        return source
    from fer_edge.models import create_model

    warnings.warn(f"building {name!r} from the zoo with RANDOM weights (--weights random): its answers mean "
                  "nothing; drop --weights for the shipped trained model", stacklevel=2)
    model = create_model(name, num_classes=7, variant=recipe.variant, in_size=recipe.in_size)
    cfg = model.default_cfg
    spec = InputSpec(size=tuple(cfg["in_size"]), color=cfg["color"], mean=tuple(cfg["mean"]),  # type: ignore[arg-type]
                     std=tuple(cfg["std"]))  # type: ignore[arg-type]
    return Source(name, recipe.variant, classes_for(cfg["num_classes"]), spec, recipe, torch_model=model)


def _checkpoint_source(path: Path) -> Source:
    from fer_edge.training.checkpoint import load_checkpoint

    model, meta = load_checkpoint(path)
    return Source(meta["model_id"], meta["variant"], tuple(meta["classes"]), meta["input_spec"],
                  load_recipe(meta["model_id"]), torch_model=model, metrics=meta.get("metrics"),
                  training=meta.get("training"))


def is_prepared_for_tensorrt(sidecar: Sidecar) -> bool:
    """True for an ONNX package ``fer-edge build --onnx-only`` wrote for a TensorRT build elsewhere."""
    return sidecar.format == "onnx" and (sidecar.tensorrt or {}).get("onnx_only") is True


def resolve_options(target: str, precision: str, given: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check ``precision`` and options against the target table; warn about and drop what it ignores."""
    table = TARGETS[target]
    if precision not in table["precisions"]:
        warnings.warn(f"--{precision} is not available for --target {target} (it builds "
                      f"{', '.join(table['precisions'])}): building fp32 instead", stacklevel=2)
        precision = "fp32"
    kept = {}
    for key, value in given.items():
        if value is None:
            continue
        if key not in table["options"]:
            warnings.warn(f"--{key.replace('_', '-')} has no effect for --target {target}; ignored", stacklevel=2)
        else:
            kept[key] = value
    return precision, kept


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt for the build, so atomic writes clean up their temp files."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _step(log: Callable[[str], None], number: str, title: str, fn: Callable[[], Any]) -> Any:
    log(f"[{number}] {title} ...")
    start = time.perf_counter()
    result = fn()
    log(f"[{number}] {title} done in {time.perf_counter() - start:.1f} s")
    return result


def calibration_set(calib_arg: str | None, source: Source, size: int, log: Callable[[str], None]) -> calib.CalibrationSet:
    """``--calib``: a manifest (.json), a FER+ split folder, or a folder of photos; default: the shipped set."""
    if calib_arg is None:
        if calib.ferplus_root() is None:
            raise ExportError("INT8 needs calibration faces: pass --calib DIR (photos, face crops or a FER+ split); "
                              "the default set is rebuilt from FER+, which was not found (set FER_EDGE_FERPLUS)")
        default = calib.default_manifest()
        warnings.warn(f"no --calib given: using the default calibration set {default} (FER+ train faces); "
                      "calibrate on faces like yours for the best INT8 accuracy", stacklevel=2)
        cset = calib.load(default, spec=source.spec)
        if size < len(cset.tensors):
            return calib.from_ferplus(calib.ferplus_root() / cset.manifest["root"], source.spec, size)  # type: ignore[operator]
        return cset
    path = Path(calib_arg)
    if path.suffix == ".json":
        return calib.load(path, spec=source.spec)
    if (path / "label.csv").is_file():
        return calib.from_ferplus(path, source.spec, size, num_classes=len(source.classes))
    return calib.from_folder(path, source.spec, size, photos=True, classes=source.classes)


def build(model: str, precision: str = "fp32", target: str | None = None, out: str | None = None,
          calib_dir: str | None = None, calib_size: int = calib.DEFAULT_SIZE, method: str = "entropy",
          batch: str | None = None, workspace: int | None = None, dla: int | None = None,
          timing_cache: str | None = None, fp16_weights: bool = False, weights: str = "pretrained",
          onnx_only: bool = False, int8_ops: str | None = None,
          log: Callable[[str], None] | None = None) -> ModelPackage:
    """Build a model package; see ``fer-edge build -h`` for the options.

    ``onnx_only`` (``--target tensorrt``): everything up to the engine, for a machine without
    TensorRT: export, plugin form, Q/DQ in TensorRT's form, and an ONNX package whose sidecar marks
    it as prepared; the run ends with the commands that build the engine on the device.
    ``int8_ops`` (ONNX Runtime INT8): ``"measured"`` (default) keeps in FP32 the op groups measured
    as slower in int8 on this machine (recorded in the sidecar), ``"all"`` quantizes every one.
    """
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    target = target or ("tensorrt" if onnx_only else default_target())
    if target not in TARGETS:
        raise ExportError(f"unknown target {target!r}; choose {' or '.join(TARGETS)}")
    if onnx_only:
        if target != "tensorrt":
            raise ExportError("--onnx-only prepares an ONNX for a TensorRT build on the device; it needs --target "
                              "tensorrt (an ONNX Runtime package is an ONNX already)")
        if precision == "fp16":
            raise ExportError("--onnx-only writes FP32 or INT8 (Q/DQ) ONNX; for FP16 prepare the FP32 one and build it "
                              "on the device with --fp16 (TensorRT 8.5-10.x; 11 is strongly typed)")
    elif target == "tensorrt":
        from fer_edge.trt_compat import api_for, check_precision, installed_version

        # fails at once, saying how to install TensorRT or to use --target onnxruntime; FP16 on 11 is refused
        check_precision(api_for(installed_version()), precision)
    if fp16_weights and (target, precision) not in (("onnxruntime", "fp32"), ("onnxruntime", "int8")):
        raise ExportError("--fp16-weights stores an ONNX package's float weights as float16; it applies only to "
                          "--target onnxruntime, FP32 or INT8 (engines store their own weights)")
    precision, opts = resolve_options(target, precision, {"calib": calib_dir, "batch": batch, "workspace": workspace,
                                                          "dla": dla, "timing_cache": timing_cache, "method": method,
                                                          "int8_ops": int8_ops})
    with _signals_interrupt():
        source = _step(say, "1", f"load {model}", lambda: load_source(model, weights))
        batch_range = BatchRange.parse(opts["batch"]) if "batch" in opts else source.recipe.batch
        table = TARGETS[target]
        if source.prepared is not None:
            if onnx_only or target != "tensorrt":
                raise ExportError(f"{model} is an ONNX prepared for TensorRT (--onnx-only): build its engine with "
                                  f"`fer-edge build --model {model} --target tensorrt`")
            return _step(say, "5", "TensorRT engine", lambda: _build_prepared(source, precision, out, opts, say))
        out_path = Path(out) if out else Path(f"{source.model_id}_{precision}{table['suffix']}")
        if out_path.suffix != table["suffix"]:
            out_path = out_path.with_suffix(table["suffix"])
        if onnx_only:
            out_path = Path(out).with_suffix(".onnx") if out else Path(f"{source.model_id}_{precision}_tensorrt.onnx")
        exported = None
        portable = source.onnx_model
        if portable is not None:
            from fer_edge.builder.fold import fold_checked

            portable, folded = fold_checked(portable, calib.parity_faces(source.spec)[0])
            if folded:
                say(f"      folded {folded} space-to-depth stem(s) into a stride-2 conv (exact; checked on faces)")
        if source.torch_model is not None:
            from fer_edge.builder.export import export_model

            faces, origin = calib.parity_faces(source.spec)
            exported = _step(say, "2", f"export ONNX opset {source.recipe.opset}", lambda: export_model(
                source.torch_model, source.spec, batch_range, source.recipe.opset, faces, origin,
                source.recipe.parity_atol))
            say(f"      parity vs PyTorch on {len(faces)} {origin} faces: max |diff| {exported.parity_max_abs:.2e}")
            portable = exported.portable
        calibration_record = None
        final = portable
        if precision == "int8":
            from fer_edge.builder.quantize import FLAVOURS, QUIET_SHARE, quantize_int8

            cset = _step(say, "3", "calibration set", lambda: calibration_set(opts.get("calib"), source, calib_size, say))
            labels = cset.labels if (cset.labels >= 0).all() else None
            select = opts.get("int8_ops", "measured") == "measured" if target == "onnxruntime" else False
            quant = _step(say, "4", f"INT8 Q/DQ ({method})", lambda: quantize_int8(
                portable, cset.tensors, labels, method, exported.sites if exported else (), target=target,
                select_ops=select, batch=batch_range.opt))
            say(f"      top-1 agreement with FP32 on calibration faces: {quant.agreement}; "
                f"plugin regions kept float: {quant.excluded_regions}")
            if quant.selection:
                sel = quant.selection
                say(f"      kept FP32 by measurement: {', '.join(sel['float_op_groups']) or 'nothing'}; batch "
                    f"{sel['batch']}: FP32 {sel['fp32_ms']:.2f} ms, INT8 {sel['int8_ms']:.2f} ms "
                    f"(x{sel['speedup']:.2f}), agreement {100 * sel['agreement']:.1f} %")
                if (sel.get("foreign_cpu_share") or 0.0) > QUIET_SHARE:
                    warnings.warn(f"other processes took {100 * sel['foreign_cpu_share']:.0f} % of the CPU while the INT8 "
                                  "op selection was timed, so its choice of what to keep in FP32 may be wrong: rebuild on "
                                  "a quiet machine (or pass --int8-ops all)", stacklevel=2)
            final = quant.model
            calibration_record = {"manifest_sha256": cset.manifest_sha256, "method": method,
                                  "num_images": len(cset.tensors), "source": cset.manifest["source"],
                                  "regions_float": quant.excluded_regions, "agreement": quant.agreement,
                                  "activations": FLAVOURS[target]["activation"], "op_selection": quant.selection}
        training = dict(source.training or {})
        if fp16_weights:
            from fer_edge.builder.export import FP16_WEIGHTS_RTOL, store_weights_fp16

            faces, origin = calib.parity_faces(source.spec)
            final, err = _step(say, "4", "store weights as float16", lambda: store_weights_fp16(final, faces))
            say(f"      vs the FP32-weight graph on {len(faces)} {origin} faces: max |diff| {err:.2e} "
                f"(tolerance {FP16_WEIGHTS_RTOL:g})")
            training["weights_storage"] = {"dtype": "float16", "max_rel_logit_diff": err}
        sidecar = Sidecar(model_id=source.model_id, variant=source.variant, classes=source.classes, input=source.spec,
                          format=table["format"], file=out_path.name, precision=precision, batch=batch_range,
                          opset=source.recipe.opset, calibration=calibration_record,
                          metrics=dict(source.metrics or {}) if precision == "fp32" else {},
                          training=training)
        if onnx_only:
            if precision == "fp32" and exported is not None and exported.plugin is not None:
                final, sidecar.graph_form = exported.plugin, "plugin"  # what the device build would use
            sidecar.format, sidecar.tensorrt = "onnx", {"onnx_only": True}
            package = _step(say, "5", f"write {out_path}", lambda: _write_onnx_package(final, out_path, sidecar))
            say(device_build_instructions(package, opts))
            return package
        if target == "tensorrt":
            return _step(say, "5", "TensorRT engine", lambda: _tensorrt_package(final, exported, out_path, sidecar, opts,
                                                                                 precision))
        package = _step(say, "5", f"write {out_path}", lambda: _write_onnx_package(final, out_path, sidecar))
    say(f"package: {package.model_path} + {package.sidecar_path.name}\nnext: fer-edge run IMAGE --model {package.sidecar_path}")
    return package


def default_target() -> str:
    """TensorRT where it imports and a GPU answers, else ONNX Runtime."""
    try:
        from fer_edge.builder.tensorrt_builder import device_info
        from fer_edge.trt_compat import installed_version

        installed_version()
        device_info()
    except (ImportError, BackendUnavailableError):
        return "onnxruntime"
    return "tensorrt"


def _write_onnx_package(model: Any, out_path: Path, sidecar: Sidecar) -> ModelPackage:
    import onnx

    try:
        with atomic_path(out_path) as tmp:
            onnx.save(model, str(tmp))
        return write_package(out_path, sidecar)
    except BaseException:
        out_path.unlink(missing_ok=True)  # no model file without its sidecar
        raise


def _tensorrt_package(model: Any, exported: Any, out_path: Path, sidecar: Sidecar, opts: dict[str, Any],
                      precision: str) -> ModelPackage:
    import onnx

    from fer_edge.builder.tensorrt_builder import EngineOptions, build_engine

    plugin_library = None
    if sidecar.graph_form == "plugin":  # a prepared plugin-form ONNX: only the plugin library can build it
        from fer_edge.plugins import plugin_library_path

        plugin_library = plugin_library_path()
        if plugin_library is None:
            raise PluginLibraryError(f"{sidecar.model_id}: this ONNX has fer_edge plugin nodes, but the plugin library "
                                     "is not built here; reinstall fer_edge with nvcc and the TensorRT headers present "
                                     "(cpp/README.md), or prepare an INT8 / portable ONNX instead")
    elif exported is not None and exported.plugin is not None and precision != "int8":
        try:
            from fer_edge.plugins import plugin_library_path

            plugin_library = plugin_library_path()
        except ImportError:
            plugin_library = None
        if plugin_library is None:
            warnings.warn("the fer_edge plugin library is missing: building the portable form instead of the "
                          "plugin form (slower SimAM/CC Attention)", stacklevel=2)
        else:
            model, sidecar.graph_form = exported.plugin, "plugin"
    c, (h, w) = 3, sidecar.input.size
    options = EngineOptions(precision=precision, batch=sidecar.batch, input_shape=(c, h, w),
                            workspace_mb=int(opts.get("workspace", 1024)), dla_core=opts.get("dla"),
                            timing_cache=Path(opts["timing_cache"]) if "timing_cache" in opts else None,
                            plugin_library=plugin_library)
    try:
        with tempfile.TemporaryDirectory(prefix="fer_edge_trt_") as tmp:
            onnx_path = Path(tmp) / "model.onnx"
            onnx.save(model, str(onnx_path))
            sidecar.tensorrt = build_engine(onnx_path, out_path, options)  # records the plugin library version
        return write_package(out_path, sidecar)
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise


def _build_prepared(source: Source, precision: str, out: str | None, opts: dict[str, Any],
                    say: Callable[[str], None]) -> ModelPackage:
    """The device half of ``--onnx-only``: an engine from the prepared ONNX, as it is."""
    prepared = source.prepared
    assert prepared is not None and source.onnx_model is not None
    if prepared.precision == "int8":
        if (prepared.calibration or {}).get("activations") != "int8":
            raise ExportError(f"{prepared.file} is not in TensorRT's Q/DQ form (symmetric int8); prepare it with "
                              "`fer-edge build --int8 --target tensorrt --onnx-only`")
        if precision == "fp16":
            warnings.warn(f"{prepared.file} is an INT8 Q/DQ graph: building int8, not fp16", stacklevel=3)
        precision = "int8"
    elif precision == "int8":
        raise ExportError(f"{prepared.file} is FP32: INT8 needs Q/DQ from calibration; prepare it with --int8 --onnx-only")
    out_path = Path(out).with_suffix(".engine") if out else Path(f"{source.model_id}_{precision}.engine")
    say(f"      {prepared.file}: prepared {prepared.precision} {prepared.graph_form} ONNX -> {precision} engine")
    sidecar = Sidecar(model_id=prepared.model_id, variant=prepared.variant, classes=prepared.classes,
                      input=prepared.input, format="tensorrt", file=out_path.name, precision=precision,
                      batch=BatchRange.parse(opts["batch"]) if "batch" in opts else prepared.batch,
                      opset=prepared.opset, graph_form=prepared.graph_form, calibration=prepared.calibration,
                      metrics=dict(prepared.metrics) if precision == "fp32" else {}, training=dict(prepared.training))
    package = _tensorrt_package(source.onnx_model, None, out_path, sidecar, opts, precision)
    say(f"package: {package.model_path} + {package.sidecar_path.name}\nnext: fer-edge run IMAGE --model {package.sidecar_path}")
    return package


def device_build_instructions(package: ModelPackage, opts: dict[str, Any]) -> str:
    """What to run on the device for an ``--onnx-only`` package: ``fer-edge build``, or ``trtexec``."""
    from fer_edge.trt_compat import trtexec_flags

    side = package.sidecar
    h, w = side.input.size
    b = side.batch
    name, engine = package.model_path.name, package.model_path.with_suffix(".engine").name
    shapes = " ".join(f"--{k}Shapes={side.input.name}:{n}x3x{h}x{w}" for k, n in (("min", b.min), ("opt", b.opt),
                                                                                      ("max", b.max)))
    library = ("$(python -c 'from fer_edge.plugins import plugin_library_path as p; print(p())')"
               if side.graph_form == "plugin" else None)
    extra = []
    if "workspace" in opts:
        extra.append(f"--memPoolSize=workspace:{int(opts['workspace'])}M")
    if "dla" in opts:
        extra += [f"--useDLACore={int(opts['dla'])}", "--allowGPUFallback"]
    if "timing_cache" in opts:
        extra.append(f"--timingCacheFile={opts['timing_cache']}")
    base = f"trtexec --onnx={name} --saveEngine={engine} {shapes}"
    lines = [(f"package: {package.model_path} + {package.sidecar_path.name} ({side.precision}, {side.graph_form} "
              "form, prepared for TensorRT; not for ONNX Runtime)"),
             "next, on the device (TensorRT and fer_edge installed there; copy both files):",
             f"  fer-edge build --model {package.sidecar_path.name} --target tensorrt -o {engine}",
             "or with trtexec (an engine without a fer_edge sidecar, for trtexec/your own runtime):"]
    by_flags: dict[str, list[str]] = {}
    for label, version in (("8.5", "8.5"), ("8.6", "8.6"), ("10.x", "10.3"), ("11.x", "11.1")):
        by_flags.setdefault(" ".join(trtexec_flags(version, side.precision, library) + extra), []).append(label)
    lines += [f"  TensorRT {', '.join(labels)}: {base} {flags}".rstrip() for flags, labels in by_flags.items()]
    return "\n".join(lines)
