"""pip install of the Python package (core, CLI, node). ROS interfaces are built by CMake.

Inside a ROS 2 workspace, ``colcon build`` uses CMakeLists.txt (ament_cmake), which generates the
interfaces and installs this same Python package; see the README for why there is one package.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements(name: str) -> list[str]:
    lines = (HERE / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="vos_ros",
    version="0.1.0",
    description="ROS 2 real-time semi-supervised multi-instance video object segmentation",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vos_ros", "vos_ros.*"]),
    package_data={
        "vos_ros.engine": ["tensorrt_onnx_ops.txt"],
        "vos_ros.console": ["static/*.html", "static/*.js", "static/*.css"],
    },
    install_requires=_requirements("requirements.txt"),
    extras_require={
        "train": ["torch>=2.2"],
        "dev": _requirements("requirements-dev.txt"),
        "fleet": _requirements("requirements-fleet.txt"),
        "console": _requirements("requirements-console.txt"),
        # pretrained trackers; install sam2 itself as scripts/setup.sh does (no CUDA torch)
        "sam2": ["sam2==1.1.0", *_requirements("requirements-sam2.txt")],
    },
    entry_points={
        "console_scripts": [
            "vos-ros = vos_ros.cli:main",
            "vos_node = vos_ros.ros.node:main",
        ]
    },
)
