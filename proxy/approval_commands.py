"""`lictor approvals list | approve | deny`: approvers act through the admin API.

The CLI holds no state of its own: it calls the running lictor (`--url`, default
$LICTOR_URL or http://127.0.0.1:8787) with the approver's admin key ($LICTOR_ADMIN_KEY),
so the approver's identity and team come from that key and every vote is audited there.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8787"


def add_parser(sub: Any) -> None:
    approvals = sub.add_parser("approvals", help="list, approve or deny held actions")
    approvals.add_argument("--url", default=os.environ.get("LICTOR_URL", DEFAULT_URL),
                           help="the running lictor (default $LICTOR_URL or %(default)s)")
    cmds = approvals.add_subparsers(dest="approvals_command", required=True)
    listing = cmds.add_parser("list", help="approvals, newest last")
    listing.add_argument("--status", choices=["pending", "approved", "denied", "used",
                                              "expired"], help="only those in this state")
    listing.add_argument("--json", action="store_true", help="print JSON")
    for name in ("approve", "deny"):
        vote = cmds.add_parser(name, help=f"{name} an approval as the admin key's owner")
        vote.add_argument("approval_id")
        vote.add_argument("--reason", required=True, help="why; kept in the audit log")


def _call(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    key = os.environ.get("LICTOR_ADMIN_KEY")
    if not key:
        raise SystemExit("lictor approvals: set LICTOR_ADMIN_KEY to your admin key")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url.rstrip("/") + path, data=data, method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise SystemExit(f"lictor approvals: {exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"lictor approvals: cannot reach lictor at {url}: {exc.reason}") \
            from None


def _line(a: dict[str, Any]) -> str:
    needs = ", ".join(f"{n['approvers']} from {n['team']}" for n in a["needs"])
    votes = "; ".join(f"{'approved' if v['approve'] else 'denied'} by {v['by']}: {v['reason']}"
                      for v in a["votes"])
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a["created"]))
    return (f"{a['id']}  {a['status']:<8}  {created}Z  agent {a['agent']}  {a['summary']}"
            f"  [needs {needs}; rules {', '.join(a['rules'])}]" + (f"  {votes}" if votes else ""))


def run(args: argparse.Namespace) -> int:
    if args.approvals_command == "list":
        query = f"?status={args.status}" if args.status else ""
        found = _call(args.url, "GET", f"/admin/approvals{query}")["approvals"]
        if args.json:
            print(json.dumps(found, indent=2))
        else:
            for approval in found:
                print(_line(approval))
            if not found:
                print("no approvals" + (f" {args.status}" if args.status else ""))
        return 0
    path = f"/admin/approvals/{args.approval_id}/{args.approvals_command}"
    decided = _call(args.url, "POST", path, {"reason": args.reason})
    print(_line(decided))
    return 0
