"""ONNX writing, for the export bundle and for timing on onnxruntime: one place that calls
``torch.onnx.export``.

Two graphs are written here:

- a whole network (`network_onnx`): torch's dynamo exporter, one self-contained file (no
  external data), input ``images`` with a dynamic batch, output ``logits``; it is checked
  against the PyTorch module with onnxruntime before it is returned (max abs difference
  <= `ONNX_TOLERANCE`), so a graph that disagrees is never written or timed;
- one part of a network (`part_onnx`): static shapes, input ``x``; the TorchScript exporter
  first (~0.2 s a part instead of ~1.5 s with dynamo), dynamo where that exporter is gone or
  refuses.

The exporters print progress and warnings of their own (e.g. "torchvision is not installed");
those are not ours to show, so they are silenced while a graph is written.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

class ExportCheckError(RuntimeError):
    """The exporter's output failed its check (a graph that disagrees with the module, stray
    files): a fault of the toolchain, not of the user's input (`tinyscale.cli`: one line, exit 1)."""


ONNX_TOLERANCE = 1e-4  # max abs difference of graph vs module outputs, per unit of the largest logit past 1
EXPORT_EXTRAS = ("onnx", "onnxruntime", "onnxscript")  # what `pip install 'tinyscale[export]'` adds


def onnx_available() -> str | None:
    """None when ONNX export can run here, otherwise the reason it cannot."""
    missing = [m for m in EXPORT_EXTRAS if importlib.util.find_spec(m) is None]
    if missing:
        return (f"ONNX left out: {', '.join(missing)} not installed "
                f"(pip install 'tinyscale[export]' adds the export extras)")
    return None


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """torch.onnx's log below errors, warnings and stdout swallowed; all restored after."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def dynamo_onnx(module, example, *, input_names: list[str], output_names: list[str] | None = None,
                dynamic_shapes=None) -> bytes:
    """``module`` run on ``example`` as ONNX bytes, by the dynamo exporter, in one file.

    The exporter writes to a path, so it writes into a temporary directory; anything beside the
    one file (external weights) would make the bytes incomplete, and is an error."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(module, (example,), str(path), dynamo=True, external_data=False,
                          input_names=input_names, output_names=output_names, dynamic_shapes=dynamic_shapes)
        extra = [p.name for p in Path(tmp).iterdir() if p.name != path.name]
        if extra:
            raise ExportCheckError(f"the ONNX exporter wrote extra files {extra}; expected one self-contained file")
        return path.read_bytes()


def part_onnx(module, example) -> bytes:
    """One part of a network as ONNX (static shapes, input ``x``): the TorchScript exporter,
    which is fast, else the dynamo one."""
    import torch

    with quiet_exporter():
        buf = io.BytesIO()
        try:
            torch.onnx.export(module, (example,), buf, dynamo=False, input_names=["x"])
            return buf.getvalue()
        except Exception:  # the legacy exporter is gone or refuses: the dynamo one
            return dynamo_onnx(module, example, input_names=["x"])


def onnx_max_abs_diff(data: bytes, module, inputs, *, input_name: str, output_name: str) -> tuple[float, float]:
    """(the largest absolute difference between the graph's output on ``inputs`` (onnxruntime,
    CPU) and the module's, the largest absolute output of the module)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = module(inputs).numpy()
    got = session.run([output_name], {input_name: inputs.numpy()})[0]
    return float(np.max(np.abs(got - expected))), float(np.max(np.abs(expected)))


def network_onnx(model, resolution: int, seed: int) -> tuple[bytes, float]:
    """A whole network (eval mode) as verified ONNX: (bytes, max abs difference from the module).

    Traced on a batch of 2 random images (seeded) and checked on a batch of 3 drawn next from
    the same generator, so the dynamic batch is exercised; a difference over `ONNX_TOLERANCE`
    (relative to the largest logit beyond 1) is an `ExportCheckError`."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    example = torch.randn(2, 3, resolution, resolution, generator=gen)
    with quiet_exporter():
        data = dynamo_onnx(model, example, input_names=["images"], output_names=["logits"],
                           dynamic_shapes=({0: torch.export.Dim("batch")},))
    check = torch.randn(3, 3, resolution, resolution, generator=gen)
    diff, scale = onnx_max_abs_diff(data, model, check, input_name="images", output_name="logits")
    # float32 rounding grows with the outputs: a briefly trained network's logits reach the
    # hundreds (536 after 5 steps on toy data, 1.2e-3 apart: 2e-6 relative), so the tolerance is
    # relative to the largest logit beyond 1.
    if not diff <= ONNX_TOLERANCE * max(1.0, scale):
        raise ExportCheckError(
            f"the ONNX graph disagrees with the PyTorch module (max abs diff {diff:.3g} > {ONNX_TOLERANCE} x "
            f"{max(1.0, scale):.3g}, the largest logit); nothing was written"
        )
    return data, diff
