"""Hostile input through the real command path: the owner's phone (and an allowed friend) type it into the loopback
Telegram, the userbot reads it as it would any message, and must answer with what was wrong before anything runs.

For every case: the reply starts as expected (``❌`` for a refusal) and names the problem; the resolver was asked
for exactly the names the case lists (none, for every numeric spelling); no download process was started or even
attempted; and after each group no job, setting, access rule or watch exists, the data dir holds only what a fresh
userbot made, and no file from an injected command appeared anywhere we can look.

Nothing here can leave the machine, even if production regresses: the userbot runs with
``allow_private_addresses = false``, a hosts-file resolver (``HostsFile``) answers every name lookup of the Trio run
from a fixed table and refuses the rest (so no DNS query is ever sent), and ``trio.run_process`` is replaced by a
recorder that refuses to start anything. Telegram is the project's loopback server.

The 36 gaps this file first found (crashes on 'a..b', '²', '--5' and huge ids, lost over-long replies, double
escaping, invisible fillers, NAT64 / IPv4-compatible / 192.0.0.8, trailing-dot, '*.localhost', zone-id and
percent-encoded hosts, '.story ig ..', rebinding reported as an internal error) are fixed and are ordinary cases
now, each expecting its specific answer (as is '.allow me', which a fix had briefly broken).
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.abc
from telethon.errors import MessageTooLongError
from trio_asyncio import aio_as_trio

from storyflow.testing.telegram import LoopbackTelegram, MessageRecord, open_client

from .conftest import BotRig, child_pids, running_userbot, userbot_config

# A file an injected command would create. The token is new per run, so an old leftover cannot fake a pass.
TOKEN = uuid.uuid4().hex[:12]
CANARY = f"/tmp/pwned-{TOKEN}"
TOUCH = f"touch${{IFS}}{CANARY}"  # one word: commands are split on whitespace

PRIVATE = "points to a local or private address"
THIS_MACHINE = f"{PRIVATE} (this machine)"  # 'localhost' and '*.localhost', refused by name (RFC 6761), no lookup
DASH = "a link cannot start with '-' (that is how options are injected)"
NOT_ALLOWED = "links are not allowed"
CREDENTIALS = "links with a user name or password in them are refused"
INVISIBLE = "link contains invisible control or direction characters"
ZONE_OR_PERCENT = "has a zone id or percent-encoding in it"
OWNER_ONLY = "only the owner can use"
UNKNOWN = "unknown command"

# What a fresh userbot leaves in its data dir: the database with its WAL files and these folders, all empty.
FRESH_LAYOUT = frozenset({
    "storyflow.sqlite3", "storyflow.sqlite3-wal", "storyflow.sqlite3-shm", "storyflow.sqlite3-journal",
    "jobs", "private", "cache", "cookies",
})

LONGEST_LABEL = "a" * 63 + ".example"  # valid (labels may have 63 characters), so it is looked up
PUBLIC_ANSWER = "1.1.1.1"  # only ever handed to the destination check; nothing connects to it (see run_process)

# The names the destination check may resolve, as an attacker's DNS would answer them. Anything else is unknown.
HOSTS: dict[str, tuple[str, ...]] = {
    "localhost": ("127.0.0.1", "::1"),  # bait: localhost is refused by name, a lookup of it fails the case
    "xn--pple-43d.example": ("10.0.0.7",),  # аpple.example, Cyrillic а
    "xn--xample-9ua.example": ("192.168.0.5",),  # éxample.example, precomposed or with a combining accent
    "xn--n3h.example": ("172.16.0.3",),  # ☃.example
    "ss.example": ("100.64.0.9",),  # ß.example (IDNA 2003 maps ß to ss)
    "metadata.example": ("169.254.169.254",),
    "mixed.example": (PUBLIC_ANSWER, "10.0.0.2"),  # one public answer does not launder a private one
    "v6.example": ("::1",),
    "mapped.example": ("::ffff:10.0.0.1",),
    **{f"k{i}.example": (PUBLIC_ANSWER,) for i in range(9)},
    "k9.example": ("10.0.0.9",),
    LONGEST_LABEL: ("10.0.0.63",),
}


# -- the cases ----------------------------------------------------------------------------------------------


@attrs.frozen
class Case:
    text: str
    expect: str | None  # a fragment the reply must contain; None: the message must get no reply at all
    starts: str = "❌"
    lookups: tuple[str, ...] | None = ()  # the names the resolver is asked, in order; None: not checked
    by: str = "owner"  # "owner" (Saved Messages), "owner-in-chat" (the owner's chat with the friend), "friend"
    reply_to_note: bool = False  # sent as a reply to an ordinary message the same sender wrote just before


def refused(text: str, expect: str, *lookups: str, by: str = "owner") -> Case:
    return Case(text, expect, lookups=lookups, by=by)


def private(url: str, host: str, address: str, *lookups: str) -> Case:
    """``.dl url`` refused by the destination check, naming the host and where it really points."""
    return Case(f".dl {url}", f"{host} {PRIVATE} ({address})", lookups=lookups)


def local(url: str, host: str) -> Case:
    """``.dl url`` whose host is ``localhost`` or under it: refused by name, nothing is looked up."""
    return Case(f".dl {url}", f"{host} {THIS_MACHINE}")


def ignored(text: str, by: str = "owner") -> Case:
    return Case(text, None, by=by)


def answered(text: str, starts: str, expect: str = "", by: str = "owner") -> Case:
    return Case(text, expect, starts=starts, by=by)


L = "https://10.0.0.1/"  # a link whose syntax passes and whose destination is refused without any lookup

OPTION_INJECTION = [
    # Every option the two tools have for running commands, reading files or writing elsewhere, as the only word,
    refused(f".dl --exec={TOUCH}", "--exec=touch${IFS}/tmp/pwned-"),
    refused(f".dl --exec-before-download={TOUCH}", "--exec-before-download=touch"),
    refused(f".dl --exec-after={TOUCH}", "--exec-after=touch"),
    refused(f".dl -o {CANARY}/%(id)s", f"-o: {DASH}"),
    refused(f".dl -o{CANARY}", f"-o/tmp/pwned-{TOKEN}: {DASH}"),
    refused(f".dl --output={CANARY}", f"--output=/tmp/pwned-{TOKEN}: {DASH}"),
    refused(f".dl --output {CANARY}", f"--output: {DASH}"),
    refused(f".dl -P {CANARY}", f"-P: {DASH}"),
    refused(f".dl --paths=home:{CANARY}", "--paths=home:/tmp/pwned-"),
    refused(".dl -a /etc/passwd", f"-a: {DASH}"),
    refused(".dl --batch-file=/etc/passwd", "--batch-file=/etc/passwd"),
    refused(".dl -i /etc/passwd", f"-i: {DASH}"),
    refused(".dl -I /etc/passwd", f"-I: {DASH}"),
    refused(".dl --input-file=/etc/passwd", "--input-file=/etc/passwd"),
    refused(".dl --load-info-json=/etc/passwd", "--load-info-json=/etc/passwd"),
    refused(".dl --config-location /etc/passwd", f"--config-location: {DASH}"),
    refused(f".dl --config-locations={CANARY}", "--config-locations=/tmp/pwned-"),
    refused(".dl -c /etc/passwd", f"-c: {DASH}"),
    refused(".dl --config-yaml=/etc/passwd", "--config-yaml=/etc/passwd"),
    refused(f".dl --plugin-dirs={CANARY}", "--plugin-dirs=/tmp/pwned-"),
    refused(".dl --ffmpeg-location=/bin/sh", "--ffmpeg-location=/bin/sh"),
    refused(".dl --external-downloader=sh", "--external-downloader=sh"),
    refused(f".dl --downloader-args=sh:-c${{IFS}}{TOUCH}", "--downloader-args=sh:-c"),
    refused(f".dl --postprocessor=exec:command={TOUCH}", "--postprocessor=exec:command="),
    refused(f".dl --write-log={CANARY}", "--write-log=/tmp/pwned-"),
    refused(f".dl --download-archive={CANARY}", "--download-archive=/tmp/pwned-"),
    refused(f".dl --cookies={CANARY}", "--cookies=/tmp/pwned-"),
    refused(".dl --cookies-from-browser=firefox", "--cookies-from-browser=firefox"),
    refused(".dl --netrc", f"--netrc: {DASH}"),
    refused(".dl --proxy=socks5://10.0.0.1:1080", "--proxy=socks5://10.0.0.1:1080"),
    refused(".dl -J", f"-J: {DASH}"),
    refused(".dl --dump-json", f"--dump-json: {DASH}"),
    refused(".dl --print=%(filename)s", "--print=%(filename)s"),
    refused(".dl -U", f"-U: {DASH}"),
    refused(".dl --update-to=nightly", "--update-to=nightly"),
    refused(".dl --ignore-config", f"--ignore-config: {DASH}"),
    refused(".dl --", f"--: {DASH}"),
    refused(".dl -", f"-: {DASH}"),
    refused(".dl ---", f"---: {DASH}"),
    refused(".dl --=x", f"--=x: {DASH}"),
    refused(".dl -720p", f"-720p: {DASH}"),
    # … and in every position around links and option words: the first bad word is named, wherever it is.
    refused(f".dl {L} --exec={TOUCH}", f"--exec=touch${{IFS}}/tmp/pwned-{TOKEN}: {DASH}"),
    refused(f".dl {L} -o {CANARY}", f"-o: {DASH}"),
    refused(f".dl audio --exec={TOUCH} {L}", "--exec=touch"),
    refused(f".dl {L} 720p -a /etc/passwd", f"-a: {DASH}"),
    refused(f".dl {L} file audio 480p --output={CANARY}", "--output=/tmp/pwned-"),
    refused(f".dl {L} -- {L}", f"--: {DASH}"),
    refused(f".dl {L} - {L}", f"-: {DASH}"),
    refused(f".dl https://10.0.0.2/ {L} -J", f"-J: {DASH}"),
    refused(f".dl {L}\n--exec={TOUCH}", "--exec=touch"),  # a newline is only another space
    refused(f".dl {L}\t-i\t/etc/passwd", f"-i: {DASH}"),
    # Dashes that are not ASCII hyphen-minus are not options to either tool, and no link either.
    refused(f".dl —exec={TOUCH}", "—exec=touch${IFS}/tmp/pwned-"),  # em dash
    refused(".dl –exec", "–exec: not a link: –exec"),  # en dash
    refused(".dl −exec", "−exec: not a link"),  # minus sign
    refused(".dl ‐exec", "‐exec: not a link"),  # U+2010 hyphen
    refused(".dl －－exec", "－－exec: not a link"),  # fullwidth hyphen-minus
    refused(".dl ﹣o", "﹣o: not a link"),  # small hyphen-minus
    refused(".dl —exec=http://10.0.0.1/", f"'—exec=http:' {NOT_ALLOWED}"),
    refused('.dl "--exec"', '"--exec": not a link'),
    refused(".dl '--exec'", "'--exec': not a link"),
    refused(".dl \\--exec", "\\--exec: not a link"),
    # Shell syntax means nothing: there is no shell. In a link it is just a path, and the host is still checked.
    private(f"https://10.0.0.1/$({TOUCH})", "10.0.0.1", "10.0.0.1"),
    private(f"https://10.0.0.1/;{TOUCH}", "10.0.0.1", "10.0.0.1"),
    private(f"https://10.0.0.1/|{TOUCH}", "10.0.0.1", "10.0.0.1"),
    private(f"https://10.0.0.1/`{TOUCH}`", "10.0.0.1", "10.0.0.1"),
    private(f"https://10.0.0.1/&&{TOUCH}", "10.0.0.1", "10.0.0.1"),
    refused(f".dl $({TOUCH})", "$(touch${IFS}/tmp/pwned-"),
    refused(f".dl ;{TOUCH}", ";touch${IFS}/tmp/pwned-"),
    # The other commands take no options at all.
    refused(f".story --exec={TOUCH}://x", DASH),
    refused(".story -o x", "no site called '-o'"),
    refused(".story --exec", "which stories?"),
    refused(".watch --exec x", "no site called '--exec'"),
    refused(".unwatch -o x", "no site called '-o'"),
    refused(".cookies set --exec", "no site called '--exec'"),
    refused(".cookies del -rf", "no site called '-rf'"),
    refused(f".cookies set $({TOUCH})", "no site called '$(touch"),
    refused(".cancel --all", "--all is not a job number"),
    refused(".retry -1", "-1 is not a job number"),
    refused(".history --help", "usage: .history [1–50]"),
    refused(".settings --exec 1", "no setting '--exec'"),
    refused(".settings max_urls --5", "bad value for max_urls: expected a whole number from 1 to 50"),
    refused(".allow chat --exec", "--exec is not a chat id"),
    refused(".help --exec", "no command --exec"),
]

PREFIXES_AND_SCHEMES = [
    refused(".dl ytdl:https://10.0.0.1/", f"'ytdl:' {NOT_ALLOWED}"),
    refused(".dl ytdl:", f"'ytdl:' {NOT_ALLOWED}"),
    refused(".dl generic:https://10.0.0.1/", f"'generic:' {NOT_ALLOWED}"),
    refused(".dl recursive:https://10.0.0.1/", f"'recursive:' {NOT_ALLOWED}"),
    refused(".dl r:https://10.0.0.1/", f"'r:' {NOT_ALLOWED}"),
    refused(".dl R:https://10.0.0.1/", f"'R:' {NOT_ALLOWED}"),
    refused(".dl recursive:file:///etc/passwd", f"'recursive:' {NOT_ALLOWED}"),
    refused(".dl r:file:///etc/passwd", f"'r:' {NOT_ALLOWED}"),
    refused(".dl file:///etc/passwd", f"'file:' {NOT_ALLOWED}"),
    refused(".dl FILE:///etc/passwd", f"'FILE:' {NOT_ALLOWED}"),
    refused(".dl file://localhost/etc/passwd", f"'file:' {NOT_ALLOWED}"),
    refused(".dl file:/etc/shadow", f"'file:' {NOT_ALLOWED}"),
    refused(".dl ytsearch:cats", f"'ytsearch:' {NOT_ALLOWED}"),
    refused(".dl ytsearch10:cats", f"'ytsearch10:' {NOT_ALLOWED}"),
    refused(".dl ytsearchall:cats", f"'ytsearchall:' {NOT_ALLOWED}"),
    refused(".dl scsearch:cats", f"'scsearch:' {NOT_ALLOWED}"),
    refused(".dl oauth:instagram", f"'oauth:' {NOT_ALLOWED}"),
    refused(".dl oauth:reddit", f"'oauth:' {NOT_ALLOWED}"),
    refused(".dl directlink:https://10.0.0.1/a.jpg", f"'directlink:' {NOT_ALLOWED}"),
    refused(".dl ftp://10.0.0.1/", f"'ftp:' {NOT_ALLOWED}"),
    refused(".dl ftps://10.0.0.1/", f"'ftps:' {NOT_ALLOWED}"),
    refused(".dl sftp://10.0.0.1/", f"'sftp:' {NOT_ALLOWED}"),
    refused(".dl data:text/html,<script>alert(1)</script>", f"'data:' {NOT_ALLOWED}"),
    refused(".dl data:video/mp4;base64,AAAA", f"'data:' {NOT_ALLOWED}"),
    refused(".dl javascript:alert(1)", f"'javascript:' {NOT_ALLOWED}"),
    refused(".dl vbscript:msgbox", f"'vbscript:' {NOT_ALLOWED}"),
    refused(".dl gopher://10.0.0.1:6379/_FLUSHALL", f"'gopher:' {NOT_ALLOWED}"),
    refused(".dl dict://10.0.0.1:11211/stats", f"'dict:' {NOT_ALLOWED}"),
    refused(".dl smb://10.0.0.1/share", f"'smb:' {NOT_ALLOWED}"),
    refused(".dl ws://10.0.0.1/", f"'ws:' {NOT_ALLOWED}"),
    refused(".dl wss://10.0.0.1/", f"'wss:' {NOT_ALLOWED}"),
    refused(".dl rtmp://10.0.0.1/live", f"'rtmp:' {NOT_ALLOWED}"),
    refused(".dl ldap://10.0.0.1/", f"'ldap:' {NOT_ALLOWED}"),
    refused(".dl tftp://10.0.0.1/x", f"'tftp:' {NOT_ALLOWED}"),
    refused(".dl http+unix://%2Fvar%2Frun%2Fdocker.sock/info", f"'http+unix:' {NOT_ALLOWED}"),
    refused(".dl view-source:https://10.0.0.1/", f"'view-source:' {NOT_ALLOWED}"),
    refused(".dl blob:https://10.0.0.1/x", f"'blob:' {NOT_ALLOWED}"),
    refused(".dl mailto:a@b.example", f"'mailto:' {NOT_ALLOWED}"),
    refused(".dl \\\\10.0.0.1\\share", "not a link: \\\\10.0.0.1\\share"),
    refused(".dl //10.0.0.1/path", "not a link: //10.0.0.1/path"),
    refused(".dl /etc/passwd", "not a link: /etc/passwd"),
    refused(".dl ../../etc/passwd", "not a link: ../../etc/passwd"),
    refused(".dl ~/.ssh/id_rsa", "not a link: ~/.ssh/id_rsa"),
    refused(".dl https//10.0.0.1/", "not a link: https//10.0.0.1/"),
    refused(".dl http:/x", "a link must look like https://host/path"),
    refused(".dl http:x", "a link must look like https://host/path"),
    refused(".dl https:\\\\10.0.0.1\\", "a link must look like https://host/path"),
    refused(".dl https:/\\10.0.0.1", "a link must look like https://host/path"),
    refused(".dl http:///x", "link has no host"),
    refused(".dl http://", "link has no host"),
    refused(".dl https://:80/", "link has no host"),
    refused(".dl https://?x=1", "link has no host"),
    refused(".dl https://[]/", "malformed link"),
    refused(".dl https://[::1", "malformed link: Invalid IPv6 URL"),
    refused(".dl https://10.0.0.1:99999/", "malformed link: Port out of range"),
    refused(".dl https://10.0.0.1:-1/", "malformed link: Port could not be cast"),
    refused(".dl https://10.0.0.1:http/", "malformed link: Port could not be cast"),
]

CREDENTIAL_LINKS = [
    refused(".dl https://user:pw@10.0.0.1/", CREDENTIALS),
    refused(".dl https://user@10.0.0.1/", CREDENTIALS),
    refused(".dl https://:pw@10.0.0.1/", CREDENTIALS),
    refused(".dl https://@10.0.0.1/", CREDENTIALS),
    refused(".dl https://10.0.0.2@10.0.0.1/", CREDENTIALS),
    refused(".dl https://a%40b:c%3Ad@10.0.0.1/", CREDENTIALS),
    refused(".dl https://user:pw@[::1]/", CREDENTIALS),
    refused(".dl https://x.example:443@10.0.0.1/", CREDENTIALS),  # reads like host:port
    refused(".dl https://10.0.0.1\\@x.example/", CREDENTIALS),
    refused(".dl HTTPS://USER:PW@10.0.0.1/", CREDENTIALS),
    refused(".dl https://u:p@ｌｏｃａｌｈｏｓｔ/", CREDENTIALS),
]

DESTINATIONS = [
    # Loopback in every spelling the resolver (and so the tools) accept; all numeric, judged with no lookup.
    private("http://127.0.0.1/", "127.0.0.1", "127.0.0.1"),
    private("http://127.0.0.2:8080/admin", "127.0.0.2", "127.0.0.2"),
    private("http://127.255.255.254/", "127.255.255.254", "127.255.255.254"),
    private("http://2130706433/", "2130706433", "127.0.0.1"),
    private("http://0x7f000001/", "0x7f000001", "127.0.0.1"),
    private("http://0X7F000001/", "0x7f000001", "127.0.0.1"),
    private("http://0x7f.0.0.1/", "0x7f.0.0.1", "127.0.0.1"),
    private("http://0x7f.1/", "0x7f.1", "127.0.0.1"),
    private("http://0177.0.0.1/", "0177.0.0.1", "127.0.0.1"),
    private("http://0177.1/", "0177.1", "127.0.0.1"),
    private("http://017700000001/", "017700000001", "127.0.0.1"),
    private("http://127.1/", "127.1", "127.0.0.1"),
    private("http://127.0.1/", "127.0.1", "127.0.0.1"),
    private("http://127.000.000.001/", "127.000.000.001", "127.0.0.1"),
    private("http://127.0.0.1:6379/", "127.0.0.1", "127.0.0.1"),
    private("http://[::1]/", "::1", "::1"),
    private("http://[::1]:2375/containers/json", "::1", "::1"),
    private("http://[0:0:0:0:0:0:0:1]/", "0:0:0:0:0:0:0:1", "::1"),
    private("http://[0000::0001]/", "0000::0001", "::1"),
    private("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "::ffff:127.0.0.1"),
    private("http://[::ffff:7f00:1]/", "::ffff:7f00:1", "::ffff:127.0.0.1"),
    private("http://[::1]x/", "::1", "::1"),  # what follows the bracket is dropped, for the check and the tool
    # "This host" and unspecified.
    private("http://0.0.0.0/", "0.0.0.0", "0.0.0.0"),
    private("http://0/", "0", "0.0.0.0"),
    private("http://0x0/", "0x0", "0.0.0.0"),
    private("http://0.1.2.3/", "0.1.2.3", "0.1.2.3"),
    private("http://[::]/", "::", "::"),
    private("http://[0::0]/", "0::0", "::"),
    # RFC 1918, in dotted, decimal, hex and octal.
    private("http://10.0.0.1/", "10.0.0.1", "10.0.0.1"),
    private("http://10.255.255.255/", "10.255.255.255", "10.255.255.255"),
    private("http://167772161/", "167772161", "10.0.0.1"),
    private("http://0xa.0.0.1/", "0xa.0.0.1", "10.0.0.1"),
    private("http://012.0.0.1/", "012.0.0.1", "10.0.0.1"),
    private("http://172.16.0.1/", "172.16.0.1", "172.16.0.1"),
    private("http://172.31.255.254/", "172.31.255.254", "172.31.255.254"),
    private("http://2886729729/", "2886729729", "172.16.0.1"),
    private("http://0xac.0x10.0.1/", "0xac.0x10.0.1", "172.16.0.1"),
    private("http://192.168.0.1/", "192.168.0.1", "192.168.0.1"),
    private("http://192.168.255.255/", "192.168.255.255", "192.168.255.255"),
    private("http://3232235521/", "3232235521", "192.168.0.1"),
    private("http://0xc0.0xa8.1.1/", "0xc0.0xa8.1.1", "192.168.1.1"),
    private("http://0300.0250.0.1/", "0300.0250.0.1", "192.168.0.1"),
    # Link-local and the cloud metadata endpoint.
    private("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "169.254.169.254", "169.254.169.254"),
    private("http://169.254.169.254/computeMetadata/v1/", "169.254.169.254", "169.254.169.254"),
    private("http://2852039166/", "2852039166", "169.254.169.254"),
    private("http://0xa9fea9fe/", "0xa9fea9fe", "169.254.169.254"),
    private("http://0251.0376.0251.0376/", "0251.0376.0251.0376", "169.254.169.254"),
    private("http://169.254.0.1/", "169.254.0.1", "169.254.0.1"),
    private("http://[fe80::1]/", "fe80::1", "fe80::1"),
    private("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254", "::ffff:169.254.169.254"),
    private("http://[::ffff:a9fe:a9fe]/", "::ffff:a9fe:a9fe", "::ffff:169.254.169.254"),
    private("http://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254", "fd00:ec2::254"),
    # CGNAT, benchmarking, documentation, IETF protocol assignments.
    private("http://100.64.0.1/", "100.64.0.1", "100.64.0.1"),
    private("http://100.127.255.254/", "100.127.255.254", "100.127.255.254"),
    private("http://198.18.0.1/", "198.18.0.1", "198.18.0.1"),
    private("http://198.19.255.255/", "198.19.255.255", "198.19.255.255"),
    private("http://192.0.2.1/", "192.0.2.1", "192.0.2.1"),
    private("http://198.51.100.7/", "198.51.100.7", "198.51.100.7"),
    private("http://203.0.113.9/", "203.0.113.9", "203.0.113.9"),
    private("http://192.0.0.1/", "192.0.0.1", "192.0.0.1"),
    # Multicast, reserved, broadcast.
    private("http://224.0.0.1/", "224.0.0.1", "224.0.0.1"),
    private("http://239.255.255.250:1900/", "239.255.255.250", "239.255.255.250"),
    private("http://[ff02::1]/", "ff02::1", "ff02::1"),
    private("http://240.0.0.1/", "240.0.0.1", "240.0.0.1"),
    private("http://255.255.255.254/", "255.255.255.254", "255.255.255.254"),
    private("http://255.255.255.255/", "255.255.255.255", "255.255.255.255"),
    private("http://4294967295/", "4294967295", "255.255.255.255"),
    # IPv6 private ranges and IPv4 tunnelled inside IPv6.
    private("http://[fc00::1]/", "fc00::1", "fc00::1"),
    private("http://[fd12:3456::1]/", "fd12:3456::1", "fd12:3456::1"),
    private("http://[2001:db8::1]/", "2001:db8::1", "2001:db8::1"),
    private("http://[100::1]/", "100::1", "100::1"),
    private("http://[2002:7f00:1::]/", "2002:7f00:1::", "2002:7f00:1::"),  # 6to4 of 127.0.0.1
    private("http://[2002:a00:1::]/", "2002:a00:1::", "2002:a00:1::"),  # 6to4 of 10.0.0.1
    private("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "2001:0:4136:e378:8000:63bf:80ff:fffe"),  # Teredo, client 127.0.0.1
    private("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1", "64:ff9b::a00:1"),  # NAT64 of 10.0.0.1
    private("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe"),  # NAT64 of the metadata
    private("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1", "64:ff9b::7f00:1"),  # NAT64 of 127.0.0.1
    private("http://[64:ff9b:1::a00:1]/", "64:ff9b:1::a00:1", "64:ff9b:1::a00:1"),  # local-use NAT64 prefix
    private("http://[::10.0.0.1]/", "::10.0.0.1", "::10.0.0.1"),  # IPv4-compatible
    private("http://[::a9fe:a9fe]/", "::a9fe:a9fe", "::169.254.169.254"),  # IPv4-compatible, in hex
    # IANA special-purpose ranges, refused whatever this Python's is_global says (3.11 calls 192.0.0.8 global).
    private("http://192.0.0.8/", "192.0.0.8", "192.0.0.8"),  # IPv4 dummy address
    private("http://192.0.0.170/", "192.0.0.170", "192.0.0.170"),  # NAT64 discovery
    private("http://192.88.99.1/", "192.88.99.1", "192.88.99.1"),  # 6to4 relay anycast
    private("http://[2001:2::1]/", "2001:2::1", "2001:2::1"),  # IPv6 benchmarking
    # Address spellings that are no plain IP literal: a trailing dot is dropped, a zone id or percent-encoding
    # is refused outright; none of them is looked up.
    private("http://127.0.0.1./", "127.0.0.1", "127.0.0.1"),
    private("http://0x7f.1./", "0x7f.1", "127.0.0.1"),
    refused(".dl http://[fe80::1%25eth0]/", f"http://[fe80::1%25eth0]/: host fe80::1%25eth0 {ZONE_OR_PERCENT}"),
    refused(".dl http://[fe80::1%eth0]/", f"host fe80::1%eth0 {ZONE_OR_PERCENT}"),
    refused(".dl http://%31%32%37.0.0.1/", f"http://%31%32%37.0.0.1/: host %31%32%37.0.0.1 {ZONE_OR_PERCENT}"),
    refused(".dl http://%6c%6f%63%61%6c%68%6f%73%74/", f"host %6c%6f%63%61%6c%68%6f%73%74 {ZONE_OR_PERCENT}"),
    # Hosts that are no valid name: every label is 1–63 letters, digits or dashes, the name at most 253
    # characters; refused before any lookup (a lookup of them used to crash the userbot).
    refused(".dl https://a..b/", "https://a..b/: invalid host name: a..b"),
    refused(".dl https://" + "a" * 64 + ".example/", "invalid host name: " + "a" * 39 + "…"),
    refused(".dl https://x.example../", "invalid host name: x.example.."),
    refused(".dl https://./", "https://./: invalid host name: ."),
    refused(".dl https://-x.example/", "invalid host name: -x.example"),
    refused(".dl https://x-.example/", "invalid host name: x-.example"),
    refused(".dl https://x_y.example/", "invalid host name: x_y.example"),
    refused(".dl https://" + "a." * 127 + "example/", "invalid host name: " + ("a." * 20)[:39] + "…"),
    private(f"https://{LONGEST_LABEL}/", LONGEST_LABEL, "10.0.0.63", LONGEST_LABEL),
    # Names: resolved (here from the hosts table) and judged by every address they resolve to.
    private("http://metadata.example/latest/meta-data/", "metadata.example", "169.254.169.254", "metadata.example"),
    private("http://METADATA.example./", "metadata.example", "169.254.169.254", "metadata.example"),  # one dot off
    private("http://mixed.example/", "mixed.example", "10.0.0.2", "mixed.example"),
    private("http://v6.example/", "v6.example", "::1", "v6.example"),
    private("http://mapped.example/", "mapped.example", "::ffff:10.0.0.1", "mapped.example"),
    # localhost and every name under it is this machine (RFC 6761): refused by name, never looked up.
    local("http://localhost/", "localhost"),
    local("http://LOCALHOST:8080/", "localhost"),
    local("http://localhost./", "localhost"),
    local("http://x.localhost/", "x.localhost"),
    local("http://a.b.LocalHost./", "a.b.localhost"),
    # Several links: each is checked, the first refused one is named.
    refused(".dl https://10.0.0.1/ https://10.0.0.2/", f"10.0.0.1 {PRIVATE}"),
    refused(".dl https://mixed.example/ http://[::1]/", f"mixed.example {PRIVATE} (10.0.0.2)", "mixed.example"),
    refused(".story http://169.254.169.254/latest/", f"169.254.169.254 {PRIVATE}"),
    refused(".story https://2130706433/stories/x", f"2130706433 {PRIVATE} (127.0.0.1)"),
    refused(".get http://0x7f.1/ audio", f"0x7f.1 {PRIVATE} (127.0.0.1)"),
]

UNICODE = [
    # Direction and invisible characters, wherever they sit in the link.
    refused(".dl https://10.0.0.1/\u202egpj.exe", f"https://10.0.0.1/?gpj.exe: {INVISIBLE}"),
    refused(".dl https://x\u202e.example/", INVISIBLE),
    refused(".dl https://10.0.0.1/\u200e", INVISIBLE),  # left-to-right mark
    refused(".dl https://10.0.0.1/\u2066x\u2069", INVISIBLE),  # isolates
    refused(".dl https://10.0.0.1/\u061c", INVISIBLE),  # Arabic letter mark
    refused(".dl https://x\u200d.example/", f"https://x?.example/: {INVISIBLE}"),  # zero-width joiner
    refused(".dl https://x\u200c.example/", INVISIBLE),  # zero-width non-joiner
    refused(".dl https://x\u200b.example/", INVISIBLE),  # zero-width space
    refused(".dl https://x\u2060.example/", INVISIBLE),  # word joiner
    refused(".dl \ufeffhttps://10.0.0.1/", INVISIBLE),  # byte order mark
    refused(".dl https://10.0.0.1/\u00ad", INVISIBLE),  # soft hyphen
    refused(".dl https://10.0.0.1/\U000e0041", INVISIBLE),  # tag character
    refused(".dl https://10.0.0.1/\u180e", INVISIBLE),  # Mongolian vowel separator
    # Blank letters and symbols and other default-ignorable code points are invisible too.
    refused(".dl https://10.0.0.1/\u3164", INVISIBLE),  # Hangul filler
    refused(".dl https://10.0.0.1/\u115f", INVISIBLE),  # Hangul choseong filler
    refused(".dl https://10.0.0.1/\u1160", INVISIBLE),  # Hangul jungseong filler
    refused(".dl https://10.0.0.1/\uffa0", INVISIBLE),  # halfwidth Hangul filler
    refused(".dl https://10.0.0.1/\u2800", INVISIBLE),  # braille blank
    refused(".dl https://10.0.0.1/a\u034fb", INVISIBLE),  # combining grapheme joiner
    refused(".dl https://10.0.0.1/a\ufe0fb", INVISIBLE),  # variation selector
    refused(".dl https://x\u3164.example/", INVISIBLE),
    refused(".dl https\u200b://10.0.0.1/", INVISIBLE),
    refused(".dl https://10.0.0.1/\x00", f"https://10.0.0.1/?: {INVISIBLE}"),  # NUL
    refused(".dl https://10.0.0.1/\x07", INVISIBLE),
    refused(".dl https://10.0.0.1/\x1b[31m", INVISIBLE),  # a terminal escape
    refused(".dl https://10.0.0.1/\x7f", INVISIBLE),
    refused(".dl https://10.0.0.1/\x9b", INVISIBLE),  # C1 control
    # A newline or tab inside a link splits it into two words; the piece after it is no link.
    refused(".dl https://10.0.0.1/a\nb.mp4", "b.mp4: not a link: b.mp4"),
    refused(".dl https://10.0.0.1/a\tb.mp4", "b.mp4: not a link: b.mp4"),
    refused(".dl https://x.exa\u00a0mple/", "mple/: not a link: mple/"),  # no-break space is a space too
    refused(".dl https://x.exa\u3000mple/", "mple/: not a link: mple/"),  # ideographic space
    # Look-alike schemes are not http(s).
    refused(".dl ｈｔｔｐｓ://10.0.0.1/", f"'ｈｔｔｐｓ:' {NOT_ALLOWED}"),
    refused(".dl ʰttps://10.0.0.1/", f"'ʰttps:' {NOT_ALLOWED}"),
    refused(".dl һttps://10.0.0.1/", f"'һttps:' {NOT_ALLOWED}"),  # Cyrillic shha
    refused(".dl https：//10.0.0.1/", "not a link: https：//10.0.0.1/"),  # fullwidth colon
    # Look-alike hosts become what they look like (or their punycode) and are checked like any other.
    local("https://ｌｏｃａｌｈｏｓｔ/", "localhost"),
    local("https://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/", "localhost"),
    local("https://ｌｏｃａｌｈｏｓｔ．/", "localhost"),  # fullwidth trailing dot
    local("https://x.ＬＯＣＡＬＨＯＳＴ/", "x.localhost"),
    private("https://１２７.０.０.１/", "127.0.0.1", "127.0.0.1"),
    private("https://127。0。0。1/", "127.0.0.1", "127.0.0.1"),  # ideographic full stops
    private("https://10．0．0．1/", "10.0.0.1", "10.0.0.1"),  # fullwidth full stops
    private("https://０ｘ７ｆ.１/", "0x7f.1", "127.0.0.1"),
    private("https://⑯⑨.254.169.254/", "169.254.169.254", "169.254.169.254"),  # circled numbers
    private("https://\u0430pple.example/", "xn--pple-43d.example", "10.0.0.7", "xn--pple-43d.example"),
    private("https://\u00e9xample.example/", "xn--xample-9ua.example", "192.168.0.5", "xn--xample-9ua.example"),
    private("https://e\u0301xample.example/", "xn--xample-9ua.example", "192.168.0.5", "xn--xample-9ua.example"),
    private("https://☃.example/", "xn--n3h.example", "172.16.0.3", "xn--n3h.example"),
    private("https://\u00df.example/", "ss.example", "100.64.0.9", "ss.example"),
    private("HTTPS://10.0.0.1/", "10.0.0.1", "10.0.0.1"),
    private("hTtP://10.0.0.1/", "10.0.0.1", "10.0.0.1"),
    # A host that is no name at all is refused before any lookup.
    refused(".dl https://x\ufffd.example/", "invalid host name: x\ufffd.example"),
    refused(".dl https://" + "é" * 64 + ".example/", "invalid host name"),
]

_EXACT_LIMIT_URL = "https://10.0.0.1/" + "a" * (2048 - len("https://10.0.0.1/"))
_ONE_OVER_URL = _EXACT_LIMIT_URL + "a"
_FULL_MESSAGE_URL = "https://10.0.0.1/" + "a" * (4096 - len(".dl https://10.0.0.1/"))

LENGTHS = [
    private(_EXACT_LIMIT_URL, "10.0.0.1", "10.0.0.1"),  # 2048 is allowed: it gets as far as the destination
    refused(f".dl {_ONE_OVER_URL}", "link is 2049 characters long; the limit is 2048"),
    refused(f".dl {L} {_ONE_OVER_URL} {L}", "link is 2049 characters long"),
    refused(f".dl {_FULL_MESSAGE_URL}", "link is 4092 characters long; the limit is 2048"),  # 4096 in all
    refused(".dl" + " x" * 2046 + "y", "x: not a link: x"),  # 4096 characters of 2046 words
    refused(".cancel" + " 7" * 2044 + "5", "no job #7"),
    refused(".history" + " 1" * 2044, "usage: .history [1–50]"),
    refused(f".story {_ONE_OVER_URL}", "link is 2049 characters long"),
    refused(".cookies set " + "x" * 4000, "no site called '" + "x" * 40 + "'"),
    refused(".story " + "x" * 3000 + " y", "no site called '" + "x" * 30 + "'"),
    refused(".dl " + "a" * 2000, "not a link: " + "a" * 39 + "…"),
]

OPTION_WORDS = [
    refused(f".dl {L} 9999999999p", "9999999999p: not a link"),  # ten digits is no height
    refused(f".dl {L} 999999999p", "999999999p: heights go from 144p to 4320p"),
    refused(f".dl {L} 9999999p", "9999999p: heights go from 144p to 4320p"),
    refused(f".dl {L} 999999p", "999999p: heights go from 144p to 4320p"),
    refused(f".dl {L} 0p", "0p: heights go from 144p to 4320p"),
    refused(f".dl {L} 143p", "143p: heights go from 144p to 4320p"),
    refused(f".dl {L} 4321p", "4321p: heights go from 144p to 4320p"),
    refused(f".dl {L} 000000p", "000000p: heights go from"),
    refused(f".dl {L} 720px", "720px: not a link"),
    refused(f".dl {L} p", "p: not a link"),
    refused(f".dl {L} 1e3p", "1e3p: not a link"),
    refused(f".dl {L} 0x2d0p", "0x2d0p: not a link"),
    refused(f".dl {L} ٧٢٠p", "٧٢٠p: not a link"),  # Arabic-Indic digits are no height
    refused(f".dl {L} ²p", "²p: not a link"),
    refused(f".dl {L} 720.5p", "720.5p: not a link"),
    refused(f".dl {L} 720p,1080p", "720p,1080p: not a link"),
    refused(f".dl {L} audio=1", "audio=1: not a link"),
    refused(f".dl {L} audio:1", f"'audio:' {NOT_ALLOWED}"),
    refused(f".dl {L} file:", f"'file:' {NOT_ALLOWED}"),
    refused(f".dl {L} format=bestvideo", "format=bestvideo: not a link"),
    refused(f".dl {L} height=720", "height=720: not a link"),
    refused(f".dl {L} --audio-only", f"--audio-only: {DASH}"),
    refused(f".dl {L} -x", f"-x: {DASH}"),
    refused(f".dl {L} -f", f"-f: {DASH}"),
    refused(f".dl {L} 720p;rm", "720p;rm: not a link"),
    # Option words alone are no download.
    refused(".dl audio", "no link given"),
    refused(".dl file audio 720p", "no link given"),
    refused(".dl AUDIO FILE 1080P", "no link given"),
    # Valid options do not get a private link past the destination check.
    refused(f".dl {L} audio file 720p", f"10.0.0.1 {PRIVATE}"),
]

ARGUMENTS = [
    # .cancel / .stop
    refused(".cancel", "which job? — usage: .cancel <id> | all (or reply to a status)"),
    refused(".cancel x", "x is not a job number — job numbers look like 12 or #12"),
    refused(".cancel -1", "-1 is not a job number"),
    refused(".cancel #", "# is not a job number"),
    refused(".cancel #-1", "#-1 is not a job number"),
    refused(".cancel 1.5", "1.5 is not a job number"),
    refused(".cancel 1e3", "1e3 is not a job number"),
    refused(".cancel 0x10", "0x10 is not a job number"),
    refused(".cancel 1,2", "1,2 is not a job number"),
    refused(".cancel ../1", "../1 is not a job number"),
    refused(".cancel 1;", "1; is not a job number"),
    refused(".cancel '1'", "'1' is not a job number"),
    refused(".cancel 1 x", "x is not a job number"),  # every id is read before any job is touched
    refused(".cancel all all", "all is not a job number"),
    refused(".cancel ALL", "ALL is not a job number"),
    refused(".cancel 9999999999999", "9999999999999 is not a job number"),  # 13 digits
    refused(".cancel 999999999999", "no job #999999999999 — see the queue for job ids"),  # 12 digits
    refused(".cancel 0", "0 is not a job number"),  # job numbers start at 1
    refused(".cancel #1", "no job #1"),
    refused(".cancel 1; DROP TABLE jobs", "; is not a job number"),
    refused(".stop x", "x is not a job number"),
    # Only ASCII digits are a number: '²' used to crash the userbot, '١٢' was read as job 12.
    refused(".cancel ²", "² is not a job number — job numbers look like 12 or #12"),
    refused(".cancel #³", "#³ is not a job number"),
    refused(".cancel ١٢", "١٢ is not a job number"),
    refused(".cancel １２", "１２ is not a job number"),  # fullwidth digits
    refused(".cancel 1000000000001", "1000000000001 is not a job number"),  # above 10**12
    # .retry
    refused(".retry", "which job? — usage: .retry <id>"),
    refused(".retry 1 2", "which job? — usage: .retry <id>"),
    refused(".retry abc", "abc is not a job number"),
    refused(".retry -5", "-5 is not a job number"),
    refused(".retry 1; DROP TABLE jobs", "which job?"),
    refused(".retry 1;DROP", "1;DROP is not a job number"),
    refused(".retry 0", "0 is not a job number"),
    refused(".retry ²", "² is not a job number"),
    refused(".retry 999999999999", "no job #999999999999"),
    refused(".retry 99999999999999999999", "99999999999999999999 is not a job number"),
    # .history
    refused(".history 0", "usage: .history [1–50]"),
    refused(".history 51", "usage: .history [1–50]"),
    refused(".history -1", "usage: .history [1–50]"),
    refused(".history abc", "usage: .history [1–50]"),
    refused(".history 1 2", "usage: .history [1–50]"),
    refused(".history 10abc", "usage: .history [1–50]"),
    refused(".history 0x10", "usage: .history [1–50]"),
    refused(".history 99999999999999999999", "usage: .history [1–50]"),
    refused(".history 1;DROP", "usage: .history [1–50]"),
    refused(".history ³", "usage: .history [1–50]"),
    refused(".history ٥", "usage: .history [1–50]"),
    # .settings
    refused(".settings a", "usage: .settings [key value] — keys: autodownload, max_concurrent"),
    refused(".settings a b c", "usage: .settings [key value]"),
    refused(".settings nope 1", "no setting 'nope'"),
    refused(".settings ../x 1", "no setting '../x'"),
    refused(".settings __class__ 1", "no setting '__class__'"),
    refused(".settings MAX_URLS 5", "no setting 'MAX_URLS'"),
    refused(".settings max_concurrent 0", "bad value for max_concurrent: expected a whole number from 1 to 16"),
    refused(".settings max_concurrent 17", "bad value for max_concurrent: expected a whole number from 1 to 16"),
    refused(".settings max_concurrent -1", "bad value for max_concurrent"),
    refused(".settings max_concurrent 1e3", "bad value for max_concurrent"),
    refused(".settings max_concurrent 99999999999999999999999", "bad value for max_concurrent"),
    refused(".settings max_concurrent 1;DROP", "bad value for max_concurrent"),
    refused(".settings max_urls 51", "bad value for max_urls: expected a whole number from 1 to 50"),
    refused(".settings max_urls ²", "bad value for max_urls"),
    refused(".settings max_urls ١٠", "bad value for max_urls: expected a whole number from 1 to 50"),
    refused(".settings max_concurrent ³", "bad value for max_concurrent: expected a whole number from 1 to 16"),
    refused(".settings " + "k" * 4000 + " 1", "no setting '" + "k" * 39 + "…' — settings: autodownload"),
    refused(".settings parts_in_flight 33", "bad value for parts_in_flight"),
    refused(".settings max_jobs_per_owner 0", "bad value for max_jobs_per_owner"),
    refused(".settings autodownload maybe", "bad value for autodownload: expected on or off"),
    refused(".settings autodownload 2", "bad value for autodownload: expected on or off"),
    # .allow / .deny
    refused(".allow", "whom? — usage: .allow @user | id | chat (or reply to their message)"),
    refused(".deny", "whom?"),
    refused(".allow a b", "usage: .allow @user | id | chat"),
    refused(".allow 1; DROP TABLE jobs", "usage: .allow @user | id | chat"),
    refused(".allow chat 1 2", "usage: .allow chat [id]"),
    refused(".allow chat abc", "abc is not a chat id"),
    refused(".allow chat 1.5", "1.5 is not a chat id"),
    refused(".allow chat 0x10", "0x10 is not a chat id"),
    refused(".allow chat ../1", "../1 is not a chat id"),
    refused(".allow chat 1;DROP", "1;DROP is not a chat id"),
    refused(".allow chat ¹", "¹ is not a chat id — chat ids look like -1001234567890"),
    refused(".allow chat --5", "--5 is not a chat id"),
    refused(".allow chat 0", "0 is not a chat id"),
    refused(".allow chat -0", "-0 is not a chat id"),
    refused(".allow chat 9007199254740993", "9007199254740993 is not a chat id"),  # 2**53 + 1
    refused(".allow chat 99999999999999999999", "99999999999999999999 is not a chat id"),
    refused(".deny chat -99999999999999999999", "-99999999999999999999 is not a chat id"),
    refused(".deny chat -9007199254740993", "-9007199254740993 is not a chat id"),
    refused(".allow chat " + "x" * 4080, "x" * 39 + "… is not a chat id"),
    refused(".allow chat <i>1</i>", "<i>1</i> is not a chat id"),  # escaped once: the user reads what they typed
    refused(".deny chat abc", "abc is not a chat id"),
    refused(".deny a b", "usage: .allow @user | id | chat"),
    refused(".allow @nobody_here_xyz", "no user or chat @nobody_here_xyz — check the @username or id"),
    # Neither a number nor a valid username: refused before Telegram is asked.
    refused(".allow 1;DROP", "'1;DROP' is neither a @username nor a numeric id"),
    refused(".allow --5", "'--5' is neither a @username nor a numeric id"),
    refused(".allow 99999999999999999999", "'99999999999999999999' is neither a @username nor a numeric id"),
    refused(".allow -9007199254740993", "'-9007199254740993' is neither a @username nor a numeric id"),
    refused(".allow @ab", "'ab' is neither a @username nor a numeric id"),
    refused(".allow @a.b_c", "'a.b_c' is neither a @username nor a numeric id"),
    refused(".deny ../x", "'../x' is neither a @username nor a numeric id"),
    refused(".allow self", "you are the owner; you need no permission"),
    refused(".allow me", "you are the owner; you need no permission"),
    refused(".allow @storyflow_owner", "you are the owner; you need no permission"),
    # .watch / .unwatch (shapes refused before any account is looked up)
    refused(".watch a", "which stories?"),
    refused(".watch foo bar", "no site called 'foo'"),
    refused(".watch instagram ../x", "'../x' is not a instagram username"),
    refused(".watch tiktok ../x -> me", "'../x' is not a tiktok username"),
    refused(".watch x user highlights", "only current stories of an account can be watched"),
    refused(".watch tg durov_x highlights", "only current stories of an account can be watched"),
    refused(".watch facebook some.one", "gallery-dl and yt-dlp cannot list Facebook stories"),
    refused(".watch snapchat a", "'a' is not a snapchat username"),
    refused(".watch x user ->", "after -> comes one chat: here, me, or @name"),
    refused(".watch x user -> a b", "after -> comes one chat"),
    refused(".watch x user ->a b", "after -> comes one chat"),
    refused(".watch ig 1; DROP", "which stories?"),
    refused(".watch https://t.me/../s/1", "'..' is not a telegram username"),
    refused(".watch ig ..", "'..' is not a instagram username"),
    refused(".watch file:///etc/passwd", f"'file:' {NOT_ALLOWED}"),
    refused(".watch http://10.0.0.1/", "only current stories of an account can be watched"),
    refused(".unwatch", "usage: .unwatch <id> | <site> <user>"),
    refused(".unwatch 1 2 3", "usage: .unwatch <id> | <site> <user>"),
    refused(".unwatch x", "x is not a job number"),
    refused(".unwatch -5", "-5 is not a job number"),
    refused(".unwatch 0", "0 is not a job number"),
    refused(".unwatch 99", "no such watch"),
    refused(".unwatch ig ../x", "'../x' is not a instagram username"),
    refused(".unwatch foo bar", "no site called 'foo'"),
    # .story (shapes refused before any network access)
    refused(".story", "which stories? — usage: .story <link>"),
    refused(".story a b c", "which stories?"),
    refused(".story foo bar", "no site called 'foo' — sites: telegram, instagram, snapchat, tiktok, x"),
    refused(".story @a", "'a' is not a telegram username"),
    refused(".story @", "'' is not a telegram username"),
    refused(".story @1;DROP", "'1;DROP' is not a telegram username"),
    refused(".story tg ../../etc/passwd", "'../../etc/passwd' is not a telegram username"),
    # Only dots, or '..' anywhere, is no username (it used to build instagram.com/stories/../).
    refused(".story ig ..", "'..' is not a instagram username"),
    refused(".story ig ...", "'...' is not a instagram username"),
    refused(".story ig a..b", "'a..b' is not a instagram username"),
    refused(".story tiktok ..", "'..' is not a tiktok username"),
    refused(".story tiktok user.name highlights", "tiktok has no highlights StoryFlow can reach"),
    refused(".story facebook some.one", "gallery-dl and yt-dlp cannot list Facebook stories"),
    refused(".story x " + "a" * 16, "is not a x username"),
    refused(".story ig " + "a" * 31, "is not a instagram username"),
    refused(".story @" + "a" * 33, "is not a telegram username"),
    refused(".story snap -x", "'-x' is not a snapchat username"),
    refused(".story file:///etc/passwd", f"'file:' {NOT_ALLOWED}"),
    refused(".story ftp://10.0.0.1/", f"'ftp:' {NOT_ALLOWED}"),
    refused(".story ytdl:https://10.0.0.1/", f"'ytdl:' {NOT_ALLOWED}"),
    refused(".story recursive:file:///etc/passwd", f"'recursive:' {NOT_ALLOWED}"),
    refused(".story https://user:pw@10.0.0.1/", CREDENTIALS),
    refused(".story https://10.0.0.1/\u202e", INVISIBLE),
    refused(".story https://t.me/../s/1", "'..' is not a telegram username"),
    refused(".story https://t.me/a/s/1", "'a' is not a telegram username"),
    # A t.me story link's id is a number (ASCII digits, 1 to 2**31 - 1) or the link is refused.
    refused(".story https://t.me/someone_x/s/²", "'²' is not a story number — links look like t.me/<user>/s/12"),
    refused(".story https://t.me/someone_x/s/abc", "'abc' is not a story number"),
    refused(".story https://t.me/someone_x/s/0", "'0' is not a story number"),
    refused(".story https://t.me/someone_x/s/2147483648", "'2147483648' is not a story number"),
    refused(".story https://t.me/someone_x/s/-1", "'-1' is not a story number"),
    refused(".story https://a..b/", "invalid host name: a..b — labels are 1–63 letters, digits or dashes"),
    refused(".story https://story.snapchat.com/s/..", "'..' is not a snapchat username"),
    refused(".story https://snapchat.com/add/-x", "'-x' is not a snapchat username"),
    refused(".stories @a", "'a' is not a telegram username"),
    refused(".s a b c", "which stories?"),
    # .cookies
    refused(".cookies frob", "usage: .cookies | .cookies set <site>"),
    refused(".cookies set", "usage: .cookies"),
    refused(".cookies del", "usage: .cookies"),
    refused(".cookies set instagram extra", "usage: .cookies"),
    refused(".cookies del ig extra", "usage: .cookies"),
    refused(".cookies set ../../etc/passwd", "no site called '../../etc/passwd' — known sites: instagram"),
    refused(".cookies del ../x", "no site called '../x'"),
    refused(".cookies del *", "no site called '*'"),
    refused(".cookies set instagram.com.evil.example", "no site called 'instagram.com.evil.example'"),
    refused(".cookies set instagram", "reply with this to the message that has the cookies.txt"),
    # .help
    refused(".help frob", "no command frob — see .help"),
    refused(".help ../../etc", "no command ../../etc"),
    refused(".help " + "h" * 4090, "no command " + "h" * 39 + "… — see .help"),  # shortened, so it goes out
    refused(".help <b>x</b>", "no command <b>x</b> — see .help"),  # escaped once
    # Replies to something that is not what the command needs.
    Case(".cancel", "that message is not a job's", reply_to_note=True),
    Case(".allow", "you are the owner; you need no permission", reply_to_note=True),
    Case(".cookies set instagram", "that message has no file attached", reply_to_note=True),
    # HTML in an argument is shown as text, never as markup.
    refused(".dl <b>x</b>", "<b>x</b>: not a link: <b>x</b>"),
    refused(".dl <a href='https://x.example'>y</a>", "<a: not a link"),
    refused(".settings <b>k</b> 1", "no setting '<b>k</b>'"),
    refused(".story <b>x</b> y", "no site called '<b>x</b>'"),
    refused(".cookies set <i>x</i>", "no site called '<i>x</i>'"),
    refused(".cancel <b>1</b>", "<b>1</b> is not a job number"),
    refused(".dl &lt;b&gt;", "&lt;b&gt;: not a link"),
]

COMMAND_NAMES = [
    answered(".frobnicate", UNKNOWN, f"{UNKNOWN} .frobnicate — see .help"),
    answered(".exec", UNKNOWN, ".exec"),
    answered(".eval", UNKNOWN, ".eval"),
    answered(".sh", UNKNOWN, ".sh"),
    answered(".rm -rf /", UNKNOWN, ".rm"),
    answered(".sudo dl", UNKNOWN, ".sudo"),
    answered(".dl_", UNKNOWN, ".dl_"),
    answered(".d", UNKNOWN, ".d "),
    answered(".drop_table_jobs", UNKNOWN, ".drop_table_jobs"),
    answered(".abcdefghijklmnopqrst", UNKNOWN, ".abcdefghijklmnopqrst"),  # 20 characters: still a name
    answered(".FROBNICATE", UNKNOWN, ".frobnicate"),
    # Names are case-insensitive, aliases included.
    refused(".DL", "no link given"),
    refused(".Dl --exec=x", f"--exec=x: {DASH}"),
    refused(".dL file:///etc/passwd", f"'file:' {NOT_ALLOWED}"),
    refused(".GET", "no link given"),
    refused(".DOWNLOAD ytdl:x", f"'ytdl:' {NOT_ALLOWED}"),
    refused(".CANCEL x", "x is not a job number"),
    refused(".HeLp frob", "no command frob"),
    refused(".dl\nhttps://10.0.0.1/", f"10.0.0.1 {PRIVATE}"),  # a newline after the name is a space
    refused(".dl\u00a0https://10.0.0.1/", f"10.0.0.1 {PRIVATE}"),
    answered(".PING", "🏓 pong"),
    answered(".ping --exec", "🏓 pong"),  # takes no arguments, runs nothing
    answered(".queue --exec", "the queue is empty"),
    answered(".q ../../etc", "the queue is empty"),
    # Not a command at all: no answer, nothing run.
    ignored("..dl https://10.0.0.1/"),
    ignored(". dl https://10.0.0.1/"),
    ignored("."),
    ignored(".."),
    ignored("..."),
    ignored(".ｄｌ https://10.0.0.1/"),
    ignored(".dl-x https://10.0.0.1/"),
    ignored(f".dl;{TOUCH}"),
    ignored(".dl&&id"),
    ignored(".1dl"),
    ignored(".ping\u200b"),
    ignored(".\u202edl"),
    ignored(".abcdefghijklmnopqrstu"),  # 21 characters
    ignored(".__import__"),
    ignored("。dl https://10.0.0.1/"),
    ignored("．dl https://10.0.0.1/"),
    ignored("\u200b.dl https://10.0.0.1/"),
    ignored("!dl https://10.0.0.1/"),
    ignored("/dl https://10.0.0.1/"),
    ignored("dl https://10.0.0.1/"),
    ignored(f"look at https://10.0.0.1/ --exec={TOUCH}"),
]

SAVED_MESSAGES = [
    # A message that is nothing but links downloads without a command: the same checks apply.
    refused("https://10.0.0.1/", f"10.0.0.1 {PRIVATE}"),
    refused("HTTP://127.0.0.1/ https://[::1]/", f"127.0.0.1 {PRIVATE}"),
    refused("http://2130706433/", f"2130706433 {PRIVATE} (127.0.0.1)"),
    refused("https://localhost/", f"localhost {THIS_MACHINE}"),
    refused("https://x..example/", "https://x..example/: invalid host name: x..example"),
    refused("https://10.0.0.1/\u3164", INVISIBLE),
    refused("http://", "link has no host"),
    refused("https://user:pw@10.0.0.1/", CREDENTIALS),
    refused("https://10.0.0.1/\u202e", INVISIBLE),
    refused(_ONE_OVER_URL, "link is 2049 characters long"),
    refused("https://10.0.0.1/a https://x\u200d.example/", INVISIBLE),
    ignored("file:///etc/passwd"),
    ignored("ftp://10.0.0.1/"),
    ignored(f"https://10.0.0.1/ --exec={TOUCH}"),
    ignored("https://10.0.0.1/ and more"),
    ignored("ytdl:https://10.0.0.1/"),
    # Elsewhere a bare link is chat, even from the owner.
    ignored("https://10.0.0.1/", by="owner-in-chat"),
    refused(".dl https://10.0.0.1/", f"10.0.0.1 {PRIVATE}", by="owner-in-chat"),
    refused(f".dl --exec={TOUCH}", DASH, by="owner-in-chat"),
    refused(".allow chat abc", "abc is not a chat id", by="owner-in-chat"),
]


def friend(text: str, expect: str, starts: str = "❌") -> Case:
    return Case(text, expect, starts=starts, by="friend")


FRIEND = [
    friend(f".dl --exec={TOUCH}", DASH),
    friend(f".dl https://10.0.0.1/ -o {CANARY}", f"-o: {DASH}"),
    friend(".dl http://169.254.169.254/latest/meta-data/", f"169.254.169.254 {PRIVATE}"),
    friend(".dl http://2130706433/", f"2130706433 {PRIVATE} (127.0.0.1)"),
    friend(".dl http://[::ffff:7f00:1]/", f"::ffff:7f00:1 {PRIVATE}"),
    friend(".get file:///etc/passwd", f"'file:' {NOT_ALLOWED}"),
    friend(".dl recursive:file:///etc/passwd", f"'recursive:' {NOT_ALLOWED}"),
    friend(".dl https://a:b@10.0.0.1/", CREDENTIALS),
    friend(".dl https://10.0.0.1/\u202egpj.exe", INVISIBLE),
    friend(".dl https://10.0.0.1/ 0p", "0p: heights go from"),
    friend(".story @a", "'a' is not a telegram username"),
    friend(".story ftp://10.0.0.1/", f"'ftp:' {NOT_ALLOWED}"),
    friend(".cancel x", "x is not a job number"),
    friend(".cancel 1", "no job #1"),
    friend(".retry 1", "no job #1"),
    friend(".retry 1; DROP TABLE jobs", "which job?"),
    friend(".history 0", "usage: .history [1–50]"),
    friend(".cookies set ../x", "no site called '../x'"),
    friend(".cookies set instagram", "reply with this to the message that has the cookies.txt"),
    friend(".help ../x", "no command ../x"),
    friend(".frobnicate", f"{UNKNOWN} .frobnicate", starts=UNKNOWN),
    # What only the owner may do is refused by name, whatever the arguments.
    friend(".settings max_urls 50", f"{OWNER_ONLY} .settings", starts=OWNER_ONLY),
    friend(".settings", f"{OWNER_ONLY} .settings", starts=OWNER_ONLY),
    friend(".SETTINGS max_concurrent 16", f"{OWNER_ONLY} .settings", starts=OWNER_ONLY),
    friend(".allow @storyflow_friend", f"{OWNER_ONLY} .allow", starts=OWNER_ONLY),
    friend(".allow chat 1", f"{OWNER_ONLY} .allow", starts=OWNER_ONLY),
    friend(".deny @storyflow_owner", f"{OWNER_ONLY} .deny", starts=OWNER_ONLY),
    friend(".allowed", f"{OWNER_ONLY} .allowed", starts=OWNER_ONLY),
    friend(".watch ig someone", f"{OWNER_ONLY} .watch", starts=OWNER_ONLY),
    friend(".unwatch 1", f"{OWNER_ONLY} .unwatch", starts=OWNER_ONLY),
    friend(".stats", f"{OWNER_ONLY} .stats", starts=OWNER_ONLY),
    friend(".cancel all", "cancelling 0 jobs", starts="cancelling 0 jobs"),
    Case(".cancel", "that message is not a job's", by="friend", reply_to_note=True),
    ignored("https://10.0.0.1/", by="friend"),  # a bare link only downloads in the owner's Saved Messages
    ignored("..dl https://10.0.0.1/", by="friend"),
    ignored(f".dl;{TOUCH}", by="friend"),
]

GROUPS: dict[str, list[Case]] = {
    "option-injection": OPTION_INJECTION,
    "prefixes-and-schemes": PREFIXES_AND_SCHEMES,
    "credentials": CREDENTIAL_LINKS,
    "destinations": DESTINATIONS,
    "unicode": UNICODE,
    "lengths": LENGTHS,
    "option-words": OPTION_WORDS,
    "arguments": ARGUMENTS,
    "command-names": COMMAND_NAMES,
    "saved-messages": SAVED_MESSAGES,
    "friend": FRIEND,
}




# -- the rig: a userbot that can neither resolve a name nor start a process ---------------------------------


@attrs.define(eq=False)
class HostsFile(trio.abc.HostnameResolver):
    """Every name lookup of the Trio run: answered from ``entries`` (one answer list per lookup, the last one
    repeating), refused as unknown otherwise. Numeric hosts never get here: Trio resolves them itself."""

    entries: dict[str, list[tuple[str, ...]]]
    asked: list[str] = attrs.field(factory=list)

    async def getaddrinfo(
        self, host: bytes | None, port: bytes | str | int | None, family: int = 0, type: int = 0, proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        name = (host or b"").decode("ascii")
        count = self.asked.count(name)
        self.asked.append(name)
        answers = self.entries.get(name)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        number = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0)) if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number))
            for address in answers[min(count, len(answers) - 1)]
        ]

    async def getnameinfo(self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int) -> tuple[str, str]:
        raise socket.gaierror(socket.EAI_NONAME, "no reverse lookups in these tests")


class AnswerFailures(logging.Handler):
    """The userbot's "could not answer" warnings, so a reply Telegram refused ends the wait instead of hanging."""

    def __init__(self, server: LoopbackTelegram) -> None:
        super().__init__(logging.WARNING)
        self.server = server
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith("could not answer"):
            self.messages.append(text)
            self.server.notify()


def _tree(root: Path) -> set[tuple[str, bool]]:
    return {(str(path.relative_to(root)), path.is_dir()) for path in root.rglob("*")}


def _canaries(tmp_path: Path) -> list[Path]:
    """Files an injected command would have made: in the usual places, and anywhere under this test's folder."""
    near = [path for folder in (Path("/tmp"), Path.cwd(), Path.home()) for path in folder.glob(f"*{TOKEN}*")]
    return near + list(tmp_path.rglob(f"*{TOKEN}*"))


@attrs.define(eq=False)
class Hostile:
    bot: BotRig
    friend: Any  # telethon.TelegramClient of the allowed friend
    resolver: HostsFile
    spawned: list[list[str]]
    failures: AnswerFailures
    tmp_path: Path
    fresh: set[tuple[str, bool]] = attrs.field(factory=set)
    sent: list[tuple[Case, int]] = attrs.field(factory=list)

    @property
    def server(self) -> LoopbackTelegram:
        return self.bot.server

    async def send(self, text: str, by: str, *, reply_to: int | None = None) -> int:
        """What BotRig.type does, for the owner's phone in either chat or the friend's, optionally as a reply."""
        if by == "friend":
            message = await aio_as_trio(self.friend.send_message)("storyflow_owner", text, reply_to=reply_to)
        else:
            chat = "storyflow_friend" if by == "owner-in-chat" else "me"
            message = await aio_as_trio(self.bot.phone.send_message)(chat, text, reply_to=reply_to)
        return int(message.id)

    def replies(self, message_id: int) -> list[MessageRecord]:
        return [m for m in self.server.all_messages() if m.reply_to == message_id and not m.deleted]

    async def reply_or_refusal(self, message_id: int) -> MessageRecord | str:
        """The first reply to ``message_id``, or the userbot's warning that Telegram refused its answer."""
        seen = len(self.failures.messages)

        def settled() -> MessageRecord | str | None:
            replies = self.replies(message_id)
            if replies:
                return replies[0]
            return self.failures.messages[seen] if len(self.failures.messages) > seen else None

        with trio.fail_after(30):
            return await self.server.wait_until(settled)

    async def barrier(self, by: str) -> None:
        """A ``.ping`` from the same sender in the same chat, answered: every message before it has been read.

        Messages that are no command are dropped without awaiting anything, so by then their turn is over."""
        ping = await self.send(".ping", by)
        reply = await self.reply_or_refusal(ping)
        assert isinstance(reply, MessageRecord) and reply.text.startswith("🏓"), reply

    async def run(self, case: Case) -> str | None:
        """Send one case; None if everything about it is as expected, else what was wrong."""
        self.resolver.asked.clear()
        spawned_before = len(self.spawned)
        note = await self.send(f"a note {len(self.sent)}", case.by) if case.reply_to_note else None
        message_id = await self.send(case.text, case.by, reply_to=note)
        self.sent.append((case, message_id))
        problems = []
        if case.expect is None:
            await self.barrier(case.by)
            if replies := self.replies(message_id):
                problems.append(f"expected no answer, got {replies[0].text[:300]!r}")
        else:
            reply = await self.reply_or_refusal(message_id)
            if isinstance(reply, str):
                problems.append(f"no answer: {reply[:300]}")
            elif not reply.text.startswith(case.starts) or case.expect not in reply.text:
                problems.append(f"answer {reply.text[:400]!r}")
        if case.lookups is not None and self.resolver.asked != list(case.lookups):
            problems.append(f"resolver asked for {self.resolver.asked}, expected {list(case.lookups)}")
        if started := self.spawned[spawned_before:]:
            problems.append(f"a process was started: {started}")
        if pids := child_pids():
            problems.append(f"child processes alive: {pids}")
        return "; ".join(problems) or None

    async def run_all(self, cases: Iterable[Case]) -> None:
        problems = [f"{case.text[:120]!r} ({case.by}): {problem}"
                    for case in cases if (problem := await self.run(case)) is not None]
        assert not problems, "\n".join(problems)
        await self.assert_nothing_left()

    async def assert_nothing_left(self) -> None:
        # One more round trip per sender, then no case may have more answers than its one.
        for by in sorted({case.by for case, _ in self.sent}):
            await self.barrier(by)
        extra = [(case.text[:80], [m.text[:80] for m in replies]) for case, message_id in self.sent
                 if len(replies := self.replies(message_id)) > (0 if case.expect is None else 1)]
        assert extra == [], extra
        store = self.bot.running.store
        assert await store.recent_jobs() == []
        assert await store.settings() == {}
        assert await store.access_rules() == []
        assert await store.watches() == []
        assert self.spawned == [] and child_pids() == set()
        assert _tree(self.bot.config.paths.data_dir) == self.fresh
        assert self.failures.messages == []
        assert _canaries(self.tmp_path) == []


@asynccontextmanager
async def hostile_userbot(
    telegram: LoopbackTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    hosts: dict[str, list[tuple[str, ...]]] | None = None,
) -> AsyncIterator[Hostile]:
    resolver = HostsFile(hosts if hosts is not None else {name: [answers] for name, answers in HOSTS.items()})
    trio.socket.set_custom_hostname_resolver(resolver)
    spawned: list[list[str]] = []

    async def no_processes(command: Sequence[str], **options: object) -> None:
        spawned.append(list(command))
        raise PermissionError("hostile-input tests start no processes")

    monkeypatch.setattr(trio, "run_process", no_processes)
    failures = AnswerFailures(telegram)
    logger = logging.getLogger("storyflow")
    logger.addHandler(failures)
    config = userbot_config(
        tmp_path, telegram, download={"allow_private_addresses": False},
        commands={"allowed_users": (telegram.friend.user_id,)},
    )
    try:
        async with running_userbot(telegram, config) as bot, open_client(telegram, telegram.friend) as friend_client:
            # The phones type text as it is: no Markdown, which would eat `__x__` or `**`.
            bot.phone.parse_mode = None
            friend_client.parse_mode = None
            data_dir = config.paths.data_dir
            fresh = _tree(data_dir)
            assert {Path(name).parts[0] for name, _ in fresh} <= FRESH_LAYOUT, fresh
            assert not [name for name, is_dir in fresh if not is_dir and "/" in name], fresh
            yield Hostile(bot, friend_client, resolver, spawned, failures, tmp_path, fresh)
    finally:
        logger.removeHandler(failures)


# -- the tests ----------------------------------------------------------------------------------------------


def test_there_are_enough_cases() -> None:
    texts = [(case.text, case.by, case.reply_to_note) for cases in GROUPS.values() for case in cases]
    assert len(texts) >= 200, len(texts)
    assert len(set(texts)) == len(texts), [t for t in texts if texts.count(t) > 1]


@pytest.mark.parametrize("group", list(GROUPS))
async def test_hostile_input_is_refused_before_anything_runs(
    group: str, telegram: LoopbackTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with hostile_userbot(telegram, tmp_path, monkeypatch) as rig:
        await rig.run_all(GROUPS[group])


async def test_a_message_over_telegrams_limit_never_reaches_the_userbot(
    telegram: LoopbackTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with hostile_userbot(telegram, tmp_path, monkeypatch) as rig:
        before = len(telegram.all_messages())
        with pytest.raises(MessageTooLongError):
            await rig.send(".dl" + " x" * 2047, "owner")  # 4097 characters
        with pytest.raises(MessageTooLongError):
            await rig.send(".cancel" + " 1" * 2045, "friend")
        assert len(telegram.all_messages()) == before
        # 4096 is the most a message can have, and such a one is answered (see the "lengths" group).
        await rig.run_all([refused(".dl" + " x" * 2046 + "z", "x: not a link")])


async def test_only_the_first_links_are_resolved_and_every_word_is_read_first(
    telegram: LoopbackTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = [f"http://k{i}.example/" for i in range(10)]  # max_urls_per_message is 10
    dropped = _fill(".dl " + " ".join(kept), (f"http://10.{i}/" for i in range(10_000)), reserve=20)
    assert len(dropped) >= 250
    message = ".dl " + " ".join(kept + dropped)
    async with hostile_userbot(telegram, tmp_path, monkeypatch) as rig:
        await rig.run_all([
            # The ten kept links are resolved in order and the tenth is refused; the 250+ dropped ones, private
            # as they are, are never resolved or judged.
            Case(message, f"k9.example {PRIVATE} (10.0.0.9)", lookups=tuple(f"k{i}.example" for i in range(10))),
            # But every word is read before anything is resolved: a bad one at the very end is refused first.
            Case(message + " ftp://x", f"'ftp:' {NOT_ALLOWED}"),
            Case(message + " -o", f"-o: {DASH}"),
        ])


def _fill(prefix: str, words: Iterable[str], *, reserve: int) -> list[str]:
    """As many of ``words`` as fit after ``prefix`` in one 4096-character message, keeping ``reserve`` free."""
    taken: list[str] = []
    length = len(prefix)
    for word in words:
        if length + 1 + len(word) > 4096 - reserve:
            break
        taken.append(word)
        length += 1 + len(word)
    return taken


async def test_cap_notice_and_a_host_that_turns_private_after_acceptance(
    telegram: LoopbackTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """DNS rebinding: the names look public when the links are read and when the job is accepted, and private
    when the download is about to start. The cap's notice is shown, each link fails on its own with the reason
    (the others are still tried), and no tool ever starts."""
    kept = [f"r{i}.example" for i in range(10)]
    turns_private: list[tuple[str, ...]] = [(PUBLIC_ANSWER,), (PUBLIC_ANSWER,), ("10.0.0.1",)]
    hosts = {name: turns_private for name in kept}
    dropped = _fill(".dl " + " ".join(f"http://{n}/" for n in kept), (f"http://10.{i}/" for i in range(10_000)),
                    reserve=0)
    async with hostile_userbot(telegram, tmp_path, monkeypatch, hosts=hosts) as rig:
        command = await rig.send(".dl " + " ".join([f"http://{n}/" for n in kept] + dropped), "owner")
        status = await rig.bot.final_status(command)
        assert status.text.startswith("❌"), status.text
        assert f"only the first 10 links were taken ({len(dropped)} more ignored)" in status.text, status.text
        assert f"r0.example {PRIVATE} (10.0.0.1)" in status.text, status.text
        assert "internal error" not in status.text, status.text
        # Read, accepted, then checked again before each download: every link refused there, none skipped.
        assert rig.resolver.asked == kept + kept + kept
        assert rig.spawned == [] and child_pids() == set()
        [job] = await rig.bot.running.store.recent_jobs()
        assert job.state.value == "failed" and job.urls == tuple(f"http://{n}/" for n in kept)
        assert job.error_kind == "private_destination", job
        assert _tree(rig.bot.config.paths.data_dir) == rig.fresh  # its folder is gone
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text  # no crash logged


async def test_the_rig_would_notice_a_download(
    telegram: LoopbackTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other tests rely on these nets: a link the hosts table calls public is accepted, and the tool's start
    is seen (and stopped) by the run_process recorder, with `--` right before the link."""
    hosts: dict[str, list[tuple[str, ...]]] = {"public.example": [(PUBLIC_ANSWER,)]}
    async with hostile_userbot(telegram, tmp_path, monkeypatch, hosts=hosts) as rig:
        command = await rig.send(".dl http://public.example/clip.mp4", "owner")
        status = await rig.bot.final_status(command)
        assert status.text.startswith("❌"), status.text
        assert rig.spawned, "no tool start was recorded"
        for argv in rig.spawned:
            assert argv[-2:] == ["--", "http://public.example/clip.mp4"] and "--ignore-config" in argv, argv
        assert child_pids() == set()
        assert rig.resolver.asked == ["public.example"] * 3  # read, accepted, about to download


async def test_a_host_that_turns_private_after_acceptance_is_named(
    telegram: LoopbackTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The download-time check's refusal is that link's failure (PrivateDestination, a DownloadError): the user
    reads which host and where it points, not an internal error, and nothing is logged as a crash."""
    hosts: dict[str, list[tuple[str, ...]]] = {"late.example": [(PUBLIC_ANSWER,), (PUBLIC_ANSWER,), ("10.0.0.1",)]}
    async with hostile_userbot(telegram, tmp_path, monkeypatch, hosts=hosts) as rig:
        command = await rig.send(".dl http://late.example/", "owner")
        status = await rig.bot.final_status(command)
        assert status.text.startswith("❌ #1 failed: ") and f"late.example {PRIVATE} (10.0.0.1)" in status.text, (
            status.text)
        assert "links to local or private network addresses are refused" in status.text, status.text
        assert "internal error" not in status.text, status.text
        assert rig.resolver.asked == ["late.example"] * 3  # read, accepted, about to download
        assert rig.spawned == [] and child_pids() == set()
        [job] = await rig.bot.running.store.recent_jobs()
        assert job.state.value == "failed" and job.error_kind == "private_destination", job
        assert job.error is not None and f"late.example {PRIVATE} (10.0.0.1)" in job.error, job
        assert _tree(rig.bot.config.paths.data_dir) == rig.fresh
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
