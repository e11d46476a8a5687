"""Build dagnet: the Python packages plus the Cython kernels in dagnet/_kernels.

The top-level folders compiler/, models/ and viz/ are installed as dagnet.compiler,
dagnet.models and dagnet.viz (package_dir), so that site-packages never gets generic
top-level names such as `models`.
"""
import glob
import os
import platform
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

openmp = [] if sys.platform == "darwin" else ["-fopenmp"]
# -O3 and native-free flags: the wheel must run on any x86_64 that numpy supports.
compile_args = ["-O3", "-ffast-math", "-fno-finite-math-only"] + openmp
# modules built again for wider vectors (the same source, `include`d): dagnet/kernels.py takes
# the widest the CPU runs. The hand-blocked kernels choose theirs inside (isa.h); these are
# plain loops the compiler vectorises, as wide as these flags let it.
x86 = platform.machine().lower() in ("x86_64", "amd64")
ISA_FLAGS = {"norm_avx2": ["-mavx2", "-mfma"],
             "norm_avx512": ["-mavx512f", "-mavx2", "-mfma"]} if x86 else {}

extensions = [
    Extension(
        "dagnet._kernels." + name,
        [path],
        include_dirs=[np.get_include(), "dagnet/_kernels"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args + ISA_FLAGS.get(name, []),
        extra_link_args=openmp,
    )
    for path in sorted(glob.glob("dagnet/_kernels/*.pyx"))
    for name in [os.path.splitext(os.path.basename(path))[0]]
    if x86 or not name.startswith("norm_")
]

core = [p for p in find_packages(include=["dagnet", "dagnet.*"])]
mapped = {"dagnet.compiler": "compiler", "dagnet.models": "models", "dagnet.viz": "viz",
          "dagnet.viz.html": "viz/html"}

setup(
    name="dagnet",
    version="0.1.0",
    description="A graph-compiled neural-network framework: declare a DAG, compile it, train it, render it.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=core + list(mapped),
    package_dir={**mapped},
    package_data={"dagnet.models": ["specs/*.yaml"], "dagnet._kernels": ["*.pyx", "*.pxd", "*.pxi", "*.h"],
                  "dagnet.viz.html": ["assets/*"]},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
    install_requires=[
        "numpy>=2.0",
        "networkx>=3.0",
        "graphviz>=0.20",
        "PyYAML>=6.0",
        "tqdm>=4.60",
        "matplotlib>=3.7",
    ],
    extras_require={
        "dev": ["pytest>=7", "hypothesis>=6", "pytest-xdist>=3", "threadpoolctl>=3"],
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        # data-parallel training: mpi4py's wheels load the MPI library at run time, and the
        # `mpich` wheel is one (with mpiexec); an installed Open MPI or MPICH works as well
        "dist": ["mpi4py>=4.0", "mpich>=4.2"],
        # the explorer's browser tests drive the system's Chromium (Debian: apt-get install chromium)
        "browser": ["playwright>=1.40"],
        # dagnet tune: Optuna and its SQLite storage (sqlalchemy, alembic): about 38 MB
        "tune": ["optuna>=4.0"],
        # a study shared by several machines through a PostgreSQL server
        "postgres": ["optuna>=4.0", "psycopg[binary]>=3.1"],
        # to VIEW the event files every run writes (`tensorboard --logdir runs`; about 88 MB);
        # dagnet writes them itself (dagnet/tensorboard), tensorboardX would add 4.6 MB
        "tensorboard": ["tensorboard>=2.14"],
    },
    entry_points={"console_scripts": ["dagnet=dagnet.cli:main"]},
    zip_safe=False,
)
