"""The demo page at ``/`` in a real browser: draw a digit, upload an X-ray, type a review,
submit a customer; every control labelled and the model's report shown."""

from __future__ import annotations

import pytest

from tests.paths import DATASETS_DIR


def open_demo(page, url: str, model: str):
    page.goto(f"{url}/?model={model}")
    # A function, not an expression: Playwright evaluates an expression with eval, which the
    # page's Content-Security-Policy refuses.
    page.wait_for_function(
        """(model) => document.getElementById('model').value === model
            && document.querySelector('#report table') !== null""",
        arg=model,
    )


def answer(page) -> str:
    page.locator("#result .answer").first.wait_for(timeout=30_000)
    return page.locator("#result .answer").first.inner_text()


def test_draw_a_seven_and_read_7(page, served_url):
    open_demo(page, served_url, "mnist")
    box = page.locator("#canvas").bounding_box()
    x, y = box["x"], box["y"]
    page.mouse.move(x + 70, y + 60)
    page.mouse.down()
    for px, py in [(140, 58), (215, 60), (180, 130), (150, 190), (125, 245)]:
        page.mouse.move(x + px, y + py, steps=8)
    page.mouse.up()
    page.get_by_role("button", name="Classify").click()
    assert answer(page) == "7"
    assert page.locator("#result .bar").count() == 5  # top-5 bars


def test_upload_an_x_ray(page, served_url):
    folder = DATASETS_DIR / "chest-xray-pneumonia" / "chest_xray" / "train" / "NORMAL"
    if not folder.is_dir():
        pytest.skip(f"no chest X-rays at {folder}")
    open_demo(page, served_url, "chest_xray")
    assert page.locator("#draw-box").is_hidden()  # photos are uploaded, not drawn
    page.set_input_files("#file", str(sorted(folder.iterdir())[0]))
    page.get_by_role("button", name="Classify").click()
    assert answer(page) in {"NORMAL", "PNEUMONIA"}
    assert page.locator("#report img").count() >= 1  # the confusion matrix, the history


def test_type_a_review(page, served_url):
    open_demo(page, served_url, "sentiment")
    page.get_by_label("Text (one per line)").fill("Absolutely wonderful, I loved every minute.")
    page.get_by_role("button", name="Predict").click()
    assert answer(page) == "positive"


def test_submit_a_churn_customer(page, served_url):
    open_demo(page, served_url, "churn")
    page.get_by_label("Contract").select_option("Month-to-month")
    page.get_by_label("tenure").fill("2")
    page.get_by_role("button", name="Predict").click()
    assert answer(page) in {"churn", "stay"}
    assert page.locator("#error").is_hidden()
    # The test split's sampling interval beside its ROC-AUC (1,200 customers: +-3 points) ...
    auc_row = page.locator("#report-metrics tr", has_text="roc auc").inner_text()
    assert "0.8216" in auc_row and "95 % interval 0.7917 to 0.8515" in auc_row
    # ... and the cross-validated figure the export recorded.
    spread = page.locator("#report-spread").inner_text()
    assert spread.startswith("On other held-out data: roc auc 0.854 ± 0.010 (0.840 to 0.865)")


def test_every_control_is_labelled_and_reachable_by_keyboard(page, served_url):
    open_demo(page, served_url, "churn")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter((el) => el.type !== 'file' && el.offsetParent !== null)
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map((el) => el.id)"""
    )
    assert unlabelled == []
    page.locator("#model").focus()
    page.keyboard.press("Tab")  # on to the next control, not stuck in the page
    assert page.evaluate("() => document.activeElement.id") != "model"


def test_explain_a_drawn_digit_a_review_and_a_customer(page, served_url):
    open_demo(page, served_url, "mnist")
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 140, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 240, steps=12)  # a 1
    page.mouse.up()
    page.get_by_role("button", name="Explain (Grad-CAM, activations)").click()
    assert answer(page) == "1"
    page.locator("#gradcam").wait_for()
    assert page.locator("#gradcam").evaluate("img => img.naturalWidth") == 224
    assert page.locator("img[id^=activations-conv]").count() == 2

    open_demo(page, served_url, "sentiment")
    page.get_by_label("Text (one per line)").fill("Absolutely wonderful, I loved it.")
    page.get_by_role("button", name="Explain (word by word)").click()
    assert answer(page) == "positive"
    assert page.locator(".tokens span").count() == 7
    # Inside the model: the review's strongest word and character n-grams.
    page.get_by_text("Inside the model").click()
    terms = page.locator("#layer-word_bigram_tfidf span").all_inner_texts()
    assert "wonderful" in terms and "loved" in terms, terms

    open_demo(page, served_url, "churn")
    page.get_by_label("tenure").fill("2")  # a new customer: tenure differs from the usual 29
    page.get_by_role("button", name="Explain (column by column)").click()
    assert answer(page) in {"churn", "stay"}
    assert page.locator("#result .bar").count() == 12
    first = page.locator("#result .bar").first.get_attribute("aria-label")
    assert first.startswith("tenure = 2:") and not first.endswith(" 0.0 points"), first
    page.get_by_text("Inside the model").click()
    assert page.locator("canvas#layer-dense").get_attribute("aria-label").startswith("dense: ")


def test_the_page_runs_under_its_content_security_policy(page, served_url):
    """No inline script runs, nothing from elsewhere, and no other site may frame it."""
    reply = page.goto(served_url + "/")
    policy = reply.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert reply.headers["x-content-type-options"] == "nosniff"
    ran = page.evaluate(
        """() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';
        document.body.appendChild(s); return window.ran === 1; }"""
    )
    assert ran is False  # an injected inline script is refused, and the browser says why
    assert any("inline script" in message for message in page.blocked_by_csp)
    page.blocked_by_csp.clear()
