"""Shared fixtures: the default configuration and its category scheme."""

from __future__ import annotations

import pytest

from lib.categories import CategoryScheme
from lib.config import Config, load_config


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config()


@pytest.fixture(scope="session")
def scheme(config: Config) -> CategoryScheme:
    return CategoryScheme.from_config(config.categories)
