"""tinyscale: the (resolution, width, depth) recipe for EfficientNet-B0 at a FLOPs budget.

Kept import-light: ``import tinyscale`` loads no torch; the helpers below import their stage
when called.
"""


def load_exported(path):
    """Rebuild an exported network (see `tinyscale.export.load.load_exported`)."""
    from tinyscale.export.load import load_exported as _load_exported

    return _load_exported(path)
