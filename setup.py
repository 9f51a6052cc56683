"""mean-tf: MEAN (Multi-Expert Adaptive Network) for CLTV prediction, as Keras layers and a TFX pipeline."""
from setuptools import find_packages, setup

setup(
    name="mean-tf",
    version="0.1.0",
    description="MEAN customer-lifetime-value model: Keras layers, baselines, metrics and a TFX pipeline",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9,<3.11",
    packages=find_packages(include=["mean_tf", "mean_tf.*", "pipeline", "pipeline.*"]),
    package_data={"mean_tf": ["schemas/*.pbtxt", "data/*.json"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]==2.59.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "tensorflow-transform==1.16.0",
        "tensorflow-model-analysis==0.47.1",
        "tensorflow-serving-api==2.16.1",
        "pandas==1.5.3",
        "numpy==1.26.4",
        "scipy",
        "scikit-learn",
        "lifetimes==0.11.3",
        "matplotlib",
        "pyyaml",
    ],
    entry_points={
        "console_scripts": ["mean-tf=mean_tf.cli:main"],
        # Subcommands from outside mean_tf (the pipeline package sits above it; mean_tf never imports it).
        "mean_tf.commands": ["pipeline=pipeline.commands:register_pipeline", "demo=pipeline.commands:register_demo"],
    },
)
