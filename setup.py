"""Installs the mrcnn package: Mask R-CNN for Keras 3 on TensorFlow 2."""
from setuptools import find_packages, setup

setup(
    name="mrcnn",
    version="0.1.0",
    description="Mask R-CNN for instance segmentation on Keras 3 and TensorFlow 2",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["mrcnn", "mrcnn.*"]),
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "keras>=3.3,<4",
        "numpy>=1.26,<3",
        "scipy>=1.11",
        "scikit-image>=0.22",
        "h5py>=3.10",
        "matplotlib>=3.8",
        "pycocotools>=2.0.7",
        "opencv-python-headless>=4.8",
        "Pillow>=10",
    ],
    extras_require={
        "augment": ["albumentations>=1.4"],
        "tensorboard": ["tensorboard>=2.16"],
        # mrcnn.export: ONNX (convert and run) and the LiteRT interpreter for TFLite files.
        "onnx": ["tf2onnx>=1.17,<2", "onnx>=1.16,<2", "onnxruntime>=1.18,<2"],
        "tflite": ["ai-edge-litert>=2.0,<3"],
        # bench/bench_peers.py: torchvision's Mask R-CNN timed beside detect().
        "bench": ["torch>=2.2", "torchvision>=0.17"],
        "notebooks": ["jupyterlab>=4", "ipykernel>=6", "nbclient>=0.10", "nbformat>=5.9"],
        "test": ["pytest>=8", "pytest-timeout>=2.3", "nbclient>=0.10", "nbformat>=5.9",
                 "ipykernel>=6", "albumentations>=1.4", "tf2onnx>=1.17,<2", "onnx>=1.16,<2",
                 "onnxruntime>=1.18,<2", "ai-edge-litert>=2.0,<3"],
    },
    entry_points={"console_scripts": ["mrcnn = mrcnn.cli:console_main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
