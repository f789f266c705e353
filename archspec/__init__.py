"""archspec: convolutional network architectures as data.

``archspec.check(spec)`` validates a YAML spec and reports exact symbolic shapes without
importing torch; ``archspec.build(spec)`` compiles it into a ``torch.nn.Module``.
"""

from archspec.api import Report, analyse, build, check
from archspec.errors import SpecError

__version__ = "0.1.0"
__all__ = ["SpecError", "Report", "analyse", "build", "check", "__version__"]
