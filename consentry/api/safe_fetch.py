"""Fetch an image from a URL a client gave us without letting the client aim the server at
internal addresses (SSRF).

The URL is parsed once, by the HTTP client's own parser (``httpx.URL``), and that parsed
object is what is sent, so the host we check is the host we reach. Anything a second parser
could read differently (userinfo, backslashes, whitespace, numeric hosts other than a
dotted quad) is refused before the allow-list. The host is then resolved here, every
address must be publicly routable (or inside an operator-listed network), and the
connection goes to an address that passed, whatever DNS answers later. One deadline bounds
the whole fetch, and every failure past the allow-list gives the same answer, so a caller
cannot map ports or addresses from our replies.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from consentry.signals.image import MAX_IMAGE_BYTES

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The one answer for every failure once the URL has passed the allow-list.
FETCH_FAILED = "Failed to fetch URL"
_INVALID = "Invalid or unsafe URL provided"
# NAT64 (RFC 6052): the well-known prefix carries an IPv4 address in its last 32 bits;
# the local-use prefix (RFC 8215) leads into a private network.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
# getaddrinfo cannot be given a timeout: it runs here and is waited on until the deadline.
# Few workers, so a hung resolver makes later fetches time out instead of piling up threads.
_RESOLVER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="safe-fetch-dns")
# What the client and its transport raise for a failed exchange.
_TRANSPORT_ERRORS = (
    httpx.HTTPError, httpx.StreamError, httpcore.TimeoutException, httpcore.NetworkError,
    httpcore.ProtocolError, httpcore.UnsupportedProtocol, httpcore.ConnectionNotAvailable,
    OSError,
)


@dataclass(frozen=True)
class FetchPolicy:
    """Where and how much a fetch may reach.

    ``allowed_hosts``: host names (a name also admits its subdomains); empty admits none.
    ``allowed_networks``: non-public networks that may still be reached (a trusted internal
    CDN, tests); everything else must be publicly routable. ``deadline_s`` bounds the whole
    fetch: resolution, connection, headers and body together.
    """

    allowed_hosts: tuple[str, ...]
    allowed_networks: tuple[IPNetwork, ...] = ()
    deadline_s: float = 10.0
    max_bytes: int = MAX_IMAGE_BYTES


class FetchRefused(Exception):
    """The URL was not fetched; ``status`` is the HTTP status to answer with (400, or 413
    for a body over the size limit) and the message is safe to show the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Unreachable(Exception):
    """A failure after the allow-list: logged with its cause, answered as FETCH_FAILED."""


def fetch_image(url: str, policy: FetchPolicy) -> bytes:
    """Download the body at ``url`` (http or https, status 200, no redirects) within
    ``policy``, or raise ``FetchRefused``."""
    deadline = time.monotonic() + policy.deadline_s
    target, host = _checked_url(url, policy.allowed_hosts)
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        addresses = _vetted_addresses(host, port, policy.allowed_networks, deadline)
        return _download(target, host, addresses, policy.max_bytes, deadline)
    except _Unreachable as exc:
        # The path and query may carry personal data: log the host and port only.
        log.info("URL fetch from %s:%s failed: %s", host, port, exc)
        raise FetchRefused(400, FETCH_FAILED) from None


# -- the URL --------------------------------------------------------------------------


def _checked_url(url: str, allowed_hosts: Sequence[str]) -> tuple[httpx.URL, str]:
    """Parse with the client's parser and refuse anything ambiguous or not allowed.
    Answers the parsed URL and its host as the resolver gets it (ASCII, IDNA)."""
    # A backslash is a path separator to browsers and WHATWG parsers but not to RFC 3986
    # ones (the bypass "http://127.0.0.1:80\@example.com/"); whitespace and control
    # characters are read differently by different parsers too.
    if any(c == "\\" or c.isspace() or not c.isprintable() for c in url):
        raise FetchRefused(400, f"{_INVALID}: backslash, whitespace or control character")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise FetchRefused(400, _INVALID) from None
    if parsed.scheme not in ("http", "https"):
        raise FetchRefused(400, f"{_INVALID}: only http and https URLs can be fetched")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise FetchRefused(400, f"{_INVALID}: no host")
    # RFC 3986: the authority runs to the first "/", "?" or "#"; any "@" in it is userinfo,
    # even an empty one.
    authority = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]
    if parsed.userinfo or "@" in authority:
        raise FetchRefused(400, f"{_INVALID}: user information (user@) is not accepted")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise FetchRefused(400, f"{_INVALID}: no such port")
    if "%" in host:  # percent-escapes in a name, IPv6 zone ids
        raise FetchRefused(400, f"{_INVALID}: escaped characters in the host")
    # "127.1", "2130706433", "0x7f000001", "127.0.0.1.": resolvers read these as addresses;
    # only the plain dotted quad is accepted, so the address checked is the one written.
    last_label = host.removesuffix(".").rsplit(".", 1)[-1]
    if ":" not in host and _NUMERIC_LABEL.fullmatch(last_label) and not _is_ip(host):
        raise FetchRefused(400, f"{_INVALID}: write an IPv4 address as four decimal numbers")
    key = _host_key(host)
    allowed = [_host_key(h) for h in allowed_hosts]
    if not any(key == h or key.endswith("." + h) for h in allowed if h):
        raise FetchRefused(400, f"{_INVALID}: host {key!r} is not allowed")
    return parsed, host


def _host_key(host: str) -> str:
    """A host as it is compared: lowercase, IDNA, no trailing dot, IPs in canonical text."""
    host = host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
    if _is_ip(host):
        return str(ipaddress.ip_address(host))
    try:
        return httpx.URL(scheme="http", host=host).raw_host.decode("ascii")
    except httpx.InvalidURL:
        return host


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# -- the addresses --------------------------------------------------------------------


def _vetted_addresses(host: str, port: int, networks: Sequence[IPNetwork],
                      deadline: float) -> list[str]:
    """Resolve ``host`` once; refuse it if any address may not be reached (a name that
    also answers an internal address could be steered there)."""
    lookup = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=max(deadline - time.monotonic(), 0.0))
    except FutureTimeout:
        lookup.cancel()
        raise _Unreachable("name resolution timed out") from None
    except (OSError, UnicodeError) as exc:  # UnicodeError: a label empty or over 63 bytes
        raise _Unreachable(f"name resolution failed: {exc}") from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        ip = ipaddress.ip_address(address)
        if not _reachable(ip, networks):
            raise _Unreachable(f"address {ip} is not publicly routable")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _Unreachable("name resolution gave no address")
    return addresses


def _reachable(ip: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    if any(ip in net or (mapped is not None and mapped in net) for net in networks):
        return True
    return _publicly_routable(ip)


def _publicly_routable(ip: IPAddress) -> bool:
    """Global unicast only: not loopback, private, link-local (cloud metadata at
    169.254.169.254), shared (100.64/10), unspecified, reserved or multicast; IPv6 forms
    that carry an IPv4 address are judged by that address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo is not None or ip in _NAT64_LOCAL:
            return False  # Teredo: the client address is obfuscated; not worth the risk
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _publicly_routable(embedded)
    # is_global alone admits multicast and IPv4-compatible IPv6 (::7f00:1).
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


# -- the exchange ---------------------------------------------------------------------


def _download(target: httpx.URL, host: str, addresses: list[str], max_bytes: int,
              deadline: float) -> bytes:
    # The request goes straight to the transport, not through an httpx.Client: nothing is
    # taken from the environment (proxies, netrc), no redirect is followed, no cookie is
    # kept, and the client's request log (which would hold the full URL) is not written.
    request = httpx.Request("GET", target, headers={
        "Accept": "image/*", "Accept-Encoding": "identity", "User-Agent": "Consentry"})
    budget = max(deadline - time.monotonic(), 0.001)
    request.extensions["timeout"] = httpx.Timeout(budget).as_dict()
    transport = _PinnedTransport(_PinnedBackend(host, addresses, deadline))
    try:
        response = transport.handle_request(request)
        try:
            return _read_body(response, max_bytes, deadline)
        finally:
            response.close()
    except _TRANSPORT_ERRORS as exc:
        raise _Unreachable(f"{type(exc).__name__}: {exc}") from None
    finally:
        transport.close()


def _read_body(response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    if response.status_code != 200:  # a redirect too: it could lead anywhere
        raise _Unreachable(f"HTTP {response.status_code}")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchRefused(413, "Content too large")
    body = bytearray()
    # Raw bytes: identity was asked for, and decoding could inflate past the cap.
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise FetchRefused(413, "Content too large")
        if time.monotonic() > deadline:
            raise _Unreachable("deadline passed")
    return bytes(body)


def _remaining(deadline: float, timeout: float | None, error: type[Exception]) -> float:
    """The time one socket operation may take: its own timeout, cut to the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the deadline, so a
    host trickling a byte at a time cannot hold the request past it."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _remaining(self._deadline, timeout,
                                                       httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _remaining(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        # server_hostname is the URL's host: SNI and the certificate check use the name,
        # not the pinned address.
        budget = _remaining(self._deadline, timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, budget),
                               self._deadline)

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the vetted addresses only, whatever host name it is asked for, so DNS
    answering differently after the check (rebinding) cannot move the connection."""

    def __init__(self, host: str, addresses: list[str], deadline: float) -> None:
        self._host = host
        self._addresses = addresses
        self._deadline = deadline
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        if host.lower() != self._host:
            raise httpcore.ConnectError("connection to a host that was not vetted")
        failure: Exception = httpcore.ConnectError("no address")
        for address in self._addresses:
            budget = _remaining(self._deadline, timeout, httpcore.ConnectTimeout)
            try:
                stream = self._sockets.connect_tcp(address, port, budget, local_address,
                                                   socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None,
                            ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _PinnedTransport(httpx.BaseTransport):
    """httpx's transport contract over an httpcore pool with the pinned backend (httpx's
    own HTTPTransport does not take a network backend)."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=1, retries=0,
            network_backend=backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core = self._pool.handle_request(httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                             target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        ))
        return httpx.Response(core.status, headers=core.headers, stream=_Body(core),
                              extensions=core.extensions)

    def close(self) -> None:
        self._pool.close()


class _Body(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()
