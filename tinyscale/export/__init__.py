"""Export: a recipe's network as ``recipe.json`` + safetensors weights + a verified ONNX file.

Modules:
    onnx        the one ONNX writer (whole networks, verified; single parts for timing)
    bundle      the export built in memory (`build_export`), archived or written out
    load        reading an export back, its manifest checked; `load_exported`
    from_study  a study's answer exported (`export_from_study`, ``tinyscale export``)
"""

from tinyscale.export.bundle import (ARCHIVE_SUFFIXES, EXPORT_FORMAT, EXPORT_KIND, FORMATS, MANIFEST, ONNX,
                                     UNSUPPORTED_ARCHIVES, WEIGHTS, ExportBundle, TrainedWeights, archive_bytes,
                                     archive_kind, build_export, check_export_path, export_recipe, parse_formats,
                                     safetensors_bytes, tinyscale_version, write_export)
from tinyscale.export.from_study import ExportResult, export_from_study, train_for_export
from tinyscale.export.load import check_manifest, load_exported, read_export
from tinyscale.export.onnx import (ONNX_TOLERANCE, dynamo_onnx, network_onnx, onnx_available, onnx_max_abs_diff,
                                   part_onnx, quiet_exporter)

__all__ = [
    "ARCHIVE_SUFFIXES", "EXPORT_FORMAT", "EXPORT_KIND", "FORMATS", "MANIFEST", "ONNX", "ONNX_TOLERANCE",
    "UNSUPPORTED_ARCHIVES", "WEIGHTS", "ExportBundle", "ExportResult", "TrainedWeights", "archive_bytes",
    "archive_kind", "build_export", "check_export_path", "check_manifest", "dynamo_onnx", "export_from_study",
    "export_recipe", "load_exported", "network_onnx", "onnx_available", "onnx_max_abs_diff", "parse_formats",
    "part_onnx", "quiet_exporter", "read_export", "safetensors_bytes", "tinyscale_version", "train_for_export",
    "write_export",
]
