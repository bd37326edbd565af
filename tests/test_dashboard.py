"""`rlpad dashboard` in a real headless Chromium (Debian's chromium + chromedriver): every page
over a real study store (two agents, stages 1-4, `rlpad play` videos), a damaged copy of it, a
gs:// store on the GCS emulator, and a stage killed mid-run that shows stalled, then done.

Screenshots go to $RLPAD_SCREENSHOTS (default: the test's tmp folder).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

import gcs_emulator as gcs  # before anything imports gcsfs
from browser import chrome, missing, text, wait_for
from conftest import RLPAD, ROOT, STUDY_ARGS, free_port, rlpad
from rlpad.dashboard import plotly_bundle

pytestmark = pytest.mark.skipif(os.environ.get("RLPAD_NO_BROWSER") == "1",
                                reason="RLPAD_NO_BROWSER=1")


@contextmanager
def dashboard(store: str, *extra: str, env: dict | None = None):
    """`rlpad dashboard` as a user starts it, on a free loopback port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen([*RLPAD, "dashboard", "--store", store, "--port", str(port), *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"dashboard did not start:\n{proc.communicate()[0]}")
                time.sleep(0.2)
        yield base
        assert proc.poll() is None, "the dashboard died while serving"
    finally:
        proc.terminate()
        proc.wait(10)


def shots_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("RLPAD_SCREENSHOTS") or tmp_path / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def screenshot(driver, path: Path) -> None:
    """The whole page as a PNG, for a person to look at (called once the test's own checks
    saw the page's content drawn)."""
    h = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(h, 700) + 40, 5000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2_000, path


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        st = p.stat()
        h.update(f"{p.relative_to(root)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _manifest(store: Path, *parts: str) -> dict:
    return json.loads(store.joinpath(*parts, "manifest.json").read_text())


@pytest.fixture(scope="module")
def dash_store(study_run, tmp_path_factory) -> Path:
    """A copy of the study store with agent videos and a second run to compare."""
    if missing():
        pytest.fail(missing())
    src, run = study_run[0], study_run[1]
    dst = tmp_path_factory.mktemp("dash") / "store"
    shutil.copytree(src / run, dst / run)
    rlpad("play", "--store", str(dst), "--run", run, *STUDY_ARGS, "--episodes", "1",
          "--max-steps", "40")
    shutil.copytree(dst / run, dst / "study-b")
    return dst


def test_every_page_in_a_real_browser(dash_store, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    store, shots = dash_store, shots_dir(tmp_path)
    before = tree_digest(store)
    m1 = [_manifest(store, "study", "agents", str(s), "1-fit")["metrics"] for s in (1, 2)]
    m3 = _manifest(store, "study", "agents", "1", "3-fit-gan")["metrics"]
    study = json.loads((store / "study" / "4-eval" / "study.json").read_text())
    with dashboard(str(store)) as base, chrome() as d:
        d.get(base + "/")
        row = text(d, '#runs-table tr[data-key="study"]')
        assert "CartPole-v1" in row and "dqn" in row
        assert row.count("done 2/2") == 3 and "done 1/1" in row
        mean = statistics.fmean(m["eval_return_mean"] for m in m1)
        assert f"return {mean:.1f}" in row
        assert wait_for(d, '#runs-table tr[data-key="study-b"]')
        screenshot(d, shots / "runs.png")

        d.get(base + "/run/study")
        wait_for(d, "#curve-plot .main-svg")
        assert len(d.find_elements(By.CSS_SELECTOR, "#curve-plot .scatterlayer .trace")) == 4
        scores = text(d, "#scores-table")
        assert f"{m1[0]['eval_return_mean']:.1f}" in scores and f"{m1[1]['eval_return_mean']:.1f}" in scores
        assert f"{m3['c2st_accuracy']:.3f}" in text(d, "#gen-table")
        assert "0.00e+00" in text(d, "#cut-table")  # the cut is exact
        for css in ("img.hist", "img.video"):
            imgs = d.find_elements(By.CSS_SELECTOR, css)
            assert len(imgs) == 2, css
            for img in imgs:  # served from the store, verified, and really decoded
                assert d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
        screenshot(d, shots / "run.png")

        d.get(base + "/study/study")
        table = text(d, "#verdict-table")
        cell = next(c for c in study["cells"] if c["subset"] == "all" and c["n_real"] == 200)
        assert cell["verdict"] in table and f"{cell['lift']:.1f}" in table
        for css in ("#score-plot .main-svg", "#lift-plot .main-svg", "#sanity-plot .main-svg"):
            wait_for(d, css)
        assert len(d.find_elements(By.CSS_SELECTOR, "#verdict-table tbody tr")) == 2
        # the graphs drew with plotly.js's basic build (build.sh installs it), not the 4.8 MB one
        traces = d.execute_script("return Object.keys(Plotly.PlotSchema.get().traces).sort()")
        assert set(plotly_bundle.TRACES) <= set(traces) and "scatter3d" not in traces, traces
        assert d.execute_script("return Plotly.version") == plotly_bundle.VERSION
        d.find_element(By.CSS_SELECTOR, "#study-nreal").click()  # the n_real filter: 200 only
        wait_for(d, "[role=option]", text="200").click()
        d.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        deadline = time.monotonic() + 20
        while len(d.find_elements(By.CSS_SELECTOR, "#verdict-table tbody tr")) != 1:
            assert time.monotonic() < deadline, "the n_real filter did not apply"
            time.sleep(0.2)
        assert "200" in text(d, "#verdict-table")
        screenshot(d, shots / "study.png")

        d.get(base + "/compare?runs=study,study-b")
        comp = text(d, "#compare-table")
        assert "study" in comp and "study-b" in comp
        wait_for(d, "#compare-curves .main-svg")
        assert len(d.find_elements(By.CSS_SELECTOR, "#compare-curves .scatterlayer .trace")) == 4  # 2 runs x 2 agents
        screenshot(d, shots / "compare.png")
    assert tree_digest(store) == before  # read-only


def test_a_damaged_store_shows_its_damage(dash_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(dash_store / "study", store / "study")
    with open(store / "study" / "agents" / "1" / "1-fit" / "curve.csv", "a") as f:
        f.write("9999,1,1,1,1,1,1,1\n")  # changed after the manifest: fails its checksum
    (store / "study" / "agents" / "2" / "3-fit-gan" / "manifest.json").write_text("{not json")
    (store / "study" / "4-eval" / "study.json").unlink()
    (store / "study" / "agents" / "1" / "play" / "episode-0.gif").write_bytes(b"GIF89a broken")
    with dashboard(str(store)) as base, chrome() as d:
        d.get(base + "/")
        assert "damaged 1" in text(d, '#runs-table tr[data-key="study"]')  # agent 2's stage 3
        d.get(base + "/run/study")
        wait_for(d, ".damaged", text="agents/1/1-fit/curve.csv fails its checksum")
        stages = text(d, "#stage-table")
        assert "damaged" in stages and "3-fit-gan/manifest.json is corrupt" in stages
        assert wait_for(d, "#curve-plot .main-svg")  # agent 2's curve still drawn
        r = urllib.request.Request(base + "/media/study/agents/1/play/episode-0.gif")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(r, timeout=10)
        assert e.value.code == 404 and b"fails its checksum" in e.value.read()
        d.get(base + "/study/study")
        wait_for(d, ".damaged", text="4-eval/study.json is missing")
        d.get(base + "/run/no-such-run")
        wait_for(d, ".damaged", text="no run 'no-such-run'")
        screenshot(d, shots_dir(tmp_path) / "damaged-run.png")


def test_a_gcs_store_on_the_emulator(dash_store, tmp_path):
    if gcs.emulator_executable() is None:
        pytest.fail("gcp-storage-emulator is not installed (pip install -e .[test])")
    gcs.ensure_plain_gcsfs()
    with gcs.GcsEmulator(bucket="rlpad-dash") as emu:
        env = emu.env()
        uri = f"gs://{emu.bucket}/runs"
        os.environ.update(env)
        try:
            from rlpad.store import Store

            s = Store(uri)
            src = dash_store / "study"
            for p in sorted(src.rglob("*")):
                if p.is_file() and "/_" not in str(p.relative_to(src)):
                    s.put_file(str(p), f"{s.root}/study/{p.relative_to(src)}")
        finally:
            for k in env:
                os.environ.pop(k, None)
        m1 = _manifest(dash_store, "study", "agents", "1", "1-fit")["metrics"]
        with dashboard(uri, env=env) as base, chrome() as d:
            d.get(base + "/")
            assert text(d, '#runs-table tr[data-key="study"]', timeout=60).count("done 2/2") == 3
            d.get(base + "/run/study")
            assert f"{m1['eval_return_mean']:.1f}" in text(d, "#scores-table", timeout=60)
            wait_for(d, "#curve-plot .main-svg")
            img = wait_for(d, "img.hist")
            deadline = time.monotonic() + 30
            while not d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img):
                assert time.monotonic() < deadline, "histograms.png did not load from gs://"
                time.sleep(0.2)


def test_a_killed_stage_shows_stalled_then_done_after_its_rerun(tmp_path):
    store = tmp_path / "store"
    sets = ["dqn.total_steps=3000", "dqn.learning_starts=300", "dqn.eval_every=1000",
            "dqn.eval_episodes=2", "dqn.final_eval_episodes=2", "dqn.checkpoint_every=500",
            "dqn.stop_at_eval_return=0"]
    args = ["fit", "--store", str(store), "--run", "live",
            *[a for s in sets for a in ("--set", s)]]
    env = {**os.environ, "RLPAD_HEARTBEAT_S": "0.3", "PYTHONUNBUFFERED": "1"}
    killed = subprocess.run([*RLPAD, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**env, "RLPAD_FAILPOINTS": "1-fit.step=2200"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    rec = json.loads((store / "live" / "1-fit" / "status.json").read_text())
    assert rec["state"] == "running" and rec["progress"]["total"] == 3000
    with dashboard(str(store), "--poll", "0.5", "--stall-after", "2") as base, chrome() as d:
        d.get(base + "/run/live")
        cell = text(d, '#stage-table tr[data-key="None"]', contains="stalled", timeout=30)
        assert "checkpoint 2,000" in cell and "/3,000 steps" in cell
        wait_for(d, "#curve-plot .main-svg")  # the live curve, from the checkpoint
        screenshot(d, shots_dir(tmp_path) / "stalled.png")
        rerun = subprocess.run([*RLPAD, *args], cwd=ROOT, capture_output=True, text=True,
                               timeout=300, env=env)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert "resuming from checkpoint at step 2,000" in rerun.stdout + rerun.stderr
        # the open page follows by polling, without a reload
        wait_for(d, '#stage-table tr[data-key="None"] .state-done', timeout=30)
        m = _manifest(store, "live", "1-fit")["metrics"]
        assert f"{m['eval_return_mean']:.1f}" in text(d, "#scores-table", contains=f"{m['eval_return_mean']:.1f}")


def test_a_missing_store_is_one_line_and_nothing_is_made(tmp_path):
    p = rlpad("dashboard", "--store", str(tmp_path / "nope"), check=False)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"rlpad dashboard: error: store folder '{tmp_path / 'nope'}' does not exist (option "
        "--store / RLPAD_STORE): the dashboard only reads stores"]
    assert not (tmp_path / "nope").exists()


def test_plotly_bundle_is_served_only_when_its_checksum_is_the_pinned_one(tmp_path, monkeypatch):
    """The basic build build.sh installed loads; a changed or missing file does not (the
    graphs then get the plotly package's full build), each with one line saying why."""
    installed = plotly_bundle.default_path()
    data = plotly_bundle.load(log=pytest.fail)
    assert data is not None and data == installed.read_bytes()
    assert data.startswith(b"/**\n* plotly.js (basic - minified) v" + plotly_bundle.VERSION.encode())
    said: list[str] = []
    changed = tmp_path / "plotly.min.js"
    changed.write_bytes(data[:-1] + b" ")
    monkeypatch.setenv("RLPAD_PLOTLY_BUNDLE", str(changed))
    assert plotly_bundle.load(log=said.append) is None
    monkeypatch.setenv("RLPAD_PLOTLY_BUNDLE", str(tmp_path / "absent.js"))
    assert plotly_bundle.load(log=said.append) is None
    assert len(said) == 2 and "sha256 differs" in said[0] and "not installed" in said[1], said
