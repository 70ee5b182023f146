"""The app in a real browser: `servesim app` on a free local port, driven by Playwright with
Debian's chromium (installed by `make test`), one screenshot per page as a test artifact.

Screenshots go to build/test-artifacts/app/ (SERVESIM_ARTIFACTS overrides the folder; the user
guide's pictures in docs/images/ are made this way).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright


ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("SERVESIM_ARTIFACTS", ROOT / "build" / "test-artifacts" / "app")).resolve()
START_TIMEOUT_S = 90
RESULT_TIMEOUT_MS = 120_000
PAGES = {  # url path -> (its title, a heading drawn near the end of its first run)
    "": ("Explore a serving setup", "Engine"),
    "compare": ("Compare scenarios", "Before/after report"),
    "plan": ("Plan a fleet", "Candidates"),
    "traces": ("Traces", "Replay on a fleet"),
    "calibration": ("Calibration", "Where these figures come from"),
}
SETTLE_S = 1.5  # a page counts as drawn when its text stays the same this long
SERVER: dict = {}  # the app's server process, for the tests that watch its work


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited with code {server.returncode} before serving")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the app did not answer at {url} within {START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def app_url():
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: run scripts/install_chromium.sh (make test does)")
    port = _free_port()
    servesim = Path(sys.executable).parent / "servesim"  # the installed command, as users run it
    server = subprocess.Popen([str(servesim), "app", "--port", str(port), "--address",
                               "127.0.0.1", "--max-upload-mb", "50"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    SERVER["process"] = server
    try:
        _wait_healthy(url, server)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _tab(browser, width: int, height: int):
    """A fresh browser tab of the given screen size, closed after the test."""
    context = browser.new_context(viewport={"width": width, "height": height})
    yield context.new_page()
    context.close()


@pytest.fixture
def page(browser):
    yield from _tab(browser, 1400, 2000)


def _metric_value(page, label: str) -> str:
    metric = page.locator("[data-testid='stMetric']").filter(has_text=label).first
    return metric.locator("[data-testid='stMetricValue']").inner_text()


def _settle(page) -> None:
    """Wait until the script run is over: no placeholder skeletons, no running indicator, and
    the page's text unchanged for SETTLE_S (the indicator alone can be missed before a run)."""
    deadline = time.monotonic() + RESULT_TIMEOUT_MS / 1e3
    last = None
    while time.monotonic() < deadline:
        busy = page.locator("[data-testid='stSkeleton'], [data-testid='stStatusWidget']").count()
        text = page.locator("[data-testid='stMain']").inner_text()
        if not busy and text == last:
            return
        last = text
        page.wait_for_timeout(SETTLE_S * 1e3)
    raise TimeoutError("the page kept changing")


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_explore_updates_when_a_setting_changes(app_url, page):
    page.goto(app_url)
    page.get_by_text("TTFT p95").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    before = _metric_value(page, "TTFT p95")
    rate = page.get_by_label("Arrival rate (requests/s)")
    rate.fill("3")
    rate.press("Enter")
    page.wait_for_function(
        """([label, before]) => [...document.querySelectorAll("[data-testid='stMetric']")]
             .some(m => m.innerText.includes(label) &&
                        !m.querySelector("[data-testid='stMetricValue']").innerText
                          .includes(before))""",
        arg=["TTFT p95", before], timeout=RESULT_TIMEOUT_MS)
    after = _metric_value(page, "TTFT p95")
    assert after != before
    _settle(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert _shot(page, "explore").stat().st_size > 10_000


@pytest.mark.parametrize("path", ["traces", "compare", "calibration"])
def test_every_page_renders_in_a_browser(app_url, page, path):
    title, last_heading = PAGES[path]
    page.goto(f"{app_url}/{path}")
    page.get_by_role("heading", name=title).first.wait_for(timeout=RESULT_TIMEOUT_MS)
    page.get_by_role("heading", name=last_heading).first.wait_for(timeout=RESULT_TIMEOUT_MS)
    _settle(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[role='dialog']").count() == 0  # no "page not found" on a deep link
    assert _shot(page, path).stat().st_size > 10_000


def test_compare_downloads_a_before_after_report(app_url, page):
    page.goto(f"{app_url}/compare")
    page.get_by_role("heading", name="Before/after report").first.wait_for(
        timeout=RESULT_TIMEOUT_MS)
    _settle(page)
    with page.expect_download(timeout=RESULT_TIMEOUT_MS) as download:
        page.get_by_role("button", name="Download the report (HTML)").click()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = ARTIFACTS / "compare-report.html"
    download.value.save_as(report)
    html = report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," in html and "monthly" in html.lower()
    page.goto(report.as_uri())  # the report as finance would open it, offline
    assert _shot(page, "compare-report").stat().st_size > 10_000


def test_a_bad_trace_upload_shows_an_error_in_the_browser(app_url, page):
    page.goto(f"{app_url}/traces")
    page.get_by_role("heading", name="Replay on a fleet").first.wait_for(
        timeout=RESULT_TIMEOUT_MS)
    _settle(page)
    page.locator("[data-testid='stRadio'] label").filter(has_text="Upload a file").click()
    page.locator("input[type='file']").first.set_input_files(
        files=[{"name": "junk.csv", "mimeType": "text/csv", "buffer": bytes(range(256)) * 8}])
    error = page.locator("[data-testid='stAlertContentError']").first
    error.wait_for(timeout=RESULT_TIMEOUT_MS)
    assert "junk.csv" in error.inner_text()
    assert page.locator("[data-testid='stException']").count() == 0


def test_plan_finds_the_cheapest_fleets_in_a_browser(app_url, page):
    page.goto(f"{app_url}/plan")
    page.get_by_role("heading", name="Candidates").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    _settle(page)
    page.get_by_role("button", name="Find cheapest fleets").click()
    page.get_by_role("heading", name="Cheapest fleets").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    _settle(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stDataFrame']").count() >= 1
    assert _shot(page, "plan").stat().st_size > 10_000


def _tree(root: int) -> dict[int, tuple[int, float]]:
    """Every process under ``root`` (itself included): pid -> (parent pid, CPU seconds)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        ticks = os.sysconf("SC_CLK_TCK")
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    members, changed = {root}, True
    while changed:
        more = {pid for pid, (parent, _) in stats.items() if parent in members} - members
        members |= more
        changed = bool(more)
    return {pid: stats[pid] for pid in members if pid in stats}


def _busy_cpu_s(root: int, seconds: float) -> float:
    """CPU seconds the server's processes spend over ``seconds`` of wall time."""
    before = _tree(root)
    time.sleep(seconds)
    after = _tree(root)
    return sum(cpu - before.get(pid, (0, 0.0))[1] for pid, (_, cpu) in after.items())


def test_stop_ends_the_servers_work_within_seconds(app_url, page):
    """A planner starts a run of ~900,000 requests (a minute or more of work) and presses
    Stop: the worker simulating it is killed, and the server goes back to idle. What is
    asserted does not depend on the machine's load (the worker is gone, and then the server
    uses almost no CPU); how fast that happened is printed."""
    server = SERVER["process"].pid
    page.goto(app_url)
    page.get_by_text("TTFT p95").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    _settle(page)
    idle_cpu = _busy_cpu_s(server, 2.0)
    before = set(_tree(server))
    duration = page.get_by_label("Duration (s)")
    duration.fill("300")
    duration.press("Enter")
    _settle(page)
    rate = page.get_by_label("Arrival rate (requests/s)")
    rate.fill("3000")
    rate.press("Enter")
    stop = page.get_by_role("button", name="Stop")
    stop.wait_for(timeout=RESULT_TIMEOUT_MS)
    page.wait_for_timeout(3_000)  # let the worker get going
    # new processes below the server but not its children: workers forked by the forkserver
    # (which, a child of the server, stays for the next run)
    workers = {pid for pid, (parent, _) in _tree(server).items()
               if pid not in before and parent != server}
    working_cpu = _busy_cpu_s(server, 2.0)
    assert workers, "no worker process was simulating the run"
    stop.click()
    stopped_at = time.monotonic()
    while time.monotonic() < stopped_at + 60 and workers & set(_tree(server)):
        time.sleep(0.1)
    gone_s = time.monotonic() - stopped_at
    after_cpu = _busy_cpu_s(server, 2.0)
    print(f"\nStop: CPU over 2 s while simulating {working_cpu:.2f} s, idle before "
          f"{idle_cpu:.2f} s; the worker gone {gone_s:.1f} s after Stop, then "
          f"{after_cpu:.2f} s of CPU over 2 s")
    assert not workers & set(_tree(server)), "the worker outlived Stop by a minute"
    assert after_cpu < 0.5  # back to idle: nothing left simulating


CLIPPED = """() => [...document.querySelectorAll(
    "[data-testid='stMetricLabel'], [data-testid='stMetricLabel'] *, "
    + "[data-testid='stMetricValue'], [data-testid='stMetricValue'] *")]
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => e.innerText)"""


@pytest.fixture
def laptop(browser):
    yield from _tab(browser, 1280, 900)


def test_explore_paints_at_once_and_clips_nothing_on_a_laptop_screen(app_url, laptop):
    """First paint (the title) and the first figures, timed from opening the page; at 1280 px
    no figure's label or value is cut off."""
    start = time.monotonic()
    laptop.goto(app_url)
    laptop.get_by_role("heading", name="Explore a serving setup").wait_for(
        timeout=RESULT_TIMEOUT_MS)
    painted_s = time.monotonic() - start
    laptop.get_by_text("TTFT p95").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    figures_s = time.monotonic() - start
    _settle(laptop)
    print(f"\nExplore at 1280 px: first paint {painted_s:.1f} s, first figures {figures_s:.1f} s")
    assert laptop.evaluate(CLIPPED) == []
    _shot(laptop, "explore-1280")


def test_the_report_fits_a_laptop_screen(app_url, laptop):
    laptop.goto(f"{app_url}/compare")
    laptop.get_by_role("heading", name="Before/after report").first.wait_for(
        timeout=RESULT_TIMEOUT_MS)
    _settle(laptop)
    assert laptop.evaluate(CLIPPED) == []
    with laptop.expect_download(timeout=RESULT_TIMEOUT_MS) as download:
        laptop.get_by_role("button", name="Download the report (HTML)").click()
    report = ARTIFACTS / "compare-report-1280.html"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    download.value.save_as(report)
    laptop.goto(report.as_uri())
    width = laptop.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the report scrolls sideways: {width[0]} px in {width[1]} px"
    _shot(laptop, "compare-report-1280")
