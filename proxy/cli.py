"""The `lictor` command: `serve`, `audit verify`, `approvals ...`, `rules ...`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from lictor.audit.signing import KeyFileError
from lictor.audit.store import AuditWriteError
from lictor.proxy import approval_commands, retention_commands
from lictor.proxy.config import ConfigError, load_config
from lictor.rules.loader import RuleLoadError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lictor", description="Governance-first policy-enforcement proxy for AI agents."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (OpenAI-compatible base_url mode)")
    serve.add_argument("--config", type=Path, help="config file (default: $LICTOR_CONFIG, "
                       "else the embedded defaults)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8787)")
    serve.add_argument("--data-dir", type=Path, help="audit store and keys (default ./var)")
    serve.add_argument("--egress", choices=["regular", "transparent"],
                       help="also run the egress proxy (mitmproxy): `regular` for agents "
                       "using HTTPS_PROXY, `transparent` for iptables redirection in a sidecar "
                       "(settings: the config's `egress` section)")

    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", help="check the hash chain, Merkle tree, signing keys and signed checkpoints")
    verify.add_argument("--config", type=Path, help="config file, for its data_dir")
    verify.add_argument("--data-dir", type=Path, help="where the audit store is (default ./var)")
    retention_commands.add_parsers(audit_sub)
    verify.add_argument("--key", dest="keys", action="append", default=[], metavar="VKEY",
                        help="trust only this verifier key (name+id+key, as rotate-key "
                             "prints it); repeat for old keys")
    rotate = audit_sub.add_parser(
        "rotate-key", help="make a new checkpoint signing key (old public keys are kept)")
    rotate.add_argument("--config", type=Path, help="config file, for data_dir and audit.*")
    rotate.add_argument("--data-dir", type=Path, help="where the audit store is (default ./var)")
    export = audit_sub.add_parser(
        "export", help="write an evidence bundle: selected records with inclusion proofs "
        "against signed checkpoints")
    export.add_argument("--since", help="records at or after this RFC 3339 time")
    export.add_argument("--until", help="records before this RFC 3339 time")
    export.add_argument("--agent", help="only this agent's records")
    export.add_argument("--verdict", help="only records with this verdict (allow, block, ...)")
    export.add_argument("--out", type=Path, required=True, help="new folder for the bundle")
    export.add_argument("--format", dest="views", action="append", default=[],
                        choices=["ocsf", "csv"], help="also write the records as OCSF API "
                        "Activity events (records.ocsf.jsonl) or CSV (records.csv); repeatable")
    export.add_argument("--config", type=Path, help="config file, for data_dir and audit.*")
    export.add_argument("--data-dir", type=Path, help="where the audit store is (default ./var)")
    bundle = audit_sub.add_parser(
        "verify-bundle", help="check an evidence bundle offline (exit 1 on any problem)")
    bundle.add_argument("bundle", type=Path, help="the bundle folder")
    bundle.add_argument("--key", dest="keys", action="append", default=[], metavar="VKEY",
                        help="trust only this verifier key; repeat for old keys")
    approval_commands.add_parser(sub)
    rules = sub.add_parser("rules", help="rule tooling")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    test = rules_sub.add_parser(
        "test", help="run the rule tests (*_test.yaml) against the rules they sit beside")
    test.add_argument("paths", nargs="*", type=Path,
                      help="rule folders or files (default: the bundled default packs)")
    docs = rules_sub.add_parser("docs", help="print the rules catalog (Markdown)")
    docs.add_argument("paths", nargs="*", type=Path,
                      help="rule folders or files (default: the bundled default packs)")
    docs.add_argument("--out", type=Path, help="write it to this file instead")
    pin = rules_sub.add_parser(
        "pin", help="print a pinned_tools rule for the tools offered in a request (JSON file)")
    pin.add_argument("request", type=Path, help="an OpenAI chat request body with `tools`")
    check = rules_sub.add_parser(
        "check", help="validate rule, test-case and Cedar files; warn about rules that can "
        "never fire or are shadowed (exit 1 on errors)")
    check.add_argument("paths", nargs="*", type=Path,
                       help="rule folders or files (default: the bundled default packs)")
    explain = rules_sub.add_parser(
        "explain", help="judge one OpenAI chat request or response (JSON file) with the rules "
        "and explain the verdict")
    explain.add_argument("file", type=Path, help="an OpenAI Chat Completions request body, or "
                         "a response body (`\"object\": \"chat.completion\"`)")
    explain.add_argument("--rules", dest="rule_paths", nargs="+", type=Path, default=[],
                         help="rule folders or files (default: the bundled default packs)")
    explain.add_argument("--agent", default="explain-agent",
                         help="the agent id to judge it for (default: explain-agent)")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    server = {k: v for k, v in (("host", getattr(args, "host", None)),
                                ("port", getattr(args, "port", None))) if v is not None}
    if server:
        out["server"] = server
    if getattr(args, "data_dir", None) is not None:
        out["data_dir"] = str(args.data_dir)
    if getattr(args, "egress", None) is not None:
        out["egress"] = {"mode": args.egress}
    return out


def _serve(args: argparse.Namespace) -> int:
    from lictor.proxy.server import serve
    from lictor.proxy.startup_checks import check_safe_to_serve

    config = load_config(args.config, _overrides(args))
    env_path = os.environ.get("LICTOR_CONFIG")
    check_safe_to_serve(config, args.config or (Path(env_path) if env_path else None))
    serve(config, egress=args.egress is not None)
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from lictor.proxy.audit_commands import verify_command

    return verify_command(load_config(args.config, _overrides(args)), args.keys)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)  # one line per recognizer
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "approvals":
            return approval_commands.run(args)
        if args.command == "rules":
            from lictor.proxy.rules_commands import run_rules_command

            return run_rules_command(args)
        if args.audit_command in ("erase", "reveal", "prune"):
            return retention_commands.run(args, load_config(args.config, _overrides(args)))
        if args.audit_command == "rotate-key":
            from lictor.proxy.audit_commands import rotate_key

            return rotate_key(load_config(args.config, _overrides(args)))
        if args.audit_command == "export":
            from lictor.proxy.audit_commands import export

            return export(load_config(args.config, _overrides(args)), args)
        if args.audit_command == "verify-bundle":
            from lictor.proxy.audit_commands import verify_bundle_command

            return verify_bundle_command(args.bundle, args.keys)
        return _audit_verify(args)
    except (ConfigError, RuleLoadError, KeyFileError) as exc:
        print(f"lictor: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except AuditWriteError as exc:  # fail closed: nothing is served without its audit log
        print(f"lictor: cannot start: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
