"""PEP 517 backend: builds libphi4.so with the repository's `make lib` (Swift, release, static
Swift runtime) and puts it inside the package before setuptools builds the wheel.

The repository root is two levels above this package (or PHI4_SOURCE_DIR). The wheel is
platform-specific (it carries a native library); its only system dependency is OpenBLAS, which
`make wheel` then bundles (auditwheel). With PHI4_WHEEL_CLI (PHI4_WHEEL_SERVER, PHI4_WHEEL_HUB) set to
the path of a phi4 command-line tool (phi4-server, phi4-hub), each is copied the same way. With
PHI4_WHEEL_CLI set to the path of a phi4 command-line
tool (`make wheel` builds one with the Swift runtime linked in statically), the tool goes into the
package as phi4/bin/phi4, behind the `phi4` command; otherwise the package has no tool.
"""
import os
import shutil
import subprocess

from setuptools import build_meta as _orig
from setuptools.build_meta import *  # noqa: F401,F403

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _build_library():
    root = os.environ.get("PHI4_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
    if not os.path.exists(os.path.join(root, "Package.swift")):
        if os.path.exists(os.path.join(HERE, "phi4", "lib", "libphi4.so.1")):
            return  # an sdist with the library already inside
        raise RuntimeError(f"cannot find the libphi4 sources (Package.swift) at {root}; set PHI4_SOURCE_DIR")
    subprocess.run(["make", "-s", "lib"], cwd=root, check=True)
    dest = os.path.join(HERE, "phi4", "lib")
    os.makedirs(dest, exist_ok=True)
    shutil.copyfile(os.path.join(root, "lib", "libphi4.so.1"), os.path.join(dest, "libphi4.so.1"))
    shutil.copyfile(os.path.join(root, "include", "phi4.h"), os.path.join(dest, "phi4.h"))  # the version, in an sdist
    bindir = os.path.join(HERE, "phi4", "bin")
    shutil.rmtree(bindir, ignore_errors=True)
    for env, name in (("PHI4_WHEEL_CLI", "phi4"), ("PHI4_WHEEL_SERVER", "phi4-server"), ("PHI4_WHEEL_HUB", "phi4-hub")):
        tool = os.environ.get(env)
        if tool:
            os.makedirs(bindir, exist_ok=True)
            shutil.copyfile(tool, os.path.join(bindir, name))
            os.chmod(os.path.join(bindir, name), 0o755)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _build_library()
    return _orig.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _build_library()
    return _orig.build_editable(wheel_directory, config_settings, metadata_directory)
