"""The inspector: report contents, escaping of model text, terminal views, and a real headless Chromium."""

import json
import os
import shutil
from pathlib import Path

import pytest
from inspect_data import XSS, make_run

from coldstart.inspect import build_report, find_samples, format_sample
from pipeline.cli import main

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("inspect") / "run", n=240)
    return run, build_report(run)


def load_js(path: Path) -> dict:
    text = path.read_text()
    return json.loads(text[text.index("(") + 1 : text.rindex(")")])


def test_report_files_and_overview(report):
    run, index = report
    out = index.parent
    assert {"index.html", "app.js", "style.css"} <= {p.name for p in out.iterdir()}
    ov = load_js(out / "data" / "overview.js")
    records = [json.loads(x) for x in (run / "coldstart.jsonl").read_text().splitlines()]
    assert ov["total"] == 240 and sum(ov["verdicts"].values()) == 240
    assert ov["verdicts"]["kept"] == sum(r["verdict"] == "kept" for r in records)
    for rule, n in ov["by_rule"].items():
        assert n == sum(rule in {x["rule"] for x in r["reasons"]} for r in records)
    assert set(ov["by_source"]) == {"demo", "other"} and 0 <= ov["by_source"]["demo"]["keep_rate"] <= 1
    assert sum(ov["thinking_hist"]["counts"]) == 240 and ov["top_reasons"][0]["example"]
    rows = [row for p in sorted((out / "data").glob("index-*.js")) for row in load_js(p)["rows"]]
    assert [r[0] for r in rows] == [r["uid"] for r in records]
    assert len(list((out / "thumbs").glob("*.jpg"))) == 8  # one per distinct image, not per sample


def test_model_text_is_escaped_in_every_file(report):
    _, index = report
    for p in index.parent.rglob("*.js"):
        if p.parent.name == "data":
            assert "<script" not in p.read_text() and "<img" not in p.read_text(), p
    detail = [s for p in sorted((index.parent / "data").glob("detail-*.js")) for s in load_js(p)["samples"]]
    assert XSS in detail[3]["thinking"] and XSS in detail[3]["question"]  # the text itself is kept intact
    app = (index.parent / "app.js").read_text()
    assert not any(sink in app for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write"))


def test_terminal_views(report, capsys):
    run, _ = report
    rec = find_samples(run, sample="s000003")[0]
    text = format_sample(rec)
    assert "s000003" in text and "thinking" in text and "question" in text
    records = map(json.loads, (run / "coldstart.jsonl").read_text().splitlines())
    dropped = (r for r in records if r["reasons"] and r["reasons"][0]["rule"] != "generation")
    some_rule = next(r["reasons"][0]["rule"] for r in dropped)
    assert main(["inspect", str(run), "--dropped-by", some_rule, "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("DROPPED") == 2 and some_rule in out
    assert main(["inspect", str(run), "--sample", "nope"]) == 2


def _chrome(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "make test installs Debian's chromium and chromium-driver"
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chrome'}",
    ):
        opts.add_argument(arg)
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager look for a driver online
    return webdriver.Chrome(options=opts, service=Service(executable_path=driver))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_in_headless_chromium(report, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    run, index = report
    ov = load_js(index.parent / "data" / "overview.js")
    records = [json.loads(x) for x in (run / "coldstart.jsonl").read_text().splitlines()]
    browser = _chrome(tmp_path)
    try:
        browser.get(index.as_uri())
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_element(By.ID, "count").text.startswith("240 of 240"))
        assert len(browser.find_elements(By.CSS_SELECTOR, "#list li")) == 50  # paged, not one giant page
        rule = next(iter(ov["by_rule"]))
        expected = sum(rule in {x["rule"] for x in r["reasons"]} for r in records)
        Select(browser.find_element(By.ID, "f-rule")).select_by_visible_text(rule)
        wait.until(lambda b: b.find_element(By.ID, "count").text.startswith(f"{expected} of 240"))
        browser.find_elements(By.CSS_SELECTOR, "#list li")[0].click()
        img = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#detail img.sample-image"))
        wait.until(lambda b: b.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img))
        # the sample whose question and thinking carry <script> and <img onerror>
        search = browser.find_element(By.ID, "f-search")
        Select(browser.find_element(By.ID, "f-rule")).select_by_index(0)
        search.send_keys("s000003")
        wait.until(lambda b: b.find_element(By.ID, "count").text.startswith("1 of 240"))
        browser.find_elements(By.CSS_SELECTOR, "#list li")[0].click()
        pre = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#detail pre.reasoning"))
        assert "<script>window.__pwned = 1</script>" in pre.text
        assert browser.execute_script("return window.__pwned === undefined")
        assert not browser.find_elements(By.CSS_SELECTOR, "#detail pre img, #list img[src='x']")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "inspect.png"))
        assert (ARTIFACTS / "inspect.png").stat().st_size > 10_000
    finally:
        browser.quit()
