"""Build glue that pyproject.toml cannot express: the top-level `recipes/` and `studies/` folders travel in the
wheel as package data of `curate._shipped.recipes` and `curate._shipped.studies` (read through
`curate.config.shipped_dir`). Everything else is declared in pyproject.toml."""
from setuptools import find_packages, setup

SHIPPED = {"curate._shipped.recipes": "recipes", "curate._shipped.studies": "studies"}

setup(packages=find_packages(include=["curate*", "verifiers*"]) + list(SHIPPED), package_dir=SHIPPED)
