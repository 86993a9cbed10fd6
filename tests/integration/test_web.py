"""The web page in headless Chromium: submit a message, read its result off the page."""

from __future__ import annotations

import pytest

from spamq.samples import EXPECTED, SAMPLES
from tests.integration.conftest import API_KEY, HOME

pytestmark = pytest.mark.integration


def test_page_scores_a_message(browser, api_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(api_url + "/#key=" + API_KEY)
    assert "spamq" in browser.title
    links = {a.text: a.get_attribute("href") for a in browser.find_elements(By.TAG_NAME, "a")}
    assert links["OpenAPI document"].endswith("/openapi.json")
    assert links["Flower (workers, tasks)"].startswith("http")
    assert links["API reference"] == api_url + "/docs"
    # the key's id and store area, from GET /v1/me
    WebDriverWait(browser, 20).until(
        ec.text_to_be_present_in_element((By.ID, "whoami"), f"store area {HOME}/"))
    assert browser.find_element(By.ID, "whoami").get_attribute("data-key-id") == HOME.split("/")[1]

    box = browser.find_element(By.ID, "texts")
    box.send_keys("\n".join(SAMPLES))
    browser.find_element(By.ID, "score-texts").click()
    WebDriverWait(browser, 60).until(
        ec.text_to_be_present_in_element((By.ID, "status"), ": done")
    )
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [c[1] for c in cells] == EXPECTED
    assert [c[3] for c in cells] == SAMPLES
    probabilities = [float(c[2]) for c in cells]
    assert probabilities[1] > 0.5 > max(probabilities[0], probabilities[2])
    assert browser.find_element(By.ID, "progress").get_attribute("value") == "3"

    # a file upload goes through the same page
    upload = tmp_path / "messages.csv"
    upload.write_text("id,text\n1,see you at the station at 6\n2,\"" + SAMPLES[1] + "\"\n")
    browser.find_element(By.ID, "file").send_keys(str(upload))
    browser.find_element(By.ID, "score-file").click()
    WebDriverWait(browser, 60).until(
        lambda b: "2/2" in b.find_element(By.ID, "status").text
        and len(b.find_elements(By.CSS_SELECTOR, "#results tbody tr")) == 2
    )
    labels = [row.find_elements(By.TAG_NAME, "td")[1].text
              for row in browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")]
    assert labels == ["ham", "spam"]
    browser.save_screenshot(str(tmp_path / "page.png"))


def test_bad_input_shows_the_named_field(browser, api_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(api_url + "/#key=" + API_KEY)  # the key moves to localStorage; the URL drops it
    browser.find_element(By.ID, "texts").clear()  # a fragment-only navigation keeps the form
    browser.find_element(By.ID, "texts").send_keys("x" * 6000)
    browser.find_element(By.ID, "score-texts").click()
    WebDriverWait(browser, 20).until(
        ec.text_to_be_present_in_element((By.ID, "status"), "413")
    )
    assert "texts[0]" in browser.find_element(By.ID, "status").text


def test_docs_renders_the_api_reference_from_vendored_assets(browser, api_url):
    """/docs: Swagger UI (from the swagger-ui-py wheel, no CDN) renders the generated
    /openapi.json; every script and style it loads comes from this server."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(api_url + "/docs")
    WebDriverWait(browser, 60).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock-summary-path[data-path='/v1/me']"))
    operations = {(e.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
                   e.find_element(By.CSS_SELECTOR, ".opblock-summary-path")
                   .get_attribute("data-path"))
                  for e in browser.find_elements(By.CSS_SELECTOR, ".opblock")}
    assert {("POST", "/v1/jobs"), ("GET", "/v1/jobs/{job_id}"), ("GET", "/v1/me")} <= operations
    loaded = [e.get_attribute("src") or e.get_attribute("href")
              for e in browser.find_elements(By.CSS_SELECTOR, "script[src], link[href]")]
    assert loaded and all(url.startswith(api_url + "/") for url in loaded), loaded
    # an operation opens to its description, from the same document
    browser.find_element(By.CSS_SELECTOR, ".opblock-summary-path[data-path='/v1/me']").click()
    WebDriverWait(browser, 20).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock.is-open .responses-wrapper"))
    assert "key_id" in browser.find_element(By.CSS_SELECTOR, ".opblock.is-open").text
