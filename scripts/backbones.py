"""The backbones (model.arch): one table, scripts/archs.json, read here and
by Go (scripts.Archs). Everything architecture-specific that the builder
needs goes through this module: the tf_keras.applications constructor, the
preprocessing, the block names --unfreeze-from takes, the feature taps and
their widths, and which taps model.feature_blocks auto chooses between.

Taps are named by blocks (stage ends); "top" is the base's own output (the
last layer of tf_keras.applications' include_top=False model), which is
every architecture's deepest tap and Grad-CAM's layer. Xception keeps its
own tap rule (a block's output is the residual Add that closes it) so that
its models are exactly what they were before other architectures came.
"""

import dataclasses
import json
import os
import re

ARCHS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "archs.json")
DEFAULT_ARCH = "xception"


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str
    display: str
    constructor: str
    kwargs: dict
    preprocess: str  # "tf": x/127.5-1 before the base; "inside": the base scales 0..255 itself
    image_size: int
    min_image_size: int
    tap_rule: str  # "xception" or "last"
    blocks: tuple
    unfreeze_from: str
    taps: tuple
    widths: tuple
    middle: tuple

    @property
    def last_tap(self):
        return self.taps[-1]

    @property
    def choices(self):
        """What model.feature_blocks auto chooses between: the deepest tap
        alone, then the middle stage ends with it."""
        return ((self.last_tap,), self.middle)

    def width(self, tap):
        return self.widths[self.taps.index(tap)]

    def build(self, keras, shape, weights=None):
        """The base without its top, from tf_keras.applications."""
        ctor = getattr(keras.applications, self.constructor)
        return ctor(include_top=False, weights=weights, input_shape=shape, **self.kwargs)


def _load():
    with open(ARCHS_FILE, encoding="utf-8") as f:
        table = json.load(f)["archs"]
    out = {}
    for a in table:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in a.items()}
        out[a["name"]] = Arch(**fields)
    return out


ARCHS = _load()


def names():
    return tuple(ARCHS)


def get(name):
    """The Arch called name; KeyError names the valid ones (the caller turns
    it into a ConfigError)."""
    if name not in ARCHS:
        raise KeyError(f"--arch {name}: unknown architecture; use one of {', '.join(ARCHS)}")
    return ARCHS[name]


def in_block(block, layer_name):
    """Whether layer_name belongs to block: it starts with the block's name,
    not followed by a digit or by _digit (block1 is not block11,
    expanded_conv is not expanded_conv_1, block_1 is not block_10)."""
    return re.match(re.escape(block) + r"(?![0-9])(?!_[0-9])", layer_name) is not None
