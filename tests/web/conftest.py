"""Fixtures for the web tests: a server app on a temporary runs folder with a small toy-generator preset."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from webhelpers import COMPOSITE, WEB_RECIPE


@pytest.fixture
def recipes_dir(tmp_path) -> Path:
    """A presets folder with the toy web recipe."""
    d = tmp_path / "recipes"
    d.mkdir()
    (d / "webtoy.yaml").write_text(WEB_RECIPE)
    return d


@pytest.fixture
def make_app(toy_registry, tmp_path, recipes_dir):
    """Build an app (API only unless ui=True) on tmp_path/runs; keyword arguments go to ServerConfig."""
    from ecomforge.web.app import ServerConfig, create_app
    from ecomforge.web.uploads import Limits

    def make(**kw):
        kw.setdefault("runs", tmp_path / "runs")
        kw.setdefault("recipes", recipes_dir)
        kw.setdefault("ui", False)
        kw.setdefault("allowed_hosts", ("testserver",))  # TestClient's Host; real servers answer to loopback names
        kw.setdefault("limits", Limits(max_file_bytes=200_000, max_files=3, max_pixels=400_000, max_side=2000))
        return create_app(ServerConfig(**kw))

    return make


@pytest.fixture
def client(make_app):
    """A TestClient on a fresh app (workers running)."""
    from fastapi.testclient import TestClient

    with TestClient(make_app()) as c:
        yield c




@pytest.fixture
def app_client(make_app, recipes_dir):
    """A TestClient factory (clients closed at the end), on presets that include a compositor one."""
    from fastapi.testclient import TestClient

    (recipes_dir / "webcomposite.yaml").write_text(COMPOSITE)
    clients = []

    def make(follow_redirects=True, **kw):
        c = TestClient(make_app(**kw), follow_redirects=follow_redirects)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)
