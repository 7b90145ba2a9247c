"""The report and optuna-dashboard as a person sees them: pages opened in headless Chromium.

Each report page gets a small probe script injected (into a copy) that records
JavaScript errors (script errors, failed loads, console.error) and, once the page
has loaded, every Plotly plot with its trace and point counts, written into the DOM
that ``--dump-dom`` prints. Screenshots land in the test's tmp folder.

Chromium is Debian's ``chromium`` package: skipped where it is missing, except in CI
(``CI`` set), where a missing browser fails.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import optuna
import pytest
from support import (
    FIGURES,
    GRID,
    MIXED,
    PARETO,
    REPO,
    SNN_STUDY,
    built_pareto_study,
    built_study,
    copy_study,
    dashboard_server,
    mixed_study,
)

import reports

PROBE_HEAD = """<script>
window.__probe = {errors: []};
window.addEventListener("error", function (e) {
  var where = e.filename || (e.target && (e.target.src || e.target.href)) || "";
  window.__probe.errors.push(String(e.message || ("failed to load " + where)) + (where ? " @ " + where : ""));
}, true);
window.addEventListener("unhandledrejection", function (e) {
  window.__probe.errors.push("unhandled rejection: " + e.reason);
});
(function () {
  var original = console.error;
  console.error = function () {
    window.__probe.errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
</script>"""

PROBE_TAIL = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  function count(v) {
    if (!v || !v.length) return 0;
    var n = 0;
    for (var i = 0; i < v.length; i++) if (v[i] !== null && v[i] !== undefined) n++;
    return n;
  }
  var plots = Array.prototype.map.call(document.querySelectorAll(".js-plotly-plot"), function (gd) {
    var points = 0;
    (gd.data || []).forEach(function (t) {
      ["x", "y", "z", "values"].forEach(function (k) { points += count(t[k]); });
      (t.dimensions || []).forEach(function (d) { points += count(d.values); });
    });
    return {id: gd.id, traces: (gd.data || []).length, points: points, rendered: !!gd._fullLayout,
            svgs: gd.querySelectorAll(".main-svg").length};
  });
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({errors: window.__probe.errors, plots: plots, plotly: typeof Plotly});
  document.body.appendChild(pre);
}, 300); });
</script>"""


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("CI must provide Chromium: .ci/run installs Debian's chromium package")
    pytest.skip("no Chromium on this machine: apt-get install chromium (Debian's package)")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """A function running headless Chromium on a URL: ``chromium(url, dump=True)`` -> DOM, or ``screenshot=path``."""
    binary = chromium_binary()
    profile = tmp_path_factory.mktemp("chromium-profile")

    def run(url: str, *, dump: bool = False, screenshot: Path | None = None, size: str = "1200,900",
            budget_ms: int = 10000) -> str:
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                f"--window-size={size}"]
        args += ["--dump-dom"] if dump else [f"--screenshot={screenshot}"]
        proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-2000:]
        if screenshot is not None:
            assert screenshot.stat().st_size > 5000, f"{screenshot} is (nearly) empty"
        return proc.stdout

    return run


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A copy of the test database with a report written by ``snn-study report`` (dashboard note included)."""
    root = tmp_path_factory.mktemp("browser")
    url = copy_study(built_study(tmp_path_factory), root / "db")
    out = root / "report"
    proc = subprocess.run([*SNN_STUDY, "report", "--study", GRID, "--storage", url, "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return url, out


def probed_copy(report: Path, dest: Path) -> Path:
    """``report`` copied to ``dest`` with the probe injected into every HTML page."""
    shutil.copytree(report, dest)
    for page in dest.rglob("*.html"):
        text = page.read_text()
        head = text.index("<head>") + len("<head>")
        text = text[:head] + PROBE_HEAD + text[head:]
        body = text.rindex("</body>")
        page.write_text(text[:body] + PROBE_TAIL + text[body:])
    return dest


def probe(dom: str) -> dict:
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: the page never finished loading"
    return json.loads(html.unescape(found.group(1)))


def test_the_index_and_every_figure_render_with_data_and_no_javascript_error(site, chromium, tmp_path):
    _, report = site
    pages = probed_copy(report, tmp_path / "pages")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    targets = [(pages / "index.html", len(FIGURES))] + [(pages / "figures" / f"{key}.html", 1) for key in FIGURES]
    for page, expected_plots in targets:
        result = probe(chromium(page.as_uri(), dump=True))
        assert result["errors"] == [], f"{page.name}: {result['errors']}"
        assert result["plotly"] == "object", f"{page.name}: plotly.js did not load"
        assert len(result["plots"]) == expected_plots, f"{page.name}: {result['plots']}"
        for plot in result["plots"]:
            assert plot["rendered"] and plot["svgs"] >= 1, f"{page.name}: {plot} was not drawn"
            assert plot["traces"] >= 1 and plot["points"] > 0, f"{page.name}: {plot} has no data"
        # screenshots from the report as written (no probe), for a person to look at
        original = report / page.relative_to(pages)
        chromium(original.as_uri(), screenshot=shots / f"{page.stem}.png",
                 size="1200,3000" if page.name == "index.html" else "1200,900")
    print(f"screenshots: {shots}")


def test_a_broken_page_is_caught_by_the_probe(site, chromium, tmp_path):
    """The probe itself: a figure page whose plotly.js is missing must report an error, not pass."""
    _, report = site
    pages = probed_copy(report, tmp_path / "pages")
    (pages / "plotly.min.js").unlink()
    result = probe(chromium((pages / "figures" / "heatmap.html").as_uri(), dump=True))
    assert result["errors"] and result["plotly"] == "undefined"


def test_a_study_with_pruned_and_failed_trials_renders_every_level_with_no_javascript_error(chromium, tmp_path):
    """A study whose synaptic trials were all pruned and alpha trials all failed: the history, distributions and
    heatmap draw with no error and show both neurons with their counts; screenshots for a person to look at."""
    url = mixed_study(tmp_path / "db")
    out = tmp_path / "report"
    proc = subprocess.run([*SNN_STUDY, "report", "--study", MIXED, "--storage", url, "--out", str(out),
                           "--no-dashboard"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    pages = probed_copy(out, tmp_path / "pages")
    result = probe(chromium((pages / "index.html").as_uri(), dump=True))
    assert result["errors"] == [] and result["plotly"] == "object", result["errors"]
    assert all(p["rendered"] and p["points"] > 0 for p in result["plots"]), result["plots"]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    expected = {"optuna_history": ["synaptic: 0 complete, 3 pruned", "alpha: 0 complete, 2 failed"],
                "distributions": ["3 pruned", "2 failed", "no accuracy"],
                "heatmap": ["n=1: 0 complete, 1 pruned", "n=1: 0 complete, 1 failed", "test", "percentage points"]}
    for key, texts in expected.items():
        dom = chromium((pages / "figures" / f"{key}.html").as_uri(), dump=True)
        assert probe(dom)["errors"] == [], key
        shown = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom.split('<pre id="probe">')[0])).split())
        for text in texts:
            assert text in shown, f"{key}: {text!r} is not on the page"
        chromium((out / "figures" / f"{key}.html").as_uri(), screenshot=shots / f"mixed-{key}.png")
    print(f"screenshots: {shots}")


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def dashboard(site, tmp_path):
    """``snn-study dashboard`` on the site's database: its base URL, stopped after the test."""
    url, _ = site
    with dashboard_server(url, tmp_path / "dashboard.log") as base:
        yield base


def test_the_dashboard_shows_the_study_its_trials_and_the_reports_figures_and_note(site, dashboard, chromium, tmp_path):
    url, _ = site
    study = optuna.load_study(study_name=GRID, storage=url)
    summaries = _get_json(f"{dashboard}/api/studies")["study_summaries"]
    study_id = next(s["study_id"] for s in summaries if s["study_name"] == GRID)
    detail = _get_json(f"{dashboard}/api/studies/{study_id}")
    assert sorted(t["number"] for t in detail["trials"]) == [t.number for t in study.trials]
    assert sorted(t["state"] for t in detail["trials"]) == sorted(t.state.name.capitalize() for t in study.trials)
    graph_ids = [gid for gid, _ in reports.DASHBOARD_FIGURES.values()]
    assert sorted(g["id"] for g in detail["plotly_graph_objects"]) == sorted(graph_ids)
    assert detail["note"]["body"].startswith("## snn-study report") and "**Best: " in detail["note"]["body"]

    shots = tmp_path / "screenshots"
    shots.mkdir()
    page = f"{dashboard}/dashboard/studies/{study_id}"
    dom = chromium(page, dump=True, size="1400,2400", budget_ms=20000)
    assert GRID in dom
    for gid in graph_ids:
        found = re.search(rf'<div[^>]*class="[^"]*js-plotly-plot[^"]*"[^>]*id="user-defined-plot:{gid}"', dom)
        assert found, f"the dashboard does not draw {gid}"
    assert dom.count("main-svg") >= 2 * len(graph_ids)
    chromium(page, screenshot=shots / "dashboard-study.png", size="1400,2400", budget_ms=20000)
    note = chromium(f"{page}/note", dump=True, budget_ms=20000)
    assert "snn-study report" in note and "Best: " in note and "synaptic" in note
    chromium(f"{page}/note", screenshot=shots / "dashboard-note.png", size="1400,1100", budget_ms=20000)
    trials_page = re.sub(r"<[^>]+>", " ", chromium(f"{page}/trials", dump=True, budget_ms=20000))
    assert f"{len(study.trials)} Trials" in " ".join(trials_page.split())
    for t in study.trials:
        assert re.search(rf"Trial {t.number}\s+{t.state.name.capitalize()}", trials_page), t.number
    print(f"screenshots: {shots}")


@pytest.fixture(scope="module")
def pareto_site(tmp_path_factory):
    """A copy of the session's study of two objectives with a report written by ``snn-study report``."""
    root = tmp_path_factory.mktemp("pareto-browser")
    url = copy_study(built_pareto_study(tmp_path_factory), root / "db")
    out = root / "report"
    proc = subprocess.run([*SNN_STUDY, "report", "--study", PARETO, "--storage", url, "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return url, out


def test_the_pareto_front_of_a_study_of_two_objectives_renders_with_no_javascript_error(pareto_site, chromium,
                                                                                         tmp_path):
    url, report = pareto_site
    pages = probed_copy(report, tmp_path / "pages")
    front = {t.number for t in optuna.load_study(study_name=PARETO, storage=url).best_trials}
    for page in (pages / "figures" / "pareto.html", pages / "index.html"):
        result = probe(chromium(page.as_uri(), dump=True))
        assert result["errors"] == [], f"{page.name}: {result['errors']}"
        plots = {p["id"]: p for p in result["plots"]}
        pareto = plots["figure-pareto"] if page.name == "index.html" else next(iter(plots.values()))
        assert pareto["rendered"] and pareto["svgs"] >= 1
        # two panels (synaptic operations, energy proxy): a point per trial in each, the front's line in the first
        assert pareto["points"] >= 2 * 2 * 8 + 2 * len(front), pareto
    assert len(plots) == len(FIGURES) + 1  # every other figure, and the front
    chromium((report / "figures" / "pareto.html").as_uri(), screenshot=tmp_path / "pareto.png")
    print(f"screenshot: {tmp_path / 'pareto.png'}")


def test_the_dashboard_names_both_objectives_and_draws_its_own_pareto_front(pareto_site, chromium, tmp_path):
    url, _ = pareto_site
    study = optuna.load_study(study_name=PARETO, storage=url)
    with dashboard_server(url, tmp_path / "dashboard.log") as base:
        summaries = _get_json(f"{base}/api/studies")["study_summaries"]
        study_id = next(s["study_id"] for s in summaries if s["study_name"] == PARETO)
        detail = _get_json(f"{base}/api/studies/{study_id}")
        assert detail["objective_names"] == ["val_acc", "synops"]
        assert sorted(t["number"] for t in detail["best_trials"]) == sorted(t.number for t in study.best_trials)
        page = f"{base}/dashboard/studies/{study_id}"
        dom = chromium(page, dump=True, size="1400,2400", budget_ms=20000)
        text = " ".join(re.sub(r"<[^>]+>", " ", dom).split())
        assert "Pareto Front" in text and "val_acc" in text and "synops" in text
        assert "main-svg" in dom  # its plots are drawn
        chromium(page, screenshot=tmp_path / "dashboard-pareto.png", size="1400,2400", budget_ms=20000)
    print(f"screenshot: {tmp_path / 'dashboard-pareto.png'}")
