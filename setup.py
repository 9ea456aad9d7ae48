"""Build script: runs CMake + Ninja once for every native module of semanticodec_rt.

Modules:
    semanticodec_rt._C      C++ CPU kernels (csrc/), always built.
    semanticodec_rt._cuda   CUDA kernels (cuda/), built when nvcc is found.

Environment:
    SCRT_CUDA=auto|0|1        auto (default): build _cuda if nvcc is found; 0: never;
                              1: a missing nvcc is an error.
    CMAKE_CUDA_ARCHITECTURES  passed through to CMake (default there: 90).
    MAX_JOBS / CMAKE_BUILD_PARALLEL_LEVEL   build parallelism (default: CPU count).
    CMAKE_ARGS                extra CMake arguments (shell-quoted).

torch is not a build requirement: install torch==2.13.0 first, then
``pip install --no-build-isolation -e .``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
ALL_MODULES = ("semanticodec_rt._C", "semanticodec_rt._cuda")


def cuda_mode() -> str:
    """SCRT_CUDA as one of "auto", "0", "1"."""
    mode = os.environ.get("SCRT_CUDA", "auto").strip().lower() or "auto"
    if mode not in ("auto", "0", "1"):
        raise RuntimeError(f"SCRT_CUDA must be auto, 0 or 1, got {mode!r}")
    return mode


def find_nvcc(mode: str) -> str | None:
    """Path of nvcc, or None when CUDA is off (mode "0") or nvcc is absent (mode "auto")."""
    if mode == "0":
        return None
    # CMake alone does not look in $CUDA_HOME/bin, so find nvcc here and hand it over.
    candidates = [
        os.environ.get("CUDACXX"),
        shutil.which("nvcc"),
        os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc"),
    ]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    if mode == "1":
        raise RuntimeError("SCRT_CUDA=1 but no nvcc found (checked $CUDACXX, PATH, $CUDA_HOME/bin)")
    return None


class CMakeExtension(Extension):
    """A module produced by the shared CMake project (no sources for setuptools to compile)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """Configures and builds the CMake project once, writing every module next to the package."""

    nvcc: str | None = None
    require_cuda = False

    def run(self) -> None:
        self._cmake_done = False
        super().run()

    def build_extension(self, ext: Extension) -> None:
        if self._cmake_done:
            return
        self._cmake_done = True
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / "cmake"  # build_temp is per Python version
        build_dir.mkdir(parents=True, exist_ok=True)
        args = [
            "-G", "Ninja",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DSCRT_OUTPUT_DIR={out_dir}",
            f"-DCMAKE_BUILD_TYPE={'Debug' if self.debug else 'Release'}",
            f"-DSCRT_WITH_CUDA={'ON' if self.nvcc else 'OFF'}",
            f"-DSCRT_REQUIRE_CUDA={'ON' if self.require_cuda else 'OFF'}",
        ]
        if self.nvcc:
            args.append(f"-DCMAKE_CUDA_COMPILER={self.nvcc}")
        if os.environ.get("CMAKE_CUDA_ARCHITECTURES"):
            args.append(f"-DCMAKE_CUDA_ARCHITECTURES={os.environ['CMAKE_CUDA_ARCHITECTURES']}")
        args += shlex.split(os.environ.get("CMAKE_ARGS", ""))
        self._remove_stale_modules()
        jobs = (
            os.environ.get("MAX_JOBS")
            or os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL")
            or str(os.cpu_count() or 1)
        )
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), *args], check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "-j", jobs], check=True)
        # Every declared module must exist now; setuptools would fail later, less clearly.
        for e in self.extensions:
            path = Path(self.get_ext_fullpath(e.name))
            if not path.exists():
                hint = " (SCRT_CUDA=0 builds without CUDA)" if e.name.endswith("_cuda") else ""
                raise RuntimeError(f"CMake did not produce {path.name}{hint}")

    def _remove_stale_modules(self) -> None:
        """Delete in-tree modules of this Python that this build no longer makes.

        An editable install imports from the source tree; a _cuda left there by an earlier build
        would otherwise keep loading after a build with SCRT_CUDA=0.
        """
        declared = {e.name for e in self.extensions}
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        for name in ALL_MODULES:
            stale = ROOT / (name.replace(".", os.sep) + suffix)
            if name not in declared and stale.exists():
                print(f"removing {stale.relative_to(ROOT)}: not part of this build")
                stale.unlink()


CMakeBuild.require_cuda = cuda_mode() == "1"
CMakeBuild.nvcc = find_nvcc(cuda_mode())
ext_modules = [CMakeExtension("semanticodec_rt._C")]
if CMakeBuild.nvcc:
    ext_modules.append(CMakeExtension("semanticodec_rt._cuda"))

setup(
    packages=find_packages(include=["semanticodec_rt", "semanticodec_rt.*"]),
    # the embedded default model (int8, <= 25 MB) travels with the package
    package_data={"semanticodec_rt": ["assets/*.safetensors", "assets/FARGAN_LICENSE"]},
    ext_modules=ext_modules,
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
