"""An ansible-rulebook event source that receives Prometheus Alertmanager's webhook notifications.

Alertmanager POSTs one JSON document per notification, holding a group of alerts under ``alerts``. This source
puts one event per alert on the rulebook's queue, shaped as ansible.eda.alertmanager shapes them
(``{"alert": {...}, "meta": {"endpoint": ..., "headers": {...}}}``), so that a rulebook written for either source
works with the other. It exists because ansible.eda is only published on Galaxy, which not every controller
can reach; ansible-rulebook itself brings everything this file imports (aiohttp, from its own requirements).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

DOCUMENTATION = r"""
---
short_description: Receive Prometheus Alertmanager webhook notifications, one event per alert.
description:
  - Listens for Alertmanager's webhook_configs POSTs (any path) and puts each alert of a notification on the
    queue as its own event, C({"alert": ALERT, "meta": {"endpoint": PATH, "headers": HEADERS}}), the shape
    ansible.eda.alertmanager uses.
  - Unlike ansible.eda.alertmanager it sets no C(meta.hosts) unless O(data_host_path) is given, because an alert
    about a responder names the monitored host, which is not the host a playbook should be limited to.
  - A body that is not JSON, or has no list under C(alerts), is refused with HTTP 400 and nothing is queued.
options:
  host:
    description: The address to listen on. Alertmanager usually runs elsewhere; bind to it deliberately.
    type: str
    default: "127.0.0.1"
  port:
    description: The TCP port to listen on.
    type: int
    default: 5000
  token:
    description:
      - When set, every request must carry C(Authorization: Bearer TOKEN) (Alertmanager's
        C(http_config.authorization.credentials)); others get HTTP 401. Empty or absent means no check.
    type: str
  data_host_path:
    description:
      - A dotted path inside each alert (for example C(labels.instance)) whose value becomes C(meta.hosts),
        which ansible-rulebook uses as the playbook's host limit. Empty or absent means no limit.
    type: str
"""

EXAMPLES = r"""
- fleet.stapling.alertmanager:
    host: 127.0.0.1
    port: 5000
    token: "{{ stapling_eda_token }}"
"""

LOGGER = logging.getLogger(__name__)
# Headers that must not travel into events (and from there into playbook extra vars and logs).
SECRET_HEADERS = ("authorization", "cookie")


class BadNotification(ValueError):
    """A request body that is not an Alertmanager notification."""


def alerts_of(body: bytes) -> list[dict[str, Any]]:
    """The alerts of one webhook notification; BadNotification when the body is not one."""
    try:
        notification = json.loads(body)
    except ValueError as error:
        raise BadNotification("the body is not JSON: %s" % error) from None
    alerts = notification.get("alerts") if isinstance(notification, dict) else None
    if not isinstance(alerts, list) or not all(isinstance(alert, dict) for alert in alerts):
        raise BadNotification("the body has no list of alert objects under 'alerts'")
    return alerts


def value_at(data: Any, dotted_path: str) -> Any:
    """The value at ``a.b.c`` inside nested dicts, or None when any step is missing."""
    for key in dotted_path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def events_of(alerts: list[dict[str, Any]], endpoint: str, headers: dict[str, str],
              data_host_path: str = "") -> list[dict[str, Any]]:
    """One rulebook event per alert, in the order Alertmanager sent them."""
    safe_headers = {name: value for name, value in headers.items() if name.lower() not in SECRET_HEADERS}
    events = []
    for alert in alerts:
        meta: dict[str, Any] = {"endpoint": endpoint, "headers": dict(safe_headers)}
        host = value_at(alert, data_host_path) if data_host_path else None
        if host:
            # an instance label is host:port; the inventory knows the host
            meta["hosts"] = [str(host).rsplit(":", 1)[0]]
        events.append({"alert": alert, "meta": meta})
    return events


def authorized(header: str, token: str) -> bool:
    """True when no token is required, or the request's bearer token is that token."""
    if not token:
        return True
    parts = header.split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return False
    return hmac.compare_digest(parts[1].strip().encode(), token.encode())


async def main(queue: asyncio.Queue, args: dict[str, Any]) -> None:
    """Serve until ansible-rulebook cancels this source."""
    # Imported here so that the helpers above can be used and tested where aiohttp is not installed.
    from aiohttp import web  # pylint: disable=import-outside-toplevel

    token = str(args.get("token") or "")
    data_host_path = str(args.get("data_host_path") or "")

    async def receive(request: web.Request) -> web.Response:
        if not authorized(request.headers.get("Authorization", ""), token):
            return web.Response(status=401, text="a valid bearer token is required\n")
        try:
            alerts = alerts_of(await request.read())
        except BadNotification as error:
            LOGGER.warning("refused a notification on /%s: %s", request.match_info["endpoint"], error)
            return web.Response(status=400, text="%s\n" % error)
        for event in events_of(alerts, request.match_info["endpoint"], dict(request.headers), data_host_path):
            await queue.put(event)
        return web.Response(status=202, text="queued %d alert(s)\n" % len(alerts))

    async def status(_request: web.Request) -> web.Response:
        return web.Response(text="up\n")

    app = web.Application()
    app.router.add_get("/", status)
    app.router.add_post("/{endpoint:.*}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, str(args.get("host") or "127.0.0.1"), int(args.get("port") or 5000))
    await site.start()
    try:
        await asyncio.Future()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    # By hand (and in the tests): python alertmanager.py [PORT [TOKEN]], then POST notifications to it and read
    # the events it would queue, one JSON document a line on stdout.
    import sys

    class PrintingQueue(asyncio.Queue):
        async def put(self, item):
            print(json.dumps(item), flush=True)

    asyncio.run(main(PrintingQueue(), {"port": sys.argv[1] if len(sys.argv) > 1 else 5000,
                                       "token": sys.argv[2] if len(sys.argv) > 2 else ""}))
