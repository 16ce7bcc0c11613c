"""The web chat page in a real headless Chromium: type a question, watch the answer stream in, keep the
conversation, send the API key the user typed; a screenshot of it is saved under the test's tmp_path."""

import json
import os
import shutil
import tempfile
import time

import pytest

from conftest import make_pretrained
from knowtune.serve.app import create_app
from knowtune.serve.background import running
from knowtune.serve.model import load

pytestmark = pytest.mark.slow  # ~50 s: a browser, and two replies of the page's 512 tokens from a random model

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

# Records every request the page sends and how the answer grows, as a person watching devtools would.
WATCH = """
window.__sent = [];
const realFetch = window.fetch;
window.fetch = (url, options) => {
  window.__sent.push({url: String(url), headers: options.headers, body: JSON.parse(options.body)});
  return realFetch(url, options);
};
window.__lengths = [];
new MutationObserver(() => {
  const answers = document.querySelectorAll('.msg.assistant');
  if (answers.length) window.__lengths.push(answers[answers.length - 1].textContent.length);
}).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
"""


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
            pytest.fail(f"CI needs a headless browser for the chat page test; missing: {', '.join(missing)}")
        pytest.skip(f"no headless browser here ({', '.join(missing)} missing)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="knowtune-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1000,700",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver named outright: Selenium Manager would otherwise go looking on the network for one
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = make_pretrained(tmp_path_factory.mktemp("page") / "lamps")
    config = json.loads((folder / "config.json").read_text())  # room for two replies the page allows
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 2048}))
    loaded = load(folder)
    with running(create_app(loaded, api_key="page-key")) as url:
        yield url


def wait(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the page")


def ask(driver, question):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    before = len(driver.find_elements(By.CSS_SELECTOR, ".msg.assistant"))
    driver.find_element(By.ID, "prompt").send_keys(question, Keys.ENTER)
    wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")) > before)
    wait(lambda: driver.find_element(By.ID, "send").text == "Send")  # the answer has finished
    assert driver.find_elements(By.CSS_SELECTOR, ".msg.error") == []
    [answer] = driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")[before:]
    assert answer.get_attribute("data-state") == "done"
    return answer.get_attribute("textContent")


def test_the_chat_page_streams_answers_and_keeps_the_conversation(browser, server, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    assert browser.find_element(By.ID, "model").text == "lamps"
    browser.execute_script(WATCH)
    browser.find_element(By.ID, "key").send_keys("page-key")

    first = ask(browser, "Which lamp burns red?")
    assert first.strip()
    lengths = browser.execute_script("return window.__lengths")
    assert len(set(lengths)) >= 3, f"the answer should grow as it streams, saw lengths {lengths}"

    second = ask(browser, "And the one after it?")
    assert second.strip()
    sent = browser.execute_script("return window.__sent")
    assert [m["role"] for m in sent[1]["body"]["messages"]] == ["user", "assistant", "user"]
    assert sent[1]["body"]["messages"][1]["content"] == first  # the conversation goes back with each question
    assert sent[1]["headers"]["Authorization"] == "Bearer page-key"

    shot = tmp_path / "chat.png"
    browser.save_screenshot(str(shot))
    image = Image.open(shot).convert("RGB")
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 10, "the screenshot is blank"

    browser.find_element(By.ID, "reset").click()
    assert browser.find_elements(By.CSS_SELECTOR, ".msg") == []
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_without_the_key_the_page_says_what_is_wrong(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server + "/")
    browser.find_element(By.ID, "prompt").send_keys("hello", Keys.ENTER)
    error = wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".msg.error"))
    assert "API key" in error[0].text
    browser.get_log("browser")  # the 401 the browser logs is the point of this test
