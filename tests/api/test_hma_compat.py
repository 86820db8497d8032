"""The HMA-compatible endpoints answer as Meta's Hasher-Matcher-Actioner does
(OpenMediaMatch blueprints/hashing.py and blueprints/matching.py): /h/hash gives
{signal_type: hash}, /m/lookup gives {bank: [{bank_content_id, distance}]}."""

from __future__ import annotations

import dataclasses
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from threatexchange.signal_type.pdq.signal import PdqSignal

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.banks.services import entry_hashes
from consentry.signals.hashing import fingerprint, image_hashes


@pytest.fixture
def client(gate):
    with TestClient(create_app(gate=gate)) as c:
        yield c


@pytest.fixture
def key(gate) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(gate.db, 'hma-client', [Scope.CHECK])[1]}"}


@pytest.fixture
def banked(gate, photos) -> dict[str, int]:
    """astronaut in an NCII bank, coffee in a CSAM bank."""
    reg = gate.banks.registry
    reg.create("stopncii", "block", "ncii")
    reg.create("ncmec", "block", "csam")
    def add(bank: str, photo: str) -> int:
        return reg.add_entry(bank, entry_hashes(fingerprint(photos[photo]))).id

    return {"astronaut": add("stopncii", "astronaut"), "coffee": add("ncmec", "coffee")}


def _flip(hex_hash: str, bits: int) -> str:
    value = int(hex_hash, 16) ^ ((1 << bits) - 1)
    return f"{value:064x}"


def test_keys_are_required_unlike_hma(client, gate, photos):
    assert client.post("/h/hash", files={"photo": ("a.jpg", photos["coffee"])}).status_code == 401
    assert client.get("/m/lookup?signal=00&signal_type=pdq").status_code == 401
    _, banker = create_api_key(gate.db, "banker", [Scope.BANKS])
    r = client.get("/m/lookup?signal=00&signal_type=pdq", headers={"X-API-Key": banker})
    assert r.status_code == 403


def test_hash_upload_matches_hmas_own_hasher(client, key, photos):
    r = client.post("/h/hash", headers=key,
                    files={"photo": ("a.jpg", photos["astronaut"], "image/jpeg")})
    assert r.status_code == 200, r.text
    # HMA hashes a photo upload with threatexchange's PdqSignal.hash_from_bytes.
    assert r.json() == {"pdq": PdqSignal.hash_from_bytes(photos["astronaut"])}
    both = client.post("/h/hash?types=pdq,md5", headers=key,
                       files={"photo": ("a.jpg", photos["astronaut"], "image/jpeg")}).json()
    assert both["md5"] == image_hashes(photos["astronaut"]).md5


def test_a_flat_image_hashes_to_an_empty_pdq_as_in_hma(client, key):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buf, "PNG")
    r = client.post("/h/hash", headers=key, files={"photo": ("g.png", buf.getvalue())})
    assert r.status_code == 200 and r.json() == {"pdq": ""}


@pytest.mark.parametrize(("kwargs", "status", "message"), [
    ({"files": {"video": ("v.mp4", b"x")}}, 400, "no such content_type: 'video'"),
    ({"files": [("photo", ("a", b"1")), ("photo", ("b", b"2"))]}, 400, "Only one file"),
    ({"data": {"photo": "text"}}, 400, "Missing multipart/form-data file upload"),
    ({"files": {"photo": ("a.jpg", b"junk")}}, 400, "not an image"),
    ({"params": {"types": "sha1"}, "files": {"photo": ("a", b"1")}}, 400,
     "signal type 'sha1' doesn't exist"),
])
def test_hash_errors_are_hma_style(client, key, kwargs, status, message):
    r = client.post("/h/hash", headers=key, **kwargs)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"message"} and message in r.json()["message"]


def test_lookup_by_signal(client, key, banked, photos):
    pdq = image_hashes(photos["astronaut"]).pdq.hex
    r = client.get("/m/lookup", headers=key, params={"signal": pdq, "signal_type": "pdq"})
    assert r.status_code == 200
    assert r.json() == {"stopncii": [{"bank_content_id": banked["astronaut"], "distance": "0"}]}
    near = client.get("/m/lookup", headers=key,
                      params={"signal": _flip(pdq, 5), "signal_type": "pdq"}).json()
    assert near == {"stopncii": [{"bank_content_id": banked["astronaut"], "distance": "5"}]}
    far = client.get("/m/lookup", headers=key,
                     params={"signal": _flip(pdq, 100), "signal_type": "pdq"}).json()
    assert far == {}
    md5 = image_hashes(photos["coffee"]).md5
    for signal_type in ("video_md5", "md5"):
        found = client.get("/m/lookup", headers=key,
                           params={"signal": md5, "signal_type": signal_type}).json()
        assert found == {"ncmec": [{"bank_content_id": banked["coffee"], "distance": "0"}]}
    filtered = client.get("/m/lookup", headers=key, params={
        "signal": md5, "signal_type": "md5", "banks": "stopncii"}).json()
    assert filtered == {}


def test_disabled_banks_do_not_match(client, key, banked, gate, photos):
    gate.banks.registry.set_enabled("stopncii", False)
    pdq = image_hashes(photos["astronaut"]).pdq.hex
    assert client.get("/m/lookup", headers=key,
                      params={"signal": pdq, "signal_type": "pdq"}).json() == {}


@pytest.mark.parametrize(("params", "message"), [
    ({"signal": "ab" * 31, "signal_type": "pdq"}, "invalid signal: a pdq hash is 64 hex"),
    ({"signal": "ab" * 31 + "zz", "signal_type": "pdq"}, "character 62 is 'z', not a hex"),
    ({"signal": "ab" * 32, "signal_type": "video_md5"}, "a video_md5 hash is 32 hex"),
    ({"signal": "ab" * 32, "signal_type": "tmk"}, "No such SignalType 'tmk'"),
    ({"signal": "ab" * 32}, "Either url or both signal and signal_type are required"),
    ({}, "Either url or both signal and signal_type are required"),
])
def test_lookup_errors_are_400_with_a_message(client, key, params, message):
    r = client.get("/m/lookup", headers=key, params=params)
    assert r.status_code == 400 and message in r.json()["message"]


def test_lookup_of_an_uploaded_photo_finds_a_rotated_copy(client, key, banked, photos):
    buf = io.BytesIO()
    Image.open(io.BytesIO(photos["astronaut"])).rotate(90, expand=True).save(buf, "JPEG")
    r = client.post("/m/lookup", headers=key, files={"photo": ("r.jpg", buf.getvalue())})
    assert r.status_code == 200, r.text
    matches = r.json()["pdq"]["stopncii"]
    assert matches[0]["bank_content_id"] == banked["astronaut"]
    assert int(matches[0]["distance"]) <= 31


class _Images(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/photo.jpg")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def image_server(photos) -> Iterator[str]:
    _Images.body = photos["coffee"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_fetching_only_from_allowed_hosts(client, key, gate, banked, photos, image_server):
    url = f"{image_server}/photo.jpg"
    off = client.get("/h/hash", headers=key, params={"url": url})
    assert off.status_code == 400 and "disabled" in off.json()["message"]
    assert client.get("/h/hash", headers=key).json() == {"message": "url is required"}

    # The image server is on loopback, which is refused unless its network is listed.
    gate.settings = dataclasses.replace(gate.settings, hma_fetch_hosts=("127.0.0.1",),
                                        hma_fetch_networks=("127.0.0.1/32",))
    r = client.get("/h/hash", headers=key, params={"url": url})
    assert r.status_code == 200 and r.json() == {"pdq": image_hashes(photos["coffee"]).pdq.hex}
    looked = client.get("/m/lookup", headers=key, params={"url": url}).json()
    assert looked == {"pdq": {"ncmec": [{"bank_content_id": banked["coffee"], "distance": "0"}]}}
    elided = client.get("/m/lookup", headers=key, params={"url": url, "signal_type": "pdq"})
    assert elided.json() == {"ncmec": [{"bank_content_id": banked["coffee"], "distance": "0"}]}

    redirect = client.get("/h/hash", headers=key, params={"url": f"{image_server}/redirect"})
    assert redirect.json() == {"message": "Failed to fetch URL"}  # not followed, not told
    other = client.get("/h/hash", headers=key, params={"url": "http://10.0.0.1/a.jpg"})
    assert other.status_code == 400 and "not allowed" in other.json()["message"]
    scheme = client.get("/h/hash", headers=key, params={"url": "file:///etc/passwd"})
    assert scheme.status_code == 400 and "only http and https" in scheme.json()["message"]
