"""URL validation and destination checks: bad input is refused with a specific reason."""

from __future__ import annotations

import pytest

from storyflow import NetworkError, PrivateAddress, UnsafeURL
from storyflow.download import check_destination, validate_url
from storyflow.download._urls import is_public_address


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("--exec=touch /tmp/x", "cannot start with '-'"),
        ("-ohttps://x", "cannot start with '-'"),
        ("ytdl:https://example.com/", "'ytdl:' links are not allowed"),
        ("generic:https://example.com/", "'generic:' links"),
        ("recursive:file:///etc/passwd", "'recursive:' links"),
        ("r:https://example.com", "'r:' links"),
        ("file:///etc/passwd", "'file:' links"),
        ("FILE:///etc/passwd", "'FILE:' links"),
        ("data:text/html,hi", "'data:' links"),
        ("javascript:alert(1)", "'javascript:' links"),
        ("https:/example.com", "must look like"),
        ("https://", "no host"),
        ("https://user:secret@example.com/", "user name or password"),
        ("https://example.com/\u202egpj.exe", "invisible"),
        ("https://exam\u200bple.com/", "invisible"),
        ("https://example.com/a\nb", "invisible"),
        ("https://example.com/a b", "spaces"),
        ("ｈttps://example.com/", "links are not allowed"),
        ("https://example.com:99999/", "malformed"),
        ("https://" + "a" * 3000 + ".com/", "characters long"),
        ("example.com/video", "not a link"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason.replace("(", r"\(").replace("'", "'")):
        validate_url(url)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://example.com", "https://example.com/"),
        ("HTTPS://Example.com/Path?q=1#f", "https://example.com/Path?q=1#f"),
        ("  https://example.com/x  ", "https://example.com/x"),
        ("https://пример.рф/видео", "https://xn--e1afmkfd.xn--p1ai/видео"),
        ("http://[::1]:8080/a.mp4", "http://[::1]:8080/a.mp4"),
    ],
)
def test_good_urls_are_normalised(url: str, normalised: str) -> None:
    assert validate_url(url) == normalised


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
    ],
)
def test_public_address_classification(address: str, public: bool) -> None:
    assert is_public_address(address) is public


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "0x7f.1", "017700000001", "127.1", "[::1]"])
async def test_loopback_in_any_spelling_is_refused(host: str) -> None:
    with pytest.raises(PrivateAddress, match="local or private"):
        await check_destination(validate_url(f"http://{host}/v.mp4"), allow_private=False)


async def test_private_addresses_allowed_by_the_setting() -> None:
    await check_destination("http://127.0.0.1/v.mp4", allow_private=True)


async def test_unresolvable_host_is_a_network_error() -> None:
    with pytest.raises(NetworkError, match="cannot resolve"):
        await check_destination("http://no-such-host.invalid/v.mp4", allow_private=False)
