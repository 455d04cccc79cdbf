"""Shared test set-up: temporary files stay in pytest's own temporary folder.

Stable-Baselines3 makes a folder in the system's temp directory whenever a model is built
without a logger; this keeps those (and any other ``tempfile`` use) out of ``/tmp``.
"""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture(autouse=True, scope="session")
def _temporary_files_in_pytests_folder(tmp_path_factory: pytest.TempPathFactory):
    previous = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("tempfile"))
    yield
    tempfile.tempdir = previous
