"""report.html in a real headless Chromium: it loads with no console error, every plot inside it decodes,
the contents links lead somewhere, and a screenshot (saved under the test's tmp_path) is not blank."""

import os
import shutil
import tempfile

import pytest

from test_report import make_run

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium")
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a headless browser for the report page test; missing: {', '.join(missing)}")
        pytest.skip(f"no headless browser here ({', '.join(missing)} missing)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="knowtune-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,900",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver named outright: Selenium Manager would otherwise go looking on the network for one
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def colours(path) -> int:
    from PIL import Image

    with Image.open(path) as img:
        return len(img.convert("RGB").getcolors(maxcolors=img.width * img.height))


def test_the_report_page_loads_whole_in_a_browser(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from knowtune.report import write_report
    from knowtune.runs import RunDir

    run = make_run(tmp_path / "runs")
    _, page = write_report(RunDir(run), "fake")
    browser.get_log("browser")  # drop whatever an earlier page left
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"))

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 5  # lengths, training curves, four ways, during training, the sweep's plot
    widths = browser.execute_script("return [...document.images].map(i => [i.alt, i.naturalWidth])")
    assert all(width > 0 for _, width in widths), widths
    missing = browser.execute_script(
        "return [...document.querySelectorAll('nav a')].map(a => a.hash.slice(1))"
        ".filter(id => !document.getElementById(id))")
    assert missing == []
    assert "Summary" in browser.find_element(By.TAG_NAME, "h2").text

    shot = tmp_path / "report.png"
    browser.save_screenshot(str(shot))
    assert colours(shot) > 1, "the screenshot is all one colour"
    plot = tmp_path / "four_ways.png"  # the plot itself, as drawn on the page
    browser.execute_script("arguments[0].scrollIntoView()", images[2])
    images[2].screenshot(str(plot))
    assert colours(plot) > 10  # bars in several colours, text, axes
