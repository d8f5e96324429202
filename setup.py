"""Builds the compiled kernels: ``minitl._C`` (C++, always) and ``minitl._C_cuda``
(CUDA, when ``nvcc`` is found; ``MINITL_CUDA=0/1`` forces the choice).

A failed CUDA build never breaks the CPU install: the failure is written to
``minitl/_cuda_build.txt`` so that ``minitl.cuda.why_unavailable()`` can say
what happened.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

try:
    from setuptools.modified import newer_group
except ImportError:  # setuptools < 69
    from distutils.dep_util import newer_group

HERE = os.path.dirname(os.path.abspath(__file__))


def _compiler_accepts(compiler, flag) -> bool:
    """Compile an empty program with ``flag`` (a string or a list) to see whether the
    compiler takes it."""
    flags = [flag] if isinstance(flag, str) else list(flag)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.cpp")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
                    if "-fopenmp" in flags else "int main() { return 0; }\n")
        try:
            compiler.compile([src], output_dir=tmp, extra_postargs=flags)
        except Exception:
            return False
    return True


# ------------------------------------------------------- CPU: minitl._C
# The module's own flags assume only the architecture's baseline (x86-64:
# SSE2), so it imports on any CPU without an illegal instruction. The hot
# kernels are compiled once more per instruction set, each variant a
# translation unit of its own with its own flags (csrc/cpu/isa/*.cpp); _C
# picks one when it loads by what the CPU reports (csrc/cpu/isa.h, isa.cpp;
# MINITL_CPU_ISA overrides).
#
# Link order matters: where several objects define the same inline function
# or template instance (a C++ library one such as std::vector's, compiled
# with different flags in each), the linker keeps the first. So the AVX2 and
# AVX-512 objects are compiled separately and linked last, after every
# object built with baseline flags (setuptools sorts `sources`, so their
# order cannot carry this), and _check_variant_symbols() fails the build if
# baseline code could still end up calling a copy compiled for a higher
# instruction set. Our own code in the variants has a namespace per variant
# and shares nothing.
#
# MINITL_NATIVE_ARCH=1 builds everything with -march=native (a local build
# for this machine only). MINITL_EMULATE_AVX512=1 builds the AVX-512 variant
# from pairs of AVX2 registers: a test build for machines without AVX-512
# (the variant's tiles and edges run for real; build_info says "emulated").
X86 = __import__("platform").machine().lower() in ("x86_64", "amd64")
AVX2_FLAGS = ["-mavx2", "-mfma"]
AVX512_FLAGS = AVX2_FLAGS + ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl"]
# Best last (link order); csrc/cpu/isa/generic.cpp is an ordinary source.
VARIANTS = [
    ("csrc/cpu/isa/avx2.cpp", AVX2_FLAGS),
    ("csrc/cpu/isa/avx512.cpp", AVX2_FLAGS + ["-DMINITL_EMULATE_AVX512"]
     if os.environ.get("MINITL_EMULATE_AVX512") == "1" else AVX512_FLAGS),
]


def _cpu_flags():
    if sys.platform == "win32":
        return ["/O2"]
    if os.environ.get("MINITL_NATIVE_ARCH") == "1":
        return ["-O3", "-march=native"]
    return ["-O3"]


def _defined_and_undefined(obj: str):
    """(defined, undefined) external symbols of an object file, by `nm`."""
    out = subprocess.run([shutil.which("nm"), "-P", obj], capture_output=True, text=True,
                         check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            (undefined if parts[1] == "U" else defined if parts[1] in "TWVDRBuiv" else set()).add(
                parts[0])
    return defined, undefined


def _check_variant_symbols(levels):
    """Fail if an object could link to code compiled for a higher instruction set.

    ``levels``: lists of objects, baseline first. A symbol an object uses but
    no object of its own or a lower level defines would be taken from a
    higher level, i.e. run (say) AVX2 code on a CPU that may lack AVX2. The
    variant tables (minitl::variant_*) are the intended exception: data,
    read by the dispatcher, which checks the CPU before calling anything.
    """
    if not shutil.which("nm"):
        return
    syms = [[_defined_and_undefined(o) for o in objs] for objs in levels]
    below = set()
    for i, level in enumerate(syms):
        below |= set().union(*(d for d, _ in level))
        above = set().union(*(d for lv in syms[i + 1:] for d, _ in lv))
        wanted = set().union(*(u for _, u in level))
        bad = sorted(s for s in (wanted - below) & above if "variant_" not in s)
        if bad:
            raise RuntimeError("minitl._C: baseline-level code would call code compiled for a "
                               f"higher instruction set (link order cannot fix it): {bad[:10]}")


class BuildExt(build_ext):
    """Adds OpenMP where the compiler has it (serial fallback otherwise) and the
    instruction-set variants of the CPU kernels."""

    def build_extensions(self):
        for ext in self.extensions:
            if ext.name == "minitl._C" and self.compiler.compiler_type == "unix":
                if _compiler_accepts(self.compiler, "-fopenmp"):
                    ext.extra_compile_args.append("-fopenmp")
                    ext.extra_link_args.append("-fopenmp")
                    ext.define_macros.append(("MINITL_OPENMP", "1"))
        super().build_extensions()

    def build_extension(self, ext):
        if ext.name != "minitl._C":
            return super().build_extension(ext)
        target = self.get_ext_fullpath(ext.name)
        fresh = self.force or newer_group(ext.sources + ext.depends, target, "newer")
        ext.extra_objects = self._compile_variants(ext) if fresh else []
        super().build_extension(ext)  # compiles the baseline sources, links the variants last
        if fresh and self.compiler.compiler_type == "unix":
            base = [self.compiler.object_filenames([s], output_dir=self.build_temp)[0]
                    for s in sorted(ext.sources)]
            try:
                _check_variant_symbols([base] + [[o] for o in ext.extra_objects])
            except RuntimeError:
                os.remove(target)
                raise

    def _compile_variants(self, ext):
        """Compile csrc/cpu/isa/avx2.cpp and avx512.cpp with their own flags.

        Off x86-64, with MSVC, or where the compiler rejects the flags, a
        variant file is compiled without them and then defines no kernels
        (it checks the compiler's macros), so the build never fails for want
        of a variant; the module then offers the variants it has.
        """
        use_flags = X86 and self.compiler.compiler_type == "unix"
        objects = []
        for src, flags in VARIANTS:
            extra = flags if use_flags and _compiler_accepts(self.compiler, flags) else []
            if use_flags and not extra:
                print(f"minitl._C: the compiler rejects {' '.join(flags)}; {src} builds no variant",
                      flush=True)
            objects += self.compiler.compile(
                [src], output_dir=self.build_temp, macros=ext.define_macros,
                include_dirs=ext.include_dirs, debug=self.debug,
                extra_postargs=list(ext.extra_compile_args) + extra, depends=ext.depends)
        return objects


cpu_ext = Pybind11Extension(
    "minitl._C",
    sorted(glob.glob("csrc/cpu/*.cpp")) + ["csrc/cpu/isa/generic.cpp"],
    include_dirs=["csrc/cpu"],
    # Headers and the variant sources: a change to any of them rebuilds _C.
    depends=sorted(glob.glob("csrc/cpu/*.h") + glob.glob("csrc/cpu/isa/*.h")) + [s for s, _ in VARIANTS],
    cxx_std=17,
    extra_compile_args=_cpu_flags(),
)

# ---------------------------------------------------------------- CUDA: minitl._C_cuda
# nvcc compiles csrc/cuda/*.cu into objects; the host compiler builds the
# pybind11 binding (bind.cpp) and links them with the static CUDA runtime,
# so the module needs only the driver at run time. The CPU module is built
# first and a CUDA failure is caught, logged to minitl/_cuda_build.txt and
# printed as a warning (fatal only with MINITL_CUDA=1).
#
# Architectures: the issue asks for sm_70..sm_90 plus PTX. CUDA 13's nvcc has
# dropped sm_70, so we build every requested architecture that
# `nvcc --list-gpu-arch` lists, plus PTX of the newest, and name the skipped
# ones in the build log. MINITL_CUDA_ARCHS="90" (or "80;90") narrows the list
# for a quick build on one machine. No --use_fast_math: the tests hold float32
# kernels to 1e-5 of a float64 reference.
import warnings  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

CUDA_EXT = "minitl._C_cuda"
CUDA_ARCHS = ("70", "75", "80", "86", "89", "90")
CUDA_LOG = os.path.join("minitl", "_cuda_build.txt")


def _cuda_mode() -> str:
    """'off' (MINITL_CUDA=0), 'required' (MINITL_CUDA=1) or 'auto'."""
    value = os.environ.get("MINITL_CUDA", "").strip().lower()
    return {"0": "off", "false": "off", "no": "off", "1": "required", "true": "required",
            "yes": "required"}.get(value, "auto")


def _find_nvcc():
    """nvcc from $CUDA_HOME (or $CUDA_PATH), PATH, or /usr/local/cuda; None if absent."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    for path in (os.path.join(home, "bin", "nvcc") if home else None, shutil.which("nvcc"),
                 "/usr/local/cuda/bin/nvcc"):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _cuda_lib_dir(nvcc: str):
    """The directory holding libcudart_static.a (nvcc may be a wrapper script)."""
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
             os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), "/usr/local/cuda"]
    for home in filter(None, homes):
        for lib in ["lib64", "lib"] + sorted(glob.glob(os.path.join(home, "targets", "*", "lib"))):
            lib = os.path.join(home, lib)
            if os.path.isfile(os.path.join(lib, "libcudart_static.a")):
                return lib
    raise RuntimeError(f"libcudart_static.a not found near {nvcc}; set CUDA_HOME")


def _cuda_archs(nvcc: str):
    """(architectures to build, oldest first; requested ones this nvcc lacks)."""
    wanted = os.environ.get("MINITL_CUDA_ARCHS", "")
    wanted = [a.strip().replace("sm_", "").replace(".", "")
              for a in wanted.replace(",", ";").replace(" ", ";").split(";") if a.strip()]
    wanted = sorted(set(wanted or CUDA_ARCHS), key=lambda a: int(a) if a.isdigit() else 0)
    try:
        out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True,
                             check=True).stdout
        supported = {a.split("_", 1)[1] for a in out.split() if a.startswith("compute_")}
    except (OSError, subprocess.CalledProcessError):  # an nvcc older than 11.0
        supported = set(wanted)
    built = [a for a in wanted if a in supported]
    skipped = [f"sm_{a}" for a in wanted if a not in supported]
    return built, skipped


# -lineinfo: compute-sanitizer (and profilers) report faults by source line;
# it adds line tables only, no code change and no slowdown.
NVCC_FLAGS = ("-std=c++17", "-O3", "-lineinfo", "-Xcompiler", "-fPIC", "-Icsrc/cuda")


def _nvcc_compile(nvcc: str, sources, headers, out_dir: str, arch_flags):
    """Compile each .cu to an object, two at a time; skip up-to-date objects.

    An object is rebuilt when its .cu or any header is newer, or when the
    command (nvcc, flags, architectures) differs from the one recorded beside
    it in ``<object>.flags``.
    """
    os.makedirs(out_dir, exist_ok=True)
    flags = [*NVCC_FLAGS, *arch_flags]
    stamp = "\n".join([nvcc, *flags])

    def one(src):
        obj = os.path.join(out_dir, os.path.basename(src)[:-3] + ".o")
        flag_file = obj + ".flags"
        newest = max(os.path.getmtime(p) for p in [src, *headers])
        if (os.path.exists(obj) and os.path.getmtime(obj) >= newest and os.path.exists(flag_file)
                and open(flag_file).read() == stamp):
            return obj
        cmd = [nvcc, "-c", src, "-o", obj, *flags]
        print(" ".join(cmd), flush=True)
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"nvcc failed on {src}:\n{res.stdout}{res.stderr}")
        with open(flag_file, "w") as f:
            f.write(stamp)
        return obj

    with ThreadPoolExecutor(max_workers=max(1, min(len(sources), os.cpu_count() or 1))) as pool:
        return list(pool.map(one, sources))


def _write_if_changed(path: str, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds it (keeping its mtime)."""
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except OSError:
        pass
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return True


def _cuda_link_depends(objects, stamp_path: str, config: str):
    """What the link of ``minitl._C_cuda`` depends on, for ``ext.depends``.

    setuptools relinks an extension only when a source or a ``depends`` entry
    is newer than the built module; ``extra_objects`` are not consulted, so a
    change of a .cu file (new object) or of the architecture list (objects
    from another directory, possibly older than the module) kept a stale .so.
    The stamp holds the configuration (nvcc, flags, architectures) and is
    rewritten only when that changes, so it is newer than the module exactly
    when the module was linked with another configuration.
    """
    _write_if_changed(stamp_path, config)
    return [*objects, stamp_path]


def _write_cuda_log(text: str, *dirs):
    for d in dirs:
        path = os.path.join(d, CUDA_LOG)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text.rstrip() + "\n")


def _remove_cuda_log(*dirs):
    for d in dirs:
        path = os.path.join(d, CUDA_LOG)
        if os.path.exists(path):
            os.remove(path)


class BuildExtWithCuda(BuildExt):
    """Builds the CPU extension first, then tries the CUDA one (see above)."""

    def run(self):
        # setuptools clears `inplace` while building and copies afterwards:
        # remember whether this build lands in the source tree.
        self._in_tree = bool(self.inplace or getattr(self, "editable_mode", False))
        super().run()

    def build_extensions(self):
        cuda = [e for e in self.extensions if e.name == CUDA_EXT]
        self.extensions = [e for e in self.extensions if e.name != CUDA_EXT]
        super().build_extensions()
        in_tree = getattr(self, "_in_tree", False)
        dirs = [HERE] + ([] if in_tree else [self.build_lib])
        if not cuda:
            why = ("MINITL_CUDA=0 was set" if _cuda_mode() == "off" else
                   "nvcc was not found (searched $CUDA_HOME/bin, PATH, /usr/local/cuda/bin)")
            self._drop_stale_cuda(in_tree)
            _write_cuda_log(f"minitl._C_cuda not built: {why}", *dirs)
            return
        try:
            log = self._build_cuda(cuda[0])
        except Exception as exc:  # the CPU install must survive any CUDA failure
            if _cuda_mode() == "required":
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            self._drop_stale_cuda(in_tree)
            _write_cuda_log(f"minitl._C_cuda build failed: {first}\n\n{exc}", *dirs)
            warnings.warn(f"minitl._C_cuda was not built ({first}); the CPU install is "
                          f"complete and CUDA ops run on CuPy's reference path. "
                          f"Details: {CUDA_LOG}")
            return
        self.extensions.append(cuda[0])  # so --inplace/editable copies it
        _remove_cuda_log(*dirs)
        print(log, flush=True)

    def _drop_stale_cuda(self, in_tree: bool):
        """An older in-tree build must not outlive a build that did not happen."""
        if in_tree:
            for path in glob.glob(os.path.join(HERE, "minitl", "_C_cuda.*")):
                if path.endswith((".so", ".pyd")):
                    os.remove(path)

    def _build_cuda(self, ext) -> str:
        nvcc = _find_nvcc()
        archs, skipped = _cuda_archs(nvcc)
        if not archs:
            raise RuntimeError(f"{nvcc} supports none of the requested architectures "
                               f"({', '.join(skipped)})")
        flags = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
        flags.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")  # PTX
        built = ";".join(archs + [f"compute_{archs[-1]}"])
        ext.define_macros.append(("MINITL_CUDA_ARCHS", f'"{built}"'))
        ext.define_macros.append(("MINITL_CUDA_SKIPPED", f'"{", ".join(skipped)}"'))
        # One object directory per architecture list: switching MINITL_CUDA_ARCHS
        # back and forth reuses each list's objects instead of recompiling.
        out_dir = os.path.join(self.build_temp, "cuda", "sm_" + "_".join(archs))
        headers = sorted(glob.glob("csrc/cuda/*.h") + glob.glob("csrc/cuda/*.cuh"))
        ext.extra_objects = _nvcc_compile(nvcc, sorted(glob.glob("csrc/cuda/*.cu")), headers,
                                          out_dir, flags)
        config = "\n".join([nvcc, *NVCC_FLAGS, *flags, f"skipped: {skipped}"])
        ext.depends = [*ext.depends, *headers, *_cuda_link_depends(
            ext.extra_objects, os.path.join(self.build_temp, "cuda", "link.stamp"), config)]
        ext.library_dirs.append(_cuda_lib_dir(nvcc))
        ext.libraries.extend(["cudart_static", "rt", "pthread", "dl"])
        self.build_extension(ext)
        note = f"; skipped {', '.join(skipped)} (not supported by this nvcc)" if skipped else ""
        return f"minitl._C_cuda built for {built}{note}"


def _cuda_extensions():
    """The CUDA extension to attempt, or [] (nvcc missing or MINITL_CUDA=0)."""
    mode = _cuda_mode()
    if mode == "off":
        return []
    if _find_nvcc() is None:
        if mode == "required":
            sys.exit("MINITL_CUDA=1 but nvcc was not found (set CUDA_HOME or PATH)")
        return []
    return [Pybind11Extension(CUDA_EXT, ["csrc/cuda/bind.cpp"], include_dirs=["csrc/cuda"],
                              cxx_std=17, extra_compile_args=["-O2"])]


# setuptools (pip, `python setup.py`) runs this file as __main__; the tests
# import it to check the CUDA build's rebuild rules without building.
if __name__ == "__main__":
    setup(ext_modules=[cpu_ext] + _cuda_extensions(), cmdclass={"build_ext": BuildExtWithCuda})
