"""The destination guard proxy, with the real download tools behind it.

Here 127.0.0.1 plays the public internet (the media server lives there) and every other address is private: a
redirect to 127.0.0.2 stands for one to a router or a cloud's metadata service. Nothing leaves the machine."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from storyflow.download._proxy import GuardProxy, open_guard_proxy
from storyflow.testing._httpserver import MediaServer
from storyflow.testing._media import sha256_file

from .conftest import MediaFiles


class NoNames:
    """A resolver that knows no names (Trio resolves numeric hosts itself)."""

    async def getaddrinfo(self, host: bytes | None, port: object, *args: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def getnameinfo(self, sockaddr: object, flags: int) -> tuple[str, str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def only_127_0_0_1(address: str) -> bool:
    return address == "127.0.0.1"


async def run_tool(proxy: GuardProxy, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **proxy.tool_environment()}
    return await trio.run_process([sys.executable, "-m", *args], capture_stdout=True, capture_stderr=True,
                                  check=False, env=env)


@pytest.mark.parametrize("tool", ["yt_dlp", "gallery_dl"])
async def test_the_tools_download_through_the_guard_and_cannot_be_redirected_past_it(
    site: MediaServer, media: MediaFiles, tmp_path: Path, tool: str
) -> None:
    private = site.add_redirect("/to-private.mp4", "http://127.0.0.2:9/clip.mp4")
    async with open_guard_proxy(is_allowed=only_127_0_0_1) as proxy:
        if tool == "yt_dlp":
            common = ["yt_dlp", "--ignore-config", "--no-cache-dir", "--proxy", proxy.url, "--retries", "0",
                      "-o", str(tmp_path / "%(id)s.%(ext)s"), "--"]
        else:
            common = ["gallery_dl", "--ignore-config", "--proxy", proxy.url, "-R", "0", "-D", str(tmp_path), "--"]
        fine = await run_tool(proxy, *common, site.url("/clip.mp4"))
        refused = await run_tool(proxy, *common, private)
    assert fine.returncode == 0, fine.stderr.decode()
    [downloaded] = await trio.Path(tmp_path).iterdir()
    assert sha256_file(downloaded) == sha256_file(media.video)
    assert refused.returncode != 0
    assert proxy.refused == ["127.0.0.2"]
    assert site.request_count("/to-private.mp4") >= 1  # the public page was asked; its redirect went nowhere


async def test_plain_http_goes_through_and_private_hosts_are_refused(site: MediaServer) -> None:
    async with open_guard_proxy(is_allowed=only_127_0_0_1) as proxy, httpx.AsyncClient(proxy=proxy.url) as client:
        answer = await client.get(site.url("/photo.jpg"))
        assert answer.status_code == 200 and answer.content[:2] == b"\xff\xd8"
        # localhost is this machine whatever a judge says; a cloud's metadata service is link-local.
        for target in ("http://localhost:9/", "http://127.0.0.2:9/", "http://169.254.169.254/latest/meta-data/"):
            refused = await client.get(target)
            assert refused.status_code == 403, target
            assert "local or private address" in refused.text
    assert proxy.refused == ["localhost", "127.0.0.2", "169.254.169.254"]


async def test_connect_tunnels_bytes_both_ways(site: MediaServer) -> None:
    async with open_guard_proxy(is_allowed=only_127_0_0_1) as proxy:
        stream = await trio.open_tcp_stream("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))
        async with stream:
            await stream.send_all(f"CONNECT 127.0.0.1:{site.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert (await stream.receive_some(1024)).startswith(b"HTTP/1.1 200")
            await stream.send_all(b"GET /photo.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            received = b""
            while chunk := await stream.receive_some(65536):
                received += chunk
    assert received.startswith(b"HTTP/1.1 200") and b"\xff\xd8" in received


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"nonsense\r\n\r\n", b"400"),
        (b"GET /relative HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"GET ftp://127.0.0.1/x HTTP/1.1\r\n\r\n", b"400"),
        (b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", b"400"),
        (b"GET http://127.0.0.1:1/ HTTP/1.1\r\nbad header line\r\n\r\n", b"400"),
        (b"GET http://127.0.0.1/ HTTP/1.1\r\nX: " + b"a" * 40_000 + b"\r\n\r\n", b"431"),
        (b"GET http://no-such-host.example/ HTTP/1.1\r\n\r\n", b"502"),
        (b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n", b"403"),
        (b"CONNECT [::ffff:10.0.0.1]:443 HTTP/1.1\r\n\r\n", b"403"),
        (b"CONNECT localhost:443 HTTP/1.1\r\n\r\n", b"403"),
    ],
)
async def test_bad_requests_get_an_answer_not_a_crash(request_bytes: bytes, status: bytes) -> None:
    trio.socket.set_custom_hostname_resolver(NoNames())  # no lookup leaves the machine
    async with open_guard_proxy() as proxy:  # the real judge: public addresses only
        stream = await trio.open_tcp_stream("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))
        async with stream:
            await stream.send_all(request_bytes)
            with trio.fail_after(10):
                answer = await stream.receive_some(1024)
    assert answer.split(b" ")[1] == status, answer
