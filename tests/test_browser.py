"""JupyterLab end to end: start a server, open notebook 00 in headless Chromium, run it, see the widgets.

The browser is the system Chromium (``$LPZERO_CHROMIUM``, else ``chromium`` / ``chromium-browser`` /
``google-chrome`` on PATH), driven by Playwright; no browser is ever downloaded. Without one the test skips,
except where ``LPZERO_REQUIRE_BROWSER=1`` (CI): there it fails and names the package to install. The screenshot
is kept as ``test-artifacts/explore.png`` (git-ignored), the server log as ``test-artifacts/jupyterlab.log``.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from lpzero_core.search.gp import GPConfig
from lpzero_core.workbench.experiments import PROJECT_ROOT, run_search

pytestmark = pytest.mark.browser
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def _missing(reason: str):
    if os.environ.get("LPZERO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required (LPZERO_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


def _chromium() -> str:
    candidates = [os.environ.get("LPZERO_CHROMIUM")] + [shutil.which(n) for n in
                                                        ("chromium", "chromium-browser", "google-chrome")]
    found = next((c for c in candidates if c and os.path.exists(c)), None)
    if found is None:
        _missing("no Chromium found: install it (`apt-get install -y chromium`) or set LPZERO_CHROMIUM")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited with status {server.returncode}; see {ARTIFACTS / 'jupyterlab.log'}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer {url} within {timeout} s")


def _until(page, selector: str, timeout: float) -> None:
    """Wait until ``selector`` is visible, accepting any dialog on the way (JupyterLab may ask which kernel to
    start while the kernel list is still loading: its default is the notebook's own kernel)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count() and accept.first.is_visible():
            accept.first.click()
        elif page.locator(selector).count() and page.locator(selector).first.is_visible():
            page.wait_for_timeout(1000)  # a dialog may still come up right after
            if not page.locator(".jp-Dialog").count():
                return
        page.wait_for_timeout(500)
    raise AssertionError(f"{selector} not visible within {timeout} s (screenshot: {ARTIFACTS / 'explore.png'})")


def test_explore_notebook_renders_widgets_in_jupyterlab(tmp_path, synthetic_cache, synthetic_cache_dir):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    # the notebook, with parameters pointing at the test cache and a small GP history
    runs = tmp_path / "runs"
    run_search(synthetic_cache, GPConfig(population=10, iterations=20), runs / "search")
    notebook = load_notebook_node(str(PROJECT_ROOT / "notebooks" / "00_explore.ipynb"))
    notebook = parameterize_notebook(notebook, {"cache_dir": str(synthetic_cache_dir), "runs_dir": str(runs)})
    lab = tmp_path / "lab"
    lab.mkdir()
    nbformat.write(notebook, lab / "00_explore.ipynb")

    ARTIFACTS.mkdir(exist_ok=True)
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    with open(ARTIFACTS / "jupyterlab.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
             "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={lab}",
             "--allow-root", "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_for(f"{base}/api/status", server)
            with sync_api.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=executable, headless=True,
                                            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                try:
                    page.goto(f"{base}/lab/tree/00_explore.ipynb", timeout=120_000)
                    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                    _until(page, ".jp-Notebook-ExecutionIndicator[data-status='idle']", 120)
                    for attempt in range(4):  # a click that lands before the kernel connects runs nothing: retry
                        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                        page.locator("li[data-command='runmenu:run-all']").click()
                        try:
                            _until(page, ".jp-InputPrompt:has-text('[1]')", 30)
                            break
                        except AssertionError:
                            if attempt == 3:
                                raise
                    _until(page, ".jupyter-widgets.widget-dropdown", 180)
                    page.get_by_text("τ =").first.wait_for(state="visible", timeout=60_000)
                    page.locator("img.widget-image").first.wait_for(state="visible", timeout=60_000)
                    assert page.locator(".jupyter-widgets.widget-dropdown").count() >= 6  # inputs, ops, binary, agg
                    assert "Traceback" not in page.locator(".jp-Notebook").inner_text()
                finally:  # kept on failure too: it shows what the browser saw
                    page.screenshot(path=str(ARTIFACTS / "explore.png"), full_page=True)
                    browser.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    assert (ARTIFACTS / "explore.png").stat().st_size > 10_000
