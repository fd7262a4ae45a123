"""Dispatcher settings: the provider token never travels in clear."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dispatcher.config import Settings

TOKEN = "a-real-provider-token"


@pytest.mark.parametrize(
    "url", ["https://sms.example.com", "http://127.0.0.1:8010", "http://localhost:8010"]
)
def test_https_or_loopback_is_accepted(url: str) -> None:
    assert Settings(sms_api_url=url, sms_api_token=TOKEN, _env_file=None).sms_api_url == url


def test_plain_http_elsewhere_needs_an_explicit_allowance() -> None:
    with pytest.raises(ValidationError, match="must be https"):
        Settings(sms_api_url="http://sms.example.com", sms_api_token=TOKEN, _env_file=None)
    allowed = Settings(sms_api_url="http://fake-provider:8010", sms_api_token=TOKEN,
                       sms_api_allow_http=True, _env_file=None)  # fmt: skip
    assert allowed.sms_api_allow_http
    with pytest.raises(ValidationError, match="http\\(s\\) URL"):
        Settings(sms_api_url="ftp://sms.example.com", sms_api_token=TOKEN, _env_file=None)
