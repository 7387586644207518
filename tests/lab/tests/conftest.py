"""Shared fixtures for the lab tests. Keep fixture names namespaced by area (pki_, responder_, ...)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The lab package lives in tests/lab/fleetlab; pytest only puts this tests/ directory on sys.path.
LAB_DIR = Path(__file__).resolve().parent.parent
if str(LAB_DIR) not in sys.path:
    sys.path.insert(0, str(LAB_DIR))

from fleetlab import pki, responder  # noqa: E402  (needs the path above)

PKI_LEAF_DNS = {kind: [f"{kind}.alpha.lab.test", "127.0.0.1"] for kind in pki.LEAF_KINDS}


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="session")
def pki_alpha_ocsp_port() -> int:
    """The port the alpha CA's leaves name in their AIA; a responder test starts the responder there."""
    return responder.find_free_port()


@pytest.fixture(scope="session")
def pki_alpha(pki_dir: Path, pki_alpha_ocsp_port: int) -> pki.CaFiles:
    return pki.build_ca(pki_dir, "alpha", f"http://127.0.0.1:{pki_alpha_ocsp_port}/")


@pytest.fixture(scope="session")
def pki_alpha_leaves(pki_alpha: pki.CaFiles) -> dict[str, pki.LeafFiles]:
    """One leaf of every kind, keyed by kind."""
    return {kind: pki.issue_leaf(pki_alpha, f"site-{kind}", PKI_LEAF_DNS[kind], kind) for kind in pki.LEAF_KINDS}
