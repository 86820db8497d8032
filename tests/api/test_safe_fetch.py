"""URL fetching for the HMA endpoints cannot be aimed at internal addresses (SSRF): the
host checked is the host reached, every resolved address must be public (or in a listed
network), the connection goes to the vetted address, one deadline bounds the whole fetch,
and every failure after the allow-list answers the same. Real loopback servers, no mocks
of the HTTP client."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.api.safe_fetch import FETCH_FAILED, FetchPolicy, FetchRefused, fetch_image
from consentry.signals.hashing import image_hashes

BODY = b"\xff\xd8\xff\xe0 image bytes " * 100
LOOPBACK = ipaddress.ip_network("127.0.0.1/32")


class _Site(BaseHTTPRequestHandler):
    """An image host that records every request it receives."""

    server: _Server

    def do_GET(self) -> None:
        self.server.hits.append((self.path, self.headers.get("Host", "")))
        route = self.path.split("?")[0]
        if route == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/photo.jpg")
            self.end_headers()
        elif route == "/missing":
            self.send_error(404)
        elif route == "/unsized":  # no Content-Length: the body runs until the close
            self.send_response(200)
            self.end_headers()
            self.wfile.write(self.server.body)
        elif route == "/trickle-body":
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self._trickle()
        elif route == "/trickle-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self._trickle()
        else:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(self.server.body)))
            self.end_headers()
            self.wfile.write(self.server.body)

    def _trickle(self) -> None:
        """A byte every half second, until the client leaves or the test ends (at most 30 s,
        so a fetch without a deadline fails its test instead of hanging it)."""
        for _ in range(60):
            if self.server.stopping.is_set():
                return
            try:
                self.wfile.write(b"a")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.5)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, body: bytes) -> None:
        super().__init__((host, port), _Site)
        self.body = body
        self.hits: list[tuple[str, str]] = []
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]


@pytest.fixture
def serve() -> Iterator[Callable[..., _Server]]:
    servers: list[_Server] = []

    def start(host: str = "127.0.0.1", port: int = 0, body: bytes = BODY) -> _Server:
        server = _Server(host, port, body)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stopping.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def site(serve) -> _Server:
    return serve()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _policy(*hosts: str, networks: tuple[str, ...] = (), deadline: float = 5.0,
            max_bytes: int = 10_000_000) -> FetchPolicy:
    return FetchPolicy(allowed_hosts=hosts,
                       allowed_networks=tuple(ipaddress.ip_network(n) for n in networks),
                       deadline_s=deadline, max_bytes=max_bytes)


def _refusal(url: str, policy: FetchPolicy) -> FetchRefused:
    with pytest.raises(FetchRefused) as caught:
        fetch_image(url, policy)
    return caught.value


class _FakeDNS:
    """Answers chosen names from a table (one answer per lookup, the last repeating) and
    every other name with the real resolver; counts the lookups of chosen names."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[list[str], ...]] = {}
        self.lookups: dict[str, int] = {}

    def answer(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = answers

    def getaddrinfo(self, real: Callable[..., list], host: str, port: int,
                    *args: object, **kwargs: object) -> list:
        if host not in self.answers:
            return real(host, port, *args, **kwargs)
        n = self.lookups[host] = self.lookups.get(host, 0) + 1
        answers = self.answers[host]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in answers[min(n, len(answers)) - 1]]


@pytest.fixture
def fake_dns(monkeypatch) -> _FakeDNS:
    dns = _FakeDNS()
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda *args, **kwargs: dns.getaddrinfo(real, *args, **kwargs))
    return dns


# -- the URL is read as the client reads it -------------------------------------------


@pytest.mark.parametrize("template", [
    "http://127.0.0.1:{port}\\@example.com/x",  # the reported bypass
    "http://127.0.0.1:{port}\\\\@example.com/x",
    "http://127.0.0.1\\.example.com:{port}/x",  # httpx: one host; WHATWG: 127.0.0.1
    "http://127.0.0.1:{port}@example.com/x",
    "http://example.com@127.0.0.1:{port}/x",
    "http://@127.0.0.1:{port}/x",
    "http://127.0.0.1:{port}#@example.com/x",
    "http://127.0.0.1:{port}?@example.com/x",
    "http://127.0.0.1:{port}/ @example.com/x",
    "http://127.0.0.1:{port}\t@example.com/x",
])
def test_an_allowed_host_in_userinfo_or_after_a_backslash_never_reaches_loopback(
        site, template):
    refused = _refusal(template.format(port=site.port), _policy("example.com"))
    # Refused from the URL alone, before any lookup or connection.
    assert refused.status == 400 and str(refused).startswith("Invalid or unsafe URL provided")
    assert site.hits == []


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.com/a.jpg", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("http:///a.jpg", "no host"),
    ("http://user:pw@example.com/a.jpg", "user information"),
    ("http://ex%61mple.com/a.jpg", "escaped characters"),
    ("http://example.com:99999/a.jpg", "no such port"),
    ("http://example.org/a.jpg", "host 'example.org' is not allowed"),
    ("http://badexample.com/a.jpg", "host 'badexample.com' is not allowed"),
])
def test_refusals_that_describe_only_the_request_keep_their_reason(url, message):
    refused = _refusal(url, _policy("example.com"))
    assert refused.status == 400 and message in str(refused)


def test_hosts_compare_lowercase_and_idna_and_admit_subdomains(site, fake_dns):
    fake_dns.answer("img.xn--bcher-kva.example", ["127.0.0.1"])
    policy = _policy("BÜCHER.example", networks=("127.0.0.1/32",))
    assert fetch_image(f"http://IMG.bücher.example:{site.port}/a.jpg", policy) == BODY
    assert site.hits == [("/a.jpg", f"img.xn--bcher-kva.example:{site.port}")]


# -- addresses ------------------------------------------------------------------------


def test_localhost_in_the_allow_list_resolves_to_loopback_and_is_refused(site, caplog):
    url = f"http://localhost:{site.port}/photo.jpg?owner=alice"
    with caplog.at_level(logging.INFO, logger="consentry.api.safe_fetch"):
        refused = _refusal(url, _policy("localhost"))
    assert (refused.status, str(refused)) == (400, FETCH_FAILED)
    assert site.hits == []
    assert "address 127.0.0.1 is not publicly routable" in caplog.text
    assert "owner=alice" not in caplog.text and "photo.jpg" not in caplog.text
    # The operator can open the network (a trusted internal CDN): then it is fetched.
    assert fetch_image(url, _policy("localhost", networks=("127.0.0.1/32",))) == BODY


@pytest.mark.parametrize("host", [
    "127.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "127.0.0.01",
    "127.0.0.1.", "017700000001",
])
def test_odd_ipv4_spellings_are_refused_even_where_loopback_is_allowed(site, host):
    refused = _refusal(f"http://{host}:{site.port}/a.jpg",
                       _policy(host, networks=("127.0.0.0/8",)))
    # Up front, from the URL (httpx itself rejects some of these spellings).
    assert refused.status == 400 and str(refused).startswith("Invalid or unsafe URL provided")
    assert site.hits == []


@pytest.mark.parametrize("host", ["[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::1]"])
def test_ipv6_spellings_of_loopback_are_refused(site, host):
    refused = _refusal(f"http://{host}:{site.port}/a.jpg", _policy(host.strip("[]")))
    assert (refused.status, str(refused)) == (400, FETCH_FAILED)
    assert site.hits == []


@pytest.mark.parametrize("address", [
    "169.254.169.254",  # cloud metadata (link-local)
    "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "0.0.0.0", "127.0.0.2",
    "224.0.0.1", "240.0.0.1", "255.255.255.255",
    "::", "::1", "fe80::1", "fd00::1", "ff02::1",
    "::ffff:169.254.169.254", "::7f00:1",  # IPv4-mapped and IPv4-compatible
    "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254
    "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
])
def test_non_public_addresses_are_refused_before_connecting(address, caplog):
    host = f"[{address}]" if ":" in address else address
    with caplog.at_level(logging.INFO, logger="consentry.api.safe_fetch"):
        refused = _refusal(f"http://{host}/latest/meta-data/", _policy(address))
    assert (refused.status, str(refused)) == (400, FETCH_FAILED)
    assert "is not publicly routable" in caplog.text


def test_a_name_answering_any_internal_address_is_refused(site, fake_dns):
    # One public and one loopback answer: a client could connect to either.
    fake_dns.answer("mixed.example", ["93.184.215.14", "127.0.0.1"])
    refused = _refusal(f"http://mixed.example:{site.port}/a.jpg", _policy("mixed.example"))
    assert str(refused) == FETCH_FAILED and site.hits == []


def test_the_connection_goes_to_the_vetted_address_when_dns_changes_its_answer(
        serve, fake_dns):
    vetted = serve(host="127.0.0.2", body=b"vetted")
    # The same port on loopback: a connection that looked the name up again lands here.
    rebound = serve(host="127.0.0.1", port=vetted.port, body=b"rebound")
    # First answer: an allowed address; every later one: loopback, which is not allowed.
    fake_dns.answer("cdn.example", ["127.0.0.2"], ["127.0.0.1"])
    policy = _policy("cdn.example", networks=("127.0.0.2/32",))
    assert fetch_image(f"http://cdn.example:{vetted.port}/a.jpg", policy) == b"vetted"
    assert fake_dns.lookups["cdn.example"] == 1
    assert vetted.hits == [("/a.jpg", f"cdn.example:{vetted.port}")]
    assert rebound.hits == []


def test_tls_is_started_for_the_url_host_name_not_the_address(fake_dns):
    # A plain TCP listener records the TLS ClientHello: its SNI must name the host, so the
    # certificate is checked against the name (and the self-made server cannot pass).
    fake_dns.answer("images.cdn.example", ["127.0.0.1"])
    hello = bytearray()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def accept() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(2)
                hello.extend(conn.recv(4096))

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        refused = _refusal(f"https://images.cdn.example:{port}/a.jpg",
                           _policy("cdn.example", networks=("127.0.0.1/32",)))
        thread.join(3)
    assert str(refused) == FETCH_FAILED
    assert hello[:1] == b"\x16"  # a TLS handshake record
    assert b"images.cdn.example" in hello


# -- one answer for every failure -----------------------------------------------------


def test_failures_after_the_allow_list_are_indistinguishable(site, fake_dns):
    fake_dns.answer("gone.example", [])  # no address at all
    allowed = _policy("127.0.0.1", "localhost", "gone.example", "169.254.169.254",
                      networks=("127.0.0.1/32",), deadline=1.0)
    urls = [
        f"http://127.0.0.1:{_closed_port()}/a.jpg",  # closed port
        f"http://127.0.0.1:{site.port}/missing",  # 404
        f"http://127.0.0.1:{site.port}/redirect",  # 302
        f"http://127.0.0.1:{site.port}/trickle-body",  # deadline
        f"https://127.0.0.1:{site.port}/a.jpg",  # TLS to a plain HTTP server
        "http://169.254.169.254/latest/meta-data/",  # refused address
        "http://gone.example/a.jpg",  # name without addresses
        f"http://{'a' * 64}.gone.example/a.jpg",  # a name no resolver accepts
    ]
    answers = {(r.status, str(r)) for r in (_refusal(u, allowed) for u in urls)}
    assert answers == {(400, FETCH_FAILED)}


# -- bounds ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/trickle-body", "/trickle-headers"])
def test_a_trickling_host_is_cut_off_at_the_deadline(site, route):
    deadline = 1.5
    started = time.monotonic()
    refused = _refusal(f"http://127.0.0.1:{site.port}{route}",
                       _policy("127.0.0.1", networks=("127.0.0.1/32",), deadline=deadline))
    elapsed = time.monotonic() - started
    assert str(refused) == FETCH_FAILED
    assert elapsed < deadline + 1.5, elapsed


def test_a_redirect_is_not_followed(site):
    refused = _refusal(f"http://127.0.0.1:{site.port}/redirect",
                       _policy("127.0.0.1", networks=("127.0.0.1/32",)))
    assert (refused.status, str(refused)) == (400, FETCH_FAILED)
    assert [path for path, _ in site.hits] == ["/redirect"]


@pytest.mark.parametrize("route", ["/photo.jpg", "/unsized"])
def test_a_body_over_the_limit_is_413(site, route):
    policy = _policy("127.0.0.1", networks=("127.0.0.1/32",), max_bytes=len(BODY) - 1)
    refused = _refusal(f"http://127.0.0.1:{site.port}{route}", policy)
    assert refused.status == 413
    exact = _policy("127.0.0.1", networks=("127.0.0.1/32",), max_bytes=len(BODY))
    assert fetch_image(f"http://127.0.0.1:{site.port}{route}", exact) == BODY


# -- through the HMA endpoint ---------------------------------------------------------


@pytest.fixture
def client(gate) -> Iterator[TestClient]:
    with TestClient(create_app(gate=gate)) as c:
        yield c


@pytest.fixture
def key(gate) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(gate.db, 'hma-client', [Scope.CHECK])[1]}"}


def _configure(gate, **settings: object) -> None:
    gate.settings = dataclasses.replace(gate.settings, **settings)


def test_hma_bypass_url_from_the_report_does_not_reach_loopback(client, key, gate, site):
    _configure(gate, hma_fetch_hosts=("example.com",))
    r = client.get("/h/hash", headers=key,
                   params={"url": f"http://127.0.0.1:{site.port}\\@example.com/x"})
    assert r.status_code == 400 and "Invalid or unsafe URL" in r.json()["message"]
    assert site.hits == []


def test_hma_open_and_closed_ports_answer_byte_for_byte_alike(client, key, gate, site):
    _configure(gate, hma_fetch_hosts=("127.0.0.1",))  # the host, but not its network
    open_port = client.get("/h/hash", headers=key,
                           params={"url": f"http://127.0.0.1:{site.port}/a.jpg"})
    closed = client.get("/h/hash", headers=key,
                        params={"url": f"http://127.0.0.1:{_closed_port()}/a.jpg"})
    assert open_port.status_code == closed.status_code == 400
    assert open_port.content == closed.content == b'{"message":"Failed to fetch URL"}'
    assert site.hits == []
    # With the network allowed the ports still cannot be told apart when the fetch fails.
    _configure(gate, hma_fetch_networks=("127.0.0.1/32",))
    missing = client.get("/m/lookup", headers=key,
                         params={"url": f"http://127.0.0.1:{site.port}/missing"})
    closed = client.get("/m/lookup", headers=key,
                        params={"url": f"http://127.0.0.1:{_closed_port()}/a.jpg"})
    assert (missing.status_code, missing.content) == (closed.status_code, closed.content)


def test_hma_hashes_an_image_from_an_allowed_network(client, key, gate, serve, photos):
    site = serve(body=photos["coffee"])
    _configure(gate, hma_fetch_hosts=("127.0.0.1",), hma_fetch_networks=("127.0.0.1/32",),
               hma_fetch_timeout_s=5.0)
    r = client.get("/h/hash", headers=key,
                   params={"url": f"http://127.0.0.1:{site.port}/coffee.jpg"})
    assert r.status_code == 200, r.text
    assert r.json() == {"pdq": image_hashes(photos["coffee"]).pdq.hex}
