"""Build the compiled core.

Compiler directives live here and only here. Environment switches:

- ``RLTRADER_DEBUG=1``: bounds and wraparound checks on, ``-O0 -g``, the ``RLTRADER_DEBUG`` macro
  defined (the core then checks every invariant after every message).
- ``RLTRADER_ANNOTATE=1``: write Cython's annotated HTML next to each ``.pyx``.
"""

import os
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

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
# the core's hot path is static functions inlined into the batch loops (one copy of a
# function per caller, by fused tags: _book_kernels.pxi, _book_matching.pxi); GCC's
# default limit on a unit's growth by inlining stopped short of them as the module grew,
# its identical-code folding merged copies back into one function called from two
# places, which then was not inlined, and its straight-line vectorizer packed event and
# account fields through vector registers (docs/envs.md, "Sixth core round"). GCC's
# options: a compiler that does not take one (clang) builds without it.
INLINE_ARGS = ["--param=inline-unit-growth=100", "-fno-ipa-icf", "-fno-tree-slp-vectorize"]
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



class BuildExt(build_ext):
    """``build_ext`` that gives ``_book`` the inlining options its compiler accepts."""

    def build_extensions(self) -> None:
        accepted = [flag for flag in INLINE_ARGS if not DEBUG and self._accepts(flag)]
        for ext in self.extensions:
            if ext.name == "rltrader._book":
                ext.extra_compile_args = [*ext.extra_compile_args, *accepted]
        super().build_extensions()

    def _accepts(self, flag: str) -> bool:
        """Whether the compiler builds an empty file with ``flag``, warnings as errors."""
        with tempfile.TemporaryDirectory() as folder:
            source = os.path.join(folder, "probe.c")
            with open(source, "w") as f:
                f.write("int main(void) { return 0; }\n")
            try:
                self.compiler.compile([source], output_dir=folder,
                                      extra_postargs=[flag, "-Werror"])
            except CompileError:
                return False
        return True


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        compile_time_env={"DEBUG": DEBUG},
    )
)
