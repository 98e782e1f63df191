"""Shared fixtures: the default configuration and its category scheme."""

from __future__ import annotations

import pytest

from lib.categories import CategoryScheme
from lib.config import Config, load_config


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config()


@pytest.fixture(scope="session")
def plain_config() -> Config:
    """The default configuration with the original line shape, BW (x) DCB alone.

    The right model for samples drawn from BW (x) DCB itself, which no leading-pT window truncates.
    """
    config = load_config()
    return config.model_copy(update={"fit": config.fit.model_copy(update={"line_shape": "breit_wigner"})})


@pytest.fixture(scope="session")
def scheme(config: Config) -> CategoryScheme:
    return CategoryScheme.from_config(config.categories)
