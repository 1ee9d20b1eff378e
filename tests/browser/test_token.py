"""Off loopback the dashboard needs its token; changes need it everywhere."""

from __future__ import annotations

import pytest

from stoker.ui import UIOptions
from tests.browser.conftest import shot

pytestmark = pytest.mark.timeout(60)

# 127.0.0.2 is still this machine, but not a name the dashboard treats as
# loopback-only: it behaves as it would on a LAN address.
_HOST = "127.0.0.2"


def test_token_in_url_once_then_cookie(page, store, serve):
    path, ids = store
    options = UIOptions(store=path, host=_HOST, port=0)
    url = serve(options)
    assert url.endswith(f"?token={options.token}")
    bare = url.split("?")[0]

    response = page.goto(bare)
    assert response.status == 403
    assert "needs its token" in page.inner_text("body")
    response = page.goto(bare + "?token=" + "x" * len(options.token))
    assert response.status == 403

    page.goto(url)
    assert page.url == bare  # the token left the address bar
    page.wait_for_selector("#runs-table")
    page.goto(f"{bare}runs/{ids['threads-1']}")  # the cookie carries on
    page.wait_for_selector("#metric-charts canvas")
    page.fill("textarea[name=note]", "tried 4 workers")
    page.click("#save-note")
    page.wait_for_selector("#note")
    assert page.inner_text("#note") == "tried 4 workers"
    shot(page, "token-note")


def test_a_post_without_the_token_changes_nothing(page, store, serve):
    path, ids = store
    url = serve(UIOptions(store=path, port=0))
    page.goto(f"{url}runs/{ids['threads-1']}")
    page.evaluate("document.querySelector('form input[name=token]').value = 'forged'")
    page.evaluate(
        "document.querySelectorAll('form input[name=token]')"
        ".forEach(i => i.value = 'forged')"
    )
    page.fill("textarea[name=note]", "forged note")
    page.click("#save-note")
    assert "wrong token" in page.inner_text("body")
    page.goto(f"{url}runs/{ids['threads-1']}")
    assert page.inner_text("#note") == "No note yet."
