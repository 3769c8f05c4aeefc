"""The wheel carries a native library: mark it platform-specific. The version is read from the
`PHI4_VERSION_*` macros of include/phi4.h, the one source of libphi4's version."""
import os
import re

from setuptools import setup
from setuptools.dist import Distribution

try:
    from wheel.bdist_wheel import bdist_wheel as _bdist_wheel

    class bdist_wheel(_bdist_wheel):
        def finalize_options(self):
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self):
            _, _, plat = super().get_tag()
            return "py3", "none", plat  # ctypes: one wheel for every CPython 3

    cmdclass = {"bdist_wheel": bdist_wheel}
except ImportError:  # pragma: no cover
    cmdclass = {}


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True


def _version():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.environ.get("PHI4_SOURCE_DIR") or os.path.dirname(os.path.dirname(here))
    for header in (os.path.join(root, "include", "phi4.h"), os.path.join(here, "phi4", "lib", "phi4.h")):
        if os.path.exists(header):
            text = open(header).read()
            return ".".join(re.search(rf"#define PHI4_VERSION_{p} (\d+)", text).group(1)
                            for p in ("MAJOR", "MINOR", "PATCH"))
    raise RuntimeError("cannot find include/phi4.h for the version; set PHI4_SOURCE_DIR")


setup(distclass=BinaryDistribution, cmdclass=cmdclass, version=_version())
