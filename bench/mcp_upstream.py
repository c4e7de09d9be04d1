"""A FastMCP server (the official MCP SDK) with one tool, for the MCP latency benchmark.

    python bench/mcp_upstream.py --port 9000 [--json]

`--json` answers tool calls as application/json; otherwise as an SSE stream (the SDK's
default).
"""

from __future__ import annotations

import argparse

import uvicorn
from mcp.server.fastmcp import FastMCP


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--json", action="store_true", help="JSON answers instead of SSE")
    args = parser.parse_args()
    server = FastMCP("bench", json_response=args.json, log_level="WARNING")

    @server.tool()
    def lookup_order(order_id: str) -> str:
        """Look up an order by its id."""
        return f"Order {order_id}: 2 items, shipped on Monday to the customer's address."

    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
