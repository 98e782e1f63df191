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


@pytest.fixture(autouse=True)
def _console_handler_removed():
    """A CLI called in-process installs lib.console's stderr handler on the root logger: not into the next test."""
    yield
    import logging

    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ebe_calib_console", False):
            root.removeHandler(handler)
