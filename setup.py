"""ament_python package: builds with colcon on a robot and installs with pip in a venv."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "lsmdepth_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
        (f"share/{PACKAGE}/models", glob("models/*")),
    ],
    package_data={PACKAGE: ["py.typed"]},
    install_requires=["setuptools"],
    extras_require={"gpu": ["onnxruntime-gpu"]},
    zip_safe=False,
    maintainer="lsmdepth_ros maintainers",
    description="Monocular depth and point clouds for ROS 2 with LSMDepth",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "depth_node = lsmdepth_ros.ros.node:main",
            "depth_lifecycle_node = lsmdepth_ros.ros.lifecycle_node:main",
            "lsmdepth = lsmdepth_ros.cli:main",
        ],
    },
)
