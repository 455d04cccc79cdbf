"""Build the compiled core.

Compiler directives live here and only here. Environment switches:

- ``RLTRADER_DEBUG=1``: bounds and wraparound checks on, ``-O0 -g``, the ``RLTRADER_DEBUG`` macro
  defined (the core then checks every invariant after every message).
- ``RLTRADER_ANNOTATE=1``: write Cython's annotated HTML next to each ``.pyx``.
"""

import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("RLTRADER_DEBUG", "") not in ("", "0")
ANNOTATE = os.environ.get("RLTRADER_ANNOTATE", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}
compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if DEBUG:
    macros += [("RLTRADER_DEBUG", "1")]

extensions = [
    Extension(
        f"rltrader.{name}",
        [f"rltrader/{name}.pyx"],
        include_dirs=[np.get_include()],
        extra_compile_args=compile_args,
        define_macros=macros,
    )
    for name in ("_book", "_flow", "_itch", "_env", "_probe", "_analytics")
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        compile_time_env={"DEBUG": DEBUG},
    )
)
