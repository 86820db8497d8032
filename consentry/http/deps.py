"""Typed dependencies for routers and pages: the services and settings the app holds, and
who the client is. Routes declare what they need (``GateDep``, ``TakedownsDep``,
``ClientDep``) instead of reaching into ``request.app.state``."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request

from consentry.cases.appeals import AppealDesk
from consentry.cases.decisions import Decisions
from consentry.cases.review import ReviewQueues
from consentry.cases.takedowns import TakedownService
from consentry.config import Settings
from consentry.gate import Gate
from consentry.limits import Limits

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_gate(request: Request) -> Gate:
    return request.app.state.gate


def get_takedowns(request: Request) -> TakedownService:
    return request.app.state.takedowns


def get_appeals(request: Request) -> AppealDesk:
    return request.app.state.appeals


def get_queues(request: Request) -> ReviewQueues:
    return request.app.state.queues


def get_decisions(request: Request) -> Decisions:
    return request.app.state.decisions


def get_limits(request: Request) -> Limits:
    return request.app.state.takedowns.limits


def parse_networks(networks: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def resolve_client(peer: str | None, forwarded_for: str | None,
                   trusted: Sequence[Network]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy, in which case
    the nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy (the
    right-most hops were written by our proxies; anything further left, by the client)."""
    if peer is None:
        return "unknown"
    if not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # our proxies write addresses: the chain is not to be believed
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def client_address(request: Request) -> str:
    """Who is asking, for per-client limits (see ``resolve_client``)."""
    peer = request.client.host if request.client else None
    return resolve_client(peer, request.headers.get("x-forwarded-for"),
                          request.app.state.trusted_proxies)


SettingsDep = Annotated[Settings, Depends(get_settings)]
GateDep = Annotated[Gate, Depends(get_gate)]
TakedownsDep = Annotated[TakedownService, Depends(get_takedowns)]
ClientDep = Annotated[str, Depends(client_address)]
AppealsDep = Annotated[AppealDesk, Depends(get_appeals)]
QueuesDep = Annotated[ReviewQueues, Depends(get_queues)]
DecisionsDep = Annotated[Decisions, Depends(get_decisions)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
